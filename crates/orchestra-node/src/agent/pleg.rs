//! The pod lifecycle event generator (kubelet's PLEG): one runtime relist per node per period
//! instead of every pod worker reading the runtime on its own timer.
//!
//! Every [`sync_interval`](super::AgentConfig::sync_interval) the agent asks the runtime for a
//! [summary](crate::runtime::RuntimeDriver::list_summary) of all its sandboxes and containers
//! (ids and states only), groups it by pod uid into a [`Relist`], and compares it with the
//! previous one ([`changed_pods`]). Only the workers of pods whose sandboxes or containers
//! appeared, vanished or changed state are woken; they then read their own pod's statuses.
//! An idle pod costs no per-pod runtime call, so a node's cost per period is one list call
//! whatever it runs. A worker still resyncs on its own every
//! [`resync_interval`](super::AgentConfig::resync_interval) as a safety net, and probes keep
//! their own timers.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;

use crate::runtime::{
    ContainerId, ContainerState, RuntimeDriver, RuntimeSummary, SandboxId, SandboxState,
};

/// One pod's sandboxes and containers with their states, each list sorted by id.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodRecord {
    /// The pod's sandboxes.
    pub sandboxes: Vec<(SandboxId, SandboxState)>,
    /// The containers in those sandboxes.
    pub containers: Vec<(ContainerId, ContainerState)>,
}

/// One relist of the runtime, by pod uid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relist {
    /// What each pod has in the runtime.
    pub pods: HashMap<String, PodRecord>,
}

