//! The multi-version key index: every key's versions since the last compaction, so that any
//! revision at or above the compact revision can be read. Pure data structure, no I/O.
//!
//! Versions live in a hash map, and the keys are also kept in order in a B-tree set for range
//! reads. Point lookups (every put, delete and single-key get) then cost one hash probe instead
//! of a tree walk that dereferences a key for each comparison: the walk's cache misses were the
//! largest cost of an in-memory put.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

use bytes::Bytes;

use crate::error::StoreError;
use crate::types::{Event, EventKind, KeyRange, KeyValue, RangeRequest, RangeResponse, Revision};

/// One version of a key: its value, or a tombstone at the deleting revision.
#[derive(Clone, Debug)]
struct Version {
    mod_revision: Revision,
    /// The change's position in its transaction (etcd's sub revision, which etcd's `HashKV`
    /// hashes); [`UNKNOWN_SUB`] for a value read back from a store's base without it.
    sub: u32,
    kv: Option<KeyValue>,
}

/// The sub revision of a version restored without one.
pub(crate) const UNKNOWN_SUB: u32 = u32::MAX;

/// A key's versions since the last compaction.
#[derive(Debug)]
struct KeyEntry {
    /// The newest version. It sits in the hash table's slot rather than at the end of
    /// `history`, so that a put reads it without touching the history's buffer, which is cold
    /// for any key not written lately.
    newest: Version,
    /// The older versions, oldest first, every one below `newest.mod_revision`.
    history: Vec<Version>,
}

impl KeyEntry {
    fn new(newest: Version) -> Self {
        KeyEntry {
            newest,
            history: Vec::new(),
        }
    }

    /// Make `version` the newest, keeping the current newest in the history.
    fn push(&mut self, version: Version) {
        let older = std::mem::replace(&mut self.newest, version);
        self.history.push(older);
    }

    /// The value the key had at revision `at`, if it existed then.
    fn value_at(&self, at: Revision) -> Option<&KeyValue> {
        self.version_at(at)?.kv.as_ref()
    }

    /// The newest version at or below `at`.
    fn version_at(&self, at: Revision) -> Option<&Version> {
        if self.newest.mod_revision <= at {
            return Some(&self.newest);
        }
        let idx = self.history.partition_point(|v| v.mod_revision <= at);
        if idx == 0 {
            return None;
        }
        Some(&self.history[idx - 1])
    }

    /// Drop the versions that no read at or above `revision` can see; false when nothing is
    /// left (the key was deleted below `revision`).
    fn compact(&mut self, revision: Revision) -> bool {
        if self.newest.mod_revision < revision {
            self.history.clear();
            return self.newest.kv.is_some();
        }
        let below = self.history.partition_point(|v| v.mod_revision < revision);
        if below == 0 {
            return true;
        }
        // Keep the newest version below the compact point if it is a value: reads at
        // `revision` still see it.
        let keep_from = if self.history[below - 1].kv.is_some() {
            below - 1
        } else {
            below
        };
        self.history.drain(..keep_from);
        true
    }
}

/// The key index. Revisions start at 1 (an empty store), as in etcd.
#[derive(Debug)]
pub(crate) struct Keyspace {
    /// Every key with versions since the last compaction.
    keys: HashMap<Bytes, KeyEntry, foldhash::fast::RandomState>,
    /// The same keys, in order.
    order: BTreeSet<Bytes>,
    revision: Revision,
    compact_revision: Revision,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace {
            keys: HashMap::default(),
            order: BTreeSet::new(),
            revision: 1,
            compact_revision: 0,
        }
    }
}

impl Keyspace {
    /// The latest revision, including writes not yet visible to readers.
    pub(crate) fn revision(&self) -> Revision {
        self.revision
    }

    /// Reads below this revision fail with `Compacted` (0: nothing compacted yet).
    pub(crate) fn compact_revision(&self) -> Revision {
        self.compact_revision
    }

    /// The key's latest value, if it exists.
    pub(crate) fn latest(&self, key: &[u8]) -> Option<&KeyValue> {
        self.keys
            .get(key)
            .and_then(|entry| entry.newest.kv.as_ref())
    }

