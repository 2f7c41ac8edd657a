//! `orchestra bench sched`: the scheduler, per workload and mode; one JSON line each.
//!
//! `--mode framework` (the default) runs the framework alone. Each workload builds a snapshot
//! of `--nodes` nodes, then places `--pods` pods one by one with the default profile: prepare
//! the pod (`PodInfo`), run the scheduling cycle, assume the pod onto its node. That loop is
//! timed; building the pod objects and the nodes is not. `--mode e2e` runs the scheduling loop
//! against an in-process API instead ([`e2e`]).
//!
//! The gang workload runs Permit after each placement, as the scheduling loop does: a
//! member waits, assumed on its node, until its gang's tenth member is placed, which allows
//! them all; each placement asks the waiting members again.
//!
//! The preemption workload fills every node with low-priority pods first; each pod then fits
//! nowhere, DefaultPreemption (PostFilter) chooses a node and a victim, and the timed loop
//! carries it out in the snapshot (the victim removed, the pod assumed on its nominated node).
//!
//! # Layout
//! - [`workload`]: the nodes and pods of each workload.
//! - [`e2e`]: `--mode e2e`, through LocalClient and the scheduling loop.

pub mod e2e;
pub mod workload;

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestra::sched::{ClusterSnapshot, CycleState, Framework, PermitOutcome, PodInfo, plugins};
use serde::Serialize;

use crate::bench::BenchError;
use crate::bench::report::{Latency, latency_histogram, record, round1};
use crate::cli::bench::{SchedBenchArgs, SchedMode, SchedWorkload};

/// One result line of `orchestra bench sched`.
#[derive(Clone, Debug, Serialize)]
pub struct SchedResult {
    /// Always `"sched"`.
    pub bench: &'static str,
    /// The workload.
    pub workload: SchedWorkload,
    /// Nodes in the cluster.
    pub nodes: u32,
    /// Pods placed or found unschedulable.
    pub pods: u32,
    /// Pods per second over the timed loop.
    pub pods_per_sec: f64,
    /// How the pods were scheduled.
    pub mode: SchedMode,
    /// Pods placed.
    pub scheduled: u64,
    /// Pods no node accepted (0 for every workload at the default sizes).
    pub unschedulable: u64,
    /// The timed loop's duration in seconds (e2e: from the first creation until the last
    /// pod was seen bound).
    pub seconds: f64,
    /// e2e: the seconds the creations took (they overlap the scheduling).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_seconds: Option<f64>,
    /// Latency of one pod (framework: prepare, schedule, assume; e2e: from its creation until
    /// it is seen bound).
    #[serde(flatten)]
    pub latency: Latency,
    /// The tie-breaking seed.
    pub seed: u64,
}

/// Run every requested workload in every requested mode.
pub async fn run(args: SchedBenchArgs) -> Result<(), BenchError> {
    let (nodes, pods) = if args.smoke {
        (args.nodes.min(200), args.pods.min(400))
    } else {
        (args.nodes, args.pods)
    };
    let timeout = Duration::from_secs(args.timeout_seconds);
    for mode in &args.mode {
        for workload in &args.workload {
            let result = match mode {
                SchedMode::Framework => run_one(*workload, nodes, pods, args.seed)?,
                SchedMode::E2e => e2e::run_one(*workload, nodes, pods, args.seed, timeout).await?,
            };
            let line = serde_json::to_string(&result).map_err(|e| BenchError::Output(e.into()))?;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{line}")
                .and_then(|()| stdout.flush())
                .map_err(BenchError::Output)?;
        }
    }
    Ok(())
}

