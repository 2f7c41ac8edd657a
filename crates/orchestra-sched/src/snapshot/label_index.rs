//! [`LabelIndex`]: the nodes of the snapshot per node label (key, then value), kept up to date
//! as nodes are added, relabelled and removed. Plugins read it to know a topology key's
//! domains without walking every node (PodTopologySpread's eligible domains), and to narrow
//! the Filter phase to the nodes that can pass a label-based Filter (a pod affinity term's
//! domains, a node selector's value) instead of rejecting the others one by one.

use std::sync::Arc;

use crate::framework::NodeSet;
use crate::plugins::helpers::FxHashMap;

/// Nodes of a domain with at least this many nodes are also kept as a bitset, so that adding
/// a large domain to a [`NodeSet`] is a few word ORs (there are at most `nodes / BITSET_MIN`
/// such domains per key, so the bitsets cost at most `nodes² / (8 * BITSET_MIN)` bytes).
const BITSET_MIN: usize = 64;

/// The nodes of one domain: sorted indexes, and a bitset of them when there are many.
#[derive(Clone, Debug, Default)]
struct Domain {
    nodes: Vec<u32>,
    bits: Vec<u64>,
}

impl Domain {
    fn set_bit(&mut self, node: u32, on: bool) {
        let (w, b) = (node as usize / 64, node % 64);
        if on {
            if self.bits.len() <= w {
                self.bits.resize(w + 1, 0);
            }
            self.bits[w] |= 1 << b;
        } else if let Some(word) = self.bits.get_mut(w) {
            *word &= !(1 << b);
        }
    }

    /// Keep the bitset in step with the list's size.
    fn sync_bits(&mut self) {
        if self.nodes.len() < BITSET_MIN / 2 {
            self.bits = Vec::new();
        } else if self.nodes.len() >= BITSET_MIN && self.bits.is_empty() {
            for i in 0..self.nodes.len() {
                self.set_bit(self.nodes[i], true);
            }
        }
    }
}

/// The nodes carrying one label key, per value.
#[derive(Clone, Debug, Default)]
pub struct KeyIndex {
    values: FxHashMap<Arc<str>, Domain>,
    nodes: usize,
}

impl KeyIndex {
    /// The indexes of the nodes whose label has this value, sorted (empty if none).
    pub fn nodes_with(&self, value: &str) -> &[u32] {
        self.values.get(value).map_or(&[], |d| &d.nodes[..])
    }

    /// Add the nodes whose label has this value to `set`.
    pub fn add_nodes_to(&self, value: &str, set: &mut NodeSet) {
        if let Some(domain) = self.values.get(value) {
            if domain.bits.is_empty() {
                set.extend(domain.nodes.iter().copied());
            } else {
                set.union_words(&domain.bits);
            }
        }
    }

    /// Every value with its nodes (sorted indexes), in no particular order.
    pub fn domains(&self) -> impl Iterator<Item = (&Arc<str>, &[u32])> {
        self.values.iter().map(|(v, d)| (v, &d.nodes[..]))
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
        let domain = match self.values.get_mut(&**value) {
            Some(domain) => domain,
            None => self.values.entry(value.clone()).or_default(),
        };
        let list = &mut domain.nodes;
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
        if !domain.bits.is_empty() {
            domain.set_bit(node, true);
        }
        domain.sync_bits();
        self.nodes += 1;
    }

    fn remove(&mut self, value: &str, node: u32) {
        let Some(domain) = self.values.get_mut(value) else {
            return;
        };
        if let Ok(at) = domain.nodes.binary_search(&node) {
            domain.nodes.remove(at);
            domain.set_bit(node, false);
            domain.sync_bits();
            self.nodes -= 1;
            if domain.nodes.is_empty() {
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

    #[test]
    fn large_domains_add_to_node_sets_as_bitsets() {
        let mut index = LabelIndex::default();
        for i in 0..300 {
            index.add(&labels(&[("zone", if i % 3 == 0 { "a" } else { "b" })]), i);
        }
        let zone = index.key("zone").unwrap();
        let mut set = NodeSet::empty(300);
        zone.add_nodes_to("a", &mut set);
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            (0..300).step_by(3).collect::<Vec<_>>()
        );
        // Shrinking below the threshold drops the bitset; the set stays right.
        for i in (3..300).step_by(3) {
            index.remove(&labels(&[("zone", "a")]), i);
        }
        let mut set = NodeSet::empty(300);
        index.key("zone").unwrap().add_nodes_to("a", &mut set);
        assert_eq!(set.iter().collect::<Vec<_>>(), [0]);
        let mut set = NodeSet::empty(300);
        index.key("zone").unwrap().add_nodes_to("b", &mut set);
        assert_eq!(set.count(), 200);
    }
}
