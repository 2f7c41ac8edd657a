//! [`RedbJournal`]: the engine's journal on a redb database, and the recovery that reads it
//! back on open.
//!
//! Tables:
//! - `revs`: first revision of a commit -> the changes of every revision in that commit (one
//!   entry per group commit, so that a commit of a hundred writes is one B-tree insert);
//! - `base`: key -> value and metadata of the keys alive at `base_revision`, the last revision
//!   folded in by compaction (whole commits below the compact point are folded);
//! - `leases`: lease id -> the lease and its TTL in milliseconds;
//! - `meta`: `format`, `revision`, `base_revision`, `compact_revision`, `next_lease_id`.
//!
//! Every value carries a CRC32 (see `format`). One [`Journal::persist`] call is one redb write
//! transaction committed with `Durability::Immediate`: one fsync for every record in it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::disk::format::{
    StoredKv, StoredLease, StoredOp, StoredRevision, decode, decode_kv, encode,
};
use crate::disk::lock::DirLock;
use crate::error::StoreError;
use crate::mvcc::journal::{Journal, Record, Recovered};
use crate::mvcc::keyspace::UNKNOWN_SUB;
use crate::snapshot::Snapshot;
use crate::types::Revision;

const REVS: TableDefinition<u64, &[u8]> = TableDefinition::new("revs");
const BASE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("base");
const LEASES: TableDefinition<i64, &[u8]> = TableDefinition::new("leases");
const META: TableDefinition<&str, i64> = TableDefinition::new("meta");

/// The on-disk format this code writes and reads, kept in the `meta` table under `format`.
/// A file of a newer format is refused with [`StoreError::UnsupportedFormat`].
const FORMAT: i64 = 1;

/// The journal of a [`DiskStore`](crate::DiskStore).
pub(crate) struct RedbJournal {
    db: Mutex<DbHandle>,
    path: PathBuf,
    /// Released after the database is closed (fields drop in order).
    _lock: DirLock,
}

