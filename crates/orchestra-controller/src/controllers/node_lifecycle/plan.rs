//! The NodeLifecycle controller's decisions, pure: a node's health from when its heartbeat was
//! last seen to change; the Ready condition and taints that health calls for; and when each pod
//! on a node with `NoExecute` taints must go.
//!
//! Times are the controller's own monotonic clock (tokio's [`Instant`]), never the wall-clock
//! times the node agent wrote: a heartbeat counts when the controller sees the Lease's
//! `renewTime` or the Ready condition's `lastHeartbeatTime` *change*, so clocks that disagree
//! between machines do not matter (as in Kubernetes' node lifecycle controller).

use std::time::Duration;

use orchestra_api::meta::Time;
use orchestra_api::resources::{ConditionStatus, Node, Pod, Taint, TaintEffect};
use tokio::time::Instant;

/// The taint of a node whose Ready condition is `False`.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose heartbeat stopped (Ready `Unknown`).
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// A node's health as the controller judges it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Heartbeats arrive and Ready is `True`.
    Ready,
    /// Heartbeats arrive and Ready is `False`.
    NotReady,
    /// No heartbeat within the grace period, or Ready is `Unknown`.
    Unknown,
    /// Heartbeats (or the node's first sighting) are within the grace period, but the node has
    /// not reported a Ready condition yet: nothing to do.
    Pending,
}

/// Whether no heartbeat was seen within `grace` of `now` (`last_heartbeat` is when the
/// controller last saw it change, or first saw the node).
pub fn is_stale(last_heartbeat: Instant, now: Instant, grace: Duration) -> bool {
    now >= last_heartbeat + grace
}

/// The node's health: [`Health::Unknown`] when stale, else what its Ready condition says.
pub fn health(node: &Node, stale: bool) -> Health {
    if stale {
        return Health::Unknown;
    }
    match ready_status(node) {
        Some(ConditionStatus::True) => Health::Ready,
        Some(ConditionStatus::False) => Health::NotReady,
        Some(ConditionStatus::Unknown) => Health::Unknown,
        None => Health::Pending,
    }
}

/// The status of the node's Ready condition, if it has one.
pub fn ready_status(node: &Node) -> Option<ConditionStatus> {
    node.status
        .as_ref()
        .and_then(|s| s.condition("Ready"))
        .map(|c| c.status)
}

/// What to write to a node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeUpdate {
    /// Set the Ready condition to `Unknown` (a status write): the heartbeat is stale and the
    /// condition says otherwise.
    pub mark_unknown: bool,
    /// The node's taints as they must be; `None` when they are right already.
    pub taints: Option<Vec<Taint>>,
}

/// The writes `health` calls for on `node`: `Unknown` for a stale heartbeat; `unreachable`
/// taints (`NoSchedule` and `NoExecute`) while Unknown, `not-ready` ones while NotReady, neither
/// while Ready. Other taints are kept; a `NoExecute` taint added gets `timeAdded = now`.
pub fn plan_node(node: &Node, health: Health, stale: bool, now: Time) -> NodeUpdate {
    let mark_unknown = stale && ready_status(node) != Some(ConditionStatus::Unknown);
    let wanted: &[&str] = match health {
        Health::Pending => {
            return NodeUpdate {
                mark_unknown,
                taints: None,
            };
        }
        Health::Ready => &[],
        Health::NotReady => &[NOT_READY_TAINT],
        Health::Unknown => &[UNREACHABLE_TAINT],
    };
    let ours = |key: &str| key == NOT_READY_TAINT || key == UNREACHABLE_TAINT;
    let mut taints: Vec<Taint> = node
        .spec
        .taints
        .iter()
        .filter(|t| !ours(&t.key) || wanted.contains(&t.key.as_str()))
        .cloned()
        .collect();
    for key in wanted {
        for effect in [TaintEffect::NoSchedule, TaintEffect::NoExecute] {
            if !taints.iter().any(|t| t.key == *key && t.effect == effect) {
                taints.push(Taint {
                    key: (*key).to_owned(),
                    value: String::new(),
                    effect,
                    time_added: (effect == TaintEffect::NoExecute).then_some(now),
                });
            }
        }
    }
    let taints = (taints != node.spec.taints).then_some(taints);
    NodeUpdate {
        mark_unknown,
        taints,
    }
}

