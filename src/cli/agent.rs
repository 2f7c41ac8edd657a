//! `orchestra agent --server URL --node-name NAME --runtime fake|process|cri [--state-dir DIR]
//! [--pod-ip-range CIDR] [--cri-endpoint unix:///PATH --pod-log-dir DIR] [--cpu N --memory Q
//! --pods N] [--address IP] [--node-lease-duration-seconds S]
//! [--dns ADDR | --cluster-dns ADDR] [--cluster-domain DOMAIN] [--dns-upstream ADDRS]
//! [--proxy [userspace|nftables]] [--dns-credentials FILE] [--proxy-credentials FILE]
//! [--agent-listen ADDR]`: the node agent against an API server, serving container logs on
//! its endpoint (`--agent-listen`, published in the Node's status), optionally serving the
//! cluster DNS itself (`--dns`) and running a service proxy (`--proxy`), each as the node or,
//! with its own credentials file, as its own least-privileged user (`system:kube-proxy`, the
//! service account `kube-system/coredns`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use orchestra::api::Quantity;
use orchestra_node::RuntimeDriver;
use orchestra_node::agent::env::ClusterDnsSettings;
use orchestra_node::agent::{Agent, AgentConfig};
use orchestra_node::endpoint::{AgentEndpoint, EndpointTls, RunningEndpoint};
use orchestra_node::fake::FakeRuntime;
use orchestra_node::process::{IpRange, ProcessRuntime, ProcessRuntimeConfig};

/// Which container runtime the agent drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RuntimeKind {
    /// Simulated containers (no processes): for tests and for simulating many nodes.
    Fake,
    /// Containers as local processes.
    Process,
    /// containerd (or any CRI v1 server) over its unix socket (`--cri-endpoint`); needs the
    /// `cri` feature.
    Cri,
}

/// Which service proxy the agent runs (`--proxy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProxyMode {
    /// `TcpProxy`: a userspace L4 proxy listening on each ClusterIP:port and NodePort.
    Userspace,
    /// `NftablesProxy`: the kernel forwards service traffic (table `inet orchestra`; needs
    /// root and the `nft` and `conntrack` tools).
    Nftables,
}

