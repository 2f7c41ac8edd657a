//! `orchestra bench node`: pod start latency and teardown through the node agent, per runtime
//! and batch size, against the bare runtime calls; FakeRuntime's memory per pod.
//!
//! Per runtime (`fake`, `process`) and batch size (`--pods`, 1 and 100 by default): first the
//! bare runtime calls are timed directly on a runtime ([`bare`]), then, for each agent sync
//! interval, pods are created already bound to an agent's node and timed until a watch sees
//! them Running and Ready, then deleted and timed until the object is gone ([`agent`]). A
//! batch of 1 is repeated `--repeat` times; larger batches are created at once, each pod timed
//! from its own create call. Each measurement prints one JSON line; agent lines carry
//! `vs_bare`, the agent's p50 over the bare calls' p50. Finally [`memory`] creates
//! `--memory-pods` fake pods directly in a FakeRuntime and reports resident memory per pod.
//!
//! Targets from the issue: FakeRuntime p50 at most 1 ms, ProcessRuntime p50 at most 20 ms,
//! CriRuntime p50 at most 1.3 times the bare CRI calls' p50 in the same run (the
//! `target_p50_us` and `meets_target` fields of start lines).
//!
//! # Layout
//! - [`agent`]: the in-process API, the agent and the watch that times pods.
//! - [`bare`]: the runtime calls timed directly.
//! - [`cri`]: the CRI runtime's run (`--runtime cri --cri-endpoint unix:///PATH --cri-image REF`).
//! - [`memory`]: FakeRuntime's resident memory per pod.

pub mod agent;
pub mod bare;
pub mod cri;
pub mod memory;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use orchestra::api::resources::Pod;
use orchestra::api::testing;
use orchestra::node::{FakeRuntime, ProcessRuntime, ProcessRuntimeConfig, RuntimeDriver};
use serde::Serialize;

use crate::bench::BenchError;
use crate::bench::report::{Latency, ratio};
use crate::cli::bench::{NodeBenchArgs, NodeRuntime};

/// The agent's node name.
pub const NODE: &str = "bench-node";

/// One result line of `orchestra bench node`.
#[derive(Clone, Debug, Serialize)]
pub struct NodeResult {
    /// Always `"node"`.
    pub bench: &'static str,
    /// `fake` or `process`.
    pub runtime: &'static str,
    /// `start`, `teardown` or `memory`.
    pub test: &'static str,
    /// `agent` (through the API and the agent) or `bare` (the runtime calls alone).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<&'static str>,
    /// Pods per batch (for `memory`: fake pods created).
    pub pods: u32,
    /// Batches run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rounds: Option<u32>,
    /// The agent's sync interval, ms (agent lines only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sync_interval_ms: Option<f64>,
    /// Latency per pod.
    #[serde(flatten)]
    pub latency: Option<Latency>,
    /// The bare calls' p50 in the same run (agent lines only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bare_p50_us: Option<f64>,
    /// This line's p50 over the bare calls' p50 (agent lines only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vs_bare: Option<f64>,
    /// The issue's p50 target for this runtime (agent start lines only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_p50_us: Option<f64>,
    /// Whether the p50 is within the target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meets_target: Option<bool>,
    /// Resident memory growth per fake pod, bytes (`memory` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_pod: Option<u64>,
    /// Why the test was not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

impl NodeResult {
    fn new(runtime: NodeRuntime, test: &'static str, pods: u32) -> Self {
        NodeResult {
            bench: "node",
            runtime: runtime.as_str(),
            test,
            path: None,
            pods,
            rounds: None,
            sync_interval_ms: None,
            latency: None,
            bare_p50_us: None,
            vs_bare: None,
            target_p50_us: None,
            meets_target: None,
            bytes_per_pod: None,
            skipped: None,
        }
    }

