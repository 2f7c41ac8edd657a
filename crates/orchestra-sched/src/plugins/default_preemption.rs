//! DefaultPreemption (PostFilter): when no node fits a pod, find a node where evicting pods
//! of lower priority makes it fit, with Kubernetes' rules:
//!
//! - The pod may preempt unless its preemption policy is `Never`, and unless it is already
//!   nominated to a node where a lower-priority pod is still terminating (it waits for the
//!   room it cleared instead of clearing more).
//! - Only nodes rejected as `Unschedulable` (not `UnschedulableAndUnresolvable`) are tried.
//!   On each, every pod of lower priority is removed from a what-if copy of the snapshot and
//!   the profile's PreFilter and Filter plugins run again; if the pod fits, victims are
//!   reprieved one by one, most important first (higher priority, then earlier start), as
//!   long as the pod still fits, so that the victims are a minimal set.
//! - Among the candidate nodes the chosen one has the lowest highest-priority victim, then
//!   the smallest sum of victims' priorities, then the fewest victims, then the latest start
//!   time of its highest-priority victims, then the first in snapshot order.
//!   (PodDisruptionBudgets are not considered.)
//!
//! The choice ([`select_candidate`]) is a pure function of the pod and the snapshot. The
//! scheduling loop carries it out: it sets the pod's `status.nominatedNodeName`, deletes the
//! victims gracefully (their `terminationGracePeriodSeconds`) with a `Preempted` event on each,
//! and counts the pod on its nominated node for pods of lower priority until it is placed.

use std::cmp::Ordering;
use std::sync::Arc;

use orchestra_api::meta::Time;
use orchestra_api::resources::{Pod, PreemptionPolicy};

use crate::framework::{
    Code, CycleState, Extensions, Framework, NodeChecker, Plugin, PostFilterPlugin,
    PostFilterResult, Status,
};
use crate::snapshot::{ClusterSnapshot, NodeInfo, PodInfo};
use crate::unschedulable::Unschedulable;

/// Candidate nodes looked for at least (kube-scheduler's `minCandidateNodesAbsolute`).
pub const MIN_CANDIDATE_NODES: usize = 100;
/// Candidate nodes looked for, in percent of the nodes (`minCandidateNodesPercentage`).
pub const MIN_CANDIDATE_NODES_PERCENTAGE: usize = 10;

/// See the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultPreemption;

impl DefaultPreemption {
    /// The plugin's name.
    pub const NAME: &'static str = "DefaultPreemption";
}

impl Plugin for DefaultPreemption {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new().post_filter(self)
    }
}

impl PostFilterPlugin for DefaultPreemption {
    fn post_filter(
        &self,
        framework: &Framework,
        _: &CycleState,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
        rejection: &Unschedulable,
    ) -> (Option<PostFilterResult>, Status) {
        match select_candidate(framework, pod, cluster, rejection) {
            Ok(candidate) => (
                Some(PostFilterResult {
                    nominated_node: Some(candidate.node.to_string()),
                    victims: candidate
                        .victims
                        .iter()
                        .map(|v| v.key().to_owned())
                        .collect(),
                }),
                Status::success(),
            ),
            Err(status) => (None, status),
        }
    }
}

/// A node and the pods to evict from it.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The node.
    pub node: Arc<str>,
    /// The victims, most important first.
    pub victims: Vec<Arc<PodInfo>>,
}

/// Whether a pod may preempt at all: its `spec.preemptionPolicy` is not `Never` (unset means
/// `PreemptLowerPriority`).
pub fn may_preempt(pod: &Pod) -> bool {
    pod.spec.preemption_policy != Some(PreemptionPolicy::Never)
}

/// `a` is more important than `b`: higher priority, then the earlier start (a pod not
/// started yet counts as starting now, after every started one), then the key (so that the
/// order is total and runs repeat).
fn more_important(a: &PodInfo, b: &PodInfo) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| start_key(a).cmp(&start_key(b)))
        .then_with(|| a.key().cmp(b.key()))
}

/// A pod's start time; `None` (not started) sorts last.
fn start_key(pod: &PodInfo) -> (bool, Option<Time>) {
    (pod.start_time.is_none(), pod.start_time)
}