impl Relist {
    /// Groups a runtime summary by pod: a sandbox by its pod uid, a container by its
    /// sandbox's. A container whose sandbox is not listed belongs to no pod (it shows up with
    /// its sandbox in a later relist).
    pub fn new(summary: RuntimeSummary) -> Relist {
        let mut pods: HashMap<String, PodRecord> = HashMap::new();
        let mut owners: HashMap<SandboxId, String> =
            HashMap::with_capacity(summary.sandboxes.len());
        for sandbox in summary.sandboxes {
            owners.insert(sandbox.id.clone(), sandbox.pod_uid.clone());
            pods.entry(sandbox.pod_uid)
                .or_default()
                .sandboxes
                .push((sandbox.id, sandbox.state));
        }
        for container in summary.containers {
            if let Some(record) = owners
                .get(&container.sandbox)
                .and_then(|uid| pods.get_mut(uid))
            {
                record.containers.push((container.id, container.state));
            }
        }
        for record in pods.values_mut() {
            record.sandboxes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            record.containers.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        Relist { pods }
    }
}

/// The pods whose runtime state differs between two relists: a sandbox or container that
/// appeared, vanished or changed state, or a pod that appeared or vanished altogether.
pub fn changed_pods(previous: &Relist, current: &Relist) -> BTreeSet<String> {
    let mut changed: BTreeSet<String> = current
        .pods
        .iter()
        .filter(|(uid, record)| previous.pods.get(*uid) != Some(record))
        .map(|(uid, _)| uid.clone())
        .collect();
    changed.extend(
        previous
            .pods
            .keys()
            .filter(|uid| !current.pods.contains_key(*uid))
            .cloned(),
    );
    changed
}

/// The running workers' wake-up handles, by pod uid.
#[derive(Default)]
pub(super) struct Wakers {
    workers: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wakers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Notify>>> {
        // Every update is a single insert or remove: a poisoned map is still whole.
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers the worker of pod `uid`.
    pub(super) fn insert(&self, uid: String, notify: Arc<Notify>) {
        self.lock().insert(uid, notify);
    }

    /// Forgets the worker of pod `uid` (it ended).
    pub(super) fn remove(&self, uid: &str) {
        self.lock().remove(uid);
    }

    /// Wakes the workers of `uids` (a worker busy right now runs again when it next waits).
    fn wake(&self, uids: &BTreeSet<String>) {
        let workers = self.lock();
        for uid in uids {
            if let Some(notify) = workers.get(uid) {
                notify.notify_one();
            }
        }
    }
}

/// Relists `runtime` every `period` and wakes the workers of the pods that changed. Never
/// returns; a failed relist is logged and the next one compares against the last good one.
pub(super) async fn run<R: RuntimeDriver + ?Sized>(
    runtime: Arc<R>,
    wakers: Arc<Wakers>,
    period: Duration,
    node: String,
) {
    let mut previous = Relist::default();
    let mut ticks = tokio::time::interval(period.max(Duration::from_millis(1)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        match runtime.list_summary().await {
            Ok(summary) => {
                let current = Relist::new(summary);
                wakers.wake(&changed_pods(&previous, &current));
                previous = current;
            }
            Err(err) => {
                tracing::warn!(%node, %err, "relisting the runtime failed; retrying next period");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{ContainerSummary, SandboxSummary};

    fn sandbox(id: &str, uid: &str, state: SandboxState) -> SandboxSummary {
        SandboxSummary {
            id: id.into(),
            pod_uid: uid.into(),
            state,
        }
    }

    fn container(id: &str, sandbox: &str, state: ContainerState) -> ContainerSummary {
        ContainerSummary {
            id: id.into(),
            sandbox: sandbox.into(),
            state,
        }
    }

    /// Pods a and b, each with a ready sandbox and a running container.
    fn two_pods() -> RuntimeSummary {
        RuntimeSummary {
            sandboxes: vec![
                sandbox("sa", "a", SandboxState::Ready),
                sandbox("sb", "b", SandboxState::Ready),
            ],
            containers: vec![
                container("ca", "sa", ContainerState::Running),
                container("cb", "sb", ContainerState::Running),
            ],
        }
    }

    fn uids(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn groups_containers_under_their_sandbox_pod() {
        let mut summary = two_pods();
        summary
            .containers
            .push(container("c-orphan", "s-unknown", ContainerState::Running));
        let relist = Relist::new(summary);
        assert_eq!(relist.pods.len(), 2);
        assert_eq!(
            relist.pods["a"],
            PodRecord {
                sandboxes: vec![("sa".into(), SandboxState::Ready)],
                containers: vec![("ca".into(), ContainerState::Running)],
            }
        );
    }

    #[test]
    fn identical_relists_wake_nobody() {
        let previous = Relist::new(two_pods());
        let mut reordered = two_pods();
        reordered.sandboxes.reverse();
        reordered.containers.reverse();
        assert_eq!(changed_pods(&previous, &Relist::new(reordered)), uids(&[]));
    }

    #[test]
    fn a_container_state_change_wakes_only_its_pod() {
        let previous = Relist::new(two_pods());
        let mut summary = two_pods();
        summary.containers[0].state = ContainerState::Exited;
        assert_eq!(changed_pods(&previous, &Relist::new(summary)), uids(&["a"]));
    }

    #[test]
    fn a_new_or_vanished_container_wakes_its_pod() {
        let previous = Relist::new(two_pods());
        let mut added = two_pods();
        added
            .containers
            .push(container("cb2", "sb", ContainerState::Created));
        assert_eq!(changed_pods(&previous, &Relist::new(added)), uids(&["b"]));
        let mut removed = two_pods();
        removed.containers.remove(0);
        assert_eq!(changed_pods(&previous, &Relist::new(removed)), uids(&["a"]));
    }

    #[test]
    fn a_sandbox_change_wakes_its_pod() {
        let previous = Relist::new(two_pods());
        let mut stopped = two_pods();
        stopped.sandboxes[1].state = SandboxState::NotReady;
        assert_eq!(changed_pods(&previous, &Relist::new(stopped)), uids(&["b"]));
        // A replacement sandbox (new id) with the same state is a change too.
        let mut replaced = two_pods();
        replaced.sandboxes[1].id = "sb2".into();
        replaced.containers[1].sandbox = "sb2".into();
        assert_eq!(
            changed_pods(&previous, &Relist::new(replaced)),
            uids(&["b"])
        );
    }

    #[test]
    fn pods_that_appear_or_vanish_are_woken() {
        let previous = Relist::new(two_pods());
        let mut summary = two_pods();
        summary.sandboxes.remove(0);
        summary.containers.remove(0);
        summary
            .sandboxes
            .push(sandbox("sc", "c", SandboxState::Ready));
        assert_eq!(
            changed_pods(&previous, &Relist::new(summary)),
            uids(&["a", "c"])
        );
        assert_eq!(
            changed_pods(&Relist::default(), &previous),
            uids(&["a", "b"])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn wakes_registered_workers_of_changed_pods_only() {
        let wakers = Wakers::default();
        let (a, b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        wakers.insert("a".into(), a.clone());
        wakers.insert("b".into(), b.clone());
        wakers.wake(&uids(&["a", "gone"]));
        // The permit is stored: a worker that was busy sees it when it next waits.
        tokio::time::timeout(Duration::from_secs(1), a.notified())
            .await
            .expect("a was woken");
        assert!(
            tokio::time::timeout(Duration::from_secs(1), b.notified())
                .await
                .is_err(),
            "b did not change and must not be woken"
        );
        wakers.remove("a");
        wakers.wake(&uids(&["a"]));
        assert!(
            tokio::time::timeout(Duration::from_secs(1), a.notified())
                .await
                .is_err()
        );
    }
}
