//! NodeResourcesFit. Filter: the pod's requests (CPU, memory, ephemeral storage, extended
//! resources, one pod slot) must fit in what the node's pods leave of its allocatable
//! resources. Score, by [`ScoringStrategy`]: `LeastAllocated` (spread: emptier nodes score
//! higher, the default), `MostAllocated` (bin-pack), or `RequestedToCapacityRatio` (a
//! piecewise-linear function of utilization).

use std::borrow::Cow;
use std::sync::Arc;

use serde::Deserialize;

use crate::framework::{
    ClusterEvent, Code, CycleState, Extensions, FilterPlugin, MAX_NODE_SCORE, Plugin, QueueingHint,
    Reasons, ScorePlugin, Status,
    hint::{pods_on_node_hint, requested_resource_grew},
};
use crate::snapshot::{NodeInfo, PodInfo};

/// How nodes are scored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum ScoringType {
    /// `(allocatable - requested) / allocatable`: spread pods.
    #[default]
    LeastAllocated,
    /// `requested / allocatable`: pack pods.
    MostAllocated,
    /// A function of utilization given by points.
    RequestedToCapacityRatio,
}

/// A resource and its weight in the score.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// The resource's name (`cpu`, `memory`, `ephemeral-storage`, or an extended resource).
    pub name: String,
    /// Its weight (at least 1).
    #[serde(default = "one")]
    pub weight: i64,
}

fn one() -> i64 {
    1
}

/// One point of the utilization-to-score function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UtilizationShapePoint {
    /// Utilization in percent, 0-100.
    pub utilization: i64,
    /// Score at that utilization, 0-10.
    pub score: i64,
}

/// The points of `RequestedToCapacityRatio`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestedToCapacityRatio {
    /// The points, by increasing utilization.
    pub shape: Vec<UtilizationShapePoint>,
}

/// How NodeResourcesFit scores.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoringStrategy {
    /// The formula.
    #[serde(rename = "type", default)]
    pub type_: ScoringType,
    /// The resources scored; CPU and memory, weight 1 each, by default.
    #[serde(default = "default_resources")]
    pub resources: Vec<ResourceSpec>,
    /// The function for `RequestedToCapacityRatio`.
    #[serde(default)]
    pub requested_to_capacity_ratio: Option<RequestedToCapacityRatio>,
}

impl Default for ScoringStrategy {
    fn default() -> Self {
        ScoringStrategy {
            type_: ScoringType::LeastAllocated,
            resources: default_resources(),
            requested_to_capacity_ratio: None,
        }
    }
}

fn default_resources() -> Vec<ResourceSpec> {
    vec![
        ResourceSpec {
            name: "cpu".into(),
            weight: 1,
        },
        ResourceSpec {
            name: "memory".into(),
            weight: 1,
        },
    ]
}

/// The arguments of NodeResourcesFit (`pluginConfig` in configuration files).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeResourcesFitArgs {
    /// How nodes are scored.
    #[serde(default)]
    pub scoring_strategy: ScoringStrategy,
}

/// A resource the scorer reads, resolved once.
#[derive(Clone, Debug)]
pub(crate) enum Kind {
    Cpu,
    Memory,
    EphemeralStorage,
    Scalar(Arc<str>),
}

impl Kind {
    pub(crate) fn of(name: &str) -> Kind {
        match name {
            "cpu" => Kind::Cpu,
            "memory" => Kind::Memory,
            "ephemeral-storage" => Kind::EphemeralStorage,
            other => Kind::Scalar(Arc::from(other)),
        }
    }

    /// `(requested with the pod, allocatable)` on a node for scoring (CPU and memory count
    /// defaults for containers without requests); `None` for an extended resource the pod
    /// does not request.
    pub(crate) fn amounts(&self, pod: &PodInfo, node: &NodeInfo) -> Option<(i64, i64)> {
        let alloc = node.allocatable();
        let r = &pod.requests;
        Some(match self {
            Kind::Cpu => (
                node.non_zero_milli_cpu() + r.non_zero_milli_cpu,
                alloc.milli_cpu,
            ),
            Kind::Memory => (node.non_zero_memory() + r.non_zero_memory, alloc.memory),
            Kind::EphemeralStorage => (
                node.requested().ephemeral_storage + r.requests.ephemeral_storage,
                alloc.ephemeral_storage,
            ),
            Kind::Scalar(name) => {
                let want = r.requests.scalar(name);
                if want == 0 {
                    return None;
                }
                (node.requested().scalar(name) + want, alloc.scalar(name))
            }
        })
    }
}

/// See the [module docs](self).
#[derive(Clone, Debug)]
pub struct NodeResourcesFit {
    strategy: ScoringType,
    resources: Vec<(Kind, i64)>,
    /// `(utilization, score 0-100)` points.
    shape: Vec<(i64, i64)>,
}

