//! Latency histograms shared by thousands of watcher tasks: one shard per thread.
//!
//! A fan-out run records millions of deliveries per second from thousands of tasks. One
//! histogram per task is ~230 KB each (hundreds of MB for 1,000 watchers), and recording into
//! dozens of them missed the cache on nearly every event (a quarter of a run's CPU); one shared
//! histogram would make its lock the busiest cache line of the run. Each thread records into a
//! shard of its own instead, which stays warm and whose lock is uncontended; the shards are
//! merged once at the end.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use parking_lot::Mutex;

use crate::bench::BenchError;
use crate::bench::report::{latency_histogram, merge};

/// Numbers each set of shards, so that a thread's shard of an earlier run is not reused.
static RUN_IDS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// The shard this thread records into: (run id, shard).
    static LOCAL_SHARD: RefCell<Option<(u64, Arc<Mutex<Shard>>)>> = const { RefCell::new(None) };
}

/// What the tasks running on one thread recorded.
pub struct Shard {
    /// Latencies in nanoseconds.
    pub latency: Histogram<u64>,
    /// Deliveries counted.
    pub delivered: u64,
}

/// The shards of one run.
pub struct LatencyShards {
    run: u64,
    shards: Mutex<Vec<Arc<Mutex<Shard>>>>,
}

impl Default for LatencyShards {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyShards {
    /// Empty shards for a new run.
    pub fn new() -> Self {
        LatencyShards {
            run: RUN_IDS.fetch_add(1, Ordering::Relaxed),
            shards: Mutex::new(Vec::new()),
        }
    }

    /// The calling thread's shard for this run, created on the thread's first use. Lock it
    /// once for a batch of deliveries (a task may move to another thread between polls, so
    /// look it up again after every await).
    pub fn local(&self) -> Result<Arc<Mutex<Shard>>, BenchError> {
        LOCAL_SHARD.with(|local| {
            let mut local = local.borrow_mut();
            if let Some((run, shard)) = local.as_ref()
                && *run == self.run
            {
                return Ok(shard.clone());
            }
            let shard = Arc::new(Mutex::new(Shard {
                latency: latency_histogram()?,
                delivered: 0,
            }));
            self.shards.lock().push(shard.clone());
            *local = Some((self.run, shard.clone()));
            Ok(shard)
        })
    }

    /// Deliveries counted so far, over every shard.
    pub fn delivered(&self) -> u64 {
        self.shards
            .lock()
            .iter()
            .map(|shard| shard.lock().delivered)
            .sum()
    }

    /// Every shard's latencies in one histogram.
    pub fn merged(&self) -> Result<Histogram<u64>, BenchError> {
        let mut all = latency_histogram()?;
        for shard in self.shards.lock().iter() {
            merge(&mut all, &shard.lock().latency)?;
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_records_into_its_own_shard_of_each_run() {
        let first = LatencyShards::new();
        let second = LatencyShards::new();
        for latency in [10, 20] {
            let shard = first.local().unwrap();
            let mut shard = shard.lock();
            shard.latency.saturating_record(latency);
            shard.delivered += 1;
        }
        second.local().unwrap().lock().delivered += 5;
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let shard = first.local().unwrap();
                let mut shard = shard.lock();
                shard.latency.saturating_record(30);
                shard.delivered += 1;
            });
        });
        assert_eq!(first.shards.lock().len(), 2);
        assert_eq!(first.delivered(), 3);
        assert_eq!(second.delivered(), 5);
        let merged = first.merged().unwrap();
        assert_eq!(merged.len(), 3);
        assert_eq!(merged.max(), 30);
    }
}
