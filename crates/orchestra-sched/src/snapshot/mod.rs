//! [`ClusterSnapshot`]: the cluster as one scheduling cycle sees it, built incrementally (add,
//! update and remove nodes and pods; assume a pod onto its chosen node) and cheap to clone.
//!
//! Nodes live inline in chunks of [`CHUNK`] behind `Arc`s, so cloning a snapshot is a handful
//! of reference-count increments whatever the cluster's size, and changing one node of a
//! shared snapshot copies its chunk only (copy on write; the pods in it are shared `Arc`s).
//! Inline nodes keep the Filter phase's walk over consecutive nodes sequential in memory, and
//! label strings are interned so that nodes share them.
//!
//! # Layout
//! - [`label_index`]: [`LabelIndex`], the nodes per label key and value.
//! - [`node_info`]: [`NodeInfo`], one node and its pods' totals.
//! - [`pod_info`]: [`PodInfo`], one pod with its precomputed requests, ports and selectors.
//! - [`pod_groups`]: [`PodGroups`], pods grouped by namespace, labels and affinity, per node.

pub mod label_index;
pub mod node_info;
pub mod pod_groups;
pub mod pod_info;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use orchestra_api::resources::{Node, Pod, PodGroup as GangSpec};

use crate::plugins::helpers::FxHashMap;
pub use label_index::{KeyIndex, LabelIndex};
pub use node_info::{ImageState, NodeInfo};
pub use pod_groups::{PodGroup, PodGroups};
pub use pod_info::{AffinityTerm, HostPort, PodInfo, PodInfoError, SpreadConstraint};

/// The node names of a snapshot in index order, behind one `Arc`: cloned in one reference
/// count increment (a failed cycle's rejections keep it to name their nodes), copied on
/// write when a node is added or removed while a clone is alive.
#[derive(Clone, Debug, Default)]
pub struct NodeNames(Arc<Vec<Arc<str>>>);

impl NodeNames {
    /// The name of node `index`.
    ///
    /// # Panics
    /// If `index` is out of range.
    pub fn get(&self, index: usize) -> &Arc<str> {
        &self.0[index]
    }

    /// The number of names.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether both are the same table (so that the same index names the same node).
    pub fn same(&self, other: &NodeNames) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Append a name (its index is the previous length).
    pub(crate) fn push(&mut self, name: Arc<str>) {
        Arc::make_mut(&mut self.0).push(name);
    }

    /// Remove the name at `index`; the last takes its place.
    fn swap_remove(&mut self, index: usize) {
        Arc::make_mut(&mut self.0).swap_remove(index);
    }
}

/// Nodes per chunk.
pub const CHUNK: usize = 64;

/// Why a snapshot refused a change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The node is not in the snapshot.
    #[error("node {0:?} is not in the snapshot")]
    NodeNotFound(String),
    /// A node without a name.
    #[error("a node without metadata.name cannot be added")]
    UnnamedNode,
    /// The pod is not bound to a node (`spec.nodeName` is empty).
    #[error("pod {0} has no spec.nodeName; use `assume` to place an unbound pod")]
    Unbound(String),
    /// A pod with this key is already in the snapshot.
    #[error("pod {0} is already in the snapshot")]
    DuplicatePod(String),
    /// The pod is not in the snapshot.
    #[error("pod {0} is not in the snapshot")]
    PodNotFound(String),
    /// The pod's selectors are invalid.
    #[error(transparent)]
    InvalidPod(#[from] PodInfoError),
}

/// The cluster for scheduling; see the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct ClusterSnapshot {
    chunks: Arc<Vec<Arc<Vec<NodeInfo>>>>,
    strings: Arc<HashMap<Arc<str>, ()>>,
    groups: Arc<PodGroups>,
    labels: Arc<LabelIndex>,
    len: usize,
    // Fx-hashed: looked up per node and per pod on hot paths (preemption, assume); the keys
    // are the cluster's own node names and pod keys.
    by_name: Arc<FxHashMap<Arc<str>, usize>>,
    /// The node names in index order, shared with the rejections of a failed cycle
    /// ([`NodeNames`]): they record node indexes, and one reference to this table instead
    /// of a reference count per node.
    names: NodeNames,
    pod_nodes: Arc<FxHashMap<String, Arc<str>>>,
    image_nodes: Arc<HashMap<Arc<str>, u32>>,
    namespaces: Arc<HashMap<String, BTreeMap<String, String>>>,
    pods_with_affinity: usize,
    pods_with_required_anti_affinity: usize,
    /// Pending pods nominated to a node by preemption, per node.
    nominated: Arc<HashMap<Arc<str>, Vec<Arc<PodInfo>>>>,
    /// The node each nominated pod is nominated to.
    nominations: Arc<HashMap<String, Arc<str>>>,
    /// The PodGroup objects (gangs' minimum and timeout), by `namespace/name`.
    gang_specs: Arc<HashMap<String, Arc<GangSpec>>>,
}

