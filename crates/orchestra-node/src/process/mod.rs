//! [`ProcessRuntime`]: pods as plain local processes, for machines without containerd and for
//! development.
//!
//! - A container is its command and args run directly (there are no images: `pull_image`
//!   succeeds and does nothing, `image` is only recorded) with a clean environment (`PATH`,
//!   then `HOSTNAME` and `POD_IP`, then the container's `env`) in its `workingDir` (`/` if
//!   none, or the root view when it has mounts), in a process group of its own. Stopping sends the stop signal to the whole group,
//!   then SIGKILL once the grace period has passed; when the main process ends, whatever is
//!   left of its group is killed, as when a container's init process exits.
//! - A sandbox is an identity: a loopback IP of its own from [`IpRange`] (127.3.0.0/16 by
//!   default), exported as `POD_IP` (and `HOSTNAME`), so that pods on one host can all listen
//!   on the same port.
//! - stdout and stderr go to `<log dir>/<container name>/<attempt>.log` (the log dir is the
//!   sandbox's `log_directory`, or `<state>/pods/<sandbox id>`), rotated by size (copy, then
//!   truncate: see [`ProcessRuntimeConfig::log_max_bytes`]). Each log has a time index
//!   (`<log>.times`) that gives its lines their times, for `sinceTime` and `timestamps`
//!   (see `stamps`).
//! - Limits: cgroup v2 when available, otherwise rlimits; see [`LimitsMode`] and
//!   [`ProcessRuntime::limits_mode`].
//! - Mounts: a process has no mount namespace, so a container's mounts become symlinks in
//!   a *root view* directory, exported as `ORCHESTRA_ROOT` (and the working directory when
//!   the container sets none); see [`mounts`].
//! - Exit codes: the process's code, or 128 + n for a process killed by signal n.
//! - State: one JSON file per sandbox and container under the state directory. A new
//!   `ProcessRuntime` on the same directory re-adopts the processes still running (checked
//!   by pid and by start time from `/proc/PID/stat`, so a reused pid is not mistaken for
//!   them) instead of restarting them. It cannot `wait()` on processes it did not spawn: it
//!   watches them through a pidfd, and when one ends its exit code is unknown (reported as
//!   `exit_code: None`, reason `Unknown`). A process that ended while no runtime ran is
//!   reported the same way.
//!
//! # Layout
//! - `follow`: following a log file;
//! - [`ip`]: [`IpRange`], pod IP allocation;
//! - [`limits`]: [`LimitsMode`], cgroup v2 and rlimits;
//! - `logfile`: log files, rotation and reading;
//! - `lookup`: the program's path from the container's `PATH` (so that spawning avoids a fork);
//! - [`mounts`]: the root view of a container's mounts;
//! - `procfs`: `/proc/PID/stat` and exit codes;
//! - `record`: the JSON state files;
//! - `signal`: stop-signal names;
//! - `stamps`: the logs' time indexes (per-line times);
//! - `reap`: waiting for processes to end.

mod follow;
pub mod ip;
pub mod limits;
mod logfile;
mod lookup;
pub mod mounts;
mod procfs;
mod reap;
mod record;
mod runtime;
mod signal;
mod stamps;

pub use ip::IpRange;
pub use limits::LimitsMode;
pub use runtime::{ProcessRuntime, ProcessRuntimeConfig};
