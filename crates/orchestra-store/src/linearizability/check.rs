//! [`check`]: is a recorded [`History`] of a key-value store linearizable?
//!
//! Linearizability is local (Herlihy & Wing): a history is linearizable when each object's
//! sub-history is. Here an object is a set of keys that operations touch together (a
//! transaction over two keys joins them), so the history splits into the connected components
//! of keys, each searched alone — exponentially cheaper than searching the whole. The one
//! thing that ties keys together beyond that is the store's global revision, checked on its
//! own: distinct writes have distinct revisions, and a write that finished before another
//! began has the lower one.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;

use super::history::{History, KvOperation};
use super::model::KvModel;
use super::search::{SearchOutcome, search};
use crate::types::Revision;

/// How much work [`check`] may do.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// The search steps allowed per partition before the verdict is [`Verdict::Unknown`].
    pub max_steps_per_partition: u64,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            max_steps_per_partition: 10_000_000,
        }
    }
}

/// Why a history is not linearizable. Operation numbers index [`History::operations`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Two writes answered with the same revision.
    DuplicateRevision {
        /// The revision.
        revision: Revision,
        /// One write.
        first: usize,
        /// The other.
        second: usize,
    },
    /// A write that finished before another began got a higher revision.
    RevisionOrder {
        /// The write that finished first...
        earlier: usize,
        /// ...and the later one, with the lower revision.
        later: usize,
    },
    /// No order of these operations explains their answers.
    Partition {
        /// The keys of the partition.
        keys: Vec<Bytes>,
        /// Its operations.
        operations: Vec<usize>,
        /// The longest sequence of them the search could linearize.
        longest_prefix: Vec<usize>,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::DuplicateRevision {
                revision,
                first,
                second,
            } => write!(
                f,
                "operations {first} and {second} both wrote at revision {revision}"
            ),
            Violation::RevisionOrder { earlier, later } => write!(
                f,
                "operation {earlier} finished before operation {later} began, yet wrote at a \
                 higher revision"
            ),
            Violation::Partition {
                keys,
                operations,
                longest_prefix,
            } => write!(
                f,
                "no linearization of the {} operations on keys {keys:?}; the longest \
                 linearizable prefix is {longest_prefix:?}",
                operations.len()
            ),
        }
    }
}

/// The answer of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every partition has a linearization, and the revisions agree with real time.
    Linearizable,
    /// The history is not linearizable.
    NotLinearizable(Violation),
    /// A partition's search ran out of steps (raise
    /// [`CheckOptions::max_steps_per_partition`], or record a shorter history).
    Unknown {
        /// The keys of the partition.
        keys: Vec<Bytes>,
    },
}

/// What [`check`] found, with the size of the problem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The verdict.
    pub verdict: Verdict,
    /// Operations checked (reads whose answer was lost are left out: they constrain nothing).
    pub operations: usize,
    /// Operations whose answer was lost.
    pub open: usize,
    /// Independent partitions searched.
    pub partitions: usize,
}

impl Report {
    /// True for [`Verdict::Linearizable`].
    pub fn is_linearizable(&self) -> bool {
        self.verdict == Verdict::Linearizable
    }
}

/// Why a history cannot be checked.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// Writes the model cannot express went through the recorder.
    #[error(
        "the history has {0} write(s) the model cannot express (leases, range deletes, other \
         compares); record only gets, puts, single-key deletes and txns on mod_revision or value"
    )]
    UnmodeledWrites(usize),
    /// An operation answered before it was called.
    #[error("operation {0} has a response time before its call time")]
    ResponseBeforeCall(usize),
}