impl Default for NodeResourcesFit {
    fn default() -> Self {
        NodeResourcesFit::new(NodeResourcesFitArgs::default()).expect("the defaults are valid")
    }
}

impl NodeResourcesFit {
    /// The plugin's name.
    pub const NAME: &'static str = "NodeResourcesFit";

    /// The plugin with its arguments; an error names the bad field.
    pub fn new(args: NodeResourcesFitArgs) -> Result<Self, String> {
        let s = args.scoring_strategy;
        if s.resources.is_empty() {
            return Err("scoringStrategy.resources: must name at least one resource".into());
        }
        let mut resources = Vec::new();
        for (i, r) in s.resources.iter().enumerate() {
            if !(1..=100).contains(&r.weight) {
                return Err(format!(
                    "scoringStrategy.resources[{i}].weight: {} is out of range; use 1 to 100",
                    r.weight
                ));
            }
            resources.push((Kind::of(&r.name), r.weight));
        }
        let mut shape = Vec::new();
        if s.type_ == ScoringType::RequestedToCapacityRatio {
            let points = s
                .requested_to_capacity_ratio
                .map(|r| r.shape)
                .unwrap_or_default();
            if points.is_empty() {
                return Err(
                    "scoringStrategy.requestedToCapacityRatio.shape: at least one point is needed for RequestedToCapacityRatio"
                        .into(),
                );
            }
            for (i, p) in points.iter().enumerate() {
                let field = format!("scoringStrategy.requestedToCapacityRatio.shape[{i}]");
                if !(0..=100).contains(&p.utilization) {
                    return Err(format!(
                        "{field}.utilization: {} is not in 0..=100",
                        p.utilization
                    ));
                }
                if !(0..=10).contains(&p.score) {
                    return Err(format!("{field}.score: {} is not in 0..=10", p.score));
                }
                if i > 0 && p.utilization <= points[i - 1].utilization {
                    return Err(format!(
                        "{field}.utilization: points must increase in utilization"
                    ));
                }
                shape.push((p.utilization, p.score * MAX_NODE_SCORE / 10));
            }
        }
        Ok(NodeResourcesFit {
            strategy: s.type_,
            resources,
            shape,
        })
    }

    #[inline]
    fn resource_score(&self, requested: i64, capacity: i64) -> i64 {
        match self.strategy {
            ScoringType::LeastAllocated => {
                if requested > capacity {
                    0
                } else {
                    (capacity - requested) * MAX_NODE_SCORE / capacity
                }
            }
            ScoringType::MostAllocated => requested.min(capacity) * MAX_NODE_SCORE / capacity,
            ScoringType::RequestedToCapacityRatio => {
                let utilization = (requested.min(capacity) as i128 * 100 / capacity as i128) as i64;
                piecewise(&self.shape, utilization)
            }
        }
    }
}

/// The piecewise-linear function through `points` at `x` (flat beyond the ends).
fn piecewise(points: &[(i64, i64)], x: i64) -> i64 {
    let Some(&(x0, y0)) = points.first() else {
        return 0;
    };
    if x <= x0 {
        return y0;
    }
    for pair in points.windows(2) {
        let ((xa, ya), (xb, yb)) = (pair[0], pair[1]);
        if x <= xb {
            return ya + (yb - ya) * (x - xa) / (xb - xa);
        }
    }
    points.last().map_or(0, |p| p.1)
}

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    /// Room is freed by pods leaving (or a nomination of at least the pod's priority
    /// cleared), or by a node's allocatable growing in a resource the pod asks for (so that
    /// it fits now); a node added may have room. A pod added takes room.
    fn queueing_hint(&self, pod: &PodInfo, event: &ClusterEvent<'_>) -> QueueingHint {
        let state = CycleState::new();
        pods_on_node_hint(pod, event, || match event {
            ClusterEvent::NodeAdded(node) => self.passes(&state, pod, node),
            ClusterEvent::NodeUpdated { old, new, change } => {
                change.allocatable
                    && requested_resource_grew(pod, old.allocatable(), new.allocatable())
                    && self.passes(&state, pod, new)
            }
            _ => false,
        })
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new().filter(self.clone()).score(self)
    }
}

