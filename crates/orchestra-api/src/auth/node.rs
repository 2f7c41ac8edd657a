//! Node restriction: [`NodeAuthorizer`] decides every request of a node agent (a user
//! `system:node:NAME` in `system:nodes`), combining what Kubernetes splits between its Node
//! authorizer and its NodeRestriction admission plug-in, as far as a request's attributes
//! allow.
//!
//! A node may
//! - read nodes, pods, services and endpoints (what its agent, proxy and DNS follow);
//! - create, update and patch its own Node (and `nodes/status`), never another's;
//! - get, create, update, patch and delete its own Lease in `kube-node-lease`;
//! - update, patch and delete the pods bound to it, and their `pods/status` (the agent
//!   writes pod status and its own finalizer);
//! - get a Secret or ConfigMap, or list or watch it by name (a field selector
//!   `metadata.name=NAME`, which names the object in the request's attributes, as in
//!   Kubernetes), only while a pod bound to it references it (env `valueFrom`, `envFrom`,
//!   volumes; see [`referenced_objects`]);
//! - create, update and patch Events;
//! - have tokens issued (`create` on `serviceaccounts/token`) for the ServiceAccount a pod
//!   bound to it runs as (that the token is bound to such a pod is checked on the body, by
//!   [`restrict_node`](super::token::restrict_node)).
//!
//! Everything else is denied (not left to RBAC), so that a binding given to `system:nodes`
//! cannot widen a node's reach.
//!
//! # What attributes cannot show, and is therefore denied
//! An [`Authorizer`] sees the request's target, not its body. So:
//! - a node cannot create pods (Kubernetes' mirror pods): whether the new pod would be bound
//!   to that node is in the body;
//! - a node cannot bind pods (`pods/binding`): the target node is in the body;
//! - a node cannot list or watch all Secrets or ConfigMaps, only named ones;
//! - creating its Node or Lease needs the request's `name` set from the object's
//!   `metadata.name` (the server knows it once the body is decoded); a create without a name
//!   is denied;
//! - an update of a bound pod is allowed whole (the agent only changes its finalizer): what
//!   changed is in the body, and checking it belongs to admission.
//!
//! The pods' bindings and references come from a [`NodeGraph`], fed by
//! [`NodeAuthorizer::run`] from a pod watch. A pod bound a moment ago may not be in the graph
//! yet; the agent's writes retry, so the refusal is transient.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, PoisonError, RwLock};

use futures::StreamExt;
use tokio::sync::watch;

use super::{Authorizer, Decision, RequestAttributes, Verb};
use crate::client::Client;
use crate::resources::{Container, Pod};
use crate::watcher::{self, Event, WatcherConfig};

/// The namespace of node heartbeat Leases.
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";

/// The kind of object a pod references.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefKind {
    /// A Secret.
    Secret,
    /// A ConfigMap.
    ConfigMap,
    /// A ServiceAccount (the one a pod runs as: the node may have its tokens issued).
    ServiceAccount,
}

/// The Secrets and ConfigMaps `pod` references, by kind and name (in the pod's namespace):
/// its containers' and init containers' env `valueFrom` key references and `envFrom`
/// sources, its ConfigMap and Secret volumes (projected ones included), and the
/// ServiceAccount it runs as. Extend this when the pod spec gains other references (image
/// pull secrets).
pub fn referenced_objects(pod: &Pod) -> BTreeSet<(RefKind, String)> {
    let containers: Vec<&Container> = pod
        .spec
        .containers
        .iter()
        .chain(&pod.spec.init_containers)
        .collect();
    let mut refs = BTreeSet::new();
    refs.insert((
        RefKind::ServiceAccount,
        super::token::pod_service_account(pod).to_owned(),
    ));
    for env in containers.iter().flat_map(|c| &c.env) {
        let Some(source) = &env.value_from else {
            continue;
        };
        if let Some(key) = &source.secret_key_ref {
            refs.insert((RefKind::Secret, key.name.clone()));
        }
        if let Some(key) = &source.config_map_key_ref {
            refs.insert((RefKind::ConfigMap, key.name.clone()));
        }
    }
    for from in containers.iter().flat_map(|c| &c.env_from) {
        if let Some(reference) = &from.secret_ref {
            refs.insert((RefKind::Secret, reference.name.clone()));
        }
        if let Some(reference) = &from.config_map_ref {
            refs.insert((RefKind::ConfigMap, reference.name.clone()));
        }
    }
    for volume in &pod.spec.volumes {
        if let Some(secret) = &volume.secret {
            refs.insert((RefKind::Secret, secret.secret_name.clone()));
        }
        if let Some(config_map) = &volume.config_map {
            refs.insert((RefKind::ConfigMap, config_map.name.clone()));
        }
        for source in volume.projected.iter().flat_map(|p| &p.sources) {
            if let Some(secret) = &source.secret {
                refs.insert((RefKind::Secret, secret.name.clone()));
            }
            if let Some(config_map) = &source.config_map {
                refs.insert((RefKind::ConfigMap, config_map.name.clone()));
            }
        }
    }
    refs
}

