//! [`Placement`] and [`Unschedulable`]: the two outcomes of placing a pod. An
//! `Unschedulable` keeps every node's rejection and summarises them as kube-scheduler does:
//! `0/5000 nodes are available: 3000 Insufficient cpu, 2000 node(s) had untolerated taint
//! {dedicated: gpu}.`

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::framework::{Code, PostFilterResult, Reasons};
use crate::snapshot::NodeNames;

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

/// Why one node was rejected: a view into [`NodeRejections`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRejection<'a> {
    /// The node.
    pub node: &'a Arc<str>,
    /// The Filter plugin that rejected it.
    pub plugin: &'static str,
    /// [`Code::Unschedulable`] or [`Code::UnschedulableAndUnresolvable`].
    pub code: Code,
    /// The reasons, e.g. `Insufficient cpu`.
    pub reasons: &'a Reasons,
}

/// One distinct rejection: a plugin, a code and reasons.
#[derive(Clone, Debug)]
struct Verdict {
    plugin: &'static str,
    code: Code,
    reasons: Reasons,
}

/// Consecutive node indexes `first..end` rejected with the same [`Verdict`].
#[derive(Clone, Copy, Debug)]
struct Run {
    first: u32,
    end: u32,
    verdict: u32,
}

/// Every node's rejection of a failed cycle, in the order the nodes were visited; iterate it
/// for [`NodeRejection`]s.
///
/// Stored compactly: the nodes as indexes into their snapshot's [`NodeNames`] (shared, one
/// reference count for all of them), in runs of consecutive indexes with the same plugin,
/// code and reasons, each distinct rejection stored once. A search rejecting all 5,000 nodes
/// of a cluster for `Insufficient cpu` records one run instead of 5,000 entries, each with a
/// reference count on its node's name taken then dropped (a cache miss each way).
#[derive(Clone, Default)]
pub struct NodeRejections {
    // Boxed, and only once a node is rejected: `Unschedulable` is the error of every
    // scheduling call, kept small.
    table: Option<Box<Table>>,
}

/// The contents of [`NodeRejections`].
#[derive(Clone, Debug, Default)]
struct Table {
    names: NodeNames,
    runs: Vec<Run>,
    verdicts: Vec<Verdict>,
}

impl NodeRejections {
    /// No rejection yet, of nodes of a snapshot with these names.
    pub fn new(names: &NodeNames) -> Self {
        NodeRejections {
            table: Some(Box::new(Table {
                names: names.clone(),
                runs: Vec::new(),
                verdicts: Vec::new(),
            })),
        }
    }

    /// Record the rejection of the node at `index` (of the names given to
    /// [`NodeRejections::new`]).
    ///
    /// # Panics
    /// If `index` is not below the number of names.
    pub fn push_index(&mut self, index: usize, plugin: &'static str, code: Code, reasons: Reasons) {
        let table = self.table.get_or_insert_with(Box::default);
        assert!(index < table.names.len(), "node index {index} out of range");
        let index = index as u32;
        // Nodes are visited in order, and neighbours are mostly rejected alike: extend the
        // last run, or reuse the last verdict; otherwise store a new one (not searched for
        // among all: a cluster where every node fails differently would make that
        // quadratic; a repeated verdict costs memory only).
        let same = |v: &Verdict| {
            v.code == code
                && (std::ptr::eq(v.plugin, plugin) || v.plugin == plugin)
                && v.reasons.same_as(&reasons)
        };
        if let Some(run) = table.runs.last_mut() {
            let last = run.verdict;
            if same(&table.verdicts[last as usize]) {
                if run.end == index {
                    run.end += 1;
                } else {
                    table.runs.push(Run {
                        first: index,
                        end: index + 1,
                        verdict: last,
                    });
                }
                return;
            }
        }
        let verdict = table.verdicts.len() as u32;
        table.verdicts.push(Verdict {
            plugin,
            code,
            reasons,
        });
        table.runs.push(Run {
            first: index,
            end: index + 1,
            verdict,
        });
    }

    /// Record the rejection of a node by name (one not from a snapshot's names: tests,
    /// hand-built explanations).
    pub fn push(&mut self, node: Arc<str>, plugin: &'static str, code: Code, reasons: Reasons) {
        let names = &mut self.table.get_or_insert_with(Box::default).names;
        names.push(node);
        let index = names.len() - 1;
        self.push_index(index, plugin, code, reasons);
    }

    /// The number of rejected nodes.
    pub fn len(&self) -> usize {
        self.runs().iter().map(|r| (r.end - r.first) as usize).sum()
    }

    /// Whether no node was rejected.
    pub fn is_empty(&self) -> bool {
        self.runs().is_empty()
    }