impl RedbJournal {
    /// Open (or create) the database file, check it, and read everything back.
    pub(crate) fn open(
        path: &Path,
        cache_bytes: usize,
        lock: DirLock,
    ) -> Result<(Self, Recovered), StoreError> {
        if !path.exists() {
            create_empty(path)?;
        }
        // `open`, not `create`: a file that exists but is empty or truncated is damage to
        // report, not a new store to start.
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes)
            .open(path)
            .map_err(|err| storage_error(path, err.into()))?;
        // No separate integrity pass: redb recovers torn commits on open, and `recover` below
        // reads every stored value and checks its CRC32, each key against its record, and the
        // revisions for gaps, so damage at rest is reported before anything is served.
        let journal = RedbJournal {
            db: Mutex::new(DbHandle(Some(db))),
            path: path.to_path_buf(),
            _lock: lock,
        };
        journal.initialize()?;
        let recovered = journal.recover()?;
        Ok((journal, recovered))
    }

    fn corrupt(&self, detail: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            path: self.path.display().to_string(),
            detail: detail.into(),
        }
    }

    fn err(&self, err: impl Into<redb::Error>) -> StoreError {
        storage_error(&self.path, err.into())
    }

    fn database(&self) -> Result<std::sync::MutexGuard<'_, DbHandle>, StoreError> {
        self.db
            .lock()
            .map_err(|_| StoreError::Failed("a previous disk write panicked".into()))
    }

    /// Create the tables and stamp the format on a new file; refuse a file of another format.
    fn initialize(&self) -> Result<(), StoreError> {
        let db = self.database()?;
        let txn = db.get()?.begin_write().map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let format = meta
                .get("format")
                .map_err(|e| self.err(e))?
                .map(|v| v.value());
            match format {
                None => {
                    meta.insert("format", FORMAT).map_err(|e| self.err(e))?;
                }
                // Format 1 is the first; an older known format would be upgraded here, in
                // this same transaction, before its number is raised.
                Some(FORMAT) => {}
                Some(newer) if newer > FORMAT => {
                    return Err(StoreError::UnsupportedFormat {
                        path: self.path.display().to_string(),
                        found: newer,
                        supported: FORMAT,
                    });
                }
                Some(other) => {
                    return Err(self.corrupt(format!(
                        "on-disk format {other} is not a format any version of orchestra wrote (formats start at 1; this version writes {FORMAT})"
                    )));
                }
            }
            txn.open_table(REVS).map_err(|e| self.err(e))?;
            txn.open_table(BASE).map_err(|e| self.err(e))?;
            txn.open_table(LEASES).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Read the whole store back, checking every checksum and that revisions are contiguous.
    fn recover(&self) -> Result<Recovered, StoreError> {
        let db = self.database()?;
        let txn = db.get()?.begin_read().map_err(|e| self.err(e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(e))?;
        let read_meta = |name: &str, default: i64| -> Result<i64, StoreError> {
            Ok(meta
                .get(name)
                .map_err(|e| self.err(e))?
                .map_or(default, |v| v.value()))
        };
        let compact_revision = read_meta("compact_revision", 0)?;
        let next_lease_id = read_meta("next_lease_id", 1)?;

        let mut base = Vec::new();
        for entry in txn
            .open_table(BASE)
            .map_err(|e| self.err(e))?
            .iter()
            .map_err(|e| self.err(e))?
        {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            let key = key.value();
            let name = || String::from_utf8_lossy(key).into_owned();
            let stored = decode_kv(value.value())
                .map_err(|detail| self.corrupt(format!("base key {:?}: {detail}", name())))?;
            if stored.key.as_ref() != key {
                return Err(self.corrupt(format!(
                    "base key {:?} holds the record of another key",
                    name()
                )));
            }
            base.push(stored.into_key_value());
        }

        let base_revision = read_meta("base_revision", 1)?;
        // Only whole commits below the compact point are folded into the base; a store
        // restored from a snapshot has its base at the compact point itself.
        let folded_ok = base_revision == 1 || base_revision <= compact_revision;
        if base_revision < 1 || compact_revision < 0 || !folded_ok {
            return Err(self.corrupt(format!(
                "meta says base revision {base_revision} and compact revision {compact_revision}"
            )));
        }
        let mut revisions = Vec::new();
        let mut expected = base_revision + 1;
        for entry in txn
            .open_table(REVS)
            .map_err(|e| self.err(e))?
            .iter()
            .map_err(|e| self.err(e))?
        {
            let (first, value) = entry.map_err(|e| self.err(e))?;
            let first = first.value();
            let batch: Vec<StoredRevision> = decode(value.value())
                .map_err(|detail| self.corrupt(format!("commit at revision {first}: {detail}")))?;
            if batch.first().map(|r| r.revision as u64) != Some(first) {
                return Err(
                    self.corrupt(format!("commit at revision {first} does not start there"))
                );
            }
            for stored in batch {
                if stored.revision != expected {
                    return Err(self.corrupt(format!(
                        "revision {expected} is missing (found {} next)",
                        stored.revision
                    )));
                }
                revisions.push((
                    stored.revision,
                    stored.ops.into_iter().map(StoredOp::into_replay).collect(),
                ));
                expected += 1;
            }
        }
        // The newest stored revision is the store's revision (the base's when nothing follows it).
        let revision = expected - 1;
        if compact_revision > revision {
            return Err(self.corrupt(format!(
                "history ends at revision {revision}, below the compact revision {compact_revision}"
            )));
        }

        let mut leases = Vec::new();
        for entry in txn
            .open_table(LEASES)
            .map_err(|e| self.err(e))?
            .iter()
            .map_err(|e| self.err(e))?
        {
            let (id, value) = entry.map_err(|e| self.err(e))?;
            let id = id.value();
            let lease: StoredLease = decode(value.value())
                .map_err(|detail| self.corrupt(format!("lease {id}: {detail}")))?;
            if lease.id != id {
                return Err(
                    self.corrupt(format!("lease {id} holds the record of lease {}", lease.id))
                );
            }
            leases.push((id, Duration::from_millis(lease.ttl_ms)));
        }
        Ok(Recovered {
            base,
            base_revision,
            compact_revision,
            revisions,
            revision,
            leases,
            next_lease_id,
        })
    }

    /// Fold the commits entirely below `revision` into `base` and drop them. A commit that
    /// straddles the compact point is kept whole; recovery replays it and compacts in memory.
    fn compact_into_base(
        &self,
        txn: &redb::WriteTransaction,
        revision: Revision,
    ) -> Result<(), StoreError> {
        let mut revs = txn.open_table(REVS).map_err(|e| self.err(e))?;
        let mut base = txn.open_table(BASE).map_err(|e| self.err(e))?;
        let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
        let candidates: Vec<(u64, Vec<u8>)> = revs
            .range(..revision as u64)
            .map_err(|e| self.err(e))?
            .map(|entry| entry.map(|(k, v)| (k.value(), v.value().to_vec())))
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        for (first, bytes) in candidates {
            let batch: Vec<StoredRevision> = decode(&bytes)
                .map_err(|detail| self.corrupt(format!("commit at revision {first}: {detail}")))?;
            let Some(last) = batch.last().map(|r| r.revision) else {
                continue;
            };
            if last >= revision {
                break;
            }
            for stored in batch {
                for (index, op) in stored.ops.into_iter().enumerate() {
                    let sub = u32::try_from(index).unwrap_or(UNKNOWN_SUB);
                    self.fold(&mut base, stored.revision, sub, op)?;
                }
            }
            revs.remove(first).map_err(|e| self.err(e))?;
            meta.insert("base_revision", last)
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// Apply change `sub` of revision `rev` to the base table.
    fn fold(
        &self,
        base: &mut redb::Table<&[u8], &[u8]>,
        rev: Revision,
        sub: u32,
        op: StoredOp,
    ) -> Result<(), StoreError> {
        match op {
            StoredOp::Put { key, value, lease } => {
                let prev: Option<StoredKv> =
                    match base.get(key.as_ref()).map_err(|e| self.err(e))? {
                        Some(v) => Some(decode_kv(v.value()).map_err(|d| self.corrupt(d))?),
                        None => None,
                    };
                let kv = StoredKv {
                    key: key.clone(),
                    value,
                    create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
                    mod_revision: rev,
                    version: prev.as_ref().map_or(1, |p| p.version + 1),
                    lease,
                    sub,
                };
                base.insert(key.as_ref(), encode(&kv).as_slice())
                    .map_err(|e| self.err(e))?;
            }
            StoredOp::Delete { key } => {
                base.remove(key.as_ref()).map_err(|e| self.err(e))?;
            }
        }
        Ok(())
    }
}

impl Journal for RedbJournal {
    fn persist(&self, batch: &[Record]) -> Result<(), StoreError> {
        let mut db = self.database()?;
        let mut txn = db.get()?.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| StoreError::Io(e.to_string()))?;
        let mut compacted = false;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let mut revs = txn.open_table(REVS).map_err(|e| self.err(e))?;
            let mut leases = txn.open_table(LEASES).map_err(|e| self.err(e))?;
            let mut commit: Vec<StoredRevision> = Vec::new();
            for record in batch {
                match record {
                    Record::Txn { revision, events } => {
                        let ops = events.iter().map(StoredOp::from_event).collect();
                        commit.push(StoredRevision {
                            revision: *revision,
                            ops,
                        });
                    }
                    Record::LeaseGrant { id, ttl, next_id } => {
                        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
                        let lease = encode(&StoredLease { id: *id, ttl_ms });
                        leases
                            .insert(*id, lease.as_slice())
                            .map_err(|e| self.err(e))?;
                        meta.insert("next_lease_id", *next_id)
                            .map_err(|e| self.err(e))?;
                    }
                    Record::LeaseRevoke { id } => {
                        leases.remove(*id).map_err(|e| self.err(e))?;
                    }
                    Record::Compact { revision } => {
                        meta.insert("compact_revision", *revision)
                            .map_err(|e| self.err(e))?;
                    }
                }
            }
            if let Some(first) = commit.first() {
                // The store's revision is the last one stored: no meta write per commit, which
                // would cost a second B-tree path copy in every fsync.
                revs.insert(first.revision as u64, encode(&commit).as_slice())
                    .map_err(|e| self.err(e))?;
            }
        }
        for record in batch {
            if let Record::Compact { revision } = record {
                self.compact_into_base(&txn, *revision)?;
                compacted = true;
            }
        }
        txn.commit().map_err(|e| self.err(e))?;
        if compacted {
            // Give the freed pages back to the file system. Failing to shrink loses nothing.
            if let Err(err) = db.get_mut()?.compact() {
                tracing::warn!(%err, "could not shrink the database file after compaction");
            }
        }
        Ok(())
    }

    fn size(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }
}

/// Create an empty store file: initialized under a temporary name, then renamed into place,
/// so that a crash during creation leaves either no file or a complete one.
fn create_empty(path: &Path) -> Result<(), StoreError> {
    let tmp = path.with_extension("redb.new");
    let io = |err: std::io::Error| StoreError::Io(format!("{}: {err}", tmp.display()));
    if tmp.exists() {
        std::fs::remove_file(&tmp).map_err(io)?;
    }
    {
        let db = Database::create(&tmp).map_err(|err| storage_error(&tmp, err.into()))?;
        let mut txn = db
            .begin_write()
            .map_err(|err| storage_error(&tmp, err.into()))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| StoreError::Io(e.to_string()))?;
        {
            let mut meta = txn
                .open_table(META)
                .map_err(|err| storage_error(&tmp, err.into()))?;
            meta.insert("format", FORMAT)
                .map_err(|err| storage_error(&tmp, err.into()))?;
        }
        txn.commit()
            .map_err(|err| storage_error(&tmp, err.into()))?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

/// Write a new store file at `path` (which must not exist) holding `snapshot`: its keys as
/// the base at the snapshot's revision, compacted there, and its leases. One transaction,
/// committed with an fsync.
pub(crate) fn create_from_snapshot(path: &Path, snapshot: &Snapshot) -> Result<(), StoreError> {
    let err = |e: redb::Error| storage_error(path, e);
    let db = Database::create(path).map_err(|e| err(e.into()))?;
    let mut txn = db.begin_write().map_err(|e| err(e.into()))?;
    txn.set_durability(Durability::Immediate)
        .map_err(|e| StoreError::Io(e.to_string()))?;
    {
        let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
        let mut base = txn.open_table(BASE).map_err(|e| err(e.into()))?;
        let mut leases = txn.open_table(LEASES).map_err(|e| err(e.into()))?;
        txn.open_table(REVS).map_err(|e| err(e.into()))?;
        // Revision 1 is the empty store, which has no compact point.
        let compacted = snapshot.revision > 1;
        let next_lease_id = snapshot.leases.last().map_or(1, |l| l.id.saturating_add(1));
        for (name, value) in [
            ("format", FORMAT),
            ("base_revision", snapshot.revision.max(1)),
            (
                "compact_revision",
                if compacted { snapshot.revision } else { 0 },
            ),
            ("next_lease_id", next_lease_id),
        ] {
            meta.insert(name, value).map_err(|e| err(e.into()))?;
        }
        for kv in &snapshot.kvs {
            let stored = StoredKv {
                key: kv.key.clone(),
                value: kv.value.clone(),
                create_revision: kv.create_revision,
                mod_revision: kv.mod_revision,
                version: kv.version,
                lease: kv.lease,
                // A snapshot does not say where in its transaction a key was written.
                sub: UNKNOWN_SUB,
            };
            base.insert(kv.key.as_ref(), encode(&stored).as_slice())
                .map_err(|e| err(e.into()))?;
        }
        for lease in &snapshot.leases {
            let ttl_ms = u64::try_from(lease.ttl.as_millis()).unwrap_or(u64::MAX);
            let stored = encode(&StoredLease {
                id: lease.id,
                ttl_ms,
            });
            leases
                .insert(lease.id, stored.as_slice())
                .map_err(|e| err(e.into()))?;
        }
    }
    txn.commit().map_err(|e| err(e.into()))
}

/// Owns the redb database; dropping it never panics, even when the file is damaged (redb's
/// own drop writes allocator state and asserts on what it finds).
struct DbHandle(Option<Database>);

impl DbHandle {
    fn get(&self) -> Result<&Database, StoreError> {
        self.0.as_ref().ok_or(StoreError::Closed)
    }
    fn get_mut(&mut self) -> Result<&mut Database, StoreError> {
        self.0.as_mut().ok_or(StoreError::Closed)
    }
}

impl Drop for DbHandle {
    fn drop(&mut self) {
        let db = self.0.take();
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(db))).is_err() {
            tracing::error!(
                "closing the database file failed; it will be checked on the next open"
            );
        }
    }
}

