//! [`Cluster`]: a whole orchestra cluster in one process, composed from the public crates: a
//! store, the API server on a loopback port, the scheduler and the controllers
//! ([`ControlPlane`]), N node agents with the fake or the process runtime, the userspace
//! service proxy, the mesh identity service, and (with [`ClusterBuilder::dns`]) the cluster
//! DNS. `examples/full_cluster.rs` and `orchestra cluster` stand on it.
//!
//! ```no_run
//! use orchestra::cluster::{Cluster, NodeRuntime};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let cluster = Cluster::builder().nodes(3).runtime(NodeRuntime::Fake).start().await?;
//! println!("API at {}", cluster.url());
//! // ... cluster.client() creates Deployments, Services ...
//! cluster.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! The API server is secured as `orchestra server`'s: TLS, client certificates and the join
//! token, and [`Authorization`] (the Node authorizer, RBAC with the built-in roles, the audit
//! log in `<data-dir>/audit.log`). The scheduler, the controllers and the agents use
//! in-process clients that act as their own users (`system:kube-scheduler`,
//! `system:kube-controller-manager`, `system:node:NAME`) and are authorized and audited like
//! requests to the server, as are the service proxy (`system:kube-proxy`) and the DNS (the
//! service account `kube-system/coredns`), which may only list and watch Services and
//! Endpoints.
//!
//! The API server also serves the mesh identity service, as `orchestra server` does: the mesh
//! CA is kept in `<data-dir>/mesh`, and a workload authenticated as a service account (a
//! token from [`ClusterBuilder::token_auth_file`], or a client certificate from the cluster
//! CA) gets a certificate for that account's SPIFFE ID through `IssueWorkloadCertificate`;
//! in-process sidecars ask [`Cluster::mesh_identity`] directly.
//!
//! # Layout
//! - [`authorization`]: [`Authorization`], the authorizers and audit log of a secure server
//!   (also what `orchestra server` runs).
//! - [`control_plane`]: [`ControlPlane`], the registry with admission, the scheduler and the
//!   controllers (also what `orchestra server` runs).
//! - [`credentials`]: the credentials files of the scheduler, the controller manager, the
//!   service proxy and the DNS run as their own processes (written by both).
//! - [`nodes`]: the node agents and their runtimes.

pub mod authorization;
pub mod control_plane;
pub mod credentials;
pub mod nodes;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use orchestra_api::LocalClient;
use orchestra_api::auth::token::{SERVICE_ACCOUNT_KEY_FILE, ServiceAccountTokens, SigningKey};
use orchestra_api::auth::{GROUP_NODES, NODE_USER_PREFIX, bootstrap};
use orchestra_api::registry::DynRegistry;
use orchestra_api::server::authn::TokenFileError;
use orchestra_api::server::{ApiServer, Authentication, RunningServer, ServerOptions, TokenFile};
use orchestra_api::tls::{ClusterPki, Credentials, JoinToken, TlsError};
use orchestra_controller::controllers::node_lifecycle::NodeLifecycleConfig;
use orchestra_mesh::dns::{ClusterDns, DnsConfig, DnsServerError};
use orchestra_mesh::l7::identity::{CaConfig, CaError, IdentityService, MeshCa};
use orchestra_mesh::{FollowerConfig, ProxyFollower, TcpProxy, TcpProxyConfig};
use orchestra_node::agent::env::ClusterDnsSettings;
use orchestra_store::{DiskStore, DiskStoreOptions, EngineOptions, MemStore, Store, StoreError};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use authorization::{Authorization, AuthorizationError};
pub use control_plane::{
    ComponentAuthorization, ControlPlane, ControlPlaneConfig, ControlPlaneError,
};
pub use nodes::{NodeRuntime, RunningNode};

