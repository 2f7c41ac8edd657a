//! [`NodeInfo`]: one node and what is on it (pods, requested resources, used host ports,
//! images), kept up to date as pods are added and removed so that plugins read totals instead
//! of summing pods.

use std::collections::BTreeMap;
use std::sync::Arc;

use orchestra_api::resources::{Node, Taint};

use super::pod_info::{HostPort, PodInfo, normalize_image};
use crate::resources::Resources;

/// An image present on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageState {
    /// The normalized image name.
    pub name: Arc<str>,
    /// Its size in bytes.
    pub size_bytes: i64,
}

/// A node and its pods; see the [module docs](self).
#[derive(Debug)]
pub struct NodeInfo {
    node: Arc<Node>,
    name: Arc<str>,
    // Shared: copies of a node (preemption's what-ifs) do not copy its labels.
    labels: Arc<[(Arc<str>, Arc<str>)]>,
    allocatable: Resources,
    requested: Resources,
    non_zero_milli_cpu: i64,
    non_zero_memory: i64,
    pods: Vec<Arc<PodInfo>>,
    /// The lowest priority among `pods` (`i32::MAX` without pods): preemption skips the
    /// nodes without a pod of lower priority than the preemptor without reading their pods.
    lowest_priority: i32,
    pods_with_affinity: Vec<Arc<PodInfo>>,
    pods_with_required_anti_affinity: Vec<Arc<PodInfo>>,
    used_ports: Vec<HostPort>,
    images: Vec<ImageState>,
    // Copies of the node's hot fields, so that filters read this struct only (the node object
    // is another allocation: a cache miss per node visited).
    unschedulable: bool,
    has_taints: bool,
}

impl Clone for NodeInfo {
    fn clone(&self) -> Self {
        NodeInfo {
            node: self.node.clone(),
            name: self.name.clone(),
            labels: self.labels.clone(),
            allocatable: self.allocatable.clone(),
            requested: self.requested.clone(),
            non_zero_milli_cpu: self.non_zero_milli_cpu,
            non_zero_memory: self.non_zero_memory,
            pods: self.pods.clone(),
            lowest_priority: self.lowest_priority,
            pods_with_affinity: self.pods_with_affinity.clone(),
            pods_with_required_anti_affinity: self.pods_with_required_anti_affinity.clone(),
            used_ports: self.used_ports.clone(),
            images: self.images.clone(),
            unschedulable: self.unschedulable,
            has_taints: self.has_taints,
        }
    }

    /// A copy into an existing `NodeInfo` that reuses its vectors (preemption copies one
    /// node after another into the same what-if).
    fn clone_from(&mut self, source: &Self) {
        self.node.clone_from(&source.node);
        self.name.clone_from(&source.name);
        self.labels.clone_from(&source.labels);
        self.allocatable.clone_from(&source.allocatable);
        self.requested.clone_from(&source.requested);
        self.non_zero_milli_cpu = source.non_zero_milli_cpu;
        self.non_zero_memory = source.non_zero_memory;
        self.pods.clone_from(&source.pods);
        self.lowest_priority = source.lowest_priority;
        self.pods_with_affinity
            .clone_from(&source.pods_with_affinity);
        self.pods_with_required_anti_affinity
            .clone_from(&source.pods_with_required_anti_affinity);
        self.used_ports.clone_from(&source.used_ports);
        self.images.clone_from(&source.images);
        self.unschedulable = source.unschedulable;
        self.has_taints = source.has_taints;
    }
}

impl NodeInfo {
    /// A node with no pods. Its allocatable resources are `status.allocatable`, or
    /// `status.capacity` when that is empty (a node without status offers nothing).
    pub fn new(node: impl Into<Arc<Node>>) -> NodeInfo {
        let node: Arc<Node> = node.into();
        let mut info = NodeInfo {
            name: Arc::from(node.metadata.name.as_str()),
            node: node.clone(),
            labels: Arc::new([]),
            allocatable: Resources::default(),
            requested: Resources::default(),
            non_zero_milli_cpu: 0,
            non_zero_memory: 0,
            pods: Vec::new(),
            lowest_priority: i32::MAX,
            pods_with_affinity: Vec::new(),
            pods_with_required_anti_affinity: Vec::new(),
            used_ports: Vec::new(),
            images: Vec::new(),
            unschedulable: false,
            has_taints: false,
        };
        info.set_node(node);
        info
    }

    /// Replace the node object (labels, taints, allocatable may change), keeping its pods.
    pub fn set_node(&mut self, node: impl Into<Arc<Node>>) {
        self.set_node_interned(node, &mut |s| Arc::from(s));
    }

