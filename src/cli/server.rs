//! `orchestra server`: the API server (gRPC for `RemoteClient`, HTTP/JSON on Kubernetes' REST
//! paths for curl, `/healthz`, `/readyz`, `/metrics`) on one address, over the embedded
//! durable store, an in-memory one, or etcd; and, in the same process over an in-process
//! client on the same store, the scheduling loop (unless `--no-scheduler`) and the built-in
//! controllers (unless `--no-controllers`; behind leader election with `--store etcd`, where
//! several servers may share the store). Stops cleanly on SIGTERM or Ctrl-C.
//!
//! Secure by default: on first start the server creates a cluster CA in `--data-dir/tls`,
//! serves TLS with a certificate from it, authenticates every request (client certificates,
//! `--token-auth-file` tokens, the join token in `DATA_DIR/node-token` for agents' bootstrap),
//! and writes `DATA_DIR/admin.credentials` for `orchestra ctl`, and `scheduler.credentials`,
//! `controller-manager.credentials`, `kube-proxy.credentials` and `coredns.credentials` (users
//! `system:kube-scheduler`, `system:kube-controller-manager`, `system:kube-proxy` and the
//! service account `kube-system/coredns`, which the built-in roles bind; see
//! `orchestra::cluster::credentials`) for the components of a split deployment. Per-user request rate and watch limits are on (`--max-...-per-user`).
//! `--insecure` turns all of it off, for local experiments on a loopback address only.
//!
//! The data directory's format is checked first (`DATA_DIR/FORMAT`, see
//! `orchestra::data_dir`): one written by a newer orchestra is refused untouched.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use orchestra::cluster::{Authorization, ControlPlane, ControlPlaneConfig, ControlPlaneError};
use orchestra::controller::controllers::node_lifecycle::NodeLifecycleConfig;
use orchestra::controller::leader::LeaderElectionConfig;
use orchestra_api::admission::service_ip::RangeError;
use orchestra_api::admission::{Ipv4Cidr, RedirectMode, ServiceRanges, SidecarInjectionConfig};
use orchestra_api::auth::token::{SERVICE_ACCOUNT_KEY_FILE, ServiceAccountTokens, SigningKey};
use orchestra_api::registry::DynRegistry;
use orchestra_api::server::limits::LimitsError;
use orchestra_api::server::{ApiServer, Authentication, Limits, ServerOptions, TokenFile};
use orchestra_api::tls::{ClusterPki, JoinToken};
use orchestra_store::{Store, StoreError};

/// Where the server keeps its objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// The durable embedded store in `--data-dir` (the default).
    Embedded,
    /// In memory: nothing survives a restart.
    Memory,
    /// An etcd cluster at `--etcd-endpoints`.
    Etcd,
}

/// `--mesh-inject-redirect`: how injected pods' traffic reaches the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MeshRedirect {
    /// The init container `mesh-init` applies the redirect (the default).
    Init,
    /// Something else (a CNI plug-in) redirects: no init container.
    External,
    /// No redirect: the application uses the proxy explicitly.
    None,
}

/// The injection `args` ask for (`None` without `--mesh-inject-image`).
pub fn sidecar_injection(args: &ServerArgs) -> Option<SidecarInjectionConfig> {
    let image = args.mesh_inject_image.as_ref()?;
    let proxy_uid = args.mesh_inject_proxy_uid;
    Some(SidecarInjectionConfig {
        server: args.mesh_inject_server.clone(),
        redirect: match args.mesh_inject_redirect {
            MeshRedirect::Init => RedirectMode::InitContainer { proxy_uid },
            MeshRedirect::External => RedirectMode::External { proxy_uid },
            MeshRedirect::None => RedirectMode::None,
        },
        ..SidecarInjectionConfig::new(image.clone(), args.mesh_trust_domain.clone())
    })
}

