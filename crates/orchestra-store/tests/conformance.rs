//! The [`Store`] conformance suite (`orchestra_store::testing`) run against every embedded
//! implementation, one test per check, under paused tokio time; plus the checks that need a
//! store configured in a particular way.

#![cfg(feature = "testing")]

use std::time::Duration;

use futures::StreamExt;
use orchestra_store::testing::{self, SuiteConfig, util};
use orchestra_store::{EngineOptions, Limits, MemStore, Store, WatchRequest};

mod mem_store {
    orchestra_store::store_conformance_tests! {
        #[tokio::test(start_paused = true)]
        new_store = || async { orchestra_store::MemStore::new() },
    }
}

#[cfg(feature = "disk")]
mod disk_store {
    use orchestra_store::DiskStore;
    use orchestra_store::testing::Guarded;

    /// A DiskStore in a temporary directory that is removed with it.
    async fn new_store() -> Guarded<DiskStore, tempfile::TempDir> {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let store = DiskStore::open(dir.path())
            .await
            .expect("open a DiskStore in an empty directory");
        Guarded::new(store, dir)
    }

    orchestra_store::store_conformance_tests! {
        #[tokio::test(start_paused = true)]
        new_store = new_store,
    }
}

const SMALL: Limits = Limits {
    max_request_bytes: 4096,
    max_txn_ops: 8,
};

fn small_limits_store() -> MemStore {
    MemStore::with_options(EngineOptions {
        limits: SMALL,
        ..Default::default()
    })
}

/// The whole suite runs against a store with small limits when told them: only the limit
/// check depends on the limits, and it follows the configured ones.
#[tokio::test(start_paused = true)]
async fn mem_store_with_small_limits() {
    use futures::FutureExt;
    let config = SuiteConfig::default().with_limits(SMALL);
    let mut failed = Vec::new();
    for check in testing::checks::<MemStore>() {
        let run = std::panic::AssertUnwindSafe((check.run)(small_limits_store(), config));
        if run.catch_unwind().await.is_err() {
            failed.push(check.name);
        }
    }
    assert!(
        failed.is_empty(),
        "checks failing on a MemStore with small limits: {failed:?}"
    );
}

/// The suite's own limit check fails against a store whose limits are not the ones it was told:
/// it is not a check that passes whatever the store does.
#[tokio::test(start_paused = true)]
async fn request_limits_detects_wrong_limits() {
    let outcome = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
        testing::request_limits(small_limits_store(), Limits::default()),
    ))
    .await;
    assert!(
        outcome.is_err(),
        "a store with 8-operation transactions must fail a check that expects 128"
    );
}

/// `run_conformance` runs every check from a factory (here MemStore's, in one test).
#[tokio::test(start_paused = true)]
async fn run_conformance_on_mem_store() {
    testing::run_conformance(|| async { MemStore::new() }).await;
}

/// With `progress_notify`, an idle watch gets a progress notification every interval (here the
/// interval is MemStore's setting, ten seconds; paused time makes it instant).
#[tokio::test(start_paused = true)]
async fn mem_store_periodic_progress_notifications() {
    let interval = Duration::from_secs(10);
    let store = MemStore::with_options(EngineOptions {
        progress_interval: interval,
        ..Default::default()
    });
    let rev = orchestra_store::StoreExt::put(&store, "/a", "1")
        .await
        .expect("put");
    let mut watch = store
        .watch(WatchRequest::prefix("/b/").with_progress_notify())
        .await
        .expect("watch");
    let started = tokio::time::Instant::now();
    for n in 1..=3u32 {
        let resp = util::next_response(&mut watch, "periodic progress").await;
        assert!(
            resp.events.is_empty(),
            "an idle watch gets only progress notifications, got {:?}",
            resp.events
        );
        assert!(
            resp.header_revision >= rev,
            "the notification covers the last write"
        );
        assert!(
            started.elapsed() >= interval * n,
            "notification {n} came before {n} intervals"
        );
    }
    let plain = store
        .watch(WatchRequest::prefix("/b/"))
        .await
        .expect("watch");
    let nothing = tokio::time::timeout(interval * 3, plain.into_future()).await;
    assert!(
        nothing.is_err(),
        "a watch without progress_notify gets no periodic notifications"
    );
}

/// The suite bites: each check below fails against a MemStore with one deliberate fault.
mod broken_stores {
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use async_trait::async_trait;
    use futures::{FutureExt, Stream};
    use orchestra_store::testing::{self, SuiteConfig};
    use orchestra_store::{
        LeaseId, LeaseStatus, MemStore, RangeRequest, RangeResponse, Revision, Store, StoreError,
        StoreExt, StoreStatus, Txn, TxnResponse, WatchControl, WatchRequest, WatchResponse,
        WatchStream,
    };