/// `orchestra agent ...`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The API server (also `ORCHESTRA_SERVER`; default: the credentials' server, else
    /// https://127.0.0.1:7443; `http://...`: an `--insecure` server, in plain text).
    #[arg(long, env = "ORCHESTRA_SERVER")]
    pub server: Option<String>,
    /// The credentials file (`orchestra server` writes `DATA_DIR/admin.credentials`; default:
    /// `ORCHESTRA_CREDENTIALS`, else `~/.orchestra/credentials` if it exists).
    #[arg(long, env = "ORCHESTRA_CREDENTIALS")]
    pub credentials: Option<PathBuf>,
    /// A join token (the server's `DATA_DIR/node-token`): with no credentials, the agent
    /// obtains a node certificate with it on first contact, and keeps it in `--state-dir`.
    #[arg(long, env = "ORCHESTRA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The node's name (a DNS subdomain).
    #[arg(long)]
    pub node_name: String,
    /// The container runtime.
    #[arg(long, value_enum)]
    pub runtime: RuntimeKind,
    /// Where the runtime keeps its state (the process runtime; ignored by `fake`). An agent
    /// restarted on the same directory re-adopts the running pods.
    #[arg(long, required_if_eq("runtime", "process"))]
    pub state_dir: Option<PathBuf>,
    /// The loopback range the process runtime gives pod IPs from. Agents sharing one host
    /// need ranges that do not overlap.
    #[arg(long, default_value = "127.3.0.0/16", value_parser = parse_ip_range)]
    pub pod_ip_range: IpRange,
    /// The CRI runtime's socket (`--runtime cri`).
    #[arg(long, default_value = "unix:///run/containerd/containerd.sock")]
    pub cri_endpoint: String,
    /// Where the CRI runtime's containers log (`<dir>/<namespace>_<pod>_<uid>/<container>/<n>.log`).
    #[arg(long, default_value = "/var/log/orchestra/pods")]
    pub pod_log_dir: PathBuf,
    /// CPU capacity (a quantity: `4`, `3500m`); the machine's CPU count by default.
    #[arg(long)]
    pub cpu: Option<String>,
    /// Memory capacity (a quantity: `16Gi`); the machine's memory by default.
    #[arg(long)]
    pub memory: Option<String>,
    /// How many pods the node runs at most.
    #[arg(long, default_value_t = 110)]
    pub pods: u32,
    /// The node's InternalIP.
    #[arg(long, default_value = "127.0.0.1")]
    pub address: String,
    /// The node Lease's duration in seconds; the agent renews it four times within it (as
    /// kubelet does). Keep it below the controllers' `--node-monitor-grace-period`.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub node_lease_duration_seconds: u64,
    /// Run a cluster DNS server on this address (UDP and TCP; port 0: a free port) and point
    /// `dnsPolicy: ClusterFirst` pods at it.
    #[arg(long, conflicts_with = "cluster_dns")]
    pub dns: Option<SocketAddr>,
    /// Point `dnsPolicy: ClusterFirst` pods at the cluster DNS served elsewhere (e.g. by
    /// `orchestra server --cluster-dns-addr`).
    #[arg(long)]
    pub cluster_dns: Option<SocketAddr>,
    /// Run a service proxy following the API's Services and Endpoints: `userspace` (the
    /// default when the flag is given bare) or `nftables`.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "userspace")]
    pub proxy: Option<ProxyMode>,
    /// The service proxy's own credentials (`orchestra server` writes
    /// `DATA_DIR/kube-proxy.credentials`, user `system:kube-proxy`, which may only list and
    /// watch Services and Endpoints); default: the node's.
    #[arg(long, requires = "proxy")]
    pub proxy_credentials: Option<PathBuf>,
    /// The cluster DNS's own credentials (`orchestra server` writes
    /// `DATA_DIR/coredns.credentials`, the service account `kube-system/coredns`, which may
    /// only list and watch Services and Endpoints); default: the node's.
    #[arg(long, requires = "dns")]
    pub dns_credentials: Option<PathBuf>,
    /// Where the agent's endpoint (container logs for `orchestra ctl logs`) listens; port 0
    /// picks a free port. The port is published in the Node's status. With a TLS server it
    /// serves TLS with the node's certificate (from the join token) and answers only the API
    /// server; with an `--insecure` server it is plain HTTP.
    #[arg(long, default_value = "0.0.0.0:10250")]
    pub agent_listen: SocketAddr,
    /// How often the files of pods' ConfigMap, Secret, downward API and projected volumes are
    /// refreshed from the API (kubelet's sync period): a duration such as `30s`, `1m`, `500ms`
    /// (units ms, s, m, h), more than zero.
    #[arg(long, default_value = "1m", value_parser = parse_interval)]
    pub volume_refresh_interval: Duration,
    /// How often the process runtime looks at running containers' logs for new lines to stamp
    /// with the time (`ctl logs --timestamps`, `--since-time`): a line's time is at most this
    /// late. A duration such as `100ms`, `1s` (units ms, s, m, h), more than zero.
    #[arg(long, default_value = "100ms", value_parser = parse_interval)]
    pub log_stamp_interval: Duration,
    /// The cluster DNS's domain and upstreams.
    #[command(flatten)]
    pub dns_args: super::dns::DnsArgs,
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A capacity flag is not a quantity.
    #[error("--{flag} {value:?} is not a quantity (e.g. 4, 500m, 16Gi)")]
    Quantity {
        /// The flag.
        flag: &'static str,
        /// What was given.
        value: String,
        /// Why it does not parse.
        #[source]
        source: orchestra::api::QuantityError,
    },
    /// The runtime could not start (its state directory, its recorded state).
    #[error("starting the {runtime} runtime")]
    Runtime {
        /// Which runtime.
        runtime: &'static str,
        /// Why.
        #[source]
        source: orchestra_node::RuntimeError,
    },
    /// `--runtime cri` in a binary built without the `cri` feature.
    #[cfg(not(feature = "cri"))]
    #[error("this orchestra was built without the `cri` feature: rebuild it with `--features cri`")]
    CriNotBuilt,
    /// The cluster DNS could not start.
    #[error(transparent)]
    Dns(#[from] super::dns::DnsStartError),
    /// The API server could not be reached.
    #[error("connecting to the API server at {server}")]
    Connect {
        /// The address tried.
        server: String,
        /// Why.
        #[source]
        source: super::security::ApiConnectError,
    },
}

