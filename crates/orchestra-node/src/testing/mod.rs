//! The conformance suite of the [`RuntimeDriver`] trait, which every runtime runs (the fake,
//! process and CRI runtimes, yours), after openraft's `testing::Suite`.
//!
//! A runtime plugs in through a [`Harness`]: it makes fresh runtimes and maps a portable
//! [`Workload`] ("print X and exit N", "ignore TERM", "run forever") onto that runtime's
//! [`ContainerConfig`]. [`Suite`] has one method per check, and
//! [`runtime_conformance_tests!`](crate::runtime_conformance_tests) generates one `#[test]` per
//! check so that a failure names it:
//!
//! ```no_run
//! use orchestra_node::testing::{Harness, Workload};
//! use orchestra_node::{ProcessRuntime, ProcessRuntimeConfig};
//!
//! /// Process runtimes, each on a fresh state directory.
//! struct Local(tempfile::TempDir);
//!
//! #[async_trait::async_trait]
//! impl Harness for Local {
//!     type Runtime = ProcessRuntime;
//!     async fn runtime(&self) -> ProcessRuntime {
//!         let dir = tempfile::tempdir_in(self.0.path()).expect("state dir").keep();
//!         ProcessRuntime::new(ProcessRuntimeConfig::new(dir)).await.expect("runtime")
//!     }
//!     fn command(&self, workload: &Workload) -> Vec<String> {
//!         vec!["/bin/sh".into(), "-c".into(), workload.shell_script()]
//!     }
//! }
//!
//! orchestra_node::runtime_conformance_tests! {
//!     #[tokio::test]
//!     harness = Local(tempfile::tempdir().expect("tempdir")),
//! }
//! # fn main() {}
//! ```
//!
//! Checks panic (with what was expected and what was seen) when the runtime misbehaves.
//!
//! Time: checks wait for runtime state with a bounded poll loop on tokio's clock (see
//! [`util`]). A simulated runtime runs them under paused time (`start_paused`) and takes no real
//! time; a runtime of real processes must run in real time, where the checks take what the
//! workloads take (well under a second each, `logs_follow` about one).
//!
//! # Layout
//! - [`workload`]: [`Workload`] and its [`Step`]s;
//! - [`sandbox`]: sandbox lifecycle, distinct sandboxes, stopping a sandbox;
//! - [`container`]: container lifecycle, exit codes, graceful and forced stops, `list`;
//! - [`io`]: `exec_sync` and `logs` (with `since` and `timestamps`);
//! - [`input`]: bad input;
//! - [`util`]: bounded waits and helpers.

use std::time::Duration;

use async_trait::async_trait;

use crate::runtime::{ContainerConfig, RuntimeDriver};

pub mod container;
pub mod input;
pub mod io;
pub mod sandbox;
pub mod util;
pub mod workload;

pub use workload::{Step, Workload};

/// How a runtime takes part in the suite.
#[async_trait]
pub trait Harness: Send + Sync + 'static {
    /// The runtime under test.
    type Runtime: RuntimeDriver;

    /// A fresh runtime, holding nothing (each check takes its own).
    async fn runtime(&self) -> Self::Runtime;

    /// The command (entrypoint and arguments) that makes this runtime's container or exec do
    /// `workload`; for shell-based runtimes `["/bin/sh", "-c", workload.shell_script()]`.
    fn command(&self, workload: &Workload) -> Vec<String>;

    /// A container named `name` doing `workload`. The default puts [`Harness::command`] into
    /// `command` with the image [`Harness::image`].
    fn container_config(&self, name: &str, workload: &Workload) -> ContainerConfig {
        ContainerConfig {
            name: name.to_owned(),
            image: self.image(),
            command: self.command(workload),
            ..ContainerConfig::default()
        }
    }

    /// The image the checks' containers use (ignored by runtimes without images).
    fn image(&self) -> String {
        "busybox:latest".to_owned()
    }

    /// A command that does not exist, for the bad-input check.
    fn missing_command(&self) -> Vec<String> {
        vec!["/nonexistent/orchestra-no-such-command".to_owned()]
    }

    /// Whether a container with no command is invalid for this runtime (true unless the
    /// runtime falls back to an image's entrypoint).
    fn empty_command_is_invalid(&self) -> bool {
        true
    }

    /// Whether a ready sandbox has an IP.
    fn sandbox_has_ip(&self) -> bool {
        true
    }

    /// The longest a check waits for the runtime to reach a state before failing.
    fn wait_limit(&self) -> Duration {
        Duration::from_secs(10)
    }
}

