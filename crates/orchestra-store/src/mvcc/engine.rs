//! The engine shared by every embedded store: the key index, the lease table and the watch hub
//! behind one lock, with an optional [`Journal`] that makes writes durable before they are
//! acknowledged or seen.
//!
//! Without a journal ([`MemStore`](crate::MemStore)) a write is visible when its lock is
//! released. With one ([`DiskStore`](crate::DiskStore)) a write is applied in memory (so the
//! next transaction's compares see it) and queued; the first writer to find no flush running
//! starts one on the blocking pool, which persists every queued record with one fsync (group
//! commit), publishes them to readers and watchers, and goes on while records keep arriving.
//! Writers wait on a watch channel of the durable sequence number, so one flush releases all
//! of its writers at once. Readers read at the newest durable revision.

use std::sync::Arc;
use std::sync::Weak;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::error::StoreError;
use crate::limits::{Limits, check_key, check_range};
use crate::mvcc::hash::{BackendEntry, KvHasher};
use crate::mvcc::hub::Hub;
use crate::mvcc::journal::{Journal, Record, Recovered, ReplayOp};
use crate::mvcc::keyspace::{Keyspace, UNKNOWN_SUB};
use crate::mvcc::leases::LeaseTable;
use crate::types::{
    Event, EventKind, KeyRange, KvHash, LeaseId, LeaseStatus, Op, OpResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, Revision, StoreStatus, Txn, TxnResponse,
    WatchRequest,
};
use crate::watch::WatchStream;

/// Settings shared by the embedded stores.
#[derive(Clone, Debug)]
pub struct EngineOptions {
    /// Request limits.
    pub limits: Limits,
    /// How often a watch that asked for progress notifications gets one (etcd: 10 minutes).
    pub progress_interval: Duration,
    /// Keep at least this many revisions of history and compact older ones automatically, as
    /// etcd's `--auto-compaction-mode=revision` does (None: only explicit compactions, the
    /// default). The store compacts when it holds twice the retention, so one pass over the
    /// keys is paid once per `retention` writes.
    pub auto_compaction_retention: Option<u64>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            limits: Limits::default(),
            progress_interval: Duration::from_secs(600),
            auto_compaction_retention: None,
        }
    }
}

struct State {
    keys: Keyspace,
    leases: LeaseTable,
    /// Records applied in memory but not yet durable (journaled stores only).
    pending: Vec<Record>,
    /// The sequence number of the newest pending record.
    pending_seq: u64,
    /// Set when persisting failed: memory is then ahead of disk and writes must stop.
    failed: Option<String>,
}

struct JournalState {
    journal: Arc<dyn Journal>,
    /// True while a flush runs; the writer that flips it starts the flush.
    flushing: AtomicBool,
    /// The newest durable sequence number; bumped (and every waiter woken) after each flush.
    durable: tokio::sync::watch::Sender<u64>,
}

/// What [`Engine::put`] returns: the response at once without a journal, else a boxed wait
/// for durability that yields it.
pub(crate) type PutFuture = futures::future::Either<
    futures::future::Ready<Result<PutResponse, StoreError>>,
    futures::future::BoxFuture<'static, Result<PutResponse, StoreError>>,
>;

/// The engine. Shared through an `Arc`; background tasks hold a `Weak`.
pub(crate) struct Engine {
    state: RwLock<State>,
    hub: Arc<Hub>,
    limits: Limits,
    /// See [`EngineOptions::auto_compaction_retention`] (0: off).
    auto_compaction_retention: Revision,
    journal: Option<JournalState>,
    lease_wake: Arc<Notify>,
    lease_task_started: AtomicBool,
}

impl Engine {
    /// An empty in-memory engine.
    pub(crate) fn new(options: EngineOptions) -> Arc<Self> {
        Self::with_journal(options, None, Recovered::default())
    }