/// The pure choice: the node to nominate and its victims, or why preemption cannot help
/// (see the [module docs](self)).
pub fn select_candidate(
    framework: &Framework,
    pod: &PodInfo,
    cluster: &ClusterSnapshot,
    rejection: &Unschedulable,
) -> Result<Candidate, Status> {
    if !may_preempt(&pod.pod) {
        return Err(Status::unresolvable(
            "not eligible for preemption: its preemption policy is Never",
        ));
    }
    if rejection.pre_filter.is_some() {
        return Err(Status::unresolvable(
            "preemption cannot help a pod rejected before any node was looked at",
        ));
    }
    // Already nominated where a lower-priority pod is terminating: wait for that room.
    let nominated = pod
        .pod
        .status
        .as_ref()
        .map(|s| s.nominated_node_name.as_str())
        .filter(|n| !n.is_empty());
    if let Some(node) = nominated.and_then(|n| cluster.get(n)) {
        let terminating = node
            .pods()
            .iter()
            .any(|p| p.pod.metadata.deletion_timestamp.is_some() && p.priority < pod.priority);
        if terminating {
            return Err(Status::unschedulable(
                "not eligible for preemption: victims on its nominated node are terminating",
            ));
        }
    }
    // The nodes worth trying, in snapshot order.
    let resolvable = resolvable_nodes(cluster, rejection);
    let tries = (0..cluster.len()).filter(|&i| resolvable[i]);
    let wanted = (cluster.len() * MIN_CANDIDATE_NODES_PERCENTAGE / 100)
        .max(MIN_CANDIDATE_NODES)
        .min(cluster.len());
    // When no pod anywhere has pod (anti-)affinity and the pod has no affinity or spreading,
    // no plugin looks at other nodes' pods: PreFilter runs once, and a copy of each node is
    // the whole what-if (a copy of the snapshot would clone its pod index per node).
    let node_only = cluster.pods_with_affinity() == 0
        && !pod.has_affinity()
        && pod.spread_constraints.is_empty();
    let checker = if node_only {
        match framework.node_checker(pod, cluster) {
            Ok(checker) => Some(checker),
            Err((_, status)) => return Err(status),
        }
    } else {
        None
    };
    // Candidates are ranked as they are found; only a better one than the best so far is
    // kept (copied out of the scratch what-if), so that evaluating hundreds of nodes
    // allocates nothing per node.
    let mut best: Option<(Rank, Candidate)> = None;
    let mut found = 0;
    let mut scratch = WhatIf::default();
    for index in tries {
        if found >= wanted {
            break;
        }
        let node = cluster.node(index);
        match &checker {
            Some(checker) => {
                let bar = best.as_ref().map(|(b, _)| b);
                match victims_on_node_alone(checker, pod, cluster, node, bar, &mut scratch) {
                    Alone::NotCandidate => {}
                    Alone::CannotWin => found += 1,
                    Alone::Victims => {
                        found += 1;
                        let rank = Rank::of(&scratch.victims);
                        if best.as_ref().is_none_or(|(b, _)| rank < *b) {
                            let victims = scratch.victims.clone();
                            let candidate = Candidate {
                                node: node.name().clone(),
                                victims,
                            };
                            best = Some((rank, candidate));
                        }
                    }
                }
            }
            None => {
                if let Some(c) = victims_on_node(framework, pod, cluster, node.name()) {
                    found += 1;
                    let rank = Rank::of(&c.victims);
                    if best.as_ref().is_none_or(|(b, _)| rank < *b) {
                        best = Some((rank, c));
                    }
                }
            }
        }
    }
    best.map(|(_, c)| c).ok_or_else(|| {
        Status::unschedulable(
            "preemption: no node fits the pod even after evicting every pod of lower priority",
        )
    })
}