    /// The rejections, in the order they were recorded.
    pub fn iter(&self) -> impl Iterator<Item = NodeRejection<'_>> {
        self.indexed().map(|(_, r)| r)
    }

    /// The rejections with each node's index in the names table (the snapshot's node index
    /// if [`NodeRejections::named_by`] that snapshot's [`ClusterSnapshot::node_names`]).
    ///
    /// [`ClusterSnapshot::node_names`]: crate::ClusterSnapshot::node_names
    pub fn indexed(&self) -> impl Iterator<Item = (usize, NodeRejection<'_>)> {
        self.table
            .iter()
            .flat_map(|table| table.runs.iter().map(move |run| (table, run)))
            .flat_map(move |(table, run)| {
                let verdict = &table.verdicts[run.verdict as usize];
                (run.first as usize..run.end as usize).map(move |index| {
                    (
                        index,
                        NodeRejection {
                            node: table.names.get(index),
                            plugin: verdict.plugin,
                            code: verdict.code,
                            reasons: &verdict.reasons,
                        },
                    )
                })
            })
    }

    /// Runs of consecutive node indexes `first..end` rejected with the same code: what
    /// preemption needs, without a visit per node.
    pub fn ranges(&self) -> impl Iterator<Item = (std::ops::Range<usize>, Code)> + '_ {
        let verdicts = self.verdicts();
        self.runs().iter().map(|run| {
            (
                run.first as usize..run.end as usize,
                verdicts[run.verdict as usize].code,
            )
        })
    }

    /// Whether the node indexes refer to these names (the same table: see
    /// [`NodeNames::same`]).
    pub fn named_by(&self, names: &NodeNames) -> bool {
        self.table.as_ref().is_some_and(|t| t.names.same(names))
    }

    fn runs(&self) -> &[Run] {
        self.table.as_ref().map_or(&[], |t| &t.runs[..])
    }

    fn verdicts(&self) -> &[Verdict] {
        self.table.as_ref().map_or(&[], |t| &t.verdicts[..])
    }

    /// Each distinct rejection `(plugin, code, reasons)` with its number of nodes (a
    /// rejection may appear more than once).
    fn counted(&self) -> impl Iterator<Item = (&Verdict, usize)> {
        let verdicts = self.verdicts();
        let mut counts = vec![0usize; verdicts.len()];
        for run in self.runs() {
            counts[run.verdict as usize] += (run.end - run.first) as usize;
        }
        verdicts.iter().zip(counts)
    }
}

impl fmt::Debug for NodeRejections {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Equal when they reject the same nodes, in the same order, alike (however stored).
impl PartialEq for NodeRejections {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for NodeRejections {}

impl<'a> IntoIterator for &'a NodeRejections {
    type Item = NodeRejection<'a>;
    type IntoIter = Box<dyn Iterator<Item = NodeRejection<'a>> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
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
    pub nodes: NodeRejections,
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
        for (verdict, nodes) in self.nodes.counted() {
            for reason in verdict.reasons.iter() {
                *counts.entry(reason).or_default() += nodes;
            }
        }
        let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        counts
    }

    /// The number of nodes a reason was given for.
    pub fn count(&self, reason: &str) -> usize {
        self.nodes
            .counted()
            .filter(|(v, _)| v.reasons.contains(reason))
            .map(|(_, nodes)| nodes)
            .sum()
    }

