//! What several plugins share: kube-scheduler's default score normalization, a fast hasher
//! for per-cycle maps keyed by label values, and node selector matching.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use orchestra_api::resources::{NodeSelectorOperator, NodeSelectorRequirement, NodeSelectorTerm};

use crate::framework::MAX_NODE_SCORE;
use crate::snapshot::NodeInfo;

/// Scale scores so that the highest becomes [`MAX_NODE_SCORE`] (all stay 0 if all are 0);
/// with `reverse`, the highest becomes 0 and 0 becomes the maximum (kube-scheduler's
/// `DefaultNormalizeScore`).
pub fn default_normalize(scores: &mut [i64], reverse: bool) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.fill(MAX_NODE_SCORE);
        }
        return;
    }
    for score in scores {
        let scaled = MAX_NODE_SCORE * *score / max;
        *score = if reverse {
            MAX_NODE_SCORE - scaled
        } else {
            scaled
        };
    }
}

/// A small, fast, non-cryptographic hasher (the Fx hash of rustc) for per-cycle maps whose
/// keys are label values of the cluster's own nodes.
#[derive(Clone, Copy, Default)]
pub struct FxHasher {
    hash: u64,
}

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A hash map with [`FxHasher`].
pub type FxHashMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A topology domain: a node label key and value.
pub type TopologyPair = (Arc<str>, Arc<str>);

/// Whether a node matches a node selector term: every expression on its labels and every
/// field requirement (`metadata.name`) holds. A term with no requirement matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return false;
    }
    term.match_expressions
        .iter()
        .all(|r| requirement_matches(r, node.label(&r.key).map(|v| &**v)))
        && term.match_fields.iter().all(|r| {
            let value = (r.key == "metadata.name").then(|| &**node.name());
            r.key == "metadata.name" && requirement_matches(r, value)
        })
}

/// Whether a value (absent when `None`) satisfies a node selector requirement. Malformed
/// requirements (`Gt` with a non-integer) match nothing.
pub fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let contains = |v: &str| r.values.iter().any(|x| x == v);
    match r.operator {
        NodeSelectorOperator::In => value.is_some_and(contains),
        NodeSelectorOperator::NotIn => !value.is_some_and(contains),
        NodeSelectorOperator::Exists => value.is_some(),
        NodeSelectorOperator::DoesNotExist => value.is_none(),
        NodeSelectorOperator::Gt | NodeSelectorOperator::Lt => {
            let (Some(actual), [bound]) =
                (value.and_then(|v| v.parse::<i64>().ok()), &r.values[..])
            else {
                return false;
            };
            let Ok(bound) = bound.parse::<i64>() else {
                return false;
            };
            if r.operator == NodeSelectorOperator::Gt {
                actual > bound
            } else {
                actual < bound
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_to_the_maximum() {
        let mut scores = [0, 5, 10];
        default_normalize(&mut scores, false);
        assert_eq!(scores, [0, 50, 100]);
        let mut scores = [0, 5, 10];
        default_normalize(&mut scores, true);
        assert_eq!(scores, [100, 50, 0]);
        let mut zeros = [0, 0];
        default_normalize(&mut zeros, true);
        assert_eq!(zeros, [100, 100]);
    }

    #[test]
    fn operators_follow_kubernetes() {
        let req = |op, values: &[&str]| NodeSelectorRequirement {
            key: "k".into(),
            operator: op,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        };
        use NodeSelectorOperator::*;
        assert!(requirement_matches(&req(In, &["a", "b"]), Some("b")));
        assert!(!requirement_matches(&req(In, &["a"]), None));
        assert!(requirement_matches(&req(NotIn, &["a"]), None));
        assert!(!requirement_matches(&req(NotIn, &["a"]), Some("a")));
        assert!(requirement_matches(&req(Exists, &[]), Some("")));
        assert!(requirement_matches(&req(DoesNotExist, &[]), None));
        assert!(requirement_matches(&req(Gt, &["5"]), Some("6")));
        assert!(!requirement_matches(&req(Gt, &["5"]), Some("5")));
        assert!(!requirement_matches(&req(Gt, &["5"]), Some("six")));
        assert!(!requirement_matches(&req(Gt, &["x"]), Some("6")));
        assert!(requirement_matches(&req(Lt, &["5"]), Some("-1")));
        assert!(!requirement_matches(&req(Lt, &["5"]), None));
    }
}
