//! The multi-version key index: every key's versions since the last compaction, so that any
//! revision at or above the compact revision can be read. Pure data structure, no I/O.
//!
//! Versions live in a hash map, and the keys are also kept in order in a B-tree set for range
//! reads. Point lookups (every put, delete and single-key get) then cost one hash probe instead
//! of a tree walk that dereferences a key for each comparison: the walk's cache misses were the
//! largest cost of an in-memory put.
//!
//! Only a key's newest version is kept whole. Every committed revision's events are kept in a
//! [`ChangeLog`] (the same `Arc`s the watch hub shares, so no copy), and an older version is
//! just its place there: revision and position, 16 bytes instead of a whole `KeyValue` of
//! about 100. That is what an in-memory put costs in fresh memory besides its event, so the
//! smaller entry and the smaller copies as a key's history grows are most of what a put's
//! history costs. The one older version a key may have from before the log (its value in a
//! snapshot the store was restored from, or the value compaction kept below its point) is kept
//! whole, as the key's `floor`.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;

use crate::error::StoreError;
use crate::types::{Event, EventKind, KeyRange, KeyValue, RangeRequest, RangeResponse, Revision};

/// A version kept whole: a key's newest, or its floor (see the module docs).
#[derive(Clone, Debug)]
struct Version {
    mod_revision: Revision,
    /// The change's position in its transaction (etcd's sub revision, which etcd's `HashKV`
    /// hashes); [`UNKNOWN_SUB`] for a value read back from a store's base without it.
    sub: u32,
    /// The value, or None for a tombstone at the deleting revision.
    kv: Option<KeyValue>,
}

/// The sub revision of a version restored without one.
pub(crate) const UNKNOWN_SUB: u32 = u32::MAX;

/// An older version, by its place in the [`ChangeLog`]: the event at position `sub` of
/// revision `mod_revision`.
#[derive(Clone, Copy, Debug)]
struct Logged {
    mod_revision: Revision,
    sub: u32,
}

/// A version found by a read: where it was written, and its value (None: a tombstone).
#[derive(Clone, Copy, Debug)]
struct Found<'a> {
    mod_revision: Revision,
    sub: u32,
    kv: Option<&'a KeyValue>,
}

impl<'a> From<&'a Version> for Found<'a> {
    fn from(version: &'a Version) -> Self {
        Found {
            mod_revision: version.mod_revision,
            sub: version.sub,
            kv: version.kv.as_ref(),
        }
    }
}

/// The events of every committed revision from `first` on, one entry per revision.
#[derive(Debug)]
struct ChangeLog {
    entries: VecDeque<Arc<[Event]>>,
    /// The revision of `entries[0]` (or of the next commit when empty).
    first: Revision,
}

impl ChangeLog {
    /// The value written by the event at `version`'s place (None: a delete), or None when the
    /// log does not hold it, which no version in a key's history allows.
    fn value(&self, version: Logged) -> Option<&KeyValue> {
        let index = usize::try_from(version.mod_revision - self.first).ok()?;
        let event = self.entries.get(index)?.get(version.sub as usize);
        debug_assert!(event.is_some(), "a logged version is in the log");
        let event = event?;
        (event.kind == EventKind::Put).then_some(&event.kv)
    }

    fn found(&self, version: Logged) -> Found<'_> {
        Found {
            mod_revision: version.mod_revision,
            sub: version.sub,
            kv: self.value(version),
        }
    }

    /// Append `revision`'s events; a revision skipped (none is, but a journal read back
    /// could) gets an empty entry, so that positions stay revisions.
    fn append(&mut self, revision: Revision, events: &Arc<[Event]>) {
        let next = self.first + self.entries.len() as Revision;
        debug_assert!(revision >= next, "revisions are committed in order");
        for _ in next..revision {
            self.entries.push_back(Arc::from(Vec::new()));
        }
        if revision >= next {
            self.entries.push_back(events.clone());
        }
    }

    /// Drop the revisions below `revision`.
    fn compact(&mut self, revision: Revision) {
        while self.first < revision && self.entries.pop_front().is_some() {
            self.first += 1;
        }
        self.first = self.first.max(revision);
    }
}

/// A key's versions since the last compaction.
#[derive(Debug)]
struct KeyEntry {
    /// The newest version. It sits in the hash table's slot rather than in `history`, so that
    /// a put reads it without touching the history's buffer, which is cold for any key not
    /// written lately.
    newest: Version,
    /// The older versions the log holds, oldest first, every one below `newest.mod_revision`.
    history: Vec<Logged>,
    /// The one older version the log does not hold, below every `history` entry.
    floor: Option<Box<Version>>,
}

impl KeyEntry {
    fn new(newest: Version) -> Self {
        KeyEntry {
            newest,
            history: Vec::new(),
            floor: None,
        }
    }

