//! [`SchedulerCache`]: the cluster as the scheduling loop knows it, kept in one
//! [`ClusterSnapshot`] that is changed in place by watch events and by the loop's own
//! decisions, so that a scheduling cycle reads it without copying anything.
//!
//! A pod the loop places is **assumed**: it counts on its node at once, before its binding
//! is written, so that the next cycle does not give its room away. The assumption is
//! **confirmed** when the watch shows the pod bound (the watched object replaces the assumed
//! one, on whatever node the binding names), or **forgotten** when the binding fails.
//!
//! Assigned pods whose node the cache does not know yet (the pod watch ran ahead of the node
//! watch) wait aside and join the node when it is added.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use orchestra_api::resources::{Node, Pod, PodGroup};

use crate::snapshot::{ClusterSnapshot, PodInfo, SnapshotError};

/// The scheduler's cache; see the [module docs](self).
#[derive(Debug, Default)]
pub struct SchedulerCache {
    snapshot: ClusterSnapshot,
    /// Pods placed by the loop whose binding the watch has not shown yet: key to node.
    assumed: HashMap<String, Arc<str>>,
    /// Assigned pods on nodes the cache does not know, by key.
    orphans: HashMap<String, Arc<Pod>>,
}

/// The key of a pod: `namespace/name`.
pub fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.metadata.namespace, pod.metadata.name)
}

impl SchedulerCache {
    /// An empty cache.
    pub fn new() -> Self {
        SchedulerCache::default()
    }

    /// The cluster: nodes with their bound and assumed pods.
    pub fn snapshot(&self) -> &ClusterSnapshot {
        &self.snapshot
    }

    /// Whether a pod (`namespace/name`) is assumed (placed, binding not yet seen).
    pub fn is_assumed(&self, key: &str) -> bool {
        self.assumed.contains_key(key)
    }

    /// The number of assumed pods.
    pub fn num_assumed(&self) -> usize {
        self.assumed.len()
    }

    /// The number of assigned pods waiting for their node to be known.
    pub fn num_orphans(&self) -> usize {
        self.orphans.len()
    }

    /// Adds or replaces a node (shared as given: a watch's `Arc` is kept, not copied);
    /// assigned pods waiting for it join it. Returns whether the node is new.
    pub fn upsert_node(&mut self, node: impl Into<Arc<Node>>) -> Result<bool, SnapshotError> {
        let node: Arc<Node> = node.into();
        let name = node.metadata.name.clone();
        let added = self.snapshot.get(&name).is_none();
        self.snapshot.upsert_node(node)?;
        if added {
            let waiting: Vec<String> = self
                .orphans
                .iter()
                .filter(|(_, p)| p.spec.node_name == name)
                .map(|(k, _)| k.clone())
                .collect();
            for key in waiting {
                if let Some(pod) = self.orphans.remove(&key) {
                    self.snapshot.add_pod(pod)?;
                }
            }
        }
        Ok(added)
    }

    /// Removes a node. Its bound pods wait aside (they are deleted by whoever deletes them);
    /// pods assumed onto it are forgotten (their binding will fail, or the watch shows them).
    pub fn remove_node(&mut self, name: &str) -> Result<(), SnapshotError> {
        let Some(node) = self.snapshot.get(name) else {
            return Err(SnapshotError::NodeNotFound(name.to_owned()));
        };
        let pods: Vec<Arc<PodInfo>> = node.pods().to_vec();
        self.snapshot.remove_node(name)?;
        for pod in pods {
            let key = pod.key();
            if self.assumed.remove(key).is_none() {
                self.orphans.insert(key.to_owned(), pod.pod.clone());
            }
        }
        Ok(())
    }

    /// Makes the node set exactly `nodes` (after a relist).
    pub fn sync_nodes<N: Into<Arc<Node>>>(&mut self, nodes: Vec<N>) -> Result<(), SnapshotError> {
        let nodes: Vec<Arc<Node>> = nodes.into_iter().map(Into::into).collect();
        let names: HashSet<&str> = nodes.iter().map(|n| n.metadata.name.as_str()).collect();
        let gone: Vec<String> = self
            .snapshot
            .nodes()
            .filter(|n| !names.contains(&**n.name()))
            .map(|n| n.name().to_string())
            .collect();
        for name in gone {
            self.remove_node(&name)?;
        }
        for node in nodes {
            self.upsert_node(node)?;
        }
        Ok(())
    }