/// `orchestra server --listen ADDR --data-dir DIR [--store embedded|memory|etcd --etcd-endpoints URLS]
/// [--service-cluster-ip-range CIDR] [--service-node-port-range LOW-HIGH]`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The address to serve the API on (gRPC and HTTP on the same port).
    #[arg(long, default_value = "127.0.0.1:7443")]
    pub listen: SocketAddr,
    /// The embedded store's data directory (created if missing).
    #[arg(long, required_if_eq("store", "embedded"))]
    pub data_dir: Option<PathBuf>,
    /// The store behind the API.
    #[arg(long, value_enum, default_value_t = StoreKind::Embedded)]
    pub store: StoreKind,
    /// etcd's client URLs, comma-separated (with `--store etcd`).
    #[arg(long, value_delimiter = ',', required_if_eq("store", "etcd"))]
    pub etcd_endpoints: Vec<String>,
    /// Where Services' cluster IPs come from (a loopback range needs no privileges).
    #[arg(long, default_value = "127.2.0.0/16", value_parser = parse_cidr)]
    pub service_cluster_ip_range: Ipv4Cidr,
    /// Where NodePort Services' node ports come from, `LOW-HIGH`.
    #[arg(long, default_value = "30000-32767", value_parser = ServiceRanges::parse_ports)]
    pub service_node_port_range: RangeInclusive<u16>,
    /// How long Events live after their last write (`1h`, `90m`, `30s`), then the store's
    /// lease expiry deletes them.
    #[arg(long, default_value = "1h", value_parser = parse_ttl)]
    pub event_ttl: std::time::Duration,
    /// Compact the store's history this often, keeping one interval of it for watches to
    /// resume from (`5m`, `1h`; `0` never compacts, and the store grows without bound).
    #[arg(long, default_value = "5m", value_parser = parse_interval)]
    pub compaction_interval: std::time::Duration,
    /// Do not run the scheduler in this process (run `orchestra scheduler` instead).
    #[arg(long)]
    pub no_scheduler: bool,
    /// Do not run the controllers in this process (run `orchestra controller-manager`
    /// instead).
    #[arg(long)]
    pub no_controllers: bool,
    /// How long a node may go without a heartbeat before it is Unknown and its pods are
    /// evicted after their tolerations, in seconds (the in-process NodeLifecycle controller).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u64).range(1..))]
    pub node_monitor_grace_period: u64,
    /// Serve the cluster DNS on this address, UDP and TCP (port 0: a free port, logged).
    /// Off by default: pods reach it on the address given here, which agents learn from
    /// `orchestra agent --cluster-dns ADDR`.
    #[arg(long)]
    pub cluster_dns_addr: Option<SocketAddr>,
    /// The cluster DNS's domain and upstreams.
    #[command(flatten)]
    pub dns: super::dns::DnsArgs,
    /// Another name or IP address for the server's certificate (localhost, 127.0.0.1, ::1,
    /// the listen address and this host's name are always in it); repeatable.
    #[arg(long = "tls-san")]
    pub tls_sans: Vec<String>,
    /// Bearer tokens, Kubernetes' static token file format: `token,user,uid,"group1,group2"`
    /// per line. Re-read when it changes: a line removed is a token revoked.
    #[arg(long)]
    pub token_auth_file: Option<PathBuf>,
    /// The service mesh's trust domain: the mesh CA (kept in DATA_DIR/mesh) signs
    /// certificates for `spiffe://DOMAIN/ns/NAMESPACE/sa/ACCOUNT`, to sidecars presenting
    /// that service account's token.
    #[arg(long, default_value = "cluster.local")]
    pub mesh_trust_domain: String,
    /// Inject the mesh proxy (`orchestra sidecar`, a native sidecar) into the pods that ask
    /// for it (`mesh.orchestra.dev/inject: enabled` on the pod or its namespace), run from
    /// this image, which must hold the `orchestra` binary. Without it, nothing is injected.
    #[arg(long, value_name = "IMAGE")]
    pub mesh_inject_image: Option<String>,
    /// The API server's URL as the injected proxies reach it (their `--server`).
    #[arg(long, value_name = "URL", requires = "mesh_inject_image")]
    pub mesh_inject_server: Option<String>,
    /// How injected pods' TCP reaches the proxy: `init`, an init container running
    /// `orchestra sidecar init` (needs nodes with the CRI runtime: pods with a network
    /// namespace of their own, and securityContext applied); `external`, a CNI plug-in
    /// does it (no init container); `none`, no redirect (the application calls the proxy
    /// itself: what nodes with the process runtime can run).
    #[arg(long, value_enum, default_value_t = MeshRedirect::Init, requires = "mesh_inject_image")]
    pub mesh_inject_redirect: MeshRedirect,
    /// The uid injected proxies run as, the one the redirect leaves alone (Linkerd's).
    #[arg(
        long,
        value_name = "UID",
        default_value_t = orchestra_api::admission::sidecar_injection::DEFAULT_PROXY_UID,
        value_parser = clap::value_parser!(u32).range(0..=orchestra_api::validation::MAX_UID),
        requires = "mesh_inject_image"
    )]
    pub mesh_inject_proxy_uid: u32,
    /// No TLS, no authentication: every request acts as an administrator. For local
    /// experiments only; refused on an address other than loopback.
    #[arg(long)]
    pub insecure: bool,
    /// The limits against abuse.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// The API server's limits against abuse, per user (administrators, `system:masters`, are
