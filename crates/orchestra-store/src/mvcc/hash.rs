//! etcd's `HashKV`: a CRC-32C over the entries etcd's backend keeps for the history up to a
//! revision, computed from the engine's index and event log so that orchestra and etcd give
//! the same number for the same history.
//!
//! etcd stores every change in its `key` bucket under the change's revision: 8 bytes of the
//! main revision (big-endian), `_`, 8 bytes of the sub revision (the change's position in its
//! transaction), and a trailing `t` for a delete; the value is the `mvccpb.KeyValue` message
//! (for a delete, only the key). `HashKV` at revision `rev` feeds `key` (the bucket's name)
//! and then, in key order, each entry of a main revision `<= rev` to a CRC-32C; entries at or
//! below the compact revision count only when they hold the value a key has at `rev` (or,
//! when no key is alive at `rev`, every entry compaction left: the values alive at the compact
//! revision). Nothing else of etcd's state (leases, raft, the meta bucket) is hashed, so an
//! engine that numbers changes as etcd does can match it exactly.

use crate::types::{EventKind, KeyValue, Revision};

/// The CRC-32C (Castagnoli) table, reflected polynomial 0x82F63B78.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// A running CRC-32C, as Go's `crc32.New(crc32.MakeTable(crc32.Castagnoli))`.
#[derive(Debug, Clone)]
pub(crate) struct Crc32c {
    state: u32,
}

impl Crc32c {
    pub(crate) fn new() -> Self {
        Crc32c { state: !0 }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        let mut crc = self.state;
        for &b in bytes {
            crc = CRC32C_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        self.state = crc;
    }

    pub(crate) fn finish(&self) -> u32 {
        !self.state
    }
}

/// One entry of etcd's `key` bucket: a change at (main, sub).
pub(crate) struct BackendEntry<'a> {
    pub main: Revision,
    pub sub: u32,
    pub kind: EventKind,
    /// For a put, the key-value written; for a delete, a key-value holding the key.
    pub kv: &'a KeyValue,
}

/// Feeds backend entries, in revision order, to etcd's hash.
pub(crate) struct KvHasher {
    crc: Crc32c,
    buf: Vec<u8>,
}

impl KvHasher {
    /// A hash that has seen the bucket's name, as etcd's starts.
    pub(crate) fn new() -> Self {
        let mut crc = Crc32c::new();
        crc.update(b"key");
        KvHasher {
            crc,
            buf: Vec::new(),
        }
    }

    /// Add one entry (entries must come in (main, sub) order).
    pub(crate) fn add(&mut self, entry: &BackendEntry<'_>) {
        self.buf.clear();
        // The revision are non-negative, so their two's complement big-endian bytes sort as
        // etcd's do.
        self.buf.extend_from_slice(&entry.main.to_be_bytes());
        self.buf.push(b'_');
        self.buf
            .extend_from_slice(&i64::from(entry.sub).to_be_bytes());
        if entry.kind == EventKind::Delete {
            self.buf.push(b't');
        }
        self.crc.update(&self.buf);
        self.buf.clear();
        match entry.kind {
            EventKind::Put => encode_key_value(entry.kv, &mut self.buf),
            EventKind::Delete => encode_bytes_field(1, &entry.kv.key, &mut self.buf),
        }
        self.crc.update(&self.buf);
    }

    pub(crate) fn finish(&self) -> u32 {
        self.crc.finish()
    }
}

/// `mvccpb.KeyValue` in protobuf's wire format, as etcd marshals it: fields in number order,
/// fields holding their default value left out.
pub(crate) fn encode_key_value(kv: &KeyValue, out: &mut Vec<u8>) {
    encode_bytes_field(1, &kv.key, out);
    encode_int_field(2, kv.create_revision, out);
    encode_int_field(3, kv.mod_revision, out);
    encode_int_field(4, kv.version, out);
    encode_bytes_field(5, &kv.value, out);
    encode_int_field(6, kv.lease, out);
}

fn encode_varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn encode_bytes_field(number: u64, bytes: &[u8], out: &mut Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    encode_varint(number << 3 | 2, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn encode_int_field(number: u64, value: i64, out: &mut Vec<u8>) {
    if value == 0 {
        return;
    }
    encode_varint(number << 3, out);
    // An int64 goes on the wire as its two's complement in 64 bits (ten bytes when negative).
    encode_varint(value as u64, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn crc32c_of_the_standard_check_input() {
        // The check value of CRC-32C (iSCSI) for "123456789".
        let mut crc = Crc32c::new();
        crc.update(b"1234");
        crc.update(b"56789");
        assert_eq!(crc.finish(), 0xE306_9283);
    }

    #[test]
    fn key_values_encode_as_protobuf() {
        let kv = KeyValue {
            key: Bytes::from_static(b"a"),
            value: Bytes::from_static(b"xy"),
            create_revision: 2,
            mod_revision: 300,
            version: 1,
            lease: -1,
        };
        let mut out = Vec::new();
        encode_key_value(&kv, &mut out);
        let mut expected = vec![0x0a, 1, b'a', 0x10, 2, 0x18, 0xac, 0x02, 0x20, 1];
        expected.extend_from_slice(&[0x2a, 2, b'x', b'y', 0x30]);
        expected.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(out, expected);
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn the_encoding_is_prosts_encoding_of_etcds_message() {
        use prost::Message;
        let kv = KeyValue {
            key: Bytes::from_static(b"/registry/pods/default/web-0"),
            value: Bytes::from(vec![7u8; 300]),
            create_revision: 12,
            mod_revision: 1 << 40,
            version: 3,
            lease: 0x7fff_0000_1234,
        };
        let mut ours = Vec::new();
        encode_key_value(&kv, &mut ours);
        let theirs = crate::etcd::proto::mvccpb::KeyValue {
            key: kv.key.clone(),
            create_revision: kv.create_revision,
            mod_revision: kv.mod_revision,
            version: kv.version,
            value: kv.value.clone(),
            lease: kv.lease,
        }
        .encode_to_vec();
        assert_eq!(ours, theirs);
    }
}