/// What happens to a pod on a node with `NoExecute` taints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eviction {
    /// It stays (no such taint, or it tolerates them all forever, or it is leaving already).
    Keep,
    /// It must go at this instant (the shortest of its tolerations' seconds runs out then).
    At(Instant),
    /// It must go now: a taint it does not tolerate, or its toleration ran out.
    Now,
}

/// When `pod` must be evicted given its node's `NoExecute` taints, each with the instant the
/// controller first saw it. A taint no toleration matches evicts at once (Kubernetes' API adds
/// default 300 s tolerations for not-ready and unreachable when admission is on; without them
/// a pod has none and goes at once); one tolerated with `tolerationSeconds` evicts that long
/// after the taint appeared (the longest matching toleration counts, the earliest taint
/// decides); one tolerated without `tolerationSeconds` never evicts.
pub fn eviction(pod: &Pod, taints: &[(&Taint, Instant)], now: Instant) -> Eviction {
    if pod.metadata.deletion_timestamp.is_some() {
        return Eviction::Keep;
    }
    let mut evict_at: Option<Instant> = None;
    for (taint, since) in taints
        .iter()
        .filter(|(t, _)| t.effect == TaintEffect::NoExecute)
    {
        let tolerating: Vec<_> = pod
            .spec
            .tolerations
            .iter()
            .filter(|t| t.tolerates(taint))
            .collect();
        if tolerating.is_empty() {
            return Eviction::Now;
        }
        if tolerating.iter().any(|t| t.toleration_seconds.is_none()) {
            continue;
        }
        let seconds = tolerating
            .iter()
            .filter_map(|t| t.toleration_seconds)
            .max()
            .unwrap_or(0)
            .max(0);
        let at = *since + Duration::from_secs(seconds.unsigned_abs());
        evict_at = Some(evict_at.map_or(at, |earlier| earlier.min(at)));
    }
    match evict_at {
        None => Eviction::Keep,
        Some(at) if now >= at => Eviction::Now,
        Some(at) => Eviction::At(at),
    }
}

/// Whether evictions pause because too much of the cluster looks unhealthy: more than
/// `threshold` (0.55 by default) of `total` nodes. Kubernetes' reasoning: when most nodes go
/// silent at once, the likelier cause is the control plane's own network, and evicting
/// everything would turn a partition into an outage.
pub fn evictions_paused(total: usize, unhealthy: usize, threshold: f64) -> bool {
    total > 0 && unhealthy as f64 > threshold * total as f64
}

