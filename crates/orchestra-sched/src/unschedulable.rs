//! [`Placement`] and [`Unschedulable`]: the two outcomes of placing a pod. An
//! `Unschedulable` keeps every node's rejection and summarises them as kube-scheduler does:
//! `0/5000 nodes are available: 3000 Insufficient cpu, 2000 node(s) had untolerated taint
//! {dedicated: gpu}.`

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::framework::{Code, PostFilterResult, Reasons};

/// Where a pod goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    /// The chosen node.
    pub node: Arc<str>,
    /// The nodes the Filter phase looked at (it stops early on large clusters).
    pub evaluated_nodes: usize,
    /// The nodes that passed every filter among those.
    pub feasible_nodes: usize,
    /// The chosen node's weighted score (0 when it was the only feasible node).
    pub score: i64,
}

/// Why one node was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRejection {
    /// The node.
    pub node: Arc<str>,
    /// The Filter plugin that rejected it.
    pub plugin: &'static str,
    /// [`Code::Unschedulable`] or [`Code::UnschedulableAndUnresolvable`].
    pub code: Code,
    /// The reasons, e.g. `Insufficient cpu`.
    pub reasons: Reasons,
}

/// Why a pod could not be placed; see the [module docs](self).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Unschedulable {
    /// The pod, `namespace/name`.
    pub pod: String,
    /// The nodes in the cluster.
    pub num_nodes: usize,
    /// A rejection of the pod as a whole, before any node was looked at (a PreFilter plugin,
    /// an invalid pod, an unknown scheduler name): `(plugin, message)`.
    pub pre_filter: Option<(&'static str, String)>,
    /// Every node's rejection.
    pub nodes: Vec<NodeRejection>,
    /// An internal error that stopped the cycle (not the pod's fault).
    pub error: Option<Box<str>>,
    /// What PostFilter (preemption) proposed, if anything (boxed: rare, and it keeps
    /// `Result<Placement, Unschedulable>` small).
    pub post_filter: Option<Box<PostFilterResult>>,
}

impl Unschedulable {
    /// A rejection of the pod as a whole.
    pub fn whole_pod(
        pod: impl Into<String>,
        num_nodes: usize,
        plugin: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Unschedulable {
            pod: pod.into(),
            num_nodes,
            pre_filter: Some((plugin, message.into())),
            ..Unschedulable::default()
        }
    }

    /// Each distinct node reason with the number of nodes giving it, most frequent first
    /// (then alphabetically).
    pub fn reason_counts(&self) -> Vec<(&str, usize)> {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for rejection in &self.nodes {
            for reason in rejection.reasons.iter() {
                *counts.entry(reason).or_default() += 1;
            }
        }
        let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        counts
    }

    /// The number of nodes a reason was given for.
    pub fn count(&self, reason: &str) -> usize {
        self.nodes
            .iter()
            .filter(|r| r.reasons.contains(reason))
            .count()
    }

    /// The plugins that rejected the pod, each once, sorted: the PreFilter plugin that
    /// rejected it as a whole, or the first failing Filter of every node. The queue keeps
    /// them for the queueing hints ([`crate::framework::hint`]).
    pub fn rejected_by(&self) -> Vec<&'static str> {
        let mut plugins: Vec<&'static str> = self.pre_filter.iter().map(|(p, _)| *p).collect();
        for rejection in &self.nodes {
            // Nodes come in runs rejected by the same plugin: skip repeats cheaply.
            if plugins.last() != Some(&rejection.plugin) {
                plugins.push(rejection.plugin);
            }
        }
        plugins.sort_unstable();
        plugins.dedup();
        plugins
    }

    /// Whether preempting pods could not help on any node (every rejection is
    /// unresolvable, or the pod was rejected as a whole).
    pub fn is_unresolvable(&self) -> bool {
        self.pre_filter.is_some()
            || self
                .nodes
                .iter()
                .all(|r| r.code == Code::UnschedulableAndUnresolvable)
    }
}

impl fmt::Display for Unschedulable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes are available", self.num_nodes)?;
        let mut parts: Vec<String> = Vec::new();
        if let Some(error) = &self.error {
            parts.push(format!("internal error: {error}"));
        }
        if let Some((_, message)) = &self.pre_filter {
            parts.push(message.clone());
        }
        let counts = self.reason_counts();
        if !counts.is_empty() {
            parts.push(
                counts
                    .iter()
                    .map(|(reason, n)| format!("{n} {reason}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
        if let Some(node) = self
            .post_filter
            .as_ref()
            .and_then(|p| p.nominated_node.as_ref())
        {
            parts.push(format!("preemption nominated node {node}"));
        }
        if parts.is_empty() {
            return f.write_str(".");
        }
        write!(f, ": {}.", parts.join(". "))
    }
}

impl std::error::Error for Unschedulable {}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(node: &str, reasons: &[&'static str]) -> NodeRejection {
        NodeRejection {
            node: Arc::from(node),
            plugin: "P",
            code: Code::Unschedulable,
            reasons: reasons.iter().copied().collect(),
        }
    }

    #[test]
    fn summarises_reasons_by_count() {
        let mut u = Unschedulable {
            pod: "default/web".into(),
            num_nodes: 5,
            ..Unschedulable::default()
        };
        u.nodes
            .push(rejection("a", &["Insufficient cpu", "Insufficient memory"]));
        u.nodes.push(rejection("b", &["Insufficient cpu"]));
        u.nodes.push(rejection("c", &["Insufficient cpu"]));
        u.nodes
            .push(rejection("d", &["node(s) had untolerated taint {k: v}"]));
        u.nodes
            .push(rejection("e", &["node(s) had untolerated taint {k: v}"]));
        assert_eq!(
            u.to_string(),
            "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated taint {k: v}, 1 Insufficient memory."
        );
        assert_eq!(u.count("Insufficient memory"), 1);
        assert!(!u.is_unresolvable());
    }

    #[test]
    fn whole_pod_rejections_say_why() {
        let u =
            Unschedulable::whole_pod("default/web", 3, "Framework", "no profile for scheduler x");
        assert_eq!(
            u.to_string(),
            "0/3 nodes are available: no profile for scheduler x."
        );
        assert!(u.is_unresolvable());
    }
}