    /// The plugins that rejected the pod, each once, sorted: the PreFilter plugin that
    /// rejected it as a whole, or the first failing Filter of every node. The queue keeps
    /// them for the queueing hints ([`crate::framework::hint`]).
    pub fn rejected_by(&self) -> Vec<&'static str> {
        let mut plugins: Vec<&'static str> = self.pre_filter.iter().map(|(p, _)| *p).collect();
        for verdict in self.nodes.verdicts() {
            // Nodes come in runs rejected by the same plugin: skip repeats cheaply.
            if plugins.last() != Some(&verdict.plugin) {
                plugins.push(verdict.plugin);
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
                .verdicts()
                .iter()
                .all(|v| v.code == Code::UnschedulableAndUnresolvable)
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
    use std::borrow::Cow;

    use proptest::prelude::*;

    use super::*;

    fn push(u: &mut Unschedulable, node: &str, reasons: &[&'static str]) {
        let reasons = reasons.iter().copied().collect();
        u.nodes
            .push(Arc::from(node), "P", Code::Unschedulable, reasons);
    }

    #[test]
    fn summarises_reasons_by_count() {
        let mut u = Unschedulable {
            pod: "default/web".into(),
            num_nodes: 5,
            ..Unschedulable::default()
        };
        push(&mut u, "a", &["Insufficient cpu", "Insufficient memory"]);
        push(&mut u, "b", &["Insufficient cpu"]);
        push(&mut u, "c", &["Insufficient cpu"]);
        push(&mut u, "d", &["node(s) had untolerated taint {k: v}"]);
        push(&mut u, "e", &["node(s) had untolerated taint {k: v}"]);
        assert_eq!(
            u.to_string(),
            "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated taint {k: v}, 1 Insufficient memory."
        );
        assert_eq!(u.count("Insufficient memory"), 1);
        assert_eq!(u.count("Insufficient cpu"), 3);
        assert_eq!(u.rejected_by(), ["P"]);
        assert!(!u.is_unresolvable());
        assert_eq!(u.nodes.len(), 5);
        let names: Vec<&str> = u.nodes.iter().map(|r| &**r.node).collect();
        assert_eq!(names, ["a", "b", "c", "d", "e"]);
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

    /// Reasons equal in content but not by pointer (formatted per node) still share one
    /// verdict and one run; different ones do not.
    #[test]
    fn reasons_alike_by_content_share_a_run() {
        let mut names = NodeNames::default();
        for i in 0..4 {
            names.push(Arc::from(format!("n{i}")));
        }
        let mut nodes = NodeRejections::new(&names);
        let owned = |s: &str| -> Reasons {
            [Cow::<'static, str>::Owned(s.to_owned())]
                .into_iter()
                .collect()
        };
        nodes.push_index(
            0,
            "P",
            Code::Unschedulable,
            owned("Insufficient example.com/gpu"),
        );
        nodes.push_index(
            1,
            "P",
            Code::Unschedulable,
            owned("Insufficient example.com/gpu"),
        );
        nodes.push_index(
            2,
            "P",
            Code::Unschedulable,
            owned("Insufficient example.com/fpga"),
        );
        nodes.push_index(
            3,
            "P",
            Code::UnschedulableAndUnresolvable,
            owned("Insufficient example.com/fpga"),
        );
        let ranges: Vec<_> = nodes.ranges().collect();
        assert_eq!(
            ranges,
            [
                (0..2, Code::Unschedulable),
                (2..3, Code::Unschedulable),
                (3..4, Code::UnschedulableAndUnresolvable)
            ]
        );
        assert_eq!(nodes.len(), 4);
    }

    /// A rejection as the plain list kept it: `(node index, plugin, code, reasons)`.
    type Plain = (usize, &'static str, Code, Vec<&'static str>);

    fn plain() -> impl Strategy<Value = Plain> {
        (
            0..12usize,
            prop::sample::select(vec!["NodeResourcesFit", "TaintToleration"]),
            prop::sample::select(vec![
                Code::Unschedulable,
                Code::UnschedulableAndUnresolvable,
            ]),
            prop::collection::vec(
                prop::sample::select(vec!["Insufficient cpu", "Insufficient memory", "x"]),
                0..3,
            ),
        )
    }

    proptest! {
        /// The compact list (runs of nodes, distinct rejections stored once) gives back
        /// exactly what was recorded, in order, and counts, summarises and ranges agree
        /// with a plain list's.
        #[test]
        fn compact_rejections_are_the_plain_list(
            recorded in prop::collection::vec(plain(), 0..40),
        ) {
            let names: Vec<Arc<str>> = (0..12).map(|i| Arc::from(format!("node-{i}"))).collect();
            let mut table = NodeNames::default();
            for name in &names {
                table.push(name.clone());
            }
            let mut u = Unschedulable {
                pod: "d/p".into(),
                num_nodes: 12,
                nodes: NodeRejections::new(&table),
                ..Unschedulable::default()
            };
            for (index, plugin, code, reasons) in &recorded {
                u.nodes.push_index(*index, plugin, *code, reasons.iter().copied().collect());
            }
            prop_assert_eq!(u.nodes.len(), recorded.len());
            let back: Vec<Plain> = u
                .nodes
                .indexed()
                .map(|(i, r)| (i, r.plugin, r.code, r.reasons.iter().map(|s| {
                    *["Insufficient cpu", "Insufficient memory", "x"].iter().find(|x| **x == s).unwrap()
                }).collect()))
                .collect();
            prop_assert_eq!(&back, &recorded);
            for ((i, r), (j, _, _, _)) in u.nodes.indexed().zip(&recorded) {
                prop_assert_eq!(i, *j);
                prop_assert!(Arc::ptr_eq(r.node, &names[i]));
            }
            let by_range: Vec<(usize, Code)> = u
                .nodes
                .ranges()
                .flat_map(|(range, code)| range.map(move |i| (i, code)))
                .collect();
            let plain_codes: Vec<(usize, Code)> = recorded.iter().map(|r| (r.0, r.2)).collect();
            prop_assert_eq!(by_range, plain_codes);
            for reason in ["Insufficient cpu", "Insufficient memory", "x", "y"] {
                let n = recorded.iter().filter(|r| r.3.contains(&reason)).count();
                prop_assert_eq!(u.count(reason), n);
            }
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for r in &recorded {
                for reason in &r.3 {
                    *counts.entry(reason).or_default() += 1;
                }
            }
            let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
            counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            prop_assert_eq!(u.reason_counts(), counts);
            let mut plugins: Vec<&str> = recorded.iter().map(|r| r.1).collect();
            plugins.sort_unstable();
            plugins.dedup();
            prop_assert_eq!(u.rejected_by(), plugins);
            prop_assert_eq!(
                u.is_unresolvable(),
                recorded.iter().all(|r| r.2 == Code::UnschedulableAndUnresolvable)
            );
            // Built by name instead, it is equal.
            let mut by_name = NodeRejections::default();
            for (index, plugin, code, reasons) in &recorded {
                by_name.push(names[*index].clone(), plugin, *code, reasons.iter().copied().collect());
            }
            prop_assert_eq!(&by_name, &u.nodes);
        }
    }
}