    /// Check that `revision` (0: latest) can be read when `visible` is the newest readable
    /// revision; returns the revision to read at.
    pub(crate) fn readable(
        &self,
        revision: Revision,
        visible: Revision,
    ) -> Result<Revision, StoreError> {
        if revision <= 0 {
            return Ok(visible);
        }
        if revision > visible {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: visible,
            });
        }
        if revision < self.compact_revision {
            return Err(StoreError::Compacted {
                requested: revision,
                compact_revision: self.compact_revision,
            });
        }
        Ok(revision)
    }

    /// Read a range at `at` (already checked with [`Keyspace::readable`]).
    pub(crate) fn range(
        &self,
        req: &RangeRequest,
        at: Revision,
        header: Revision,
    ) -> RangeResponse {
        let mut resp = RangeResponse {
            header_revision: header,
            ..Default::default()
        };
        for (_, entry) in self.keys_in(&req.range) {
            let Some(kv) = entry.value_at(at) else {
                continue;
            };
            resp.count += 1;
            if req.count_only {
                continue;
            }
            if req.limit > 0 && resp.kvs.len() >= req.limit {
                resp.more = true;
                continue;
            }
            let mut kv = kv.clone();
            if req.keys_only {
                kv.value = Bytes::new();
            }
            resp.kvs.push(kv);
        }
        resp
    }

    /// The keys alive at the latest revision in a range.
    pub(crate) fn live_keys(&self, range: &KeyRange) -> Vec<KeyValue> {
        self.keys_in(range)
            .filter_map(|(_, entry)| entry.newest.kv.clone())
            .collect()
    }

    fn keys_in<'a>(
        &'a self,
        range: &'a KeyRange,
    ) -> Box<dyn Iterator<Item = (&'a Bytes, &'a KeyEntry)> + 'a> {
        if range.is_single() {
            return Box::new(self.keys.get_key_value(range.key.as_ref()).into_iter());
        }
        let end = match range.end_bound() {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        Box::new(
            self.order
                .range::<[u8], _>((Bound::Included(range.key.as_ref()), end))
                .filter_map(|key| self.keys.get_key_value(key.as_ref())),
        )
    }

    /// Add `version` as the newest of `key`.
    fn push(&mut self, key: &Bytes, version: Version) {
        match self.keys.get_mut(key.as_ref()) {
            Some(entry) => entry.push(version),
            None => {
                self.order.insert(key.clone());
                self.keys.insert(key.clone(), KeyEntry::new(version));
            }
        }
    }

    /// Write a new value of `key` at revision `at` (the next revision), as change `sub` of
    /// its transaction; returns the event. One hash probe for a key seen before (the common
    /// case): its entry is found once and updated in place.
    pub(crate) fn put(
        &mut self,
        key: Bytes,
        value: Bytes,
        lease: i64,
        at: Revision,
        sub: u32,
    ) -> Event {
        if let Some(entry) = self.keys.get_mut(key.as_ref()) {
            let prev = entry.newest.kv.clone();
            let kv = KeyValue {
                key,
                value,
                create_revision: prev.as_ref().map_or(at, |p| p.create_revision),
                mod_revision: at,
                version: prev.as_ref().map_or(1, |p| p.version + 1),
                lease,
            };
            entry.push(Version {
                mod_revision: at,
                sub,
                kv: Some(kv.clone()),
            });
            return Event {
                kind: EventKind::Put,
                kv,
                prev_kv: prev,
            };
        }
        let kv = KeyValue {
            key,
            value,
            create_revision: at,
            mod_revision: at,
            version: 1,
            lease,
        };
        self.order.insert(kv.key.clone());
        self.keys.insert(
            kv.key.clone(),
            KeyEntry::new(Version {
                mod_revision: at,
                sub,
                kv: Some(kv.clone()),
            }),
        );
        Event {
            kind: EventKind::Put,
            kv,
            prev_kv: None,
        }
    }

    /// Delete `key` (which must be alive) at revision `at`, as change `sub` of its
    /// transaction; returns the event.
    pub(crate) fn delete(&mut self, prev: KeyValue, at: Revision, sub: u32) -> Event {
        let kv = KeyValue {
            key: prev.key.clone(),
            mod_revision: at,
            ..Default::default()
        };
        let tombstone = Version {
            mod_revision: at,
            sub,
            kv: None,
        };
        self.push(&prev.key, tombstone);
        Event {
            kind: EventKind::Delete,
            kv,
            prev_kv: Some(prev),
        }
    }

    /// Make `revision` the latest (after writing its versions).
    pub(crate) fn commit(&mut self, revision: Revision) {
        debug_assert!(revision > self.revision);
        self.revision = revision;
    }

    /// Start from the live keys at `revision`, read back from disk with their sub revisions
    /// ([`UNKNOWN_SUB`] when not stored).
    pub(crate) fn restore(&mut self, live: Vec<(KeyValue, u32)>, revision: Revision) {
        for (kv, sub) in live {
            let key = kv.key.clone();
            let version = Version {
                mod_revision: kv.mod_revision,
                sub,
                kv: Some(kv),
            };
            self.order.insert(key.clone());
            self.keys.insert(key, KeyEntry::new(version));
        }
        self.revision = revision;
    }

    /// The values alive at `at` written at or below `up_to`, with their sub revisions, in
    /// (revision, sub) order: the entries at or below the compact revision that etcd's
    /// `HashKV` counts.
    pub(crate) fn values_written_by(
        &self,
        at: Revision,
        up_to: Revision,
    ) -> Vec<(Revision, u32, &KeyValue)> {
        let mut values: Vec<(Revision, u32, &KeyValue)> = self
            .keys
            .values()
            .filter_map(|entry| entry.version_at(at))
            .filter_map(|v| Some((v.mod_revision, v.sub, v.kv.as_ref()?)))
            .filter(|(revision, _, _)| *revision <= up_to)
            .collect();
        values.sort_unstable_by_key(|(revision, sub, _)| (*revision, *sub));
        values
    }

    /// True when some key is alive at `at`.
    pub(crate) fn any_alive_at(&self, at: Revision) -> bool {
        self.keys.values().any(|entry| entry.value_at(at).is_some())
    }

    /// Drop the versions that no read at or above `revision` can see.
    pub(crate) fn compact(&mut self, revision: Revision) {
        let order = &mut self.order;
        self.keys.retain(|key, entry| {
            let keep = entry.compact(revision);
            if !keep {
                order.remove(key);
            }
            keep
        });
        self.compact_revision = revision;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(ks: &mut Keyspace, key: &'static str, value: &'static str) -> Revision {
        let rev = ks.revision() + 1;
        ks.put(Bytes::from(key), Bytes::from(value), 0, rev, 0);
        ks.commit(rev);
        rev
    }

    #[test]
    fn reads_past_revisions_and_tracks_versions() {
        let mut ks = Keyspace::default();
        let r1 = put(&mut ks, "a", "1");
        let r2 = put(&mut ks, "a", "2");
        let latest = ks.latest(b"a").unwrap();
        assert_eq!(
            (latest.create_revision, latest.mod_revision, latest.version),
            (r1, r2, 2)
        );
        let old = ks.range(&RangeRequest::key("a"), r1, r2);
        assert_eq!(old.kvs[0].value.as_ref(), b"1");
    }

    #[test]
    fn compaction_keeps_what_reads_at_the_compact_point_see() {
        let mut ks = Keyspace::default();
        put(&mut ks, "a", "1");
        let r = put(&mut ks, "b", "1");
        let prev = ks.latest(b"b").unwrap().clone();
        let del = ks.revision() + 1;
        ks.delete(prev, del, 0);
        ks.commit(del);
        ks.compact(del);
        let resp = ks.range(&RangeRequest::prefix(""), del, del);
        assert_eq!(resp.kvs.len(), 1);
        assert_eq!(resp.kvs[0].key.as_ref(), b"a");
        assert!(ks.readable(r, del).is_err());
    }
}
