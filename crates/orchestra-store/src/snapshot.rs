//! Backups: a [`Snapshot`] is the whole store at one revision (every live key with its
//! revisions and version, and every lease with its TTL), in a portable file format.
//!
//! [`capture`] takes one from any [`Store`]; `orchestra etcd` streams it to
//! `etcdctl snapshot save` (Maintenance.Snapshot), and `DiskStore::restore` (feature `disk`)
//! turns a saved file into a new data directory.
//!
//! # The file
//! The body, zero-padded to a multiple of 512 bytes, then the SHA-256 of the body (32 bytes),
//! as etcd lays out its snapshots (`etcdctl snapshot save` refuses a stream whose length is not
//! 32 more than a multiple of 512: that is how it finds the checksum); integers little-endian:
//!
//! ```text
//! "ORCHSNAP"  u32 format (1)  i64 revision
//! u64 lease count, then per lease:  i64 id  u64 ttl in milliseconds
//! u64 key count, then per key (ascending):  u32 key length, key  u32 value length, value
//!                                            i64 create_revision  i64 mod_revision  i64 version  i64 lease
//! zero bytes up to the next multiple of 512
//! ```
//!
//! Reading checks the checksum before anything else, then every length against what is left,
//! and that the content is a store some revision could have held (keys ascending and unique,
//! `create <= mod <= revision`, every key's lease present): a truncated or damaged file gives
//! a [`SnapshotError`] naming what was wrong, never a panic and never a half-restored store.
//!
//! History is not part of a snapshot: a store restored from one starts compacted at the
//! snapshot's revision (reads at that revision work, older ones are `Compacted`, watchers
//! re-list), and leases restart with their full TTL, as etcd restarts them.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::error::StoreError;
use crate::store::Store;
use crate::types::{KeyRange, KeyValue, LeaseId, RangeRequest, Revision};

/// The first bytes of every snapshot file.
pub const MAGIC: &[u8; 8] = b"ORCHSNAP";
/// The format this code writes and reads.
pub const FORMAT: u32 = 1;
/// The length of the trailing SHA-256.
pub const CHECKSUM_BYTES: usize = 32;

/// bbolt's magic number, found at offset 16 of an etcd backend (and of etcd's snapshots).
const BBOLT_MAGIC: u32 = 0xED0C_DAED;
/// The fixed header: magic, format, revision.
const HEADER_BYTES: usize = 8 + 4 + 8;
/// The smallest record of a key (two lengths and four integers).
const MIN_KEY_RECORD: usize = 4 + 4 + 8 * 4;
/// The size of a lease record.
const LEASE_RECORD: usize = 8 + 8;
/// The body's length is a multiple of this (etcd's snapshots are whole bbolt pages).
pub const BODY_ALIGN: usize = 512;

/// A lease in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotLease {
    /// Its id.
    pub id: LeaseId,
    /// The TTL it was granted with (it restarts with all of it).
    pub ttl: Duration,
}

/// The whole store at one revision.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// The revision the keys were read at.
    pub revision: Revision,
    /// Every key alive at that revision, in ascending key order.
    pub kvs: Vec<KeyValue>,
    /// The leases, ascending by id; every key's lease is among them.
    pub leases: Vec<SnapshotLease>,
}

/// Why a snapshot file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Shorter than a header and its checksum.
    #[error(
        "the snapshot is {len} bytes, too short to be one (at least {min}): it is truncated or not a snapshot"
    )]
    TooShort {
        /// Its length.
        len: usize,
        /// The least a snapshot has.
        min: usize,
    },
    /// Not a snapshot of orchestra's.
    #[error("this is not an orchestra snapshot: {what}")]
    NotASnapshot {
        /// What it looks like instead.
        what: String,
    },
    /// The trailing SHA-256 does not match the body.
    #[error(
        "the snapshot's SHA-256 does not match its content (stored {stored}, computed {computed}): the file is damaged or truncated; take a new snapshot"
    )]
    ChecksumMismatch {
        /// The stored checksum, hex.
        stored: String,
        /// The computed one, hex.
        computed: String,
    },
    /// Written by a newer version.
    #[error("the snapshot is in format {found}; this version of orchestra reads format {FORMAT}")]
    UnsupportedFormat {
        /// The format found.
        found: u32,
    },
    /// The checksum matched but the content is not a store (written by a bug, not damage).
    #[error("the snapshot is malformed at byte {offset}: {detail}")]
    Malformed {
        /// Where in the file.
        offset: usize,
        /// What was wrong.
        detail: String,
    },
}

