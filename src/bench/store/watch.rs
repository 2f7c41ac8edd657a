//! The watch fan-out benchmark: `watchers` watches on one prefix, one writer putting at `rate`
//! writes per second. Each value carries the time its write started (nanoseconds since the
//! run's clock started) and a sequence number, so each watcher measures, per event, the time
//! from the write's start to its receipt, and checks that it sees every write once, in order.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use hdrhistogram::Histogram;
use orchestra::store::{Store, StoreExt, WatchRequest, WatchStream};
use parking_lot::Mutex;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::load::key_space;
use super::store_error;
use crate::bench::BenchError;
use crate::bench::report::{latency_histogram, record};
use crate::bench::shards::LatencyShards;
use crate::cli::bench::Backend;

/// How often the drain loop checks whether every event has arrived.
const DRAIN_POLL: Duration = Duration::from_millis(10);
/// The header every value starts with: the write's start time and its sequence number.
const HEADER: usize = 16;

/// The settings of one watch run.
#[derive(Clone, Debug)]
pub struct WatchConfig {
    /// The backend (for error messages).
    pub backend: Backend,
    /// Watchers on the prefix.
    pub watchers: u32,
    /// Writes per second.
    pub rate: u32,
    /// How long the writer writes.
    pub duration: Duration,
    /// Distinct keys the writer cycles through.
    pub keys: u32,
    /// Bytes per value (at least 16).
    pub value_size: u32,
    /// How long to wait for deliveries after the last write.
    pub drain_timeout: Duration,
    /// The run's key prefix (ends with `/`): every watcher watches `{prefix}watch/`, and the
    /// writer writes under it.
    pub prefix: String,
}

impl WatchConfig {
    /// The prefix the watchers watch and the writer writes under.
    fn watched(&self) -> String {
        format!("{}watch/", self.prefix)
    }
}

/// What a watch run measured.
#[derive(Debug)]
pub struct WatchOutcome {
    /// Writes made.
    pub writes: u64,
    /// How long the writer wrote.
    pub elapsed: Duration,
    /// Latency of the writer's puts.
    pub write_latency: Histogram<u64>,
    /// From a write's start to a watcher's receipt, per watcher and event.
    pub delivery_latency: Histogram<u64>,
    /// Events received over all watchers.
    pub delivered: u64,
    /// Writes times watchers.
    pub expected: u64,
    /// From the last write to the last delivery (or the drain timeout).
    pub drain: Duration,
}

/// What the watchers share: the clock, the shards, and the first fault seen.
struct Shared {
    clock: std::time::Instant,
    shards: LatencyShards,
    faults: AtomicU64,
    first_fault: Mutex<Option<String>>,
}

