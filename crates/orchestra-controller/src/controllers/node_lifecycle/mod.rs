//! The NodeLifecycle controller: watches node heartbeats (the node's Lease in
//! `kube-node-lease`, renewed by the node agent, and its Ready condition's
//! `lastHeartbeatTime`); a node silent for the grace period (40 s by default) gets Ready
//! `Unknown` and the `node.kubernetes.io/unreachable` taints (`NoSchedule`, `NoExecute`), a node
//! reporting Ready `False` the `not-ready` ones; pods that do not tolerate a `NoExecute` taint
//! are evicted (deleted) when their `tolerationSeconds` run out; the taints go when the node is
//! Ready again. The decisions are in [`plan`].
//!
//! Evictions are rate-limited by node (one node starts evicting per
//! [`NodeLifecycleConfig::eviction_interval`], 10 s by default: Kubernetes' 0.1 nodes/s) and
//! pause while more than [`NodeLifecycleConfig::unhealthy_threshold`] (55%) of the nodes are
//! not Ready (a partition of the control plane must not evict everything).
//!
//! Events: `NodeNotReady` on a node turned Unknown ("Node N status is now: NodeNotReady", from
//! `node-controller`), `TaintManagerEviction` on each evicted pod ("Marking for deletion Pod
//! ns/name", from `taint-eviction-controller`).
//!
//! Not done: zones (Kubernetes judges disruption per zone, and lowers the rate in large
//! clusters instead of stopping).

pub mod plan;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use orchestra_api::events::EventSink;
use orchestra_api::meta::{MicroTime, Time};
use orchestra_api::reflector::{ObjectKey, index};
use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{
    ConditionStatus, Lease, Node, NodeCondition, NodeStatus, Pod, TaintEffect,
};
use orchestra_api::{ApiError, Client};
use tokio::time::Instant;

use crate::controller::Controller;
use crate::controllers::events::{
    self, NODE_CONTROLLER, NODE_NOT_READY, TAINT_EVICTION_CONTROLLER, TAINT_MANAGER_EVICTION,
};
use crate::informer::{Informer, SharedInformers};
use crate::reconciler::{Action, Context, Reconciler};
use plan::Eviction;

/// The pod index by node name.
const NODE_INDEX: &str = "node-name";

/// The namespace of node heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The NodeLifecycle controller's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeLifecycleConfig {
    /// How long a node may go without a heartbeat before it is Unknown (default 40 s,
    /// Kubernetes' `--node-monitor-grace-period`).
    pub grace_period: Duration,
    /// Where node Leases live (default `kube-node-lease`).
    pub lease_namespace: String,
    /// At most one node starts evicting its pods per this interval (default 10 s).
    pub eviction_interval: Duration,
    /// Evictions pause while more than this fraction of the nodes are not Ready (default 0.55).
    pub unhealthy_threshold: f64,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig {
            grace_period: Duration::from_secs(40),
            lease_namespace: NODE_LEASE_NAMESPACE.to_owned(),
            eviction_interval: Duration::from_secs(10),
            unhealthy_threshold: 0.55,
        }
    }
}

/// Why a node sync failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum NodeLifecycleError {
    /// Writing the node's status or taints failed.
    #[error("could not update node {node:?}: {source}")]
    Node {
        /// The node.
        node: String,
        /// The API's answer.
        #[source]
        source: ApiError,
    },
    /// Evicting a pod failed.
    #[error("could not evict pod {pod:?} from node {node:?}: {source}")]
    Evict {
        /// `namespace/name`.
        pod: String,
        /// The node.
        node: String,
        /// The API's answer.
        #[source]
        source: ApiError,
    },
}

/// The heartbeat values of a node; a change of either is a heartbeat.
type Heartbeat = (Option<MicroTime>, Option<Time>);

/// What the controller remembers of one node, on its own clock.
#[derive(Debug)]
struct Seen {
    heartbeat: Heartbeat,
    /// When `heartbeat` was first seen as it is (or the node first seen).
    at: Instant,
    /// When each `NoExecute` taint (by key) was first seen.
    taints: HashMap<String, Instant>,
}

/// The NodeLifecycle reconciler. Build a ready-to-run controller with
/// [`NodeLifecycleController::controller`].
pub struct NodeLifecycleController<C> {
    client: C,
    config: NodeLifecycleConfig,
    leases: Informer<Lease>,
    pods: Informer<Pod>,
    nodes: Informer<Node>,
    seen: Mutex<HashMap<String, Seen>>,
    evicting: Mutex<Evicting>,
    /// Node status changes (`NodeNotReady`), as `node-controller`.
    node_events: EventSink,
    /// Evictions (`TaintManagerEviction`), as `taint-eviction-controller`.
    eviction_events: EventSink,
}

