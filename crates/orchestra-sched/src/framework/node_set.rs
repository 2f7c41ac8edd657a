//! [`NodeSet`]: a set of node indexes of one snapshot, as a bitset. A PreFilter plugin whose
//! Filter depends on node labels only can tell the framework, through
//! [`CycleState::restrict_nodes`](super::CycleState::restrict_nodes), which nodes can pass
//! it (kube-scheduler's `PreFilterResult.NodeNames`): the Filter phase then visits those
//! nodes only, in the same round-robin order, instead of rejecting the others one by one.

/// A set of node indexes below a bound; see the [module docs](self).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSet {
    words: Vec<u64>,
    len: usize,
}

impl NodeSet {
    /// No node of a snapshot of `len` nodes.
    pub fn empty(len: usize) -> Self {
        NodeSet {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// Nodes `indexes` (each below `len`; others are ignored) of a snapshot of `len` nodes.
    pub fn from_indexes(len: usize, indexes: impl IntoIterator<Item = u32>) -> Self {
        let mut set = NodeSet::empty(len);
        set.extend(indexes);
        set
    }

    /// The bound: the number of nodes of the snapshot.
    pub fn capacity(&self) -> usize {
        self.len
    }

    /// Add a node.
    pub fn insert(&mut self, index: u32) {
        let i = index as usize;
        if i < self.len {
            self.words[i / 64] |= 1 << (i % 64);
        }
    }

    /// Add nodes.
    pub fn extend(&mut self, indexes: impl IntoIterator<Item = u32>) {
        for i in indexes {
            self.insert(i);
        }
    }

    /// Whether a node is in the set.
    pub fn contains(&self, index: usize) -> bool {
        index < self.len && self.words[index / 64] & (1 << (index % 64)) != 0
    }

    /// Add the nodes of a bitset given as words (bit `i % 64` of word `i / 64` is node `i`;
    /// nodes at or beyond the bound are ignored).
    pub fn union_words(&mut self, words: &[u64]) {
        for (a, b) in self.words.iter_mut().zip(words) {
            *a |= *b;
        }
        if let Some(last) = self.words.last_mut()
            && !self.len.is_multiple_of(64)
        {
            *last &= (1u64 << (self.len % 64)) - 1;
        }
    }

    /// Add the nodes in `other`.
    pub fn union(&mut self, other: &NodeSet) {
        self.union_words(&other.words);
    }

    /// Keep only the nodes also in `other`.
    pub fn intersect(&mut self, other: &NodeSet) {
        for (a, b) in self.words.iter_mut().zip(&other.words) {
            *a &= *b;
        }
        let keep = other.words.len().min(self.words.len());
        self.words[keep..].fill(0);
    }

    /// The number of nodes in the set.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// The first index in the set at or after `from` (no wrapping).
    pub fn next_from(&self, from: usize) -> Option<usize> {
        if from >= self.len {
            return None;
        }
        let mut w = from / 64;
        let mut word = self.words[w] & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                let i = w * 64 + word.trailing_zeros() as usize;
                return (i < self.len).then_some(i);
            }
            w += 1;
            if w == self.words.len() {
                return None;
            }
            word = self.words[w];
        }
    }

    /// The indexes in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        let mut next = self.next_from(0);
        std::iter::from_fn(move || {
            let i = next?;
            next = self.next_from(i + 1);
            Some(i)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_intersect_and_iterate_in_order() {
        let mut a = NodeSet::from_indexes(200, [3, 64, 65, 199, 250]);
        assert_eq!(a.iter().collect::<Vec<_>>(), [3, 64, 65, 199]);
        assert_eq!(a.count(), 4);
        assert_eq!(a.next_from(4), Some(64));
        assert_eq!(a.next_from(66), Some(199));
        assert_eq!(a.next_from(200), None);
        a.intersect(&NodeSet::from_indexes(200, [3, 65, 100]));
        assert_eq!(a.iter().collect::<Vec<_>>(), [3, 65]);
        assert!(a.contains(65) && !a.contains(64) && !a.contains(500));
        a.intersect(&NodeSet::empty(200));
        assert!(a.is_empty());
        assert_eq!(NodeSet::empty(0).next_from(0), None);
        let mut b = NodeSet::from_indexes(70, [1]);
        b.union_words(&[1 << 5, u64::MAX, 7]);
        // Bits beyond the bound (70) are dropped.
        assert_eq!(b.count(), 2 + 6);
        assert!(b.contains(69) && b.contains(5) && !b.contains(70));
        b.union(&NodeSet::from_indexes(70, [2]));
        assert!(b.contains(2));
    }
}