/// Take a snapshot of `store` at its current revision: one consistent view, whatever is
/// written meanwhile (the keys are read at one fixed revision).
pub async fn capture(store: &dyn Store) -> Result<Snapshot, StoreError> {
    // A compaction between reading the revision and reading at it can remove that revision;
    // the next attempt reads at a newer one.
    let mut attempts = 0;
    let (revision, kvs) = loop {
        let revision = store.status().await?.revision;
        let request = RangeRequest {
            range: KeyRange::prefix(""),
            revision,
            ..Default::default()
        };
        match store.range(request).await {
            Ok(response) => break (revision, response.kvs),
            Err(StoreError::Compacted { .. }) if attempts < 3 => attempts += 1,
            Err(err) => return Err(err),
        }
    };
    let mut leases = Vec::new();
    for id in store.lease_list().await? {
        match store.lease_time_to_live(id).await {
            Ok(status) => leases.push(SnapshotLease {
                id,
                ttl: status.granted_ttl,
            }),
            // Revoked or expired since it was listed.
            Err(StoreError::LeaseNotFound(_)) => {}
            Err(err) => return Err(err),
        }
    }
    // A key whose lease ended after `revision` was read: the lease existed at `revision`, and
    // after a restore it ends again at once (the shortest TTL), deleting its keys as it did.
    let mut missing: Vec<LeaseId> = kvs
        .iter()
        .map(|kv| kv.lease)
        .filter(|&id| id != 0 && !leases.iter().any(|l| l.id == id))
        .collect();
    missing.sort_unstable();
    missing.dedup();
    leases.extend(missing.into_iter().map(|id| SnapshotLease {
        id,
        ttl: Duration::ZERO,
    }));
    leases.sort_by_key(|l| l.id);
    Ok(Snapshot {
        revision,
        kvs,
        leases,
    })
}