/// The agent's configuration from the flags (checked before anything connects).
pub fn config(args: &AgentArgs) -> Result<AgentConfig, AgentError> {
    let mut config = AgentConfig::new(args.node_name.clone());
    let quantity = |flag: &'static str, value: &str| {
        Quantity::parse(value).map_err(|source| AgentError::Quantity {
            flag,
            value: value.to_owned(),
            source,
        })
    };
    if let Some(cpu) = &args.cpu {
        config.cpu = quantity("cpu", cpu)?;
    }
    if let Some(memory) = &args.memory {
        config.memory = quantity("memory", memory)?;
    }
    config.pods = args.pods;
    config.address.clone_from(&args.address);
    if let Some(dir) = &args.state_dir {
        // Pods' volumes (Secret files among them) live with the node's state.
        config.volumes_dir = dir.join("volumes");
    }
    config.volume_refresh_interval = args.volume_refresh_interval;
    config.lease_duration = Duration::from_secs(args.node_lease_duration_seconds);
    config.lease_renew_interval = config.lease_duration / 4;
    if let Some(server) = args.cluster_dns {
        config.cluster_dns = Some(ClusterDnsSettings {
            server,
            domain: args.dns_args.domain(),
        });
    }
    args.dns_args.config()?;
    Ok(config)
}

/// Runs the agent until Ctrl-C or SIGTERM. Pods keep running in the runtime: the next agent
/// re-adopts them.
pub async fn run(args: AgentArgs) -> Result<(), AgentError> {
    let config = config(&args)?;
    match args.runtime {
        RuntimeKind::Fake => serve(&args, config, FakeRuntime::new()).await,
        RuntimeKind::Process => {
            let mut runtime_config =
                ProcessRuntimeConfig::new(args.state_dir.clone().unwrap_or_default());
            runtime_config.ip_range = args.pod_ip_range;
            runtime_config.log_stamp_interval = args.log_stamp_interval;
            let runtime = ProcessRuntime::new(runtime_config)
                .await
                .map_err(|source| AgentError::Runtime {
                    runtime: "process",
                    source,
                })?;
            serve(&args, config, runtime).await
        }
        #[cfg(feature = "cri")]
        RuntimeKind::Cri => {
            let runtime_config = orchestra_node::CriRuntimeConfig::new(
                args.cri_endpoint.clone(),
                args.pod_log_dir.clone(),
            );
            let runtime = orchestra_node::CriRuntime::connect(runtime_config)
                .await
                .map_err(|source| AgentError::Runtime {
                    runtime: "cri",
                    source,
                })?;
            tracing::info!(endpoint = %args.cri_endpoint, runtime = runtime.runtime_version(), "CRI runtime connected");
            serve(&args, config, runtime).await
        }
        #[cfg(not(feature = "cri"))]
        RuntimeKind::Cri => Err(AgentError::CriNotBuilt),
    }
}

