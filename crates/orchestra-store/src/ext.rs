//! [`StoreExt`]: the everyday operations (get, put, compare-and-swap, delete, list) built on
//! [`Store::range`] and [`Store::txn`], for every store.

use std::future::Future;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::StoreError;
use crate::store::Store;
use crate::types::{
    Compare, CompareOp, KeyValue, LeaseId, Op, OpResponse, PutRequest, RangeRequest, RangeResponse,
    Revision, Txn,
};

/// The outcome of a conditional write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CasOutcome {
    /// The write happened at this revision.
    Written(Revision),
    /// The condition failed; this is the key's current value (None when absent).
    Conflict(Option<KeyValue>),
}

impl CasOutcome {
    /// The revision written, if the write happened.
    pub fn revision(&self) -> Option<Revision> {
        match self {
            CasOutcome::Written(rev) => Some(*rev),
            CasOutcome::Conflict(_) => None,
        }
    }
}

/// Convenience operations for every [`Store`].
#[async_trait]
pub trait StoreExt: Store {
    /// The key's latest value.
    async fn get(&self, key: impl Into<Bytes> + Send) -> Result<Option<KeyValue>, StoreError> {
        let resp = self.range(RangeRequest::key(key)).await?;
        Ok(resp.kvs.into_iter().next())
    }

    /// Write a key unconditionally; returns the revision.
    ///
    /// Not boxed (unlike the other helpers): a put is the hottest write, and its future only
    /// wraps [`Store::put_one`]'s.
    fn put(
        &self,
        key: impl Into<Bytes> + Send,
        value: impl Into<Bytes> + Send,
    ) -> impl Future<Output = Result<Revision, StoreError>> + Send {
        self.put_with_lease(key, value, 0)
    }

    /// Write a key attached to a lease (0: none); returns the revision.
    fn put_with_lease(
        &self,
        key: impl Into<Bytes> + Send,
        value: impl Into<Bytes> + Send,
        lease: LeaseId,
    ) -> impl Future<Output = Result<Revision, StoreError>> + Send {
        let req = PutRequest {
            key: key.into(),
            value: value.into(),
            lease,
            prev_kv: false,
        };
        // `put_one`'s boxed future is built here (it does nothing until polled) and mapped, so
        // the request is moved once, into that box, not first into a wrapping future too.
        futures::FutureExt::map(self.put_one(req), |resp| Ok(resp?.header_revision))
    }

    /// Create a key only if it does not exist.
    async fn create(
        &self,
        key: impl Into<Bytes> + Send,
        value: impl Into<Bytes> + Send,
    ) -> Result<CasOutcome, StoreError> {
        let key = key.into();
        self.write_if(
            Compare::create_revision(key.clone(), CompareOp::Equal, 0),
            Op::put(key.clone(), value),
            key,
        )
        .await
    }

    /// Update a key only if its mod revision is still `mod_revision`.
    async fn update_if(
        &self,
        key: impl Into<Bytes> + Send,
        value: impl Into<Bytes> + Send,
        mod_revision: Revision,
    ) -> Result<CasOutcome, StoreError> {
        let key = key.into();
        let guard = Compare::mod_revision(key.clone(), CompareOp::Equal, mod_revision);
        self.write_if(guard, Op::put(key.clone(), value), key).await
    }

    /// Delete a key only if its mod revision is still `mod_revision`.
    async fn delete_if(
        &self,
        key: impl Into<Bytes> + Send,
        mod_revision: Revision,
    ) -> Result<CasOutcome, StoreError> {
        let key = key.into();
        let guard = Compare::mod_revision(key.clone(), CompareOp::Equal, mod_revision);
        self.write_if(guard, Op::delete(key.clone()), key).await
    }

    /// Delete a key unconditionally; returns its last value, if it existed.
    async fn delete(&self, key: impl Into<Bytes> + Send) -> Result<Option<KeyValue>, StoreError> {
        let resp = self.txn(Txn::new().and_then([Op::delete(key)])).await?;
        match resp.responses.into_iter().next() {
            Some(OpResponse::Delete { prev_kvs, .. }) => Ok(prev_kvs.into_iter().next()),
            _ => Ok(None),
        }
    }

    /// Every key with a prefix, at the latest revision.
    async fn list_prefix(
        &self,
        prefix: impl Into<Bytes> + Send,
    ) -> Result<RangeResponse, StoreError> {
        self.range(RangeRequest::prefix(prefix)).await
    }

    /// Run `op` if `guard` holds, else read `key`'s current value.
    async fn write_if(&self, guard: Compare, op: Op, key: Bytes) -> Result<CasOutcome, StoreError> {
        let resp = self
            .txn(
                Txn::new()
                    .when([guard])
                    .and_then([op])
                    .or_else([Op::get(key)]),
            )
            .await?;
        if resp.succeeded {
            return Ok(CasOutcome::Written(resp.header_revision));
        }
        match resp.responses.into_iter().next() {
            Some(OpResponse::Range(range)) => {
                Ok(CasOutcome::Conflict(range.kvs.into_iter().next()))
            }
            _ => Ok(CasOutcome::Conflict(None)),
        }
    }
}

impl<S: Store + ?Sized> StoreExt for S {}