/// The nodes allowed to evict, and when the last one started (the rate limit).
#[derive(Debug, Default)]
struct Evicting {
    nodes: std::collections::HashSet<String>,
    last_start: Option<Instant>,
}

impl<C> std::fmt::Debug for NodeLifecycleController<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeLifecycleController")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<C: Client> NodeLifecycleController<C> {
    /// The reconciler, reading Leases and pods from `informers`.
    pub fn new(informers: &SharedInformers<C>, config: NodeLifecycleConfig) -> Self {
        let pods = informers.informer::<Pod>();
        // Shared with other controllers: an existing index is the same function.
        let _ = pods.store().add_index(NODE_INDEX, index::pods_by_node);
        NodeLifecycleController {
            client: informers.client().clone(),
            config,
            leases: informers.informer::<Lease>(),
            pods,
            nodes: informers.informer::<Node>(),
            seen: Mutex::default(),
            evicting: Mutex::default(),
            node_events: events::sink(informers.client(), NODE_CONTROLLER),
            eviction_events: events::sink(informers.client(), TAINT_EVICTION_CONTROLLER),
        }
    }

    /// The controller: Nodes; node Leases (mapped to the node of the same name); pods (mapped
    /// to their node, so that a pod bound to a tainted node is looked at).
    pub fn controller(
        informers: &SharedInformers<C>,
        config: NodeLifecycleConfig,
    ) -> Controller<Self, C> {
        let lease_namespace = config.lease_namespace.clone();
        Controller::new(Self::new(informers, config), informers)
            .name("nodelifecycle")
            .watches::<Lease, _>(move |lease| {
                if lease.metadata.namespace == lease_namespace {
                    vec![ObjectKey {
                        namespace: String::new(),
                        name: lease.metadata.name.clone(),
                    }]
                } else {
                    Vec::new()
                }
            })
            .watches::<Pod, _>(|pod| {
                index::pods_by_node(pod)
                    .into_iter()
                    .map(|name| ObjectKey {
                        namespace: String::new(),
                        name,
                    })
                    .collect()
            })
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        self.seen.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes the node's heartbeat; returns when it was last seen to change.
    fn last_heartbeat(&self, node: &Node, now: Instant) -> Instant {
        let lease = self
            .leases
            .store()
            .get(&self.config.lease_namespace, &node.metadata.name);
        let heartbeat = (
            lease.and_then(|l| l.spec.renew_time),
            node.status
                .as_ref()
                .and_then(|s| s.condition("Ready"))
                .and_then(|c| c.last_heartbeat_time),
        );
        let mut seen = self.seen();
        let entry = seen
            .entry(node.metadata.name.clone())
            .or_insert_with(|| Seen {
                heartbeat,
                at: now,
                taints: HashMap::new(),
            });
        if entry.heartbeat != heartbeat {
            entry.heartbeat = heartbeat;
            entry.at = now;
        }
        entry.at
    }

    /// Whether `node` may evict now: evictions are not paused, and it holds (or gets) one of the
    /// rate-limited slots. `Err(at)`: look again then.
    fn may_evict(&self, node: &str, now: Instant) -> Result<(), Instant> {
        let nodes = self.nodes.store().list();
        let unhealthy = {
            // Our own clock's verdict counts as well as the cached condition: nodes that went
            // silent together are judged together, before their Unknown writes reach the cache.
            let seen = self.seen();
            nodes
                .iter()
                .filter(|n| {
                    plan::ready_status(n) != Some(ConditionStatus::True)
                        || seen
                            .get(&n.metadata.name)
                            .is_some_and(|s| plan::is_stale(s.at, now, self.config.grace_period))
                })
                .count()
        };
        if plan::evictions_paused(nodes.len(), unhealthy, self.config.unhealthy_threshold) {
            tracing::warn!(
                unhealthy,
                total = nodes.len(),
                "too many nodes are unhealthy; evictions paused"
            );
            return Err(now + self.config.eviction_interval);
        }
        let mut evicting = self.evicting.lock().unwrap_or_else(PoisonError::into_inner);
        if evicting.nodes.contains(node) {
            return Ok(());
        }
        plan::eviction_slot(evicting.last_start, now, self.config.eviction_interval)?;
        evicting.last_start = Some(now);
        evicting.nodes.insert(node.to_owned());
        Ok(())
    }

    /// When each `NoExecute` taint of `node` was first seen (forgetting removed ones).
    fn taint_times(&self, node: &Node, now: Instant) -> HashMap<String, Instant> {
        let mut seen = self.seen();
        let Some(entry) = seen.get_mut(&node.metadata.name) else {
            return HashMap::new();
        };
        let current: Vec<&str> = node
            .spec
            .taints
            .iter()
            .filter(|t| t.effect == TaintEffect::NoExecute)
            .map(|t| t.key.as_str())
            .collect();
        entry
            .taints
            .retain(|key, _| current.contains(&key.as_str()));
        for key in current {
            entry.taints.entry(key.to_owned()).or_insert(now);
        }
        entry.taints.clone()
    }
}

