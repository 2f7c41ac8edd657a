//! [`SchedulerLoop`]: the scheduling loop over any [`Client`].
//!
//! It watches every pod and node. Pending pods (no `spec.nodeName`) whose `schedulerName` is
//! one of the profiles' go to the [`SchedulingQueue`]; assigned pods and nodes feed the
//! [`SchedulerCache`]. Once both watches listed, the loop pops the next pod, runs its
//! profile's framework on the cache's snapshot (read in place, never copied), runs Reserve
//! and Permit, assumes the pod onto the chosen node and binds it in a background task
//! (PreBind, Bind, PostBind; [`crate::plugins::DefaultBinder`] calls [`Client::bind`]), so
//! that the next cycle does not wait for the API.
//!
//! - Bound: a `Scheduled` Normal event ("Successfully assigned ns/pod to node") is recorded
//!   on the pod.
//! - No node fits: a `FailedScheduling` Warning event with the summary
//!   ("0/N nodes are available: ...") is recorded on the pod, which waits as unschedulable
//!   until a cluster event that may help it or the flush. Which events may help is asked of
//!   the plugins that rejected it ([`crate::framework::hint`]): a pod short of CPU moves
//!   when a pod leaves or a node's allocatable grows, one rejected for a taint when taints
//!   change; a node heartbeat moves no pod.
//! - The binding fails (a conflict, the pod gone): the assumption is forgotten and the pod
//!   retried after its backoff (or dropped, when the watch shows it bound or deleted).
//!
//! Events go through an [`EventSink`] per profile (its scheduler name is the event's source):
//! queued without waiting, recorded by a background task, dropped and counted when the queue
//! is full, so that recording never slows a cycle or fails it.
//!
//! [`SchedulerLoop::run`] returns when its shutdown future completes, after the bindings in
//! flight have finished.
//!
//! - Permit says wait (a gang's member): the pod stays assumed on its node, holding its
//!   room, and Permit is asked again whenever another pod is placed; allowed, it is bound;
//!   denied or timed out, it is rejected with the waiting pods sharing its fate
//!   ([`crate::framework::PermitPlugin::shares_fate`]): their room is freed and they go back
//!   to the queue after their backoff.
//! - PostFilter (DefaultPreemption) proposes a node and victims: the pod is nominated
//!   there (`status.nominatedNodeName`, and in the cache so that pods of lower priority leave
//!   the room alone), the victims are deleted with their grace period and a `Preempted`
//!   event, and the pod is retried when they are gone: their deletion moves it out of the
//!   unschedulable pods, and an idle loop takes it without waiting out its backoff.
//! - Gangs: the loop also watches PodGroups (`scheduling.x-k8s.io/v1alpha1`), which
//!   Coscheduling reads from the cache's snapshot, and tracks every gang's members
//!   ([`GangTracker`]); when a gang with a PodGroup changes (a member bound, running,
//!   failed, deleted, waiting at Permit or rejected there), its `status` ([`gang_status`])
//!   is written through the status subresource by a background task, only when it differs
//!   from the stored one.
//! - Cluster events for the queueing hints: nodes added, updated and deleted, assigned pods
//!   deleted and added (bound by anyone, or placed by this loop), nominations cleared (the
//!   preemptor placed elsewhere, deleted or nominated elsewhere), PodGroups changed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use orchestra_api::ApiError;
use orchestra_api::events::EventSink;
use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{Node, Pod, PodGroup, PodGroupStatus};
use orchestra_api::watcher::{self, WatcherConfig};
use orchestra_api::{Client, watcher::Event as WatchEvent};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cache::{SchedulerCache, pod_key};
use crate::framework::CycleState;
use crate::framework::{ApiHandle, DEFAULT_SCHEDULER_NAME, Framework, PermitOutcome, Profiles};
use crate::framework::{ClusterEvent, NodeChange, QueueingHint};
use crate::gang_status::{GangTracker, gang_key, gang_of, gang_status};
use crate::queue::{LessFn, SchedulingQueue};
use crate::snapshot::{NodeInfo, PodInfo, SnapshotError};

/// The reason of the event recorded when a pod fits nowhere.
pub const FAILED_SCHEDULING: &str = "FailedScheduling";

/// The reason of the event recorded when a pod is bound to its node.
pub const SCHEDULED: &str = "Scheduled";

/// The reason of the event recorded on a pod evicted by preemption.
pub const PREEMPTED: &str = "Preempted";

