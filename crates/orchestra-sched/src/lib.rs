//! orchestra's scheduler: the [`Scheduler`] trait (place one pod on a snapshot of the
//! cluster), a plugin framework with kube-scheduler's extension points, the default plugins
//! with Kubernetes' semantics, and the [`ClusterSnapshot`] they read.
//!
//! Scheduling decisions are pure: a pod and a snapshot in, a [`Placement`] or an
//! [`Unschedulable`] (every node's reason, summarised with counts) out. The caller assumes the
//! pod onto its node in the snapshot before the next pod.
//!
//! ```
//! use orchestra_api::Quantity;
//! use orchestra_api::meta::ObjectMeta;
//! use orchestra_api::resources::{Container, Node, NodeStatus, Pod, PodSpec, ResourceRequirements};
//! use orchestra_sched::{ClusterSnapshot, Framework, PodInfo, Scheduler, plugins};
//!
//! let node = |name: &str, cpu: &str| Node {
//!     metadata: ObjectMeta::named(name),
//!     status: Some(NodeStatus {
//!         allocatable: [("cpu".to_owned(), cpu.parse::<Quantity>().unwrap()),
//!                       ("memory".to_owned(), "8Gi".parse().unwrap()),
//!                       ("pods".to_owned(), "110".parse().unwrap())].into(),
//!         ..NodeStatus::default()
//!     }),
//!     ..Node::default()
//! };
//! let pod = |name: &str, cpu: &str| Pod {
//!     metadata: ObjectMeta::namespaced("default", name),
//!     spec: PodSpec {
//!         containers: vec![Container {
//!             name: "app".into(),
//!             resources: ResourceRequirements {
//!                 requests: [("cpu".to_owned(), cpu.parse().unwrap())].into(),
//!                 ..ResourceRequirements::default()
//!             },
//!             ..Container::default()
//!         }],
//!         ..PodSpec::default()
//!     },
//!     status: None,
//! };
//!
//! let mut cluster = ClusterSnapshot::from_objects([node("small", "1"), node("big", "4")], [])?;
//! let scheduler = Framework::new(plugins::default_profile());
//!
//! // LeastAllocated prefers the emptier node.
//! let placement = scheduler.schedule(&pod("a", "500m"), &cluster).unwrap();
//! assert_eq!(&*placement.node, "big");
//! cluster.assume(PodInfo::new(pod("a", "500m"))?.into(), &placement.node)?;
//!
//! // Nothing offers 8 CPUs: the reason is counted per node.
//! let err = scheduler.schedule(&pod("b", "8"), &cluster).unwrap_err();
//! assert_eq!(err.to_string(), "0/2 nodes are available: 2 Insufficient cpu.");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - [`scheduler`]: the [`Scheduler`] trait.
//! - [`unschedulable`]: [`Placement`], [`Unschedulable`] and its per-node reasons.
//! - [`snapshot`]: [`ClusterSnapshot`], [`NodeInfo`], [`PodInfo`].
//! - [`resources`]: [`Resources`] and a pod's requests as integers.
//! - [`framework`]: the plugin traits per extension point, [`CycleState`], [`Status`],
//!   [`Profile`], and the runtime ([`Framework`], [`Profiles`]).
//! - [`plugins`]: the default plugins (DefaultPreemption, Coscheduling and DefaultBinder
//!   among them) and the [`plugins::Registry`] of plugins by name.
//! - [`config`]: the YAML configuration file ([`config::SchedulerConfig`]).
//! - [`queue`]: [`SchedulingQueue`], the active heap, backoff and unschedulable pods.
//! - [`run`]: [`run::SchedulerLoop`], the scheduling loop over a `Client`.
//! - [`cache`]: [`cache::SchedulerCache`], the snapshot kept by watch events and assumed pods.
//! - [`gang_status`]: [`gang_status::GangTracker`], gangs' members as the loop sees them, and
//!   the PodGroup status they add up to.

pub mod cache;
pub mod config;
pub mod framework;
pub mod gang_status;
pub mod plugins;
pub mod queue;
pub mod resources;
pub mod run;
pub mod scheduler;
pub mod snapshot;
pub mod unschedulable;

pub use framework::{
    CycleState, Framework, PermitOutcome, Plugin, Profile, Profiles, ScheduleOutcome, Status,
};
pub use queue::SchedulingQueue;
pub use resources::Resources;
pub use scheduler::Scheduler;
pub use snapshot::{ClusterSnapshot, NodeInfo, PodInfo, SnapshotError};
pub use unschedulable::{NodeRejection, Placement, Unschedulable};