/// Whether a node may start evicting now, given when the last node started (at most one node
/// per `interval`: Kubernetes' 0.1 nodes/s is one every 10 s); otherwise when it may.
pub fn eviction_slot(
    last_start: Option<Instant>,
    now: Instant,
    interval: Duration,
) -> Result<(), Instant> {
    match last_start {
        Some(last) if now < last + interval => Err(last + interval),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::resources::{NodeCondition, NodeStatus, Toleration, TolerationOperator};
    use orchestra_api::{ObjectMeta, testing};

    use super::*;

    const GRACE: Duration = Duration::from_secs(40);

    fn node(ready: Option<ConditionStatus>, taints: Vec<Taint>) -> Node {
        Node {
            metadata: ObjectMeta::named("n1"),
            spec: orchestra_api::resources::NodeSpec {
                taints,
                ..Default::default()
            },
            status: Some(NodeStatus {
                conditions: ready
                    .map(|status| NodeCondition {
                        type_: "Ready".into(),
                        status,
                        ..Default::default()
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
        }
    }

    fn taint(key: &str, effect: TaintEffect, at: Option<Time>) -> Taint {
        Taint {
            key: key.into(),
            value: String::new(),
            effect,
            time_added: at,
        }
    }

    fn now_wall() -> Time {
        Time::new(jiff::Timestamp::from_second(1_700_000_000).unwrap())
    }

    #[test]
    fn a_heartbeat_older_than_the_grace_period_is_stale() {
        let t0 = Instant::now();
        assert!(!is_stale(t0, t0 + GRACE - Duration::from_millis(1), GRACE));
        assert!(is_stale(t0, t0 + GRACE, GRACE));
    }

    #[test]
    fn health_follows_the_ready_condition_unless_stale() {
        use ConditionStatus::*;
        assert_eq!(health(&node(Some(True), vec![]), false), Health::Ready);
        assert_eq!(health(&node(Some(False), vec![]), false), Health::NotReady);
        assert_eq!(health(&node(Some(Unknown), vec![]), false), Health::Unknown);
        assert_eq!(health(&node(None, vec![]), false), Health::Pending);
        assert_eq!(health(&node(Some(True), vec![]), true), Health::Unknown);
        assert_eq!(health(&node(None, vec![]), true), Health::Unknown);
    }

    #[test]
    fn a_stale_ready_node_is_marked_unknown_and_tainted_unreachable() {
        let ready = node(Some(ConditionStatus::True), vec![]);
        let update = plan_node(&ready, Health::Unknown, true, now_wall());
        assert_eq!(
            update,
            NodeUpdate {
                mark_unknown: true,
                taints: Some(vec![
                    taint(UNREACHABLE_TAINT, TaintEffect::NoSchedule, None),
                    taint(UNREACHABLE_TAINT, TaintEffect::NoExecute, Some(now_wall())),
                ]),
            }
        );
        // Once written, nothing more to do.
        let done = node(Some(ConditionStatus::Unknown), update.taints.unwrap());
        assert_eq!(
            plan_node(&done, Health::Unknown, true, now_wall()),
            NodeUpdate::default()
        );
    }

    #[test]
    fn a_not_ready_node_gets_not_ready_taints_instead_of_unreachable_ones() {
        let other = taint("dedicated", TaintEffect::NoSchedule, None);
        let was_unreachable = node(
            Some(ConditionStatus::False),
            vec![
                other.clone(),
                taint(UNREACHABLE_TAINT, TaintEffect::NoExecute, Some(now_wall())),
            ],
        );
        let update = plan_node(&was_unreachable, Health::NotReady, false, now_wall());
        assert_eq!(
            update.taints,
            Some(vec![
                other,
                taint(NOT_READY_TAINT, TaintEffect::NoSchedule, None),
                taint(NOT_READY_TAINT, TaintEffect::NoExecute, Some(now_wall())),
            ])
        );
        assert!(!update.mark_unknown);
    }

    #[test]
    fn a_ready_node_loses_our_taints_and_keeps_others() {
        let other = taint("dedicated", TaintEffect::NoExecute, None);
        let recovered = node(
            Some(ConditionStatus::True),
            vec![
                taint(UNREACHABLE_TAINT, TaintEffect::NoSchedule, None),
                other.clone(),
                taint(UNREACHABLE_TAINT, TaintEffect::NoExecute, Some(now_wall())),
            ],
        );
        assert_eq!(
            plan_node(&recovered, Health::Ready, false, now_wall()).taints,
            Some(vec![other])
        );
        let clean = node(Some(ConditionStatus::True), vec![]);
        assert_eq!(
            plan_node(&clean, Health::Ready, false, now_wall()),
            NodeUpdate::default()
        );
    }

    #[test]
    fn a_new_node_without_a_ready_condition_is_left_alone_within_the_grace_period() {
        let new = node(None, vec![]);
        assert_eq!(
            plan_node(&new, Health::Pending, false, now_wall()),
            NodeUpdate::default()
        );
    }

    fn toleration(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: key.into(),
            operator: Some(TolerationOperator::Exists),
            effect: Some(TaintEffect::NoExecute),
            toleration_seconds: seconds,
            ..Default::default()
        }
    }

    #[test]
    fn pods_go_when_their_tolerations_run_out() {
        let t0 = Instant::now();
        let unreachable = taint(UNREACHABLE_TAINT, TaintEffect::NoExecute, None);
        let no_schedule = taint(UNREACHABLE_TAINT, TaintEffect::NoSchedule, None);
        let taints = [(&no_schedule, t0), (&unreachable, t0)];
        let mut pod = testing::pod("default", "web", "web");
        assert_eq!(eviction(&pod, &taints, t0), Eviction::Now, "no toleration");

        pod.spec.tolerations = vec![toleration(UNREACHABLE_TAINT, Some(300))];
        let at = t0 + Duration::from_secs(300);
        assert_eq!(eviction(&pod, &taints, t0), Eviction::At(at));
        assert_eq!(eviction(&pod, &taints, at), Eviction::Now);

        pod.spec
            .tolerations
            .push(toleration(UNREACHABLE_TAINT, None));
        assert_eq!(eviction(&pod, &taints, at), Eviction::Keep, "forever");

        pod.spec.tolerations = vec![toleration(NOT_READY_TAINT, None)];
        assert_eq!(eviction(&pod, &taints, t0), Eviction::Now, "another taint");

        pod.spec.tolerations = vec![toleration(UNREACHABLE_TAINT, Some(-5))];
        assert_eq!(
            eviction(&pod, &taints, t0),
            Eviction::Now,
            "negative is zero"
        );
    }

    #[test]
    fn only_no_execute_taints_evict_and_leaving_pods_are_left_alone() {
        let t0 = Instant::now();
        let no_schedule = taint(UNREACHABLE_TAINT, TaintEffect::NoSchedule, None);
        let mut pod = testing::pod("default", "web", "web");
        assert_eq!(eviction(&pod, &[(&no_schedule, t0)], t0), Eviction::Keep);
        let no_execute = taint(UNREACHABLE_TAINT, TaintEffect::NoExecute, None);
        pod.metadata.deletion_timestamp = Some(now_wall());
        assert_eq!(eviction(&pod, &[(&no_execute, t0)], t0), Eviction::Keep);
    }

    #[test]
    fn evictions_pause_when_more_than_the_threshold_is_unhealthy() {
        assert!(!evictions_paused(0, 0, 0.55));
        assert!(!evictions_paused(2, 1, 0.55));
        assert!(!evictions_paused(20, 11, 0.55));
        assert!(evictions_paused(20, 12, 0.55));
        assert!(
            evictions_paused(1, 1, 0.55),
            "the only node silent: likely our partition"
        );
    }

    #[test]
    fn one_node_starts_evicting_per_interval() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(10);
        assert_eq!(eviction_slot(None, t0, interval), Ok(()));
        assert_eq!(
            eviction_slot(Some(t0), t0 + Duration::from_secs(3), interval),
            Err(t0 + interval)
        );
        assert_eq!(eviction_slot(Some(t0), t0 + interval, interval), Ok(()));
    }

    #[test]
    fn the_earliest_deadline_of_several_taints_decides() {
        let t0 = Instant::now();
        let a = taint("a", TaintEffect::NoExecute, None);
        let b = taint("b", TaintEffect::NoExecute, None);
        let mut pod = testing::pod("default", "web", "web");
        pod.spec.tolerations = vec![toleration("a", Some(100)), toleration("b", Some(60))];
        let later = t0 + Duration::from_secs(10);
        assert_eq!(
            eviction(&pod, &[(&a, t0), (&b, later)], t0),
            Eviction::At(later + Duration::from_secs(60))
        );
    }
}
