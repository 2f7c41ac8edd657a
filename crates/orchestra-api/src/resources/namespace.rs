//! [`Namespace`] (`v1`, cluster-scoped): a scope for the names of namespaced objects.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::resource::{NameRule, Resource};

/// The finalizer the registry puts in every new namespace's `spec.finalizers`: the
/// namespace controller removes it once the namespace's contents are deleted, and only then is
/// a deleted namespace removed.
pub const FINALIZER_KUBERNETES: &str = "kubernetes";

/// The namespaces that exist from the start and cannot be deleted.
pub const SYSTEM_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-node-lease"];

/// A namespace (`v1`, `Namespace`, cluster-scoped). Its name is a DNS label.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Namespace {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The desired state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<NamespaceSpec>,
    /// The observed state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<NamespaceStatus>,
}

impl Resource for Namespace {
    const API_VERSION: &'static str = "v1";
    const KIND: &'static str = "Namespace";
    const PLURAL: &'static str = "namespaces";
    const NAMESPACED: bool = false;
    const NAME_RULE: NameRule = NameRule::Dns1123Label;
    const SELECTABLE_FIELDS: &'static [&'static str] = &["status.phase"];

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn default_fields(&mut self) {
        let status = self.status.get_or_insert_with(NamespaceStatus::default);
        status.phase.get_or_insert(NamespacePhase::Active);
    }

    fn prepare_for_create(&mut self) {
        let spec = self.spec.get_or_insert_with(NamespaceSpec::default);
        if !spec.finalizers.iter().any(|f| f == FINALIZER_KUBERNETES) {
            spec.finalizers.push(FINALIZER_KUBERNETES.to_owned());
        }
        self.status
            .get_or_insert_with(NamespaceStatus::default)
            .phase = Some(NamespacePhase::Active);
    }

    fn prepare_for_update(&mut self, old: &Self) {
        // A manifest applied again has no `spec`: it must not drop the finalizer that holds
        // the namespace until its contents are deleted. A `spec` given (by the namespace
        // controller, or a `/finalize` request) replaces the finalizers.
        if self.spec.is_none() {
            self.spec.clone_from(&old.spec);
        }
    }

    fn prepare_for_delete(&mut self) {
        self.status
            .get_or_insert_with(NamespaceStatus::default)
            .phase = Some(NamespacePhase::Terminating);
    }

    fn holds_deletion(&self) -> bool {
        self.spec.as_ref().is_some_and(|s| !s.finalizers.is_empty())
    }

    fn field_value(&self, field: &str) -> Option<String> {
        match field {
            "status.phase" => Some(
                match self.status.as_ref().and_then(|s| s.phase) {
                    Some(NamespacePhase::Active) => "Active",
                    Some(NamespacePhase::Terminating) => "Terminating",
                    None => "",
                }
                .to_owned(),
            ),
            _ => None,
        }
    }
}

/// The desired state of a namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NamespaceSpec {
    /// Finalizers that must be removed before the namespace goes away.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
}

/// The observed state of a namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NamespaceStatus {
    /// `Active` or `Terminating`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<NamespacePhase>,
}

/// The lifecycle phase of a namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NamespacePhase {
    /// In use; objects may be created in it.
    Active,
    /// Being deleted; no new objects may be created in it.
    Terminating,
}