/// Connect and run the agent over `runtime` until the shutdown signal.
async fn serve(
    args: &AgentArgs,
    mut config: AgentConfig,
    runtime: impl RuntimeDriver,
) -> Result<(), AgentError> {
    let (client, server, credentials) = super::security::connect_agent(
        args.server.as_deref(),
        args.credentials.as_deref(),
        args.token.as_deref(),
        &config.node_name,
        args.state_dir.as_deref(),
    )
    .await
    .map_err(|source| AgentError::Connect {
        server: args.server.clone().unwrap_or_default(),
        source,
    })?;
    // The proxy and the DNS act as their own least-privileged users when given their files.
    let proxy_client = own_client(args, args.proxy_credentials.as_deref(), &client).await?;
    let dns_client = own_client(args, args.dns_credentials.as_deref(), &client).await?;
    let dns = match args.dns {
        Some(addr) => {
            let dns = args.dns_args.start(dns_client, addr).await?;
            config.cluster_dns = Some(ClusterDnsSettings {
                server: dns.local_addr(),
                domain: args.dns_args.domain(),
            });
            Some(dns)
        }
        None => None,
    };
    let proxy = args.proxy.map(|mode| start_proxy(mode, proxy_client));
    let runtime = Arc::new(runtime);
    let endpoint = start_endpoint(args, &config, runtime.clone(), credentials.as_ref()).await;
    if let Some(endpoint) = &endpoint {
        config.endpoint_port = Some(endpoint.local_addr().port());
    }
    tracing::info!(%server, node = %config.node_name, runtime = ?args.runtime, proxy = ?args.proxy, "agent running");
    Agent::with_shared_runtime(client, runtime, config)
        .run(super::server::shutdown_signal())
        .await;
    drop(endpoint);
    if let Some(proxy) = proxy {
        proxy.abort();
    }
    if let Some(dns) = dns
        && let Err(error) = dns.shutdown().await
    {
        tracing::warn!(%error, "the cluster DNS did not stop cleanly");
    }
    tracing::info!("agent stopped");
    Ok(())
}

/// Starts the agent's endpoint on `--agent-listen`: TLS with the node's certificate when the
/// agent holds one (joined with the token), plain HTTP towards an `--insecure` server, and
/// not at all when the credentials are not a node's (say, an administrator's): the endpoint
/// would have no certificate the API server can verify.
async fn start_endpoint<R: RuntimeDriver>(
    args: &AgentArgs,
    config: &AgentConfig,
    runtime: Arc<R>,
    credentials: Option<&orchestra_api::tls::Credentials>,
) -> Option<RunningEndpoint> {
    let endpoint = AgentEndpoint::new(runtime);
    let endpoint = match credentials {
        None => endpoint,
        Some(credentials) => match node_tls(credentials, &config.node_name) {
            Ok(tls) => endpoint.with_tls(tls),
            Err(why) => {
                tracing::warn!(node = %config.node_name, "container logs are not served: {why}; join with --token to get a node certificate");
                return None;
            }
        },
    };
    // The pods do not depend on the endpoint: an address in use (several agents on one
    // host, all on the default port) costs the logs, not the node.
    match endpoint.bind(args.agent_listen).await {
        Ok(running) => {
            tracing::info!(addr = %running.local_addr(), tls = running.is_tls(), "agent endpoint serving container logs");
            Some(running)
        }
        Err(error) => {
            tracing::warn!(addr = %args.agent_listen, %error, "container logs are not served: the agent endpoint cannot listen there (choose another --agent-listen; port 0 picks a free one)");
            None
        }
    }
}

/// The endpoint's TLS from the agent's credentials, if they hold this node's certificate.
fn node_tls(
    credentials: &orchestra_api::tls::Credentials,
    node: &str,
) -> Result<EndpointTls, String> {
    let (Some(cert), Some(key)) = (&credentials.client_certificate, &credentials.client_key) else {
        return Err("the credentials hold no client certificate".into());
    };
    let user = orchestra_api::tls::identity::user_from_pem(cert)?;
    if user.node_name() != Some(node) {
        return Err(format!(
            "the credentials are user {:?}'s, not node {node:?}'s",
            user.name
        ));
    }
    EndpointTls::new(cert, key, &credentials.certificate_authority).map_err(|err| err.to_string())
}

/// Starts the service proxy `mode`, fed by a `ProxyFollower` on `client`.
/// A client connected with `credentials` (to `--server` when given, else the file's server),
/// or a clone of the agent's `client` without them.
async fn own_client(
    args: &AgentArgs,
    credentials: Option<&std::path::Path>,
    client: &orchestra_api::RemoteClient,
) -> Result<orchestra_api::RemoteClient, AgentError> {
    let Some(path) = credentials else {
        return Ok(client.clone());
    };
    let (own, _) = super::security::connect(args.server.as_deref(), Some(path))
        .await
        .map_err(|source| AgentError::Connect {
            server: args.server.clone().unwrap_or_default(),
            source,
        })?;
    Ok(own)
}

