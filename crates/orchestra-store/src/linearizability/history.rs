//! Concurrent histories: [`Operation`]s with invocation and response times, and [`Recorder`],
//! a [`Store`] decorator that records every get, put, delete and transaction made through it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::model::{KvInput, KvOutput, Observed, TxnCompare, TxnOp, TxnOpResult, TxnTarget};
use crate::error::StoreError;
use crate::store::Store;
use crate::types::{
    CompareTarget, KeyValue, KvHash, LeaseId, LeaseStatus, Op, OpResponse, PutRequest, PutResponse,
    RangeRequest, RangeResponse, Revision, StoreStatus, Txn, TxnResponse, WatchRequest,
};
use crate::watch::WatchStream;

/// An answer and when it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response<O> {
    /// When the answer arrived (nanoseconds on the history's clock).
    pub at: u64,
    /// The answer.
    pub output: O,
}

/// One operation of a concurrent history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<I, O> {
    /// What was asked.
    pub input: I,
    /// When it was asked (nanoseconds on the history's clock).
    pub call: u64,
    /// The answer, or `None` when it never came (a timeout, an error, a crash): the operation
    /// may have taken effect at any time after `call`, or never.
    pub response: Option<Response<O>>,
}

/// One operation on a key-value store.
pub type KvOperation = Operation<KvInput, KvOutput>;

/// A recorded history of key-value operations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The operations, in order of invocation.
    pub operations: Vec<KvOperation>,
    /// Writes made through the recorder that the model cannot express (a put with a lease, a
    /// delete of a range, a lease revocation...). A history with any cannot be checked.
    pub unmodeled_writes: usize,
}

#[derive(Default)]
struct Log {
    operations: Mutex<Vec<KvOperation>>,
    unmodeled_writes: AtomicUsize,
}

/// A [`Store`] that records the operations made through it, with their invocation and
/// response times, into a [`History`] for [`check`](super::check).
///
/// Clones share the history: give one clone to each concurrent client. A call whose future
/// is dropped, or that fails, stays without a response (it may or may not have happened),
/// which is what a client that timed out or lost its server knows.
///
/// Recorded: single-key reads at the latest revision, puts without a lease, and transactions
/// whose compares are on `mod_revision` or the value and whose operations are single-key gets,
/// puts and deletes. Other reads pass through unrecorded; other writes are counted in
/// [`History::unmodeled_writes`].
pub struct Recorder<S> {
    inner: Arc<S>,
    start: Instant,
    log: Arc<Log>,
}

impl<S> Clone for Recorder<S> {
    fn clone(&self) -> Self {
        Recorder {
            inner: Arc::clone(&self.inner),
            start: self.start,
            log: Arc::clone(&self.log),
        }
    }
}

impl<S: Store> Recorder<S> {
    /// Record the operations made on `store`.
    pub fn new(store: S) -> Self {
        Recorder::from_arc(Arc::new(store))
    }

    /// Record the operations made on a shared store.
    pub fn from_arc(store: Arc<S>) -> Self {
        Recorder {
            inner: store,
            start: Instant::now(),
            log: Arc::default(),
        }
    }

    /// Record through another store (a reconnected client, say) into the same history, on
    /// the same clock.
    pub fn with_store<T: Store>(&self, store: T) -> Recorder<T> {
        Recorder {
            inner: Arc::new(store),
            start: self.start,
            log: Arc::clone(&self.log),
        }
    }

    /// The store underneath.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The history so far.
    pub fn history(&self) -> History {
        History {
            operations: self.log.operations.lock().clone(),
            unmodeled_writes: self.log.unmodeled_writes.load(Ordering::Relaxed),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX - 1)
    }

    fn begin(&self, input: KvInput) -> usize {
        let mut ops = self.log.operations.lock();
        // The time is taken under the lock so that invocation order and times agree.
        let call = self.now();
        ops.push(Operation {
            input,
            call,
            response: None,
        });
        ops.len() - 1
    }

    fn finish(&self, index: usize, output: KvOutput) {
        let at = self.now();
        if let Some(op) = self.log.operations.lock().get_mut(index) {
            op.response = Some(Response { at, output });
        }
    }