    #[derive(Clone, Copy, Debug)]
    enum Fault {
        /// Every watch loses its `n`-th event.
        DropEvent(usize),
        /// Watches never carry prev_kv.
        StripPrevKv,
        /// Watches deliver one event per response, splitting transactions.
        SplitTransactions,
        /// Watches ignore their start revision (always "from now").
        IgnoreStartRevision,
        /// Ranges ignore their limit.
        IgnoreLimit,
        /// Revoking a lease deletes its keys one transaction each.
        RevokeKeyByKey,
        /// Compaction keeps one revision too many.
        CompactOneBelow,
        /// status() reports the revision before the latest.
        LaggingStatus,
    }

    struct Broken {
        inner: MemStore,
        fault: Fault,
    }

    /// A watch stream whose responses pass through the fault, keeping progress requests working.
    struct Faulty {
        inner: Arc<Mutex<WatchStream>>,
        fault: Fault,
        seen: usize,
        queue: std::collections::VecDeque<WatchResponse>,
    }

    struct Control(Arc<Mutex<WatchStream>>);

    impl WatchControl for Control {
        fn request_progress(&self) {
            self.0.lock().expect("lock").request_progress();
        }
    }

    impl Stream for Faulty {
        type Item = Result<WatchResponse, StoreError>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            loop {
                if let Some(resp) = self.queue.pop_front() {
                    return Poll::Ready(Some(Ok(resp)));
                }
                let polled = Pin::new(&mut *self.inner.lock().expect("lock")).poll_next(cx);
                let mut resp = match polled {
                    Poll::Ready(Some(Ok(resp))) => resp,
                    other => return other,
                };
                match self.fault {
                    Fault::DropEvent(n) => {
                        let before = self.seen;
                        self.seen += resp.events.len();
                        if before < n && n <= self.seen {
                            let mut events = resp.events.to_vec();
                            events.remove(n - before - 1);
                            resp.events = events.into();
                            if resp.events.is_empty() {
                                continue;
                            }
                        }
                    }
                    Fault::StripPrevKv => {
                        let mut events = resp.events.to_vec();
                        events.iter_mut().for_each(|e| e.prev_kv = None);
                        resp.events = events.into();
                    }
                    Fault::SplitTransactions if resp.events.len() > 1 => {
                        let header = resp.header_revision;
                        let split = resp.events.iter().map(|e| WatchResponse {
                            header_revision: header,
                            events: Arc::new([e.clone()]),
                        });
                        self.queue.extend(split);
                        continue;
                    }
                    _ => {}
                }
                return Poll::Ready(Some(Ok(resp)));
            }
        }
    }

    #[async_trait]
    impl Store for Broken {
        async fn range(&self, mut req: RangeRequest) -> Result<RangeResponse, StoreError> {
            if let Fault::IgnoreLimit = self.fault {
                req.limit = 0;
            }
            self.inner.range(req).await
        }
        async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
            self.inner.txn(txn).await
        }
        async fn watch(&self, mut req: WatchRequest) -> Result<WatchStream, StoreError> {
            if let Fault::IgnoreStartRevision = self.fault {
                req.start_revision = 0;
            }
            let inner = Arc::new(Mutex::new(self.inner.watch(req).await?));
            let stream = Faulty {
                inner: inner.clone(),
                fault: self.fault,
                seen: 0,
                queue: Default::default(),
            };
            Ok(WatchStream::new(stream, Control(inner)))
        }
        async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
            match self.fault {
                Fault::CompactOneBelow => self.inner.compact(revision - 1).await,
                _ => self.inner.compact(revision).await,
            }
        }
        async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
            self.inner.lease_grant(ttl).await
        }
        async fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration, StoreError> {
            self.inner.lease_keep_alive(id).await
        }
        async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError> {
            if let Fault::RevokeKeyByKey = self.fault {
                for key in self.inner.lease_time_to_live(id).await?.keys {
                    self.inner.delete(key).await?;
                }
            }
            self.inner.lease_revoke(id).await
        }
        async fn lease_time_to_live(&self, id: LeaseId) -> Result<LeaseStatus, StoreError> {
            self.inner.lease_time_to_live(id).await
        }
        async fn lease_list(&self) -> Result<Vec<LeaseId>, StoreError> {
            self.inner.lease_list().await
        }
        async fn status(&self) -> Result<StoreStatus, StoreError> {
            let mut status = self.inner.status().await?;
            if let Fault::LaggingStatus = self.fault {
                status.revision -= 1;
            }
            Ok(status)
        }
    }

    /// Run `check` against a MemStore with `fault` and require it to fail.
    async fn must_fail(check: &str, fault: Fault) {
        let store = Broken {
            inner: MemStore::new(),
            fault,
        };
        let run =
            std::panic::AssertUnwindSafe(testing::run_check(check, store, SuiteConfig::default()));
        let outcome = run.catch_unwind().await;
        assert!(
            outcome.is_err(),
            "check {check} passed against a store with fault {fault:?}"
        );
    }

    /// Without a fault the wrapper passes (so the failures below come from the faults).
    #[tokio::test(start_paused = true)]
    async fn the_wrapper_itself_conforms() {
        for check in [
            "watch_key_and_prefix",
            "watch_prev_kv",
            "watch_txn_atomic",
            "watch_slow_catches_up",
            "watch_guarantees",
        ] {
            let store = Broken {
                inner: MemStore::new(),
                fault: Fault::DropEvent(usize::MAX),
            };
            testing::run_check(check, store, SuiteConfig::default()).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn checks_catch_broken_stores() {
        must_fail("watch_key_and_prefix", Fault::DropEvent(1)).await;
        must_fail("watch_from_past_revision", Fault::DropEvent(3)).await;
        must_fail("watch_slow_catches_up", Fault::DropEvent(1000)).await;
        must_fail("watch_guarantees", Fault::DropEvent(50)).await;
        must_fail("watch_prev_kv", Fault::StripPrevKv).await;
        must_fail("watch_txn_atomic", Fault::SplitTransactions).await;
        must_fail("watch_guarantees", Fault::SplitTransactions).await;
        must_fail("watch_from_past_revision", Fault::IgnoreStartRevision).await;
        must_fail("watch_compacted_start", Fault::IgnoreStartRevision).await;
        must_fail("range_limit_and_count", Fault::IgnoreLimit).await;
        must_fail("lease_revoke_deletes_keys", Fault::RevokeKeyByKey).await;
        must_fail("compaction", Fault::CompactOneBelow).await;
        must_fail("compact_errors", Fault::CompactOneBelow).await;
        must_fail("empty_store", Fault::LaggingStatus).await;
    }
}

/// Regression test for "keep-alive revives an expired lease": a keep-alive after the lease's
/// TTL has passed must fail with `LeaseNotFound` even if the store's expiry task has not run
/// yet (etcd's Renew waits for the revocation and fails the same way), and the lease's keys
/// must then be deleted.
async fn keep_alive_after_the_ttl_fails<S: Store>(store: S) {
    use futures::FutureExt;
    use orchestra_store::{StoreError, StoreExt};
    let ttl = Duration::from_secs(5);
    let id = store.lease_grant(ttl).await.expect("lease_grant");
    store
        .put_with_lease("/k", "v", id)
        .await
        .expect("put with lease");
    let mut watch = store.watch(WatchRequest::key("/k")).await.expect("watch");
    // The first poll of `advance` moves the paused clock past the deadline; dropping it before
    // it yields keeps the store's expiry task from running before the keep-alive.
    let _ = tokio::time::advance(ttl + Duration::from_secs(1)).now_or_never();
    assert_eq!(
        store.lease_keep_alive(id).await,
        Err(StoreError::LeaseNotFound(id)),
        "a keep-alive after the TTL must not revive the lease"
    );
    let resp = util::next_events(&mut watch, "the expired lease's key is deleted").await;
    assert_eq!(
        resp.events.len(),
        1,
        "one delete event, got {:?}",
        resp.events
    );
    assert_eq!(
        store.get("/k").await.expect("get"),
        None,
        "the expired lease's key is gone"
    );
}

#[tokio::test(start_paused = true)]
async fn mem_store_keep_alive_after_the_ttl_fails() {
    keep_alive_after_the_ttl_fails(MemStore::new()).await;
}

#[cfg(feature = "disk")]
#[tokio::test(start_paused = true)]
async fn disk_store_keep_alive_after_the_ttl_fails() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let store = orchestra_store::DiskStore::open(dir.path())
        .await
        .expect("open a DiskStore");
    keep_alive_after_the_ttl_fails(testing::Guarded::new(store, dir)).await;
}