#[derive(Clone, Debug)]
struct PodEdges {
    node: String,
    refs: BTreeSet<(RefKind, String)>,
}

/// Which pods are bound to which node, and which Secrets and ConfigMaps those pods reference:
/// the graph node restriction decides on. Pure: [`NodeGraph::apply`] takes watch events.
#[derive(Clone, Debug, Default)]
pub struct NodeGraph {
    /// (namespace, name) of every bound pod.
    pods: HashMap<(String, String), PodEdges>,
    /// (node, kind, namespace, name) to how many of the node's pods reference the object.
    refs: HashMap<(String, RefKind, String, String), usize>,
}

impl NodeGraph {
    /// Applies one watch event.
    pub fn apply(&mut self, event: &Event<Pod>) {
        match event {
            Event::Restarted(pods) => {
                *self = NodeGraph::default();
                for pod in pods {
                    self.insert(pod);
                }
            }
            Event::Applied(pod) => {
                self.remove(pod);
                self.insert(pod);
            }
            Event::Deleted(pod) => self.remove(pod),
        }
    }

    fn insert(&mut self, pod: &Pod) {
        if pod.spec.node_name.is_empty() {
            return;
        }
        let (namespace, node) = (&pod.metadata.namespace, &pod.spec.node_name);
        let refs = referenced_objects(pod);
        for (kind, name) in &refs {
            *self
                .refs
                .entry((node.clone(), *kind, namespace.clone(), name.clone()))
                .or_default() += 1;
        }
        let key = (namespace.clone(), pod.metadata.name.clone());
        self.pods.insert(
            key,
            PodEdges {
                node: node.clone(),
                refs,
            },
        );
    }

    fn remove(&mut self, pod: &Pod) {
        let namespace = &pod.metadata.namespace;
        let key = (namespace.clone(), pod.metadata.name.clone());
        let Some(edges) = self.pods.remove(&key) else {
            return;
        };
        for (kind, name) in edges.refs {
            let key = (edges.node.clone(), kind, namespace.clone(), name);
            if let Some(count) = self.refs.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    self.refs.remove(&key);
                }
            }
        }
    }

    /// The node pod `namespace/name` is bound to, if it is known and bound.
    pub fn pod_node(&self, namespace: &str, name: &str) -> Option<&str> {
        self.pods
            .get(&(namespace.to_owned(), name.to_owned()))
            .map(|edges| edges.node.as_str())
    }

    /// Whether a pod bound to `node` references the object.
    pub fn node_references(&self, node: &str, kind: RefKind, namespace: &str, name: &str) -> bool {
        self.refs
            .contains_key(&(node.to_owned(), kind, namespace.to_owned(), name.to_owned()))
    }
}

#[derive(Debug)]
struct Shared {
    graph: RwLock<NodeGraph>,
    state: watch::Sender<u64>,
}

/// Node restriction: see the [module docs](self). Cheap to clone; clones share the graph.
/// Users that are not nodes get [`Decision::NoOpinion`].
#[derive(Clone, Debug)]
pub struct NodeAuthorizer {
    shared: Arc<Shared>,
}

impl Default for NodeAuthorizer {
    fn default() -> Self {
        Self::new()
    }
}

/// The outcome of a node's request before it becomes a [`Decision`].
enum Verdict {
    Allow,
    Deny(&'static str),
}

impl NodeAuthorizer {
    /// An authorizer with an empty graph (no pod bound anywhere) until [`NodeAuthorizer::run`]
    /// or [`NodeAuthorizer::apply`] feeds it.
    pub fn new() -> Self {
        NodeAuthorizer {
            shared: Arc::new(Shared {
                graph: RwLock::new(NodeGraph::default()),
                state: watch::Sender::new(0),
            }),
        }
    }