/// Why a cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The store could not be opened.
    #[error("opening the store in {dir}")]
    Store {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The encryption-at-rest config could not be read or created.
    #[error("setting up encryption at rest for secrets")]
    Encryption(#[source] orchestra_api::encryption::EncryptionConfigError),
    /// The data directory is of another format or layout, or unreadable.
    #[error(transparent)]
    DataDir(#[from] crate::data_dir::DataDirError),
    /// A temporary directory could not be made.
    #[error("creating a temporary directory")]
    TempDir(#[source] std::io::Error),
    /// The API server could not listen.
    #[error("serving the API on {addr}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The cluster CA, the certificates or the credentials could not be made.
    #[error("setting up the API server's TLS")]
    Tls(#[from] TlsError),
    /// The mesh CA in `<data-dir>/mesh` could not be made or read.
    #[error("setting up the mesh CA")]
    MeshCa(#[from] CaError),
    /// The bearer token file could not be read.
    #[error(transparent)]
    TokenFile(#[from] TokenFileError),
    /// The service account token signing key could not be made or read.
    #[error(transparent)]
    SigningKey(#[from] orchestra_api::auth::token::KeyError),
    /// The scheduler or the controllers could not start.
    #[error(transparent)]
    ControlPlane(#[from] ControlPlaneError),
    /// The authorizers or the audit log could not be set up.
    #[error(transparent)]
    Authorization(#[from] AuthorizationError),
    /// The cluster DNS could not start.
    #[error("starting the cluster DNS")]
    Dns(#[source] DnsServerError),
    /// A node's runtime could not start.
    #[error("starting node {node}'s runtime")]
    Runtime {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: orchestra_node::RuntimeError,
    },
}

/// How to build a [`Cluster`]; see [`Cluster::builder`].
#[derive(Clone, Debug)]
pub struct ClusterBuilder {
    data_dir: Option<PathBuf>,
    listen: SocketAddr,
    nodes: usize,
    runtime: NodeRuntime,
    proxy: bool,
    node_monitor_grace: Duration,
    lease_renew_interval: Duration,
    node_cpu: i64,
    node_memory: i64,
    dns: Option<SocketAddr>,
    mesh_trust_domain: String,
    token_auth_file: Option<PathBuf>,
    store_history: Option<u64>,
}

impl ClusterBuilder {
    /// Keep at least `revisions` revisions of the store's history and compact older ones as
    /// they accumulate (etcd's `--auto-compaction-mode=revision`), besides the periodic
    /// compactor (every 5 minutes, to the revision of the round before). Without it, every
    /// revision of every object and the store's watch log stay in memory until the
    /// compactor's second round: a bulk load of 150,000 pods writes well over a million
    /// revisions in less time than that. A watch that falls further behind than this gets
    /// `Compacted` and relists, so keep it well above the watch caches' window of 16,384
    /// changes per kind. Default: off.
    pub fn store_history(mut self, revisions: u64) -> Self {
        self.store_history = Some(revisions);
        self
    }

    /// The service mesh's trust domain: the mesh CA signs certificates for
    /// `spiffe://DOMAIN/ns/NAMESPACE/sa/ACCOUNT` (default `cluster.local`).
    pub fn mesh_trust_domain(mut self, domain: impl Into<String>) -> Self {
        self.mesh_trust_domain = domain.into();
        self
    }

    /// Also authenticate the bearer tokens of `path` (Kubernetes' static token file format,
    /// as `orchestra server --token-auth-file`): e.g. service account tokens, with which
    /// workloads ask for their mesh certificates. Re-read when it changes.
    pub fn token_auth_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.token_auth_file = Some(path.into());
        self
    }

    /// Serve the cluster DNS (`cluster.local`) on `addr`, UDP and TCP (port 0: a free
    /// port, see [`Cluster::dns_addr`]), and point the nodes' `ClusterFirst` pods at it
    /// (default off).
    pub fn dns(mut self, addr: SocketAddr) -> Self {
        self.dns = Some(addr);
        self
    }

    /// Keep the store (and the process runtime's state) in `dir` (default: a temporary
    /// directory, removed at shutdown).
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Serve the API on `addr` (default: a free loopback port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// How many node agents run (default 3).
    pub fn nodes(mut self, nodes: usize) -> Self {
        self.nodes = nodes;
        self
    }

    /// Their runtime (default: local processes).
    pub fn runtime(mut self, runtime: NodeRuntime) -> Self {
        self.runtime = runtime;
        self
    }

    /// Run the userspace service proxy, so that ClusterIPs answer (default on).
    pub fn proxy(mut self, proxy: bool) -> Self {
        self.proxy = proxy;
        self
    }

    /// How long a node may stay silent before it is marked unreachable (default 40 s); the
    /// agents renew their leases four times within it.
    pub fn node_monitor_grace(mut self, grace: Duration) -> Self {
        self.node_monitor_grace = grace;
        self.lease_renew_interval = grace / 4;
        self
    }

    /// Each node's capacity: CPUs and bytes of memory (default 4 and 8 GiB).
    pub fn node_capacity(mut self, cpu: i64, memory: i64) -> Self {
        self.node_cpu = cpu;
        self.node_memory = memory;
        self
    }

    /// Opens the store, serves the API (with the mesh identity service), starts the control
    /// plane, the nodes and the proxy.
    pub async fn start(self) -> Result<Cluster, ClusterError> {
        let (data_dir, temp_dir) = match &self.data_dir {
            // First, before anything reads or writes in it: a directory of a newer format, or
            // `orchestra server`'s, is refused untouched.
            Some(dir) => {
                crate::data_dir::open(dir, crate::data_dir::Layout::Cluster)?;
                (dir.clone(), None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("orchestra-cluster-")
                    .tempdir()
                    .map_err(ClusterError::TempDir)?;
                (temp.path().to_owned(), Some(temp))
            }
        };
        let engine_options = EngineOptions {
            auto_compaction_retention: self.store_history,
            ..EngineOptions::default()
        };
        let store: Arc<dyn Store> = match self.runtime {
            // A simulated cluster keeps its objects in memory: it is about scale, not durability.
            NodeRuntime::Fake if self.data_dir.is_none() => {
                Arc::new(MemStore::with_options(engine_options.clone()))
            }
            _ => {
                let dir = data_dir.join("store");
                let options = DiskStoreOptions {
                    engine: engine_options,
                    ..DiskStoreOptions::default()
                };
                let store = DiskStore::open_with(&dir, options)
                    .await
                    .map_err(|source| ClusterError::Store { dir, source })?;
                Arc::new(store)
            }
        };
        // Secrets encrypted at rest, keys in `<data-dir>/encryption.yaml`, as `orchestra server`.
        let encryption = orchestra_api::encryption::EncryptionConfig::load_or_create(&data_dir)
            .map_err(ClusterError::Encryption)?;
        let store: Arc<dyn Store> = Arc::new(orchestra_api::encryption::EncryptedStore::new(
            store, encryption,
        ));
        let pki = Arc::new(ClusterPki::load_or_create(
            &data_dir,
            &[self.listen.ip().to_string()],
        )?);
        let mut control_plane = ControlPlane::new(
            store,
            ControlPlaneConfig {
                node_lifecycle: NodeLifecycleConfig {
                    grace_period: self.node_monitor_grace,
                    eviction_interval: Duration::ZERO,
                    ..NodeLifecycleConfig::default()
                },
                // Published in every namespace's `kube-root-ca.crt`, for pods' `ca.crt`.
                root_ca: Some(pki.ca_pem().to_owned()),
                ..ControlPlaneConfig::default()
            },
        );
        // The HTTP API is TLS with authentication and authorization, as `orchestra server`'s;
        // the components inside the process act as their own users through the same
        // authorizer.
        let authorization = Authorization::start(control_plane.client(), &data_dir).await?;
        let components = authorization.for_components();
        control_plane.authorize_components(components.clone());
        // The API server reads container logs from the agents over mutual TLS, as
        // `system:apiserver`; each agent's endpoint shows its node's certificate.
        let node_connector: Arc<dyn orchestra_api::logs::NodeConnector> =
            Arc::new(orchestra_api::logs::HttpNodeConnector::mutual_tls(
                pki.ca_pem(),
                &pki.apiserver_client().cert_pem,
                &pki.apiserver_client().key_pem,
            )?);
        // The mesh identity service, on the API server as `orchestra server`'s: the CA is kept
        // in the data directory, so a restarted cluster keeps the trust anchor its sidecars
        // know.
        let mesh_identity = Arc::new(IdentityService::new(MeshCa::load_or_create(
            &data_dir.join("mesh"),
            CaConfig {
                trust_domain: self.mesh_trust_domain.clone(),
                ..CaConfig::default()
            },
            std::time::SystemTime::now(),
        )?));
        let tokens = match &self.token_auth_file {
            Some(path) => Some(Arc::new(TokenFile::load(path)?)),
            None => None,
        };
        // Service account tokens: the signing key is kept in the data directory.
        let service_accounts = Arc::new(ServiceAccountTokens::new(
            SigningKey::load_or_create(&data_dir.join(SERVICE_ACCOUNT_KEY_FILE))?,
            control_plane.registry().clone(),
        ));
        let options = ServerOptions {
            service_account_tokens: Some(service_accounts.clone()),
            node_connector: Some(node_connector.clone()),
            tls: Some(orchestra_api::tls::server_config(
                &pki.server().cert_pem,
                &pki.server().key_pem,
                Some(pki.ca_pem()),
            )?),
            authentication: Some(Authentication {
                tokens,
                join_token: Some(JoinToken::load_or_create(
                    &data_dir.join("node-token"),
                    pki.ca_pem(),
                )?),
                node_signer: Some(pki.clone()),
            }),
            authorizer: Some(authorization.authorizer.clone()),
            audit: Some(Arc::new(authorization.audit.clone())),
            workload_signer: Some(mesh_identity.clone()),
            ..ServerOptions::default()
        };
        let server =
            ApiServer::with_options(DynRegistry::new(control_plane.registry().clone()), options)
                .spawn(self.listen)
                .await
                .map_err(|source| ClusterError::Listen {
                    addr: self.listen,
                    source,
                })?;
        let credentials = pki.admin_credentials(&server.url())?;
        let credentials_path = data_dir.join("admin.credentials");
        credentials.save(&credentials_path)?;
        credentials::write_component_credentials(&pki, &server.url(), &data_dir)?;
        let (stop, stopped) = watch::channel(false);
        let shutdown = move || {
            let mut stopped = stopped.clone();
            async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            }
        };
        let mut tasks = JoinSet::new();
        control_plane.spawn(&mut tasks, &shutdown)?;
        // Pods run as their namespace's `default` ServiceAccount, which the controllers make
        // just after the namespace; the ServiceAccount admission refuses a pod whose account
        // is missing. Return once `default/default` is there, so that a pod created at once is
        // admitted however slowly this machine starts the controllers.
        wait_for_default_account(&control_plane.client()).await;
        // The in-process agents have their pods' tokens issued through it.
        let client = control_plane
            .client()
            .with_node_connector(node_connector)
            .with_token_issuer(service_accounts);
        let dns = match self.dns {
            Some(addr) => Some(
                ClusterDns::start(
                    components.client_for(client.clone(), bootstrap::dns_user()),
                    addr,
                    DnsConfig::default(),
                )
                .await
                .map_err(ClusterError::Dns)?,
            ),
            None => None,
        };
        let cluster_dns = dns.as_ref().map(|dns| ClusterDnsSettings {
            server: dns.local_addr(),
            domain: orchestra_mesh::dns::DEFAULT_CLUSTER_DOMAIN.to_owned(),
        });
        // The node agents watch pods from the versions they list: with the pod cache running
        // before they start, every agent's watch is served by the one shared, indexed cache.
        client
            .watch_cache()
            .start::<orchestra_api::resources::Pod>(client.registry())
            .await;

        let mut nodes = Vec::with_capacity(self.nodes);
        for index in 0..self.nodes {
            let name = format!("node-{}", index + 1);
            let certificate = pki.issue_node(&name)?;
            let endpoint_tls = orchestra_node::endpoint::EndpointTls::new(
                &certificate.cert_pem,
                &certificate.key_pem,
                pki.ca_pem(),
            )?;
            let spec = nodes::NodeSpec {
                name,
                index,
                runtime: self.runtime,
                state_dir: data_dir.join("nodes").join(format!("node-{}", index + 1)),
                cpu: self.node_cpu,
                memory: self.node_memory,
                lease_renew_interval: self.lease_renew_interval,
                lease_duration: self.node_monitor_grace,
                cluster_dns: cluster_dns.clone(),
                endpoint_tls: Some(endpoint_tls),
            };
            // Each agent acts as its node, as `orchestra agent` with its node certificate.
            let user = format!("{NODE_USER_PREFIX}{}", spec.name);
            let node_client = components.client_as(client.clone(), &user, &[GROUP_NODES]);
            nodes.push(nodes::start(node_client, spec).await?);
        }

        let proxy = self.proxy.then(|| {
            let proxy = Arc::new(TcpProxy::new(TcpProxyConfig {
                node_address: Ipv4Addr::LOCALHOST.into(),
                drain_timeout: Duration::from_secs(5),
                ..TcpProxyConfig::default()
            }));
            let follower = ProxyFollower::new(
                components.client_as(client.clone(), bootstrap::PROXY_USER, &[]),
                proxy.clone(),
                FollowerConfig::default(),
            );
            let stopped = shutdown();
            tasks.spawn(async move {
                tokio::select! {
                    () = follower.run() => {}
                    () = stopped => {}
                }
            });
            proxy
        });

        Ok(Cluster {
            authorization,
            server: Some(server),
            credentials,
            credentials_path,
            client,
            stop,
            tasks,
            nodes,
            proxy,
            dns,
            mesh_identity,
            _temp_dir: temp_dir,
        })
    }
}

/// Waits (a minute at most, then goes on with a warning) until the `default` namespace's
/// `default` ServiceAccount exists.
async fn wait_for_default_account(client: &LocalClient) {
    use orchestra_api::Client;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match client
            .get::<orchestra_api::resources::ServiceAccount>("default", "default")
            .await
        {
            Ok(_) => return,
            Err(_) if tokio::time::Instant::now() >= deadline => {
                tracing::warn!("no default ServiceAccount after a minute: pods may be refused");
                return;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// A running cluster. Drop it only through [`Cluster::shutdown`], which also stops the pods.
pub struct Cluster {
    authorization: Authorization,
    server: Option<RunningServer>,
    credentials: Credentials,
    credentials_path: PathBuf,
    client: LocalClient,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    nodes: Vec<RunningNode>,
    proxy: Option<Arc<TcpProxy>>,
    dns: Option<ClusterDns>,
    mesh_identity: Arc<IdentityService>,
    _temp_dir: Option<tempfile::TempDir>,
}

impl Cluster {
    /// A builder with the defaults: 3 process nodes, the proxy, a temporary data directory,
    /// a free loopback port.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            data_dir: None,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            nodes: 3,
            runtime: NodeRuntime::Process,
            proxy: true,
            node_monitor_grace: Duration::from_secs(40),
            lease_renew_interval: Duration::from_secs(10),
            node_cpu: 4,
            node_memory: 8 << 30,
            dns: None,
            mesh_trust_domain: "cluster.local".to_owned(),
            token_auth_file: None,
            store_history: None,
        }
    }

    /// An in-process client (the same registry, admission included, as the API server's).
    pub fn client(&self) -> &LocalClient {
        &self.client
    }

    /// The API server's URL (`https://...`), for `orchestra ctl --server` and `RemoteClient`.
    pub fn url(&self) -> String {
        self.server
            .as_ref()
            .map_or_else(String::new, RunningServer::url)
    }

    /// The administrator's credentials for the API server (TLS, a client certificate), for
    /// `RemoteClient::connect_with`.
    pub fn credentials(&self) -> &Credentials {
        &self.credentials
    }

    /// Where those credentials are written (`DATA_DIR/admin.credentials`), for
    /// `orchestra ctl --credentials`. The files of the components that may run beside the
    /// cluster (a node's service proxy and DNS, see [`credentials`]) are in the same
    /// directory.
    pub fn credentials_path(&self) -> &std::path::Path {
        &self.credentials_path
    }

    /// The names of the nodes whose agents still run.
    pub fn nodes(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|node| node.is_running())
            .map(|node| node.name().to_owned())
            .collect()
    }

    /// Where the cluster DNS listens, when it runs.
    pub fn dns_addr(&self) -> Option<SocketAddr> {
        self.dns.as_ref().map(ClusterDns::local_addr)
    }

    /// The mesh identity service the API server runs (its CA in `<data-dir>/mesh`), for
    /// in-process sidecars: `LocalIssuer::new(cluster.mesh_identity().clone(), service
    /// account user)`.
    pub fn mesh_identity(&self) -> &Arc<IdentityService> {
        &self.mesh_identity
    }

    /// The service proxy, when it runs.
    pub fn proxy(&self) -> Option<&Arc<TcpProxy>> {
        self.proxy.as_ref()
    }

    /// Simulates losing a machine: stops `node`'s agent and kills its pods' containers. The
    /// node stops renewing its lease, so the controllers mark it unreachable and evict its
    /// pods. Returns false when no running node has that name.
    pub async fn crash_node(&mut self, node: &str) -> bool {
        match self
            .nodes
            .iter_mut()
            .find(|n| n.name() == node && n.is_running())
        {
            Some(running) => {
                running.crash().await;
                true
            }
            None => false,
        }
    }

    /// Stops everything: the nodes (and their pods' processes), the proxy, the control plane
    /// and the API server.
    pub async fn shutdown(mut self) {
        for node in &mut self.nodes {
            node.crash().await;
        }
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        self.proxy = None;
        if let Some(dns) = self.dns.take()
            && let Err(error) = dns.shutdown().await
        {
            tracing::warn!(%error, "the cluster DNS did not stop cleanly");
        }
        if let Some(server) = self.server.take()
            && let Err(error) = server.shutdown().await
        {
            tracing::warn!(%error, "the API server did not stop cleanly");
        }
        self.authorization.stop();
    }
}