    /// [`NodeInfo::set_node`], sharing label strings through `intern` (the snapshot shares
    /// them between nodes, so that label lookups touch few distinct cache lines).
    pub(crate) fn set_node_interned(
        &mut self,
        node: impl Into<Arc<Node>>,
        intern: &mut dyn FnMut(&str) -> Arc<str>,
    ) {
        let node: Arc<Node> = node.into();
        // BTreeMap iteration is sorted by key: `label` relies on it for binary search.
        self.labels = node
            .metadata
            .labels
            .iter()
            .map(|(k, v)| (intern(k), intern(v)))
            .collect();
        self.unschedulable = node.spec.unschedulable;
        self.has_taints = !node.spec.taints.is_empty();
        self.allocatable = node.status.as_ref().map_or_else(Resources::default, |s| {
            if s.allocatable.is_empty() {
                Resources::from_list(&s.capacity)
            } else {
                Resources::from_list(&s.allocatable)
            }
        });
        self.name = Arc::from(node.metadata.name.as_str());
        self.node = node;
    }

    /// The node object.
    pub fn node(&self) -> &Node {
        &self.node
    }

    /// The node object, shared.
    pub fn node_arc(&self) -> &Arc<Node> {
        &self.node
    }

    /// The node's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The value of a node label.
    pub fn label(&self, key: &str) -> Option<&Arc<str>> {
        self.labels
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &self.labels[i].1)
    }

    /// The node's labels, sorted by key.
    pub fn labels(&self) -> &[(Arc<str>, Arc<str>)] {
        &self.labels
    }

    /// The node's labels as a map (the node object's).
    pub fn label_map(&self) -> &BTreeMap<String, String> {
        &self.node.metadata.labels
    }

    /// The node's taints.
    pub fn taints(&self) -> &[Taint] {
        if self.has_taints {
            &self.node.spec.taints
        } else {
            &[]
        }
    }

    /// Whether the node is cordoned (`spec.unschedulable`).
    pub fn unschedulable(&self) -> bool {
        self.unschedulable
    }

    /// What the node offers to pods.
    pub fn allocatable(&self) -> &Resources {
        &self.allocatable
    }

    /// What its pods request (`pods` is their number).
    pub fn requested(&self) -> &Resources {
        &self.requested
    }

    /// CPU its pods request, counting defaults for containers without a request (for scoring).
    pub fn non_zero_milli_cpu(&self) -> i64 {
        self.non_zero_milli_cpu
    }

    /// Memory its pods request, counting defaults (for scoring).
    pub fn non_zero_memory(&self) -> i64 {
        self.non_zero_memory
    }

    /// The pods on the node (bound or assumed).
    pub fn pods(&self) -> &[Arc<PodInfo>] {
        &self.pods
    }

    /// The lowest priority of the pods on the node (`i32::MAX` when it has none).
    pub fn lowest_priority(&self) -> i32 {
        self.lowest_priority
    }

    /// The pods on the node with any pod affinity or anti-affinity term.
    pub fn pods_with_affinity(&self) -> &[Arc<PodInfo>] {
        &self.pods_with_affinity
    }

    /// The pods on the node with required anti-affinity terms.
    pub fn pods_with_required_anti_affinity(&self) -> &[Arc<PodInfo>] {
        &self.pods_with_required_anti_affinity
    }

    /// The host ports bound on the node.
    pub fn used_ports(&self) -> &[HostPort] {
        &self.used_ports
    }

    /// The images present on the node, sorted by name.
    pub fn images(&self) -> &[ImageState] {
        &self.images
    }

    /// The size of an image if present on the node.
    pub fn image_size(&self, name: &str) -> Option<i64> {
        self.images
            .binary_search_by(|i| (*i.name).cmp(name))
            .ok()
            .map(|i| self.images[i].size_bytes)
    }

    /// Replace the images present on the node (names are normalized).
    pub(crate) fn set_images(&mut self, images: impl IntoIterator<Item = (String, i64)>) {
        self.images = images
            .into_iter()
            .map(|(name, size_bytes)| ImageState {
                name: normalize_image(&name),
                size_bytes,
            })
            .collect();
        self.images.sort_by(|a, b| a.name.cmp(&b.name));
        self.images.dedup_by(|a, b| a.name == b.name);
    }

    /// Account a pod on the node.
    pub(crate) fn add_pod(&mut self, pod: Arc<PodInfo>) {
        self.requested.add(&pod.requests.requests);
        self.non_zero_milli_cpu += pod.requests.non_zero_milli_cpu;
        self.non_zero_memory += pod.requests.non_zero_memory;
        self.used_ports.extend_from_slice(&pod.host_ports);
        if pod.has_affinity() {
            self.pods_with_affinity.push(pod.clone());
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity.push(pod.clone());
        }
        self.lowest_priority = self.lowest_priority.min(pod.priority);
        self.pods.push(pod);
    }

    /// Remove a pod by key; returns it if it was there.
    pub(crate) fn remove_pod(&mut self, key: &str) -> Option<Arc<PodInfo>> {
        let at = self.pods.iter().position(|p| p.key() == key)?;
        let pod = self.pods.swap_remove(at);
        self.unaccount(&pod);
        if pod.priority == self.lowest_priority {
            self.recompute_lowest_priority();
        }
        Some(pod)
    }

    /// Remove this very pod (the same `Arc`, searched from the most recently added);
    /// returns whether it was there. Preemption's what-ifs remove the pods they just added.
    pub(crate) fn remove_pod_arc(&mut self, pod: &Arc<PodInfo>) -> bool {
        let Some(at) = self.pods.iter().rposition(|p| Arc::ptr_eq(p, pod)) else {
            return false;
        };
        let pod = self.pods.swap_remove(at);
        self.unaccount(&pod);
        if pod.priority == self.lowest_priority {
            self.recompute_lowest_priority();
        }
        true
    }

    /// Make `self` a copy of `source` without the pods `remove` picks, reusing `self`'s
    /// vectors: preemption's what-if (every pod of lower priority than the preemptor gone)
    /// for one node after another, without copying the pods it leaves out. The same node as
    /// `clone_from` then [`NodeInfo::remove_pods_where`] would make.
    pub(crate) fn clone_without(
        &mut self,
        source: &Self,
        mut remove: impl FnMut(&PodInfo) -> bool,
    ) {
        self.node.clone_from(&source.node);
        self.name.clone_from(&source.name);
        self.labels.clone_from(&source.labels);
        self.allocatable.clone_from(&source.allocatable);
        self.requested.clone_from(&source.requested);
        self.non_zero_milli_cpu = source.non_zero_milli_cpu;
        self.non_zero_memory = source.non_zero_memory;
        self.pods.clear();
        self.pods_with_affinity
            .clone_from(&source.pods_with_affinity);
        self.pods_with_required_anti_affinity
            .clone_from(&source.pods_with_required_anti_affinity);
        self.used_ports.clone_from(&source.used_ports);
        self.images.clone_from(&source.images);
        self.unschedulable = source.unschedulable;
        self.has_taints = source.has_taints;
        for pod in &source.pods {
            if remove(pod) {
                self.unaccount(pod);
            } else {
                self.pods.push(pod.clone());
            }
        }
        self.recompute_lowest_priority();
    }

    /// Remove every pod `remove` picks, in one pass over the pods (preemption's what-if:
    /// every pod of lower priority than the preemptor). Preemption now builds that copy with
    /// `clone_without`; this stays as the tests' reference for it.
    #[cfg(test)]
    pub(crate) fn remove_pods_where(&mut self, mut remove: impl FnMut(&PodInfo) -> bool) {
        let mut i = 0;
        while i < self.pods.len() {
            if remove(&self.pods[i]) {
                let pod = self.pods.swap_remove(i);
                self.unaccount(&pod);
            } else {
                i += 1;
            }
        }
        self.recompute_lowest_priority();
    }

    fn recompute_lowest_priority(&mut self) {
        self.lowest_priority = self
            .pods
            .iter()
            .map(|p| p.priority)
            .min()
            .unwrap_or(i32::MAX);
    }

    /// Take a pod already removed from `pods` out of the totals and lists.
    fn unaccount(&mut self, pod: &Arc<PodInfo>) {
        // The lists hold clones of the same `Arc`; most pods are in neither.
        if pod.has_affinity() {
            self.pods_with_affinity.retain(|p| !Arc::ptr_eq(p, pod));
        }
        if !pod.required_anti_affinity.is_empty() {
            self.pods_with_required_anti_affinity
                .retain(|p| !Arc::ptr_eq(p, pod));
        }
        self.requested.sub(&pod.requests.requests);
        self.non_zero_milli_cpu -= pod.requests.non_zero_milli_cpu;
        self.non_zero_memory -= pod.requests.non_zero_memory;
        for port in &pod.host_ports {
            if let Some(i) = self.used_ports.iter().position(|p| p == port) {
                self.used_ports.swap_remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::Quantity;
    use orchestra_api::meta::ObjectMeta;
    use orchestra_api::resources::{
        Container, ContainerPort, NodeStatus, Pod, PodSpec, ResourceRequirements,
    };

    use super::*;

    fn node() -> Node {
        Node {
            metadata: ObjectMeta::named("n1")
                .with_label("zone", "a")
                .with_label("kubernetes.io/hostname", "n1"),
            status: Some(NodeStatus {
                capacity: [
                    ("cpu".to_owned(), Quantity::parse("4").unwrap()),
                    ("pods".to_owned(), Quantity::parse("110").unwrap()),
                ]
                .into(),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    fn pod(name: &str, cpu: &str, host_port: Option<i32>) -> Arc<PodInfo> {
        let container = Container {
            name: "c".into(),
            resources: ResourceRequirements {
                requests: [("cpu".to_owned(), Quantity::parse(cpu).unwrap())].into(),
                ..ResourceRequirements::default()
            },
            ports: host_port
                .map(|p| ContainerPort {
                    container_port: p,
                    host_port: Some(p),
                    ..ContainerPort::default()
                })
                .into_iter()
                .collect(),
            ..Container::default()
        };
        Arc::new(
            PodInfo::new(Pod {
                metadata: ObjectMeta::namespaced("default", name),
                spec: PodSpec {
                    containers: vec![container],
                    ..PodSpec::default()
                },
                status: None,
            })
            .unwrap(),
        )
    }

    #[test]
    fn capacity_stands_in_for_allocatable_and_labels_are_looked_up() {
        let info = NodeInfo::new(node());
        assert_eq!(info.allocatable().milli_cpu, 4000);
        assert_eq!(info.allocatable().pods, 110);
        assert_eq!(info.label("zone").map(|v| &**v), Some("a"));
        assert_eq!(info.label("region"), None);
    }

    #[test]
    fn adding_and_removing_pods_keeps_totals() {
        let mut info = NodeInfo::new(node());
        info.add_pod(pod("a", "500m", Some(80)));
        info.add_pod(pod("b", "1", None));
        assert_eq!(info.requested().milli_cpu, 1500);
        assert_eq!(info.requested().pods, 2);
        assert_eq!(info.used_ports().len(), 1);
        assert!(info.remove_pod("default/a").is_some());
        assert_eq!(info.requested().milli_cpu, 1000);
        assert_eq!(info.requested().pods, 1);
        assert!(info.used_ports().is_empty());
        assert!(info.remove_pod("default/a").is_none());
    }

    #[test]
    fn lowest_priority_follows_the_pods() {
        let with_priority = |name: &str, priority: i32| {
            let mut p = (*pod(name, "100m", None).pod).clone();
            p.spec.priority = Some(priority);
            Arc::new(PodInfo::new(p).unwrap())
        };
        let mut info = NodeInfo::new(node());
        assert_eq!(info.lowest_priority(), i32::MAX);
        let (low, mid, high) = (
            with_priority("low", -5),
            with_priority("mid", 3),
            with_priority("high", 9),
        );
        info.add_pod(mid.clone());
        info.add_pod(low.clone());
        info.add_pod(high.clone());
        assert_eq!(info.lowest_priority(), -5);
        assert!(info.remove_pod_arc(&low));
        assert_eq!(info.lowest_priority(), 3);
        let mut copy = NodeInfo::new(node());
        copy.clone_from(&info);
        assert_eq!(copy.lowest_priority(), 3);
        copy.remove_pods_where(|p| p.priority < 5);
        assert_eq!(copy.lowest_priority(), 9);
        assert!(info.remove_pod("default/mid").is_some());
        assert!(info.remove_pod("default/high").is_some());
        assert_eq!(info.lowest_priority(), i32::MAX);
    }

    #[test]
    fn removing_by_arc_or_predicate_keeps_totals() {
        let mut info = NodeInfo::new(node());
        let (a, b, c) = (
            pod("a", "500m", Some(80)),
            pod("b", "1", None),
            pod("c", "2", None),
        );
        for p in [&a, &b, &c] {
            info.add_pod(p.clone());
        }
        // Another Arc of the same pod is not this one.
        assert!(!info.remove_pod_arc(&pod("b", "1", None)));
        assert!(info.remove_pod_arc(&b));
        assert!(!info.remove_pod_arc(&b));
        assert_eq!(info.requested().milli_cpu, 2500);
        assert_eq!(info.lowest_priority(), 0);
        info.remove_pods_where(|p| p.requests.requests.milli_cpu < 1000);
        assert_eq!(info.pods().len(), 1);
        assert_eq!(info.pods()[0].key(), "default/c");
        assert_eq!(
            (info.requested().milli_cpu, info.requested().pods),
            (2000, 1)
        );
        assert!(info.used_ports().is_empty());
        info.add_pod(a);
        info.add_pod(b);
        info.remove_pods_where(|_| true);
        assert_eq!(info.lowest_priority(), i32::MAX);
        assert_eq!(info.requested(), &Resources::default());
        assert_eq!((info.non_zero_milli_cpu(), info.non_zero_memory()), (0, 0));
    }
}