    /// An engine over a journal, starting from what the journal recovered.
    pub(crate) fn with_journal(
        options: EngineOptions,
        journal: Option<Arc<dyn Journal>>,
        recovered: Recovered,
    ) -> Arc<Self> {
        let hub = Arc::new(Hub::new(options.progress_interval));
        let mut keys = Keyspace::default();
        let mut leases = LeaseTable::default();
        let now = Instant::now();
        if recovered.revision > 1 {
            let base_revision = recovered.base_revision.max(1);
            keys.restore(recovered.base, base_revision);
            // The log starts right after the base; an empty store's revision 1 has no events.
            let first = if base_revision == 1 {
                1
            } else {
                base_revision + 1
            };
            let mut log = Vec::with_capacity(recovered.revisions.len() + 1);
            if first == 1 {
                log.push(Arc::from(Vec::new()));
            }
            for (rev, ops) in recovered.revisions {
                let mut events: Vec<Event> = Vec::with_capacity(ops.len());
                for op in ops {
                    // Stored changes are the revision's events, in order: their positions
                    // are their sub revisions.
                    let sub = sub_revision(events.len());
                    match op {
                        ReplayOp::Put { key, value, lease } => {
                            events.push(keys.put(key, value, lease, rev, sub));
                        }
                        ReplayOp::Delete { key } => {
                            if let Some(prev) = keys.latest(&key).cloned() {
                                events.push(keys.delete(prev, rev, sub));
                            }
                        }
                    }
                }
                let events: Arc<[Event]> = events.into();
                keys.commit(rev, &events);
                log.push(events);
            }
            hub.restore(first, log, keys.revision());
            if recovered.compact_revision > 0 {
                keys.compact(recovered.compact_revision);
                hub.compact(recovered.compact_revision);
            }
        }
        for (id, ttl) in recovered.leases {
            leases.restore(id, ttl, now);
        }
        leases.reserve_ids_below(recovered.next_lease_id);
        for kv in keys.live_keys(&KeyRange::prefix("")) {
            if kv.lease != 0 {
                leases.attach(&kv.key, 0, kv.lease);
            }
        }
        let journal = journal.map(|journal| JournalState {
            journal,
            flushing: AtomicBool::new(false),
            durable: tokio::sync::watch::Sender::new(0),
        });
        Arc::new(Engine {
            state: RwLock::new(State {
                keys,
                leases,
                pending: Vec::new(),
                pending_seq: 0,
                failed: None,
            }),
            hub,
            limits: options.limits,
            auto_compaction_retention: options
                .auto_compaction_retention
                .map_or(0, |r| Revision::try_from(r).unwrap_or(Revision::MAX)),
            journal,
            lease_wake: Arc::new(Notify::new()),
            lease_task_started: AtomicBool::new(false),
        })
    }

    /// Read a range at the latest visible revision or a past one.
    pub(crate) fn range(&self, req: &RangeRequest) -> Result<RangeResponse, StoreError> {
        check_range(&req.range)?;
        let visible = self.hub.visible();
        let st = self.state.read();
        let at = st.keys.readable(req.revision, visible)?;
        Ok(st.keys.range(req, at, visible))
    }

    /// Run a transaction; returns once it is durable and visible.
    pub(crate) async fn txn(self: &Arc<Self>, txn: Txn) -> Result<TxnResponse, StoreError> {
        let (resp, seq) = self.apply_txn(txn)?;
        self.durable(seq).await?;
        Ok(resp)
    }

    /// Apply a transaction in memory; returns its response and the journal sequence number
    /// to wait for before acknowledging it.
    fn apply_txn(&self, txn: Txn) -> Result<(TxnResponse, u64), StoreError> {
        self.limits.check_txn(&txn)?;
        let mut st = self.state.write();
        let (resp, events) = st.apply_txn(txn)?;
        let seq = self.record_events(&mut st, resp.header_revision, events);
        self.auto_compact(&mut st);
        Ok((resp, seq))
    }