    /// Make `version` the newest; returns the value the key had (the replaced newest's, moved
    /// out when the log holds that version, so a put clones nothing to report it).
    fn replace_newest(&mut self, version: Version, log: &ChangeLog) -> Option<KeyValue> {
        let older = std::mem::replace(&mut self.newest, version);
        if older.mod_revision >= log.first {
            self.history.push(Logged {
                mod_revision: older.mod_revision,
                sub: older.sub,
            });
            older.kv
        } else {
            // Written before the log: a restored base value, or the value compaction kept.
            // Everything older was compacted, so it becomes the floor.
            debug_assert!(self.history.is_empty() && self.floor.is_none());
            let kv = older.kv.clone();
            self.floor = Some(Box::new(older));
            kv
        }
    }

    /// The value the key had at revision `at`, if it existed then.
    fn value_at<'a>(&'a self, at: Revision, log: &'a ChangeLog) -> Option<&'a KeyValue> {
        self.version_at(at, log)?.kv
    }

    /// The newest version at or below `at`.
    fn version_at<'a>(&'a self, at: Revision, log: &'a ChangeLog) -> Option<Found<'a>> {
        if self.newest.mod_revision <= at {
            return Some(Found::from(&self.newest));
        }
        let idx = self.history.partition_point(|v| v.mod_revision <= at);
        if idx > 0 {
            return Some(log.found(self.history[idx - 1]));
        }
        self.floor
            .as_deref()
            .filter(|floor| floor.mod_revision <= at)
            .map(Found::from)
    }

