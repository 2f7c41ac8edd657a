//! `orchestra cluster --nodes N --runtime fake|process [--listen ADDR] [--data-dir DIR]`: a whole
//! cluster in one process ([`orchestra::cluster::Cluster`]): the store, the API server, the
//! scheduler, the controllers, N node agents, the service proxy, the cluster DNS and the mesh
//! identity service (`--mesh-trust-domain`, `--token-auth-file`). Stops cleanly (pods
//! included) on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use orchestra::cluster::{Cluster, ClusterError, NodeRuntime};

/// `orchestra cluster ...`.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// How many node agents.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// How the nodes run pods: simulated (`fake`, for scale) or as local processes.
    #[arg(long, value_enum, default_value_t = NodeRuntime::Process)]
    pub runtime: NodeRuntime,
    /// Where the API server listens (gRPC and HTTP on one port).
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub listen: SocketAddr,
    /// Keep the store and the nodes' state here (default: a temporary directory, removed on
    /// exit).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// How long a silent node stays Ready, in seconds (Kubernetes: 40).
    #[arg(long, default_value_t = 40)]
    pub node_monitor_grace_period: u64,
    /// Where the cluster DNS listens, UDP and TCP (port 0: a free port, printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub cluster_dns_addr: SocketAddr,
    /// Do not run the cluster DNS.
    #[arg(long)]
    pub no_cluster_dns: bool,
    /// The service mesh's trust domain: the mesh CA (kept in DATA_DIR/mesh) signs
    /// certificates for `spiffe://DOMAIN/ns/NAMESPACE/sa/ACCOUNT`, to workloads presenting
    /// that service account's token or certificate.
    #[arg(long, default_value = "cluster.local")]
    pub mesh_trust_domain: String,
    /// Bearer tokens, Kubernetes' static token file format: `token,user,uid,"group1,group2"`
    /// per line (e.g. service account tokens for workloads' mesh certificates). Re-read when
    /// it changes.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
}

/// Runs the cluster until SIGTERM or Ctrl-C.
pub async fn run(args: ClusterArgs) -> Result<(), ClusterError> {
    // Before anything starts: the API answers while the nodes are still starting.
    let shutdown = super::server::shutdown_signal();
    let mut builder = Cluster::builder()
        .nodes(args.nodes)
        .runtime(args.runtime)
        .listen(args.listen)
        .node_monitor_grace(Duration::from_secs(args.node_monitor_grace_period.max(1)))
        .mesh_trust_domain(&args.mesh_trust_domain);
    if let Some(dir) = &args.data_dir {
        builder = builder.data_dir(dir);
    }
    if let Some(tokens) = &args.token_auth_file {
        builder = builder.token_auth_file(tokens);
    }
    if !args.no_cluster_dns {
        builder = builder.dns(args.cluster_dns_addr);
    }
    let cluster = builder.start().await?;
    tracing::info!(url = %cluster.url(), nodes = args.nodes, runtime = ?args.runtime, "cluster running");
    println!(
        "orchestra cluster: API at {} ({} {:?} nodes)",
        cluster.url(),
        args.nodes,
        args.runtime
    );
    println!(
        "orchestra cluster: credentials in {} (orchestra ctl --credentials FILE, or export ORCHESTRA_CREDENTIALS=FILE)",
        cluster.credentials_path().display()
    );
    if let Some(data_dir) = cluster.credentials_path().parent() {
        println!(
            "orchestra cluster: mesh identity service on the API (trust domain {}, root certificate {})",
            args.mesh_trust_domain,
            data_dir.join("mesh/ca.crt").display()
        );
    }
    if let Some(dns) = cluster.dns_addr() {
        println!("orchestra cluster: cluster DNS at {dns} (UDP and TCP, domain cluster.local)");
    }
    shutdown.await;
    tracing::info!("stopping the cluster");
    cluster.shutdown().await;
    Ok(())
}
