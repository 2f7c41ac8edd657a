//! `orchestra bench store`: put, get, compare-and-swap and watch fan-out against each backend.
//!
//! Every combination of op, clients and backend is one run on a fresh store (a fresh temporary
//! directory for `disk`, a key prefix of its own on the server for `etcd`), printed as one JSON
//! line as soon as it ends. Runs that differ only in the backend are printed next to each
//! other, and each carries its ratios to the run of the first backend (`vs_backend`,
//! `ops_ratio`, `p99_ratio`).
//!
//! # Layout
//! - [`plan`]: the runs an invocation asks for.
//! - [`backend`]: opening a fresh store of each backend.
//! - [`load`]: the closed-loop clients of `put`, `get` and `txn`.
//! - [`watch`]: the watch fan-out benchmark.

pub mod backend;
pub mod load;
pub mod plan;
pub mod watch;

use std::io::Write;
use std::sync::Arc;

use orchestra::store::{Store, StoreError};

use crate::bench::BenchError;
use crate::bench::report::{Comparison, Latency, StoreResult, WatchFigures, round1};
use crate::cli::bench::{Backend, StoreBenchArgs, StoreOp};
use plan::{Plan, Run};

/// Run every benchmark `args` asks for, printing one JSON line per run.
pub async fn run(args: StoreBenchArgs) -> Result<(), BenchError> {
    let plan = Plan::from_args(&args)?;
    if plan.ignores_clients() {
        tracing::info!(
            "--clients does not apply to --op watch (one writer); it runs once per backend"
        );
    }
    let mut baselines: Vec<StoreResult> = Vec::new();
    for run in plan.runs() {
        let first = plan.targets.first() == Some(&run.target);
        let mut result = run_one(&plan, run).await?;
        if first {
            baselines.push(result.clone());
        } else if let Some(base) = baselines
            .iter()
            .find(|b| b.op == result.op && b.clients == result.clients)
        {
            result.vs = Some(Comparison::of(base, &result));
        }
        print_line(&result)?;
    }
    Ok(())
}

/// Print one result line and flush, so that a reader sees each result as it ends.
fn print_line(result: &StoreResult) -> Result<(), BenchError> {
    let line = serde_json::to_string(result).map_err(|e| BenchError::Output(e.into()))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")
        .and_then(|()| stdout.flush())
        .map_err(BenchError::Output)
}

/// One run on a fresh store.
async fn run_one(plan: &Plan, run: Run) -> Result<StoreResult, BenchError> {
    let Run {
        target,
        op,
        clients,
    } = run;
    let backend = target.backend;
    tracing::info!(
        backend = %target.label(),
        op = op.as_str(),
        clients,
        seconds = plan.duration.as_secs_f64(),
        "starting run"
    );
    let opened = backend::open(&target, plan, plan.etcd_connections).await?;
    let store: Arc<dyn Store> = opened.store.clone();
    let mut result = StoreResult {
        bench: "store",
        backend,
        endpoints: (!target.endpoints.is_empty()).then(|| target.endpoints.join(",")),
        connections: (backend == Backend::Etcd).then_some(plan.etcd_connections),
        op,
        clients,
        ops_per_sec: 0.0,
        latency: Latency::ZERO,
        ops: 0,
        seconds: 0.0,
        value_size: plan.value_size,
        keys: plan.keys,
        retain_revisions: plan.retain_revisions,
        conflicts: None,
        watch: None,
        db_size_bytes: None,
        vs: None,
    };
    let config = load::LoadConfig {
        backend,
        clients,
        duration: plan.duration,
        keys: plan.keys,
        value_size: plan.value_size,
        prefix: opened.prefix.clone(),
    };
    match op {
        StoreOp::Put | StoreOp::Get | StoreOp::Txn => {
            let outcome = load::run(store.clone(), op, &config).await?;
            result.ops = outcome.ops;
            result.seconds = round3(outcome.elapsed.as_secs_f64());
            result.ops_per_sec = round1(outcome.ops as f64 / outcome.elapsed.as_secs_f64());
            result.latency = Latency::of(&outcome.latency);
            if op == StoreOp::Txn {
                result.conflicts = Some(outcome.conflicts);
            }
        }
        StoreOp::Watch => {
            let config = watch::WatchConfig {
                backend,
                watchers: plan.watchers,
                rate: plan.rate,
                duration: plan.duration,
                keys: plan.keys,
                value_size: plan.value_size,
                drain_timeout: plan.drain_timeout,
                prefix: opened.prefix.clone(),
            };
            let outcome = watch::run(store.clone(), &config).await?;
            let write = Latency::of(&outcome.write_latency);
            result.ops = outcome.writes;
            result.seconds = round3(outcome.elapsed.as_secs_f64());
            result.ops_per_sec = round1(outcome.writes as f64 / outcome.elapsed.as_secs_f64());
            result.latency = Latency::of(&outcome.delivery_latency);
            result.watch = Some(WatchFigures {
                watchers: plan.watchers,
                rate: plan.rate,
                delivered: outcome.delivered,
                expected: outcome.expected,
                undelivered: outcome.expected.saturating_sub(outcome.delivered),
                drain_ms: u64::try_from(outcome.drain.as_millis()).unwrap_or(u64::MAX),
                write_p50_us: write.p50_us,
                write_p99_us: write.p99_us,
            });
        }
    }
    if backend == Backend::Disk {
        let status = store
            .status()
            .await
            .map_err(|source| store_error(backend, "reading the status", source))?;
        result.db_size_bytes = Some(status.db_size);
    }
    drop(store);
    opened.close(backend).await?;
    Ok(result)
}

/// Round to three decimals.
fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A store error, with what the benchmark was doing.
pub(crate) fn store_error(backend: Backend, what: &'static str, source: StoreError) -> BenchError {
    BenchError::Store {
        what,
        backend: backend.as_str(),
        source,
    }
}