/// `[i]`: whether node `i` of the snapshot was rejected as `Unschedulable` (so that evicting
/// pods may help).
fn resolvable_nodes(cluster: &ClusterSnapshot, rejection: &Unschedulable) -> Vec<bool> {
    let mut resolvable = vec![false; cluster.len()];
    if rejection.nodes.named_by(cluster.node_names()) {
        // Recorded against this snapshot's nodes (none added or removed since): its node
        // indexes are the snapshot's, in runs.
        for (range, code) in rejection.nodes.ranges() {
            if code == Code::Unschedulable {
                resolvable[range].fill(true);
            }
        }
        return resolvable;
    }
    // Otherwise by name. The framework lists rejections in its round-robin order: each node
    // is most likely the one after the previous, which is checked before a lookup by name.
    let mut next = 0;
    for r in &rejection.nodes {
        let guess = (next < cluster.len()).then(|| cluster.node(next).name());
        let index = match guess {
            Some(name) if Arc::ptr_eq(name, r.node) || name == r.node => Some(next),
            _ => cluster.position(r.node),
        };
        let Some(index) = index else { continue };
        next = if index + 1 == cluster.len() {
            0
        } else {
            index + 1
        };
        if r.code == Code::Unschedulable {
            resolvable[index] = true;
        }
    }
    resolvable
}

/// The minimal victims on one node, or `None` if evicting every lower-priority pod there
/// would not make the pod fit.
pub fn victims_on_node(
    framework: &Framework,
    pod: &PodInfo,
    cluster: &ClusterSnapshot,
    node: &str,
) -> Option<Candidate> {
    let info = cluster.get(node)?;
    let mut potential: Vec<Arc<PodInfo>> = info
        .pods()
        .iter()
        .filter(|p| p.priority < pod.priority)
        .cloned()
        .collect();
    if potential.is_empty() {
        return None;
    }
    potential.sort_by(|a, b| more_important(a, b));
    let mut what_if = cluster.clone();
    for p in &potential {
        what_if.remove_pod(p.key()).ok()?;
    }
    let fits = |s: &ClusterSnapshot| {
        s.get(node)
            .is_some_and(|n| framework.check_node(pod, s, n).is_none())
    };
    if !fits(&what_if) {
        return None;
    }
    let mut victims = Vec::new();
    for p in potential {
        what_if.assume(p.clone(), node).ok()?;
        if !fits(&what_if) {
            what_if.remove_pod(p.key()).ok()?;
            victims.push(p);
        }
    }
    Some(Candidate {
        node: info.name().clone(),
        victims,
    })
}

/// The buffers of the node-only what-if, reused from one node to the next.
#[derive(Default)]
struct WhatIf {
    /// A copy of the node being tried.
    node: Option<NodeInfo>,
    /// Its pods of lower priority than the preemptor, most important first.
    potential: Vec<Arc<PodInfo>>,
    /// The victims found on it.
    victims: Vec<Arc<PodInfo>>,
}

/// What [`victims_on_node_alone`] found on a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alone {
    /// Evicting every lower-priority pod would not make the pod fit: not a candidate.
    NotCandidate,
    /// A candidate, but one that cannot rank before the best so far (its victims were not
    /// computed).
    CannotWin,
    /// A candidate; its victims are in `WhatIf::victims`.
    Victims,
}

/// [`victims_on_node`] when no plugin looks beyond the node: the what-if is a copy of the
/// node, checked with PreFilter results computed once.
///
/// With `bar` (the rank of the best candidate so far), a node whose every possible set of
/// victims ranks at or after `bar` is only checked for being a candidate (it still counts
/// towards the candidates wanted); its victims, the reprieve of every potential victim one
/// by one, are not computed. Ties go to the first candidate found, so such a node could
/// never be chosen: the choice is the one the full evaluation of every node makes.
fn victims_on_node_alone(
    checker: &NodeChecker<'_>,
    pod: &PodInfo,
    cluster: &ClusterSnapshot,
    info: &NodeInfo,
    bar: Option<&Rank>,
    scratch: &mut WhatIf,
) -> Alone {
    if info.lowest_priority() >= pod.priority {
        return Alone::NotCandidate;
    }
    let WhatIf {
        node,
        potential,
        victims,
    } = scratch;
    potential.clear();
    victims.clear();
    let beaten = bar.is_some_and(|bar| {
        Rank::bound(info.pods().iter().filter(|p| p.priority < pod.priority)) >= *bar
    });
    // The bound holds for a non-empty set of victims. The set is empty only if the pod fits
    // with every pod back in place, that is on the node as it is (a node the Filters
    // rejected does not, but this function does not rely on how it was picked).
    let pruned = beaten && !checker.fits(pod, cluster, info);
    if !pruned {
        potential.extend(
            info.pods()
                .iter()
                .filter(|p| p.priority < pod.priority)
                .cloned(),
        );
        if potential.is_empty() {
            return Alone::NotCandidate;
        }
        potential.sort_by(|a, b| more_important(a, b));
    }
    let what_if = node.get_or_insert_with(|| info.clone());
    what_if.clone_without(info, |p| p.priority < pod.priority);
    if !checker.fits(pod, cluster, what_if) {
        return Alone::NotCandidate;
    }
    if pruned {
        return Alone::CannotWin;
    }
    for p in potential.iter() {
        what_if.add_pod(p.clone());
        if !checker.fits(pod, cluster, what_if) {
            what_if.remove_pod_arc(p);
            victims.push(p.clone());
        }
    }
    Alone::Victims
}