    /// A latency line of `path`.
    fn latency(
        runtime: NodeRuntime,
        test: &'static str,
        path: &'static str,
        pods: u32,
        rounds: u32,
        hist: &Histogram<u64>,
    ) -> Self {
        NodeResult {
            path: Some(path),
            rounds: Some(rounds),
            latency: Some(Latency::of(hist)),
            ..NodeResult::new(runtime, test, pods)
        }
    }

    /// This agent line against the bare line of the same test.
    fn against(mut self, bare: &NodeResult, sync_interval: Duration) -> Self {
        let p50 = |r: &NodeResult| r.latency.map_or(0.0, |l| l.p50_us);
        self.sync_interval_ms = Some(sync_interval.as_secs_f64() * 1000.0);
        self.bare_p50_us = Some(p50(bare));
        self.vs_bare = ratio(p50(&self), p50(bare));
        self
    }
}

/// The issue's start-latency target (p50) for a runtime, microseconds: absolute for the fake
/// and process runtimes, 1.3 times the bare calls' p50 of the same run for CRI.
pub fn target_p50_us(runtime: NodeRuntime, bare_p50_us: f64) -> f64 {
    match runtime {
        NodeRuntime::Fake => 1_000.0,
        NodeRuntime::Process => 20_000.0,
        NodeRuntime::Cri => 1.3 * bare_p50_us,
    }
}

/// What the benchmark's pods run: which runtime they are for and, for CRI, the image.
#[derive(Clone, Debug)]
pub struct PodShape {
    /// The runtime's name (`fake`, `process`, `cri`).
    pub runtime: &'static str,
    /// The image (CRI only; it must be present in the runtime, or pullable).
    pub image: Option<String>,
}

impl PodShape {
    /// Pods for a runtime without images.
    pub fn plain(runtime: NodeRuntime) -> Self {
        PodShape {
            runtime: runtime.as_str(),
            image: None,
        }
    }
}

/// The CRI benchmark's container: a shell (PID 1 of its container, so it handles TERM itself)
/// waiting on a `sleep`; TERM ends it at once.
pub const CRI_COMMAND: [&str; 3] = ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"];

/// A pod for the benchmark, bound to [`NODE`]: one container that the runtime of `shape` can
/// run (`sleep 1000` for the process runtime, [`CRI_COMMAND`] in the image for CRI), a 1 s
/// grace period (the workload exits on TERM, so the TERM path is what is measured), and a uid
/// when `with_uid` (for the bare calls; the API sets it otherwise).
pub fn bench_pod(name: &str, shape: &PodShape, with_uid: bool) -> Pod {
    let mut pod = testing::pod("default", name, "bench");
    pod.spec.node_name = NODE.to_string();
    pod.spec.termination_grace_period_seconds = Some(1);
    if shape.runtime == NodeRuntime::Process.as_str() {
        pod.spec.containers[0].command = vec!["sleep".into(), "1000".into()];
    }
    if shape.runtime == NodeRuntime::Cri.as_str() {
        pod.spec.containers[0].command = CRI_COMMAND.iter().map(|s| (*s).to_owned()).collect();
    }
    if let Some(image) = &shape.image {
        pod.spec.containers[0].image.clone_from(image);
    }
    if with_uid {
        pod.metadata.uid = format!("{name}-uid");
    }
    pod
}

/// The error of a failed API or runtime call, saying what the benchmark was doing.
pub fn node_error<E: std::error::Error + Send + Sync + 'static>(
    what: &'static str,
) -> impl Fn(E) -> BenchError {
    move |source| BenchError::Node {
        what: what.to_string(),
        source: Box::new(source),
    }
}