/// Map a redb error to the store's error, naming the file.
fn storage_error(path: &Path, err: redb::Error) -> StoreError {
    match err {
        redb::Error::Corrupted(detail) => StoreError::Corrupt {
            path: path.display().to_string(),
            detail,
        },
        redb::Error::DatabaseAlreadyOpen => StoreError::Locked {
            path: path.display().to_string(),
        },
        redb::Error::Io(io) => StoreError::Io(format!("{}: {io}", path.display())),
        other => StoreError::Io(format!("{}: {other}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh store file in `dir` whose `format` record says `format`.
    fn store_file_of_format(dir: &Path, format: i64) -> PathBuf {
        let path = dir.join(crate::disk::DB_FILE);
        create_empty(&path).unwrap();
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert("format", format)
            .unwrap();
        txn.commit().unwrap();
        path
    }

    #[tokio::test]
    async fn a_newer_format_is_refused_naming_the_file_and_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        let path = store_file_of_format(dir.path(), FORMAT + 1);
        let err = crate::DiskStore::open(dir.path()).await.unwrap_err();
        assert_eq!(
            err,
            StoreError::UnsupportedFormat {
                path: path.display().to_string(),
                found: FORMAT + 1,
                supported: FORMAT,
            }
        );
        let text = err.to_string();
        assert!(text.contains("orchestra.redb"), "{text}");
        assert!(text.contains(&format!("format {}", FORMAT + 1)), "{text}");
        assert!(text.contains(&format!("format {FORMAT}")), "{text}");
        // Refused without a change: the record still says the newer format.
        let db = Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        assert_eq!(meta.get("format").unwrap().unwrap().value(), FORMAT + 1);
    }

    #[tokio::test]
    async fn a_format_no_version_wrote_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        store_file_of_format(dir.path(), 0);
        let err = crate::DiskStore::open(dir.path()).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt { detail, .. } if detail.contains("format 0")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_new_store_records_the_current_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::disk::DB_FILE);
        // Opened twice (created, then read back), each time closed before the next look.
        for _ in 0..2 {
            let lock = DirLock::acquire(dir.path()).await.unwrap();
            let (journal, _) = RedbJournal::open(&path, 1 << 20, lock).unwrap();
            drop(journal);
        }
        let db = Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        assert_eq!(meta.get("format").unwrap().unwrap().value(), FORMAT);
    }
}
