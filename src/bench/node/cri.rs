//! `orchestra bench node --runtime cri`: the bare CRI calls and the agent over [`CriRuntime`]
//! against the containerd at `--cri-endpoint`, with pods of `--cri-image`.
//!
//! The bare calls go through `CriRuntime` too (`run_pod_sandbox` is RunPodSandbox;
//! `create_container` is PodSandboxStatus + CreateContainer; `start_container` is
//! StartContainer), so the ratio isolates what the agent adds. Logs go to a temporary directory.
//!
//! [`CriRuntime`]: orchestra::node::CriRuntime

use std::time::Duration;

use crate::bench::BenchError;
use crate::cli::bench::NodeBenchArgs;

/// Runs the CRI measurements.
#[cfg(feature = "cri")]
pub async fn measure(
    args: &NodeBenchArgs,
    batches: &[u32],
    repeat: u32,
    intervals: &[Duration],
) -> Result<(), BenchError> {
    use std::sync::Arc;

    use orchestra::node::{CriRuntime, CriRuntimeConfig, RuntimeDriver};

    use super::{PodShape, measure_runtime, node_error};
    use crate::cli::bench::NodeRuntime;

    let logs = tempfile::tempdir().map_err(node_error("creating a log directory"))?;
    let connect = || async {
        CriRuntime::connect(CriRuntimeConfig::new(
            args.cri_endpoint.clone(),
            logs.path(),
        ))
        .await
        .map_err(node_error("connecting to the CRI runtime"))
    };
    let bare = connect().await?;
    bare.pull_image(&args.cri_image)
        .await
        .map_err(node_error("making the CRI image available"))?;
    tracing::info!(runtime = bare.runtime_version(), image = %args.cri_image, "CRI benchmark");
    let mut runtimes = Vec::new();
    for _ in intervals {
        runtimes.push(Arc::new(connect().await?));
    }
    let mut runtimes = runtimes.into_iter();
    let agent = || {
        runtimes
            .next()
            .ok_or_else(|| BenchError::NodeTimeout("no CRI runtime left".to_string()))
    };
    let shape = PodShape {
        runtime: NodeRuntime::Cri.as_str(),
        image: Some(args.cri_image.clone()),
    };
    measure_runtime(
        NodeRuntime::Cri,
        &shape,
        &bare,
        agent,
        batches,
        repeat,
        intervals,
    )
    .await
}

/// Without the `cri` feature: a clear error.
#[cfg(not(feature = "cri"))]
pub async fn measure(
    _args: &NodeBenchArgs,
    _batches: &[u32],
    _repeat: u32,
    _intervals: &[Duration],
) -> Result<(), BenchError> {
    Err(BenchError::CriUnsupported)
}
