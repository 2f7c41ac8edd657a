//! [`GangTracker`]: the members of every gang (pods labelled
//! `scheduling.x-k8s.io/pod-group: NAME`) as the scheduling loop's pod watch shows them, and
//! [`gang_status`], the PodGroup `status` they add up to (a pure function).
//!
//! The loop feeds the tracker every pod event, asks it for a group's counts when a member
//! changed (or started or stopped waiting at Permit), and writes the status of groups that
//! have a PodGroup object when it differs from the one stored.

use std::collections::HashMap;

use orchestra_api::resources::{Pod, PodGroupPhase, PodGroupStatus, PodPhase};

use crate::cache::pod_key;
use crate::plugins::coscheduling::POD_GROUP_LABEL;

/// A gang's members, counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GangCounts {
    /// Members bound to a node and not being deleted.
    pub scheduled: u32,
    /// Members running or succeeded.
    pub running: u32,
    /// Members failed.
    pub failed: u32,
}

/// One member as last seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Member {
    bound: bool,
    running: bool,
    failed: bool,
}

impl Member {
    fn of(pod: &Pod) -> Member {
        let phase = pod.status.as_ref().and_then(|s| s.phase);
        Member {
            bound: !pod.spec.node_name.is_empty() && pod.metadata.deletion_timestamp.is_none(),
            running: matches!(phase, Some(PodPhase::Running | PodPhase::Succeeded)),
            failed: phase == Some(PodPhase::Failed),
        }
    }
}

/// The key of a gang: `namespace/name`.
pub fn gang_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

/// The gang a pod belongs to (`namespace/name`), if it is labelled.
pub fn gang_of(pod: &Pod) -> Option<String> {
    pod.metadata
        .labels
        .get(POD_GROUP_LABEL)
        .filter(|g| !g.is_empty())
        .map(|g| gang_key(&pod.metadata.namespace, g))
}

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct GangTracker {
    /// Members per gang key, by pod key.
    members: HashMap<String, HashMap<String, Member>>,
    /// The gang of each member, by pod key (a pod's label may change).
    gang_of: HashMap<String, String>,
}

impl GangTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        GangTracker::default()
    }

    /// A pod added or changed: returns the gangs whose counts may have changed (the pod's
    /// gang, and the one it left if its label changed).
    pub fn observe(&mut self, pod: &Pod) -> Vec<String> {
        let key = pod_key(pod);
        let gang = gang_of(pod);
        let mut touched = Vec::new();
        if let Some(old) = self.gang_of.get(&key).filter(|g| Some(*g) != gang.as_ref()) {
            let old = old.clone();
            self.forget_member(&key, &old);
            touched.push(old);
        }
        if let Some(gang) = gang {
            let member = Member::of(pod);
            let members = self.members.entry(gang.clone()).or_default();
            if members.insert(key.clone(), member) != Some(member) {
                touched.push(gang.clone());
            }
            self.gang_of.insert(key, gang);
        }
        touched
    }

    /// A pod deleted: returns its gang, if it had one.
    pub fn forget(&mut self, pod_key: &str) -> Option<String> {
        let gang = self.gang_of.get(pod_key)?.clone();
        self.forget_member(pod_key, &gang);
        Some(gang)
    }

    fn forget_member(&mut self, pod_key: &str, gang: &str) {
        self.gang_of.remove(pod_key);
        if let Some(members) = self.members.get_mut(gang) {
            members.remove(pod_key);
            if members.is_empty() {
                self.members.remove(gang);
            }
        }
    }

    /// Forgets everything (before a relist is observed again).
    pub fn clear(&mut self) {
        self.members.clear();
        self.gang_of.clear();
    }

    /// The gangs with members.
    pub fn gangs(&self) -> impl Iterator<Item = &str> {
        self.members.keys().map(String::as_str)
    }

    /// A gang's members, counted.
    pub fn counts(&self, gang: &str) -> GangCounts {
        let mut counts = GangCounts::default();
        for m in self.members.get(gang).into_iter().flat_map(|m| m.values()) {
            counts.scheduled += u32::from(m.bound);
            counts.running += u32::from(m.running);
            counts.failed += u32::from(m.failed);
        }
        counts
    }
}