impl ClusterSnapshot {
    /// An empty cluster.
    pub fn new() -> Self {
        ClusterSnapshot::default()
    }

    /// A cluster of these nodes, then these pods (each bound through `spec.nodeName`).
    pub fn from_objects(
        nodes: impl IntoIterator<Item = Node>,
        pods: impl IntoIterator<Item = Pod>,
    ) -> Result<Self, SnapshotError> {
        let mut snapshot = ClusterSnapshot::new();
        for node in nodes {
            snapshot.upsert_node(node)?;
        }
        for pod in pods {
            snapshot.add_pod(pod)?;
        }
        Ok(snapshot)
    }

    /// The number of nodes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The node at `index` (0..len); the order is stable until a node is removed.
    ///
    /// # Panics
    /// If `index >= len()`.
    pub fn node(&self, index: usize) -> &NodeInfo {
        &self.chunks[index / CHUNK][index % CHUNK]
    }

    /// The node with this name.
    pub fn get(&self, name: &str) -> Option<&NodeInfo> {
        self.by_name.get(name).map(|&i| self.node(i))
    }

    /// The names of the nodes, in index order: the same table (by pointer, see
    /// [`NodeNames::same`]) as long as no node is added or removed.
    pub fn node_names(&self) -> &NodeNames {
        &self.names
    }

    /// The index of the node with this name.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// Every node, in index order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    /// The number of pods (bound or assumed).
    pub fn num_pods(&self) -> usize {
        self.pod_nodes.len()
    }

    /// The node a pod (`namespace/name`) is on.
    pub fn pod_node(&self, key: &str) -> Option<&Arc<str>> {
        self.pod_nodes.get(key)
    }

    /// The nodes carrying a label key, per value (`None` when no node carries it).
    pub fn label_domains(&self, key: &str) -> Option<&KeyIndex> {
        self.labels.key(key)
    }

    /// The pods grouped by namespace, labels and affinity, with their nodes.
    pub fn pod_groups(&self) -> impl Iterator<Item = &PodGroup> {
        self.groups.iter()
    }

    /// The groups of pods labelled `scheduling.x-k8s.io/pod-group: gang` in `namespace` (a
    /// gang's members, found without a walk over every group).
    pub fn gang_groups(&self, namespace: &str, gang: &str) -> impl Iterator<Item = &PodGroup> {
        self.groups.gang(namespace, gang)
    }

    /// The number of pods with any pod (anti-)affinity term.
    pub fn pods_with_affinity(&self) -> usize {
        self.pods_with_affinity
    }

    /// The number of pods with required anti-affinity terms.
    pub fn pods_with_required_anti_affinity(&self) -> usize {
        self.pods_with_required_anti_affinity
    }