/// The node with its Ready condition set to `Unknown` (the heartbeat time kept).
fn with_ready_unknown(mut node: Node, now: Time) -> Node {
    let status = node.status.get_or_insert_with(NodeStatus::default);
    let message = "The node agent stopped posting node status.".to_owned();
    match status.conditions.iter_mut().find(|c| c.type_ == "Ready") {
        Some(ready) => {
            ready.status = ConditionStatus::Unknown;
            ready.last_transition_time = Some(now);
            ready.reason = "NodeStatusUnknown".to_owned();
            ready.message = message;
        }
        None => status.conditions.push(NodeCondition {
            type_: "Ready".to_owned(),
            status: ConditionStatus::Unknown,
            last_heartbeat_time: None,
            last_transition_time: Some(now),
            reason: "NodeStatusNeverUpdated".to_owned(),
            message,
        }),
    }
    node
}

#[async_trait]
impl<C: Client> Reconciler for NodeLifecycleController<C> {
    type Object = Node;
    type Error = NodeLifecycleError;

    async fn reconcile(&self, node: Arc<Node>, _ctx: &Context) -> Result<Action, Self::Error> {
        let now = Instant::now();
        let name = node.metadata.name.clone();
        let node_error = |source| NodeLifecycleError::Node {
            node: name.clone(),
            source,
        };
        let heartbeat = self.last_heartbeat(&node, now);
        let grace = self.config.grace_period;
        let stale = plan::is_stale(heartbeat, now, grace);
        let health = plan::health(&node, stale);
        let update = plan::plan_node(&node, health, stale, Time::now());
        let mut node = (*node).clone();
        if update.mark_unknown {
            tracing::info!(node = %name, "no heartbeat within the grace period; Ready is Unknown");
            node = self
                .client
                .update_status(&with_ready_unknown(node, Time::now()))
                .await
                .map_err(node_error)?;
            let message = format!("Node {name} status is now: {NODE_NOT_READY}");
            self.node_events.normal(&node, NODE_NOT_READY, message);
        }
        if let Some(taints) = update.taints {
            tracing::info!(node = %name, ?health, "updating taints");
            node.spec.taints = taints;
            node = self.client.update(&node).await.map_err(node_error)?;
        }

        let taint_times = self.taint_times(&node, now);
        let taints: Vec<_> = node
            .spec
            .taints
            .iter()
            .filter_map(|t| taint_times.get(&t.key).map(|at| (t, *at)))
            .collect();
        // A node that is not stale yet is looked at again when it would be.
        let mut next: Option<Instant> = (!stale).then_some(heartbeat + grace);
        if taints.is_empty() {
            self.evicting
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .nodes
                .remove(&name);
        }
        if !taints.is_empty() {
            let pods = self
                .pods
                .store()
                .by_index(NODE_INDEX, &name)
                .unwrap_or_default();
            for pod in pods {
                match plan::eviction(&pod, &taints, now) {
                    Eviction::Keep => {}
                    Eviction::At(at) => next = Some(next.map_or(at, |n| n.min(at))),
                    Eviction::Now => {
                        if let Err(at) = self.may_evict(&name, now) {
                            next = Some(next.map_or(at, |n| n.min(at)));
                            continue;
                        }
                        let (ns, pod_name) = (&pod.metadata.namespace, &pod.metadata.name);
                        tracing::info!(node = %name, pod = %format!("{ns}/{pod_name}"), "evicting");
                        match self
                            .client
                            .delete::<Pod>(ns, pod_name, &DeleteOptions::default())
                            .await
                        {
                            Ok(_) => {
                                let message = format!("Marking for deletion Pod {ns}/{pod_name}");
                                self.eviction_events.normal(
                                    pod.as_ref(),
                                    TAINT_MANAGER_EVICTION,
                                    message,
                                );
                            }
                            Err(err) if err.is_not_found() => {}
                            Err(source) => {
                                return Err(NodeLifecycleError::Evict {
                                    pod: format!("{ns}/{pod_name}"),
                                    node: name,
                                    source,
                                });
                            }
                        }
                    }
                }
            }
        }
        Ok(match next {
            // A little after the moment, so that the check there sees it passed.
            Some(at) => {
                Action::requeue(at.saturating_duration_since(now) + Duration::from_millis(1))
            }
            None => Action::await_change(),
        })
    }

    async fn deleted(&self, key: &ObjectKey, _ctx: &Context) -> Result<Action, Self::Error> {
        self.seen().remove(&key.name);
        self.evicting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .nodes
            .remove(&key.name);
        Ok(Action::await_change())
    }
}
