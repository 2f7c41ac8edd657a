//! Coscheduling (Permit): gangs, pods placed all together or not at all.
//!
//! A pod labelled `scheduling.x-k8s.io/pod-group: NAME` belongs to the group `NAME` of its
//! namespace (the names of the sig-scheduling coscheduling plugin). The group's minimum `N`
//! is the `spec.minMember` of the PodGroup object `NAME` in that namespace
//! ([`orchestra_api::resources::PodGroup`], which the snapshot holds:
//! [`ClusterSnapshot::gang_spec`]); without one, the annotation
//! `scheduling.x-k8s.io/min-available: N` on its pods (how gangs were declared before the
//! kind existed). A member with neither is denied, and retried when its PodGroup appears.
//! Once a member is placed (assumed on its node, holding its room), Permit counts the
//! group's members placed or bound in the snapshot: fewer than `N`, the member waits (for
//! the PodGroup's `scheduleTimeoutSeconds`, else at most `permitWaitingTimeSeconds`, 60 by
//! default); `N` or more, it is allowed, and the
//! scheduling loop re-runs Permit for the waiting members, which are then allowed too. When
//! a waiting member times out or is denied, every waiting member of its group is rejected
//! with it ([`PermitPlugin::shares_fate`]): their room is released and they go back to the
//! queue, after their backoff.
//!
//! ```yaml
//! pluginConfig:
//!   - name: Coscheduling
//!     args: {permitWaitingTimeSeconds: 30}
//! ```

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::framework::{
    ClusterEvent, CycleState, Extensions, PermitDecision, PermitPlugin, Plugin, QueueingHint,
    Status,
};
use crate::snapshot::{ClusterSnapshot, PodInfo};

/// The label naming a pod's group (the same as the API's).
pub use orchestra_api::resources::POD_GROUP_LABEL;
/// The annotation giving the group's minimum member count when it has no PodGroup object.
pub const MIN_AVAILABLE_ANNOTATION: &str = "scheduling.x-k8s.io/min-available";
/// How long a member waits for its group by default.
pub const DEFAULT_WAIT_SECONDS: u64 = 60;

/// The plugin's arguments (`pluginConfig[].args`).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CoschedulingArgs {
    /// How long a placed member waits for the rest of its group, in seconds (at least 1).
    #[serde(default = "default_wait")]
    pub permit_waiting_time_seconds: u64,
}

fn default_wait() -> u64 {
    DEFAULT_WAIT_SECONDS
}

impl Default for CoschedulingArgs {
    fn default() -> Self {
        CoschedulingArgs {
            permit_waiting_time_seconds: DEFAULT_WAIT_SECONDS,
        }
    }
}

/// See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Coscheduling {
    wait: Duration,
}

impl Default for Coscheduling {
    fn default() -> Self {
        Coscheduling {
            wait: Duration::from_secs(DEFAULT_WAIT_SECONDS),
        }
    }
}

impl Coscheduling {
    /// The plugin's name.
    pub const NAME: &'static str = "Coscheduling";

    /// The plugin with its arguments; an error names the bad argument.
    pub fn new(args: CoschedulingArgs) -> Result<Self, String> {
        if args.permit_waiting_time_seconds == 0 {
            return Err("permitWaitingTimeSeconds: must be at least 1".into());
        }
        Ok(Coscheduling {
            wait: Duration::from_secs(args.permit_waiting_time_seconds),
        })
    }

    /// How long a member waits.
    pub fn wait(&self) -> Duration {
        self.wait
    }
}

/// A pod's group name, if it has one.
pub fn pod_group(pod: &PodInfo) -> Option<&str> {
    pod.pod
        .metadata
        .labels
        .get(POD_GROUP_LABEL)
        .map(String::as_str)
        .filter(|g| !g.is_empty())
}

/// What Permit holds a gang to: its minimum, and how long a placed member waits (`None`:
/// the plugin's `permitWaitingTimeSeconds`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GangRule {
    /// How many members must be placed.
    pub min_member: u32,
    /// The PodGroup's `scheduleTimeoutSeconds`, if set.
    pub timeout: Option<Duration>,
}