/// Automatic compaction keeps at least the configured history: reads within the retention
/// work, reads further back fail with `Compacted`, and it runs again as writes go on.
#[tokio::test(start_paused = true)]
async fn mem_store_auto_compaction_keeps_the_retention() {
    use orchestra_store::{RangeRequest, StoreError, StoreExt};
    let retention = 10;
    let store = MemStore::with_options(EngineOptions {
        auto_compaction_retention: Some(retention),
        ..Default::default()
    });
    let mut last = 0;
    for i in 0..25 {
        last = store.put("/k", format!("{i}")).await.expect("put");
    }
    let status = store.status().await.expect("status");
    assert!(
        status.compact_revision > 1,
        "25 writes with a retention of 10 compact: {status:?}"
    );
    assert!(
        status.compact_revision <= last - retention as i64,
        "compaction keeps at least the retention: {status:?}, last revision {last}"
    );
    let oldest_kept = last - retention as i64;
    let old = store
        .range(RangeRequest::key("/k").at_revision(oldest_kept))
        .await
        .expect("a read within the retention");
    assert_eq!(old.kvs[0].mod_revision, oldest_kept);
    let err = store
        .range(RangeRequest::key("/k").at_revision(2))
        .await
        .expect_err("a read far behind the retention");
    assert!(matches!(err, StoreError::Compacted { .. }), "{err:?}");

    let before = status.compact_revision;
    for i in 0..25 {
        last = store.put("/k", format!("again {i}")).await.expect("put");
    }
    let after = store.status().await.expect("status").compact_revision;
    assert!(
        after > before && after <= last - retention as i64,
        "compaction follows the writes: {before} -> {after}, last {last}"
    );
}
