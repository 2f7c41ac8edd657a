//! [`Event`] (`v1`): a report that something happened to an object (`Scheduled`, `Pulled`,
//! `BackOff`, ...), shown by `describe`.

use serde::{Deserialize, Serialize};

use crate::meta::{MicroTime, ObjectMeta, Time};
use crate::resource::{NameRule, Resource};
use crate::resources::common::ObjectReference;
use crate::validation::{self, ErrorList};

/// An event (`v1`, `Event`, namespaced).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Event {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The object the event is about.
    pub involved_object: ObjectReference,
    /// A short CamelCase reason, e.g. `FailedScheduling`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// A human-readable description.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The component that reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<EventSource>,
    /// When it was first seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_timestamp: Option<Time>,
    /// When it was last seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_timestamp: Option<Time>,
    /// How often it was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// `Normal` or `Warning`.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
    /// When it was first observed, with microseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_time: Option<MicroTime>,
    /// What was done, e.g. `Binding`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub action: String,
    /// The reporting controller, e.g. `orchestra.dev/scheduler`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reporting_component: String,
    /// The reporting instance, e.g. `scheduler-node-1`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reporting_instance: String,
}

/// The `Normal` event type.
pub const EVENT_TYPE_NORMAL: &str = "Normal";
/// The `Warning` event type.
pub const EVENT_TYPE_WARNING: &str = "Warning";

impl Resource for Event {
    const API_VERSION: &'static str = "v1";
    const KIND: &'static str = "Event";
    const PLURAL: &'static str = "events";
    const NAMESPACED: bool = true;
    const NAME_RULE: NameRule = NameRule::PathSegment;
    const SELECTABLE_FIELDS: &'static [&'static str] = &[
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.fieldPath",
        "reason",
        "source",
        "type",
    ];

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_event(self)
    }

    fn field_value(&self, field: &str) -> Option<String> {
        let o = &self.involved_object;
        Some(match field {
            "involvedObject.kind" => o.kind.clone(),
            "involvedObject.namespace" => o.namespace.clone(),
            "involvedObject.name" => o.name.clone(),
            "involvedObject.uid" => o.uid.clone(),
            "involvedObject.apiVersion" => o.api_version.clone(),
            "involvedObject.fieldPath" => o.field_path.clone(),
            "reason" => self.reason.clone(),
            "source" => self
                .source
                .as_ref()
                .map(|s| s.component.clone())
                .unwrap_or_default(),
            "type" => self.type_.clone(),
            _ => return None,
        })
    }
}

/// The component that reported an event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EventSource {
    /// The component, e.g. `default-scheduler`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub component: String,
    /// The node it runs on.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
}
