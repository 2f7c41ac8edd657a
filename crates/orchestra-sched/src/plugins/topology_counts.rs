//! [`TopologyCounts`]: numbers per topology domain (node label key, then value), looked up by
//! `&str` without allocating, and filled from the snapshot's shared label strings without
//! copying them.

use std::sync::Arc;

use super::helpers::FxHashMap;
use crate::snapshot::NodeInfo;

/// Numbers per `(topology key, value)`.
#[derive(Clone, Debug, Default)]
pub struct TopologyCounts {
    keys: FxHashMap<Arc<str>, FxHashMap<Arc<str>, i64>>,
}

impl TopologyCounts {
    /// No domain.
    pub fn new() -> Self {
        TopologyCounts::default()
    }

    /// Add `n` to the domain of `node` under `key` (nothing if the node lacks the label).
    pub fn add(&mut self, key: &Arc<str>, node: &NodeInfo, n: i64) {
        if let Some(value) = node.label(key) {
            self.add_value(key, value, n);
        }
    }

    /// Add `n` to the domain `(key, value)`.
    pub fn add_value(&mut self, key: &Arc<str>, value: &Arc<str>, n: i64) {
        let values = match self.keys.get_mut(&**key) {
            Some(values) => values,
            None => self.keys.entry(key.clone()).or_default(),
        };
        match values.get_mut(&**value) {
            Some(count) => *count += n,
            None => {
                values.insert(value.clone(), n);
            }
        }
    }

    /// The number for `(key, value)` (0 when absent).
    pub fn get(&self, key: &str, value: &str) -> i64 {
        self.keys
            .get(key)
            .and_then(|values| values.get(value))
            .copied()
            .unwrap_or(0)
    }

    /// The number for `node`'s domain under `key` (0 when absent or unlabelled).
    pub fn get_node(&self, key: &str, node: &NodeInfo) -> i64 {
        node.label(key).map_or(0, |v| self.get(key, v))
    }

    /// Whether no domain has been added.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The sum over every key of the node's domain's number.
    pub fn sum_node(&self, node: &NodeInfo) -> i64 {
        self.keys
            .iter()
            .filter_map(|(key, values)| node.label(key).and_then(|v| values.get(&**v)))
            .sum()
    }

    /// Whether any key has a positive number for the node's domain.
    pub fn any_positive(&self, node: &NodeInfo) -> bool {
        self.keys.iter().any(|(key, values)| {
            node.label(key)
                .and_then(|v| values.get(&**v))
                .is_some_and(|n| *n > 0)
        })
    }

    /// The numbers of the domains under `key`.
    pub fn values(&self, key: &str) -> impl Iterator<Item = i64> + '_ {
        self.keys
            .get(key)
            .into_iter()
            .flat_map(|v| v.values().copied())
    }

    /// The domains under `key` with their numbers.
    pub fn entries(&self, key: &str) -> impl Iterator<Item = (&Arc<str>, i64)> + '_ {
        self.keys
            .get(key)
            .into_iter()
            .flat_map(|v| v.iter().map(|(value, n)| (value, *n)))
    }

    /// The number of domains under `key`.
    pub fn domains(&self, key: &str) -> usize {
        self.keys.get(key).map_or(0, |v| v.len())
    }
}