/// Run `orchestra bench node`.
pub async fn run(args: NodeBenchArgs) -> Result<(), BenchError> {
    let (batches, repeat, memory_pods) = if args.smoke {
        (
            args.pods.iter().map(|&p| p.min(10)).collect::<Vec<_>>(),
            args.repeat.min(5),
            args.memory_pods.min(1_000),
        )
    } else {
        (args.pods.clone(), args.repeat, args.memory_pods)
    };
    let intervals = if args.smoke {
        // The shortest interval only: the smoke run checks that everything works.
        let shortest = args.sync_interval.iter().min().copied();
        shortest.into_iter().collect()
    } else {
        args.sync_interval.clone()
    };
    for &runtime in &args.runtime {
        match runtime {
            NodeRuntime::Fake => {
                let bare = FakeRuntime::new();
                let agent = || Ok(Arc::new(FakeRuntime::new()));
                let shape = PodShape::plain(runtime);
                measure_runtime(runtime, &shape, &bare, agent, &batches, repeat, &intervals)
                    .await?;
            }
            NodeRuntime::Process => {
                let dir = tempfile::tempdir().map_err(node_error("creating a state directory"))?;
                let bare = process_runtime(&dir.path().join("bare")).await?;
                let mut n = 0;
                let mut runtimes = Vec::new();
                for _ in &intervals {
                    n += 1;
                    runtimes.push(Arc::new(
                        process_runtime(&dir.path().join(format!("agent-{n}"))).await?,
                    ));
                }
                let mut runtimes = runtimes.into_iter();
                let agent = || {
                    runtimes.next().ok_or_else(|| {
                        BenchError::NodeTimeout("no process runtime left".to_string())
                    })
                };
                let shape = PodShape::plain(runtime);
                measure_runtime(runtime, &shape, &bare, agent, &batches, repeat, &intervals)
                    .await?;
            }
            NodeRuntime::Cri => cri::measure(&args, &batches, repeat, &intervals).await?,
        }
    }
    if memory_pods > 0 && args.runtime.contains(&NodeRuntime::Fake) {
        let mut line = NodeResult::new(NodeRuntime::Fake, "memory", memory_pods);
        match memory::fake_bytes_per_pod(memory_pods).await? {
            Some(bytes) => line.bytes_per_pod = Some(bytes),
            None => line.skipped = Some("/proc/self/statm is not readable".to_string()),
        }
        emit(&line)?;
    }
    Ok(())
}

/// A process runtime keeping its state in `dir`, without cgroups (rlimits only: the
/// benchmark measures the agent and the runtime, not cgroup setup, which needs privileges).
async fn process_runtime(dir: &std::path::Path) -> Result<ProcessRuntime, BenchError> {
    let mut config = ProcessRuntimeConfig::new(dir);
    config.cgroup_root = None;
    ProcessRuntime::new(config)
        .await
        .map_err(node_error("starting the process runtime"))
}

/// Bare calls then the agent (once per sync interval, each over a fresh runtime from
/// `agent_runtime`), for every batch size.
async fn measure_runtime<R: RuntimeDriver + 'static>(
    runtime: NodeRuntime,
    shape: &PodShape,
    bare: &R,
    mut agent_runtime: impl FnMut() -> Result<Arc<R>, BenchError>,
    batches: &[u32],
    repeat: u32,
    intervals: &[Duration],
) -> Result<(), BenchError> {
    let rounds = |batch: u32| if batch == 1 { repeat } else { 1 };
    let mut bare_lines = Vec::new();
    for &batch in batches {
        let times = bare::measure(bare, shape, batch, rounds(batch)).await?;
        let start =
            NodeResult::latency(runtime, "start", "bare", batch, rounds(batch), &times.start);
        let teardown = NodeResult::latency(
            runtime,
            "teardown",
            "bare",
            batch,
            rounds(batch),
            &times.teardown,
        );
        emit(&start)?;
        emit(&teardown)?;
        bare_lines.push((batch, start, teardown));
    }
    for &interval in intervals {
        let mut harness = agent::Harness::start(agent_runtime()?, shape.clone(), interval).await?;
        for (batch, bare_start, bare_teardown) in &bare_lines {
            let times = harness.measure(*batch, rounds(*batch)).await?;
            let mut start = NodeResult::latency(
                runtime,
                "start",
                "agent",
                *batch,
                rounds(*batch),
                &times.start,
            )
            .against(bare_start, interval);
            let target = target_p50_us(runtime, start.bare_p50_us.unwrap_or(0.0));
            start.target_p50_us = Some(target);
            start.meets_target = start.latency.map(|l| l.p50_us <= target);
            let teardown = NodeResult::latency(
                runtime,
                "teardown",
                "agent",
                *batch,
                rounds(*batch),
                &times.teardown,
            )
            .against(bare_teardown, interval);
            emit(&start)?;
            emit(&teardown)?;
        }
        harness.stop().await;
    }
    Ok(())
}

