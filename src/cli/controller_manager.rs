//! `orchestra controller-manager --server URL [--controllers LIST] [--leader-elect]
//! [--lease-namespace NS] [--identity ID] [--metrics-listen ADDR] [--root-ca-file FILE]`: the
//! built-in controllers (replicaset, deployment, job, daemonset, statefulset, endpoints,
//! nodelifecycle, garbagecollector, namespace, serviceaccount, root-ca-cert-publisher,
//! ttl-after-finished; all by default) over `RemoteClient`, behind leader
//! election on the Lease `controller-manager` by default, with Prometheus metrics on
//! `/metrics` of the admin address. Stops on SIGTERM or Ctrl-C, releasing the lease.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{ArgAction, Args};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use orchestra::controller::controllers::node_lifecycle::NodeLifecycleConfig;
use orchestra::controller::leader::{LeaderElectionConfig, LeaderElectionError};
use orchestra::controller::manager::{
    ControllerManager, ManagerMetrics, UnknownController, parse_controllers,
};

/// The Lease the controller managers elect their leader on.
pub const LEASE_NAME: &str = "controller-manager";

/// `orchestra controller-manager [--server URL] ...`.
#[derive(Debug, Args)]
pub struct ControllerManagerArgs {
    /// The API server (also `ORCHESTRA_SERVER`; default: the credentials' server, else
    /// https://127.0.0.1:7443; `http://...`: an `--insecure` server, in plain text).
    #[arg(long, env = "ORCHESTRA_SERVER")]
    pub server: Option<String>,
    /// The credentials file (`orchestra server` writes `DATA_DIR/controller-manager.credentials`, this component's own
    /// identity, and `DATA_DIR/admin.credentials`; default:
    /// `ORCHESTRA_CREDENTIALS`, else `~/.orchestra/credentials` if it exists).
    #[arg(long, env = "ORCHESTRA_CREDENTIALS")]
    pub credentials: Option<PathBuf>,
    /// The controllers to run: comma-separated names, `*` for all, `-name` to leave one out
    /// (e.g. `*,-nodelifecycle`).
    #[arg(long, default_value = "*")]
    pub controllers: String,
    /// Run the controllers only while holding the Lease (`--leader-elect=false` to run them
    /// unconditionally: only with a single manager).
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    pub leader_elect: bool,
    /// The namespace of the leader election Lease.
    #[arg(long, default_value = "kube-system")]
    pub lease_namespace: String,
    /// This manager's identity in the Lease (default: host name and process id).
    #[arg(long)]
    pub identity: Option<String>,
    /// Where to serve `/metrics` and `/healthz`.
    #[arg(long, default_value = "127.0.0.1:10257")]
    pub metrics_listen: SocketAddr,
    /// How long a node may go without a heartbeat before it is Unknown, in seconds.
    #[arg(long, default_value_t = 40)]
    pub node_monitor_grace_period: u64,
    /// The CA bundle (PEM) published in every namespace's `kube-root-ca.crt` ConfigMap, which
    /// pods see as `ca.crt` next to their token (default: the credentials' CA; with neither,
    /// as against an `--insecure` server, the root CA publisher does not run).
    #[arg(long)]
    pub root_ca_file: Option<PathBuf>,
}

/// Why the controller manager could not run.
#[derive(Debug, thiserror::Error)]
pub enum ControllerManagerError {
    /// The API server could not be reached.
    #[error("connecting to the API server at {server}")]
    Connect {
        /// The address tried.
        server: String,
        /// Why.
        #[source]
        source: super::security::ApiConnectError,
    },
    /// The leader election settings are invalid.
    #[error("leader election")]
    LeaderElection(#[from] LeaderElectionError),
    /// The metrics address could not be bound.
    #[error("listening for metrics on {addr}")]
    Metrics {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `--controllers` names an unknown controller.
    #[error(transparent)]
    Controllers(#[from] UnknownController),
    /// The grace period is zero.
    #[error("--node-monitor-grace-period must be at least 1 second")]
    GracePeriod,
    /// `--root-ca-file` cannot be read, or holds no certificate.
    #[error("--root-ca-file {path}: {message}")]
    RootCa {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// The CA bundle to publish: `--root-ca-file`'s, else the credentials' CA (`None` for a
/// plain-text server, or when the credentials cannot be read: connecting reports that).
pub fn root_ca(args: &ControllerManagerArgs) -> Result<Option<String>, ControllerManagerError> {
    if let Some(path) = &args.root_ca_file {
        let fail = |message: String| ControllerManagerError::RootCa {
            path: path.clone(),
            message,
        };
        let pem = std::fs::read_to_string(path).map_err(|err| fail(err.to_string()))?;
        if !pem.contains("-----BEGIN CERTIFICATE-----") {
            return Err(fail("no PEM certificate in it".to_owned()));
        }
        return Ok(Some(pem));
    }
    match super::security::resolve(args.server.as_deref(), args.credentials.as_deref()) {
        Ok(super::security::Endpoint::Secure(credentials)) => {
            Ok(Some(credentials.certificate_authority))
        }
        _ => Ok(None),
    }
}

/// This process's default identity: the host name and the process id.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "orchestra".to_owned());
    format!("{host}_{}", std::process::id())
}

/// Runs the controller manager until Ctrl-C or SIGTERM.
pub async fn run(args: ControllerManagerArgs) -> Result<(), ControllerManagerError> {
    if args.node_monitor_grace_period == 0 {
        return Err(ControllerManagerError::GracePeriod);
    }
    let controllers = parse_controllers(&args.controllers)?;
    let root_ca = root_ca(&args)?;
    let listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .map_err(|source| ControllerManagerError::Metrics {
            addr: args.metrics_listen,
            source,
        })?;
    let (client, server) =
        super::security::connect(args.server.as_deref(), args.credentials.as_deref())
            .await
            .map_err(|source| ControllerManagerError::Connect {
                server: args.server.clone().unwrap_or_default(),
                source,
            })?;
    let mut manager = ControllerManager::new(client)
        .node_lifecycle(NodeLifecycleConfig {
            grace_period: Duration::from_secs(args.node_monitor_grace_period),
            ..NodeLifecycleConfig::default()
        })
        .controllers(controllers.clone())
        .root_ca(root_ca);
    let identity = args.identity.clone().unwrap_or_else(default_identity);
    if args.leader_elect {
        manager = manager.leader_election(LeaderElectionConfig::new(
            &args.lease_namespace,
            LEASE_NAME,
            &identity,
        ))?;
    }
    let metrics = manager.metrics();
    tracing::info!(%server, leader_elect = args.leader_elect, %identity, controllers = ?controllers, metrics = %args.metrics_listen, "controller manager running");
    let serving = tokio::spawn(serve_metrics(
        listener,
        metrics,
        super::server::shutdown_signal(),
    ));
    manager.run(super::server::shutdown_signal()).await;
    let _ = serving.await;
    tracing::info!("controller manager stopped");
    Ok(())
}

/// Serves `/metrics` (the running controllers' metrics) and `/healthz` until `shutdown`.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    metrics: ManagerMetrics,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "accepting a metrics connection failed");
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let (status, body) = match request.uri().path() {
                    "/metrics" => (StatusCode::OK, metrics.render()),
                    "/healthz" => (StatusCode::OK, "ok\n".to_owned()),
                    _ => (StatusCode::NOT_FOUND, "not found\n".to_owned()),
                };
                let mut response = Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = status;
                response.headers_mut().insert(
                    hyper::header::CONTENT_TYPE,
                    hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
                );
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %err, "metrics connection ended with an error");
            }
        });
    }
}