    fn unmodeled_write(&self) {
        self.log.unmodeled_writes.fetch_add(1, Ordering::Relaxed);
    }
}

fn observed(kv: Option<&KeyValue>) -> Option<Observed> {
    kv.map(|kv| Observed {
        value: kv.value.clone(),
        mod_revision: kv.mod_revision,
    })
}

/// A single-key read at the latest revision, with values: what `Get` models.
fn as_get(req: &RangeRequest) -> Option<bytes::Bytes> {
    (req.range.is_single() && req.revision == 0 && !req.keys_only && !req.count_only)
        .then(|| req.range.key.clone())
}

fn as_txn_op(op: &Op) -> Option<TxnOp> {
    match op {
        Op::Range(req) => as_get(req).map(|key| TxnOp::Get { key }),
        Op::Put(put) if put.lease == 0 => Some(TxnOp::Put {
            key: put.key.clone(),
            value: put.value.clone(),
        }),
        Op::Delete(del) if del.range.is_single() => Some(TxnOp::Delete {
            key: del.range.key.clone(),
        }),
        _ => None,
    }
}

fn as_txn_input(txn: &Txn) -> Option<KvInput> {
    let compares = txn
        .compares
        .iter()
        .map(|c| {
            let target = match &c.target {
                CompareTarget::ModRevision(rev) => TxnTarget::ModRevision(*rev),
                CompareTarget::Value(value) => TxnTarget::Value(value.clone()),
                _ => return None,
            };
            Some(TxnCompare {
                key: c.key.clone(),
                op: c.op,
                target,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let ops = |ops: &[Op]| ops.iter().map(as_txn_op).collect::<Option<Vec<_>>>();
    Some(KvInput::Txn {
        compares,
        success: ops(&txn.success)?,
        failure: ops(&txn.failure)?,
    })
}

fn txn_output(resp: &TxnResponse) -> KvOutput {
    let results = resp
        .responses
        .iter()
        .map(|r| match r {
            OpResponse::Range(range) => TxnOpResult::Get(observed(range.kvs.first())),
            OpResponse::Put { .. } => TxnOpResult::Put,
            OpResponse::Delete { deleted, .. } => TxnOpResult::Delete {
                deleted: *deleted > 0,
            },
        })
        .collect();
    KvOutput::Txn {
        succeeded: resp.succeeded,
        revision: resp.header_revision,
        results,
    }
}

#[async_trait]
impl<S: Store> Store for Recorder<S> {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        let Some(key) = as_get(&req) else {
            return self.inner.range(req).await;
        };
        let index = self.begin(KvInput::Get { key });
        let resp = self.inner.range(req).await?;
        self.finish(index, KvOutput::Get(observed(resp.kvs.first())));
        Ok(resp)
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        let Some(input) = as_txn_input(&txn) else {
            let writes = txn
                .success
                .iter()
                .chain(&txn.failure)
                .any(|op| !matches!(op, Op::Range(_)));
            if writes {
                self.unmodeled_write();
            }
            return self.inner.txn(txn).await;
        };
        let index = self.begin(input);
        let resp = self.inner.txn(txn).await?;
        self.finish(index, txn_output(&resp));
        Ok(resp)
    }

    async fn put_one(&self, req: PutRequest) -> Result<PutResponse, StoreError> {
        if req.lease != 0 {
            self.unmodeled_write();
            return self.inner.put_one(req).await;
        }
        let index = self.begin(KvInput::Put {
            key: req.key.clone(),
            value: req.value.clone(),
        });
        let resp = self.inner.put_one(req).await?;
        self.finish(
            index,
            KvOutput::Put {
                revision: resp.header_revision,
            },
        );
        Ok(resp)
    }

    async fn watch(&self, req: WatchRequest) -> Result<WatchStream, StoreError> {
        self.inner.watch(req).await
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
        self.unmodeled_write();
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
    async fn hash_kv(&self, revision: Revision) -> Result<KvHash, StoreError> {
        self.inner.hash_kv(revision).await
    }
}