/// Check that `history` is linearizable with respect to [`KvModel`].
pub fn check(history: &History, options: &CheckOptions) -> Result<Report, CheckError> {
    if history.unmodeled_writes > 0 {
        return Err(CheckError::UnmodeledWrites(history.unmodeled_writes));
    }
    for (i, op) in history.operations.iter().enumerate() {
        if op.response.as_ref().is_some_and(|r| r.at < op.call) {
            return Err(CheckError::ResponseBeforeCall(i));
        }
    }
    // Reads with no answer, and operations on no key, constrain nothing.
    let kept: Vec<usize> = (0..history.operations.len())
        .filter(|&i| {
            let op = &history.operations[i];
            !op.input.keys().is_empty() && (op.response.is_some() || op.input.may_write())
        })
        .collect();
    let open = kept
        .iter()
        .filter(|&&i| history.operations[i].response.is_none())
        .count();
    let mut report = Report {
        verdict: Verdict::Linearizable,
        operations: kept.len(),
        open,
        partitions: 0,
    };
    if let Some(violation) = check_revisions(&history.operations, &kept) {
        report.verdict = Verdict::NotLinearizable(violation);
        return Ok(report);
    }
    let partitions = partition(&history.operations, &kept);
    report.partitions = partitions.len();
    for (keys, members) in partitions {
        let ops: Vec<KvOperation> = members
            .iter()
            .map(|&i| history.operations[i].clone())
            .collect();
        match search(&KvModel, &ops, options.max_steps_per_partition) {
            SearchOutcome::Linearizable(_) => {}
            SearchOutcome::NotLinearizable { longest_prefix } => {
                report.verdict = Verdict::NotLinearizable(Violation::Partition {
                    keys,
                    longest_prefix: longest_prefix.iter().map(|&i| members[i]).collect(),
                    operations: members,
                });
                return Ok(report);
            }
            SearchOutcome::Unknown { .. } => {
                report.verdict = Verdict::Unknown { keys };
            }
        }
    }
    Ok(report)
}

/// Split the operations into groups that share no key (union-find over keys).
fn partition(ops: &[KvOperation], kept: &[usize]) -> Vec<(Vec<Bytes>, Vec<usize>)> {
    let mut key_ids: HashMap<&Bytes, usize> = HashMap::new();
    let mut parent: Vec<usize> = Vec::new();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for &i in kept {
        let mut first = None;
        for key in ops[i].input.keys() {
            let id = *key_ids.entry(key).or_insert_with(|| {
                parent.push(parent.len());
                parent.len() - 1
            });
            match first {
                None => first = Some(id),
                Some(root) => {
                    let (a, b) = (find(&mut parent, root), find(&mut parent, id));
                    parent[b] = a;
                }
            }
        }
    }
    let mut groups: HashMap<usize, (Vec<Bytes>, Vec<usize>)> = HashMap::new();
    for (key, &id) in &key_ids {
        let root = find(&mut parent, id);
        groups.entry(root).or_default().0.push((*key).clone());
    }
    for &i in kept {
        let key = ops[i].input.keys()[0];
        let root = find(&mut parent, key_ids[key]);
        groups.entry(root).or_default().1.push(i);
    }
    let mut groups: Vec<_> = groups.into_values().collect();
    for (keys, _) in &mut groups {
        keys.sort();
    }
    groups.sort();
    groups
}

/// The global revision against real time: each write's revision is its own, and a write that
/// finished before another began wrote first.
fn check_revisions(ops: &[KvOperation], kept: &[usize]) -> Option<Violation> {
    let mut writes: Vec<(Revision, u64, u64, usize)> = kept
        .iter()
        .filter_map(|&i| {
            let response = ops[i].response.as_ref()?;
            let revision = response.output.written_revision()?;
            Some((revision, ops[i].call, response.at, i))
        })
        .collect();
    writes.sort_unstable();
    for pair in writes.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Some(Violation::DuplicateRevision {
                revision: pair[0].0,
                first: pair[0].3,
                second: pair[1].3,
            });
        }
    }
    // From the highest revision down, remember the earliest-finishing write above; a write
    // that began after it finished yet has a lower revision breaks real-time order.
    let mut earliest_above: Option<(u64, usize)> = None;
    for &(_, call, ret, i) in writes.iter().rev() {
        if let Some((finished, earlier)) = earliest_above
            && finished < call
        {
            return Some(Violation::RevisionOrder { earlier, later: i });
        }
        if earliest_above.is_none_or(|(finished, _)| ret < finished) {
            earliest_above = Some((ret, i));
        }
    }
    None
}