/// The conformance checks, one method each, against the runtimes `H` makes.
pub struct Suite<H> {
    harness: H,
}

macro_rules! suite_methods {
    ($($module:ident :: $name:ident),+ $(,)?) => {
        /// The names of every check, in the order [`Suite::run_all`] runs them.
        pub const CHECK_NAMES: &[&str] = &[$(stringify!($name)),+];

        impl<H: Harness> Suite<H> {
            /// A suite over `harness`.
            pub fn new(harness: H) -> Self {
                Suite { harness }
            }

            /// The harness.
            pub fn harness(&self) -> &H {
                &self.harness
            }

            /// Runs every check in turn; panics at the first failure.
            pub async fn run_all(&self) {
                $( self.$name().await; )+
            }

            $(
                #[doc = concat!("Runs [`", stringify!($module), "::", stringify!($name), "`].")]
                pub async fn $name(&self) {
                    $module::$name(&self.harness).await
                }
            )+
        }
    };
}

suite_methods!(
    sandbox::sandbox_lifecycle,
    sandbox::sandboxes_are_distinct,
    sandbox::sandbox_stop_stops_containers,
    container::container_lifecycle,
    container::container_exit_zero,
    container::container_stop_graceful,
    container::container_stop_kills_after_grace,
    container::list_for_readoption,
    io::exec_sync,
    io::logs,
    io::logs_follow,
    io::logs_since_and_timestamps,
    input::bad_input,
);

/// Panics unless `names` are exactly [`CHECK_NAMES`]: keeps a test list generated by
/// [`runtime_conformance_tests!`](crate::runtime_conformance_tests) in step with the suite.
pub fn assert_covers_every_check(names: &[&str]) {
    let mut expected: Vec<&str> = CHECK_NAMES.to_vec();
    let mut got = names.to_vec();
    expected.sort_unstable();
    got.sort_unstable();
    assert_eq!(
        got, expected,
        "the generated tests and the suite's checks differ"
    );
}

/// Generates one test per conformance check for a harness expression, plus a test that the list
/// covers every check. Put the runtime's test attribute first (`#[tokio::test]` for real
/// processes, `#[tokio::test(start_paused = true)]` for a simulated runtime).
#[macro_export]
macro_rules! runtime_conformance_tests {
    ($(#[$attr:meta])* harness = $harness:expr $(,)?) => {
        $crate::runtime_conformance_tests!(@all [$(#[$attr])*] ($harness);
            sandbox_lifecycle, sandboxes_are_distinct, sandbox_stop_stops_containers,
            container_lifecycle, container_exit_zero, container_stop_graceful,
            container_stop_kills_after_grace, list_for_readoption, exec_sync, logs, logs_follow,
            logs_since_and_timestamps, bad_input
        );
    };
    (@all $attrs:tt $harness:tt; $($name:ident),+ $(,)?) => {
        $( $crate::runtime_conformance_tests!(@one $attrs $harness $name); )+

        #[test]
        fn conformance_tests_cover_every_check() {
            $crate::testing::assert_covers_every_check(&[$(stringify!($name)),+]);
        }
    };
    (@one [$(#[$attr:meta])*] ($harness:expr) $name:ident) => {
        $(#[$attr])*
        async fn $name() {
            $crate::testing::Suite::new($harness).$name().await;
        }
    };
}
