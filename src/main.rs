//! The `orchestra` binary: one command for every part of an orchestra cluster.
//!
//! Today it serves the API with the scheduler and the controllers in-process
//! (`orchestra server ...`), runs those alone against an API server (`orchestra scheduler`,
//! `orchestra controller-manager`), talks to it as kubectl does
//! (`orchestra ctl apply|get|describe|delete`), serves the store over etcd's v3 API
//! (`orchestra etcd ...`) and runs the benchmarks (`orchestra bench ...`); the node `agent`
//! and `cluster` arrive with the issues that build those components (see
//! `docs/architecture.md`).
//! Logs go to stderr through `tracing` (filter with `RUST_LOG`, default `info`); results go
//! to stdout.
//!
//! # Layout
//! - `cli`: the command line (clap derive), one module per command family.
//! - `bench`: `orchestra bench ...`, the benchmarks.
//! - `ctl`: what `orchestra ctl` does, over any `Client`.

mod bench;
mod cli;
#[cfg(feature = "server")]
mod ctl;

/// mimalloc instead of the system allocator: the store allocates and frees a few small objects
/// per write (events, versions, responses), and glibc's malloc, with its arena locks and
/// `mprotect` growth, cost about a fifth of an in-memory put. The `system-allocator` feature
/// leaves it out, for heap profilers that hook `malloc`.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
enum Error {
    /// A benchmark failed.
    #[error(transparent)]
    Bench(#[from] bench::BenchError),
    /// The etcd API server failed.
    #[cfg(feature = "etcd")]
    #[error(transparent)]
    Etcd(#[from] orchestra_store::etcd::server::ServeError),
    /// An `orchestra etcd snapshot` command failed.
    #[cfg(feature = "etcd")]
    #[error(transparent)]
    EtcdSnapshot(#[from] cli::etcd::SnapshotCommandError),
    /// The API server failed.
    #[cfg(feature = "server")]
    #[error(transparent)]
    Server(#[from] cli::server::ServerError),
    /// The scheduler failed.
    #[cfg(feature = "server")]
    #[error(transparent)]
    Scheduler(#[from] cli::scheduler::SchedulerError),
    /// The controller manager failed.
    #[cfg(feature = "server")]
    #[error(transparent)]
    ControllerManager(#[from] cli::controller_manager::ControllerManagerError),
    /// The node agent failed.
    #[cfg(feature = "server")]
    #[error(transparent)]
    Agent(#[from] cli::agent::AgentError),
    /// The in-process cluster failed to start.
    #[cfg(feature = "server")]
    #[error(transparent)]
    Cluster(#[from] orchestra::cluster::ClusterError),
    /// The mesh sidecar failed.
    #[cfg(feature = "server")]
    #[error(transparent)]
    Sidecar(#[from] cli::sidecar::SidecarCommandError),
    /// A `ctl` command failed.
    #[cfg(feature = "server")]
    #[error(transparent)]
    Ctl(#[from] ctl::CtlError),
    /// The async runtime could not start.
    #[error("starting the tokio runtime failed")]
    Runtime(#[source] std::io::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", chain(&err));
            ExitCode::FAILURE
        }
    }
}

/// Run the command on a multi-thread tokio runtime.
fn run(cli: Cli) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(async move {
        match cli.command {
            Command::Bench(command) => bench::run(command).await?,
            #[cfg(feature = "etcd")]
            Command::Etcd(mut args) => match args.action.take() {
                Some(cli::etcd::EtcdAction::Snapshot(command)) => {
                    cli::etcd::run_snapshot(command, &mut std::io::stdout()).await?
                }
                None => orchestra_store::etcd::server::run_etcd_server(args.run_options()).await?,
            },
            #[cfg(feature = "server")]
            Command::Server(args) => cli::server::run(args).await?,
            #[cfg(feature = "server")]
            Command::Ctl(args) => {
                let (client, _) =
                    cli::security::connect(args.server.as_deref(), args.credentials.as_deref())
                        .await
                        .map_err(|source| ctl::CtlError::Connect {
                            server: args.server.clone().unwrap_or_default(),
                            source,
                        })?;
                let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
                ctl::run(&client, &args, &mut out, &mut err).await?
            }
            #[cfg(feature = "server")]
            Command::Scheduler(args) => cli::scheduler::run(args).await?,
            #[cfg(feature = "server")]
            Command::ControllerManager(args) => cli::controller_manager::run(args).await?,
            Command::Agent(args) => cli::agent::run(args).await?,
            #[cfg(feature = "server")]
            Command::Cluster(args) => cli::cluster::run(args).await?,
            #[cfg(feature = "server")]
            Command::Sidecar(args) => cli::sidecar::run(args).await?,
        }
        Ok(())
    })
}

/// Log to stderr, filtered by `RUST_LOG` (default: `info`, but `warn` for hickory-server,
/// which logs every DNS query it answers at info).
fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,hickory_server=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// An error and its sources, as `outer: inner: innermost`.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_joins_an_error_and_its_sources() {
        let io = std::io::Error::other("disk full");
        let err = bench::BenchError::Output(io);
        assert_eq!(
            chain(&err),
            "writing the result to stdout failed: disk full"
        );
    }
}
