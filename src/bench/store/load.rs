//! The closed-loop clients of `put`, `get` and `txn`: each client does one operation at a time
//! until the run's deadline, recording each operation's latency.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use orchestra::store::{CasOutcome, Op, Revision, Store, StoreExt, Txn};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::store_error;
use crate::bench::BenchError;
use crate::bench::report::{latency_histogram, merge, record};
use crate::cli::bench::{Backend, StoreOp};

/// The most puts in one pre-population transaction (the store's default `max_txn_ops`).
const POPULATE_BATCH_OPS: usize = 128;
/// The most bytes in one pre-population transaction (below the default 1.5 MiB request limit).
const POPULATE_BATCH_BYTES: usize = 1024 * 1024;

/// The settings of one load run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The backend (for error messages).
    pub backend: Backend,
    /// Concurrent clients.
    pub clients: u32,
    /// How long the clients run.
    pub duration: Duration,
    /// Distinct keys.
    pub keys: u32,
    /// Bytes per value.
    pub value_size: u32,
    /// The run's key prefix (ends with `/`): its keys are `{prefix}load/{index:08}`.
    pub prefix: String,
}

/// What a load run measured.
#[derive(Debug)]
pub struct LoadOutcome {
    /// Completed operations.
    pub ops: u64,
    /// Compare-and-swap transactions that found the key changed.
    pub conflicts: u64,
    /// Latency of every operation, in nanoseconds.
    pub latency: Histogram<u64>,
    /// From the start of the clients to the end of the last one.
    pub elapsed: Duration,
}

/// The keys of a benchmark's key space, `{prefix}{index:08}`.
pub fn key_space(prefix: &str, keys: u32) -> Arc<[Bytes]> {
    (0..keys)
        .map(|i| Bytes::from(format!("{prefix}{i:08}")))
        .collect()
}

/// A value of `size` random bytes.
pub fn random_value(size: u32, seed: u64) -> Bytes {
    let mut value = vec![0u8; size as usize];
    SmallRng::seed_from_u64(seed).fill(&mut value[..]);
    Bytes::from(value)
}

/// Run `op` with `config.clients` clients for `config.duration` on `store`.
pub async fn run(
    store: Arc<dyn Store>,
    op: StoreOp,
    config: &LoadConfig,
) -> Result<LoadOutcome, BenchError> {
    let keys = key_space(&format!("{}load/", config.prefix), config.keys);
    let value = random_value(config.value_size, 0);
    let backend = config.backend;
    let rng = |client: u32| SmallRng::seed_from_u64(u64::from(client) + 1);
    match op {
        StoreOp::Put => {
            let workers = (0..config.clients)
                .map(|c| PutWorker {
                    store: store.clone(),
                    keys: keys.clone(),
                    value: value.clone(),
                    rng: rng(c),
                    backend,
                })
                .collect();
            drive(workers, config.duration).await
        }
        StoreOp::Get => {
            populate(store.as_ref(), backend, &keys, &value).await?;
            let workers = (0..config.clients)
                .map(|c| GetWorker {
                    store: store.clone(),
                    keys: keys.clone(),
                    rng: rng(c),
                    backend,
                })
                .collect();
            drive(workers, config.duration).await
        }
        StoreOp::Txn => {
            let revisions: Arc<[AtomicI64]> = populate(store.as_ref(), backend, &keys, &value)
                .await?
                .into_iter()
                .map(AtomicI64::new)
                .collect();
            let workers = (0..config.clients)
                .map(|c| TxnWorker {
                    store: store.clone(),
                    keys: keys.clone(),
                    value: value.clone(),
                    revisions: revisions.clone(),
                    rng: rng(c),
                    backend,
                })
                .collect();
            drive(workers, config.duration).await
        }
        StoreOp::Watch => Err(BenchError::Contract {
            backend: backend.as_str(),
            detail: "the watch benchmark is not a load run (a bug in the benchmark)".into(),
        }),
    }
}