/// exempt).
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Each user's sustained API requests per second (a token bucket per user; over it the
    /// answer is 429 with Retry-After, gRPC RESOURCE_EXHAUSTED). 0: unlimited.
    #[arg(long, default_value_t = 200.0)]
    pub max_requests_per_second_per_user: f64,
    /// How many requests a user may send at once above that rate.
    #[arg(long, default_value_t = 400)]
    pub max_request_burst_per_user: u32,
    /// How many watches one user may hold open at once. 0: unlimited.
    #[arg(long, default_value_t = 1000)]
    pub max_watches_per_user: usize,
    /// The most items a list page holds: a list asking for more gets this many and a
    /// continue token.
    #[arg(long, default_value_t = 10_000)]
    pub max_list_page_size: usize,
}

impl LimitArgs {
    /// The server's limits from the flags.
    pub fn limits(&self) -> Result<Limits, LimitsError> {
        let limits = Limits {
            requests_per_second: (self.max_requests_per_second_per_user != 0.0)
                .then_some(self.max_requests_per_second_per_user),
            burst: self.max_request_burst_per_user,
            max_watches_per_user: (self.max_watches_per_user != 0)
                .then_some(self.max_watches_per_user),
            max_list_page: self.max_list_page_size,
            ..Limits::default()
        };
        limits.validate()?;
        Ok(limits)
    }
}

fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    let duration: jiff::SignedDuration = text
        .parse()
        .map_err(|err| format!("{text:?} is not a duration like 1h, 90m or 30s: {err}"))?;
    std::time::Duration::try_from(duration)
        .ok()
        .filter(|ttl| *ttl >= std::time::Duration::from_secs(1))
        .ok_or_else(|| format!("the event TTL {text:?} must be at least one second"))
}

/// A duration like [`parse_ttl`]'s, or `0` (off).
pub(crate) fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    if text.trim_end_matches('s') == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let duration: jiff::SignedDuration = text
        .parse()
        .map_err(|err| format!("{text:?} is not a duration like 5m, 1h or 0: {err}"))?;
    std::time::Duration::try_from(duration)
        .map_err(|_| format!("the interval {text:?} must not be negative"))
}

fn parse_cidr(text: &str) -> Result<Ipv4Cidr, RangeError> {
    text.parse()
}