/// Kubernetes' order among candidates (see the [module docs](self)), as a key: the smaller
/// wins, and the first found wins ties.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    /// The highest victim priority (`None`: no victim).
    highest: Option<i32>,
    /// The sum of the victims' priorities, each offset by 2^31 so that every priority is
    /// positive and more victims weigh more.
    sum: i64,
    /// The number of victims.
    count: usize,
    /// The earliest start among the highest-priority victims, later first.
    latest_start: std::cmp::Reverse<Option<(bool, Option<Time>)>>,
}

impl Rank {
    /// A rank that every non-empty set of victims drawn from `potential` (a node's pods of
    /// lower priority than the preemptor) ranks at or after: its highest priority and its
    /// sum are at least the lowest priority's (every term of the sum is positive), it has
    /// at least one victim, and its highest victims' earliest start is at most the latest
    /// start of all. (Empty `potential`: a rank after every other.)
    fn bound<'a>(potential: impl Iterator<Item = &'a Arc<PodInfo>>) -> Rank {
        // The greatest `start_key`, without building one per pod: a pod not started yet
        // (`(true, None)`) is after every started one, else the latest start time.
        // (This runs on every candidate node.)
        let (mut lowest, mut any, mut unstarted) = (i32::MAX, false, false);
        let mut latest: Option<Time> = None;
        for p in potential {
            lowest = lowest.min(p.priority);
            any = true;
            match p.start_time {
                None => unstarted = true,
                Some(t) => {
                    if latest.is_none_or(|l| t > l) {
                        latest = Some(t);
                    }
                }
            }
        }
        let latest = any.then_some(if unstarted {
            (true, None)
        } else {
            (false, latest)
        });
        Rank {
            highest: Some(lowest),
            sum: i64::from(lowest) + (1i64 << 31),
            count: 1,
            latest_start: std::cmp::Reverse(latest),
        }
    }

    fn of(victims: &[Arc<PodInfo>]) -> Rank {
        let highest = victims.iter().map(|v| v.priority).max();
        Rank {
            highest,
            sum: victims
                .iter()
                .map(|v| i64::from(v.priority) + (1i64 << 31))
                .sum(),
            count: victims.len(),
            latest_start: std::cmp::Reverse(
                victims
                    .iter()
                    .filter(|v| Some(v.priority) == highest)
                    .map(|v| start_key(v))
                    .min(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::meta::ObjectMeta;
    use orchestra_api::resources::{
        Container, Node, NodeStatus, PodSpec, PodStatus, ResourceRequirements,
    };

    use super::*;
    use crate::Scheduler;
    use crate::plugins::default_profile;

    fn node(name: &str, cpu: &str) -> Node {
        Node {
            metadata: ObjectMeta::named(name),
            status: Some(NodeStatus {
                allocatable: [
                    ("cpu".to_owned(), cpu.parse().unwrap()),
                    ("memory".to_owned(), "8Gi".parse().unwrap()),
                    ("pods".to_owned(), "110".parse().unwrap()),
                ]
                .into(),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    /// A pod requesting `cpu`, with a priority, bound to `node` (if not empty) and started
    /// at hour `start` of a day (if given).
    fn pod(name: &str, cpu: &str, priority: i32, node: &str, start: Option<i64>) -> Pod {
        Pod {
            metadata: ObjectMeta::namespaced("default", name),
            spec: PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    resources: ResourceRequirements {
                        requests: [("cpu".to_owned(), cpu.parse().unwrap())].into(),
                        ..ResourceRequirements::default()
                    },
                    ..Container::default()
                }],
                node_name: node.into(),
                priority: Some(priority),
                ..PodSpec::default()
            },
            status: start.map(|hour| PodStatus {
                start_time: Some(format!("2024-05-01T{hour:02}:00:00Z").parse().unwrap()),
                ..PodStatus::default()
            }),
        }
    }

    /// Run the framework on the pod and return the preemption it proposes.
    fn preempt(cluster: &ClusterSnapshot, p: Pod) -> Option<PostFilterResult> {
        let framework = Framework::new(default_profile());
        let err = framework
            .schedule(&p, cluster)
            .expect_err("the pod must not fit");
        err.post_filter.map(|b| *b)
    }

    fn result(node: &str, victims: &[&str]) -> Option<PostFilterResult> {
        Some(PostFilterResult {
            nominated_node: Some(node.into()),
            victims: victims.iter().map(|v| format!("default/{v}")).collect(),
        })
    }

    #[test]
    fn the_node_whose_highest_victim_is_lowest_wins() {
        let cluster = ClusterSnapshot::from_objects(
            [node("a", "2"), node("b", "2")],
            [
                pod("a1", "2", 5, "a", None),
                pod("b1", "1", 1, "b", None),
                pod("b2", "1", 1, "b", None),
            ],
        )
        .unwrap();
        // b costs two victims of priority 1, a one of priority 5: the lower priority wins.
        assert_eq!(
            preempt(&cluster, pod("p", "2", 10, "", None)),
            result("b", &["b1", "b2"])
        );
    }

    #[test]
    fn victims_are_minimal_and_reprieved_from_the_most_important() {
        let cluster = ClusterSnapshot::from_objects(
            [node("a", "4")],
            [
                pod("low", "1", 1, "a", None),
                pod("mid", "1", 2, "a", None),
                pod("high", "1", 3, "a", None),
                pod("top", "1", 100, "a", None),
            ],
        )
        .unwrap();
        // The pod needs 2 of 4 CPUs; "top" (priority 100) stays. Reprieved most important
        // first: "high" back still fits (top + high + p = 4); "mid" back would not (5), nor
        // "low": they are the victims, in that order.
        assert_eq!(
            preempt(&cluster, pod("p", "2", 10, "", None)),
            result("a", &["mid", "low"])
        );
    }

    #[test]
    fn smaller_priority_sum_then_fewer_victims_then_latest_start() {
        // Highest victim equal (1) on both; a's sum is larger (two victims): b wins.
        let cluster = ClusterSnapshot::from_objects(
            [node("a", "2"), node("b", "2")],
            [
                pod("a1", "1", 1, "a", None),
                pod("a2", "1", 1, "a", None),
                pod("b1", "2", 1, "b", None),
            ],
        )
        .unwrap();
        assert_eq!(
            preempt(&cluster, pod("p", "2", 10, "", None)),
            result("b", &["b1"])
        );
        // Everything equal but the start time: the node whose victim started last wins.
        let cluster = ClusterSnapshot::from_objects(
            [node("a", "2"), node("b", "2")],
            [
                pod("a1", "2", 1, "a", Some(2)),
                pod("b1", "2", 1, "b", Some(1)),
            ],
        )
        .unwrap();
        assert_eq!(
            preempt(&cluster, pod("p", "2", 10, "", None)),
            result("a", &["a1"])
        );
    }

    #[test]
    fn no_preemption_of_equal_or_higher_priority_nor_with_policy_never() {
        let cluster =
            ClusterSnapshot::from_objects([node("a", "2")], [pod("a1", "2", 10, "a", None)])
                .unwrap();
        assert_eq!(preempt(&cluster, pod("p", "2", 10, "", None)), None);
        let cluster =
            ClusterSnapshot::from_objects([node("a", "2")], [pod("a1", "2", 1, "a", None)])
                .unwrap();
        let mut never = pod("p", "2", 10, "", None);
        never.spec.preemption_policy = Some(PreemptionPolicy::Never);
        assert_eq!(preempt(&cluster, never.clone()), None);
        // The same pod with the default policy preempts.
        never.spec.preemption_policy = Some(PreemptionPolicy::PreemptLowerPriority);
        assert!(preempt(&cluster, never).is_some());
        // Too big for the node even empty: nothing to gain.
        assert_eq!(preempt(&cluster, pod("p", "3", 10, "", None)), None);
    }

    #[test]
    fn unresolvable_nodes_are_not_tried() {
        let mut tainted = node("a", "2");
        tainted.spec.unschedulable = true;
        let cluster = ClusterSnapshot::from_objects(
            [tainted, node("b", "2")],
            [pod("a1", "1", 1, "a", None), pod("b1", "2", 5, "b", None)],
        )
        .unwrap();
        // a needs only one cheap victim, but it is cordoned.
        assert_eq!(
            preempt(&cluster, pod("p", "2", 10, "", None)),
            result("b", &["b1"])
        );
    }

    #[test]
    fn a_nominated_pod_holds_its_room_against_lower_priority_pods() {
        let mut cluster =
            ClusterSnapshot::from_objects([node("a", "2"), node("b", "1")], []).unwrap();
        let nominated = Arc::new(PodInfo::new(pod("big", "2", 10, "", None)).unwrap());
        cluster.nominate(nominated, "a").unwrap();
        let framework = Framework::new(default_profile());
        // Lower priority: a is taken by the nominated pod, so b.
        let placed = framework
            .schedule(&pod("small", "1", 1, "", None), &cluster)
            .unwrap();
        assert_eq!(&*placed.node, "b");
        // Higher priority ignores the nomination.
        let mut found = std::collections::HashSet::new();
        for i in 0..8 {
            let p = pod(&format!("vip{i}"), "2", 20, "", None);
            found.insert(framework.schedule(&p, &cluster).unwrap().node.to_string());
        }
        assert_eq!(found, ["a".to_owned()].into());
        // The nominated pod itself is not in its own way.
        let placed = framework
            .schedule(&pod("big", "2", 10, "", None), &cluster)
            .unwrap();
        assert_eq!(&*placed.node, "a");
    }

    /// The choice made by evaluating every candidate in full (the general what-if of
    /// [`victims_on_node`] on each resolvable node, in snapshot order, up to the number of
    /// candidates wanted), against which the node-only path and its pruning are checked.
    fn reference_choice(
        framework: &Framework,
        pod: &PodInfo,
        cluster: &ClusterSnapshot,
        rejection: &Unschedulable,
    ) -> Option<(String, Vec<String>)> {
        let resolvable = resolvable_nodes(cluster, rejection);
        let wanted = (cluster.len() * MIN_CANDIDATE_NODES_PERCENTAGE / 100)
            .max(MIN_CANDIDATE_NODES)
            .min(cluster.len());
        let mut best: Option<(Rank, Candidate)> = None;
        let candidates = (0..cluster.len())
            .filter(|&i| resolvable[i])
            .filter_map(|i| victims_on_node(framework, pod, cluster, cluster.node(i).name()))
            .take(wanted);
        for c in candidates {
            let rank = Rank::of(&c.victims);
            if best.as_ref().is_none_or(|(b, _)| rank < *b) {
                best = Some((rank, c));
            }
        }
        best.map(|(_, c)| {
            let victims = c.victims.iter().map(|v| v.key().to_owned()).collect();
            (c.node.to_string(), victims)
        })
    }

    /// `select_candidate` for a pod that fits nowhere, as `(node, victims)`, checked
    /// against [`reference_choice`].
    fn choice_matches_reference(
        cluster: &ClusterSnapshot,
        p: Pod,
    ) -> Option<(String, Vec<String>)> {
        let framework = Framework::new(default_profile());
        let info = PodInfo::new(p).unwrap();
        let rejection = framework
            .schedule_pod(&info, cluster)
            .expect_err("the pod must not fit");
        let chosen = select_candidate(&framework, &info, cluster, &rejection)
            .ok()
            .map(|c| {
                let victims = c.victims.iter().map(|v| v.key().to_owned()).collect();
                (c.node.to_string(), victims)
            });
        assert_eq!(
            chosen,
            reference_choice(&framework, &info, cluster, &rejection)
        );
        chosen
    }

    #[test]
    fn candidates_that_cannot_win_still_count_towards_those_wanted() {
        // 250 full nodes: 100 candidates are wanted. Every node holds one priority-1 pod
        // started at hour 1, but node 3 (start hour 2: it wins the start-time tie), node
        // 150 (a priority-0 victim, better still, but past the first 100 candidates) and
        // nodes 10..20 (priority-20 pods: not candidates, so not counted).
        let nodes = (0..250).map(|i| node(&format!("n{i:03}"), "2"));
        let pods = (0..250).map(|i| {
            let (priority, start) = match i {
                3 => (1, 2),
                150 => (0, 1),
                10..20 => (20, 1),
                _ => (1, 1),
            };
            pod(
                &format!("p{i:03}"),
                "2",
                priority,
                &format!("n{i:03}"),
                Some(start),
            )
        });
        let cluster = ClusterSnapshot::from_objects(nodes, pods).unwrap();
        assert_eq!(
            choice_matches_reference(&cluster, pod("p", "2", 10, "", None)),
            Some(("n003".to_owned(), vec!["default/p003".to_owned()]))
        );
        // Were node 150 among the first 100 candidates (nodes 0..110 not candidates), it
        // would win.
        let nodes = (0..250).map(|i| node(&format!("n{i:03}"), "2"));
        let pods = (0..250).map(|i| {
            let priority = match i {
                150 => 0,
                0..110 => 20,
                _ => 1,
            };
            pod(
                &format!("p{i:03}"),
                "2",
                priority,
                &format!("n{i:03}"),
                Some(1),
            )
        });
        let cluster = ClusterSnapshot::from_objects(nodes, pods).unwrap();
        assert_eq!(
            choice_matches_reference(&cluster, pod("p", "2", 10, "", None)),
            Some(("n150".to_owned(), vec!["default/p150".to_owned()]))
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// On random clusters (priorities, CPU requests, start times), the node-only path,
        /// which skips the victims of the candidates that cannot rank first, chooses the
        /// node and victims that evaluating every candidate in full chooses.
        #[test]
        fn the_pruned_search_chooses_what_the_full_one_does(
            cores in proptest::collection::vec(1u32..4, 1..7),
            pods in proptest::collection::vec((0usize..7, 1u32..9, 0i32..4, proptest::option::of(0i64..3)), 0..24),
            (cpu, priority) in (1u32..9, 1i32..6),
        ) {
            let nodes = cores.iter().enumerate().map(|(i, c)| node(&format!("n{i}"), &c.to_string()));
            let bound = pods.iter().enumerate().map(|(i, (n, cpu, priority, start))| {
                let cpu = format!("{}m", cpu * 250);
                pod(&format!("e{i}"), &cpu, *priority, &format!("n{}", n % cores.len()), *start)
            });
            let cluster = ClusterSnapshot::from_objects(nodes, bound).unwrap();
            let incoming = pod("p", &format!("{}m", cpu * 500), priority, "", None);
            let framework = Framework::new(default_profile());
            if framework.schedule(&incoming, &cluster).is_ok() {
                return Ok(());
            }
            choice_matches_reference(&cluster, incoming);
        }

        /// `Rank::bound` (one pass, no key built per pod) is the bound as first written:
        /// the lowest priority, and the greatest `start_key` of the pods.
        #[test]
        fn rank_bound_is_the_lowest_priority_and_the_latest_start_key(
            pods in proptest::collection::vec((0i32..4, proptest::option::of(0i64..4)), 0..8),
        ) {
            let infos: Vec<Arc<PodInfo>> = pods
                .iter()
                .enumerate()
                .map(|(i, (priority, start))| {
                    Arc::new(PodInfo::new(pod(&format!("e{i}"), "1", *priority, "n", *start)).unwrap())
                })
                .collect();
            let mut lowest = i32::MAX;
            let mut latest = None;
            for p in &infos {
                lowest = lowest.min(p.priority);
                latest = latest.max(Some(start_key(p)));
            }
            let reference = Rank {
                highest: Some(lowest),
                sum: i64::from(lowest) + (1i64 << 31),
                count: 1,
                latest_start: std::cmp::Reverse(latest),
            };
            proptest::prop_assert_eq!(Rank::bound(infos.iter()), reference);
        }
    }
}
