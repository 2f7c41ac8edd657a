//! The data model: keys, values, revisions, and the requests and responses of the [`Store`](crate::Store) trait.
//!
//! The shapes follow etcd's v3 API so that an etcd-backed implementation maps one to one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// A store revision: a global counter incremented once per write transaction.
/// An empty store is at revision 1, as etcd is; the first write makes revision 2.
pub type Revision = i64;

/// A lease identifier; 0 means "no lease".
pub type LeaseId = i64;

/// One key's value at one revision.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KeyValue {
    /// The key.
    pub key: Bytes,
    /// The value (empty when the range asked for keys only, and in delete events).
    pub value: Bytes,
    /// The revision that created the key (in its current life: a delete ends a life).
    pub create_revision: Revision,
    /// The revision of the last write to the key.
    pub mod_revision: Revision,
    /// How many times the key was written in its current life (1 after the create; 0 once deleted).
    pub version: i64,
    /// The lease the key is attached to, or 0.
    pub lease: LeaseId,
}

/// What happened to a key in a watch event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted (explicitly, or by its lease's expiry).
    Delete,
}

/// One change to one key, as seen by a watcher.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Put or delete.
    pub kind: EventKind,
    /// The key after the change. For a delete: the key, `mod_revision` = the deleting
    /// revision, version 0, empty value.
    pub kv: KeyValue,
    /// The key before the change, when the watch asked for it and the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// A set of keys: one key, a prefix, or a half-open interval `[key, range_end)`.
///
/// The encoding is etcd's: an empty `range_end` means the single `key`; a `range_end` of one
/// zero byte means every key `>= key`; otherwise the keys in `[key, range_end)`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct KeyRange {
    /// The first key (or the only key).
    pub key: Bytes,
    /// The end of the range, exclusive; see the type's docs for the special values.
    pub range_end: Bytes,
}

impl KeyRange {
    /// Exactly one key.
    pub fn single(key: impl Into<Bytes>) -> Self {
        KeyRange {
            key: key.into(),
            range_end: Bytes::new(),
        }
    }

    /// Every key that starts with `prefix` (every key at all when the prefix is empty).
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        let key: Bytes = prefix.into();
        let range_end = prefix_end(&key);
        if key.is_empty() {
            return KeyRange {
                key: Bytes::from_static(b"\0"),
                range_end,
            };
        }
        KeyRange { key, range_end }
    }

    /// The keys in `[start, end)`.
    pub fn interval(start: impl Into<Bytes>, end: impl Into<Bytes>) -> Self {
        KeyRange {
            key: start.into(),
            range_end: end.into(),
        }
    }

    /// Every key `>= start`.
    pub fn from_key(start: impl Into<Bytes>) -> Self {
        KeyRange {
            key: start.into(),
            range_end: Bytes::from_static(b"\0"),
        }
    }

    /// True when this names one key only.
    pub fn is_single(&self) -> bool {
        self.range_end.is_empty()
    }

    /// True when the range has no upper bound.
    pub fn is_unbounded(&self) -> bool {
        self.range_end.as_ref() == b"\0"
    }

    /// Does the range hold `key`?
    pub fn contains(&self, key: &[u8]) -> bool {
        if self.is_single() {
            return key == self.key.as_ref();
        }
        key >= self.key.as_ref() && (self.is_unbounded() || key < self.range_end.as_ref())
    }

    /// The exclusive upper bound as a slice, `None` when unbounded or single.
    pub fn end_bound(&self) -> Option<&[u8]> {
        if self.is_single() || self.is_unbounded() {
            None
        } else {
            Some(self.range_end.as_ref())
        }
    }
}

/// The smallest key greater than every key that starts with `prefix`; `[0]` (unbounded) when
/// no such key exists (an empty prefix, or a prefix of only 0xff bytes).
pub fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Bytes::from(end);
        }
    }
    Bytes::from_static(b"\0")
}

/// Read keys at a revision.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RangeRequest {
    /// Which keys.
    pub range: KeyRange,
    /// The revision to read at; 0 means the latest.
    pub revision: Revision,
    /// The most keys to return; 0 means no limit. `count` still counts them all.
    pub limit: usize,
    /// Return keys and metadata without values.
    pub keys_only: bool,
    /// Return only the count.
    pub count_only: bool,
}