fn start_proxy(
    mode: ProxyMode,
    client: orchestra_api::RemoteClient,
) -> tokio::task::JoinHandle<()> {
    use orchestra::mesh::nftables::NftablesProxy;
    use orchestra::mesh::{FollowerConfig, ProxyFollower, TcpProxy};
    match mode {
        ProxyMode::Userspace => {
            let proxy = Arc::new(TcpProxy::default());
            tokio::spawn(ProxyFollower::new(client, proxy, FollowerConfig::default()).run())
        }
        ProxyMode::Nftables => {
            let proxy = Arc::new(NftablesProxy::default());
            tokio::spawn(ProxyFollower::new(client, proxy, FollowerConfig::default()).run())
        }
    }
}

/// A positive interval: an integer and a unit, `ms`, `s`, `m` or `h` (`500ms`, `30s`, `1m`).
fn parse_interval(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit; write e.g. 500ms, 30s, 1m or 1h"))?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        format!("{text:?} does not start with a whole number; write e.g. 500ms, 30s, 1m or 1h")
    })?;
    let per_unit = match unit {
        "ms" => Duration::from_millis(1),
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}; use ms, s, m or h"
            ));
        }
    };
    let interval = u32::try_from(n)
        .ok()
        .and_then(|n| per_unit.checked_mul(n))
        .ok_or_else(|| format!("{text:?} is too long"))?;
    if interval.is_zero() {
        return Err(format!("{text:?} must be more than zero"));
    }
    Ok(interval)
}

