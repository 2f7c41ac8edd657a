//! FakeRuntime's memory per pod: resident memory growth while fake pods are created directly
//! in a runtime, configured as the agent configures them (the method of the node crate's
//! `agent_fake_memory` test, which asserts a bound; this one reports the figure).

use orchestra::node::agent::{container_config, sandbox_config};
use orchestra::node::{FakeRuntime, RuntimeDriver};

use crate::bench::BenchError;
use crate::bench::node::{PodShape, bench_pod, node_error};
use crate::cli::bench::NodeRuntime;

/// Resident memory in bytes, from `/proc/self/statm` (`None` where it cannot be read).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

/// The size of a memory page (statm counts pages).
fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

/// Creates `pods` fake pods (a sandbox and one started container each) and returns the
/// resident memory growth per pod in bytes, or `None` without `/proc/self/statm`.
pub async fn fake_bytes_per_pod(pods: u32) -> Result<Option<u64>, BenchError> {
    let Some(before) = rss_bytes() else {
        return Ok(None);
    };
    let runtime = FakeRuntime::new();
    let shape = PodShape::plain(NodeRuntime::Fake);
    for i in 0..pods {
        let pod = bench_pod(&format!("mem-{i}"), &shape, true);
        let sandbox = runtime
            .run_pod_sandbox(&sandbox_config(&pod, 0))
            .await
            .map_err(node_error("creating a fake sandbox"))?;
        let container = runtime
            .create_container(
                &sandbox,
                &container_config(&pod, &pod.spec.containers[0], 0, None),
            )
            .await
            .map_err(node_error("creating a fake container"))?;
        runtime
            .start_container(&container)
            .await
            .map_err(node_error("starting a fake container"))?;
    }
    let after = rss_bytes().unwrap_or(before);
    let per_pod = after.saturating_sub(before) / u64::from(pods.max(1));
    drop(runtime);
    Ok(Some(per_pod))
}