/// Write every key once, in batched transactions; returns each key's mod revision.
pub async fn populate(
    store: &dyn Store,
    backend: Backend,
    keys: &[Bytes],
    value: &Bytes,
) -> Result<Vec<Revision>, BenchError> {
    let started = Instant::now();
    let per_key = keys.first().map_or(0, Bytes::len) + value.len();
    let batch = POPULATE_BATCH_OPS
        .min(POPULATE_BATCH_BYTES / per_key.max(1))
        .max(1);
    let mut revisions = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(batch) {
        let txn = Txn::new().and_then(chunk.iter().map(|key| Op::put(key.clone(), value.clone())));
        let resp = store
            .txn(txn)
            .await
            .map_err(|e| store_error(backend, "pre-populating the keys", e))?;
        revisions.extend(std::iter::repeat_n(resp.header_revision, chunk.len()));
    }
    tracing::info!(
        keys = keys.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "pre-populated the key space"
    );
    Ok(revisions)
}

/// What one operation found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// It did what it meant to.
    Done,
    /// A compare-and-swap found the key changed by another client.
    Conflict,
}

/// One client: one operation per `step`.
pub trait Worker: Send + 'static {
    /// Do one operation.
    fn step(&mut self) -> impl Future<Output = Result<Step, BenchError>> + Send;
}

/// Run `workers` concurrently until `duration` has passed; merge what they measured.
pub async fn drive<W: Worker>(
    workers: Vec<W>,
    duration: Duration,
) -> Result<LoadOutcome, BenchError> {
    let mut histograms = Vec::with_capacity(workers.len());
    for _ in 0..workers.len() {
        histograms.push(latency_histogram()?);
    }
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = JoinSet::new();
    for (mut worker, mut hist) in workers.into_iter().zip(histograms) {
        tasks.spawn(async move {
            let (mut ops, mut conflicts) = (0u64, 0u64);
            // One clock read per operation: its end is the next one's start. A clock read
            // costs as much as a twentieth of an in-memory put, so reading it twice made the
            // load generator a visible part of what it measured; the latency now also counts
            // the few nanoseconds of bookkeeping between two operations.
            let mut began = Instant::now();
            while began < deadline {
                let step = worker.step().await?;
                let done = Instant::now();
                record(&mut hist, done - began);
                began = done;
                ops += 1;
                if step == Step::Conflict {
                    conflicts += 1;
                }
            }
            Ok::<_, BenchError>((ops, conflicts, hist))
        });
    }
    let mut outcome = LoadOutcome {
        ops: 0,
        conflicts: 0,
        latency: latency_histogram()?,
        elapsed: Duration::ZERO,
    };
    while let Some(joined) = tasks.join_next().await {
        let (ops, conflicts, hist) = joined.map_err(BenchError::Task)??;
        outcome.ops += ops;
        outcome.conflicts += conflicts;
        merge(&mut outcome.latency, &hist)?;
    }
    outcome.elapsed = start.elapsed();
    Ok(outcome)
}

/// A random index below `len` (which is at least 1: `--keys` is).
fn pick(rng: &mut SmallRng, len: usize) -> usize {
    rng.random_range(0..len.max(1))
}

/// Unconditional puts of random keys.
struct PutWorker {
    store: Arc<dyn Store>,
    keys: Arc<[Bytes]>,
    value: Bytes,
    rng: SmallRng,
    backend: Backend,
}

impl Worker for PutWorker {
    async fn step(&mut self) -> Result<Step, BenchError> {
        let key = self.keys[pick(&mut self.rng, self.keys.len())].clone();
        self.store
            .put(key, self.value.clone())
            .await
            .map_err(|e| store_error(self.backend, "put", e))?;
        Ok(Step::Done)
    }
}

/// Gets of random keys of a populated key space.
struct GetWorker {
    store: Arc<dyn Store>,
    keys: Arc<[Bytes]>,
    rng: SmallRng,
    backend: Backend,
}

