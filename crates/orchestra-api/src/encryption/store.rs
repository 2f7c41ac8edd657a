//! [`EncryptedStore`]: a [`Store`] over another that encrypts the values of the configured
//! kinds on the way in and decrypts them on the way out (reads, transaction results, watch
//! events), so that everything above it (the registry, its watch caches, the API server) sees
//! plaintext while the engine underneath holds only ciphertext.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use orchestra_store::{
    Compare, CompareOp, CompareTarget, KeyValue, LeaseId, LeaseStatus, Op, OpResponse, PutRequest,
    RangeRequest, RangeResponse, Revision, Store, StoreError, StoreStatus, Txn, TxnResponse,
    WatchRequest, WatchResponse, WatchStream,
};

use super::config::EncryptionConfig;
use super::key::{DecryptError, ENCRYPTED_PREFIX};

/// Encryption at rest over any store (Kubernetes' storage transformers): values under
/// `/registry/{plural}/` of the configured kinds are written encrypted with the write key;
/// every encrypted value read is decrypted with the key its marker names. A value that no
/// configured key opens is passed up unchanged, so that only that object fails to decode
/// (with an error naming its key), and every other object still reads.
#[derive(Clone)]
pub struct EncryptedStore {
    inner: Arc<dyn Store>,
    config: Arc<EncryptionConfig>,
}

impl std::fmt::Debug for EncryptedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedStore")
            .field("resources", &self.config.resources())
            .field("write_key", &self.config.keys().write_key().name())
            .finish_non_exhaustive()
    }
}

/// What [`EncryptedStore::rewrite`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewriteReport {
    /// Values re-encrypted with the write key (plaintext or an older key before).
    pub rewritten: usize,
    /// Values already encrypted with the write key, left alone.
    pub current: usize,
    /// Values changed by another writer during the rewrite (so written with the write key).
    pub raced: usize,
    /// Values that could not be decrypted, by store key, with why. They keep needing their key.
    pub failed: Vec<(String, DecryptError)>,
}

impl EncryptedStore {
    /// Encrypts the kinds of `config` in `inner`.
    pub fn new(inner: Arc<dyn Store>, config: EncryptionConfig) -> Self {
        EncryptedStore {
            inner,
            config: Arc::new(config),
        }
    }

    /// The config in use.
    pub fn config(&self) -> &EncryptionConfig {
        &self.config
    }

    /// The store underneath, holding ciphertext.
    pub fn inner(&self) -> &Arc<dyn Store> {
        &self.inner
    }

    fn seal(&self, key: &[u8], value: Bytes) -> Result<Bytes, StoreError> {
        if !self.config.covers(key) {
            return Ok(value);
        }
        self.config
            .keys()
            .encrypt(key, &value)
            .map_err(|err| StoreError::Other(format!("encrypting {}: {err}", lossy(key))))
    }

    fn open(&self, kv: &mut KeyValue) {
        if !kv.value.starts_with(ENCRYPTED_PREFIX) {
            return;
        }
        match self.config.keys().decrypt(&kv.key, &kv.value) {
            Ok(decrypted) => kv.value = decrypted.plain,
            // Left encrypted: the registry's decoder reports this object (and only it).
            Err(err) => {
                tracing::debug!(key = %lossy(&kv.key), reason = %err, "undecryptable value")
            }
        }
    }

    fn open_all(&self, kvs: &mut [KeyValue]) {
        kvs.iter_mut().for_each(|kv| self.open(kv));
    }

    fn seal_ops(&self, ops: Vec<Op>) -> Result<Vec<Op>, StoreError> {
        ops.into_iter()
            .map(|op| match op {
                Op::Put(mut put) => {
                    put.value = self.seal(&put.key, put.value)?;
                    Ok(Op::Put(put))
                }
                other => Ok(other),
            })
            .collect()
    }

    fn open_responses(&self, responses: &mut [OpResponse]) {
        for response in responses {
            match response {
                OpResponse::Range(range) => self.open_all(&mut range.kvs),
                OpResponse::Put { prev_kv } => {
                    if let Some(kv) = prev_kv {
                        self.open(kv);
                    }
                }
                OpResponse::Delete { prev_kvs, .. } => self.open_all(prev_kvs),
            }
        }
    }