impl RangeRequest {
    /// Read one key.
    pub fn key(key: impl Into<Bytes>) -> Self {
        RangeRequest {
            range: KeyRange::single(key),
            ..Default::default()
        }
    }
    /// Read every key with a prefix.
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        RangeRequest {
            range: KeyRange::prefix(prefix),
            ..Default::default()
        }
    }
    /// Read the keys of a range.
    pub fn range(range: KeyRange) -> Self {
        RangeRequest {
            range,
            ..Default::default()
        }
    }
    /// Read at a past revision.
    pub fn at_revision(mut self, revision: Revision) -> Self {
        self.revision = revision;
        self
    }
    /// Return at most `limit` keys.
    pub fn with_limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }
    /// Return keys without values.
    pub fn keys_only(mut self) -> Self {
        self.keys_only = true;
        self
    }
    /// Return only the count.
    pub fn count_only(mut self) -> Self {
        self.count_only = true;
        self
    }
}

/// The answer to a [`RangeRequest`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RangeResponse {
    /// The store's revision when the read was served (the latest, not the one read at).
    pub header_revision: Revision,
    /// The keys, in ascending key order (empty for `count_only`).
    pub kvs: Vec<KeyValue>,
    /// True when `limit` cut the answer short.
    pub more: bool,
    /// How many keys the range holds at that revision, regardless of `limit`.
    pub count: usize,
}

/// Write one key.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PutRequest {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
    /// Attach the key to this lease (0: none).
    pub lease: LeaseId,
    /// Return the previous value.
    pub prev_kv: bool,
}

/// The answer to a single put ([`Store::put_one`](crate::Store::put_one)).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct PutResponse {
    /// The revision of the write.
    pub header_revision: Revision,
    /// The previous value, when the request asked for it and the key existed.
    pub prev_kv: Option<KeyValue>,
}

/// Delete one key or a range.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DeleteRequest {
    /// Which keys.
    pub range: KeyRange,
    /// Return the deleted values.
    pub prev_kv: bool,
}

/// One operation of a transaction branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read.
    Range(RangeRequest),
    /// Write a key.
    Put(PutRequest),
    /// Delete keys.
    Delete(DeleteRequest),
}

impl Op {
    /// A put without lease.
    pub fn put(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Op::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })
    }
    /// A put that returns the previous value.
    pub fn put_prev(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        Op::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            prev_kv: true,
            ..Default::default()
        })
    }
    /// A delete of one key, returning the previous value.
    pub fn delete(key: impl Into<Bytes>) -> Self {
        Op::Delete(DeleteRequest {
            range: KeyRange::single(key),
            prev_kv: true,
        })
    }
    /// A delete of a range.
    pub fn delete_range(range: KeyRange) -> Self {
        Op::Delete(DeleteRequest {
            range,
            prev_kv: false,
        })
    }
    /// A read of one key.
    pub fn get(key: impl Into<Bytes>) -> Self {
        Op::Range(RangeRequest::key(key))
    }
}

/// The result of one [`Op`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpResponse {
    /// The read's result.
    Range(RangeResponse),
    /// The put's result.
    Put {
        /// The previous value, when asked for and present.
        prev_kv: Option<KeyValue>,
    },
    /// The delete's result.
    Delete {
        /// How many keys were deleted.
        deleted: usize,
        /// The deleted values, when asked for.
        prev_kvs: Vec<KeyValue>,
    },
}

/// What a [`Compare`] looks at, with the operand to compare it against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareTarget {
    /// The key's version (0 when absent).
    Version(i64),
    /// The key's create revision (0 when absent).
    CreateRevision(Revision),
    /// The key's mod revision (0 when absent).
    ModRevision(Revision),
    /// The key's value (a compare on the value of an absent key is false).
    Value(Bytes),
    /// The key's lease (0 when absent or unleased).
    Lease(LeaseId),
}

/// How a [`Compare`] relates the key's field to the operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareOp {
    /// Field == operand.
    Equal,
    /// Field != operand.
    NotEqual,
    /// Field > operand.
    Greater,
    /// Field < operand.
    Less,
}

