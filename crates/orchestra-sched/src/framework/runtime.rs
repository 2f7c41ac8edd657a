//! [`Framework`]: runs one [`Profile`]'s plugins over a pod and a snapshot (the scheduling
//! cycle, and the binding cycle's steps), and [`Profiles`]: one framework per scheduler name.
//!
//! The Filter phase visits nodes round-robin from where the previous cycle stopped, and stops
//! once it has found [`num_feasible_nodes_to_find`] feasible nodes, as kube-scheduler does.
//! Equal best scores are broken at random with a seeded generator, so runs repeat.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use orchestra_api::resources::Pod;

use super::plugin::{
    FilterPlugin, MAX_NODE_SCORE, PermitDecision, PostFilterResult, QueuedPodInfo, ScorePlugin,
};
use super::profile::{DEFAULT_SCHEDULER_NAME, Profile};
use super::{ApiHandle, ClusterEvent, Code, CycleState, QueueingHint, Status};
use crate::scheduler::Scheduler;
use crate::snapshot::{ClusterSnapshot, NodeInfo, PodInfo};
use crate::unschedulable::{NodeRejections, Placement, Unschedulable};

/// Below this many nodes, the Filter phase looks at every node.
pub const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never drops below this.
pub const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

/// How many feasible nodes the Filter phase looks for before it stops: every node below 100
/// nodes or at 100%; otherwise `percentage` of the nodes (0 means kube-scheduler's adaptive
/// `50 - nodes/125`, at least 5), and at least 100.
pub fn num_feasible_nodes_to_find(percentage: u32, num_nodes: usize) -> usize {
    if num_nodes < MIN_FEASIBLE_NODES_TO_FIND || percentage >= 100 {
        return num_nodes;
    }
    let percentage = if percentage == 0 {
        50usize
            .saturating_sub(num_nodes / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE)
    } else {
        percentage as usize
    };
    (num_nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// A successful scheduling cycle: the placement, and the cycle's state for Reserve, Permit
/// and the binding cycle.
#[derive(Debug)]
pub struct ScheduleOutcome {
    /// Where the pod goes.
    pub placement: Placement,
    /// What the plugins computed this cycle.
    pub state: CycleState,
}

/// What the Permit plugins decided together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PermitOutcome {
    /// Every plugin allowed the pod.
    Allow,
    /// A plugin denied it (the status names the plugin).
    Deny(Status),
    /// Some plugins asked to wait: `(plugin, timeout)` for each; the pod binds when all of
    /// them allow it, and is denied when one times out.
    Wait(Vec<(&'static str, Duration)>),
}

/// Runs one profile; see the [module docs](self).
pub struct Framework {
    profile: Profile,
    /// PreFilter index of each Filter plugin (to skip Filters whose PreFilter said skip).
    filter_pre: Vec<Option<usize>>,
    /// PreScore index of each Score plugin.
    score_pre: Vec<Option<usize>>,
    next_start: AtomicUsize,
    rng: AtomicU64,
}

impl std::fmt::Debug for Framework {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framework")
            .field("profile", &self.profile)
            .finish()
    }
}

impl Framework {
    /// A framework running `profile`.
    pub fn new(profile: Profile) -> Self {
        let filter_pre = profile
            .filter
            .iter()
            .map(|f| profile.pre_filter.iter().position(|p| p.name() == f.name()))
            .collect();
        let score_pre = profile
            .score
            .iter()
            .map(|(s, _)| profile.pre_score.iter().position(|p| p.name() == s.name()))
            .collect();
        Framework {
            rng: AtomicU64::new(profile.seed),
            profile,
            filter_pre,
            score_pre,
            next_start: AtomicUsize::new(0),
        }
    }

    /// The profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// QueueSort: whether `a` goes before `b` (by the profile's QueueSort plugin; by arrival
    /// when it has none).
    pub fn less(&self, a: &QueuedPodInfo, b: &QueuedPodInfo) -> bool {
        match &self.profile.queue_sort {
            Some(plugin) => plugin.less(a, b),
            None => a.sequence < b.sequence,
        }
    }

    /// The scheduling cycle up to the choice of a node: PreFilter, Filter (PostFilter on
    /// failure), PreScore, Score, NormalizeScore, weights, selection.
    pub fn schedule_pod(
        &self,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
    ) -> Result<ScheduleOutcome, Unschedulable> {
        let num_nodes = cluster.len();
        if num_nodes == 0 {
            return Err(Unschedulable::whole_pod(
                pod.key(),
                0,
                "Framework",
                "no nodes available to schedule pods",
            ));
        }
        let mut state = CycleState::new();
        let error = |status: Status| Unschedulable {
            pod: pod.key().to_owned(),
            num_nodes,
            error: Some(format!("{}: {}", status.plugin(), status.message()).into()),
            ..Unschedulable::default()
        };

        // PreFilter.
        let mut skipped_pre: u64 = 0;
        for (i, plugin) in self.profile.pre_filter.iter().enumerate() {
            let status = plugin.pre_filter(&mut state, pod, cluster);
            match status.code() {
                Code::Success => {}
                Code::Skip => skipped_pre |= 1 << i,
                Code::Unschedulable | Code::UnschedulableAndUnresolvable => {
                    return Err(Unschedulable::whole_pod(
                        pod.key(),
                        num_nodes,
                        plugin.name(),
                        status.message(),
                    ));
                }
                Code::Error | Code::Wait => return Err(error(status.with_plugin(plugin.name()))),
            }
        }
        let filters: Vec<&dyn FilterPlugin> = self
            .profile
            .filter
            .iter()
            .zip(&self.filter_pre)
            .filter(|(_, pre)| pre.is_none_or(|i| skipped_pre & (1 << i) == 0))
            .map(|(f, _)| &**f)
            .collect();

        // Filter, round-robin from where the last cycle stopped, until enough are found; only
        // the nodes the PreFilter plugins left possible, if they restricted them.
        let to_find =
            num_feasible_nodes_to_find(self.profile.percentage_of_nodes_to_score, num_nodes);
        let start = self.next_start.load(Ordering::Relaxed) % num_nodes;
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(to_find.min(num_nodes));
        // Nodes passed over in round-robin order (visited or skipped as impossible).
        let mut processed = num_nodes;
        // A search over every node keeps its rejections (by node index): if it finds no
        // node, they are the explanation, in the order the failure path below would find
        // them. A search narrowed by PreFilter keeps none: the failure path filters every
        // node again to explain itself.
        let narrowed = state.candidate_nodes().is_some();
        // Named by the snapshot's table, taken at the first rejection (a cycle that rejects
        // nothing does not touch its reference count).
        let mut rejected = NodeRejections::default();
        let mut visit = |index: usize| -> Result<bool, Unschedulable> {
            let node = cluster.node(index);
            match run_filters_nominated(&filters, &state, pod, cluster, node) {
                None => {
                    feasible.push(node);
                    Ok(feasible.len() >= to_find)
                }
                Some((plugin, status)) if status.is_rejected() => {
                    if !narrowed {
                        // Recorded as the final rejections right away (no second pass
                        // converting them); a run of nodes rejected alike costs nothing
                        // per node but the comparison (see `NodeRejections`).
                        if rejected.is_empty() {
                            rejected = NodeRejections::new(cluster.node_names());
                        }
                        rejected.push_index(index, plugin, status.code(), status.into_reasons());
                    }
                    Ok(false)
                }
                Some((plugin, status)) => Err(error(status.with_plugin(plugin))),
            }
        };
        match state.candidate_nodes() {
            None => {
                for (n, index) in (start..num_nodes).chain(0..start).enumerate() {
                    if visit(index)? {
                        processed = n + 1;
                        break;
                    }
                }
            }
            Some(candidates) => {
                let mut next = candidates.next_from(start);
                let mut wrapped = false;
                loop {
                    let index = match next {
                        Some(i) if wrapped && i >= start => break,
                        Some(i) => i,
                        None if wrapped => break,
                        None => {
                            wrapped = true;
                            next = candidates.next_from(0);
                            continue;
                        }
                    };
                    if visit(index)? {
                        processed = (index + num_nodes - start) % num_nodes + 1;
                        break;
                    }
                    next = candidates.next_from(index + 1);
                }
            }
        }
        self.next_start
            .store((start + processed) % num_nodes, Ordering::Relaxed);

        if feasible.is_empty() {
            let nodes = if narrowed {
                let mut nodes = NodeRejections::new(cluster.node_names());
                for index in (start..num_nodes).chain(0..start) {
                    let node = cluster.node(index);
                    match run_filters_nominated(&filters, &state, pod, cluster, node) {
                        None => {}
                        Some((plugin, status)) if status.is_rejected() => {
                            nodes.push_index(index, plugin, status.code(), status.into_reasons());
                        }
                        Some((plugin, status)) => return Err(error(status.with_plugin(plugin))),
                    }
                }
                nodes
            } else {
                // Every node was visited and rejected, in round-robin order.
                rejected
            };
            let mut rejection = Unschedulable {
                pod: pod.key().to_owned(),
                num_nodes,
                nodes,
                ..Unschedulable::default()
            };
            rejection.post_filter = self
                .run_post_filter(&state, pod, cluster, &rejection)
                .map(Box::new);
            return Err(rejection);
        }
        let evaluated_nodes = processed;
        let feasible_nodes = feasible.len();
        if feasible_nodes == 1 {
            return Ok(ScheduleOutcome {
                placement: Placement {
                    node: feasible[0].name().clone(),
                    evaluated_nodes,
                    feasible_nodes,
                    score: 0,
                },
                state,
            });
        }

        // PreScore.
        let mut skipped_pre: u64 = 0;
        for (i, plugin) in self.profile.pre_score.iter().enumerate() {
            let status = plugin.pre_score(&mut state, pod, cluster, &feasible);
            match status.code() {
                Code::Success => {}
                Code::Skip => skipped_pre |= 1 << i,
                _ => return Err(error(status.with_plugin(plugin.name()))),
            }
        }

        // Score, NormalizeScore, weights.
        let mut totals = vec![0i64; feasible_nodes];
        let mut scores = vec![0i64; feasible_nodes];
        for ((plugin, weight), pre) in self.profile.score.iter().zip(&self.score_pre) {
            if pre.is_some_and(|i| skipped_pre & (1 << i) != 0) {
                continue;
            }
            score_all(&**plugin, &state, pod, &feasible, &mut scores).map_err(&error)?;
            for (total, score) in totals.iter_mut().zip(&scores) {
                *total += score * weight;
            }
        }

        // Select: the best total, ties broken uniformly at random (reservoir sampling).
        // One draw from the shared generator per cycle; the ties use a local one.
        let mut rng = self.next_random();
        let mut best = 0;
        let mut ties = 1u64;
        for i in 1..feasible_nodes {
            if totals[i] > totals[best] {
                best = i;
                ties = 1;
            } else if totals[i] == totals[best] {
                ties += 1;
                if splitmix(&mut rng).is_multiple_of(ties) {
                    best = i;
                }
            }
        }
        Ok(ScheduleOutcome {
            placement: Placement {
                node: feasible[best].name().clone(),
                evaluated_nodes,
                feasible_nodes,
                score: totals[best],
            },
            state,
        })
    }

    /// Run every Filter plugin on one node, regardless of early stopping: the first rejection
    /// (as `(plugin, status)`), or `None` if the node is feasible. Used by tests and
    /// preemption to check a node on its own.
    pub fn check_node(
        &self,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
        node: &NodeInfo,
    ) -> Option<(&'static str, Status)> {
        match self.node_checker(pod, cluster) {
            Ok(checker) => checker.check(pod, cluster, node),
            Err(rejection) => Some(rejection),
        }
    }

    /// PreFilter once for `pod` on `cluster`, then check any number of nodes (or what-if
    /// copies of nodes) with [`NodeChecker::check`]; a PreFilter rejection is returned as
    /// `(plugin, status)`. Preemption uses it when no plugin looks beyond the node.
    pub fn node_checker(
        &self,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
    ) -> Result<NodeChecker<'_>, (&'static str, Status)> {
        let mut state = CycleState::new();
        let mut skipped_pre: u64 = 0;
        for (i, plugin) in self.profile.pre_filter.iter().enumerate() {
            let status = plugin.pre_filter(&mut state, pod, cluster);
            if status.is_skip() {
                skipped_pre |= 1 << i;
            } else if !status.is_success() {
                return Err((plugin.name(), status));
            }
        }
        let filters: Vec<&dyn FilterPlugin> = self
            .profile
            .filter
            .iter()
            .zip(&self.filter_pre)
            .filter(|(_, pre)| pre.is_none_or(|i| skipped_pre & (1 << i) == 0))
            .map(|(f, _)| &**f)
            .collect();
        Ok(NodeChecker { state, filters })
    }

    /// PostFilter: the first plugin that succeeds proposes a nomination.
    fn run_post_filter(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
        rejection: &Unschedulable,
    ) -> Option<PostFilterResult> {
        for plugin in &self.profile.post_filter {
            let (result, status) = plugin.post_filter(self, state, pod, cluster, rejection);
            if status.is_success() {
                return result;
            }
        }
        None
    }

    /// Reserve on every plugin in order; if one fails, Unreserve runs on all of them (in
    /// reverse) and its status is returned.
    pub fn run_reserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) -> Status {
        for plugin in &self.profile.reserve {
            let status = plugin.reserve(state, pod, node);
            if !status.is_success() {
                self.run_unreserve(state, pod, node);
                return status.with_plugin(plugin.name());
            }
        }
        Status::success()
    }

    /// Unreserve on every Reserve plugin, in reverse order.
    pub fn run_unreserve(&self, state: &mut CycleState, pod: &PodInfo, node: &str) {
        for plugin in self.profile.reserve.iter().rev() {
            plugin.unreserve(state, pod, node);
        }
    }

    /// Permit on every plugin: the first denial wins; otherwise the waits, if any.
    pub fn run_permit(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &str,
        cluster: &ClusterSnapshot,
    ) -> PermitOutcome {
        let mut waits = Vec::new();
        for plugin in &self.profile.permit {
            match plugin.permit(state, pod, node, cluster) {
                PermitDecision::Allow => {}
                PermitDecision::Deny(status) => {
                    return PermitOutcome::Deny(status.with_plugin(plugin.name()));
                }
                PermitDecision::Wait(timeout) => waits.push((plugin.name(), timeout)),
            }
        }
        if waits.is_empty() {
            PermitOutcome::Allow
        } else {
            PermitOutcome::Wait(waits)
        }
    }

    /// Whether a waiting pod must be rejected along with another (a Permit plugin says so;
    /// see [`PermitPlugin::shares_fate`](super::PermitPlugin::shares_fate)).
    pub fn shares_fate(&self, rejected: &PodInfo, waiting: &PodInfo) -> bool {
        self.profile
            .permit
            .iter()
            .any(|p| p.shares_fate(rejected, waiting))
    }

    /// PreBind on every plugin; the first failure stops.
    pub async fn run_pre_bind(
        &self,
        api: &dyn ApiHandle,
        state: &CycleState,
        pod: &PodInfo,
        node: &str,
    ) -> Status {
        for plugin in &self.profile.pre_bind {
            let status = plugin.pre_bind(api, state, pod, node).await;
            if !status.is_success() {
                return status.with_plugin(plugin.name());
            }
        }
        Status::success()
    }

    /// Bind: binders in order until one does not skip. A profile without a binder that takes
    /// the pod is an error.
    pub async fn run_bind(
        &self,
        api: &dyn ApiHandle,
        state: &CycleState,
        pod: &PodInfo,
        node: &str,
    ) -> Status {
        for plugin in &self.profile.bind {
            let status = plugin.bind(api, state, pod, node).await;
            if !status.is_skip() {
                return status.with_plugin(plugin.name());
            }
        }
        Status::error("no bind plugin bound the pod")
    }

    /// PostBind on every plugin.
    pub async fn run_post_bind(
        &self,
        api: &dyn ApiHandle,
        state: &CycleState,
        pod: &PodInfo,
        node: &str,
    ) {
        for plugin in &self.profile.post_bind {
            plugin.post_bind(api, state, pod, node).await;
        }
    }

    /// Whether `event` may make `pod` schedulable (see [`super::hint`]), given the plugins
    /// that rejected it (`Some`), or, for a pod whose cycle is not over (`None`), any plugin
    /// of the profile that could. A pod with no recorded plugin, or one the profile does not
    /// have, is moved by every event.
    pub fn queueing_hint(
        &self,
        pod: &PodInfo,
        rejected_by: Option<&[&'static str]>,
        event: &ClusterEvent<'_>,
    ) -> QueueingHint {
        if matches!(event, ClusterEvent::Resync) {
            return QueueingHint::Queue;
        }
        let rejecters = &self.profile.rejecters;
        let may_help = match rejected_by {
            None => rejecters
                .iter()
                .any(|p| p.queueing_hint(pod, event) == QueueingHint::Queue),
            Some([]) => true,
            Some(names) => names.iter().any(|name| {
                rejecters
                    .iter()
                    .find(|p| p.name() == *name)
                    .is_none_or(|p| p.queueing_hint(pod, event) == QueueingHint::Queue)
            }),
        };
        QueueingHint::queue_if(may_help)
    }

    /// The next number of the seeded generator (SplitMix64: lock-free and repeatable).
    fn next_random(&self) -> u64 {
        let mut state = self.rng.fetch_add(GOLDEN, Ordering::Relaxed);
        splitmix(&mut state)
    }
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// SplitMix64: advance `state` and return the next number.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The filters on one node: `None` if all pass, else the first failure.
fn run_filters(
    filters: &[&dyn FilterPlugin],
    state: &CycleState,
    pod: &PodInfo,
    node: &NodeInfo,
) -> Option<(&'static str, Status)> {
    for filter in filters {
        // `passes` answers without a Status; `filter` gives the reasons of a failure.
        if !filter.passes(state, pod, node) {
            let status = filter.filter(state, pod, node);
            if !status.is_success() {
                return Some((filter.name(), status));
            }
        }
    }
    None
}

/// The filters on one node with the pods nominated to it of at least the pod's priority
/// counted there (kube-scheduler's nominated pods: room preemption cleared for a pod is not
/// given to a less important one meanwhile).
fn run_filters_nominated(
    filters: &[&dyn FilterPlugin],
    state: &CycleState,
    pod: &PodInfo,
    cluster: &ClusterSnapshot,
    node: &NodeInfo,
) -> Option<(&'static str, Status)> {
    with_nominated(pod, cluster, node, |node| {
        run_filters(filters, state, pod, node)
    })
}

/// `check` on the node, or on a copy of it holding the pods nominated to it that go before
/// `pod` (of at least its priority) if there are any.
fn with_nominated<T>(
    pod: &PodInfo,
    cluster: &ClusterSnapshot,
    node: &NodeInfo,
    check: impl FnOnce(&NodeInfo) -> T,
) -> T {
    if cluster.has_nominations() {
        let mut ahead = cluster
            .nominated_pods(node.name())
            .iter()
            .filter(|p| p.priority >= pod.priority && p.key() != pod.key())
            .peekable();
        if ahead.peek().is_some() {
            let mut with_nominated = node.clone();
            for p in ahead {
                with_nominated.add_pod(p.clone());
            }
            return check(&with_nominated);
        }
    }
    check(node)
}

/// Score every feasible node with one plugin, then normalize and check the range.
fn score_all(
    plugin: &dyn ScorePlugin,
    state: &CycleState,
    pod: &PodInfo,
    nodes: &[&NodeInfo],
    scores: &mut [i64],
) -> Result<(), Status> {
    let name = plugin.name();
    plugin
        .score_nodes(state, pod, nodes, scores)
        .map_err(|s| s.with_plugin(name))?;
    let status = plugin.normalize(state, pod, nodes, scores);
    if !status.is_success() {
        return Err(status.with_plugin(name));
    }
    if let Some((i, bad)) = scores
        .iter()
        .enumerate()
        .find(|(_, s)| !(0..=MAX_NODE_SCORE).contains(*s))
    {
        return Err(Status::error(format!(
            "score {bad} for node {} is outside 0..={MAX_NODE_SCORE}",
            nodes[i].name()
        ))
        .with_plugin(name));
    }
    Ok(())
}

impl Scheduler for Framework {
    fn schedule(&self, pod: &Pod, cluster: &ClusterSnapshot) -> Result<Placement, Unschedulable> {
        let info = PodInfo::new(pod.clone()).map_err(|e| {
            Unschedulable::whole_pod(e.pod.clone(), cluster.len(), "PodInfo", e.to_string())
        })?;
        self.schedule_pod(&info, cluster).map(|o| o.placement)
    }
}

/// The PreFilter results for one pod and the Filter plugins to run; see
/// [`Framework::node_checker`].
pub struct NodeChecker<'a> {
    state: CycleState,
    filters: Vec<&'a dyn FilterPlugin>,
}

impl std::fmt::Debug for NodeChecker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeChecker")
            .field("filters", &self.filters.len())
            .finish()
    }
}

