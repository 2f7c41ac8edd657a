//! The on-disk encoding of records: postcard-serialized structs behind a CRC32 of their bytes,
//! so that a flipped or truncated value is reported as corruption instead of being decoded
//! into wrong data. Decoding never panics, whatever the bytes.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::mvcc::journal::ReplayOp;
use crate::mvcc::keyspace::UNKNOWN_SUB;
use crate::types::{Event, EventKind, KeyValue, LeaseId, Revision};

/// One change of a revision, as stored in the `revs` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum StoredOp {
    /// A write of `key`.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
        /// The lease (0: none).
        lease: LeaseId,
    },
    /// A delete of `key`.
    Delete {
        /// The key.
        key: Bytes,
    },
}

/// The changes of one revision, as stored inside a batch of the `revs` table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredRevision {
    /// The revision.
    pub revision: Revision,
    /// Its changes, in order.
    pub ops: Vec<StoredOp>,
}

/// A live key at the compact point, as stored in the `base` table. The key is repeated inside
/// the checksummed value so that damage to the table's key is detected too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredKv {
    pub key: Bytes,
    pub value: Bytes,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: i64,
    pub lease: LeaseId,
    /// The write's position in its transaction (its sub revision, for etcd's `HashKV`);
    /// `UNKNOWN_SUB` when it is not known (a key restored from a snapshot).
    pub sub: u32,
}

/// [`StoredKv`] as written before it carried `sub`: base records of older data directories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredKvWithoutSub {
    key: Bytes,
    value: Bytes,
    create_revision: Revision,
    mod_revision: Revision,
    version: i64,
    lease: LeaseId,
}

/// Decode a base record, of either layout (a record without `sub` reads as `UNKNOWN_SUB`).
pub(crate) fn decode_kv(bytes: &[u8]) -> Result<StoredKv, String> {
    match decode::<StoredKv>(bytes) {
        Ok(kv) => Ok(kv),
        Err(err) => match decode::<StoredKvWithoutSub>(bytes) {
            Ok(old) => Ok(StoredKv {
                key: old.key,
                value: old.value,
                create_revision: old.create_revision,
                mod_revision: old.mod_revision,
                version: old.version,
                lease: old.lease,
                sub: UNKNOWN_SUB,
            }),
            Err(_) => Err(err),
        },
    }
}

impl StoredOp {
    /// The stored form of an event.
    pub(crate) fn from_event(event: &Event) -> Self {
        match event.kind {
            EventKind::Put => StoredOp::Put {
                key: event.kv.key.clone(),
                value: event.kv.value.clone(),
                lease: event.kv.lease,
            },
            EventKind::Delete => StoredOp::Delete {
                key: event.kv.key.clone(),
            },
        }
    }

    /// The replay form.
    pub(crate) fn into_replay(self) -> ReplayOp {
        match self {
            StoredOp::Put { key, value, lease } => ReplayOp::Put { key, value, lease },
            StoredOp::Delete { key } => ReplayOp::Delete { key },
        }
    }
}

impl StoredKv {
    /// The key-value and its sub revision.
    pub(crate) fn into_key_value(self) -> (KeyValue, u32) {
        let kv = KeyValue {
            key: self.key,
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        };
        (kv, self.sub)
    }
}

/// A lease, as stored in the `leases` table (the id is repeated for the same reason).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredLease {
    pub id: LeaseId,
    pub ttl_ms: u64,
}

/// Serialize `value` behind its CRC32.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    // Serializing plain structs of bytes and integers into a Vec cannot fail.
    let payload = postcard::to_extend(value, Vec::new()).unwrap_or_default();
    out.extend_from_slice(&payload);
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Check the CRC32 and deserialize; the error says what was wrong.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "record of {} bytes is shorter than its checksum",
            bytes.len()
        ));
    }
    let (crc, payload) = bytes.split_at(4);
    let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    let actual = crc32fast::hash(payload);
    if stored != actual {
        return Err(format!(
            "checksum mismatch (stored {stored:08x}, computed {actual:08x})"
        ));
    }
    postcard::from_bytes(payload).map_err(|err| format!("undecodable record: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips_ops() {
        let ops = vec![
            StoredOp::Put {
                key: Bytes::from("k"),
                value: Bytes::from("v"),
                lease: 7,
            },
            StoredOp::Delete {
                key: Bytes::from("d"),
            },
        ];
        let decoded: Vec<StoredOp> = decode(&encode(&ops)).unwrap();
        assert_eq!(decoded, ops);
    }

    #[test]
    fn detects_a_flipped_bit() {
        let mut bytes = encode(&StoredKv {
            key: Bytes::from("key"),
            value: Bytes::from("value"),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            lease: 0,
            sub: 1,
        });
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let err = decode_kv(&bytes).unwrap_err();
        assert!(err.contains("checksum mismatch"), "{err}");
    }

    #[test]
    fn base_records_without_a_sub_revision_still_decode() {
        let old = StoredKvWithoutSub {
            key: Bytes::from("key"),
            value: Bytes::from("value"),
            create_revision: 2,
            mod_revision: 3,
            version: 2,
            lease: 7,
        };
        let kv = decode_kv(&encode(&old)).expect("an old record decodes");
        assert_eq!((kv.mod_revision, kv.lease, kv.sub), (3, 7, UNKNOWN_SUB));
        let new = StoredKv { sub: 2, ..kv };
        assert_eq!(decode_kv(&encode(&new)), Ok(new));
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode::<Vec<StoredOp>>(&bytes);
            let _ = decode_kv(&bytes);
        }

        #[test]
        fn truncation_is_always_detected(cut in 0usize..20) {
            let bytes = encode(&vec![StoredOp::Put { key: Bytes::from("key"), value: Bytes::from("value"), lease: 0 }]);
            let cut = cut.min(bytes.len() - 1);
            prop_assert!(decode::<Vec<StoredOp>>(&bytes[..cut]).is_err());
        }
    }
}
