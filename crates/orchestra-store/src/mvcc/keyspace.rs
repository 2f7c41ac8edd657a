//! The multi-version key index: every key's versions since the last compaction, so that any
//! revision at or above the compact revision can be read. Pure data structure, no I/O.

use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;

use crate::error::StoreError;
use crate::types::{Event, EventKind, KeyRange, KeyValue, RangeRequest, RangeResponse, Revision};

/// One version of a key: its value, or a tombstone at the deleting revision.
#[derive(Clone, Debug)]
struct Version {
    mod_revision: Revision,
    kv: Option<KeyValue>,
}

/// The key index. Revisions start at 1 (an empty store), as in etcd.
#[derive(Debug)]
pub(crate) struct Keyspace {
    keys: BTreeMap<Bytes, Vec<Version>>,
    revision: Revision,
    compact_revision: Revision,
}

impl Default for Keyspace {
    fn default() -> Self {
        Keyspace {
            keys: BTreeMap::new(),
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
            .and_then(|versions| versions.last())
            .and_then(|v| v.kv.as_ref())
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
        for (_, versions) in self.keys_in(&req.range) {
            let Some(kv) = value_at(versions, at) else {
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
            .filter_map(|(_, versions)| versions.last().and_then(|v| v.kv.clone()))
            .collect()
    }

    fn keys_in<'a>(
        &'a self,
        range: &'a KeyRange,
    ) -> Box<dyn Iterator<Item = (&'a Bytes, &'a Vec<Version>)> + 'a> {
        if range.is_single() {
            return Box::new(self.keys.get_key_value(range.key.as_ref()).into_iter());
        }
        let end = match range.end_bound() {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        Box::new(
            self.keys
                .range::<[u8], _>((Bound::Included(range.key.as_ref()), end)),
        )
    }

    /// Write a new value of `key` at revision `at` (the next revision); returns the event.
    pub(crate) fn put(&mut self, key: Bytes, value: Bytes, lease: i64, at: Revision) -> Event {
        // One tree lookup for an existing key (the common case: updates), two for a new one.
        let versions = match self.keys.get_mut(key.as_ref()) {
            Some(versions) => versions,
            None => self.keys.entry(key.clone()).or_default(),
        };
        let prev = versions.last().and_then(|v| v.kv.clone());
        let kv = KeyValue {
            key,
            value,
            create_revision: prev.as_ref().map_or(at, |p| p.create_revision),
            mod_revision: at,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            lease,
        };
        versions.push(Version {
            mod_revision: at,
            kv: Some(kv.clone()),
        });
        Event {
            kind: EventKind::Put,
            kv,
            prev_kv: prev,
        }
    }

    /// Delete `key` (which must be alive) at revision `at`; returns the event.
    pub(crate) fn delete(&mut self, prev: KeyValue, at: Revision) -> Event {
        let kv = KeyValue {
            key: prev.key.clone(),
            mod_revision: at,
            ..Default::default()
        };
        self.keys
            .entry(prev.key.clone())
            .or_default()
            .push(Version {
                mod_revision: at,
                kv: None,
            });
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

    /// Start from the live keys at `revision`, read back from disk.
    pub(crate) fn restore(&mut self, live: Vec<KeyValue>, revision: Revision) {
        for kv in live {
            let version = Version {
                mod_revision: kv.mod_revision,
                kv: Some(kv.clone()),
            };
            self.keys.insert(kv.key, vec![version]);
        }
        self.revision = revision;
    }

    /// Drop the versions that no read at or above `revision` can see.
    pub(crate) fn compact(&mut self, revision: Revision) {
        self.keys.retain(|_, versions| {
            let below = versions.partition_point(|v| v.mod_revision < revision);
            if below == 0 {
                return true;
            }
            // Keep the newest version below the compact point if it is a value: reads at
            // `revision` still see it.
            let keep_from = if versions[below - 1].kv.is_some() {
                below - 1
            } else {
                below
            };
            versions.drain(..keep_from);
            !versions.is_empty()
        });
        self.compact_revision = revision;
    }
}

/// The value a key had at revision `at`, if it existed then.
fn value_at(versions: &[Version], at: Revision) -> Option<&KeyValue> {
    let idx = versions.partition_point(|v| v.mod_revision <= at);
    if idx == 0 {
        return None;
    }
    versions[idx - 1].kv.as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(ks: &mut Keyspace, key: &'static str, value: &'static str) -> Revision {
        let rev = ks.revision() + 1;
        ks.put(Bytes::from(key), Bytes::from(value), 0, rev);
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
        ks.delete(prev, del);
        ks.commit(del);
        ks.compact(del);
        let resp = ks.range(&RangeRequest::prefix(""), del, del);
        assert_eq!(resp.kvs.len(), 1);
        assert_eq!(resp.kvs[0].key.as_ref(), b"a");
        assert!(ks.readable(r, del).is_err());
    }
}