impl NodeChecker<'_> {
    /// The filters on one node (with the pods nominated to it that go before `pod`): the
    /// first rejection, or `None` if the pod fits.
    pub fn check(
        &self,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
        node: &NodeInfo,
    ) -> Option<(&'static str, Status)> {
        run_filters_nominated(&self.filters, &self.state, pod, cluster, node)
    }

    /// Whether the pod fits the node: [`NodeChecker::check`] found no rejection, answered
    /// without building the reasons of one ([`FilterPlugin::passes`] only).
    pub fn fits(&self, pod: &PodInfo, cluster: &ClusterSnapshot, node: &NodeInfo) -> bool {
        with_nominated(pod, cluster, node, |node| {
            self.filters
                .iter()
                .all(|f| f.passes(&self.state, pod, node))
        })
    }
}

/// One [`Framework`] per scheduler name: a pod goes to the profile of its
/// `spec.schedulerName` (`default-scheduler` when empty).
#[derive(Debug, Default)]
pub struct Profiles {
    frameworks: HashMap<String, Arc<Framework>>,
}

impl Profiles {
    /// No profiles.
    pub fn new() -> Self {
        Profiles::default()
    }

    /// Add a profile (replacing one of the same scheduler name).
    pub fn insert(&mut self, profile: Profile) {
        self.frameworks.insert(
            profile.scheduler_name.clone(),
            Arc::new(Framework::new(profile)),
        );
    }