impl Worker for GetWorker {
    async fn step(&mut self) -> Result<Step, BenchError> {
        let key = self.keys[pick(&mut self.rng, self.keys.len())].clone();
        match self
            .store
            .get(key.clone())
            .await
            .map_err(|e| store_error(self.backend, "get", e))?
        {
            Some(_) => Ok(Step::Done),
            None => Err(missing(self.backend, &key)),
        }
    }
}

/// Compare-and-swap updates of random keys, each guarded by the key's last known mod revision.
struct TxnWorker {
    store: Arc<dyn Store>,
    keys: Arc<[Bytes]>,
    value: Bytes,
    /// Each key's last known mod revision, shared by every client (as API servers share a
    /// watch cache); raised by every write and every conflict. A conflict means another
    /// client wrote the key between this client's read of the cache and its transaction.
    revisions: Arc<[AtomicI64]>,
    rng: SmallRng,
    backend: Backend,
}

impl Worker for TxnWorker {
    async fn step(&mut self) -> Result<Step, BenchError> {
        let index = pick(&mut self.rng, self.keys.len());
        let key = self.keys[index].clone();
        let expected = self
            .revisions
            .get(index)
            .map_or(0, |r| r.load(Ordering::Acquire));
        let outcome = self
            .store
            .update_if(key.clone(), self.value.clone(), expected)
            .await
            .map_err(|e| store_error(self.backend, "compare-and-swap txn", e))?;
        let (step, revision) = match outcome {
            CasOutcome::Written(revision) => (Step::Done, revision),
            CasOutcome::Conflict(Some(current)) => (Step::Conflict, current.mod_revision),
            CasOutcome::Conflict(None) => return Err(missing(self.backend, &key)),
        };
        if let Some(slot) = self.revisions.get(index) {
            slot.fetch_max(revision, Ordering::AcqRel);
        }
        Ok(step)
    }
}

/// A pre-populated key that the store no longer has.
fn missing(backend: Backend, key: &[u8]) -> BenchError {
    BenchError::Contract {
        backend: backend.as_str(),
        detail: format!(
            "pre-populated key {} is missing",
            String::from_utf8_lossy(key)
        ),
    }
}

#[cfg(test)]
mod tests {
    use orchestra::store::MemStore;

    use super::*;

    fn config(clients: u32) -> LoadConfig {
        LoadConfig {
            backend: Backend::Memory,
            clients,
            duration: Duration::from_millis(50),
            keys: 20,
            value_size: 32,
            prefix: "/bench/".to_string(),
        }
    }

    #[tokio::test]
    async fn every_load_op_completes_operations_on_the_memory_store() {
        for op in [StoreOp::Put, StoreOp::Get, StoreOp::Txn] {
            let outcome = run(Arc::new(MemStore::new()), op, &config(3))
                .await
                .unwrap();
            assert!(outcome.ops > 0, "{op:?}");
            assert_eq!(outcome.latency.len(), outcome.ops, "{op:?}");
        }
    }

    #[tokio::test]
    async fn a_single_txn_client_never_conflicts() {
        let outcome = run(Arc::new(MemStore::new()), StoreOp::Txn, &config(1))
            .await
            .unwrap();
        assert_eq!(outcome.conflicts, 0);
    }

    #[tokio::test]
    async fn populate_batches_and_returns_one_revision_per_key() {
        let store = MemStore::new();
        let keys = key_space("/k/", 300);
        let revisions = populate(&store, Backend::Memory, &keys, &random_value(16, 1))
            .await
            .unwrap();
        assert_eq!(revisions.len(), 300);
        // 128 puts per transaction: three transactions, revisions 2, 3 and 4.
        assert_eq!((revisions[0], revisions[128], revisions[299]), (2, 3, 4));
        assert_eq!(
            store
                .get(keys[299].clone())
                .await
                .unwrap()
                .unwrap()
                .mod_revision,
            4
        );
    }
}