/// A guard of a transaction: `key.target op operand`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compare {
    /// The key.
    pub key: Bytes,
    /// The field and the operand.
    pub target: CompareTarget,
    /// The relation.
    pub op: CompareOp,
}

impl Compare {
    /// Does the compare hold for the key's current value (`None`: absent)? Absent keys have
    /// version, revisions and lease 0, and a compare on the value of an absent key is false,
    /// as in etcd. For implementors of [`Store`](crate::Store).
    pub fn holds(&self, kv: Option<&KeyValue>) -> bool {
        use std::cmp::Ordering as O;
        let ordering = match (&self.target, kv) {
            (CompareTarget::Value(_), None) => return false,
            (CompareTarget::Value(want), Some(kv)) => kv.value.as_ref().cmp(want.as_ref()),
            (CompareTarget::Version(want), kv) => kv.map_or(0, |kv| kv.version).cmp(want),
            (CompareTarget::CreateRevision(want), kv) => {
                kv.map_or(0, |kv| kv.create_revision).cmp(want)
            }
            (CompareTarget::ModRevision(want), kv) => kv.map_or(0, |kv| kv.mod_revision).cmp(want),
            (CompareTarget::Lease(want), kv) => kv.map_or(0, |kv| kv.lease).cmp(want),
        };
        match self.op {
            CompareOp::Equal => ordering == O::Equal,
            CompareOp::NotEqual => ordering != O::Equal,
            CompareOp::Greater => ordering == O::Greater,
            CompareOp::Less => ordering == O::Less,
        }
    }

    /// `key.mod_revision op revision`.
    pub fn mod_revision(key: impl Into<Bytes>, op: CompareOp, revision: Revision) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::ModRevision(revision),
            op,
        }
    }
    /// `key.create_revision op revision`.
    pub fn create_revision(key: impl Into<Bytes>, op: CompareOp, revision: Revision) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::CreateRevision(revision),
            op,
        }
    }
    /// `key.version op version`.
    pub fn version(key: impl Into<Bytes>, op: CompareOp, version: i64) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::Version(version),
            op,
        }
    }
    /// `key.value op value`.
    pub fn value(key: impl Into<Bytes>, op: CompareOp, value: impl Into<Bytes>) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::Value(value.into()),
            op,
        }
    }
    /// `key.lease op lease`.
    pub fn lease(key: impl Into<Bytes>, op: CompareOp, lease: LeaseId) -> Self {
        Compare {
            key: key.into(),
            target: CompareTarget::Lease(lease),
            op,
        }
    }
}

/// An atomic transaction: if every compare holds, run `success`, else `failure`; all under one
/// revision (no revision is used when the chosen branch writes nothing).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Txn {
    /// The guards; all must hold for `success` to run.
    pub compares: Vec<Compare>,
    /// The operations when every compare holds.
    pub success: Vec<Op>,
    /// The operations otherwise.
    pub failure: Vec<Op>,
}

impl Txn {
    /// An empty transaction.
    pub fn new() -> Self {
        Txn::default()
    }
    /// Add guards.
    pub fn when(mut self, compares: impl IntoIterator<Item = Compare>) -> Self {
        self.compares.extend(compares);
        self
    }
    /// Add operations for the success branch.
    pub fn and_then(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.success.extend(ops);
        self
    }
    /// Add operations for the failure branch.
    pub fn or_else(mut self, ops: impl IntoIterator<Item = Op>) -> Self {
        self.failure.extend(ops);
        self
    }
}

/// The result of a [`Txn`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct TxnResponse {
    /// The store's revision after the transaction (its own revision when it wrote).
    pub header_revision: Revision,
    /// True when every compare held and `success` ran.
    pub succeeded: bool,
    /// One response per operation of the branch that ran.
    pub responses: Vec<OpResponse>,
}

/// Follow changes to a key range.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WatchRequest {
    /// Which keys.
    pub range: KeyRange,
    /// The first revision to deliver (inclusive); 0 means "changes after now".
    pub start_revision: Revision,
    /// Include each key's previous value in its events.
    pub prev_kv: bool,
    /// Send periodic progress notifications while idle (the interval is the store's setting).
    pub progress_notify: bool,
    /// Leave out put events.
    pub filter_puts: bool,
    /// Leave out delete events.
    pub filter_deletes: bool,
}