fn parse_ip_range(text: &str) -> Result<IpRange, String> {
    text.parse()
        .map_err(|e: orchestra_node::RuntimeError| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(extra: &[&str]) -> AgentArgs {
        let mut argv = vec!["orchestra", "agent", "--node-name", "n1"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Agent(args) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn capacity_flags_become_the_node_capacity() {
        let args = parse(&[
            "--runtime",
            "fake",
            "--cpu",
            "4",
            "--memory",
            "16Gi",
            "--pods",
            "50",
        ]);
        let config = config(&args).unwrap();
        assert_eq!(config.cpu.milli_value(), 4000);
        assert_eq!(config.memory.value(), 16 << 30);
        assert_eq!(config.pods, 50);
    }

    #[test]
    fn cluster_dns_flags_point_pods_at_it_and_bad_domains_are_refused() {
        let args = parse(&[
            "--runtime",
            "fake",
            "--cluster-dns",
            "127.0.0.1:5353",
            "--cluster-domain",
            "corp.example.",
        ]);
        let settings = config(&args).unwrap();
        assert_eq!(
            settings.cluster_dns,
            Some(ClusterDnsSettings {
                server: "127.0.0.1:5353".parse().unwrap(),
                domain: "corp.example".into(),
            })
        );
        let args = parse(&["--runtime", "fake", "--cluster-domain", "a..b"]);
        let err = config(&args).unwrap_err().to_string();
        assert!(err.contains("--cluster-domain"), "{err}");
        let both = Cli::try_parse_from([
            "orchestra",
            "agent",
            "--node-name",
            "n1",
            "--runtime",
            "fake",
            "--dns",
            "127.0.0.1:0",
            "--cluster-dns",
            "127.0.0.1:53",
        ]);
        assert!(both.is_err());
    }

    #[test]
    fn the_proxy_flag_chooses_userspace_or_nftables() {
        assert_eq!(parse(&["--runtime", "fake"]).proxy, None);
        assert_eq!(
            parse(&["--runtime", "fake", "--proxy"]).proxy,
            Some(ProxyMode::Userspace)
        );
        assert_eq!(
            parse(&["--runtime", "fake", "--proxy", "nftables"]).proxy,
            Some(ProxyMode::Nftables)
        );
        assert!(
            Cli::try_parse_from([
                "orchestra",
                "agent",
                "--node-name",
                "n1",
                "--runtime",
                "fake",
                "--proxy",
                "ipvs"
            ])
            .is_err()
        );
    }

    #[test]
    fn refresh_and_stamp_intervals_are_positive_durations() {
        let args = parse(&["--runtime", "fake"]);
        assert_eq!(args.volume_refresh_interval, Duration::from_secs(60));
        assert_eq!(args.log_stamp_interval, Duration::from_millis(100));
        let args = parse(&[
            "--runtime",
            "fake",
            "--volume-refresh-interval",
            "30s",
            "--log-stamp-interval",
            "250ms",
        ]);
        assert_eq!(
            config(&args).unwrap().volume_refresh_interval,
            Duration::from_secs(30)
        );
        assert_eq!(args.log_stamp_interval, Duration::from_millis(250));
        for (flag, value, says) in [
            ("--volume-refresh-interval", "0s", "must be more than zero"),
            ("--volume-refresh-interval", "0", "has no unit"),
            (
                "--log-stamp-interval",
                "fast",
                "does not start with a whole number",
            ),
            ("--log-stamp-interval", "5d", "unknown unit \"d\""),
        ] {
            let err = Cli::try_parse_from([
                "orchestra",
                "agent",
                "--node-name",
                "n1",
                "--runtime",
                "fake",
                flag,
                value,
            ])
            .unwrap_err()
            .to_string();
            assert!(err.contains(flag) && err.contains(says), "{err}");
        }
    }

    #[test]
    fn a_bad_quantity_names_the_flag() {
        let args = parse(&["--runtime", "fake", "--memory", "lots"]);
        let err = config(&args).unwrap_err().to_string();
        assert!(err.contains("--memory \"lots\""), "{err}");
    }

    #[test]
    fn the_process_runtime_needs_a_state_dir_and_a_valid_range() {
        let missing = Cli::try_parse_from([
            "orchestra",
            "agent",
            "--node-name",
            "n1",
            "--runtime",
            "process",
        ]);
        assert!(missing.unwrap_err().to_string().contains("--state-dir"));
        let args = parse(&[
            "--runtime",
            "process",
            "--state-dir",
            "/tmp/x",
            "--pod-ip-range",
            "127.5.0.0/24",
        ]);
        assert_eq!(args.pod_ip_range.to_string(), "127.5.0.0/24");
        let bad = Cli::try_parse_from([
            "orchestra",
            "agent",
            "--node-name",
            "n1",
            "--runtime",
            "process",
            "--state-dir",
            "/tmp/x",
            "--pod-ip-range",
            "10.0.0.0/8",
        ]);
        assert!(bad.unwrap_err().to_string().contains("--pod-ip-range"));
    }

    #[test]
    fn the_cri_runtime_takes_an_endpoint_and_a_log_dir() {
        let args = parse(&["--runtime", "cri"]);
        assert_eq!(args.runtime, RuntimeKind::Cri);
        assert_eq!(args.cri_endpoint, "unix:///run/containerd/containerd.sock");
        let args = parse(&[
            "--runtime",
            "cri",
            "--cri-endpoint",
            "unix:///tmp/c.sock",
            "--pod-log-dir",
            "/tmp/logs",
        ]);
        assert_eq!(args.cri_endpoint, "unix:///tmp/c.sock");
        assert_eq!(args.pod_log_dir, PathBuf::from("/tmp/logs"));
    }

    #[cfg(feature = "cri")]
    #[tokio::test]
    async fn a_cri_endpoint_that_does_not_answer_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("none.sock");
        let endpoint = format!("unix://{}", socket.display());
        let err = run(parse(&["--runtime", "cri", "--cri-endpoint", &endpoint]))
            .await
            .unwrap_err();
        assert!(
            matches!(err, AgentError::Runtime { runtime: "cri", .. }),
            "{err:?}"
        );
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("none.sock"), "{source}");

        let err = run(parse(&[
            "--runtime",
            "cri",
            "--cri-endpoint",
            "tcp://127.0.0.1:1",
        ]))
        .await
        .unwrap_err();
        let source = std::error::Error::source(&err).unwrap().to_string();
        assert!(source.contains("unix:///PATH"), "{source}");
    }
}