    /// On how many nodes an image (normalized name) is present.
    pub fn image_spread(&self, image: &str) -> u32 {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    /// The number of distinct images known on nodes.
    pub fn num_images(&self) -> usize {
        self.image_nodes.len()
    }

    /// A namespace's labels, if registered with [`ClusterSnapshot::set_namespace_labels`].
    pub fn namespace_labels(&self, namespace: &str) -> Option<&BTreeMap<String, String>> {
        self.namespaces.get(namespace)
    }

    /// Nominate a pending pod to a node: preemption is clearing room for it there, and the
    /// Filter phase counts it on that node for pods of lower or equal priority (kube-scheduler's
    /// nominated pods). Replaces the pod's previous nomination.
    pub fn nominate(&mut self, pod: Arc<PodInfo>, node: &str) -> Result<(), SnapshotError> {
        let index = self.index_of(node)?;
        let name = self.node(index).name().clone();
        self.clear_nomination(pod.key());
        Arc::make_mut(&mut self.nominations).insert(pod.key().to_owned(), name.clone());
        Arc::make_mut(&mut self.nominated)
            .entry(name)
            .or_default()
            .push(pod);
        Ok(())
    }

    /// Drop a pod's nomination (bound, deleted, or nominated nowhere any more); returns the
    /// node it was nominated to.
    pub fn clear_nomination(&mut self, key: &str) -> Option<Arc<str>> {
        if !self.nominations.contains_key(key) {
            return None;
        }
        let node = Arc::make_mut(&mut self.nominations).remove(key)?;
        let nominated = Arc::make_mut(&mut self.nominated);
        if let Some(pods) = nominated.get_mut(&node) {
            pods.retain(|p| p.key() != key);
            if pods.is_empty() {
                nominated.remove(&node);
            }
        }
        Some(node)
    }

    /// The pods nominated to a node.
    pub fn nominated_pods(&self, node: &str) -> &[Arc<PodInfo>] {
        self.nominated.get(node).map_or(&[], |v| &v[..])
    }

    /// The node a pod (`namespace/name`) is nominated to.
    pub fn nomination(&self, key: &str) -> Option<&Arc<str>> {
        self.nominations.get(key)
    }

    /// Whether any pod is nominated anywhere (the Filter phase's fast path).
    pub fn has_nominations(&self) -> bool {
        !self.nominations.is_empty()
    }

    /// Add or replace a PodGroup object (the API kind `scheduling.x-k8s.io/v1alpha1`
    /// PodGroup: a gang's `minMember` and timeout, which Coscheduling reads).
    pub fn set_gang_spec(&mut self, group: impl Into<Arc<GangSpec>>) {
        let group: Arc<GangSpec> = group.into();
        let key = format!("{}/{}", group.metadata.namespace, group.metadata.name);
        Arc::make_mut(&mut self.gang_specs).insert(key, group);
    }

    /// Drop a PodGroup object; returns it if it was known.
    pub fn remove_gang_spec(&mut self, namespace: &str, name: &str) -> Option<Arc<GangSpec>> {
        if self.gang_specs.is_empty() {
            return None;
        }
        Arc::make_mut(&mut self.gang_specs).remove(&format!("{namespace}/{name}"))
    }

    /// The PodGroup object named `name` in `namespace`, if known.
    pub fn gang_spec(&self, namespace: &str, name: &str) -> Option<&Arc<GangSpec>> {
        if self.gang_specs.is_empty() {
            return None;
        }
        self.gang_specs.get(&format!("{namespace}/{name}"))
    }

    /// Every PodGroup object known.
    pub fn gang_specs(&self) -> impl Iterator<Item = &Arc<GangSpec>> {
        self.gang_specs.values()
    }

    /// Register a namespace's labels (for affinity terms' namespace selectors).
    pub fn set_namespace_labels(&mut self, namespace: &str, labels: BTreeMap<String, String>) {
        Arc::make_mut(&mut self.namespaces).insert(namespace.to_owned(), labels);
    }

    /// Add a node, or replace the node object of the same name (its pods stay).
    pub fn upsert_node(&mut self, node: impl Into<Arc<Node>>) -> Result<(), SnapshotError> {
        let node: Arc<Node> = node.into();
        if node.metadata.name.is_empty() {
            return Err(SnapshotError::UnnamedNode);
        }
        let strings = Arc::make_mut(&mut self.strings);
        let mut intern = |s: &str| match strings.get_key_value(s) {
            Some((k, ())) => k.clone(),
            None => {
                let k: Arc<str> = Arc::from(s);
                strings.insert(k.clone(), ());
                k
            }
        };
        if let Some(&i) = self.by_name.get(node.metadata.name.as_str()) {
            let chunk = &mut Arc::make_mut(&mut self.chunks)[i / CHUNK];
            let info = &mut Arc::make_mut(chunk)[i % CHUNK];
            let old: Vec<(Arc<str>, Arc<str>)> = info.labels().to_vec();
            info.set_node_interned(node, &mut intern);
            if old[..] != *info.labels() {
                let index = Arc::make_mut(&mut self.labels);
                index.remove(&old, i as u32);
                index.add(info.labels(), i as u32);
            }
            return Ok(());
        }
        let mut info = NodeInfo::new(node.clone());
        info.set_node_interned(node, &mut intern);
        let index = self.len;
        Arc::make_mut(&mut self.by_name).insert(info.name().clone(), index);
        self.names.push(info.name().clone());
        Arc::make_mut(&mut self.labels).add(info.labels(), index as u32);
        let chunks = Arc::make_mut(&mut self.chunks);
        if index.is_multiple_of(CHUNK) {
            chunks.push(Arc::new(Vec::with_capacity(CHUNK)));
        }
        let last = chunks.last_mut().expect("a chunk was just ensured");
        Arc::make_mut(last).push(info);
        self.len += 1;
        Ok(())
    }

    /// Remove a node and its pods; the last node takes its index.
    pub fn remove_node(&mut self, name: &str) -> Result<(), SnapshotError> {
        let index = *self
            .by_name
            .get(name)
            .ok_or_else(|| SnapshotError::NodeNotFound(name.to_owned()))?;
        let removed = self.node(index).clone();
        self.set_images(name, Vec::new())?;
        let nominated: Vec<String> = self
            .nominated_pods(name)
            .iter()
            .map(|p| p.key().to_owned())
            .collect();
        for key in nominated {
            self.clear_nomination(&key);
        }
        let pod_nodes = Arc::make_mut(&mut self.pod_nodes);
        for pod in removed.pods() {
            pod_nodes.remove(pod.key());
        }
        self.pods_with_affinity -= removed.pods_with_affinity().len();
        self.pods_with_required_anti_affinity -= removed.pods_with_required_anti_affinity().len();
        let last = self.len - 1;
        let chunks = Arc::make_mut(&mut self.chunks);
        let moved = Arc::make_mut(&mut chunks[last / CHUNK])
            .pop()
            .expect("the last chunk holds the last node");
        if chunks[last / CHUNK].is_empty() {
            chunks.pop();
        }
        let by_name = Arc::make_mut(&mut self.by_name);
        by_name.remove(name);
        self.names.swap_remove(index);
        let labels = Arc::make_mut(&mut self.labels);
        labels.remove(removed.labels(), index as u32);
        if index != last {
            labels.remove(moved.labels(), last as u32);
            labels.add(moved.labels(), index as u32);
            by_name.insert(moved.name().clone(), index);
            Arc::make_mut(&mut chunks[index / CHUNK])[index % CHUNK] = moved;
        }
        self.len -= 1;
        // Node indexes moved: regroup (removing a node is rare next to placing pods).
        self.groups = Arc::new(PodGroups::build(self.nodes()));
        Ok(())
    }

    /// Set the images present on a node (name and size in bytes), for ImageLocality.
    pub fn set_images(
        &mut self,
        node: &str,
        images: impl IntoIterator<Item = (String, i64)>,
    ) -> Result<(), SnapshotError> {
        let index = self.index_of(node)?;
        let old: Vec<Arc<str>> = self
            .node(index)
            .images()
            .iter()
            .map(|i| i.name.clone())
            .collect();
        self.node_mut(index).set_images(images);
        let new: Vec<Arc<str>> = self
            .node(index)
            .images()
            .iter()
            .map(|i| i.name.clone())
            .collect();
        let counts = Arc::make_mut(&mut self.image_nodes);
        for name in old {
            if let Some(n) = counts.get_mut(&name) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(&name);
                }
            }
        }
        for name in new {
            *counts.entry(name).or_insert(0) += 1;
        }
        Ok(())
    }

    /// Add a pod bound to a node (`spec.nodeName`).
    pub fn add_pod(&mut self, pod: impl Into<Arc<Pod>>) -> Result<(), SnapshotError> {
        let info = PodInfo::new(pod)?;
        if info.pod.spec.node_name.is_empty() {
            return Err(SnapshotError::Unbound(info.key().to_owned()));
        }
        let node = info.pod.spec.node_name.clone();
        self.assume(Arc::new(info), &node)
    }

    /// Account a pod on a node, whatever its `spec.nodeName` says: the scheduler does this as
    /// soon as it chooses a node, before the binding is written (an assumed pod).
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) -> Result<(), SnapshotError> {
        let index = self.index_of(node)?;
        if self.pod_nodes.contains_key(pod.key()) {
            return Err(SnapshotError::DuplicatePod(pod.key().to_owned()));
        }
        // A pod placed is nominated nowhere any more.
        self.clear_nomination(pod.key());
        let name = self.node(index).name().clone();
        Arc::make_mut(&mut self.pod_nodes).insert(pod.key().to_owned(), name);
        self.pods_with_affinity += usize::from(pod.has_affinity());
        self.pods_with_required_anti_affinity +=
            usize::from(!pod.required_anti_affinity.is_empty());
        Arc::make_mut(&mut self.groups).add(&pod, index as u32);
        self.node_mut(index).add_pod(pod);
        Ok(())
    }

    /// Remove a pod (`namespace/name`) from its node (deleted, or an assumed pod whose binding
    /// failed); returns it.
    pub fn remove_pod(&mut self, key: &str) -> Result<Arc<PodInfo>, SnapshotError> {
        let node = Arc::make_mut(&mut self.pod_nodes)
            .remove(key)
            .ok_or_else(|| SnapshotError::PodNotFound(key.to_owned()))?;
        let index = self.index_of(&node)?;
        let pod = self
            .node_mut(index)
            .remove_pod(key)
            .ok_or_else(|| SnapshotError::PodNotFound(key.to_owned()))?;
        self.pods_with_affinity -= usize::from(pod.has_affinity());
        self.pods_with_required_anti_affinity -=
            usize::from(!pod.required_anti_affinity.is_empty());
        Arc::make_mut(&mut self.groups).remove(&pod, index as u32);
        Ok(pod)
    }

    fn index_of(&self, node: &str) -> Result<usize, SnapshotError> {
        self.by_name
            .get(node)
            .copied()
            .ok_or_else(|| SnapshotError::NodeNotFound(node.to_owned()))
    }

    /// The node at `index`, its chunk copied first if another snapshot shares it.
    fn node_mut(&mut self, index: usize) -> &mut NodeInfo {
        let chunk = &mut Arc::make_mut(&mut self.chunks)[index / CHUNK];
        &mut Arc::make_mut(chunk)[index % CHUNK]
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::meta::ObjectMeta;
    use orchestra_api::resources::PodSpec;

    use super::*;

    fn node(name: &str) -> Node {
        Node {
            metadata: ObjectMeta::named(name),
            ..Node::default()
        }
    }

    fn pod(name: &str, node: &str) -> Pod {
        Pod {
            metadata: ObjectMeta::namespaced("default", name),
            spec: PodSpec {
                node_name: node.into(),
                ..PodSpec::default()
            },
            status: None,
        }
    }

    #[test]
    fn clones_share_nodes_until_one_changes() {
        let nodes = (0..200).map(|i| node(&format!("n{i}")));
        let mut a = ClusterSnapshot::from_objects(nodes, [pod("p", "n5")]).unwrap();
        let b = a.clone();
        a.add_pod(pod("q", "n150")).unwrap();
        assert_eq!(a.get("n150").unwrap().pods().len(), 1);
        assert_eq!(b.get("n150").unwrap().pods().len(), 0);
        // Untouched chunks are still shared.
        assert!(Arc::ptr_eq(&a.chunks[0], &b.chunks[0]));
        assert_eq!((a.num_pods(), b.num_pods()), (2, 1));
    }

    #[test]
    fn label_domains_follow_node_changes() {
        let zoned = |name: &str, zone: &str| {
            let mut n = node(name);
            n.metadata.labels.insert("zone".into(), zone.into());
            n
        };
        let mut s = ClusterSnapshot::from_objects(
            (0..70).map(|i| zoned(&format!("n{i}"), if i % 2 == 0 { "a" } else { "b" })),
            [],
        )
        .unwrap();
        let domain = |s: &ClusterSnapshot, v: &str| -> Vec<String> {
            s.label_domains("zone")
                .map(|k| {
                    k.nodes_with(v)
                        .iter()
                        .map(|&i| s.node(i as usize).name().to_string())
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(s.label_domains("zone").unwrap().num_nodes(), 70);
        assert_eq!(domain(&s, "b").len(), 35);
        // Relabel n1 from b to c.
        s.upsert_node(zoned("n1", "c")).unwrap();
        assert_eq!(domain(&s, "c"), ["n1"]);
        assert_eq!(domain(&s, "b").len(), 34);
        // Remove n3: n69 (zone b) takes index 3.
        s.remove_node("n3").unwrap();
        let b = domain(&s, "b");
        assert_eq!(b.len(), 33);
        assert!(b.contains(&"n69".to_owned()) && !b.contains(&"n3".to_owned()));
        let k = s.label_domains("zone").unwrap();
        assert!(k.nodes_with("b").windows(2).all(|w| w[0] < w[1]));
        assert_eq!(k.num_nodes(), 69);
        s.remove_node("n1").unwrap();
        assert!(domain(&s, "c").is_empty());
        assert_eq!(s.label_domains("zone").unwrap().num_domains(), 2);
        // A node without the label is in no domain.
        s.upsert_node(node("bare")).unwrap();
        assert_eq!(s.label_domains("zone").unwrap().num_nodes(), 68);
    }

    #[test]
    fn removing_a_node_moves_the_last_into_its_place() {
        let nodes = (0..70).map(|i| node(&format!("n{i}")));
        let mut s = ClusterSnapshot::from_objects(nodes, [pod("p", "n3")]).unwrap();
        s.remove_node("n3").unwrap();
        assert_eq!(s.len(), 69);
        assert_eq!(s.node(3).name().as_ref(), "n69");
        assert_eq!(s.get("n69").unwrap().name().as_ref(), "n69");
        assert!(s.get("n3").is_none());
        assert_eq!(s.num_pods(), 0);
        assert_eq!(s.nodes().count(), 69);
        assert_eq!(s.chunks.len(), 2);
    }

    #[test]
    fn rejects_duplicates_unbound_pods_and_unknown_nodes() {
        let mut s = ClusterSnapshot::from_objects([node("n1")], [pod("p", "n1")]).unwrap();
        assert_eq!(
            s.add_pod(pod("p", "n1")),
            Err(SnapshotError::DuplicatePod("default/p".into()))
        );
        assert!(matches!(
            s.add_pod(pod("q", "")),
            Err(SnapshotError::Unbound(_))
        ));
        assert_eq!(
            s.add_pod(pod("q", "n9")),
            Err(SnapshotError::NodeNotFound("n9".into()))
        );
        s.remove_pod("default/p").unwrap();
        assert!(s.remove_pod("default/p").is_err());
    }

    #[test]
    fn groups_follow_assume_remove_and_node_removal() {
        let labelled = |name: &str, node: &str| {
            let mut p = pod(name, node);
            p.metadata.labels.insert("app".into(), "web".into());
            p
        };
        let mut s = ClusterSnapshot::from_objects(
            [node("a"), node("b"), node("c")],
            [
                labelled("p1", "a"),
                labelled("p2", "a"),
                labelled("p3", "c"),
                pod("q", "b"),
            ],
        )
        .unwrap();
        let groups = |s: &ClusterSnapshot| {
            let mut g: Vec<(String, Vec<(String, i64)>)> = s
                .pod_groups()
                .map(|g| {
                    let mut nodes: Vec<(String, i64)> = g
                        .nodes()
                        .map(|(i, n)| (s.node(i).name().to_string(), n))
                        .collect();
                    nodes.sort();
                    (format!("{:?}", g.sample().pod.metadata.labels), nodes)
                })
                .collect();
            g.sort();
            g
        };
        assert_eq!(
            groups(&s),
            [
                (
                    "{\"app\": \"web\"}".to_owned(),
                    vec![("a".to_owned(), 2), ("c".to_owned(), 1)]
                ),
                ("{}".to_owned(), vec![("b".to_owned(), 1)]),
            ]
        );
        s.remove_pod("default/p1").unwrap();
        s.remove_pod("default/q").unwrap();
        assert_eq!(
            groups(&s),
            [(
                "{\"app\": \"web\"}".to_owned(),
                vec![("a".to_owned(), 1), ("c".to_owned(), 1)]
            )]
        );
        // Removing "a" moves "c" to index 0: the groups follow.
        s.remove_node("a").unwrap();
        assert_eq!(
            groups(&s),
            [("{\"app\": \"web\"}".to_owned(), vec![("c".to_owned(), 1)])]
        );
    }

    #[test]
    fn counts_nodes_per_image() {
        let mut s = ClusterSnapshot::from_objects([node("a"), node("b")], []).unwrap();
        s.set_images("a", [("nginx".to_owned(), 100)]).unwrap();
        s.set_images("b", [("nginx:latest".to_owned(), 100)])
            .unwrap();
        assert_eq!(s.image_spread("nginx:latest"), 2);
        s.remove_node("a").unwrap();
        assert_eq!(s.image_spread("nginx:latest"), 1);
    }
}
