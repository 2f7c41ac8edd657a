//! The result lines of the benchmarks, and latency summaries from HDR histograms.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::bench::BenchError;
use crate::cli::bench::{Backend, StoreOp};

/// The largest latency a histogram tells apart (longer ones are recorded as this).
const MAX_LATENCY_NANOS: u64 = 100 * 1_000_000_000;

/// An empty latency histogram in nanoseconds, 3 significant digits, up to 100 s.
pub fn latency_histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NANOS, 3)
        .map_err(|e| BenchError::Histogram(e.to_string()))
}

/// Record one latency.
pub fn record(hist: &mut Histogram<u64>, latency: Duration) {
    hist.saturating_record(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
}

/// Add `from` into `into`.
pub fn merge(into: &mut Histogram<u64>, from: &Histogram<u64>) -> Result<(), BenchError> {
    into.add(from)
        .map_err(|e| BenchError::Histogram(e.to_string()))
}

/// Percentiles of a latency histogram, in microseconds with one decimal.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Latency {
    /// The median.
    pub p50_us: f64,
    /// The 99th percentile.
    pub p99_us: f64,
    /// The 99.9th percentile.
    pub p999_us: f64,
    /// The largest.
    pub max_us: f64,
    /// The mean.
    pub mean_us: f64,
}

impl Latency {
    /// No latency at all (no operation completed).
    pub const ZERO: Latency = Latency {
        p50_us: 0.0,
        p99_us: 0.0,
        p999_us: 0.0,
        max_us: 0.0,
        mean_us: 0.0,
    };

    /// Summarise a histogram of nanoseconds (all zeros when it is empty).
    pub fn of(hist: &Histogram<u64>) -> Self {
        if hist.is_empty() {
            return Latency::ZERO;
        }
        Latency {
            p50_us: micros(hist.value_at_quantile(0.50) as f64),
            p99_us: micros(hist.value_at_quantile(0.99) as f64),
            p999_us: micros(hist.value_at_quantile(0.999) as f64),
            max_us: micros(hist.max() as f64),
            mean_us: micros(hist.mean()),
        }
    }
}

/// Nanoseconds to microseconds, rounded to one decimal.
fn micros(nanos: f64) -> f64 {
    round1(nanos / 1000.0)
}

/// Round to one decimal.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// One result line of `orchestra bench store`.
#[derive(Clone, Debug, Serialize)]
pub struct StoreResult {
    /// Always `"store"`.
    pub bench: &'static str,
    /// The backend.
    pub backend: Backend,
    /// The etcd endpoints (`etcd` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<String>,
    /// HTTP/2 connections per etcd endpoint (`etcd` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    /// The operation.
    pub op: StoreOp,
    /// Concurrent clients (1 for `watch`: its one writer).
    pub clients: u32,
    /// Completed operations per second (for `watch`: writes per second achieved).
    pub ops_per_sec: f64,
    /// Latency of one operation (for `watch`: from the write's start to a watcher's receipt,
    /// per watcher and event).
    #[serde(flatten)]
    pub latency: Latency,
    /// Completed operations (for `watch`: writes).
    pub ops: u64,
    /// The measured duration in seconds.
    pub seconds: f64,
    /// Bytes per value.
    pub value_size: u32,
    /// Distinct keys.
    pub keys: u32,
    /// Automatic compaction's retention in revisions, when the run used it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retain_revisions: Option<u64>,
    /// Compare-and-swap transactions that found the key changed (`txn` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflicts: Option<u64>,
    /// The watch benchmark's figures (`watch` only).
    #[serde(flatten)]
    pub watch: Option<WatchFigures>,
    /// Bytes on disk after the run (`disk` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_size_bytes: Option<u64>,
    /// How this run compares with the first backend's run of the same op and clients (absent
    /// on the first backend's own runs).
    #[serde(flatten)]
    pub vs: Option<Comparison>,
}

/// One run against another of the same op and clients on the first backend.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Comparison {
    /// The first backend (with its endpoints for etcd), which the ratios divide by.
    pub vs: String,
    /// This run's ops per second over the first backend's (2: twice as many).
    pub ops_ratio: Option<f64>,
    /// This run's p99 latency over the first backend's (0.5: half as long).
    pub p99_ratio: Option<f64>,
}

impl Comparison {
    /// `result` against `base`; a ratio over zero is `None` (`null` in the output).
    pub fn of(base: &StoreResult, result: &StoreResult) -> Self {
        Comparison {
            vs: label(base),
            ops_ratio: ratio(result.ops_per_sec, base.ops_per_sec),
            p99_ratio: ratio(result.latency.p99_us, base.latency.p99_us),
        }
    }
}

