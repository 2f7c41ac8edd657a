//! [`Metrics`]: per-controller counters (reconciles, errors, retries, reconcile durations) and
//! the queue's depth and adds, rendered in Prometheus' text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use orchestra_api::reflector::ObjectKey;

use crate::queue::WorkQueue;

/// The upper bounds (seconds) of the reconcile-duration histogram's buckets.
pub const DURATION_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 60.0];

/// One controller's counters. Shared (`Arc`) between its workers and whoever serves them.
#[derive(Debug, Default)]
pub struct Metrics {
    successes: AtomicU64,
    errors: AtomicU64,
    retries: AtomicU64,
    duration_micros: AtomicU64,
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
}

impl Metrics {
    /// Counts one reconcile that took `took` and succeeded or not.
    pub fn record(&self, took: Duration, ok: bool) {
        let counter = if ok { &self.successes } else { &self.errors };
        counter.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.duration_micros.fetch_add(micros, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(DURATION_BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Counts one requeue after a failure.
    pub fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Reconciles that succeeded.
    pub fn successes(&self) -> u64 {
        self.successes.load(Ordering::Relaxed)
    }

    /// Reconciles that failed.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Requeues after failures.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// The metrics of the controller `name` and its `queue` in Prometheus' text format.
    pub fn render(&self, name: &str, queue: &WorkQueue<ObjectKey>) -> String {
        let mut out = String::new();
        let label = format!("controller=\"{}\"", name.replace(['\\', '"', '\n'], "_"));
        let count = self.successes() + self.errors();
        let lines = [
            (
                "gauge",
                "orchestra_controller_queue_depth",
                "Keys ready to reconcile.",
                queue.len() as u64,
            ),
            (
                "counter",
                "orchestra_controller_queue_adds_total",
                "Keys added to the queue.",
                queue.adds(),
            ),
            (
                "counter",
                "orchestra_controller_retries_total",
                "Keys requeued after a failed reconcile.",
                self.retries(),
            ),
            (
                "counter",
                "orchestra_controller_reconcile_errors_total",
                "Reconciles that failed.",
                self.errors(),
            ),
        ];
        for (kind, metric, help, value) in lines {
            let _ = writeln!(
                out,
                "# HELP {metric} {help}\n# TYPE {metric} {kind}\n{metric}{{{label}}} {value}"
            );
        }
        let metric = "orchestra_controller_reconcile_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {metric} How long reconciles took.\n# TYPE {metric} histogram"
        );
        for (bucket, bound) in self.buckets.iter().zip(DURATION_BUCKETS) {
            let _ = writeln!(
                out,
                "{metric}_bucket{{{label},le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "{metric}_bucket{{{label},le=\"+Inf\"}} {count}");
        let sum = self.duration_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{metric}_sum{{{label}}} {sum}\n{metric}_count{{{label}}} {count}"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let metrics = Metrics::default();
        metrics.record(Duration::from_millis(3), true);
        metrics.record(Duration::from_millis(200), false);
        metrics.record_retry();
        let queue = WorkQueue::new();
        queue.add(ObjectKey {
            namespace: "ns".into(),
            name: "a".into(),
        });
        let text = metrics.render("replicaset", &queue);
        for line in [
            "orchestra_controller_queue_depth{controller=\"replicaset\"} 1",
            "orchestra_controller_queue_adds_total{controller=\"replicaset\"} 1",
            "orchestra_controller_retries_total{controller=\"replicaset\"} 1",
            "orchestra_controller_reconcile_errors_total{controller=\"replicaset\"} 1",
            "orchestra_controller_reconcile_duration_seconds_bucket{controller=\"replicaset\",le=\"0.001\"} 0",
            "orchestra_controller_reconcile_duration_seconds_bucket{controller=\"replicaset\",le=\"0.005\"} 1",
            "orchestra_controller_reconcile_duration_seconds_bucket{controller=\"replicaset\",le=\"0.5\"} 2",
            "orchestra_controller_reconcile_duration_seconds_bucket{controller=\"replicaset\",le=\"+Inf\"} 2",
            "orchestra_controller_reconcile_duration_seconds_sum{controller=\"replicaset\"} 0.203",
            "orchestra_controller_reconcile_duration_seconds_count{controller=\"replicaset\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
