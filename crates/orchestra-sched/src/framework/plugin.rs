//! The plugin traits, one per extension point of a scheduling cycle, in the order they run:
//! [`QueueSortPlugin`], [`PreFilterPlugin`], [`FilterPlugin`], [`PostFilterPlugin`],
//! [`PreScorePlugin`], [`ScorePlugin`] (with its NormalizeScore step), [`ReservePlugin`]
//! (Reserve and Unreserve), [`PermitPlugin`], [`PreBindPlugin`], [`BindPlugin`],
//! [`PostBindPlugin`].
//!
//! A plugin is one type implementing [`Plugin`] (its name, and which extension points it
//! serves, through [`Plugin::extensions`]) and any of the extension traits. The scheduling
//! cycle (PreFilter to Permit) is synchronous and pure: plugins read the pod and the snapshot
//! and return decisions. The binding cycle (PreBind, Bind, PostBind) is async: it talks to the
//! API.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::{ApiHandle, ClusterEvent, CycleState, Framework, QueueingHint, Status};
use crate::snapshot::{ClusterSnapshot, NodeInfo, PodInfo};
use crate::unschedulable::Unschedulable;

/// The highest score a Score plugin gives after normalization.
pub const MAX_NODE_SCORE: i64 = 100;

/// A scheduler plugin. See the [module docs](self).
pub trait Plugin: Send + Sync + 'static {
    /// The plugin's name, as configuration files write it (`NodeResourcesFit`).
    fn name(&self) -> &'static str;

    /// The extension points this plugin serves: typically
    /// `Extensions::new().filter(self.clone()).score(self)`.
    fn extensions(self: Arc<Self>) -> Extensions;

    /// Whether `event` may make `pod` schedulable, for a pod this plugin rejected (at
    /// PreFilter, Filter or Permit): the queue moves the pod back only when one of the
    /// plugins that rejected it says [`QueueingHint::Queue`] (see [`super::hint`]). It must
    /// say Queue whenever the change could turn its rejection into an acceptance. The
    /// default says Queue for every change.
    fn queueing_hint(&self, pod: &PodInfo, event: &ClusterEvent<'_>) -> QueueingHint {
        let _ = (pod, event);
        QueueingHint::Queue
    }
}

/// The extension points one plugin serves (each an `Arc` of the same plugin).
#[derive(Clone, Default)]
pub struct Extensions {
    /// QueueSort.
    pub queue_sort: Option<Arc<dyn QueueSortPlugin>>,
    /// PreFilter.
    pub pre_filter: Option<Arc<dyn PreFilterPlugin>>,
    /// Filter.
    pub filter: Option<Arc<dyn FilterPlugin>>,
    /// PostFilter.
    pub post_filter: Option<Arc<dyn PostFilterPlugin>>,
    /// PreScore.
    pub pre_score: Option<Arc<dyn PreScorePlugin>>,
    /// Score and NormalizeScore.
    pub score: Option<Arc<dyn ScorePlugin>>,
    /// Reserve and Unreserve.
    pub reserve: Option<Arc<dyn ReservePlugin>>,
    /// Permit.
    pub permit: Option<Arc<dyn PermitPlugin>>,
    /// PreBind.
    pub pre_bind: Option<Arc<dyn PreBindPlugin>>,
    /// Bind.
    pub bind: Option<Arc<dyn BindPlugin>>,
    /// PostBind.
    pub post_bind: Option<Arc<dyn PostBindPlugin>>,
}

macro_rules! setter {
    ($($field:ident: $trait:ident),* $(,)?) => {
        impl Extensions {
            /// No extension point.
            pub fn new() -> Self {
                Extensions::default()
            }
            $(
                #[doc = concat!("Serve the `", stringify!($field), "` extension point.")]
                pub fn $field(mut self, plugin: Arc<dyn $trait>) -> Self {
                    self.$field = Some(plugin);
                    self
                }
            )*
        }
    };
}

setter!(
    queue_sort: QueueSortPlugin,
    pre_filter: PreFilterPlugin,
    filter: FilterPlugin,
    post_filter: PostFilterPlugin,
    pre_score: PreScorePlugin,
    score: ScorePlugin,
    reserve: ReservePlugin,
    permit: PermitPlugin,
    pre_bind: PreBindPlugin,
    bind: BindPlugin,
    post_bind: PostBindPlugin,
);

/// A pod waiting in the scheduling queue.
#[derive(Clone, Debug)]
pub struct QueuedPodInfo {
    /// The pod.
    pub pod: Arc<PodInfo>,
    /// The order in which pods entered the queue (earlier is smaller).
    pub sequence: u64,
    /// How many times scheduling was attempted.
    pub attempts: u32,
}

/// QueueSort: the order of the active queue (one per profile set).
pub trait QueueSortPlugin: Plugin {
    /// Whether `a` is scheduled before `b`.
    fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool;
}

/// PreFilter: checks about the pod alone or the whole cluster, once per cycle; typically
/// precomputes what Filter needs into the [`CycleState`]. Returning [`Status::skip`] skips
/// the plugin's Filter for this pod; a rejection rejects every node.
pub trait PreFilterPlugin: Plugin {
    /// Run PreFilter.
    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
    ) -> Status;
}