impl WatchRequest {
    /// Watch one key.
    pub fn key(key: impl Into<Bytes>) -> Self {
        WatchRequest {
            range: KeyRange::single(key),
            ..Default::default()
        }
    }
    /// Watch a prefix.
    pub fn prefix(prefix: impl Into<Bytes>) -> Self {
        WatchRequest {
            range: KeyRange::prefix(prefix),
            ..Default::default()
        }
    }
    /// Watch a range.
    pub fn range(range: KeyRange) -> Self {
        WatchRequest {
            range,
            ..Default::default()
        }
    }
    /// Start at a revision (inclusive).
    pub fn from_revision(mut self, revision: Revision) -> Self {
        self.start_revision = revision;
        self
    }
    /// Include previous values.
    pub fn with_prev_kv(mut self) -> Self {
        self.prev_kv = true;
        self
    }
    /// Ask for periodic progress notifications.
    pub fn with_progress_notify(mut self) -> Self {
        self.progress_notify = true;
        self
    }
    /// Does an event pass this watch's range and filters?
    pub fn matches(&self, event: &Event) -> bool {
        match event.kind {
            EventKind::Put if self.filter_puts => false,
            EventKind::Delete if self.filter_deletes => false,
            _ => self.range.contains(&event.kv.key),
        }
    }
}

/// One message of a watch stream: the events of one or more whole transactions, or a progress
/// notification (no events).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct WatchResponse {
    /// For events: the revision of the last event. For a progress notification: every event at
    /// or below this revision has been delivered.
    pub header_revision: Revision,
    /// The events, in revision order; the events of one transaction are never split. Shared:
    /// every watcher that takes a whole revision holds the store's one copy of its events
    /// (cloning an `Event` per watcher was most of the fan-out's cost at 10,000 watchers).
    pub events: Arc<[Event]>,
}

impl WatchResponse {
    /// True for a progress notification.
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty()
    }
}

/// A lease's state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseStatus {
    /// The lease.
    pub id: LeaseId,
    /// The TTL it was granted with.
    pub granted_ttl: Duration,
    /// Time left before it expires.
    pub remaining: Duration,
    /// The keys attached to it.
    pub keys: Vec<Bytes>,
}

/// The store's counters.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StoreStatus {
    /// The latest revision.
    pub revision: Revision,
    /// The oldest revision that can still be read (reads below it fail with `Compacted`).
    pub compact_revision: Revision,
    /// Bytes on disk (0 for an in-memory store).
    pub db_size: u64,
}

/// etcd's `HashKV` of a store's history up to a revision: the number etcd 3.4 gives for the
/// same writes, so that a store can be compared with an etcd member (or another store).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KvHash {
    /// The CRC-32C (Castagnoli) of the history up to the hashed revision, computed as etcd
    /// computes it.
    pub hash: u32,
    /// The store's current revision when it was computed (etcd's response header revision).
    pub revision: Revision,
    /// The revision of the last compaction, or -1 when the store was never compacted (as
    /// etcd reports it).
    pub compact_revision: Revision,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte_below_ff() {
        assert_eq!(prefix_end(b"abc").as_ref(), b"abd");
        assert_eq!(prefix_end(b"a\xff").as_ref(), b"b");
        assert_eq!(prefix_end(b"\xff\xff").as_ref(), b"\0");
        assert_eq!(prefix_end(b"").as_ref(), b"\0");
    }

    #[test]
    fn key_range_contains() {
        let p = KeyRange::prefix("/a/");
        assert!(p.contains(b"/a/x"));
        assert!(!p.contains(b"/b"));
        assert!(KeyRange::single("k").contains(b"k"));
        assert!(!KeyRange::single("k").contains(b"k2"));
        assert!(KeyRange::from_key("m").contains(b"zzz"));
        assert!(!KeyRange::from_key("m").contains(b"a"));
        assert!(KeyRange::prefix("").contains(b"anything"));
    }
}