    /// The framework for a scheduler name.
    pub fn get(&self, scheduler_name: &str) -> Option<&Arc<Framework>> {
        self.frameworks.get(scheduler_name)
    }

    /// The framework for a pod.
    pub fn for_pod(&self, pod: &Pod) -> Option<&Arc<Framework>> {
        self.get(scheduler_name(pod))
    }

    /// The scheduler names served, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.frameworks.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

/// A pod's scheduler name, `default-scheduler` when unset.
pub fn scheduler_name(pod: &Pod) -> &str {
    match pod.spec.scheduler_name.as_str() {
        "" => DEFAULT_SCHEDULER_NAME,
        name => name,
    }
}

impl Scheduler for Profiles {
    fn schedule(&self, pod: &Pod, cluster: &ClusterSnapshot) -> Result<Placement, Unschedulable> {
        match self.for_pod(pod) {
            Some(framework) => framework.schedule(pod, cluster),
            None => Err(Unschedulable::whole_pod(
                format!("{}/{}", pod.metadata.namespace, pod.metadata.name),
                cluster.len(),
                "Profiles",
                format!(
                    "no scheduler profile is named {:?} (profiles: {})",
                    scheduler_name(pod),
                    self.names().join(", ")
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::default_profile;

    /// Every default Filter's `passes` agrees with its `filter`, on nodes and pods that pass
    /// and fail each of them.
    #[test]
    fn passes_agrees_with_filter() {
        let node = |json: serde_json::Value| -> orchestra_api::resources::Node {
            serde_json::from_value(json).unwrap()
        };
        let pod = |json: serde_json::Value| -> Pod { serde_json::from_value(json).unwrap() };
        let status = |cpu: &str, pods: &str| {
            serde_json::json!({"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": pods,
                "ephemeral-storage": "10Gi", "example.com/gpu": "1"}})
        };
        let nodes = [
            node(
                serde_json::json!({"metadata": {"name": "plain", "labels": {"zone": "a"}},
                "status": status("4", "10")}),
            ),
            node(
                serde_json::json!({"metadata": {"name": "cordoned", "labels": {"zone": "b"}},
                "spec": {"unschedulable": true}, "status": status("4", "10")}),
            ),
            node(serde_json::json!({"metadata": {"name": "tainted"},
                "spec": {"taints": [{"key": "gpu", "effect": "NoSchedule"},
                    {"key": "soft", "effect": "PreferNoSchedule"}]},
                "status": status("4", "10")})),
            node(
                serde_json::json!({"metadata": {"name": "small", "labels": {"zone": "a"}},
                "status": status("500m", "1")}),
            ),
        ];
        let busy = pod(
            serde_json::json!({"metadata": {"name": "busy", "namespace": "d"},
            "spec": {"nodeName": "small", "containers": [{"name": "c",
                "ports": [{"containerPort": 80, "hostPort": 80}]}]}}),
        );
        let cluster = ClusterSnapshot::from_objects(nodes, [busy]).unwrap();
        let pods = [
            serde_json::json!({"containers": [{"name": "c"}]}),
            serde_json::json!({"containers": [{"name": "c", "resources": {"requests":
                {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "20Gi", "example.com/gpu": "2"}}}]}),
            serde_json::json!({"containers": [{"name": "c", "resources": {"requests": {"cpu": "3"}},
                "ports": [{"containerPort": 80, "hostPort": 80}]}],
                "tolerations": [{"key": "gpu", "operator": "Exists"},
                    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists"}]}),
            serde_json::json!({"containers": [{"name": "c"}], "nodeSelector": {"zone": "a"},
                "nodeName": "small"}),
            serde_json::json!({"containers": [{"name": "c"}], "affinity": {"nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}]}}}}),
        ];
        let profile = default_profile();
        let framework = Framework::new(default_profile());
        let mut checked = (0, 0);
        for (i, spec) in pods.into_iter().enumerate() {
            let info = PodInfo::new(pod(serde_json::json!({
                "metadata": {"name": format!("p{i}"), "namespace": "d"}, "spec": spec})))
            .unwrap();
            // NodeChecker::fits is check's yes or no.
            let checker = framework.node_checker(&info, &cluster).unwrap();
            for node in cluster.nodes() {
                assert_eq!(
                    checker.fits(&info, &cluster, node),
                    checker.check(&info, &cluster, node).is_none(),
                    "fits on pod {i}, node {}",
                    node.name()
                );
            }
            let mut state = CycleState::new();
            for plugin in &profile.pre_filter {
                plugin.pre_filter(&mut state, &info, &cluster);
            }
            for filter in &profile.filter {
                for node in cluster.nodes() {
                    let passes = filter.filter(&state, &info, node).is_success();
                    assert_eq!(
                        filter.passes(&state, &info, node),
                        passes,
                        "{} on pod {i}, node {}",
                        filter.name(),
                        node.name()
                    );
                    if passes {
                        checked.0 += 1
                    } else {
                        checked.1 += 1
                    }
                }
            }
        }
        // Both outcomes were exercised.
        assert!(checked.0 > 0 && checked.1 > 10, "{checked:?}");
    }

    #[test]
    fn feasible_nodes_to_find_follows_kube_scheduler() {
        assert_eq!(num_feasible_nodes_to_find(0, 50), 50);
        assert_eq!(num_feasible_nodes_to_find(0, 99), 99);
        // 50 - 1000/125 = 42%.
        assert_eq!(num_feasible_nodes_to_find(0, 1000), 420);
        // 50 - 5000/125 = 10%.
        assert_eq!(num_feasible_nodes_to_find(0, 5000), 500);
        // Floor of 5%.
        assert_eq!(num_feasible_nodes_to_find(0, 10_000), 500);
        assert_eq!(num_feasible_nodes_to_find(0, 100_000), 5000);
        // At least 100 nodes.
        assert_eq!(num_feasible_nodes_to_find(1, 1000), 100);
        assert_eq!(num_feasible_nodes_to_find(100, 1000), 1000);
        assert_eq!(num_feasible_nodes_to_find(30, 1000), 300);
    }
}