/// A result's backend, with its endpoints for etcd (as the plan's target labels).
fn label(result: &StoreResult) -> String {
    match &result.endpoints {
        Some(endpoints) => format!("{}@{endpoints}", result.backend.as_str()),
        None => result.backend.as_str().to_string(),
    }
}

/// `x / base` with two decimals (three below 0.1, so that small ratios stay readable).
pub fn ratio(x: f64, base: f64) -> Option<f64> {
    if base <= 0.0 || !base.is_finite() || !x.is_finite() {
        return None;
    }
    let r = x / base;
    let scale = if r < 0.1 { 1000.0 } else { 100.0 };
    Some((r * scale).round() / scale)
}

/// The extra figures of a watch run.
#[derive(Clone, Debug, Serialize)]
pub struct WatchFigures {
    /// Watchers on the prefix.
    pub watchers: u32,
    /// The writer's target rate in writes per second.
    pub rate: u32,
    /// Events received, over every watcher.
    pub delivered: u64,
    /// Events that should have been received: writes times watchers.
    pub expected: u64,
    /// Events not received before the drain timeout (a slow fan-out, not a lost event: lost
    /// or reordered events fail the run).
    pub undelivered: u64,
    /// From the last write to the last delivery (or the drain timeout), in milliseconds.
    pub drain_ms: u64,
    /// Median latency of the writer's puts.
    pub write_p50_us: f64,
    /// 99th percentile latency of the writer's puts.
    pub write_p99_us: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_nanoseconds_as_microseconds() {
        let mut hist = latency_histogram().unwrap();
        for _ in 0..99 {
            record(&mut hist, Duration::from_micros(10));
        }
        record(&mut hist, Duration::from_millis(5));
        let latency = Latency::of(&hist);
        assert_eq!(latency.p50_us, 10.0);
        assert!((4990.0..=5010.0).contains(&latency.max_us), "{latency:?}");
        assert_eq!(Latency::of(&latency_histogram().unwrap()).p99_us, 0.0);
    }

    #[test]
    fn result_lines_start_with_the_key_fields() {
        let result = StoreResult {
            bench: "store",
            backend: Backend::Disk,
            endpoints: None,
            connections: None,
            op: StoreOp::Put,
            clients: 4,
            ops_per_sec: 1234.5,
            latency: Latency::of(&latency_histogram().unwrap()),
            ops: 10,
            seconds: 1.0,
            value_size: 256,
            keys: 100,
            retain_revisions: None,
            conflicts: None,
            watch: None,
            db_size_bytes: Some(4096),
            vs: None,
        };
        let line = serde_json::to_string(&result).unwrap();
        assert!(
            line.starts_with(
                r#"{"bench":"store","backend":"disk","op":"put","clients":4,"ops_per_sec":1234.5,"p50_us":0.0,"p99_us":0.0"#
            ),
            "{line}"
        );
        assert!(
            !line.contains("conflicts") && !line.contains("watchers") && !line.contains("vs"),
            "{line}"
        );
    }

    fn result(backend: Backend, ops_per_sec: f64, p99_us: f64) -> StoreResult {
        StoreResult {
            bench: "store",
            backend,
            endpoints: (backend == Backend::Etcd).then(|| "http://e:1".to_string()),
            connections: None,
            op: StoreOp::Get,
            clients: 100,
            ops_per_sec,
            latency: Latency {
                p99_us,
                ..Latency::ZERO
            },
            ops: 1,
            seconds: 1.0,
            value_size: 256,
            keys: 100,
            retain_revisions: None,
            conflicts: None,
            watch: None,
            db_size_bytes: None,
            vs: None,
        }
    }

    #[test]
    fn comparisons_divide_by_the_first_backend() {
        let base = result(Backend::Etcd, 10_000.0, 8_000.0);
        let other = result(Backend::Disk, 25_000.0, 2_000.0);
        let vs = Comparison::of(&base, &other);
        assert_eq!(
            vs,
            Comparison {
                vs: "etcd@http://e:1".to_string(),
                ops_ratio: Some(2.5),
                p99_ratio: Some(0.25),
            }
        );
        let slow = result(Backend::Disk, 123.0, 8_000.0);
        assert_eq!(Comparison::of(&base, &slow).ops_ratio, Some(0.012));
        let zero = result(Backend::Memory, 0.0, 0.0);
        assert_eq!(Comparison::of(&zero, &other).ops_ratio, None);
        let line = serde_json::to_string(&StoreResult {
            vs: Some(vs),
            ..other
        })
        .unwrap();
        assert!(
            line.contains(r#""vs":"etcd@http://e:1","ops_ratio":2.5,"p99_ratio":0.25"#),
            "{line}"
        );
    }
}
