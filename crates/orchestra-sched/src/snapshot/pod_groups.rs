//! [`PodGroups`]: the snapshot's pods grouped by what pod affinity and topology spreading look
//! at (namespace, labels, affinity terms, terminating or not), each group with its pods per
//! node. Pods made from one template fall in one group, so the plugins that must consider
//! every pod of the cluster (InterPodAffinity, PodTopologySpread) match each selector once
//! per group instead of once per pod.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use super::node_info::NodeInfo;
use super::pod_info::PodInfo;
use crate::plugins::coscheduling::POD_GROUP_LABEL;
use crate::plugins::helpers::{FxHashMap, FxHasher};

/// Pods that look alike to affinity and spreading, and where they are.
#[derive(Clone, Debug)]
pub struct PodGroup {
    sample: Arc<PodInfo>,
    nodes: FxHashMap<u32, u32>,
    total: u32,
}

impl PodGroup {
    /// One pod of the group (all have its namespace, labels and affinity).
    pub fn sample(&self) -> &PodInfo {
        &self.sample
    }

    /// `(node index, pods of the group on it)` for every node with some.
    pub fn nodes(&self) -> impl Iterator<Item = (usize, i64)> + '_ {
        self.nodes.iter().map(|(i, n)| (*i as usize, i64::from(*n)))
    }

    /// The group's pods.
    pub fn len(&self) -> u32 {
        self.total
    }

    /// Whether the group has no pod left.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// The groups; see the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct PodGroups {
    buckets: FxHashMap<u64, Vec<u32>>,
    groups: Vec<PodGroup>,
    /// The groups of each gang, by `namespace/gang` (the pods' [`POD_GROUP_LABEL`]), so that
    /// Coscheduling counts a gang's members without a walk over every group.
    gangs: FxHashMap<String, Vec<u32>>,
}

/// The key of a gang in [`PodGroups::gangs`].
fn gang_key(namespace: &str, gang: &str) -> String {
    format!("{namespace}/{gang}")
}

/// The hash of what makes a group (namespace and labels; affinity is compared on collision).
pub(crate) fn group_hash(pod: &orchestra_api::resources::Pod) -> u64 {
    let mut h = FxHasher::default();
    pod.metadata.namespace.hash(&mut h);
    pod.metadata.labels.hash(&mut h);
    pod.metadata.deletion_timestamp.is_some().hash(&mut h);
    h.finish()
}

fn same(a: &PodInfo, b: &PodInfo) -> bool {
    a.namespace() == b.namespace()
        && a.pod.metadata.labels == b.pod.metadata.labels
        && a.pod.metadata.deletion_timestamp.is_some()
            == b.pod.metadata.deletion_timestamp.is_some()
        && a.pod.spec.affinity == b.pod.spec.affinity
}

impl PodGroups {
    /// The groups of the pods on `nodes` (in index order).
    pub(crate) fn build<'a>(nodes: impl Iterator<Item = &'a NodeInfo>) -> Self {
        let mut groups = PodGroups::default();
        for (i, node) in nodes.enumerate() {
            for pod in node.pods() {
                groups.add(pod, i as u32);
            }
        }
        groups
    }

    /// Count a pod on node `index`.
    pub(crate) fn add(&mut self, pod: &Arc<PodInfo>, index: u32) {
        let bucket = self.buckets.entry(pod.group_hash).or_default();
        let found = bucket
            .iter()
            .copied()
            .find(|&g| same(&self.groups[g as usize].sample, pod));
        let g = match found {
            Some(g) => g,
            None => {
                let g = self.groups.len() as u32;
                self.groups.push(PodGroup {
                    sample: pod.clone(),
                    nodes: FxHashMap::default(),
                    total: 0,
                });
                bucket.push(g);
                if let Some(gang) = pod.pod.metadata.labels.get(POD_GROUP_LABEL) {
                    let key = gang_key(pod.namespace(), gang);
                    self.gangs.entry(key).or_default().push(g);
                }
                g
            }
        };
        let group = &mut self.groups[g as usize];
        *group.nodes.entry(index).or_insert(0) += 1;
        group.total += 1;
    }

    /// Uncount a pod from node `index`.
    pub(crate) fn remove(&mut self, pod: &PodInfo, index: u32) {
        let Some(bucket) = self.buckets.get(&pod.group_hash) else {
            return;
        };
        let Some(g) = bucket
            .iter()
            .copied()
            .find(|&g| same(&self.groups[g as usize].sample, pod))
        else {
            return;
        };
        let group = &mut self.groups[g as usize];
        if let Some(n) = group.nodes.get_mut(&index) {
            *n -= 1;
            group.total -= 1;
            if *n == 0 {
                group.nodes.remove(&index);
            }
        }
    }

    /// The groups with pods.
    pub fn iter(&self) -> impl Iterator<Item = &PodGroup> {
        self.groups.iter().filter(|g| g.total > 0)
    }

    /// The groups with pods labelled `scheduling.x-k8s.io/pod-group: gang` in `namespace`.
    pub fn gang(&self, namespace: &str, gang: &str) -> impl Iterator<Item = &PodGroup> {
        self.gangs
            .get(&gang_key(namespace, gang))
            .into_iter()
            .flatten()
            .map(|&g| &self.groups[g as usize])
            .filter(|g| g.total > 0)
    }
}