/// A victim's grace period when its spec sets none (Kubernetes' default).
pub const DEFAULT_GRACE_SECONDS: i64 = 30;

/// Why the loop cannot start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoopError {
    /// No profile: the loop would schedule nothing.
    #[error("the scheduler has no profiles: configure at least one schedulerName")]
    NoProfiles,
    /// A profile has no Bind plugin: its pods could never be bound.
    #[error(
        "profile {0:?} has no Bind plugin: enable DefaultBinder (or your own binder) at the bind extension point"
    )]
    NoBinder(String),
}

/// What a binding task reports.
#[derive(Debug)]
struct Bound {
    key: String,
    node: String,
    result: Result<(), String>,
}

/// A pod placed (assumed) whose Permit said wait.
struct Waiting {
    framework: Arc<Framework>,
    state: CycleState,
    info: Arc<PodInfo>,
    node: String,
    deadline: Instant,
    /// The plugins that asked to wait, for messages.
    plugins: String,
}

/// The scheduling loop; see the [module docs](self).
pub struct SchedulerLoop<C: Client> {
    client: C,
    profiles: Arc<Profiles>,
    queue: SchedulingQueue,
    cache: SchedulerCache,
    start: Instant,
    binds: JoinSet<Bound>,
    /// Pods waiting at Permit, by key (ordered, so that runs repeat).
    waiting: BTreeMap<String, Waiting>,
    /// One event sink per profile, by scheduler name (the events' source).
    events: Arc<BTreeMap<String, EventSink>>,
    /// Every gang's members.
    gangs: GangTracker,
    /// The status last handed to the writer per gang, until the watch shows it stored.
    gangs_sent: HashMap<String, PodGroupStatus>,
    /// The PodGroup status writer's queue (set while [`SchedulerLoop::run`] runs).
    gang_writes: Option<mpsc::UnboundedSender<GangWrite>>,
    /// A PodGroup's rule changed: Permit is asked again for the waiting pods.
    waiting_changed: bool,
}

/// A PodGroup status to write.
#[derive(Debug)]
struct GangWrite {
    namespace: String,
    name: String,
    status: PodGroupStatus,
}

impl<C: Client> std::fmt::Debug for SchedulerLoop<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulerLoop")
            .field("queue", &self.queue)
            .field("binds", &self.binds.len())
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