impl FilterPlugin for NodeResourcesFit {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let want = &pod.requests.requests;
        let alloc = node.allocatable();
        let used = node.requested();
        // The reasons are gathered first and wrapped in a Status once: this runs on every
        // node of a search that finds none (preemption's 5,000), where replacing a Status
        // in place per reason cost more than the checks.
        let mut reasons = Reasons::new();
        if used.pods + 1 > alloc.pods {
            reasons.push(Cow::Borrowed("Too many pods"));
        }
        if !want.is_zero() {
            if want.milli_cpu > 0 && want.milli_cpu > alloc.milli_cpu - used.milli_cpu {
                reasons.push(Cow::Borrowed("Insufficient cpu"));
            }
            if want.memory > 0 && want.memory > alloc.memory - used.memory {
                reasons.push(Cow::Borrowed("Insufficient memory"));
            }
            if want.ephemeral_storage > 0
                && want.ephemeral_storage > alloc.ephemeral_storage - used.ephemeral_storage
            {
                reasons.push(Cow::Borrowed("Insufficient ephemeral-storage"));
            }
            for (name, amount) in &want.scalar {
                if *amount > 0 && *amount > alloc.scalar(name) - used.scalar(name) {
                    reasons.push(Cow::Owned(format!("Insufficient {name}")));
                }
            }
        }
        if reasons.is_empty() {
            Status::success()
        } else {
            Status::from_reasons(Code::Unschedulable, reasons)
        }
    }

    fn passes(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> bool {
        // The checks of `filter`, without collecting reasons.
        let want = &pod.requests.requests;
        let alloc = node.allocatable();
        let used = node.requested();
        used.pods < alloc.pods
            && (want.milli_cpu <= 0 || want.milli_cpu <= alloc.milli_cpu - used.milli_cpu)
            && (want.memory <= 0 || want.memory <= alloc.memory - used.memory)
            && (want.ephemeral_storage <= 0
                || want.ephemeral_storage <= alloc.ephemeral_storage - used.ephemeral_storage)
            && want.scalar.iter().all(|(name, amount)| {
                *amount <= 0 || *amount <= alloc.scalar(name) - used.scalar(name)
            })
    }
}

impl ScorePlugin for NodeResourcesFit {
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

impl NodeResourcesFit {
    /// The score of one node (it cannot fail).
    #[inline]
    fn score_node(&self, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let (mut total, mut weights) = (0i64, 0i64);
        // The default resources (CPU and memory) in straight-line code: the same sums as the
        // loop below, without its dispatch per resource (this runs for every feasible node).
        if let [(Kind::Cpu, cpu_weight), (Kind::Memory, memory_weight)] = &self.resources[..] {
            let alloc = node.allocatable();
            let r = &pod.requests;
            if alloc.milli_cpu > 0 {
                let requested = node.non_zero_milli_cpu() + r.non_zero_milli_cpu;
                total += self.resource_score(requested, alloc.milli_cpu) * cpu_weight;
                weights += cpu_weight;
            }
            if alloc.memory > 0 {
                let requested = node.non_zero_memory() + r.non_zero_memory;
                total += self.resource_score(requested, alloc.memory) * memory_weight;
                weights += memory_weight;
            }
            return if weights == 0 { 0 } else { total / weights };
        }
        for (kind, weight) in &self.resources {
            let Some((requested, capacity)) = kind.amounts(pod, node) else {
                continue;
            };
            if capacity <= 0 {
                continue;
            }
            total += self.resource_score(requested, capacity) * weight;
            weights += weight;
        }
        if weights == 0 { 0 } else { total / weights }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requested_to_capacity_ratio_interpolates() {
        let shape = [(0, 0), (50, 100), (100, 0)];
        assert_eq!(piecewise(&shape, 0), 0);
        assert_eq!(piecewise(&shape, 25), 50);
        assert_eq!(piecewise(&shape, 50), 100);
        assert_eq!(piecewise(&shape, 75), 50);
        assert_eq!(piecewise(&[(20, 30)], 10), 30);
    }

    #[test]
    fn bad_arguments_name_the_field() {
        let args: NodeResourcesFitArgs = serde_yaml_ng::from_str(
            "scoringStrategy: {type: RequestedToCapacityRatio, requestedToCapacityRatio: {shape: [{utilization: 0, score: 11}]}}",
        )
        .unwrap();
        let err = NodeResourcesFit::new(args).unwrap_err();
        assert_eq!(
            err,
            "scoringStrategy.requestedToCapacityRatio.shape[0].score: 11 is not in 0..=10"
        );
        let err = serde_yaml_ng::from_str::<NodeResourcesFitArgs>("scoringStrategy: {typo: 1}")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `typo`"), "{err}");
    }

    #[test]
    fn least_and_most_allocated() {
        let fit = NodeResourcesFit::default();
        assert_eq!(fit.resource_score(1000, 4000), 75);
        assert_eq!(fit.resource_score(5000, 4000), 0);
        let most = NodeResourcesFit::new(NodeResourcesFitArgs {
            scoring_strategy: ScoringStrategy {
                type_: ScoringType::MostAllocated,
                ..ScoringStrategy::default()
            },
        })
        .unwrap();
        assert_eq!(most.resource_score(1000, 4000), 25);
        assert_eq!(most.resource_score(5000, 4000), 100);
    }
}