    /// Re-encrypts every value of the configured kinds that is not yet under the write key
    /// (plaintext written before encryption, or an older key), each guarded by its
    /// mod_revision so that a concurrent write wins. After a rewrite with no failures, keys
    /// other than the write key can be removed from the config. Each rewritten object gets a
    /// new resourceVersion, as Kubernetes' "replace every secret" procedure gives.
    pub async fn rewrite(&self) -> Result<RewriteReport, StoreError> {
        const PAGE: usize = 256;
        let mut report = RewriteReport::default();
        for prefix in self.config.prefixes() {
            let end = orchestra_store::KeyRange::prefix(prefix.clone()).range_end;
            let mut start = Bytes::from(prefix.into_bytes());
            loop {
                let page = self
                    .inner
                    .range(
                        RangeRequest::range(orchestra_store::KeyRange::interval(
                            start.clone(),
                            end.clone(),
                        ))
                        .with_limit(PAGE),
                    )
                    .await?;
                for kv in &page.kvs {
                    self.rewrite_one(kv, &mut report).await?;
                }
                match page.kvs.last() {
                    Some(last) if page.more => {
                        let mut next = last.key.to_vec();
                        next.push(0);
                        start = Bytes::from(next);
                    }
                    _ => break,
                }
            }
        }
        Ok(report)
    }

    async fn rewrite_one(
        &self,
        kv: &KeyValue,
        report: &mut RewriteReport,
    ) -> Result<(), StoreError> {
        let keys = self.config.keys();
        // Decrypted even when the marker names the write key: a same-named but different key
        // shows up here as a failure rather than passing as current.
        let plain = match keys.decrypt(&kv.key, &kv.value) {
            Ok(decrypted) if decrypted.key.as_deref() == Some(keys.write_key().name()) => {
                report.current += 1;
                return Ok(());
            }
            Ok(decrypted) => decrypted.plain,
            Err(err) => {
                report.failed.push((lossy(&kv.key), err));
                return Ok(());
            }
        };
        let sealed = self.seal(&kv.key, plain)?;
        let txn = Txn::new()
            .when([Compare::mod_revision(
                kv.key.clone(),
                CompareOp::Equal,
                kv.mod_revision,
            )])
            .and_then([Op::Put(PutRequest {
                key: kv.key.clone(),
                value: sealed,
                lease: kv.lease,
                prev_kv: false,
            })]);
        if self.inner.txn(txn).await?.succeeded {
            report.rewritten += 1;
        } else {
            report.raced += 1;
        }
        Ok(())
    }
}

fn lossy(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

#[async_trait]
impl Store for EncryptedStore {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        let mut resp = self.inner.range(req).await?;
        self.open_all(&mut resp.kvs);
        Ok(resp)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        if let Some(compare) = txn
            .compares
            .iter()
            .find(|c| matches!(c.target, CompareTarget::Value(_)) && self.config.covers(&c.key))
        {
            // Ciphertexts differ on every write (fresh nonces): comparing them is meaningless.
            return Err(StoreError::Other(format!(
                "a value compare on {} is not supported: its values are encrypted at rest; compare its mod_revision instead",
                lossy(&compare.key)
            )));
        }
        let txn = Txn {
            compares: txn.compares,
            success: self.seal_ops(txn.success)?,
            failure: self.seal_ops(txn.failure)?,
        };
        let mut resp = self.inner.txn(txn).await?;
        self.open_responses(&mut resp.responses);
        Ok(resp)
    }

    async fn watch(&self, req: WatchRequest) -> Result<WatchStream, StoreError> {
        let stream = self.inner.watch(req).await?;
        let this = self.clone();
        Ok(stream.map_responses(move |mut resp: WatchResponse| {
            // The events are shared with every other watcher of the revision: decrypt a copy.
            let mut events = resp.events.to_vec();
            for event in &mut events {
                this.open(&mut event.kv);
                if let Some(prev) = &mut event.prev_kv {
                    this.open(prev);
                }
            }
            resp.events = events.into();
            resp
        }))
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        self.inner.compact(revision).await
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.inner.lease_grant(ttl).await
    }

    async fn lease_grant_id(&self, id: LeaseId, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.inner.lease_grant_id(id, ttl).await
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration, StoreError> {
        self.inner.lease_keep_alive(id).await
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        self.inner.lease_revoke(id).await
    }

    async fn lease_time_to_live(&self, id: LeaseId) -> Result<LeaseStatus, StoreError> {
        self.inner.lease_time_to_live(id).await
    }

    async fn lease_list(&self) -> Result<Vec<LeaseId>, StoreError> {
        self.inner.lease_list().await
    }

    async fn status(&self) -> Result<StoreStatus, StoreError> {
        self.inner.status().await
    }
}