    /// Write one key; returns once it is durable and visible. Not an `async fn`: without a
    /// journal the write is done when this returns, so the future is a ready value of a few
    /// words; only a journaled store's wait is boxed. `put_one`'s `async_trait` box moves
    /// whatever future it awaits, and a nested `async fn` holding the request and the
    /// response cost a copy of both per put.
    pub(crate) fn put(self: &Arc<Self>, put: PutRequest) -> PutFuture {
        use futures::future::{Either, ready};
        match self.apply_put(put) {
            Ok((resp, _)) if self.journal.is_none() => Either::Left(ready(Ok(resp))),
            Ok((resp, seq)) => {
                let engine = self.clone();
                Either::Right(Box::pin(async move {
                    engine.sync(seq).await?;
                    Ok(resp)
                }))
            }
            Err(err) => Either::Left(ready(Err(err))),
        }
    }

    /// Wait until the journal holds every record up to `seq` (at once without a journal).
    /// The wait is boxed so that the futures of `txn` and `put` stay a few words: without a
    /// journal they never wait, and moving a large future costs an in-memory write a tenth
    /// of its time.
    async fn durable(self: &Arc<Self>, seq: u64) -> Result<(), StoreError> {
        if self.journal.is_none() {
            return Ok(());
        }
        Box::pin(self.sync(seq)).await
    }

    /// Write one key in memory: what [`Engine::apply_txn`] does for a transaction of that one
    /// put, without building or evaluating a transaction (no compares, no op lists, one
    /// event). Returns the response and the journal sequence number to wait for.
    fn apply_put(&self, put: PutRequest) -> Result<(PutResponse, u64), StoreError> {
        // The checks `Limits::check_txn` makes of a one-put transaction, in its order.
        if self.limits.max_txn_ops == 0 {
            return Err(StoreError::TooManyOps { ops: 1, limit: 0 });
        }
        check_key(&put.key)?;
        self.limits.check_size(put.key.len() + put.value.len())?;
        let mut st = self.state.write();
        st.check_writable()?;
        if put.lease != 0 && !st.leases.contains(put.lease) {
            return Err(StoreError::LeaseNotFound(put.lease));
        }
        // Nothing fails from here: the event goes straight into its log entry (one move of
        // its ~200 bytes, where returning it through `Result`s moved it three times).
        let revision = st.keys.revision() + 1;
        let events: Arc<[Event]> =
            Arc::new([st.keys.put(put.key, put.value, put.lease, revision, 0)]);
        let event = &events[0];
        let previous_lease = event.prev_kv.as_ref().map_or(0, |p| p.lease);
        if previous_lease != 0 || put.lease != 0 {
            st.leases.attach(&event.kv.key, previous_lease, put.lease);
        }
        st.keys.commit(revision, &events);
        let resp = PutResponse {
            header_revision: revision,
            prev_kv: if put.prev_kv {
                event.prev_kv.clone()
            } else {
                None
            },
        };
        let seq = if self.journal.is_none() {
            self.hub.publish(revision, events);
            0
        } else {
            st.push(Record::Txn { revision, events })
        };
        self.auto_compact(&mut st);
        Ok((resp, seq))
    }

    /// Hand a transaction's events to the hub (no journal) or to the pending queue; returns the
    /// sequence number to wait for.
    fn record_events(&self, st: &mut State, revision: Revision, events: Arc<[Event]>) -> u64 {
        if events.is_empty() {
            return st.pending_seq;
        }
        if self.journal.is_none() {
            self.hub.publish(revision, events);
            return 0;
        }
        st.push(Record::Txn { revision, events })
    }

    /// Compact to `retention` revisions behind the newest visible one when twice that much
    /// history is kept. A journaled store persists the compaction with its next batch; should
    /// it be lost in a crash, the store merely keeps more history than it needs.
    fn auto_compact(&self, st: &mut State) {
        let retention = self.auto_compaction_retention;
        if retention <= 0 {
            return;
        }
        let target = self.hub.visible().saturating_sub(retention);
        let kept_from = st.keys.compact_revision().max(1);
        if target.saturating_sub(kept_from) < retention {
            return;
        }
        st.keys.compact(target);
        self.hub.compact(target);
        if self.journal.is_some() {
            st.push(Record::Compact { revision: target });
        }
    }

    /// Start a watch.
    pub(crate) fn watch(&self, req: WatchRequest) -> Result<WatchStream, StoreError> {
        check_range(&req.range)?;
        self.hub.watch(req)
    }

