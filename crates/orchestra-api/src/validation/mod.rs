//! Validation with Kubernetes-style field errors:
//! `spec.template.spec.containers[0].image: Required value`,
//! `metadata.name: Invalid value: "Foo_Bar": a lowercase RFC 1123 subdomain must consist of ...`.
//!
//! A check returns an [`ErrorList`] of [`FieldError`]s, each naming the field by its
//! [`FieldPath`]; an empty list means valid. [`names`] holds the syntax checks (DNS names,
//! label keys and values, port names, IPs) that return Kubernetes' messages. The per-kind
//! checks are the `validate_*` functions here, which the built-in kinds'
//! [`Resource`](crate::Resource) implementations call.

mod apps;
mod config;
mod error;
mod event;
mod lease;
mod meta;
pub mod names;
mod node;
mod pod;
mod pod_group;
mod rbac;
mod revision;
mod security;
mod service;
mod split;
mod stateful_set;
mod volume;

pub use apps::{
    validate_daemon_set, validate_deployment, validate_job, validate_job_update,
    validate_replica_set, validate_selector_unchanged,
};
pub use config::{
    MAX_DATA_BYTES, validate_config_map, validate_config_map_update, validate_secret,
    validate_secret_update,
};
pub use error::{ErrorList, ErrorType, FieldError, FieldPath};
pub use event::validate_event;
pub use lease::validate_lease;
pub use meta::{
    validate_annotations, validate_label_selector, validate_labels, validate_object_meta,
    validate_object_meta_update,
};
pub use node::{validate_node, validate_taint};
pub use pod::{validate_pod_spec, validate_pod_template, validate_pod_update};
pub use pod_group::validate_pod_group;
pub use rbac::{
    validate_cluster_role, validate_cluster_role_binding, validate_role, validate_role_binding,
    validate_role_ref_unchanged,
};
pub use revision::{validate_controller_revision, validate_controller_revision_update};
pub use security::MAX_UID;
pub use service::{validate_endpoints, validate_service, validate_service_update};
pub use split::validate_traffic_split;
pub use stateful_set::{validate_stateful_set, validate_stateful_set_update};