/// One workload on a fresh snapshot.
fn run_one(
    workload: SchedWorkload,
    nodes: u32,
    pods: u32,
    seed: u64,
) -> Result<SchedResult, BenchError> {
    let low: Vec<_> = if workload == SchedWorkload::Preemption {
        (0..nodes as usize)
            .flat_map(|i| (0..workload::LOW_PRIORITY_PER_NODE).map(move |j| (i, j)))
            .map(|(i, j)| workload::low_priority_pod(i, j))
            .collect()
    } else {
        Vec::new()
    };
    let mut cluster = ClusterSnapshot::from_objects((0..nodes as usize).map(workload::node), low)
        .map_err(|e| BenchError::Sched(e.to_string()))?;
    let objects: Vec<_> = (0..pods as usize)
        .map(|i| workload::pod(workload, i, pods as usize))
        .collect();
    let mut profile = plugins::default_profile();
    profile.seed = seed;
    let framework = Framework::new(profile);
    let mut hist = latency_histogram()?;
    let (mut scheduled, mut unschedulable) = (0u64, 0u64);
    // Gang members placed and waiting at Permit for the rest of their gang.
    let mut waiting: Vec<(Arc<PodInfo>, CycleState, String)> = Vec::new();
    tracing::info!(workload = workload.as_str(), nodes, pods, "scheduling");
    let started = Instant::now();
    for pod in objects {
        let one = Instant::now();
        let info = Arc::new(PodInfo::new(pod).map_err(|e| BenchError::Sched(e.to_string()))?);
        match framework.schedule_pod(&info, &cluster) {
            Ok(outcome) => {
                let node = outcome.placement.node.to_string();
                cluster
                    .assume(info.clone(), &node)
                    .map_err(|e| BenchError::Sched(e.to_string()))?;
                // Permit, as the scheduling loop runs it: a gang's member waits, assumed on
                // its node, until its gang is complete; every placement asks the waiting
                // members again.
                match framework.run_permit(&outcome.state, &info, &node, &cluster) {
                    PermitOutcome::Allow => scheduled += 1,
                    PermitOutcome::Wait(_) => waiting.push((info, outcome.state, node)),
                    PermitOutcome::Deny(status) => {
                        return Err(BenchError::Sched(format!(
                            "{}: denied at Permit: {}",
                            info.key(),
                            status.message()
                        )));
                    }
                }
                let before = waiting.len();
                waiting.retain(|(member, state, node)| {
                    framework.run_permit(state, member, node, &cluster) != PermitOutcome::Allow
                });
                scheduled += (before - waiting.len()) as u64;
            }
            Err(why)
                if why
                    .post_filter
                    .as_ref()
                    .is_some_and(|p| p.nominated_node.is_some()) =>
            {
                // Preemption: the victims leave, the pod takes their room.
                let proposal = why.post_filter.as_deref().cloned().unwrap_or_default();
                for victim in &proposal.victims {
                    cluster
                        .remove_pod(victim)
                        .map_err(|e| BenchError::Sched(e.to_string()))?;
                }
                let node = proposal.nominated_node.unwrap_or_default();
                cluster
                    .assume(info, &node)
                    .map_err(|e| BenchError::Sched(e.to_string()))?;
                scheduled += 1;
            }
            Err(why) => {
                if unschedulable == 0 {
                    tracing::warn!(pod = why.pod, "unschedulable: {why}");
                }
                unschedulable += 1;
            }
        }
        record(&mut hist, one.elapsed());
    }
    let seconds = started.elapsed().as_secs_f64();
    // Members whose gang never completed were not placed.
    unschedulable += waiting.len() as u64;
    Ok(SchedResult {
        bench: "sched",
        workload,
        nodes,
        pods,
        pods_per_sec: round1(f64::from(pods) / seconds),
        mode: SchedMode::Framework,
        scheduled,
        unschedulable,
        seconds: (seconds * 1000.0).round() / 1000.0,
        create_seconds: None,
        latency: Latency::of(&hist),
        seed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_workload_places_every_pod_on_a_small_cluster() {
        for workload in [
            SchedWorkload::Basic,
            SchedWorkload::NodeAffinity,
            SchedWorkload::PodAffinity,
            SchedWorkload::PodAntiAffinity,
            SchedWorkload::TopologySpread,
            SchedWorkload::Preemption,
            SchedWorkload::Gang,
        ] {
            let result = run_one(workload, 120, 300, 7).unwrap();
            assert_eq!(
                (result.scheduled, result.unschedulable),
                (300, 0),
                "{workload:?}"
            );
            let line = serde_json::to_string(&result).unwrap();
            assert!(
                line.starts_with(&format!(
                    r#"{{"bench":"sched","workload":"{}","nodes":120,"pods":300,"pods_per_sec":"#,
                    workload.as_str()
                )),
                "{line}"
            );
            assert!(line.contains(r#""mode":"framework""#), "{line}");
        }
    }

    #[test]
    fn a_gang_cut_short_by_the_pod_count_needs_only_its_members() {
        // 35 pods: three gangs of 10 and one of 5, whose minimum is 5.
        let result = run_one(SchedWorkload::Gang, 20, 35, 7).unwrap();
        assert_eq!((result.scheduled, result.unschedulable), (35, 0));
        let last = workload::pod(SchedWorkload::Gang, 34, 35);
        assert_eq!(
            last.metadata
                .annotations
                .get("scheduling.x-k8s.io/min-available"),
            Some(&"5".to_owned())
        );
    }

    /// End to end, the scheduling loop binds every pod through the API, preemptors included
    /// (their victims deleted, then placed as soon as the queue is idle).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn e2e_binds_every_pod_through_the_api() {
        for workload in [
            SchedWorkload::Basic,
            SchedWorkload::Preemption,
            SchedWorkload::Gang,
        ] {
            let result = e2e::run_one(workload, 30, 60, 7, Duration::from_secs(120))
                .await
                .unwrap();
            assert_eq!(
                (result.scheduled, result.unschedulable),
                (60, 0),
                "{workload:?}"
            );
            assert_eq!(result.mode, SchedMode::E2e);
            assert!(result.create_seconds.is_some());
            let line = serde_json::to_string(&result).unwrap();
            assert!(line.contains(r#""mode":"e2e""#), "{line}");
        }
    }
}