    /// Drop history below `revision`.
    pub(crate) async fn compact(self: &Arc<Self>, revision: Revision) -> Result<(), StoreError> {
        let seq = {
            let mut st = self.state.write();
            st.check_writable()?;
            let compacted = st.keys.compact_revision();
            if revision <= compacted {
                return Err(StoreError::Compacted {
                    requested: revision,
                    compact_revision: compacted,
                });
            }
            let visible = self.hub.visible();
            if revision > visible {
                return Err(StoreError::FutureRevision {
                    requested: revision,
                    current: visible,
                });
            }
            st.keys.compact(revision);
            self.hub.compact(revision);
            if self.journal.is_some() {
                st.push(Record::Compact { revision })
            } else {
                0
            }
        };
        self.sync(seq).await
    }

    /// Grant a lease with id `id`, or (0) the next free id.
    pub(crate) async fn lease_grant(
        self: &Arc<Self>,
        id: LeaseId,
        ttl: Duration,
    ) -> Result<LeaseId, StoreError> {
        let (id, seq) = {
            let mut st = self.state.write();
            st.check_writable()?;
            let id = st.leases.grant(id, ttl, Instant::now())?;
            let next_id = st.leases.next_id();
            let seq = if self.journal.is_some() {
                st.push(Record::LeaseGrant { id, ttl, next_id })
            } else {
                0
            };
            (id, seq)
        };
        self.ensure_lease_task();
        self.lease_wake.notify_one();
        self.sync(seq).await?;
        Ok(id)
    }

    /// Renew a lease.
    pub(crate) fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration, StoreError> {
        self.state.write().leases.keep_alive(id, Instant::now())
    }

    /// Revoke a lease and delete its keys in one transaction.
    pub(crate) async fn lease_revoke(self: &Arc<Self>, id: LeaseId) -> Result<(), StoreError> {
        let seq = {
            let mut st = self.state.write();
            st.check_writable()?;
            let keys = st.leases.remove(id)?;
            let revision = st.keys.revision() + 1;
            let mut events = Vec::with_capacity(keys.len());
            for key in keys {
                if let Some(prev) = st.keys.latest(&key).cloned() {
                    let sub = sub_revision(events.len());
                    events.push(st.keys.delete(prev, revision, sub));
                }
            }
            let events: Arc<[Event]> = events.into();
            if !events.is_empty() {
                st.keys.commit(revision, &events);
            }
            let seq = self.record_events(&mut st, revision, events);
            if self.journal.is_some() {
                st.push(Record::LeaseRevoke { id })
            } else {
                seq
            }
        };
        self.sync(seq).await
    }

    /// A lease's state.
    pub(crate) fn lease_time_to_live(&self, id: LeaseId) -> Result<LeaseStatus, StoreError> {
        let (granted_ttl, remaining, keys) = self.state.read().leases.status(id, Instant::now())?;
        Ok(LeaseStatus {
            id,
            granted_ttl,
            remaining,
            keys,
        })
    }

    /// Every lease's id, ascending.
    pub(crate) fn lease_list(&self) -> Vec<LeaseId> {
        self.state.read().leases.ids()
    }

    /// Revisions and size.
    pub(crate) fn status(&self) -> StoreStatus {
        let st = self.state.read();
        StoreStatus {
            revision: self.hub.visible(),
            compact_revision: st.keys.compact_revision(),
            db_size: self.journal.as_ref().map_or(0, |j| j.journal.size()),
        }
    }

