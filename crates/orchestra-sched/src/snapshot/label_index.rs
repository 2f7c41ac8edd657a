//! [`LabelIndex`]: the nodes of the snapshot per node label (key, then value), kept up to date
//! as nodes are added, relabelled and removed. Plugins read it to know a topology key's
//! domains without walking every node (PodTopologySpread's eligible domains), and to narrow
//! the Filter phase to the nodes that can pass a label-based Filter (a pod affinity term's
//! domains, a node selector's value) instead of rejecting the others one by one.

use std::sync::Arc;

use crate::plugins::helpers::FxHashMap;

/// The nodes carrying one label key, per value.
#[derive(Clone, Debug, Default)]
pub struct KeyIndex {
    values: FxHashMap<Arc<str>, Vec<u32>>,
    nodes: usize,
}

impl KeyIndex {
    /// The indexes of the nodes whose label has this value, sorted (empty if none).
    pub fn nodes_with(&self, value: &str) -> &[u32] {
        self.values.get(value).map_or(&[], |v| &v[..])
    }

    /// Every value with its nodes (sorted indexes), in no particular order.
    pub fn domains(&self) -> impl Iterator<Item = (&Arc<str>, &[u32])> {
        self.values.iter().map(|(v, n)| (v, &n[..]))
    }

    /// The number of distinct values (domains).
    pub fn num_domains(&self) -> usize {
        self.values.len()
    }

    /// The number of nodes carrying the key.
    pub fn num_nodes(&self) -> usize {
        self.nodes
    }

    fn insert(&mut self, value: &Arc<str>, node: u32) {
        let list = match self.values.get_mut(&**value) {
            Some(list) => list,
            None => self.values.entry(value.clone()).or_default(),
        };
        // Nodes are mostly appended with the largest index: push is the common case.
        match list.last() {
            Some(&last) if last > node => {
                if let Err(at) = list.binary_search(&node) {
                    list.insert(at, node);
                } else {
                    return;
                }
            }
            Some(&last) if last == node => return,
            _ => list.push(node),
        }
        self.nodes += 1;
    }

    fn remove(&mut self, value: &str, node: u32) {
        let Some(list) = self.values.get_mut(value) else {
            return;
        };
        if let Ok(at) = list.binary_search(&node) {
            list.remove(at);
            self.nodes -= 1;
            if list.is_empty() {
                self.values.remove(value);
            }
        }
    }
}

/// See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct LabelIndex {
    keys: FxHashMap<Arc<str>, Arc<KeyIndex>>,
}

impl LabelIndex {
    /// The nodes carrying `key`, per value (`None` when no node carries it).
    pub fn key(&self, key: &str) -> Option<&KeyIndex> {
        self.keys.get(key).map(|k| &**k)
    }

    /// Count node `node` under each of its labels.
    pub(crate) fn add(&mut self, labels: &[(Arc<str>, Arc<str>)], node: u32) {
        for (key, value) in labels {
            let index = match self.keys.get_mut(&**key) {
                Some(index) => index,
                None => self.keys.entry(key.clone()).or_default(),
            };
            Arc::make_mut(index).insert(value, node);
        }
    }

    /// Uncount node `node` from each of these labels.
    pub(crate) fn remove(&mut self, labels: &[(Arc<str>, Arc<str>)], node: u32) {
        for (key, value) in labels {
            let Some(index) = self.keys.get_mut(&**key) else {
                continue;
            };
            let index_mut = Arc::make_mut(index);
            index_mut.remove(value, node);
            if index_mut.values.is_empty() {
                self.keys.remove(&**key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(Arc<str>, Arc<str>)> {
        pairs
            .iter()
            .map(|(k, v)| (Arc::from(*k), Arc::from(*v)))
            .collect()
    }

    #[test]
    fn keeps_sorted_node_lists_per_value() {
        let mut index = LabelIndex::default();
        index.add(&labels(&[("zone", "a"), ("host", "n0")]), 0);
        index.add(&labels(&[("zone", "b"), ("host", "n1")]), 1);
        index.add(&labels(&[("zone", "a")]), 5);
        index.add(&labels(&[("zone", "a")]), 3);
        let zone = index.key("zone").unwrap();
        assert_eq!(zone.nodes_with("a"), &[0, 3, 5]);
        assert_eq!(zone.nodes_with("b"), &[1]);
        assert_eq!(zone.nodes_with("c"), &[] as &[u32]);
        assert_eq!((zone.num_domains(), zone.num_nodes()), (2, 4));
        assert_eq!(index.key("host").unwrap().num_nodes(), 2);

        index.remove(&labels(&[("zone", "a")]), 3);
        index.remove(&labels(&[("zone", "b"), ("host", "n1")]), 1);
        let zone = index.key("zone").unwrap();
        assert_eq!(zone.nodes_with("a"), &[0, 5]);
        assert_eq!((zone.num_domains(), zone.num_nodes()), (1, 2));
        index.remove(&labels(&[("host", "n0")]), 0);
        assert!(index.key("host").is_none());
    }
}