/// Print one result line.
fn emit(result: &NodeResult) -> Result<(), BenchError> {
    let line = serde_json::to_string(result).map_err(|e| BenchError::Output(e.into()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").map_err(BenchError::Output)?;
    out.flush().map_err(BenchError::Output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::{latency_histogram, record};

    #[test]
    fn agent_lines_carry_their_ratio_to_the_bare_calls() {
        let mut bare = latency_histogram().unwrap();
        record(&mut bare, Duration::from_micros(100));
        let mut agent = latency_histogram().unwrap();
        record(&mut agent, Duration::from_micros(200));
        let bare = NodeResult::latency(NodeRuntime::Fake, "start", "bare", 1, 1, &bare);
        let line = NodeResult::latency(NodeRuntime::Fake, "start", "agent", 1, 1, &agent)
            .against(&bare, Duration::from_millis(10));
        assert_eq!(line.vs_bare, Some(2.0));
        let json = serde_json::to_string(&line).unwrap();
        assert!(
            json.starts_with(
                r#"{"bench":"node","runtime":"fake","test":"start","path":"agent","pods":1,"rounds":1,"sync_interval_ms":10.0,"p50_us":200."#
            ),
            "{json}"
        );
        assert!(
            json.contains(r#""bare_p50_us":100.0,"vs_bare":2.0"#),
            "{json}"
        );
        assert!(!json.contains("bytes_per_pod"), "{json}");
    }

    #[test]
    fn bench_pods_are_bound_and_runnable_by_their_runtime() {
        let pod = bench_pod("p", &PodShape::plain(NodeRuntime::Process), true);
        assert_eq!(pod.spec.node_name, NODE);
        assert_eq!(pod.spec.containers[0].command, ["sleep", "1000"]);
        assert_eq!(pod.spec.termination_grace_period_seconds, Some(1));
        assert_eq!(pod.metadata.uid, "p-uid");
        assert!(
            bench_pod("q", &PodShape::plain(NodeRuntime::Fake), false)
                .metadata
                .uid
                .is_empty()
        );
        let cri = PodShape {
            runtime: "cri",
            image: Some("example.test/busybox:1".into()),
        };
        let pod = bench_pod("c", &cri, false);
        assert_eq!(pod.spec.containers[0].image, "example.test/busybox:1");
        assert_eq!(pod.spec.containers[0].command, CRI_COMMAND);
    }

    #[tokio::test]
    async fn a_smoke_run_of_the_fake_runtime_measures_every_pod() {
        let runtime = Arc::new(FakeRuntime::new());
        let mut harness = agent::Harness::start(
            runtime.clone(),
            PodShape::plain(NodeRuntime::Fake),
            Duration::from_millis(10),
        )
        .await
        .unwrap();
        let times = harness.measure(3, 2).await.unwrap();
        assert_eq!(times.start.len(), 6);
        assert_eq!(times.teardown.len(), 6);
        harness.stop().await;
        let bare_runtime = FakeRuntime::new();
        let bare = bare::measure(&bare_runtime, &PodShape::plain(NodeRuntime::Fake), 4, 1)
            .await
            .unwrap();
        assert_eq!((bare.start.len(), bare.teardown.len()), (4, 4));
        assert_eq!(bare_runtime.counts(), (0, 0));
    }
}
