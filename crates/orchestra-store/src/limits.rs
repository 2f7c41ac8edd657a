//! Request limits, and the checks every store runs before it touches its state, so that a bad
//! request fails with a clear error and changes nothing.

use crate::error::StoreError;
use crate::types::{KeyRange, Op, Txn};

/// Limits on requests, with etcd's defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest request in bytes (keys plus values); etcd's default is 1.5 MiB.
    pub max_request_bytes: usize,
    /// The most operations in one transaction branch, and the most compares; etcd's default is 128.
    pub max_txn_ops: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 1536 * 1024,
            max_txn_ops: 128,
        }
    }
}

impl Limits {
    /// Check a transaction against the limits and the rules every store enforces: no empty key,
    /// valid ranges, no key written twice in one branch.
    pub fn check_txn(&self, txn: &Txn) -> Result<(), StoreError> {
        let ops = txn
            .compares
            .len()
            .max(txn.success.len())
            .max(txn.failure.len());
        if ops > self.max_txn_ops {
            return Err(StoreError::TooManyOps {
                ops,
                limit: self.max_txn_ops,
            });
        }
        let mut size = 0usize;
        for cmp in &txn.compares {
            check_key(&cmp.key)?;
            size += cmp.key.len();
            if let crate::types::CompareTarget::Value(v) = &cmp.target {
                size += v.len();
            }
        }
        for branch in [&txn.success, &txn.failure] {
            for (i, op) in branch.iter().enumerate() {
                size += op_size(op);
                match op {
                    Op::Range(r) => check_range(&r.range)?,
                    Op::Put(p) => check_key(&p.key)?,
                    Op::Delete(d) => check_range(&d.range)?,
                }
                // Quadratic, but branches are short (at most `max_txn_ops`) and this avoids
                // allocating a set for the common one-operation transaction.
                if let Some(key) = branch[..i].iter().find_map(|earlier| overlap(earlier, op)) {
                    return Err(duplicate(&key));
                }
            }
        }
        self.check_size(size)
    }

    /// Check the size of a request of `size` bytes.
    pub fn check_size(&self, size: usize) -> Result<(), StoreError> {
        if size > self.max_request_bytes {
            return Err(StoreError::RequestTooLarge {
                size,
                limit: self.max_request_bytes,
            });
        }
        Ok(())
    }
}

/// Reject the empty key.
pub fn check_key(key: &[u8]) -> Result<(), StoreError> {
    if key.is_empty() {
        Err(StoreError::EmptyKey)
    } else {
        Ok(())
    }
}

/// Reject an empty key and a range whose end is not after its start.
pub fn check_range(range: &KeyRange) -> Result<(), StoreError> {
    check_key(&range.key)?;
    if let Some(end) = range.end_bound()
        && end <= range.key.as_ref()
    {
        return Err(StoreError::InvalidRange {
            key: String::from_utf8_lossy(&range.key).into_owned(),
            end: String::from_utf8_lossy(end).into_owned(),
        });
    }
    Ok(())
}

fn op_size(op: &Op) -> usize {
    match op {
        Op::Range(r) => r.range.key.len() + r.range.range_end.len(),
        Op::Put(p) => p.key.len() + p.value.len(),
        Op::Delete(d) => d.range.key.len() + d.range.range_end.len(),
    }
}

/// If two writes of one branch touch a common key, one such key. As in etcd, two deletes may
/// overlap (the second finds nothing left to delete); a put may not meet another write.
fn overlap(a: &Op, b: &Op) -> Option<bytes::Bytes> {
    match (a, b) {
        (Op::Put(x), Op::Put(y)) => (x.key == y.key).then(|| x.key.clone()),
        (Op::Put(p), Op::Delete(d)) | (Op::Delete(d), Op::Put(p)) => {
            d.range.contains(&p.key).then(|| p.key.clone())
        }
        _ => None,
    }
}

fn duplicate(key: &[u8]) -> StoreError {
    StoreError::DuplicateKey {
        key: String::from_utf8_lossy(key).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Op, Txn};

    #[test]
    fn rejects_the_same_key_twice_in_a_branch() {
        let txn = Txn::new().and_then([Op::put("a", "1"), Op::put("a", "2")]);
        assert!(matches!(
            Limits::default().check_txn(&txn),
            Err(StoreError::DuplicateKey { .. })
        ));
        let txn = Txn::new().and_then([
            Op::put("a/1", "1"),
            Op::delete_range(KeyRange::prefix("a/")),
        ]);
        assert!(matches!(
            Limits::default().check_txn(&txn),
            Err(StoreError::DuplicateKey { .. })
        ));
        // The same key in the two branches is fine: only one runs.
        let txn = Txn::new()
            .and_then([Op::put("a", "1")])
            .or_else([Op::put("a", "2")]);
        assert!(Limits::default().check_txn(&txn).is_ok());
    }

    #[test]
    fn rejects_oversized_and_overlong_requests() {
        let limits = Limits {
            max_request_bytes: 10,
            max_txn_ops: 2,
        };
        let big = Txn::new().and_then([Op::put("k", vec![0u8; 11])]);
        assert!(matches!(
            limits.check_txn(&big),
            Err(StoreError::RequestTooLarge {
                size: 12,
                limit: 10
            })
        ));
        let long = Txn::new().and_then([Op::put("a", ""), Op::put("b", ""), Op::put("c", "")]);
        assert!(matches!(
            limits.check_txn(&long),
            Err(StoreError::TooManyOps { ops: 3, limit: 2 })
        ));
    }

    #[test]
    fn rejects_empty_keys_and_inverted_ranges() {
        let txn = Txn::new().and_then([Op::put("", "v")]);
        assert_eq!(Limits::default().check_txn(&txn), Err(StoreError::EmptyKey));
        let inverted = KeyRange::interval("b", "a");
        assert!(matches!(
            check_range(&inverted),
            Err(StoreError::InvalidRange { .. })
        ));
    }
}
