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

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use orchestra_api::ApiError;
use orchestra_api::events::EventSink;
use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{Node, Pod};
use orchestra_api::watcher::{self, WatcherConfig};
use orchestra_api::{Client, watcher::Event as WatchEvent};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::cache::{SchedulerCache, pod_key};
use crate::framework::CycleState;
use crate::framework::{ApiHandle, DEFAULT_SCHEDULER_NAME, Framework, PermitOutcome, Profiles};
use crate::framework::{ClusterEvent, NodeChange, QueueingHint};
use crate::queue::{LessFn, SchedulingQueue};
use crate::snapshot::{NodeInfo, PodInfo};

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
        })
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// Runs until `shutdown` completes, then waits for the bindings in flight.
    pub async fn run(mut self, shutdown: impl Future<Output = ()> + Send) {
        let mut pods = watcher::watcher::<Pod, _>(self.client.clone(), WatcherConfig::default());
        let mut nodes = watcher::watcher::<Node, _>(self.client.clone(), WatcherConfig::default());
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
                if nominated.is_empty() || self.cache.nominate(info.clone(), &nominated).is_err() {
                    self.cache.clear_nomination(&key);
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
                    self.cache.clear_nomination(&key);
                }
                for pod in pending {
                    self.enqueue(pod, now);
                }
                self.queue.move_all(now);
            }
            WatchEvent::Applied(pod) => {
                let key = pod_key(&pod);
                if !pod.spec.node_name.is_empty() {
                    self.queue.delete(&key);
                    if let Err(e) = self.cache.add_or_update_pod(pod) {
                        tracing::warn!("pod cache: {e}");
                    }
                } else if self.is_ours(&pod) {
                    self.enqueue(pod, now);
                } else {
                    self.queue.delete(&key);
                    self.cache.clear_nomination(&key);
                }
            }
            WatchEvent::Deleted(pod) => {
                let key = pod_key(&pod);
                if let Some(mut w) = self.waiting.remove(&key) {
                    w.framework.run_unreserve(&mut w.state, &w.info, &w.node);
                }
                self.queue.delete(&key);
                self.cache.clear_nomination(&key);
                if self.cache.remove_pod(&key) {
                    self.pod_deleted(now);
                }
            }
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
        // Assume first, as kube-scheduler does: Reserve and Permit see the pod on its node
        // (a gang's Permit counts its placed members).
        if let Err(e) = self.cache.assume(info.clone(), &node) {
            tracing::warn!("{key}: assume on {node}: {e}");
            self.queue.requeue_backoff(&key, now);
            return;
        }
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
                self.release(&key, now);
                let message = format!("{}: {}", status.plugin(), status.message());
                self.record_failure(&info.pod, message);
                self.queue
                    .requeue_unschedulable(&key, now, vec![status.plugin()]);
                return;
            }
            PermitOutcome::Wait(waits) => {
                let wait = waits.iter().map(|(_, d)| *d).min().unwrap_or_default();
                let plugins: Vec<&str> = waits.iter().map(|(p, _)| *p).collect();
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
                        self.spawn_binding(w.framework, w.state, w.info, w.node);
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
        if let Err(e) = self.cache.nominate(info.clone(), node) {
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
