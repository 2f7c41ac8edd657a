//! `orchestra bench api`: creates, gets, lists and watch fan-out of pods through three paths
//! over the same kind of store: the bare store (the same JSON at the same keys, the baseline),
//! `LocalClient` (the registry in process) and `RemoteClient` (gRPC over loopback to an API
//! server in this process). Each run prints one JSON line; `store_ratio` is the bare store's
//! throughput over the path's (the API's overhead factor).
//!
//! # Layout
//! - `target`: the three paths behind one set of operations.
//! - `watch`: the watch fan-out run (one writer at a fixed rate, many watchers).

mod target;
mod watch;

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::bench::BenchError;
use crate::bench::report::{Latency, latency_histogram, merge, record, round1};
use crate::cli::bench::{ApiBenchArgs, ApiOp, ApiPath, ApiStore};

use target::Target;

/// One result line.
#[derive(Clone, Debug, Serialize)]
pub struct ApiResult {
    /// Always `"api"`.
    pub bench: &'static str,
    /// The path.
    pub path: ApiPath,
    /// The store underneath.
    pub store: ApiStore,
    /// The operation.
    pub op: ApiOp,
    /// Concurrent clients (1 for `watch`: its writer).
    pub clients: u32,
    /// Completed operations per second (for `watch`: writes per second achieved).
    pub ops_per_sec: f64,
    /// The bare store's ops/s over this path's, when the store ran the same op and clients.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_ratio: Option<f64>,
    /// Latency of one operation (for `watch`: from a write's start to a watcher's receipt).
    #[serde(flatten)]
    pub latency: Latency,
    /// Completed operations (for `watch`: writes).
    pub ops: u64,
    /// The measured duration in seconds.
    pub seconds: f64,
    /// The watch run's figures.
    #[serde(flatten)]
    pub watch: Option<watch::WatchFigures>,
}

/// The settings after `--smoke`.
#[derive(Clone, Debug)]
struct Plan {
    seconds: Duration,
    clients: Vec<u32>,
    objects: u32,
    list_size: u32,
    watchers: u32,
    rate: u32,
}

impl Plan {
    fn of(args: &ApiBenchArgs) -> Self {
        let mut plan = Plan {
            seconds: args.seconds,
            clients: args.clients.clone(),
            objects: args.objects,
            list_size: args.list_size,
            watchers: args.watchers,
            rate: args.rate,
        };
        if args.smoke {
            plan.seconds = plan.seconds.min(Duration::from_millis(200));
            plan.clients = plan.clients.iter().map(|c| (*c).min(4)).collect();
            plan.clients.dedup();
            plan.objects = plan.objects.min(100);
            plan.list_size = plan.list_size.min(100);
            plan.watchers = plan.watchers.min(4);
            plan.rate = plan.rate.min(50);
        }
        plan
    }
}

/// Runs every combination and prints the result lines.
pub async fn run(args: ApiBenchArgs) -> Result<(), BenchError> {
    let plan = Plan::of(&args);
    let mut stdout = std::io::stdout().lock();
    for op in &args.op {
        let clients: &[u32] = if *op == ApiOp::Watch {
            &[1]
        } else {
            &plan.clients
        };
        for &clients in clients {
            let mut store_ops: Option<f64> = None;
            let mut lines = HashMap::new();
            for &path in &args.path {
                let target = Target::start(path, args.store, args.connections).await?;
                let mut result = run_one(&target, *op, clients, &plan).await?;
                target.stop().await;
                if path == ApiPath::Store {
                    store_ops = Some(result.ops_per_sec);
                }
                result.path = path;
                lines.insert(path, result);
            }
            for path in &args.path {
                let Some(mut result) = lines.remove(path) else {
                    continue;
                };
                result.store_ratio = store_ops
                    .filter(|_| *path != ApiPath::Store && result.ops_per_sec > 0.0)
                    .map(|store| (store / result.ops_per_sec * 100.0).round() / 100.0);
                let line = serde_json::to_string(&result).map_err(|e| BenchError::Api {
                    what: "encoding a result".into(),
                    source: Box::new(e),
                })?;
                writeln!(stdout, "{line}").map_err(BenchError::Output)?;
            }
        }
    }
    Ok(())
}

/// One run of `op` with `clients` clients on a fresh target.
async fn run_one(
    target: &Target,
    op: ApiOp,
    clients: u32,
    plan: &Plan,
) -> Result<ApiResult, BenchError> {
    if op == ApiOp::Watch {
        let (figures, latency, ops, elapsed) =
            watch::run(target, plan.watchers, plan.rate, plan.seconds).await?;
        return Ok(result(target, op, 1, ops, elapsed, &latency, Some(figures)));
    }
    match op {
        ApiOp::Get => target.populate("bench", plan.objects).await?,
        ApiOp::List => target.populate("list", plan.list_size).await?,
        _ => {}
    }
    let deadline = Instant::now() + plan.seconds;
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let target = target.clone();
        let objects = plan.objects;
        tasks.spawn(async move {
            let mut hist = latency_histogram()?;
            let mut ops = 0u64;
            let mut seq = 0u64;
            while Instant::now() < deadline {
                let began = Instant::now();
                match op {
                    ApiOp::Create => {
                        target
                            .create("bench", &format!("c{client}-{seq}"), 0)
                            .await?
                    }
                    ApiOp::Get => {
                        let index = rand::random_range(0..objects);
                        target.get("bench", &target::pod_name(index)).await?;
                    }
                    ApiOp::List => target.list("list").await?,
                    ApiOp::Watch => unreachable!("watch runs apart"),
                }
                record(&mut hist, began.elapsed());
                ops += 1;
                seq += 1;
            }
            Ok::<_, BenchError>((ops, hist))
        });
    }
    let mut latency = latency_histogram()?;
    let mut ops = 0;
    while let Some(joined) = tasks.join_next().await {
        let (n, hist) = joined.map_err(BenchError::Task)??;
        ops += n;
        merge(&mut latency, &hist)?;
    }
    let elapsed = start.elapsed();
    Ok(result(target, op, clients, ops, elapsed, &latency, None))
}

fn result(
    target: &Target,
    op: ApiOp,
    clients: u32,
    ops: u64,
    elapsed: Duration,
    latency: &Histogram<u64>,
    watch: Option<watch::WatchFigures>,
) -> ApiResult {
    let seconds = elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    ApiResult {
        bench: "api",
        path: target.path(),
        store: target.store_kind(),
        op,
        clients,
        ops_per_sec: round1(ops as f64 / seconds),
        store_ratio: None,
        latency: Latency::of(latency),
        ops,
        seconds: (seconds * 1000.0).round() / 1000.0,
        watch,
    }
}
