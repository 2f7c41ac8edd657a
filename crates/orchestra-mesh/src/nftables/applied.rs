//! [`Applied`]: what the proxy has programmed, kept in a form that the next sync can check
//! and diff against in time proportional to what changed: the table itself (its entries
//! shared with the caller's table, see [`diff`](super::diff)), which service port owns each
//! frontend ([`Frontends`]), and how many service ports use each pick ([`PickCounts`]).
//! After a sync it is updated by the changes alone; only a takeover rebuilds it.

use std::collections::{BTreeMap, BTreeSet};

use super::diff::Change;
use super::ruleset::{Pick, picks};
use super::validate::Frontends;
use crate::table::{ServiceEntry, ServiceTable};

/// What the kernel runs, as far as the proxy knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The table in force.
    pub table: ServiceTable,
    /// The endpoint counts the table has pick chains for (1 to this; at least the most
    /// endpoints any entry of `table` has).
    pub picks_upto: usize,
    /// The owner of each frontend of `table`.
    pub frontends: Frontends,
    /// The picks `table` uses.
    pub picks: PickCounts,
}

impl Applied {
    /// The state after a takeover that programmed `table` (valid) with pick chains for 1 to
    /// `picks_upto` endpoints.
    pub(crate) fn new(table: ServiceTable, picks_upto: usize) -> Self {
        Applied {
            frontends: Frontends::of(&table),
            picks: PickCounts::of(&table),
            table,
            picks_upto,
        }
    }

    /// Moves to the state after `changes` were applied (an incremental sync).
    pub(crate) fn apply(&mut self, changes: &[Change]) {
        self.frontends.apply(changes);
        self.picks = self.picks.after(changes);
        for change in changes {
            match &change.new {
                Some(entry) => self
                    .table
                    .insert_shared(change.key.clone(), std::sync::Arc::clone(entry)),
                None => {
                    self.table.remove(&change.key);
                }
            }
        }
    }
}

/// How many service ports use each pick (a pick with none is not in the map).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PickCounts(BTreeMap<Pick, usize>);

impl PickCounts {
    /// The picks of `table`.
    pub(crate) fn of(table: &ServiceTable) -> Self {
        let mut counts = PickCounts::default();
        for (_, entry) in table.iter() {
            counts.add(entry);
        }
        counts
    }

    /// The picks in use.
    pub(crate) fn in_use(&self) -> BTreeSet<Pick> {
        self.0.keys().copied().collect()
    }

    /// The counts after `changes` (a few picks: the copy is cheap).
    pub(crate) fn after(&self, changes: &[Change]) -> Self {
        let mut counts = self.clone();
        for change in changes {
            if let Some(old) = &change.old {
                counts.remove(old);
            }
            if let Some(new) = &change.new {
                counts.add(new);
            }
        }
        counts
    }

    fn add(&mut self, entry: &ServiceEntry) {
        for pick in picks(entry) {
            *self.0.entry(pick).or_default() += 1;
        }
    }

    fn remove(&mut self, entry: &ServiceEntry) {
        for pick in picks(entry) {
            if let Some(count) = self.0.get_mut(&pick) {
                *count -= 1;
                if *count == 0 {
                    self.0.remove(&pick);
                }
            }
        }
    }
}