    /// Drop the versions that no read at or above `revision` can see (called before the log
    /// drops the revisions below it); false when nothing is left (the key was deleted below
    /// `revision`).
    fn compact(&mut self, revision: Revision, log: &ChangeLog) -> bool {
        if self.newest.mod_revision < revision {
            self.history.clear();
            self.floor = None;
            return self.newest.kv.is_some();
        }
        let below = self.history.partition_point(|v| v.mod_revision < revision);
        if below == 0 {
            // Only the floor can be below `revision`: reads at `revision` still see it if it
            // is a value.
            if self
                .floor
                .as_ref()
                .is_some_and(|floor| floor.mod_revision < revision && floor.kv.is_none())
            {
                self.floor = None;
            }
            return true;
        }
        // Keep the newest version below the compact point if it is a value, whole: the log
        // is about to drop its revision.
        let kept = self.history[below - 1];
        self.floor = log.value(kept).map(|kv| {
            Box::new(Version {
                mod_revision: kept.mod_revision,
                sub: kept.sub,
                kv: Some(kv.clone()),
            })
        });
        self.history.drain(..below);
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
    /// The events of the revisions since the last compaction (or the restored base), which
    /// the older versions refer to.
    log: ChangeLog,
    revision: Revision,
    compact_revision: Revision,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace {
            keys: HashMap::default(),
            order: BTreeSet::new(),
            // Revision 1, the empty store's, has no events: the log starts with the next.
            log: ChangeLog {
                entries: VecDeque::new(),
                first: 2,
            },
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
            let Some(kv) = entry.value_at(at, &self.log) else {
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
            Some(entry) => {
                entry.replace_newest(version, &self.log);
            }
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
            let (create_revision, version) = entry
                .newest
                .kv
                .as_ref()
                .map_or((at, 1), |p| (p.create_revision, p.version + 1));
            let kv = KeyValue {
                key,
                value,
                create_revision,
                mod_revision: at,
                version,
                lease,
            };
            let prev = entry.replace_newest(
                Version {
                    mod_revision: at,
                    sub,
                    kv: Some(kv.clone()),
                },
                &self.log,
            );
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

    /// Make `revision` the latest, after writing its versions, whose events (in order: an
    /// event's position is its sub revision) the log keeps for reads of older versions.
    pub(crate) fn commit(&mut self, revision: Revision, events: &Arc<[Event]>) {
        debug_assert!(revision > self.revision);
        self.log.append(revision, events);
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
        self.log = ChangeLog {
            entries: VecDeque::new(),
            first: revision + 1,
        };
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
            .filter_map(|entry| entry.version_at(at, &self.log))
            .filter_map(|v| Some((v.mod_revision, v.sub, v.kv?)))
            .filter(|(revision, _, _)| *revision <= up_to)
            .collect();
        values.sort_unstable_by_key(|(revision, sub, _)| (*revision, *sub));
        values
    }

    /// True when some key is alive at `at`.
    pub(crate) fn any_alive_at(&self, at: Revision) -> bool {
        self.keys
            .values()
            .any(|entry| entry.value_at(at, &self.log).is_some())
    }

    /// Drop the versions that no read at or above `revision` can see.
    pub(crate) fn compact(&mut self, revision: Revision) {
        let order = &mut self.order;
        let log = &self.log;
        self.keys.retain(|key, entry| {
            let keep = entry.compact(revision, log);
            if !keep {
                order.remove(key);
            }
            keep
        });
        self.log.compact(revision);
        self.compact_revision = revision;
    }
}

#[cfg(test)]
impl Keyspace {
    /// The (mod revision, sub revision, version) of `key`'s value at `at`.
    fn version_of(&self, key: &[u8], at: Revision) -> Option<(Revision, u32, i64)> {
        let found = self.keys.get(key)?.version_at(at, &self.log)?;
        Some((found.mod_revision, found.sub, found.kv?.version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(ks: &mut Keyspace, key: &'static str, value: &'static str) -> Revision {
        let rev = ks.revision() + 1;
        let event = ks.put(Bytes::from(key), Bytes::from(value), 0, rev, 0);
        ks.commit(rev, &Arc::from([event]));
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

    fn value_at(ks: &Keyspace, key: &'static str, at: Revision) -> Option<String> {
        let resp = ks.range(&RangeRequest::key(key), at, ks.revision());
        resp.kvs
            .first()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
    }

    #[test]
    fn older_versions_are_read_back_from_the_log() {
        let mut ks = Keyspace::default();
        let r1 = put(&mut ks, "a", "1");
        let r2 = put(&mut ks, "a", "2");
        let prev = ks.latest(b"a").unwrap().clone();
        let r3 = ks.revision() + 1;
        let event = ks.delete(prev, r3, 0);
        ks.commit(r3, &Arc::from([event]));
        let r4 = put(&mut ks, "a", "4");
        assert_eq!(value_at(&ks, "a", r1).as_deref(), Some("1"));
        assert_eq!(value_at(&ks, "a", r2).as_deref(), Some("2"));
        assert_eq!(value_at(&ks, "a", r3), None);
        assert_eq!(value_at(&ks, "a", r4).as_deref(), Some("4"));
        let version = ks.version_of(b"a", r2);
        assert_eq!(version, Some((r2, 0, 2)));
    }

    #[test]
    fn a_restored_value_stays_readable_after_it_is_overwritten() {
        let mut ks = Keyspace::default();
        let base = KeyValue {
            key: Bytes::from("a"),
            value: Bytes::from("base"),
            create_revision: 3,
            mod_revision: 5,
            version: 2,
            lease: 0,
        };
        ks.restore(vec![(base, UNKNOWN_SUB)], 7);
        let r8 = put(&mut ks, "a", "8");
        let r9 = put(&mut ks, "a", "9");
        assert_eq!(value_at(&ks, "a", 7).as_deref(), Some("base"));
        assert_eq!(value_at(&ks, "a", r8).as_deref(), Some("8"));
        assert_eq!(value_at(&ks, "a", r9).as_deref(), Some("9"));
        assert_eq!(ks.latest(b"a").unwrap().version, 4);
        // Compacting at 8 keeps 8's value whole once the log drops revision 8's events.
        ks.compact(r9);
        assert_eq!(value_at(&ks, "a", r9).as_deref(), Some("9"));
        let r10 = put(&mut ks, "a", "10");
        ks.compact(r10);
        assert_eq!(value_at(&ks, "a", r10).as_deref(), Some("10"));
    }

    #[test]
    fn compaction_keeps_the_value_below_its_point_whole() {
        let mut ks = Keyspace::default();
        put(&mut ks, "a", "1");
        let r2 = put(&mut ks, "a", "2");
        let r3 = put(&mut ks, "b", "x");
        let r4 = put(&mut ks, "a", "4");
        ks.compact(r3);
        // Revision 2 is gone from the log, but reads at 3 still see "a" = "2".
        assert_eq!(value_at(&ks, "a", r3).as_deref(), Some("2"));
        assert_eq!(value_at(&ks, "a", r4).as_deref(), Some("4"));
        assert_eq!(ks.version_of(b"a", r3), Some((r2, 0, 2)));
        // Writing on over the floor, then compacting past it, leaves only what is readable.
        let r5 = put(&mut ks, "a", "5");
        ks.compact(r5);
        assert_eq!(value_at(&ks, "a", r5).as_deref(), Some("5"));
        assert_eq!(value_at(&ks, "b", r5).as_deref(), Some("x"));
        assert!(ks.readable(r4, r5).is_err());
    }

    #[test]
    fn compaction_keeps_what_reads_at_the_compact_point_see() {
        let mut ks = Keyspace::default();
        put(&mut ks, "a", "1");
        let r = put(&mut ks, "b", "1");
        let prev = ks.latest(b"b").unwrap().clone();
        let del = ks.revision() + 1;
        let event = ks.delete(prev, del, 0);
        ks.commit(del, &Arc::from([event]));
        ks.compact(del);
        let resp = ks.range(&RangeRequest::prefix(""), del, del);
        assert_eq!(resp.kvs.len(), 1);
        assert_eq!(resp.kvs[0].key.as_ref(), b"a");
        assert!(ks.readable(r, del).is_err());
    }
}
