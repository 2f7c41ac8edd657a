//! `orchestra etcd`: orchestra's embedded store served over etcd's v3 gRPC API, so that
//! `etcdctl`, etcd clients and tools work against it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// `orchestra etcd --listen ADDR --data-dir DIR [--memory]`.
#[derive(Debug, Args)]
pub struct EtcdArgs {
    /// The address to serve the etcd v3 API on.
    #[arg(long, default_value = "127.0.0.1:2379")]
    pub listen: SocketAddr,
    /// The durable store's data directory (created if missing).
    #[arg(long, required_unless_present = "memory")]
    pub data_dir: Option<PathBuf>,
    /// Serve an in-memory store instead: nothing survives a restart.
    #[arg(long, conflicts_with = "data_dir")]
    pub memory: bool,
}

impl EtcdArgs {
    /// The server's run options.
    pub fn run_options(self) -> orchestra_store::etcd::server::RunOptions {
        orchestra_store::etcd::server::RunOptions {
            listen: self.listen,
            data_dir: self.data_dir.unwrap_or_default(),
            memory: self.memory,
            server: Default::default(),
        }
    }
}