impl Shared {
    fn now_nanos(&self) -> u64 {
        u64::try_from(self.clock.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn fault(&self, detail: String) {
        if self.faults.fetch_add(1, Ordering::AcqRel) == 0 {
            *self.first_fault.lock() = Some(detail);
        }
    }
}

/// Run the watch benchmark on `store`.
pub async fn run(store: Arc<dyn Store>, config: &WatchConfig) -> Result<WatchOutcome, BenchError> {
    let backend = config.backend;
    let shared = Arc::new(Shared {
        clock: std::time::Instant::now(),
        shards: LatencyShards::new(),
        faults: AtomicU64::new(0),
        first_fault: Mutex::new(None),
    });

    let started = Instant::now();
    let mut watchers = JoinSet::new();
    for id in 0..config.watchers as usize {
        let stream = store
            .watch(WatchRequest::prefix(config.watched()))
            .await
            .map_err(|e| store_error(backend, "starting a watch", e))?;
        watchers.spawn(watch_loop(id, stream, shared.clone()));
    }
    tracing::info!(
        watchers = config.watchers,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "watchers started"
    );

    let (writes, elapsed, write_latency) = write_loop(store.as_ref(), config, &shared).await?;
    let expected = writes * u64::from(config.watchers);

    let last_write = Instant::now();
    let drain_deadline = last_write + config.drain_timeout;
    while shared.shards.delivered() < expected
        && shared.faults.load(Ordering::Acquire) == 0
        && Instant::now() < drain_deadline
    {
        tokio::time::sleep(DRAIN_POLL).await;
    }
    let drain = last_write.elapsed();
    watchers.abort_all();
    while let Some(joined) = watchers.join_next().await {
        if let Err(err) = joined
            && err.is_panic()
        {
            return Err(BenchError::Task(err));
        }
    }

    let faults = shared.faults.load(Ordering::Acquire);
    if faults > 0 {
        let first = shared.first_fault.lock().take().unwrap_or_default();
        return Err(BenchError::Contract {
            backend: backend.as_str(),
            detail: format!("{faults} watch faults; the first: {first}"),
        });
    }
    let delivered = shared.shards.delivered();
    if delivered < expected {
        tracing::warn!(
            delivered,
            expected,
            drain_timeout_s = config.drain_timeout.as_secs_f64(),
            "not every event was delivered before the drain timeout"
        );
    }
    let delivery_latency = shared.shards.merged()?;
    Ok(WatchOutcome {
        writes,
        elapsed,
        write_latency,
        delivery_latency,
        delivered,
        expected,
        drain,
    })
}

/// The writer: puts at `config.rate` writes per second for `config.duration`, catching up
/// without pause when a write took longer than its slot, and stopping at the deadline even
/// when behind (so a slow store shows as fewer writes, not a longer run). Returns the writes,
/// the time spent, and the puts' latency.
async fn write_loop(
    store: &dyn Store,
    config: &WatchConfig,
    shared: &Shared,
) -> Result<(u64, Duration, Histogram<u64>), BenchError> {
    let keys = key_space(&config.watched(), config.keys);
    let interval = 1.0 / f64::from(config.rate);
    let mut latency = latency_histogram()?;
    let start = Instant::now();
    let deadline = start + config.duration;
    let mut seq: u64 = 0;
    loop {
        let due = start + Duration::from_secs_f64(interval * seq as f64);
        if due >= deadline || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep_until(due).await;
        let key = keys[(seq % keys.len() as u64) as usize].clone();
        let began = Instant::now();
        let value = encode(shared.now_nanos(), seq, config.value_size as usize);
        store
            .put(key, value)
            .await
            .map_err(|e| store_error(config.backend, "the watch writer's put", e))?;
        record(&mut latency, began.elapsed());
        seq += 1;
    }
    Ok((seq, start.elapsed(), latency))
}

/// One watcher: receive events until aborted, recording latencies and checking the order.
async fn watch_loop(id: usize, mut stream: WatchStream, shared: Arc<Shared>) {
    let mut next_seq: u64 = 0;
    while let Some(item) = stream.next().await {
        let resp = match item {
            Ok(resp) => resp,
            Err(err) => {
                shared.fault(format!("watcher {id} ended with an error: {err}"));
                return;
            }
        };
        let now = shared.now_nanos();
        let shard = match shared.shards.local() {
            Ok(shard) => shard,
            Err(err) => {
                shared.fault(format!("watcher {id} could not record: {err}"));
                return;
            }
        };
        let mut group = shard.lock();
        for event in resp.events.iter() {
            let Some((sent, seq)) = decode(&event.kv.value) else {
                shared.fault(format!(
                    "watcher {id} got an event without a timestamp header"
                ));
                return;
            };
            if seq != next_seq {
                shared.fault(format!(
                    "watcher {id} expected write {next_seq} and got write {seq}"
                ));
                return;
            }
            next_seq = seq + 1;
            group.latency.saturating_record(now.saturating_sub(sent));
            group.delivered += 1;
        }
    }
}

/// A value: the write's start time and sequence number, then zeros up to `size` bytes.
fn encode(sent_nanos: u64, seq: u64, size: usize) -> Bytes {
    let mut value = BytesMut::with_capacity(size.max(HEADER));
    value.put_u64(sent_nanos);
    value.put_u64(seq);
    value.resize(size.max(HEADER), 0);
    value.freeze()
}

/// The start time and sequence number of a value made by [`encode`].
fn decode(value: &[u8]) -> Option<(u64, u64)> {
    let sent = u64::from_be_bytes(value.get(0..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(value.get(8..16)?.try_into().ok()?);
    Some((sent, seq))
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use orchestra::store::{
        LeaseId, LeaseStatus, MemStore, RangeRequest, RangeResponse, Revision, StoreError,
        StoreStatus, Txn, TxnResponse,
    };

    use super::*;

    /// A store whose writes take `delay` (on tokio's clock).
    struct SlowStore {
        inner: MemStore,
        delay: Duration,
    }

    #[async_trait]
    impl Store for SlowStore {
        async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
            self.inner.range(req).await
        }
        async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
            tokio::time::sleep(self.delay).await;
            self.inner.txn(txn).await
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

    /// Regression: a writer slower than `--rate` kept writing until it had made rate x seconds
    /// writes, so a 5 s run of the disk backend lasted 54 s.
    #[tokio::test(start_paused = true)]
    async fn a_slow_writer_stops_at_the_deadline() {
        let store = SlowStore {
            inner: MemStore::new(),
            delay: Duration::from_millis(10),
        };
        let config = WatchConfig {
            backend: Backend::Memory,
            watchers: 2,
            rate: 1_000,
            duration: Duration::from_millis(100),
            keys: 10,
            value_size: 16,
            drain_timeout: Duration::from_secs(10),
            prefix: "/bench/".to_string(),
        };
        let outcome = run(Arc::new(store), &config).await.unwrap();
        // 100 ms of 10 ms writes: about 10, far from the 100 the rate asks for.
        assert!(
            (9..=11).contains(&outcome.writes),
            "{} writes",
            outcome.writes
        );
        assert!(
            outcome.elapsed < Duration::from_millis(120),
            "{:?}",
            outcome.elapsed
        );
        assert_eq!(outcome.delivered, outcome.writes * 2);
    }

    #[test]
    fn values_round_trip_their_header() {
        let value = encode(123_456, 7, 64);
        assert_eq!(value.len(), 64);
        assert_eq!(decode(&value), Some((123_456, 7)));
        assert_eq!(decode(b"short"), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_watcher_gets_every_write_in_order() {
        let config = WatchConfig {
            backend: Backend::Memory,
            watchers: 20,
            rate: 500,
            duration: Duration::from_millis(100),
            keys: 10,
            value_size: 16,
            drain_timeout: Duration::from_secs(10),
            prefix: "/bench/".to_string(),
        };
        let outcome = run(Arc::new(MemStore::new()), &config).await.unwrap();
        assert!(outcome.writes > 0);
        assert_eq!(outcome.expected, outcome.writes * 20);
        assert_eq!(outcome.delivered, outcome.expected);
        assert_eq!(outcome.delivery_latency.len(), outcome.expected);
    }
}
