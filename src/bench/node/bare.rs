//! The bare runtime calls, timed directly on a [`RuntimeDriver`] with the configurations the
//! agent would use: start is `run_pod_sandbox` + `create_container` + `start_container`,
//! teardown is `stop_container` + `remove_container` + `stop_pod_sandbox` +
//! `remove_pod_sandbox`. Pods of a batch go through the calls concurrently, as the agent's
//! workers would.

use std::time::{Duration, Instant};

use futures::future::try_join_all;
use hdrhistogram::Histogram;
use orchestra::node::agent::{container_config, sandbox_config};
use orchestra::node::{ContainerId, RuntimeDriver, SandboxId};

use crate::bench::BenchError;
use crate::bench::node::{PodShape, bench_pod, node_error};
use crate::bench::report::{latency_histogram, record};

/// Start and teardown latencies of the bare calls.
pub struct BareTimes {
    /// From `run_pod_sandbox`'s call to `start_container`'s return, per pod.
    pub start: Histogram<u64>,
    /// From `stop_container`'s call to `remove_pod_sandbox`'s return, per pod.
    pub teardown: Histogram<u64>,
}

/// Runs `rounds` batches of `batch` pods through the bare calls on `runtime`.
pub async fn measure<R: RuntimeDriver>(
    runtime: &R,
    shape: &PodShape,
    batch: u32,
    rounds: u32,
) -> Result<BareTimes, BenchError> {
    let mut times = BareTimes {
        start: latency_histogram()?,
        teardown: latency_histogram()?,
    };
    for round in 0..rounds {
        let started = try_join_all(
            (0..batch).map(|i| start_one(runtime, shape, format!("bare-{batch}-{round}-{i}"))),
        )
        .await?;
        let mut ids = Vec::with_capacity(started.len());
        for (elapsed, sandbox, container) in started {
            record(&mut times.start, elapsed);
            ids.push((sandbox, container));
        }
        let stopped = try_join_all(
            ids.iter()
                .map(|(sandbox, container)| stop_one(runtime, sandbox, container)),
        )
        .await?;
        for elapsed in stopped {
            record(&mut times.teardown, elapsed);
        }
    }
    Ok(times)
}

async fn start_one<R: RuntimeDriver>(
    runtime: &R,
    shape: &PodShape,
    name: String,
) -> Result<(Duration, SandboxId, ContainerId), BenchError> {
    let pod = bench_pod(&name, shape, true);
    let sandbox_config = sandbox_config(&pod, 0);
    let start = Instant::now();
    let sandbox = runtime
        .run_pod_sandbox(&sandbox_config)
        .await
        .map_err(node_error("run_pod_sandbox"))?;
    let container = runtime
        .create_container(
            &sandbox,
            &container_config(&pod, &pod.spec.containers[0], 0, None),
        )
        .await
        .map_err(node_error("create_container"))?;
    runtime
        .start_container(&container)
        .await
        .map_err(node_error("start_container"))?;
    Ok((start.elapsed(), sandbox, container))
}

async fn stop_one<R: RuntimeDriver>(
    runtime: &R,
    sandbox: &SandboxId,
    container: &ContainerId,
) -> Result<Duration, BenchError> {
    let start = Instant::now();
    runtime
        .stop_container(container, Duration::from_secs(1))
        .await
        .map_err(node_error("stop_container"))?;
    runtime
        .remove_container(container)
        .await
        .map_err(node_error("remove_container"))?;
    runtime
        .stop_pod_sandbox(sandbox)
        .await
        .map_err(node_error("stop_pod_sandbox"))?;
    runtime
        .remove_pod_sandbox(sandbox)
        .await
        .map_err(node_error("remove_pod_sandbox"))?;
    Ok(start.elapsed())
}