    /// Counts a pod the loop just placed on `node`, before its binding is written.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) -> Result<(), SnapshotError> {
        let key = pod.key().to_owned();
        self.snapshot.assume(pod, node)?;
        let node = self
            .snapshot
            .pod_node(&key)
            .cloned()
            .unwrap_or_else(|| Arc::from(node));
        self.assumed.insert(key, node);
        Ok(())
    }

    /// Nominates a pending pod to a node (preemption cleared room for it there); see
    /// [`ClusterSnapshot::nominate`].
    pub fn nominate(&mut self, pod: Arc<PodInfo>, node: &str) -> Result<(), SnapshotError> {
        self.snapshot.nominate(pod, node)
    }

    /// Drops a pod's nomination, if any.
    pub fn clear_nomination(&mut self, key: &str) {
        self.snapshot.clear_nomination(key);
    }

    /// Adds or replaces a PodGroup object (see [`ClusterSnapshot::set_gang_spec`]).
    pub fn set_gang_spec(&mut self, group: impl Into<Arc<PodGroup>>) {
        self.snapshot.set_gang_spec(group);
    }

    /// Drops a PodGroup object; returns whether it was known.
    pub fn remove_gang_spec(&mut self, namespace: &str, name: &str) -> bool {
        self.snapshot.remove_gang_spec(namespace, name).is_some()
    }

    /// Drops an assumption whose binding failed; returns whether the pod was assumed.
    pub fn forget(&mut self, key: &str) -> bool {
        if self.assumed.remove(key).is_none() {
            return false;
        }
        // The assumption is in the snapshot by construction.
        self.snapshot.remove_pod(key).is_ok()
    }

    /// A pod the watch shows assigned to a node (`spec.nodeName` set): confirms an assumption,
    /// or adds or updates the pod (shared as given: a watch's `Arc` is kept, not copied).
    pub fn add_or_update_pod(&mut self, pod: impl Into<Arc<Pod>>) -> Result<(), SnapshotError> {
        let pod: Arc<Pod> = pod.into();
        if pod.spec.node_name.is_empty() {
            return Err(SnapshotError::Unbound(pod_key(&pod)));
        }
        // Check the pod before dropping its previous state, so that a bad update leaves the
        // cache as it was.
        let info = PodInfo::new(pod)?;
        let key = info.key().to_owned();
        self.assumed.remove(&key);
        self.orphans.remove(&key);
        let _ = self.snapshot.remove_pod(&key);
        let node = info.pod.spec.node_name.clone();
        if self.snapshot.get(&node).is_some() {
            self.snapshot.assume(Arc::new(info), &node)
        } else {
            self.orphans.insert(key, info.pod);
            Ok(())
        }
    }

    /// A pod deleted (assigned, assumed or waiting for its node); returns whether it was known.
    pub fn remove_pod(&mut self, key: &str) -> bool {
        self.assumed.remove(key);
        self.snapshot.clear_nomination(key);
        let orphan = self.orphans.remove(key).is_some();
        self.snapshot.remove_pod(key).is_ok() || orphan
    }

    /// Makes the assigned pods exactly `pods` (after a relist), keeping assumptions whose
    /// binding is not shown yet. Pods that fail to parse are returned with their error.
    pub fn sync_pods<P: Into<Arc<Pod>>>(&mut self, pods: Vec<P>) -> Vec<SnapshotError> {
        let pods: Vec<Arc<Pod>> = pods.into_iter().map(Into::into).collect();
        let keys: HashSet<String> = pods.iter().map(|p| pod_key(p)).collect();
        let gone: Vec<String> = self
            .snapshot
            .nodes()
            .flat_map(|n| n.pods().iter().map(|p| p.key().to_owned()))
            .chain(self.orphans.keys().cloned())
            .filter(|k| !keys.contains(k) && !self.assumed.contains_key(k))
            .collect();
        for key in gone {
            self.remove_pod(&key);
        }
        pods.into_iter()
            .filter_map(|p| self.add_or_update_pod(p).err())
            .collect()
    }
}