impl<C: Client> SchedulerLoop<C> {
    /// A loop scheduling the pods of `profiles`' scheduler names through `client`. The active
    /// queue is ordered by the QueueSort of the `default-scheduler` profile (else of the
    /// first profile by name): one order for the whole queue, as in kube-scheduler.
    pub fn new(client: C, profiles: Profiles) -> Result<Self, LoopError> {
        let mut names = profiles.names();
        names.sort_unstable();
        let sorter: Arc<Framework> = profiles
            .get(DEFAULT_SCHEDULER_NAME)
            .or_else(|| names.first().and_then(|n| profiles.get(n)))
            .cloned()
            .ok_or(LoopError::NoProfiles)?;
        if let Some(name) = names.iter().find(|n| {
            profiles
                .get(n)
                .is_some_and(|f| f.profile().bind_plugins() == 0)
        }) {
            return Err(LoopError::NoBinder((*name).to_owned()));
        }
        let less: LessFn = Arc::new(move |a, b| sorter.less(a, b));
        let events = names
            .iter()
            .map(|name| {
                let sink = EventSink::for_component(client.clone(), name, "");
                ((*name).to_owned(), sink)
            })
            .collect();
        Ok(SchedulerLoop {
            client,
            profiles: Arc::new(profiles),
            queue: SchedulingQueue::new(less),
            cache: SchedulerCache::new(),
            start: Instant::now(),
            binds: JoinSet::new(),
            waiting: BTreeMap::new(),
            events: Arc::new(events),
            gangs: GangTracker::new(),
            gangs_sent: HashMap::new(),
            gang_writes: None,
            waiting_changed: false,
        })
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Runs until `shutdown` completes, then waits for the bindings in flight.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) {
        let mut pods = watcher::watcher::<Pod, _>(self.client.clone(), WatcherConfig::default());
        let mut nodes = watcher::watcher::<Node, _>(self.client.clone(), WatcherConfig::default());
        let mut groups =
            watcher::watcher::<PodGroup, _>(self.client.clone(), WatcherConfig::default());
        let (writes, to_write) = mpsc::unbounded_channel();
        self.gang_writes = Some(writes);
        let writer = tokio::spawn(write_gang_statuses(self.client.clone(), to_write));
        let (mut pods_listed, mut nodes_listed) = (false, false);
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let now = self.now();
            let ready = pods_listed && nodes_listed && self.queue.has_ready(now);
            let permit_deadline = self.waiting.values().map(|w| w.deadline).min();
            let wakeup = match (
                self.queue.next_wakeup().map(|at| self.start + at),
                permit_deadline,
            ) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            if permit_deadline.is_some_and(|d| d <= Instant::now()) {
                self.expire_waiting().await;
                continue;
            }
            if std::mem::take(&mut self.waiting_changed) {
                self.recheck_waiting().await;
                continue;
            }
            // Events first, so that every cycle sees the freshest cluster; then bindings;
            // then one cycle.
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(event) = pods.next() => match event {
                    Ok(event) => {
                        pods_listed |= matches!(event, WatchEvent::Restarted(_));
                        self.on_pod_event(event);
                    }
                    Err(e) => tracing::warn!("pod watch: {e}"),
                },
                Some(event) = nodes.next() => match event {
                    Ok(event) => {
                        nodes_listed |= matches!(event, WatchEvent::Restarted(_));
                        self.on_node_event(event);
                    }
                    Err(e) => tracing::warn!("node watch: {e}"),
                },
                // Not waited for before scheduling: a gang member denied for want of its
                // PodGroup is retried when the PodGroup shows up.
                Some(event) = groups.next() => match event {
                    Ok(event) => self.on_gang_event(event),
                    Err(e) => tracing::warn!("pod group watch: {e}"),
                },
                Some(done) = self.binds.join_next(), if !self.binds.is_empty() => {
                    self.on_bound(done);
                }
                () = std::future::ready(()), if ready => self.schedule_one().await,
                () = tokio::time::sleep_until(wakeup.unwrap_or(Instant::now())), if wakeup.is_some() => {}
            }
        }
        while let Some(done) = self.binds.join_next().await {
            self.on_bound(done);
        }
        // The writer ends once it wrote what it was handed.
        self.gang_writes = None;
        if let Err(e) = writer.await {
            tracing::error!("pod group status writer: {e}");
        }
    }

    fn is_ours(&self, pod: &Pod) -> bool {
        self.profiles.for_pod(pod).is_some() && pod.metadata.deletion_timestamp.is_none()
    }

    fn enqueue(&mut self, pod: Arc<Pod>, now: Duration) {
        let key = pod_key(&pod);
        let nominated = pod
            .status
            .as_ref()
            .map(|s| s.nominated_node_name.clone())
            .unwrap_or_default();
        match PodInfo::new(pod) {
            // A pod placed and binding keeps its place (in flight, or gone once bound): a
            // late unassigned update must not queue it again.
            Ok(info) if self.cache.is_assumed(&key) => {
                if self.queue.place(&key).is_some() {
                    self.queue.update(Arc::new(info), now);
                }
            }
            Ok(info) => {
                let info = Arc::new(info);
                if nominated.is_empty() || self.nominate(info.clone(), &nominated, now).is_err() {
                    self.clear_nomination(&key, now);
                }
                self.queue.add(info, now);
            }
            Err(e) => tracing::warn!("not scheduling {key}: {e}"),
        }
    }

    fn on_pod_event(&mut self, event: WatchEvent<Pod>) {
        let now = self.now();
        match event {
            WatchEvent::Restarted(pods) => {
                self.gangs.clear();
                for pod in &pods {
                    self.gangs.observe(pod);
                }
                let (assigned, pending): (Vec<Arc<Pod>>, Vec<Arc<Pod>>) =
                    pods.into_iter().partition(|p| !p.spec.node_name.is_empty());
                for error in self.cache.sync_pods(assigned) {
                    tracing::warn!("pod cache: {error}");
                }
                let pending: Vec<Arc<Pod>> =
                    pending.into_iter().filter(|p| self.is_ours(p)).collect();
                let keep: HashSet<String> = pending.iter().map(|p| pod_key(p)).collect();
                let gone: Vec<String> = self
                    .queue
                    .keys()
                    .filter(|k| !keep.contains(*k))
                    .map(str::to_owned)
                    .collect();
                for key in gone {
                    self.queue.delete(&key);
                    self.clear_nomination(&key, now);
                }
                for pod in pending {
                    self.enqueue(pod, now);
                }
                self.queue.move_all(now);
                self.refresh_all_gangs();
            }
            WatchEvent::Applied(pod) => {
                let key = pod_key(&pod);
                for gang in self.gangs.observe(&pod) {
                    self.refresh_gang(&gang);
                }
                if !pod.spec.node_name.is_empty() {
                    self.queue.delete(&key);
                    let known = self.cache.snapshot().pod_node(&key).is_some();
                    if let Err(e) = self.cache.add_or_update_pod(pod) {
                        tracing::warn!("pod cache: {e}");
                    } else if !known {
                        self.assigned_pod_added(&key, now);
                    }
                } else if self.is_ours(&pod) {
                    self.enqueue(pod, now);
                } else {
                    self.queue.delete(&key);
                    self.clear_nomination(&key, now);
                }
            }
            WatchEvent::Deleted(pod) => {
                let key = pod_key(&pod);
                let waited = self.waiting.remove(&key);
                if let Some(mut w) = waited {
                    w.framework.run_unreserve(&mut w.state, &w.info, &w.node);
                }
                if let Some(gang) = self.gangs.forget(&key) {
                    self.refresh_gang(&gang);
                }
                self.queue.delete(&key);
                self.clear_nomination(&key, now);
                if self.cache.remove_pod(&key) {
                    self.pod_deleted(now);
                }
            }
        }
    }

    fn on_gang_event(&mut self, event: WatchEvent<PodGroup>) {
        let now = self.now();
        match event {
            WatchEvent::Restarted(groups) => {
                let keep: HashSet<String> = groups
                    .iter()
                    .map(|g| gang_key(&g.metadata.namespace, &g.metadata.name))
                    .collect();
                let gone: Vec<(String, String)> = self
                    .cache
                    .snapshot()
                    .gang_specs()
                    .filter(|g| !keep.contains(&gang_key(&g.metadata.namespace, &g.metadata.name)))
                    .map(|g| (g.metadata.namespace.clone(), g.metadata.name.clone()))
                    .collect();
                for (namespace, name) in gone {
                    self.cache.remove_gang_spec(&namespace, &name);
                    self.gangs_sent.remove(&gang_key(&namespace, &name));
                }
                for group in groups {
                    self.cache.set_gang_spec(group);
                }
                // Any gang's rule may have changed.
                self.queue.move_all(now);
                self.refresh_all_gangs();
            }
            WatchEvent::Applied(group) => {
                let key = gang_key(&group.metadata.namespace, &group.metadata.name);
                let spec_changed = self
                    .cache
                    .snapshot()
                    .gang_spec(&group.metadata.namespace, &group.metadata.name)
                    .is_none_or(|old| old.spec != group.spec);
                self.cache.set_gang_spec(group.clone());
                if spec_changed {
                    let event = ClusterEvent::PodGroupChanged(&group);
                    notify(&mut self.queue, &self.profiles, &event, now);
                    // Waiting members may now be enough (a lower minMember).
                    self.waiting_changed = true;
                }
                self.refresh_gang(&key);
            }
            WatchEvent::Deleted(group) => {
                let (namespace, name) = (&group.metadata.namespace, &group.metadata.name);
                self.cache.remove_gang_spec(namespace, name);
                self.gangs_sent.remove(&gang_key(namespace, name));
            }
        }
    }

    /// Hands the writer a gang's status if it has a PodGroup whose stored status differs
    /// (and the same status is not already on its way).
    fn refresh_gang(&mut self, gang: &str) {
        let Some((namespace, name)) = gang.split_once('/') else {
            return;
        };
        let Some(group) = self.cache.snapshot().gang_spec(namespace, name) else {
            return;
        };
        let waiting = self
            .waiting
            .values()
            .filter(|w| gang_of(&w.info.pod).as_deref() == Some(gang))
            .count();
        let waiting = u32::try_from(waiting).unwrap_or(u32::MAX);
        let desired = gang_status(group.spec.min_member, self.gangs.counts(gang), waiting);
        if group.status.as_ref() == Some(&desired) {
            self.gangs_sent.remove(gang);
            return;
        }
        if self.gangs_sent.get(gang) == Some(&desired) {
            return;
        }
        self.gangs_sent.insert(gang.to_owned(), desired.clone());
        if let Some(writes) = &self.gang_writes {
            let _ = writes.send(GangWrite {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                status: desired,
            });
        }
    }

    /// [`SchedulerLoop::refresh_gang`] for every gang with members or a PodGroup.
    fn refresh_all_gangs(&mut self) {
        let mut all: Vec<String> = self.gangs.gangs().map(str::to_owned).collect();
        all.extend(
            self.cache
                .snapshot()
                .gang_specs()
                .map(|g| gang_key(&g.metadata.namespace, &g.metadata.name)),
        );
        all.sort_unstable();
        all.dedup();
        for gang in all {
            self.refresh_gang(&gang);
        }
    }

    /// Refreshes the gang of a pod, if it has one.
    fn refresh_gang_of(&mut self, pod: &Pod) {
        if let Some(gang) = gang_of(pod) {
            self.refresh_gang(&gang);
        }
    }

    /// Tells the queue that the pod `key`, now in the cache, was assigned to its node.
    fn assigned_pod_added(&mut self, key: &str, now: Duration) {
        let snapshot = self.cache.snapshot();
        let Some(node) = snapshot.pod_node(key).and_then(|n| snapshot.get(n)) else {
            return;
        };
        let Some(pod) = node.pods().iter().find(|p| p.key() == key) else {
            return;
        };
        let event = ClusterEvent::AssignedPodAdded { pod, node };
        notify(&mut self.queue, &self.profiles, &event, now);
    }

    /// Nominates a pod to a node (in the cache); a nomination it had to another node is
    /// cleared, which the queue is told of.
    fn nominate(
        &mut self,
        info: Arc<PodInfo>,
        node: &str,
        now: Duration,
    ) -> Result<(), SnapshotError> {
        let elsewhere = self
            .cache
            .snapshot()
            .nomination(info.key())
            .is_some_and(|n| **n != *node);
        if elsewhere {
            self.clear_nomination(info.key(), now);
        }
        self.cache.nominate(info, node)
    }

    /// Drops a pod's nomination, if any, and tells the queue: the pods it kept out of its
    /// node may fit there now.
    fn clear_nomination(&mut self, key: &str, now: Duration) {
        let snapshot = self.cache.snapshot();
        let Some(node) = snapshot.nomination(key).cloned() else {
            return;
        };
        let pod = snapshot
            .nominated_pods(&node)
            .iter()
            .find(|p| p.key() == key)
            .cloned();
        self.cache.clear_nomination(key);
        if let Some(pod) = pod {
            let event = ClusterEvent::NominationCleared {
                pod: &pod,
                node: &node,
            };
            notify(&mut self.queue, &self.profiles, &event, now);
        }
    }

    fn on_node_event(&mut self, event: WatchEvent<Node>) {
        let now = self.now();
        match event {
            WatchEvent::Restarted(nodes) => {
                if let Err(e) = self.cache.sync_nodes(nodes) {
                    tracing::warn!("node cache: {e}");
                }
                self.queue.move_all(now);
            }
            WatchEvent::Applied(node) => {
                let name = node.metadata.name.clone();
                let old = self
                    .cache
                    .snapshot()
                    .get(&name)
                    .map(|n| n.node_arc().clone());
                if let Err(e) = self.cache.upsert_node(node) {
                    return tracing::warn!("node cache: {e}");
                }
                let Some(new) = self.cache.snapshot().get(&name) else {
                    return;
                };
                let Some(old) = old else {
                    let event = ClusterEvent::NodeAdded(new);
                    return notify(&mut self.queue, &self.profiles, &event, now);
                };
                // A status report (conditions, addresses) has an empty change: the default
                // plugins' hints move no pod for it; a custom plugin may read conditions.
                let change = NodeChange::between(&old, new.node());
                let old = NodeInfo::new(old);
                let event = ClusterEvent::NodeUpdated {
                    old: &old,
                    new,
                    change,
                };
                notify(&mut self.queue, &self.profiles, &event, now);
            }
            WatchEvent::Deleted(node) => {
                // Already gone from the cache is fine (a relist may have removed it).
                let _ = self.cache.remove_node(&node.metadata.name);
                let event = ClusterEvent::NodeDeleted(&node);
                notify(&mut self.queue, &self.profiles, &event, now);
            }
        }
    }

    /// One scheduling cycle for the next pod.
    async fn schedule_one(&mut self) {
        let now = self.now();
        let Some(queued) = self.queue.pop(now) else {
            return;
        };
        let info = queued.pod;
        let key = info.key().to_owned();
        let Some(framework) = self.profiles.for_pod(&info.pod).cloned() else {
            self.queue.done(&key);
            return;
        };
        let outcome = match framework.schedule_pod(&info, self.cache.snapshot()) {
            Ok(outcome) => outcome,
            Err(unschedulable) => {
                self.record_failure(&info.pod, unschedulable.to_string());
                if let Some(nominated) = unschedulable
                    .post_filter
                    .as_deref()
                    .and_then(|r| r.nominated_node.as_deref().map(|n| (n, &r.victims)))
                {
                    self.preempt(&info, nominated.0, nominated.1).await;
                }
                if unschedulable.error.is_some() {
                    self.queue.requeue_backoff(&key, now);
                } else {
                    let rejected_by = unschedulable.rejected_by();
                    self.queue.requeue_unschedulable(&key, now, rejected_by);
                }
                return;
            }
        };
        let node = outcome.placement.node.to_string();
        let mut state = outcome.state;
        // Placed elsewhere than where it was nominated: that room is free again.
        if self
            .cache
            .snapshot()
            .nomination(&key)
            .is_some_and(|n| **n != *node)
        {
            self.clear_nomination(&key, now);
        }
        // Assume first, as kube-scheduler does: Reserve and Permit see the pod on its node
        // (a gang's Permit counts its placed members).
        if let Err(e) = self.cache.assume(info.clone(), &node) {
            tracing::warn!("{key}: assume on {node}: {e}");
            self.queue.requeue_backoff(&key, now);
            return;
        }
        self.assigned_pod_added(&key, now);
        let reserved = framework.run_reserve(&mut state, &info, &node);
        if !reserved.is_success() {
            tracing::warn!("{key}: reserve on {node}: {}", reserved.message());
            self.release(&key, now);
            self.queue.requeue_backoff(&key, now);
            return;
        }
        match framework.run_permit(&state, &info, &node, self.cache.snapshot()) {
            PermitOutcome::Allow => {
                self.spawn_binding(framework, state, info, node);
            }
            PermitOutcome::Deny(status) => {
                framework.run_unreserve(&mut state, &info, &node);
                let message = format!("{}: {}", status.plugin(), status.message());
                self.record_failure(&info.pod, message);
                // Out of flight before its room is released: freeing its own room is no
                // event that may help it (else it would be retried at once, for ever).
                self.queue
                    .requeue_unschedulable(&key, now, vec![status.plugin()]);
                self.release(&key, now);
                return;
            }
            PermitOutcome::Wait(waits) => {
                let wait = waits.iter().map(|(_, d)| *d).min().unwrap_or_default();
                let plugins: Vec<&str> = waits.iter().map(|(p, _)| *p).collect();
                self.refresh_gang_of(&info.pod);
                self.waiting.insert(
                    key,
                    Waiting {
                        framework,
                        state,
                        info,
                        node,
                        deadline: Instant::now() + wait,
                        plugins: plugins.join(", "),
                    },
                );
            }
        }
        // A pod placed may complete what waiting pods wait for.
        self.recheck_waiting().await;
    }

    /// Forgets an assumption that will not be bound, and tells the queue room was freed.
    fn release(&mut self, key: &str, now: Duration) {
        if self.cache.forget(key) {
            self.pod_deleted(now);
        }
    }

    /// Tells the queue that an assigned (or assumed) pod left its node.
    fn pod_deleted(&mut self, now: Duration) {
        notify(
            &mut self.queue,
            &self.profiles,
            &ClusterEvent::AssignedPodDeleted,
            now,
        );
    }

    /// Permit again for every waiting pod: those allowed now are bound, those denied are
    /// rejected (with the pods that share their fate).
    async fn recheck_waiting(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let keys: Vec<String> = self.waiting.keys().cloned().collect();
        for key in keys {
            let Some(w) = self.waiting.get(&key) else {
                continue;
            };
            match w
                .framework
                .run_permit(&w.state, &w.info, &w.node, self.cache.snapshot())
            {
                PermitOutcome::Allow => {
                    if let Some(w) = self.waiting.remove(&key) {
                        let pod = w.info.pod.clone();
                        self.spawn_binding(w.framework, w.state, w.info, w.node);
                        self.refresh_gang_of(&pod);
                    }
                }
                PermitOutcome::Deny(status) => {
                    let message = format!("{}: {}", status.plugin(), status.message());
                    self.reject_waiting(&key, &message).await;
                }
                PermitOutcome::Wait(_) => {}
            }
        }
    }

    /// Rejects waiting pods whose wait is over (and the pods sharing their fate).
    async fn expire_waiting(&mut self) {
        let now = Instant::now();
        let expired: Vec<(String, String)> = self
            .waiting
            .iter()
            .filter(|(_, w)| w.deadline <= now)
            .map(|(k, w)| (k.clone(), w.plugins.clone()))
            .collect();
        for (key, plugins) in expired {
            let message = format!("rejected: timed out waiting at Permit ({plugins})");
            self.reject_waiting(&key, &message).await;
        }
    }

    /// Rejects a waiting pod, and every waiting pod sharing its fate: Unreserve, the
    /// assumption forgotten (its room freed), a FailedScheduling event, back to the queue
    /// after backoff.
    async fn reject_waiting(&mut self, key: &str, message: &str) {
        let Some(first) = self.waiting.remove(key) else {
            return;
        };
        let fellows: Vec<String> = self
            .waiting
            .iter()
            .filter(|(_, w)| {
                first.framework.shares_fate(&first.info, &w.info)
                    || w.framework.shares_fate(&first.info, &w.info)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut rejected = vec![(key.to_owned(), first, message.to_owned())];
        for k in fellows {
            if let Some(w) = self.waiting.remove(&k) {
                let why = format!("rejected with {key}: {message}");
                rejected.push((k, w, why));
            }
        }
        let now = self.now();
        for (k, mut w, why) in rejected {
            w.framework.run_unreserve(&mut w.state, &w.info, &w.node);
            self.release(&k, now);
            self.record_failure(&w.info.pod, why);
            self.queue.requeue_backoff(&k, now);
            self.refresh_gang_of(&w.info.pod);
        }
    }

    /// The binding cycle in a background task: PreBind, Bind, PostBind (Unreserve on failure).
    fn spawn_binding(
        &mut self,
        framework: Arc<Framework>,
        mut state: CycleState,
        info: Arc<PodInfo>,
        node: String,
    ) {
        let key = info.key().to_owned();
        let client = self.client.clone();
        let target = node.clone();
        let events = self.events.clone();
        let bind = async move {
            let api: &dyn ApiHandle = &client;
            let pre = framework.run_pre_bind(api, &state, &info, &node).await;
            let status = if pre.is_success() {
                framework.run_bind(api, &state, &info, &node).await
            } else {
                pre
            };
            if status.is_success() {
                let meta = &info.pod.metadata;
                let message = format!(
                    "Successfully assigned {}/{} to {node}",
                    meta.namespace, meta.name
                );
                record(&events, &info.pod, false, SCHEDULED, message);
                framework.run_post_bind(api, &state, &info, &node).await;
                Ok(())
            } else {
                framework.run_unreserve(&mut state, &info, &node);
                Err(format!("{}: {}", status.plugin(), status.message()))
            }
        };
        self.binds.spawn(async move {
            // A panicking plugin fails the binding, it does not lose the pod.
            let result = AssertUnwindSafe(bind)
                .catch_unwind()
                .await
                .unwrap_or_else(|_| Err("the binding cycle panicked".to_owned()));
            Bound {
                key,
                node: target,
                result,
            }
        });
    }

    fn on_bound(&mut self, done: Result<Bound, tokio::task::JoinError>) {
        let now = self.now();
        let bound = match done {
            Ok(bound) => bound,
            // Only on cancellation, which the loop never does.
            Err(e) => return tracing::error!("binding task: {e}"),
        };
        match bound.result {
            // The assumption stays until the watch shows the binding.
            Ok(()) => {
                self.queue.done(&bound.key);
            }
            Err(e) => {
                tracing::warn!("binding {} to {}: {e}", bound.key, bound.node);
                if self.cache.forget(&bound.key) {
                    self.pod_deleted(now);
                }
                self.queue.requeue_backoff(&bound.key, now);
            }
        }
    }

    /// Carries out a preemption the framework chose: nominates the pod (in the cache at once,
    /// and in its `status.nominatedNodeName`), then deletes the victims gracefully, with a
    /// `Preempted` event on each. Failures are logged: the pod is retried anyway, and a
    /// victim not deleted is chosen again if still in the way.
    async fn preempt(&mut self, info: &Arc<PodInfo>, node: &str, victims: &[String]) {
        let key = info.key().to_owned();
        if let Err(e) = self.nominate(info.clone(), node, self.now()) {
            return tracing::warn!("{key}: nominating {node}: {e}");
        }
        if let Err(e) = self.set_nominated_node(&info.pod, node).await {
            tracing::warn!("{key}: setting status.nominatedNodeName: {e}");
        }
        let found: Vec<Arc<PodInfo>> = self
            .cache
            .snapshot()
            .get(node)
            .map(|n| {
                n.pods()
                    .iter()
                    .filter(|p| victims.iter().any(|v| v == p.key()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        for victim in found {
            let meta = &victim.pod.metadata;
            let options = DeleteOptions {
                grace_period_seconds: Some(
                    victim
                        .pod
                        .spec
                        .termination_grace_period_seconds
                        .unwrap_or(DEFAULT_GRACE_SECONDS),
                ),
                ..DeleteOptions::default()
            };
            match self
                .client
                .delete::<Pod>(&meta.namespace, &meta.name, &options)
                .await
            {
                Ok(_) => {
                    let message = format!("Preempted by {key} on node {node}");
                    record(&self.events, &victim.pod, false, PREEMPTED, message);
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!("{key}: preempting {}: {e}", victim.key()),
            }
        }
    }

    /// Writes `status.nominatedNodeName` (retrying on conflicts with other writers).
    async fn set_nominated_node(&self, pod: &Pod, node: &str) -> Result<(), ApiError> {
        let meta = &pod.metadata;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut current: Pod = self.client.get(&meta.namespace, &meta.name).await?;
            let status = current.status.get_or_insert_with(Default::default);
            if status.nominated_node_name == node {
                return Ok(());
            }
            status.nominated_node_name = node.to_owned();
            match self.client.update_status(&current).await {
                Err(e) if e.is_conflict() && attempts < 3 => continue,
                result => return result.map(|_| ()),
            }
        }
    }

    /// Records a `FailedScheduling` Warning event on the pod.
    fn record_failure(&self, pod: &Pod, message: String) {
        record(&self.events, pod, true, FAILED_SCHEDULING, message);
    }
}

/// Tells the queue of a cluster event: each pod moves if its profile's queueing hints say the
/// event may help it (a pod no profile serves is moved).
fn notify(
    queue: &mut SchedulingQueue,
    profiles: &Profiles,
    event: &ClusterEvent<'_>,
    now: Duration,
) {
    queue.on_event(now, |pod, rejected_by| match profiles.for_pod(&pod.pod) {
        Some(framework) => framework.queueing_hint(pod, rejected_by, event),
        None => QueueingHint::Queue,
    });
}

/// Queues an event on a pod, from the sink of the pod's profile (never waits, never fails:
/// the event is informational).
fn record(
    events: &BTreeMap<String, EventSink>,
    pod: &Pod,
    warning: bool,
    reason: &str,
    message: String,
) {
    let scheduler = if pod.spec.scheduler_name.is_empty() {
        DEFAULT_SCHEDULER_NAME
    } else {
        pod.spec.scheduler_name.as_str()
    };
    let Some(sink) = events.get(scheduler) else {
        return;
    };
    if warning {
        sink.warning(pod, reason, message);
    } else {
        sink.normal(pod, reason, message);
    }
}

/// Writes the PodGroup statuses the loop hands over, the latest per group first gathered
/// from what is queued, until the loop drops its sender. A status already stored is not
/// written again; a conflict is retried on a fresh read.
async fn write_gang_statuses<C: Client>(client: C, mut writes: mpsc::UnboundedReceiver<GangWrite>) {
    while let Some(first) = writes.recv().await {
        let mut batch = BTreeMap::new();
        batch.insert((first.namespace, first.name), first.status);
        while let Ok(more) = writes.try_recv() {
            batch.insert((more.namespace, more.name), more.status);
        }
        for ((namespace, name), status) in batch {
            if let Err(e) = write_gang_status(&client, &namespace, &name, status).await {
                tracing::warn!("writing the status of PodGroup {namespace}/{name}: {e}");
            }
        }
    }
}

/// Writes one PodGroup's status unless it is stored already (or the group is gone).
async fn write_gang_status<C: Client>(
    client: &C,
    namespace: &str,
    name: &str,
    status: PodGroupStatus,
) -> Result<(), ApiError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut current: PodGroup = match client.get(namespace, name).await {
            Err(e) if e.is_not_found() => return Ok(()),
            other => other?,
        };
        if current.status.as_ref() == Some(&status) {
            return Ok(());
        }
        current.status = Some(status.clone());
        match client.update_status(&current).await {
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) if e.is_conflict() && attempts < 3 => continue,
            result => return result.map(|_| ()),
        }
    }
}
