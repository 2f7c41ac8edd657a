//! NodeResourcesBalancedAllocation (Score): prefer nodes whose CPU and memory would be used
//! in similar fractions after placing the pod: `(1 - standard deviation of the fractions) *
//! 100`. For two resources the deviation is `|f1 - f2| / 2`.

use std::sync::Arc;

use crate::framework::{CycleState, Extensions, MAX_NODE_SCORE, Plugin, ScorePlugin, Status};
use crate::plugins::node_resources_fit::Kind;
use crate::snapshot::{NodeInfo, PodInfo};

/// See the [module docs](self).
#[derive(Clone, Debug)]
pub struct BalancedAllocation {
    resources: Vec<Kind>,
}

impl Default for BalancedAllocation {
    fn default() -> Self {
        BalancedAllocation {
            resources: vec![Kind::Cpu, Kind::Memory],
        }
    }
}

impl BalancedAllocation {
    /// The plugin's name.
    pub const NAME: &'static str = "NodeResourcesBalancedAllocation";

    /// Balance these resources (by name) instead of CPU and memory.
    pub fn with_resources<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        BalancedAllocation {
            resources: names.into_iter().map(Kind::of).collect(),
        }
    }
}

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new().score(self)
    }
}

impl ScorePlugin for BalancedAllocation {
    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        Ok(self.score_node(pod, node))
    }

    fn score_nodes(
        &self,
        _: &CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
        scores: &mut [i64],
    ) -> Result<(), Status> {
        for (score, node) in scores.iter_mut().zip(nodes) {
            *score = self.score_node(pod, node);
        }
        Ok(())
    }
}

impl BalancedAllocation {
    /// The score of one node (it cannot fail).
    #[inline]
    fn score_node(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let mut fractions = [0f64; 8];
        let mut n = 0;
        // The default resources (CPU and memory) in straight-line code: the same arithmetic
        // as the general case below, without its dispatch per resource.
        if let [Kind::Cpu, Kind::Memory] = &self.resources[..] {
            let alloc = node.allocatable();
            let r = &pod.requests;
            for (requested, capacity) in [
                (
                    node.non_zero_milli_cpu() + r.non_zero_milli_cpu,
                    alloc.milli_cpu,
                ),
                (node.non_zero_memory() + r.non_zero_memory, alloc.memory),
            ] {
                if capacity > 0 {
                    fractions[n] = (requested as f64 / capacity as f64).min(1.0);
                    n += 1;
                }
            }
            let std = if n == 2 {
                (fractions[0] - fractions[1]).abs() / 2.0
            } else {
                0.0
            };
            return ((1.0 - std) * MAX_NODE_SCORE as f64) as i64;
        }
        for kind in &self.resources {
            let Some((requested, capacity)) = kind.amounts(pod, node) else {
                continue;
            };
            if capacity <= 0 || n == fractions.len() {
                continue;
            }
            fractions[n] = (requested as f64 / capacity as f64).min(1.0);
            n += 1;
        }
        let fractions = &fractions[..n];
        let std = match fractions {
            [] | [_] => 0.0,
            [a, b] => (a - b).abs() / 2.0,
            _ => {
                let mean = fractions.iter().sum::<f64>() / n as f64;
                (fractions.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / n as f64).sqrt()
            }
        };
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}