    /// etcd's `HashKV` at `revision` (0: the newest visible one); see [`crate::mvcc::hash`].
    pub(crate) fn hash_kv(&self, revision: Revision) -> Result<KvHash, StoreError> {
        let st = self.state.read();
        let visible = self.hub.visible();
        let compacted = st.keys.compact_revision();
        // etcd reports -1 before the first compaction, and refuses the compact revision itself.
        let compact_revision = if compacted > 0 { compacted } else { -1 };
        if revision > 0 && revision <= compact_revision {
            return Err(StoreError::Compacted {
                requested: revision,
                compact_revision,
            });
        }
        if revision > visible {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current: visible,
            });
        }
        let at = if revision <= 0 { visible } else { revision };
        let mut hasher = KvHasher::new();
        // Entries at or below the compact revision: what compaction kept (the values alive
        // at it), of which etcd counts those still alive at `at`, or all of them when no key
        // is alive at `at`.
        if compacted > 0 {
            let alive_at = if st.keys.any_alive_at(at) {
                at
            } else {
                compacted
            };
            for (main, sub, kv) in st.keys.values_written_by(alive_at, compacted) {
                if sub == UNKNOWN_SUB {
                    return Err(StoreError::Other(format!(
                        "etcd's HashKV cannot be computed at revision {at}: key {:?} (revision \
                         {main}) was restored from a snapshot, which does not keep its position \
                         in its transaction",
                        String::from_utf8_lossy(&kv.key)
                    )));
                }
                hasher.add(&BackendEntry {
                    main,
                    sub,
                    kind: EventKind::Put,
                    kv,
                });
            }
        }
        // Every change after the compact revision, from the event log.
        self.hub
            .for_each_revision(compacted + 1, at, |main, events| {
                for (index, event) in events.iter().enumerate() {
                    hasher.add(&BackendEntry {
                        main,
                        sub: sub_revision(index),
                        kind: event.kind,
                        kv: &event.kv,
                    });
                }
            })?;
        Ok(KvHash {
            hash: hasher.finish(),
            revision: visible,
            compact_revision,
        })
    }

    /// Wait until every record up to `seq` is durable, starting a flush if none is running.
    async fn sync(self: &Arc<Self>, seq: u64) -> Result<(), StoreError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let mut durable = journal.durable.subscribe();
        loop {
            if *durable.borrow_and_update() >= seq {
                return Ok(());
            }
            self.state.read().check_writable()?;
            if !journal.flushing.swap(true, Ordering::AcqRel) {
                self.start_flush();
            }
            if durable.changed().await.is_err() {
                return Err(StoreError::Closed);
            }
        }
    }

    /// Run a flush (the caller just set `flushing`). A flush never runs inside a future that
    /// could be dropped half way, which would leave a batch persisted but never published: on a
    /// multi-threaded runtime the writer persists the first batch itself in `block_in_place`
    /// (saving two thread hand-offs for a lone writer), and any batch after it goes to the
    /// blocking pool, so that no writer is held flushing for others indefinitely.
    fn start_flush(self: &Arc<Self>) {
        use tokio::runtime::{Handle, RuntimeFlavor};
        let multi_threaded =
            Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
        if multi_threaded {
            let more = tokio::task::block_in_place(|| self.flush_batch(0));
            if more.is_none() {
                self.end_flush();
                return;
            }
        }
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut last_batch = 0;
            while let Some(size) = engine.flush_batch(last_batch) {
                last_batch = size;
            }
            engine.end_flush();
        });
    }

    /// Persist the queued records with one fsync and publish them; returns the batch size, or
    /// None when nothing was queued or the store has failed.
    fn flush_batch(&self, last_batch: usize) -> Option<usize> {
        let journal = self.journal.as_ref()?;
        self.gather(last_batch);
        let (batch, last_seq) = {
            let mut st = self.state.write();
            if st.failed.is_some() || st.pending.is_empty() {
                return None;
            }
            (std::mem::take(&mut st.pending), st.pending_seq)
        };
        let size = batch.len();
        let persisted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            journal.journal.persist(&batch)
        }))
        .unwrap_or_else(|_| Err(StoreError::Failed("the disk write panicked".into())));
        if let Err(err) = persisted {
            self.fail(err.to_string());
            return None;
        }
        for record in batch {
            if let Record::Txn { revision, events } = record {
                self.hub.publish(revision, events);
            }
        }
        journal.durable.send_replace(last_seq);
        Some(size)
    }

    /// Let the next writer start a flush, and wake every waiter: those whose records arrived
    /// after the last batch start it, and after a failure all of them see it.
    fn end_flush(&self) {
        if let Some(journal) = &self.journal {
            journal.flushing.store(false, Ordering::Release);
            journal.durable.send_modify(|_| {});
        }
    }

    /// After a batch of `last_batch` records, its writers were just released and are sending
    /// their next writes: wait a moment (at most ~100 µs) for half of them, so that the next
    /// fsync carries them all instead of the first few (which would halve the batch size under
    /// load). A lone writer (`last_batch` of 1) never waits.
    fn gather(&self, last_batch: usize) {
        let wanted = last_batch / 2;
        if wanted < 2 {
            return;
        }
        for _ in 0..5 {
            if self.state.read().pending.len() >= wanted {
                return;
            }
            std::thread::sleep(Duration::from_micros(20));
        }
    }

    fn fail(&self, reason: String) -> StoreError {
        tracing::error!(%reason, "persisting to disk failed; the store refuses writes until reopened");
        self.state.write().failed = Some(reason.clone());
        StoreError::Failed(reason)
    }

    /// Start the task that expires leases, once.
    fn ensure_lease_task(self: &Arc<Self>) {
        if self.lease_task_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak = Arc::downgrade(self);
        let wake = self.lease_wake.clone();
        tokio::spawn(expire_leases(weak, wake));
    }

    /// Start lease expiry if leases were recovered from disk.
    pub(crate) fn start_background(self: &Arc<Self>) {
        if self.state.read().leases.next_deadline().is_some() {
            self.ensure_lease_task();
        }
    }

    /// Stop watches and background tasks.
    pub(crate) fn shutdown(&self) {
        self.hub.close();
        self.lease_wake.notify_one();
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Implement [`Store`](crate::Store) for a type with an `engine: Arc<Engine>` field: the
/// embedded stores differ only in how they build their engine.
macro_rules! store_over_engine {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            async fn range(
                &self,
                req: $crate::types::RangeRequest,
            ) -> Result<$crate::types::RangeResponse, $crate::error::StoreError> {
                self.engine.range(&req)
            }
            async fn txn(
                &self,
                txn: $crate::types::Txn,
            ) -> Result<$crate::types::TxnResponse, $crate::error::StoreError> {
                self.engine.txn(txn).await
            }
            async fn put_one(
                &self,
                req: $crate::types::PutRequest,
            ) -> Result<$crate::types::PutResponse, $crate::error::StoreError> {
                self.engine.put(req).await
            }
            async fn watch(
                &self,
                req: $crate::types::WatchRequest,
            ) -> Result<$crate::watch::WatchStream, $crate::error::StoreError> {
                self.engine.watch(req)
            }
            async fn compact(
                &self,
                revision: $crate::types::Revision,
            ) -> Result<(), $crate::error::StoreError> {
                self.engine.compact(revision).await
            }
            async fn lease_grant(
                &self,
                ttl: std::time::Duration,
            ) -> Result<$crate::types::LeaseId, $crate::error::StoreError> {
                self.engine.lease_grant(0, ttl).await
            }
            async fn lease_grant_id(
                &self,
                id: $crate::types::LeaseId,
                ttl: std::time::Duration,
            ) -> Result<$crate::types::LeaseId, $crate::error::StoreError> {
                self.engine.lease_grant(id, ttl).await
            }
            async fn lease_keep_alive(
                &self,
                id: $crate::types::LeaseId,
            ) -> Result<std::time::Duration, $crate::error::StoreError> {
                self.engine.lease_keep_alive(id)
            }
            async fn lease_revoke(
                &self,
                id: $crate::types::LeaseId,
            ) -> Result<(), $crate::error::StoreError> {
                self.engine.lease_revoke(id).await
            }
            async fn lease_time_to_live(
                &self,
                id: $crate::types::LeaseId,
            ) -> Result<$crate::types::LeaseStatus, $crate::error::StoreError> {
                self.engine.lease_time_to_live(id)
            }
            async fn lease_list(
                &self,
            ) -> Result<Vec<$crate::types::LeaseId>, $crate::error::StoreError> {
                Ok(self.engine.lease_list())
            }
            async fn status(
                &self,
            ) -> Result<$crate::types::StoreStatus, $crate::error::StoreError> {
                Ok(self.engine.status())
            }
            async fn hash_kv(
                &self,
                revision: $crate::types::Revision,
            ) -> Result<$crate::types::KvHash, $crate::error::StoreError> {
                self.engine.hash_kv(revision)
            }
        }
    };
}
pub(crate) use store_over_engine;

