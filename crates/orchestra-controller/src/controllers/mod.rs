//! The built-in controllers. Each keeps its decisions in a pure `plan` module (state in, exact
//! actions out) and carries them out through a [`Client`](orchestra_api::Client) in its
//! reconciler.
//!
//! # Layout
//! - [`replica_set`]: pods to match `spec.replicas`, adoption and release, status.
//! - [`deployment`]: rolling and recreating updates through replica sets, revisions.
//! - [`endpoints`]: the ready and not-ready addresses of each selector Service's pods.
//! - [`garbage_collector`]: deletes objects whose owners are all gone.
//! - [`namespace`]: empties a deleted namespace, then lets it go.
//! - [`service_account`]: the `default` ServiceAccount in every namespace.
//! - [`root_ca`]: the `kube-root-ca.crt` ConfigMap (the API server's CA) in every namespace.
//! - [`node_lifecycle`]: node health from heartbeats, not-ready/unreachable taints, eviction.
//! - [`daemon_set`]: one pod per eligible node, rolling or on-delete updates.
//! - [`stateful_set`]: pods with stable names and ordinals, created, scaled and updated in
//!   order.
//! - [`history`]: the ControllerRevision history of daemon and stateful sets, and rollbacks.
//! - [`job`]: runs a job's pods to completion, with backoff, limits and a deadline.
//! - [`ttl_after_finished`]: deletes finished jobs (and their pods) after their TTL.
//! - [`clock`]: wall-clock time that follows tokio's, for decisions on timestamps.
//! - [`events`]: the events the controllers record (sources, reasons, wording).
//! - [`pods`]: readiness, activity and deletion order of pods, shared by the controllers.
//! - [`expectations`]: waiting for the cache to show a controller's own writes.
//! - `status`: status writes that survive a cache one event behind (one fresh read on
//!   `Conflict`).
//! - `revision_writes`: carrying out a history decision.
//! - `pod_writes`: the pod creations and deletions of the workload controllers, with their
//!   expectations.

pub mod clock;
pub mod daemon_set;
pub mod deployment;
pub mod endpoints;
pub mod events;
pub mod expectations;
pub mod garbage_collector;
pub mod history;
pub mod job;
pub mod namespace;
pub mod node_lifecycle;
mod owned;
pub(crate) mod pod_writes;
pub mod pods;
pub mod replica_set;
pub(crate) mod revision_writes;
pub mod root_ca;
pub mod service_account;
pub mod stateful_set;
pub(crate) mod status;
pub mod ttl_after_finished;

pub use daemon_set::DaemonSetController;
pub use deployment::DeploymentController;
pub use endpoints::EndpointsController;
pub use garbage_collector::GarbageCollector;
pub use job::JobController;
pub use namespace::NamespaceController;
pub use node_lifecycle::NodeLifecycleController;
pub use replica_set::ReplicaSetController;
pub use root_ca::RootCaPublisher;
pub use service_account::ServiceAccountController;
pub use stateful_set::StatefulSetController;
pub use ttl_after_finished::TtlAfterFinishedController;
