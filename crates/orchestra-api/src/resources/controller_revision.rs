//! [`ControllerRevision`] (`apps/v1`): an immutable snapshot of a controller's template, the
//! history a DaemonSet (or a StatefulSet) keeps so that a rollout can be undone.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::resource::Resource;
use crate::validation::{self, ErrorList};

/// A revision of a controller's state (`apps/v1`, `ControllerRevision`, namespaced).
///
/// `data` is what the owning controller needs to go back to this revision. A DaemonSet's is
/// `{"spec": {"template": TEMPLATE, "$patch": "replace"}}`, as Kubernetes stores it. `data` never
/// changes after creation; `revision` may be raised when an old revision becomes current again.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ControllerRevision {
    /// Standard object metadata; the owner reference names the controller.
    pub metadata: ObjectMeta,
    /// The state this revision captures (any JSON; immutable).
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
    /// The revision's number: higher is newer.
    pub revision: i64,
}

impl Resource for ControllerRevision {
    const API_VERSION: &'static str = "apps/v1";
    const KIND: &'static str = "ControllerRevision";
    const PLURAL: &'static str = "controllerrevisions";
    const NAMESPACED: bool = true;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_controller_revision(self)
    }

    fn validate_update_fields(&self, old: &Self) -> ErrorList {
        validation::validate_controller_revision_update(self, old)
    }
}
