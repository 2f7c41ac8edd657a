//! Object metadata and the small types every kind shares: [`ObjectMeta`], [`TypeMeta`],
//! [`OwnerReference`], [`LabelSelector`], [`Time`] / [`MicroTime`] and [`IntOrString`].
//!
//! The JSON names are Kubernetes' (camelCase). Empty strings, empty lists and maps, and `None`
//! are left out when serializing, as Kubernetes' `omitempty` does, and a missing field reads
//! as its empty value.

mod int_or_string;
mod label_selector;
mod time;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use int_or_string::{IntOrString, NotIntOrPercent};
pub use label_selector::{LabelSelector, LabelSelectorOperator, LabelSelectorRequirement};
pub use time::{MicroTime, Time, TimeError};

/// An object's `apiVersion` and `kind`, the two fields that say which type it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TypeMeta {
    /// `group/version`, or just `version` for the core group: `v1`, `apps/v1`,
    /// `coordination.k8s.io/v1`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// The kind, in CamelCase: `Pod`, `Deployment`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
}

impl TypeMeta {
    /// A `TypeMeta` from its two parts.
    pub fn new(api_version: impl Into<String>, kind: impl Into<String>) -> Self {
        TypeMeta {
            api_version: api_version.into(),
            kind: kind.into(),
        }
    }

    /// The API group: the part of `apiVersion` before the `/`, empty for the core group.
    pub fn group(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// The version: the part of `apiVersion` after the `/`.
    pub fn version(&self) -> &str {
        self.api_version
            .rsplit_once('/')
            .map_or(self.api_version.as_str(), |(_, version)| version)
    }
}

/// The metadata every stored object has (Kubernetes' `metav1.ObjectMeta`).
///
/// `name` (or `generateName`) and, for namespaced kinds, `namespace` are set by the user; `uid`,
/// `resourceVersion`, `generation`, `creationTimestamp` and `deletionTimestamp` are set by the
/// API server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ObjectMeta {
    /// The object's name, unique per kind within its namespace.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// A prefix from which the server generates a unique name when `name` is empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub generate_name: String,
    /// The namespace of a namespaced object; empty for cluster-scoped kinds.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The unique id the server gives the object when it is created.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
    /// The version of the stored object (the store's modification revision), for optimistic
    /// concurrency: an update that names a stale one is rejected.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    /// A sequence number for the desired state, bumped by the server on every spec change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Labels: key/value pairs that selectors match.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations: key/value pairs for tools, not used for selection.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The objects this one depends on; the garbage collector deletes it after its owners.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub owner_references: Vec<OwnerReference>,
    /// Names that must be removed (by their controllers) before a deleted object goes away.
    #[serde(
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "crate::resources::exact_vec::deserialize"
    )]
    pub finalizers: Vec<String>,
    /// When the server created the object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<Time>,
    /// When deletion was requested; the object stays while finalizers remain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<Time>,
    /// The grace period, in seconds, that the deletion was requested with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
}

impl ObjectMeta {
    /// Metadata with just a name (for cluster-scoped objects).
    pub fn named(name: impl Into<String>) -> Self {
        ObjectMeta {
            name: name.into(),
            ..ObjectMeta::default()
        }
    }

    /// Metadata with a namespace and a name.
    pub fn namespaced(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectMeta {
            name: name.into(),
            namespace: namespace.into(),
            ..ObjectMeta::default()
        }
    }

    /// Adds a label (builder style).
    pub fn with_label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// The owner reference marked `controller: true`, if any.
    pub fn controller_ref(&self) -> Option<&OwnerReference> {
        self.owner_references
            .iter()
            .find(|r| r.controller == Some(true))
    }
}

/// A reference from an object to one that owns it (Kubernetes' `metav1.OwnerReference`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OwnerReference {
    /// The owner's `apiVersion`.
    pub api_version: String,
    /// The owner's kind.
    pub kind: String,
    /// The owner's name (in the same namespace as the owned object).
    pub name: String,
    /// The owner's uid.
    pub uid: String,
    /// Whether the owner is the managing controller (at most one reference may say so).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    /// Whether the owner's foreground deletion waits for this object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_are_omitted_and_names_are_camel_case() {
        let mut meta = ObjectMeta::namespaced("default", "web").with_label("app", "web");
        meta.resource_version = "42".into();
        meta.creation_timestamp = Some("2024-05-01T12:00:00Z".parse().unwrap());
        let json = serde_json::to_value(&meta).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "web",
                "namespace": "default",
                "resourceVersion": "42",
                "labels": {"app": "web"},
                "creationTimestamp": "2024-05-01T12:00:00Z",
            })
        );
        let back: ObjectMeta = serde_json::from_value(json).unwrap();
        assert_eq!(back, meta);
        assert_eq!(serde_json::to_string(&ObjectMeta::default()).unwrap(), "{}");
    }

    #[test]
    fn owner_references_and_controller_ref() {
        let json = serde_json::json!({
            "name": "web-abc",
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web", "uid": "u1",
                "controller": true, "blockOwnerDeletion": true
            }]
        });
        let meta: ObjectMeta = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(meta.controller_ref().map(|r| r.name.as_str()), Some("web"));
        assert_eq!(serde_json::to_value(&meta).unwrap(), json);
    }

    #[test]
    fn type_meta_group_and_version() {
        let core = TypeMeta::new("v1", "Pod");
        assert_eq!((core.group(), core.version()), ("", "v1"));
        let apps = TypeMeta::new("apps/v1", "Deployment");
        assert_eq!((apps.group(), apps.version()), ("apps", "v1"));
    }
}
