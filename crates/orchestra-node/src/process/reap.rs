//! Waiting for a container's process to end: its own child through `wait()`, a re-adopted
//! process (not its child: `wait()` is impossible) through a pidfd.

use std::time::Duration;

use rustix::process::{Pid, PidfdFlags, pidfd_open};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::process::Child;

use super::procfs;

/// How an ended process is reported: exit code, reason, message.
pub type Ending = (Option<i32>, &'static str, String);

/// How often a re-adopted process is polled when pidfds are not available (Linux < 5.3).
const ADOPTED_POLL: Duration = Duration::from_millis(100);

/// Waits for a spawned child to end.
pub async fn wait_child(mut child: Child) -> Ending {
    match child.wait().await {
        Ok(status) => {
            let code = procfs::exit_code(status);
            let reason = if code == Some(0) {
                "Completed"
            } else {
                "Error"
            };
            (code, reason, describe(status))
        }
        Err(e) => (
            None,
            "Unknown",
            format!("waiting for the process failed: {e}"),
        ),
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => status.to_string(),
    }
}

/// Waits for a re-adopted process (`pid`, started at `start_ticks`) to end. Its exit code is
/// unknown: only its parent could collect it.
pub async fn wait_adopted(pid: i32, start_ticks: u64) -> Ending {
    let fd = Pid::from_raw(pid).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok());
    // The pidfd was opened after checking the start time; check again so that it cannot refer
    // to a process that reused the pid in between.
    if procfs::is_same_live_process(pid, start_ticks) {
        // `with_interest` is deprecated because a `T` could change its descriptor behind
        // tokio's back; an `OwnedFd` cannot, and the unsafe `register_with_interest` that
        // replaces it is forbidden in this workspace.
        #[allow(deprecated)]
        let registered = fd.map(|fd| AsyncFd::with_interest(fd, Interest::READABLE));
        let waited = match registered {
            Some(Ok(fd)) => fd
                .readable()
                .await
                .map(|mut guard| guard.retain_ready())
                .is_ok(),
            _ => false,
        };
        if !waited {
            while procfs::is_same_live_process(pid, start_ticks) {
                tokio::time::sleep(ADOPTED_POLL).await;
            }
        }
    }
    (
        None,
        "Unknown",
        "the process was re-adopted after a runtime restart and has ended; its exit code is unknown"
            .to_owned(),
    )
}
