//! Helpers for the checks: fresh configs, bounded waits on runtime state, reading logs.
//!
//! Waiting is a loop of short `tokio::time::sleep`s inside a `tokio::time::timeout`: under
//! paused time (the fake runtime) the sleeps take no real time; a runtime running real processes
//! cannot be driven by paused time, so there the loop polls in real time, bounded by
//! [`Harness::wait_limit`](super::Harness::wait_limit). No check asserts how fast anything is.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::BytesMut;
use futures::StreamExt;

use crate::runtime::{
    ContainerId, ContainerStatus, LogOptions, RuntimeDriver, RuntimeError, SandboxConfig, SandboxId,
};

/// How often a wait polls the runtime.
pub const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// A sandbox configuration for pod `name` (uid `uid-<name>`, namespace `default`, one label).
pub fn sandbox_config(name: &str) -> SandboxConfig {
    SandboxConfig {
        name: name.to_owned(),
        namespace: "default".to_owned(),
        uid: format!("uid-{name}"),
        attempt: 0,
        hostname: name.to_owned(),
        labels: BTreeMap::from([("app".to_owned(), name.to_owned())]),
        annotations: BTreeMap::from([("note".to_owned(), "conformance".to_owned())]),
        log_directory: None,
        dns: None,
    }
}

/// Polls `id`'s status until `done` holds, for at most `limit`; panics naming `what` and the
/// last status seen if it never does.
pub async fn wait_for_container<R: RuntimeDriver + ?Sized>(
    runtime: &R,
    id: &ContainerId,
    limit: Duration,
    what: &str,
    done: impl Fn(&ContainerStatus) -> bool,
) -> ContainerStatus {
    let mut last = None;
    let waited = tokio::time::timeout(limit, async {
        loop {
            match runtime.container_status(id).await {
                Ok(status) if done(&status) => return status,
                Ok(status) => last = Some(Ok(status)),
                Err(e) => last = Some(Err(e.to_string())),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
    .await;
    match waited {
        Ok(status) => status,
        Err(_) => {
            panic!("container {id}: {what} did not happen within {limit:?}; last seen: {last:?}")
        }
    }
}

/// Reads a container's whole log (not followed) as text.
pub async fn read_logs<R: RuntimeDriver + ?Sized>(
    runtime: &R,
    id: &ContainerId,
    options: LogOptions,
) -> Result<String, RuntimeError> {
    let mut stream = runtime.logs(id, options).await?;
    let mut out = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Polls a container's log until it contains `needle`, for at most `limit`; panics otherwise.
pub async fn wait_for_log<R: RuntimeDriver + ?Sized>(
    runtime: &R,
    id: &ContainerId,
    needle: &str,
    limit: Duration,
) -> String {
    let mut last = String::new();
    let waited = tokio::time::timeout(limit, async {
        loop {
            match read_logs(runtime, id, LogOptions::default()).await {
                Ok(text) if text.contains(needle) => return text,
                Ok(text) => last = text,
                Err(e) => last = format!("<error: {e}>"),
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    })
    .await;
    match waited {
        Ok(text) => text,
        Err(_) => {
            panic!("container {id}: {needle:?} not in its log within {limit:?}; log: {last:?}")
        }
    }
}

/// Removes a sandbox, panicking with the error if that fails (the checks' cleanup).
pub async fn cleanup<R: RuntimeDriver + ?Sized>(runtime: &R, sandbox: &SandboxId) {
    if let Err(e) = runtime.remove_pod_sandbox(sandbox).await {
        panic!("removing sandbox {sandbox} failed: {e}");
    }
}