/// The rule of `pod`'s group `group`: from its PodGroup object in the snapshot, else from
/// the pod's `min-available` annotation; the error says what is missing or wrong.
pub fn gang_rule(
    pod: &PodInfo,
    group: &str,
    cluster: &ClusterSnapshot,
) -> Result<GangRule, String> {
    if let Some(spec) = cluster.gang_spec(pod.namespace(), group) {
        let min_member = u32::try_from(spec.spec.min_member)
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| {
                format!(
                    "PodGroup {group}: spec.minMember is {}; it must be at least 1",
                    spec.spec.min_member
                )
            })?;
        let timeout = spec
            .spec
            .schedule_timeout_seconds
            .and_then(|t| u64::try_from(t).ok())
            .filter(|t| *t >= 1)
            .map(Duration::from_secs);
        return Ok(GangRule {
            min_member,
            timeout,
        });
    }
    if !pod
        .pod
        .metadata
        .annotations
        .contains_key(MIN_AVAILABLE_ANNOTATION)
    {
        return Err(format!(
            "pod group {group}: there is no PodGroup {group:?} in namespace {:?} and the pod has no annotation {MIN_AVAILABLE_ANNOTATION}; create the PodGroup (spec.minMember) or set the annotation",
            pod.namespace()
        ));
    }
    Ok(GangRule {
        min_member: min_available(pod, group)?,
        timeout: None,
    })
}

/// The group's minimum from a member's annotation, or what is wrong with it.
pub fn min_available(pod: &PodInfo, group: &str) -> Result<u32, String> {
    let text = pod
        .pod
        .metadata
        .annotations
        .get(MIN_AVAILABLE_ANNOTATION)
        .ok_or_else(|| {
            format!(
                "pod group {group}: annotation {MIN_AVAILABLE_ANNOTATION} is missing; set it to the group's minimum member count"
            )
        })?;
    match text.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "pod group {group}: annotation {MIN_AVAILABLE_ANNOTATION} is {text:?}; it must be a whole number of at least 1"
        )),
    }
}

/// The members of a group placed or bound in the snapshot (not terminating).
pub fn placed_members(cluster: &ClusterSnapshot, namespace: &str, group: &str) -> u32 {
    cluster
        .gang_groups(namespace, group)
        .filter(|g| g.sample().pod.metadata.deletion_timestamp.is_none())
        .map(|g| g.len())
        .sum()
}

impl Plugin for Coscheduling {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    /// Permit denies only a pod whose group has no rule or a wrong one: its PodGroup
    /// created or changed helps it, as does the pod's own update (the queue retries updated
    /// pods); no other cluster change does.
    fn queueing_hint(&self, pod: &PodInfo, event: &ClusterEvent<'_>) -> QueueingHint {
        QueueingHint::queue_if(match event {
            ClusterEvent::Resync => true,
            ClusterEvent::PodGroupChanged(group) => {
                group.metadata.namespace == pod.namespace()
                    && pod_group(pod) == Some(group.metadata.name.as_str())
            }
            _ => false,
        })
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new().permit(self)
    }
}

impl PermitPlugin for Coscheduling {
    fn permit(
        &self,
        _: &CycleState,
        pod: &PodInfo,
        _: &str,
        cluster: &ClusterSnapshot,
    ) -> PermitDecision {
        let Some(group) = pod_group(pod) else {
            return PermitDecision::Allow;
        };
        let rule = match gang_rule(pod, group, cluster) {
            Ok(rule) => rule,
            Err(message) => return PermitDecision::Deny(Status::unresolvable(message)),
        };
        if placed_members(cluster, pod.namespace(), group) >= rule.min_member {
            PermitDecision::Allow
        } else {
            PermitDecision::Wait(rule.timeout.unwrap_or(self.wait))
        }
    }