impl Snapshot {
    /// The body of the file (without the checksum).
    pub fn encode_body(&self) -> Vec<u8> {
        let values: usize = self
            .kvs
            .iter()
            .map(|kv| kv.key.len() + kv.value.len())
            .sum();
        let mut out = Vec::with_capacity(
            HEADER_BYTES
                + 16
                + self.leases.len() * LEASE_RECORD
                + self.kvs.len() * MIN_KEY_RECORD
                + values,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT.to_le_bytes());
        out.extend_from_slice(&self.revision.to_le_bytes());
        out.extend_from_slice(&(self.leases.len() as u64).to_le_bytes());
        for lease in &self.leases {
            out.extend_from_slice(&lease.id.to_le_bytes());
            let ms = u64::try_from(lease.ttl.as_millis()).unwrap_or(u64::MAX);
            out.extend_from_slice(&ms.to_le_bytes());
        }
        out.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for kv in &self.kvs {
            for bytes in [&kv.key, &kv.value] {
                // Keys and values are bounded by the request limit, far below 4 GiB.
                let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(bytes);
            }
            for n in [kv.create_revision, kv.mod_revision, kv.version, kv.lease] {
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        out.resize(out.len().next_multiple_of(BODY_ALIGN), 0);
        out
    }

    /// The whole file: the body and its SHA-256.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.encode_body();
        let sha = Sha256::digest(&out);
        out.extend_from_slice(&sha);
        out
    }

    /// Read a whole file, checking the checksum first and then the content.
    pub fn decode(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let min = HEADER_BYTES + 16 + CHECKSUM_BYTES;
        if !bytes.starts_with(MAGIC) {
            return Err(SnapshotError::NotASnapshot {
                what: describe_foreign(bytes),
            });
        }
        if bytes.len() < min {
            return Err(SnapshotError::TooShort {
                len: bytes.len(),
                min,
            });
        }
        let (body, stored) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
        let computed = Sha256::digest(body);
        if computed.as_slice() != stored {
            return Err(SnapshotError::ChecksumMismatch {
                stored: hex(stored),
                computed: hex(&computed),
            });
        }
        Reader { body, at: 0 }.snapshot()
    }

    /// Read and check a snapshot file.
    pub fn read_file(path: &Path) -> Result<Snapshot, SnapshotError> {
        let bytes = std::fs::read(path).map_err(|source| SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Snapshot::decode(&bytes)
    }

    /// The SHA-256 of the body, hex: what `snapshot status` prints to compare two files.
    pub fn checksum(&self) -> String {
        hex(&Sha256::digest(self.encode_body()))
    }
}

/// What a file that is not ours looks like, for the error.
fn describe_foreign(bytes: &[u8]) -> String {
    let bbolt = bytes
        .get(16..20)
        .is_some_and(|m| u32::from_le_bytes([m[0], m[1], m[2], m[3]]) == BBOLT_MAGIC);
    if bbolt {
        "it is an etcd backend snapshot (bbolt), taken from a real etcd; restore it with `etcdctl snapshot restore` into etcd".to_string()
    } else if bytes.is_empty() {
        "the file is empty".to_string()
    } else {
        format!(
            "it does not start with {:?} (the first bytes are {})",
            String::from_utf8_lossy(MAGIC),
            hex(&bytes[..bytes.len().min(8)])
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the body, every length checked against what is left.
struct Reader<'a> {
    body: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn malformed(&self, detail: impl Into<String>) -> SnapshotError {
        SnapshotError::Malformed {
            offset: self.at,
            detail: detail.into(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], SnapshotError> {
        let left = self.body.len() - self.at;
        if n > left {
            return Err(self.malformed(format!("{what} needs {n} bytes, {left} are left")));
        }
        let slice = &self.body[self.at..self.at + n];
        self.at += n;
        Ok(slice)
    }

    fn u32(&mut self, what: &str) -> Result<u32, SnapshotError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, SnapshotError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn i64(&mut self, what: &str) -> Result<i64, SnapshotError> {
        Ok(self.u64(what)? as i64)
    }

    /// A count of records of at least `record` bytes each, bounded by what is left.
    fn count(&mut self, what: &str, record: usize) -> Result<usize, SnapshotError> {
        let n = self.u64(what)?;
        let left = (self.body.len() - self.at) as u64;
        if n.saturating_mul(record as u64) > left {
            return Err(self.malformed(format!(
                "{n} {what} cannot fit in the {left} bytes that are left"
            )));
        }
        Ok(n as usize)
    }

    fn snapshot(mut self) -> Result<Snapshot, SnapshotError> {
        self.take(MAGIC.len(), "the magic")?;
        let format = self.u32("the format")?;
        if format != FORMAT {
            return Err(SnapshotError::UnsupportedFormat { found: format });
        }
        let revision = self.i64("the revision")?;
        if revision < 1 {
            return Err(self.malformed(format!("revision {revision} is below 1")));
        }
        let lease_count = self.count("leases", LEASE_RECORD)?;
        let mut leases: Vec<SnapshotLease> = Vec::with_capacity(lease_count);
        for _ in 0..lease_count {
            let id = self.i64("a lease id")?;
            let ttl_ms = self.u64("a lease TTL")?;
            if id <= 0 || leases.last().is_some_and(|l| l.id >= id) {
                return Err(self.malformed(format!(
                    "lease id {id} is not positive and above the previous one"
                )));
            }
            leases.push(SnapshotLease {
                id,
                ttl: Duration::from_millis(ttl_ms),
            });
        }
        let key_count = self.count("keys", MIN_KEY_RECORD)?;
        let mut kvs: Vec<KeyValue> = Vec::with_capacity(key_count);
        for _ in 0..key_count {
            let start = self.at;
            let len = self.u32("a key length")? as usize;
            let key = Bytes::copy_from_slice(self.take(len, "a key")?);
            let len = self.u32("a value length")? as usize;
            let value = Bytes::copy_from_slice(self.take(len, "a value")?);
            let kv = KeyValue {
                key,
                value,
                create_revision: self.i64("a create revision")?,
                mod_revision: self.i64("a mod revision")?,
                version: self.i64("a version")?,
                lease: self.i64("a lease")?,
            };
            let name = String::from_utf8_lossy(&kv.key).into_owned();
            let bad = |detail: String| SnapshotError::Malformed {
                offset: start,
                detail: format!("key {name:?}: {detail}"),
            };
            if kv.key.is_empty() {
                return Err(bad("the key is empty".into()));
            }
            if kvs.last().is_some_and(|prev| prev.key >= kv.key) {
                return Err(bad("keys are not in ascending order".into()));
            }
            // Revision 1 is the empty store's: the first write is revision 2.
            if !(2 <= kv.create_revision
                && kv.create_revision <= kv.mod_revision
                && kv.mod_revision <= revision)
            {
                return Err(bad(format!(
                    "create revision {} and mod revision {} are not 2 <= create <= mod <= {revision}",
                    kv.create_revision, kv.mod_revision
                )));
            }
            if kv.version < 1 {
                return Err(bad(format!("version {} is below 1", kv.version)));
            }
            if kv.lease < 0
                || (kv.lease != 0 && leases.binary_search_by_key(&kv.lease, |l| l.id).is_err())
            {
                return Err(bad(format!("lease {} is not in the snapshot", kv.lease)));
            }
            kvs.push(kv);
        }
        let padding = &self.body[self.at..];
        if padding.len() >= BODY_ALIGN || padding.iter().any(|&b| b != 0) {
            return Err(self.malformed(format!(
                "{} bytes that are not padding follow the last key",
                padding.len()
            )));
        }
        if !self.body.len().is_multiple_of(BODY_ALIGN) {
            return Err(self.malformed(format!(
                "the body is {} bytes, not a multiple of {BODY_ALIGN}",
                self.body.len()
            )));
        }
        Ok(Snapshot {
            revision,
            kvs,
            leases,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{MemStore, StoreExt};
    use proptest::prelude::*;

    fn kv(
        key: &str,
        value: &str,
        create: i64,
        modified: i64,
        version: i64,
        lease: i64,
    ) -> KeyValue {
        KeyValue {
            key: Bytes::copy_from_slice(key.as_bytes()),
            value: Bytes::copy_from_slice(value.as_bytes()),
            create_revision: create,
            mod_revision: modified,
            version,
            lease,
        }
    }

    fn sample() -> Snapshot {
        Snapshot {
            revision: 9,
            kvs: vec![kv("a", "1", 2, 5, 3, 0), kv("b", "", 4, 4, 1, 7)],
            leases: vec![SnapshotLease {
                id: 7,
                ttl: Duration::from_secs(30),
            }],
        }
    }

    #[test]
    fn round_trips() {
        let snap = sample();
        let file = snap.encode();
        // What etcdctl checks to find the checksum.
        assert_eq!(file.len() % BODY_ALIGN, CHECKSUM_BYTES);
        assert_eq!(Snapshot::decode(&file).unwrap(), snap);
        let empty = Snapshot {
            revision: 1,
            ..Default::default()
        };
        assert_eq!(Snapshot::decode(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_an_error() {
        let bytes = sample().encode();
        for cut in 0..bytes.len() {
            assert!(Snapshot::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(Snapshot::decode(&damaged).is_err(), "flipped byte {at}");
        }
        let mut damaged = bytes.clone();
        damaged[30] ^= 1;
        let err = Snapshot::decode(&damaged).unwrap_err();
        assert!(err.to_string().contains("SHA-256 does not match"), "{err}");
    }

    /// A body that passes the checksum but is not a store (as a bug would write it).
    fn resealed(mut body: Vec<u8>) -> Vec<u8> {
        let sha = Sha256::digest(&body);
        body.extend_from_slice(&sha);
        body
    }

    #[test]
    fn content_that_no_store_could_hold_is_malformed() {
        let mut snap = sample();
        snap.kvs.swap(0, 1);
        let err = Snapshot::decode(&snap.encode()).unwrap_err();
        assert!(err.to_string().contains("ascending"), "{err}");

        let mut snap = sample();
        snap.kvs[0].mod_revision = 10;
        let err = Snapshot::decode(&snap.encode()).unwrap_err();
        assert!(err.to_string().contains("key \"a\""), "{err}");

        let mut snap = sample();
        snap.leases.clear();
        let err = Snapshot::decode(&snap.encode()).unwrap_err();
        assert!(
            err.to_string().contains("lease 7 is not in the snapshot"),
            "{err}"
        );

        let mut body = sample().encode_body();
        let last = body.len() - 1;
        body[last] = 1;
        let err = Snapshot::decode(&resealed(body)).unwrap_err();
        assert!(err.to_string().contains("follow the last key"), "{err}");
        let mut body = sample().encode_body();
        body.push(0);
        let err = Snapshot::decode(&resealed(body)).unwrap_err();
        assert!(err.to_string().contains("not a multiple of 512"), "{err}");

        // A huge count is refused before anything is allocated for it.
        let mut body = Snapshot {
            revision: 3,
            ..Default::default()
        }
        .encode_body();
        // After the header and the lease count (no leases).
        let at = HEADER_BYTES + 8;
        body[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let err = Snapshot::decode(&resealed(body)).unwrap_err();
        assert!(err.to_string().contains("cannot fit"), "{err}");

        let mut body = sample().encode_body();
        body[8..12].copy_from_slice(&2u32.to_le_bytes());
        let err = Snapshot::decode(&resealed(body)).unwrap_err();
        assert!(
            matches!(err, SnapshotError::UnsupportedFormat { found: 2 }),
            "{err}"
        );
    }

    #[test]
    fn foreign_files_are_named() {
        let mut bbolt = vec![0u8; 4096];
        bbolt[16..20].copy_from_slice(&BBOLT_MAGIC.to_le_bytes());
        let err = Snapshot::decode(&bbolt).unwrap_err();
        assert!(err.to_string().contains("etcd backend snapshot"), "{err}");
        let err = Snapshot::decode(b"").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let err = Snapshot::decode(b"hello world").unwrap_err();
        assert!(
            err.to_string().contains("not an orchestra snapshot"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn capture_reads_every_key_and_lease_at_one_revision() {
        let store = MemStore::new();
        store.put("a", "1").await.unwrap();
        store.put("a", "2").await.unwrap();
        let lease = store.lease_grant(Duration::from_secs(60)).await.unwrap();
        store
            .put_one(crate::PutRequest {
                key: Bytes::from("b"),
                value: Bytes::from("x"),
                lease,
                ..Default::default()
            })
            .await
            .unwrap();
        store.put("c", "gone").await.unwrap();
        store.delete("c").await.unwrap();
        let snap = capture(&store).await.unwrap();
        assert_eq!(snap.revision, store.status().await.unwrap().revision);
        let keys: Vec<&[u8]> = snap.kvs.iter().map(|kv| kv.key.as_ref()).collect();
        assert_eq!(keys, [b"a".as_ref(), b"b"]);
        assert_eq!(snap.kvs[0].version, 2);
        assert_eq!(snap.kvs[1].lease, lease);
        assert_eq!(
            snap.leases,
            [SnapshotLease {
                id: lease,
                ttl: Duration::from_secs(60)
            }]
        );
        assert_eq!(Snapshot::decode(&snap.encode()).unwrap(), snap);
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&tail);
            let _ = Snapshot::decode(&bytes);
            let _ = Snapshot::decode(&resealed(bytes));
        }
    }
}