/// Why `orchestra server` failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not be opened.
    #[error("opening the {what} store failed")]
    Store {
        /// Which store.
        what: &'static str,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// etcd could not be reached.
    #[cfg(feature = "etcd")]
    #[error("connecting to etcd at {endpoints} failed")]
    Etcd {
        /// The endpoints tried.
        endpoints: String,
        /// Why.
        #[source]
        source: orchestra_store::etcd::EtcdError,
    },
    /// This build has no etcd support.
    #[cfg(not(feature = "etcd"))]
    #[error("--store etcd needs a build with the `etcd` feature")]
    NoEtcd,
    /// The listen address could not be bound.
    #[error("listening on {addr} failed")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving the API failed")]
    Serve(#[source] std::io::Error),
    /// The scheduler or the controllers could not start.
    #[error(transparent)]
    ControlPlane(#[from] ControlPlaneError),
    /// The encryption-at-rest config could not be read or created.
    #[error("setting up encryption at rest for secrets")]
    Encryption(#[source] orchestra_api::encryption::EncryptionConfigError),
    /// The authorizers or the audit log could not be set up.
    #[error(transparent)]
    Authorization(#[from] orchestra::cluster::AuthorizationError),
    /// The cluster DNS could not start.
    #[error(transparent)]
    Dns(#[from] super::dns::DnsStartError),
    /// `--insecure` on an address others can reach.
    #[error(
        "--insecure serves without TLS or authentication and so only on a loopback address (127.0.0.1, ::1), not {0}: drop --insecure, or listen on loopback"
    )]
    InsecureNotLoopback(SocketAddr),
    /// TLS needs a data directory for the CA.
    #[error(
        "a secure server keeps its CA and credentials in --data-dir: pass --data-dir DIR (or --insecure for a throwaway loopback server)"
    )]
    NoDataDir,
    /// The CA, the certificates or the credentials could not be made or read.
    #[error("setting up TLS")]
    Tls(#[from] orchestra_api::tls::TlsError),
    /// The mesh CA could not be made or read.
    #[error("setting up the mesh CA")]
    MeshCa(#[from] orchestra_mesh::l7::identity::CaError),
    /// The token file could not be read.
    #[error(transparent)]
    TokenFile(#[from] orchestra_api::server::authn::TokenFileError),
    /// The service account token signing key could not be made or read.
    #[error(transparent)]
    SigningKey(#[from] orchestra_api::auth::token::KeyError),
    /// The data directory is of another format, or its format file is unusable.
    #[error(transparent)]
    DataDir(#[from] orchestra::data_dir::DataDirError),
    /// A limit flag is out of range.
    #[error("invalid limit flag")]
    Limits(#[from] LimitsError),
}

/// The server's security options from the flags: TLS, authentication, the admin
/// credentials and the join token written to the data directory; and the cluster CA (PEM),
/// `None` for an `--insecure` server.
pub fn security(args: &ServerArgs) -> Result<(ServerOptions, Option<String>), ServerError> {
    if args.insecure {
        if !args.listen.ip().is_loopback() {
            return Err(ServerError::InsecureNotLoopback(args.listen));
        }
        let warning = format!(
            "WARNING: --insecure: the API on {} has NO TLS and NO AUTHENTICATION; every request acts as an administrator. For local experiments only.",
            args.listen
        );
        eprintln!("{warning}");
        tracing::warn!("{warning}");
        return Ok((
            ServerOptions {
                limits: args.limits.limits()?,
                ..ServerOptions::default()
            },
            None,
        ));
    }
    let data_dir = args.data_dir.as_deref().ok_or(ServerError::NoDataDir)?;
    let mut sans = args.tls_sans.clone();
    if !args.listen.ip().is_unspecified() {
        sans.push(args.listen.ip().to_string());
    }
    let pki = Arc::new(ClusterPki::load_or_create(data_dir, &sans)?);
    let host = if args.listen.ip().is_unspecified() {
        "127.0.0.1".to_owned()
    } else {
        SocketAddr::new(args.listen.ip(), 0)
            .to_string()
            .trim_end_matches(":0")
            .to_owned()
    };
    let url = format!("https://{host}:{}", args.listen.port());
    let credentials_path = data_dir.join("admin.credentials");
    pki.admin_credentials(&url)?.save(&credentials_path)?;
    orchestra::cluster::credentials::write_component_credentials(&pki, &url, data_dir)?;
    let join_token = JoinToken::load_or_create(&data_dir.join("node-token"), pki.ca_pem())?;
    let tokens = match &args.token_auth_file {
        Some(path) => Some(Arc::new(TokenFile::load(path)?)),
        None => None,
    };
    tracing::info!(credentials = %credentials_path.display(), ca = %pki.dir().join("ca.crt").display(), "TLS and authentication on");
    // The mesh identity service, on the API server: it authenticates a sidecar's service
    // account token like any bearer token and so needs no listener or TokenReview of its own.
    let mesh_ca = orchestra_mesh::l7::identity::MeshCa::load_or_create(
        &data_dir.join("mesh"),
        orchestra_mesh::l7::identity::CaConfig {
            trust_domain: args.mesh_trust_domain.clone(),
            ..Default::default()
        },
        std::time::SystemTime::now(),
    )?;
    // `pods/log` reaches the agents over mutual TLS, as `system:apiserver`.
    let node_connector = orchestra_api::logs::HttpNodeConnector::mutual_tls(
        pki.ca_pem(),
        &pki.apiserver_client().cert_pem,
        &pki.apiserver_client().key_pem,
    )?;
    let root_ca = Some(pki.ca_pem().to_owned());
    let options = ServerOptions {
        node_connector: Some(Arc::new(node_connector)),
        tls: Some(orchestra_api::tls::server_config(
            &pki.server().cert_pem,
            &pki.server().key_pem,
            Some(pki.ca_pem()),
        )?),
        authentication: Some(Authentication {
            tokens,
            join_token: Some(join_token),
            node_signer: Some(pki),
        }),
        workload_signer: Some(Arc::new(
            orchestra_mesh::l7::identity::IdentityService::new(mesh_ca),
        )),
        limits: args.limits.limits()?,
        ..ServerOptions::default()
    };
    Ok((options, root_ca))
}

/// Runs the server until SIGTERM or Ctrl-C.
pub async fn run(args: ServerArgs) -> Result<(), ServerError> {
    // First, before anything reads or writes in it: a data directory of a newer format is
    // refused untouched.
    if let Some(dir) = &args.data_dir {
        orchestra::data_dir::open(dir, orchestra::data_dir::Layout::Server)?;
    }
    let (mut options, root_ca) = security(&args)?;
    let store = open_store(&args).await?;
    let store = encrypt_at_rest(store, &args)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: args.listen,
            source,
        })?;
    let leader_election = (args.store == StoreKind::Etcd).then(|| {
        LeaderElectionConfig::new(
            "kube-system",
            super::controller_manager::LEASE_NAME,
            super::controller_manager::default_identity(),
        )
    });
    let mut control_plane = ControlPlane::new(
        store,
        ControlPlaneConfig {
            service_ranges: ServiceRanges {
                cluster_ips: args.service_cluster_ip_range,
                node_ports: args.service_node_port_range.clone(),
            },
            scheduler: !args.no_scheduler,
            controllers: !args.no_controllers,
            leader_election,
            node_lifecycle: NodeLifecycleConfig {
                grace_period: Duration::from_secs(args.node_monitor_grace_period),
                ..NodeLifecycleConfig::default()
            },
            event_ttl: args.event_ttl,
            compaction_interval: (!args.compaction_interval.is_zero())
                .then_some(args.compaction_interval),
            sidecar_injection: sidecar_injection(&args),
            // Every namespace's `kube-root-ca.crt`; an --insecure server has no CA to publish.
            root_ca,
        },
    );
    let mut authorization = None;
    if let (false, Some(data_dir)) = (args.insecure, &args.data_dir) {
        let started = Authorization::start(control_plane.client(), data_dir).await?;
        tracing::info!(roles = ?started.roles, "built-in RBAC roles in place");
        options.authorizer = Some(started.authorizer.clone());
        // The in-process scheduler and controllers act as their own users, not as admin.
        control_plane.authorize_components(started.for_components());
        options.audit = Some(Arc::new(started.audit.clone()));
        authorization = Some(started);
    }
    // Service account tokens, signed with a key kept in the data directory (tokens survive a
    // restart); without a data directory the key lives as long as the process.
    let key = match &args.data_dir {
        Some(dir) => SigningKey::load_or_create(&dir.join(SERVICE_ACCOUNT_KEY_FILE))?,
        None => SigningKey::generate()?,
    };
    options.service_account_tokens = Some(Arc::new(ServiceAccountTokens::new(
        key,
        control_plane.registry().clone(),
    )));
    let dyn_registry = DynRegistry::new(control_plane.registry().clone());
    let mut components = tokio::task::JoinSet::new();
    control_plane.spawn(&mut components, shutdown_signal)?;
    let dns = match args.cluster_dns_addr {
        Some(addr) => Some(args.dns.start(control_plane.client(), addr).await?),
        None => None,
    };
    tracing::info!(listen = %args.listen, store = ?args.store, scheduler = !args.no_scheduler, controllers = !args.no_controllers, "serving the orchestra API (gRPC and HTTP)");
    ApiServer::with_options(dyn_registry, options)
        .serve(listener, shutdown_signal())
        .await
        .map_err(ServerError::Serve)?;
    while components.join_next().await.is_some() {}
    if let Some(authorization) = authorization {
        authorization.stop();
    }
    if let Some(dns) = dns
        && let Err(error) = dns.shutdown().await
    {
        tracing::warn!(%error, "the cluster DNS did not stop cleanly");
    }
    tracing::info!("API server stopped");
    Ok(())
}

/// Secrets encrypted at rest, on by default: the keys live in `<data-dir>/encryption.yaml`
/// (created on first start); a memory store without a data dir gets a key that lives as long.
fn encrypt_at_rest(
    store: Arc<dyn Store>,
    args: &ServerArgs,
) -> Result<Arc<dyn Store>, ServerError> {
    use orchestra_api::encryption::{EncryptedStore, EncryptionConfig};
    let config = match (&args.data_dir, args.store) {
        (None, StoreKind::Memory) => EncryptionConfig::ephemeral(),
        (dir, _) => EncryptionConfig::load_or_create(&dir.clone().unwrap_or_default())
            .map_err(ServerError::Encryption)?,
    };
    Ok(Arc::new(EncryptedStore::new(store, config)))
}

async fn open_store(args: &ServerArgs) -> Result<Arc<dyn Store>, ServerError> {
    match args.store {
        StoreKind::Memory => Ok(Arc::new(orchestra_store::MemStore::new())),
        StoreKind::Embedded => {
            let dir = args.data_dir.clone().unwrap_or_default();
            let store = orchestra_store::DiskStore::open(&dir)
                .await
                .map_err(|source| ServerError::Store {
                    what: "embedded",
                    source,
                })?;
            Ok(Arc::new(store))
        }
        #[cfg(feature = "etcd")]
        StoreKind::Etcd => {
            let options = orchestra_store::EtcdOptions {
                endpoints: args.etcd_endpoints.clone(),
                ..Default::default()
            };
            let store = orchestra_store::EtcdStore::connect(options)
                .await
                .map_err(|source| ServerError::Etcd {
                    endpoints: args.etcd_endpoints.join(","),
                    source,
                })?;
            Ok(Arc::new(store))
        }
        #[cfg(not(feature = "etcd"))]
        StoreKind::Etcd => Err(ServerError::NoEtcd),
    }
}

/// Completes on Ctrl-C, or on SIGTERM on Unix.
///
/// The handlers are installed when this is called, not when the future is first polled: a
/// command that serves requests while it is still starting (`orchestra cluster` answers the
/// API before its nodes are up) calls it first, so that a SIGTERM arriving meanwhile is kept
/// for later instead of killing the process with the signal's default action.
pub(crate) fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let terminate = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (terminate, interrupt) {
                (Ok(mut terminate), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = terminate.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                (Ok(mut only), Err(_)) | (Err(_), Ok(mut only)) => {
                    only.recv().await;
                }
                // No handler could be installed: run until killed.
                (Err(_), Err(_)) => std::future::pending().await,
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_interval, parse_ttl, sidecar_injection};
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use orchestra_api::admission::RedirectMode;
    use std::time::Duration;

    fn injection(flags: &[&str]) -> Result<Option<RedirectMode>, clap::Error> {
        let argv = ["orchestra", "server", "--store", "memory"]
            .iter()
            .chain(flags);
        let cli = Cli::try_parse_from(argv)?;
        let Command::Server(args) = cli.command else {
            panic!("not the server command");
        };
        Ok(sidecar_injection(&args).map(|config| config.redirect))
    }

    /// The injected containers' arguments are commands this binary accepts, and the init
    /// container redirects to the listeners the proxy opens, exempting the uid it runs as.
    #[test]
    fn injected_containers_run_commands_this_binary_accepts() {
        use crate::cli::sidecar::{SidecarAction, config};
        use crate::cli::sidecar_init::redirect_config;
        use orchestra_api::admission::SidecarInjectionConfig;
        use orchestra_api::admission::sidecar_injection::{
            SKIP_INBOUND_PORTS_ANNOTATION, SKIP_OUTBOUND_PORTS_ANNOTATION, inject,
        };

        let mut pod = orchestra_api::testing::pod("shop", "web", "web");
        pod.metadata
            .annotations
            .insert(SKIP_INBOUND_PORTS_ANNOTATION.into(), "9000-9010".into());
        pod.metadata
            .annotations
            .insert(SKIP_OUTBOUND_PORTS_ANNOTATION.into(), "25, 3306".into());
        let injection = SidecarInjectionConfig {
            redirect: RedirectMode::InitContainer { proxy_uid: 2600 },
            ..SidecarInjectionConfig::new("orchestra:dev", "example.org")
        };
        inject(&mut pod, &injection).expect("inject");
        let [init, proxy] = &pod.spec.init_containers[..] else {
            panic!("two init containers: {:?}", pod.spec.init_containers);
        };
        let parse = |argv: Vec<&String>| {
            let cli = Cli::try_parse_from(argv).expect("the binary accepts it");
            let Command::Sidecar(sidecar) = cli.command else {
                panic!("not the sidecar command");
            };
            sidecar
        };

        let init = parse(init.command.iter().chain(&init.args).collect());
        let Some(SidecarAction::Init(init)) = init.action else {
            panic!("not `sidecar init`");
        };
        let redirect = redirect_config(&init);

        // The namespace comes from the downward API in the pod.
        let namespace = ["--namespace".to_owned(), "shop".to_owned()];
        let proxy = parse(
            proxy
                .command
                .iter()
                .chain(&proxy.args)
                .chain(&namespace)
                .collect(),
        );
        let listeners = config(&proxy);

        assert_eq!(redirect.inbound_port, listeners.inbound.port());
        assert_eq!(redirect.outbound_port, listeners.outbound.port());
        assert!(
            redirect.skip_inbound_ports.contains(listeners.admin.port()),
            "the admin port is never redirected"
        );
        assert_eq!(redirect.proxy_uid, 2600);
        assert_eq!(redirect.skip_inbound_ports.to_string(), "4191, 9000-9010");
        assert_eq!(redirect.skip_outbound_ports.to_string(), "25, 3306");
        assert_eq!(listeners.app.port(), 8080);
    }

    #[test]
    fn injection_flags_choose_the_redirect_and_the_proxy_uid() {
        assert_eq!(injection(&[]).unwrap(), None);
        let image = ["--mesh-inject-image", "orchestra:dev"];
        assert_eq!(
            injection(&image).unwrap(),
            Some(RedirectMode::InitContainer { proxy_uid: 2102 })
        );
        let with = |extra: &[&'static str]| {
            let mut flags = image.to_vec();
            flags.extend_from_slice(extra);
            injection(&flags)
        };
        assert_eq!(
            with(&["--mesh-inject-proxy-uid", "5000"]).unwrap(),
            Some(RedirectMode::InitContainer { proxy_uid: 5000 })
        );
        assert_eq!(
            with(&["--mesh-inject-redirect", "external"]).unwrap(),
            Some(RedirectMode::External { proxy_uid: 2102 })
        );
        assert_eq!(
            with(&["--mesh-inject-redirect", "none"]).unwrap(),
            Some(RedirectMode::None)
        );
        // A uid no pod may run as is refused with the flag's name.
        let err = with(&["--mesh-inject-proxy-uid", "2147483648"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--mesh-inject-proxy-uid"), "{err}");
        // The knobs mean nothing without injection.
        let err = injection(&["--mesh-inject-redirect", "none"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--mesh-inject-image"), "{err}");
    }

    #[test]
    fn event_ttls_read_like_kubernetes_durations() {
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("45s"), Ok(Duration::from_secs(45)));
        assert!(
            parse_ttl("soon")
                .unwrap_err()
                .contains("\"soon\" is not a duration")
        );
        assert!(parse_ttl("0s").unwrap_err().contains("at least one second"));
    }

    #[test]
    fn compaction_intervals_read_like_durations_and_zero_turns_it_off() {
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("0"), Ok(Duration::ZERO));
        assert_eq!(parse_interval("0s"), Ok(Duration::ZERO));
        assert!(parse_interval("-5m").unwrap_err().contains("negative"));
        assert!(parse_interval("often").unwrap_err().contains("\"often\""));
    }
}