    /// Applies one pod watch event to the graph.
    pub fn apply(&self, event: &Event<Pod>) {
        self.shared
            .graph
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .apply(event);
        self.shared.state.send_modify(|generation| *generation += 1);
    }

    /// Counts the events applied: changes after each, so tests wait on it instead of sleeping.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.state.subscribe()
    }

    /// Follows every pod through `client` (list, then watch, resuming after disconnects) into
    /// the graph. Never returns: spawn it, and abort the task to stop.
    pub async fn run<C: Client>(&self, client: C) {
        let mut events = watcher::watcher::<Pod, C>(client, WatcherConfig::default());
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => self.apply(&event),
                Err(error) => tracing::warn!(%error, "node authorizer: pod watch failed, retrying"),
            }
        }
    }

    fn decide(&self, node: &str, request: &RequestAttributes) -> Verdict {
        let graph = self
            .shared
            .graph
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let name = request.name.as_deref();
        let namespace = request.namespace.as_deref().unwrap_or("");
        let own = name == Some(node);
        let read = matches!(request.verb, Verb::Get | Verb::List | Verb::Watch);
        let write = matches!(request.verb, Verb::Update | Verb::Patch);
        let sub = request.subresource.as_deref();
        match (request.api_group.as_str(), request.resource.as_str(), sub) {
            ("", "nodes", None | Some("status")) if read => Verdict::Allow,
            ("", "nodes", None) if request.verb == Verb::Create => match own {
                true => Verdict::Allow,
                false => Verdict::Deny("a node may only create its own Node, named in the request"),
            },
            ("", "nodes", None | Some("status")) if write => match own {
                true => Verdict::Allow,
                false => Verdict::Deny("a node may only modify its own Node"),
            },
            ("", "pods", None) if read => Verdict::Allow,
            ("", "pods", Some("status")) if request.verb == Verb::Get => Verdict::Allow,
            ("", "pods", None | Some("status")) if write || request.verb == Verb::Delete => {
                if sub.is_some() && request.verb == Verb::Delete {
                    return Verdict::Deny("pods/status cannot be deleted");
                }
                match name.and_then(|n| graph.pod_node(namespace, n)) {
                    Some(bound) if bound == node => Verdict::Allow,
                    _ => Verdict::Deny("a node may only modify pods bound to it"),
                }
            }
            ("", "pods", None) if request.verb == Verb::Create => Verdict::Deny(
                "a node may not create pods (the binding is in the body, which authorization cannot see)",
            ),
            ("", "services" | "endpoints", None) if read => Verdict::Allow,
            ("", resource @ ("secrets" | "configmaps"), None)
                if matches!(request.verb, Verb::Get | Verb::List | Verb::Watch) =>
            {
                let kind = if resource == "secrets" {
                    RefKind::Secret
                } else {
                    RefKind::ConfigMap
                };
                match name {
                    Some(n) if graph.node_references(node, kind, namespace, n) => Verdict::Allow,
                    Some(_) => Verdict::Deny("no pod bound to this node references it"),
                    None => Verdict::Deny("a node may only read secrets and configmaps by name"),
                }
            }
            ("", "serviceaccounts", Some("token")) if request.verb == Verb::Create => match name {
                Some(n) if graph.node_references(node, RefKind::ServiceAccount, namespace, n) => {
                    Verdict::Allow
                }
                _ => Verdict::Deny("no pod bound to this node runs as this service account"),
            },
            ("", "events", None)
                if matches!(request.verb, Verb::Create | Verb::Update | Verb::Patch) =>
            {
                Verdict::Allow
            }
            ("coordination.k8s.io", "leases", None) => {
                if namespace != NODE_LEASE_NAMESPACE {
                    Verdict::Deny("a node's leases live in kube-node-lease")
                } else if !own {
                    Verdict::Deny("a node may only use its own Lease, named in the request")
                } else if request.verb == Verb::List {
                    Verdict::Deny("a node may not list leases")
                } else {
                    Verdict::Allow
                }
            }
            _ => Verdict::Deny("not permitted to nodes"),
        }
    }
}

impl Authorizer for NodeAuthorizer {
    fn authorize(&self, request: &RequestAttributes) -> Decision {
        let Some(node) = request.user.node_name() else {
            return Decision::NoOpinion;
        };
        match self.decide(node, request) {
            Verdict::Allow => Decision::Allow,
            Verdict::Deny(why) => Decision::Deny(format!("{request}: {why}")),
        }
    }
}

#[cfg(test)]
mod tests;
