//! The plugin framework: kube-scheduler's extension points as traits ([`plugin`]), per-cycle
//! data ([`CycleState`]), plugin results ([`Status`]), profiles of plugins per scheduler name
//! ([`Profile`]) and the runtime that runs them ([`Framework`], [`Profiles`]).
//!
//! # Layout
//! - [`plugin`]: [`Plugin`] and one trait per extension point.
//! - [`hint`]: [`QueueingHint`], [`ClusterEvent`]: which changes may help a rejected pod.
//! - [`status`]: [`Status`], its [`Code`] and [`Reasons`].
//! - [`cycle_state`]: [`CycleState`] and [`StateData`].
//! - [`handle`]: [`ApiHandle`], the API as the binding cycle's plugins see it.
//! - [`node_set`]: [`NodeSet`], the nodes a PreFilter leaves possible.
//! - [`profile`]: [`Profile`], [`ExtensionPoint`].
//! - [`runtime`]: [`Framework`], [`Profiles`], [`num_feasible_nodes_to_find`].

pub mod cycle_state;
pub mod handle;
pub mod hint;
pub mod node_set;
pub mod plugin;
pub mod profile;
pub mod runtime;
pub mod status;

pub use cycle_state::{CycleState, StateData};
pub use handle::ApiHandle;
pub use hint::{ClusterEvent, NodeChange, QueueingHint};
pub use node_set::NodeSet;
pub use plugin::*;
pub use profile::{DEFAULT_SCHEDULER_NAME, ExtensionPoint, Profile, ProfileError};
pub use runtime::{
    Framework, NodeChecker, PermitOutcome, Profiles, ScheduleOutcome, num_feasible_nodes_to_find,
    scheduler_name,
};
pub use status::{Code, Reasons, Status};