/// The sub revision of a transaction's change at `index` (a transaction holds far fewer than
/// `u32::MAX` changes: the limits cap its ops and its request size).
fn sub_revision(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(UNKNOWN_SUB)
}

/// Revoke leases as their deadlines pass, until the engine is gone.
async fn expire_leases(engine: Weak<Engine>, wake: Arc<Notify>) {
    loop {
        let deadline = match engine.upgrade() {
            Some(e) => e.state.read().leases.next_deadline(),
            None => return,
        };
        let notified = wake.notified();
        match deadline {
            Some(deadline) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = notified => continue,
                }
            }
            None => notified.await,
        }
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let expired = engine.state.read().leases.expired(Instant::now());
        for id in expired {
            match engine.lease_revoke(id).await {
                Ok(()) | Err(StoreError::LeaseNotFound(_)) => {}
                Err(err) => {
                    tracing::error!(lease = id, %err, "revoking an expired lease failed");
                    return;
                }
            }
        }
    }
}

impl State {
    fn push(&mut self, record: Record) -> u64 {
        self.pending.push(record);
        self.pending_seq += 1;
        self.pending_seq
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        match &self.failed {
            Some(reason) => Err(StoreError::Failed(reason.clone())),
            None => Ok(()),
        }
    }

    /// Evaluate and apply a transaction (already checked against the limits). Everything that
    /// can fail is checked before the first change, so a failed transaction changes nothing.
    fn apply_txn(&mut self, txn: Txn) -> Result<(TxnResponse, Arc<[Event]>), StoreError> {
        self.check_writable()?;
        let succeeded = txn
            .compares
            .iter()
            .all(|cmp| cmp.holds(self.keys.latest(&cmp.key)));
        let ops = if succeeded { txn.success } else { txn.failure };
        let current = self.keys.revision();
        for op in &ops {
            match op {
                Op::Put(put) if put.lease != 0 && !self.leases.contains(put.lease) => {
                    return Err(StoreError::LeaseNotFound(put.lease));
                }
                Op::Range(range) => {
                    self.keys.readable(range.revision, current)?;
                }
                _ => {}
            }
        }
        let revision = current + 1;
        let mut events = Vec::new();
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            let response = match op {
                Op::Range(req) => {
                    let at = if req.revision > 0 {
                        req.revision
                    } else {
                        revision
                    };
                    OpResponse::Range(self.keys.range(&req, at, 0))
                }
                Op::Put(put) => {
                    let sub = sub_revision(events.len());
                    let event = self.keys.put(put.key, put.value, put.lease, revision, sub);
                    let previous_lease = event.prev_kv.as_ref().map_or(0, |p| p.lease);
                    self.leases.attach(&event.kv.key, previous_lease, put.lease);
                    let prev_kv = if put.prev_kv {
                        event.prev_kv.clone()
                    } else {
                        None
                    };
                    events.push(event);
                    OpResponse::Put { prev_kv }
                }
                Op::Delete(del) => {
                    let doomed = self.keys.live_keys(&del.range);
                    let deleted = doomed.len();
                    let mut prev_kvs = Vec::new();
                    for prev in doomed {
                        self.leases.detach(&prev.key, prev.lease);
                        if del.prev_kv {
                            prev_kvs.push(prev.clone());
                        }
                        let sub = sub_revision(events.len());
                        events.push(self.keys.delete(prev, revision, sub));
                    }
                    OpResponse::Delete { deleted, prev_kvs }
                }
            };
            responses.push(response);
        }
        let header_revision = if events.is_empty() { current } else { revision };
        let events: Arc<[Event]> = events.into();
        if !events.is_empty() {
            self.keys.commit(revision, &events);
        }
        for response in &mut responses {
            if let OpResponse::Range(range) = response {
                range.header_revision = header_revision;
            }
        }
        Ok((
            TxnResponse {
                header_revision,
                succeeded,
                responses,
            },
            events,
        ))
    }
}