    fn shares_fate(&self, rejected: &PodInfo, waiting: &PodInfo) -> bool {
        rejected.namespace() == waiting.namespace()
            && pod_group(rejected).is_some()
            && pod_group(rejected) == pod_group(waiting)
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::meta::ObjectMeta;
    use orchestra_api::resources::{Node, Pod, PodSpec};

    use super::*;

    fn member(name: &str, node: &str, min: &str) -> Pod {
        let mut metadata = ObjectMeta::namespaced("default", name).with_label(POD_GROUP_LABEL, "g");
        metadata
            .annotations
            .insert(MIN_AVAILABLE_ANNOTATION.into(), min.into());
        Pod {
            metadata,
            spec: PodSpec {
                node_name: node.into(),
                ..PodSpec::default()
            },
            status: None,
        }
    }

    #[test]
    fn members_wait_until_the_minimum_is_placed() {
        let plugin = Coscheduling::default();
        let n = Node {
            metadata: ObjectMeta::named("n"),
            ..Node::default()
        };
        let mut cluster =
            ClusterSnapshot::from_objects([n], [member("a", "n", "3"), member("b", "n", "3")])
                .unwrap();
        let c = Arc::new(PodInfo::new(member("c", "", "3")).unwrap());
        let state = CycleState::new();
        // Two placed: c waits until it is placed too.
        assert_eq!(
            plugin.permit(&state, &c, "n", &cluster),
            PermitDecision::Wait(Duration::from_secs(60))
        );
        cluster.assume(c.clone(), "n").unwrap();
        assert_eq!(
            plugin.permit(&state, &c, "n", &cluster),
            PermitDecision::Allow
        );
        // Not in the group: allowed; another namespace's group of the same name: separate.
        let loner = PodInfo::new(Pod::default()).unwrap();
        assert_eq!(
            plugin.permit(&state, &loner, "n", &cluster),
            PermitDecision::Allow
        );
        assert_eq!(placed_members(&cluster, "other", "g"), 0);
        // Members with other labels besides (another pod group of the snapshot) count too;
        // a terminating one does not.
        let mut odd = member("d", "n", "3");
        odd.metadata.labels.insert("role".into(), "driver".into());
        cluster.add_pod(odd).unwrap();
        let mut leaving = member("e", "n", "3");
        leaving.metadata.deletion_timestamp = Some(orchestra_api::meta::Time::now());
        cluster.add_pod(leaving).unwrap();
        assert_eq!(placed_members(&cluster, "default", "g"), 4);
        assert!(plugin.shares_fate(&c, &PodInfo::new(member("z", "", "3")).unwrap()));
        assert!(!plugin.shares_fate(&c, &loner));
    }

    #[test]
    fn a_pod_group_object_sets_the_minimum_and_the_wait() {
        use orchestra_api::resources::{PodGroup, PodGroupSpec};
        let plugin = Coscheduling::default();
        let n = Node {
            metadata: ObjectMeta::named("n"),
            ..Node::default()
        };
        // Two placed members whose annotation says 3; the PodGroup says 2 and wins.
        let mut cluster =
            ClusterSnapshot::from_objects([n], [member("a", "n", "3"), member("b", "n", "3")])
                .unwrap();
        let c = PodInfo::new(member("c", "", "3")).unwrap();
        let state = CycleState::new();
        let group = |min_member, timeout| PodGroup {
            metadata: ObjectMeta::namespaced("default", "g"),
            spec: PodGroupSpec {
                min_member,
                schedule_timeout_seconds: timeout,
            },
            status: None,
        };
        cluster.set_gang_spec(group(2, None));
        assert_eq!(
            plugin.permit(&state, &c, "n", &cluster),
            PermitDecision::Allow
        );
        // Raised to 5 with a 7 s timeout: the member waits 7 s.
        cluster.set_gang_spec(group(5, Some(7)));
        assert_eq!(
            plugin.permit(&state, &c, "n", &cluster),
            PermitDecision::Wait(Duration::from_secs(7))
        );
        // Without the object nor the annotation: denied, saying what to add.
        assert!(cluster.remove_gang_spec("default", "g").is_some());
        let mut bare = member("d", "", "1");
        bare.metadata.annotations.clear();
        match plugin.permit(&state, &PodInfo::new(bare).unwrap(), "n", &cluster) {
            PermitDecision::Deny(status) => assert!(
                status
                    .message()
                    .contains("there is no PodGroup \"g\" in namespace \"default\""),
                "{}",
                status.message()
            ),
            other => panic!("{other:?}"),
        }
        // Its hint: the PodGroup of its own group and namespace, nothing else.
        let pending = PodInfo::new(member("e", "", "1")).unwrap();
        let mine = group(2, None);
        let mut elsewhere = group(2, None);
        elsewhere.metadata.namespace = "other".into();
        assert_eq!(
            plugin.queueing_hint(&pending, &ClusterEvent::PodGroupChanged(&mine)),
            QueueingHint::Queue
        );
        assert_eq!(
            plugin.queueing_hint(&pending, &ClusterEvent::PodGroupChanged(&elsewhere)),
            QueueingHint::Skip
        );
    }

    #[test]
    fn a_bad_minimum_is_denied_with_the_reason() {
        let plugin = Coscheduling::default();
        let cluster = ClusterSnapshot::new();
        let state = CycleState::new();
        let bad = PodInfo::new(member("a", "", "zero")).unwrap();
        match plugin.permit(&state, &bad, "n", &cluster) {
            PermitDecision::Deny(status) => assert_eq!(
                status.message(),
                "pod group g: annotation scheduling.x-k8s.io/min-available is \"zero\"; it must be a whole number of at least 1"
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            Coscheduling::new(CoschedulingArgs {
                permit_waiting_time_seconds: 0
            })
            .is_err()
        );
    }
}
