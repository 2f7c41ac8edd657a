//! The watch fan-out run: `watchers` watches of one namespace's pods, then one writer
//! creating pods at `rate` per second for the run's duration, each pod carrying the time its
//! write started; each watcher records, per event, the time from that start to its receipt.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::target::Target;
use crate::bench::BenchError;
use crate::bench::report::record;
use crate::bench::shards::LatencyShards;

/// How long watchers wait for the last events after the last write.
const DRAIN: Duration = Duration::from_secs(10);

/// The watch run's own figures.
#[derive(Clone, Debug, Serialize)]
pub struct WatchFigures {
    /// Watchers.
    pub watchers: u32,
    /// The writer's target rate, writes per second.
    pub rate: u32,
    /// Events received, over all watchers.
    pub delivered: u64,
    /// Events that should have been received (writes x watchers).
    pub expected: u64,
}

/// Runs one fan-out; returns the figures, the delivery latencies, the writes and the
/// writing time.
pub async fn run(
    target: &Target,
    watchers: u32,
    rate: u32,
    seconds: Duration,
) -> Result<(WatchFigures, Histogram<u64>, u64, Duration), BenchError> {
    let base = Instant::now();
    let (total_tx, total_rx) = tokio::sync::watch::channel(None::<u64>);
    let shards = Arc::new(LatencyShards::new());
    let mut tasks = JoinSet::new();
    for _ in 0..watchers {
        let mut stream = target.watch("watch").await?;
        let mut total_rx = total_rx.clone();
        let shards = shards.clone();
        tasks.spawn(async move {
            let mut received = 0u64;
            // Armed once the writer is done: how long the last events may take. One timer
            // per watcher, not one per event (a timer per event cost a fifth of the run).
            let mut drain: Option<std::pin::Pin<Box<tokio::time::Sleep>>> = None;
            loop {
                if let Some(total) = *total_rx.borrow_and_update() {
                    if received >= total {
                        break;
                    }
                    drain.get_or_insert_with(|| Box::pin(tokio::time::sleep(DRAIN)));
                }
                let waiting = drain.is_none();
                tokio::select! {
                    event = stream.next() => match event {
                        Some(sent) => {
                            let sent = Duration::from_nanos(sent?);
                            let latency = base.elapsed().saturating_sub(sent);
                            let shard = shards.local()?;
                            let mut shard = shard.lock();
                            record(&mut shard.latency, latency);
                            shard.delivered += 1;
                            received += 1;
                        }
                        None => break,
                    },
                    _ = total_rx.changed(), if waiting => {}
                    () = async { drain.as_mut().expect("armed").await }, if !waiting => break,
                }
            }
            Ok::<_, BenchError>(received)
        });
    }
    let writer = Arc::new(target.clone());
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut writes = 0u64;
    while start.elapsed() < seconds {
        tick.tick().await;
        let sent = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        writer.create("watch", &format!("w-{writes}"), sent).await?;
        writes += 1;
    }
    let elapsed = start.elapsed();
    let _ = total_tx.send(Some(writes));
    let mut delivered = 0;
    while let Some(joined) = tasks.join_next().await {
        delivered += joined.map_err(BenchError::Task)??;
    }
    let latency = shards.merged()?;
    let figures = WatchFigures {
        watchers,
        rate,
        delivered,
        expected: writes * u64::from(watchers),
    };
    Ok((figures, latency, writes, elapsed))
}
