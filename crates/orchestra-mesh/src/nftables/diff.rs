//! [`diff`]: which service ports differ between the table applied last and the desired one.
//!
//! Both tables are walked once, side by side in key order (no lookups). An entry is
//! unchanged when both tables hold the same `Arc` (a table cloned from the applied one and
//! then edited, as the benchmark and most callers do) or, failing that, equal values (a
//! table rebuilt from scratch, as [`build_table`](crate::table::build_table) does). Only
//! the changed entries are cloned (their key and a reference count), so everything after
//! the walk costs what changed, not the size of the table.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::table::{ServiceEntry, ServiceKey, ServiceTable};

/// One service port that was added, changed or removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Change {
    /// The service port.
    pub key: ServiceKey,
    /// Its entry in the applied table (`None`: added).
    pub old: Option<Arc<ServiceEntry>>,
    /// Its entry in the desired table (`None`: removed).
    pub new: Option<Arc<ServiceEntry>>,
}

/// The service ports among `keys` whose entries differ between `old` and `new`, in key
/// order: [`diff`] for a caller that knows the entries of every other key to be the same
/// in both tables (see [`ServiceProxy::apply_changed`](crate::ServiceProxy::apply_changed)).
/// It costs the keys, not the tables: a lookup in each per key.
pub(crate) fn diff_keys(
    old: &ServiceTable,
    new: &ServiceTable,
    keys: &BTreeSet<ServiceKey>,
) -> Vec<Change> {
    keys.iter()
        .filter_map(|key| {
            let (old, new) = (old.get_shared(key), new.get_shared(key));
            // `Arc`'s `==` compares pointers first, then values.
            (old != new).then(|| Change {
                key: key.clone(),
                old: old.cloned(),
                new: new.cloned(),
            })
        })
        .collect()
}

/// The service ports whose entries differ between `old` and `new`, in key order.
pub(crate) fn diff(old: &ServiceTable, new: &ServiceTable) -> Vec<Change> {
    let change =
        |key: &ServiceKey, old: Option<&Arc<ServiceEntry>>, new: Option<&Arc<ServiceEntry>>| {
            Change {
                key: key.clone(),
                old: old.cloned(),
                new: new.cloned(),
            }
        };
    let mut changes = Vec::new();
    let (mut olds, mut news) = (old.shared_iter(), new.shared_iter());
    let (mut old_next, mut new_next) = (olds.next(), news.next());
    loop {
        match (old_next, new_next) {
            (None, None) => break,
            (Some((key, entry)), None) => {
                changes.push(change(key, Some(entry), None));
                old_next = olds.next();
            }
            (None, Some((key, entry))) => {
                changes.push(change(key, None, Some(entry)));
                new_next = news.next();
            }
            (Some((old_key, old_entry)), Some((new_key, new_entry))) => {
                // The same allocation is the same value: no need to look inside. The keys
                // are still compared, since one entry may be shared under two keys.
                let order = if Arc::ptr_eq(old_entry, new_entry) && old_key == new_key {
                    Ordering::Equal
                } else {
                    old_key.cmp(new_key)
                };
                match order {
                    Ordering::Less => {
                        changes.push(change(old_key, Some(old_entry), None));
                        old_next = olds.next();
                    }
                    Ordering::Greater => {
                        changes.push(change(new_key, None, Some(new_entry)));
                        new_next = news.next();
                    }
                    Ordering::Equal => {
                        // `Arc`'s `==` compares pointers first, then values.
                        if old_entry != new_entry {
                            changes.push(change(old_key, Some(old_entry), Some(new_entry)));
                        }
                        old_next = olds.next();
                        new_next = news.next();
                    }
                }
            }
        }
    }
    changes
}