/// Filter: whether the pod may run on one node. Called for many nodes per cycle: do no
/// allocation on the success path.
pub trait FilterPlugin: Plugin {
    /// Run Filter.
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;

    /// Whether [`FilterPlugin::filter`] succeeds on this node, answered without building a
    /// [`Status`] where the plugin can. The Filter phase asks this of every node it visits
    /// and calls `filter` only on the nodes that fail (for their reasons), so an override
    /// must agree with `filter` exactly.
    fn passes(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> bool {
        self.filter(state, pod, node).is_success()
    }
}

/// What a PostFilter plugin proposes for a pod no node accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PostFilterResult {
    /// The node the pod is nominated to once victims leave it.
    pub nominated_node: Option<String>,
    /// The pods (`namespace/name`) to evict for that.
    pub victims: Vec<String>,
}

/// PostFilter: runs when no node passed the filters (preemption lives here). The first
/// plugin returning success ends the phase. `framework` runs the profile's filters on
/// what-if snapshots ([`Framework::check_node`]).
pub trait PostFilterPlugin: Plugin {
    /// Run PostFilter.
    fn post_filter(
        &self,
        framework: &Framework,
        state: &CycleState,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
        rejection: &Unschedulable,
    ) -> (Option<PostFilterResult>, Status);
}

/// PreScore: once per cycle before scoring, with the feasible nodes. [`Status::skip`] skips
/// the plugin's Score for this pod.
pub trait PreScorePlugin: Plugin {
    /// Run PreScore.
    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
        nodes: &[&NodeInfo],
    ) -> Status;
}

/// Score: rank one feasible node. Then NormalizeScore ([`ScorePlugin::normalize`]) maps the
/// plugin's scores of all feasible nodes to `0..=MAX_NODE_SCORE`, before weights apply.
pub trait ScorePlugin: Plugin {
    /// Score one node.
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status>;

    /// Score every feasible node (`scores[i]` for `nodes[i]`): [`ScorePlugin::score`] on
    /// each, stopping at the first error. A plugin may override it with a loop that does the
    /// same without a call per node; the result must be the same.
    fn score_nodes(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        scores: &mut [i64],
    ) -> Result<(), Status> {
        for (score, node) in scores.iter_mut().zip(nodes) {
            *score = self.score(state, pod, node)?;
        }
        Ok(())
    }

    /// NormalizeScore: adjust the scores of all feasible nodes (`scores[i]` is `nodes[i]`'s).
    /// The default leaves them as they are (for plugins already scoring in `0..=100`).
    fn normalize(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        scores: &mut [i64],
    ) -> Status {
        let _ = (state, pod, nodes, scores);
        Status::success()
    }
}

/// Reserve and Unreserve: claim per-node state for the pod once a node is chosen, and release
/// it if a later step fails. Unreserve must be idempotent.
pub trait ReservePlugin: Plugin {
    /// Run Reserve.
    fn reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status;
    /// Run Unreserve.
    fn unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str);
}

/// What a Permit plugin decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PermitDecision {
    /// Bind now.
    Allow,
    /// Do not bind; the pod is unreserved and goes back to the queue.
    Deny(Status),
    /// Hold the pod until allowed, or deny it after the timeout (gangs use this).
    Wait(Duration),
}

/// Permit: the last word before binding. The pod is already assumed on `node` in
/// `cluster` (it holds its room). A pod told to wait is asked again whenever another pod is
/// placed, until it is allowed, denied, or its wait times out.
pub trait PermitPlugin: Plugin {
    /// Run Permit.
    fn permit(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &str,
        cluster: &ClusterSnapshot,
    ) -> PermitDecision;

    /// Whether the waiting pod `waiting` must be rejected along with `rejected`, a waiting
    /// pod that timed out or was denied (the members of a gang). The default: no.
    fn shares_fate(&self, rejected: &PodInfo, waiting: &PodInfo) -> bool {
        let _ = (rejected, waiting);
        false
    }
}

/// PreBind: work before the binding (attach volumes, ...), through `api`.
#[async_trait]
pub trait PreBindPlugin: Plugin {
    /// Run PreBind.
    async fn pre_bind(
        &self,
        api: &dyn ApiHandle,
        state: &CycleState,
        pod: &PodInfo,
        node: &str,
    ) -> Status;
}

/// Bind: write the binding through `api`. Binders run in order until one does not return
/// [`Status::skip`]; [`crate::plugins::DefaultBinder`] is the default one.
#[async_trait]
pub trait BindPlugin: Plugin {
    /// Run Bind.
    async fn bind(
        &self,
        api: &dyn ApiHandle,
        state: &CycleState,
        pod: &PodInfo,
        node: &str,
    ) -> Status;
}

/// PostBind: informational, after a successful bind.
#[async_trait]
pub trait PostBindPlugin: Plugin {
    /// Run PostBind.
    async fn post_bind(&self, api: &dyn ApiHandle, state: &CycleState, pod: &PodInfo, node: &str);
}