/// The status of a gang of minimum `min_member`, from its members' counts and how many of
/// its members wait at Permit (placed, not bound):
/// - `Failed` once a member failed;
/// - `Running` when at least `min_member` run (or succeeded);
/// - `Scheduled` when at least `min_member` are bound;
/// - `Scheduling` while some are bound or waiting;
/// - `Pending` otherwise.
pub fn gang_status(min_member: i32, counts: GangCounts, waiting: u32) -> PodGroupStatus {
    let min = u32::try_from(min_member.max(1)).unwrap_or(1);
    let phase = if counts.failed > 0 {
        PodGroupPhase::Failed
    } else if counts.running >= min {
        PodGroupPhase::Running
    } else if counts.scheduled >= min {
        PodGroupPhase::Scheduled
    } else if counts.scheduled > 0 || waiting > 0 {
        PodGroupPhase::Scheduling
    } else {
        PodGroupPhase::Pending
    };
    let count = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    PodGroupStatus {
        phase,
        scheduled: count(counts.scheduled),
        running: count(counts.running),
        failed: count(counts.failed),
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::meta::{ObjectMeta, Time};
    use orchestra_api::resources::{PodSpec, PodStatus};

    use super::*;

    fn member(name: &str, gang: &str, node: &str, phase: Option<PodPhase>) -> Pod {
        Pod {
            metadata: ObjectMeta::namespaced("ml", name).with_label(POD_GROUP_LABEL, gang),
            spec: PodSpec {
                node_name: node.into(),
                ..PodSpec::default()
            },
            status: phase.map(|p| PodStatus {
                phase: Some(p),
                ..PodStatus::default()
            }),
        }
    }

    #[test]
    fn members_are_counted_per_gang_as_they_change() {
        let mut t = GangTracker::new();
        assert_eq!(t.observe(&member("a", "g", "", None)), vec!["ml/g"]);
        // The same state again changes nothing.
        assert!(t.observe(&member("a", "g", "", None)).is_empty());
        t.observe(&member("b", "g", "n1", None));
        t.observe(&member("c", "g", "n1", Some(PodPhase::Running)));
        t.observe(&member("x", "h", "n1", Some(PodPhase::Failed)));
        assert_eq!(
            t.counts("ml/g"),
            GangCounts {
                scheduled: 2,
                running: 1,
                failed: 0
            }
        );
        // A label changed: counted in the new gang, not the old one.
        assert_eq!(
            t.observe(&member("c", "h", "n1", Some(PodPhase::Running))),
            vec!["ml/g", "ml/h"]
        );
        assert_eq!(t.counts("ml/g").running, 0);
        assert_eq!(t.counts("ml/h").failed, 1);
        // A member being deleted is not scheduled any more; a deleted one is gone.
        let mut leaving = member("b", "g", "n1", None);
        leaving.metadata.deletion_timestamp = Some(Time::now());
        t.observe(&leaving);
        assert_eq!(t.counts("ml/g").scheduled, 0);
        assert_eq!(t.forget("ml/b"), Some("ml/g".into()));
        assert_eq!(t.forget("ml/b"), None);
        // A pod without the label is no member.
        let mut plain = member("p", "g", "n1", None);
        plain.metadata.labels.clear();
        assert!(t.observe(&plain).is_empty());
        assert_eq!(t.gangs().count(), 2);
    }

    #[test]
    fn the_phase_follows_the_members() {
        let counts = |scheduled, running, failed| GangCounts {
            scheduled,
            running,
            failed,
        };
        let phase = |c, waiting| gang_status(3, c, waiting).phase;
        assert_eq!(phase(counts(0, 0, 0), 0), PodGroupPhase::Pending);
        assert_eq!(phase(counts(0, 0, 0), 2), PodGroupPhase::Scheduling);
        assert_eq!(phase(counts(2, 0, 0), 0), PodGroupPhase::Scheduling);
        assert_eq!(phase(counts(3, 2, 0), 0), PodGroupPhase::Scheduled);
        assert_eq!(phase(counts(3, 3, 0), 0), PodGroupPhase::Running);
        assert_eq!(phase(counts(3, 3, 1), 0), PodGroupPhase::Failed);
        let status = gang_status(3, counts(4, 3, 0), 0);
        assert_eq!((status.scheduled, status.running, status.failed), (4, 3, 0));
    }
}
