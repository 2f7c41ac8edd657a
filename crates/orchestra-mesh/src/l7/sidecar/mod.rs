//! [`Sidecar`]: the mesh's pieces composed into the proxy that runs next to an application
//! (what `orchestra sidecar` runs in a pod).
//!
//! A sidecar is one workload identity, the SPIFFE ID of its pod's service account. Run, it:
//! - serves its admin listener at once (`/live`, `/ready`, `/metrics`, `POST /shutdown`);
//! - follows the API's Services, Endpoints and Pods into a [`MeshDirectory`] (a
//!   [`ProxyFollower`] [with endpoint identities](ProxyFollower::with_endpoint_identities):
//!   each endpoint's pod's ServiceAccount, the identity its server must prove), and its
//!   TrafficSplits (a [`SplitFollower`]);
//! - obtains its certificate from the identity service (retrying with a doubling backoff
//!   while the control plane cannot be reached), then keeps it renewed and follows the
//!   trust bundle ([`spawn_renewal`]);
//! - serves the outbound listener ([`HttpProxy`], mTLS to the peers' inbound listeners) and
//!   the inbound listener ([`InboundProxy`]: mTLS termination, the authorization policy,
//!   the caller's identity passed to the application).
//!
//! Each listener also serves its address's IPv6 twin ([`Listeners`]: `[::]:PORT` beside
//! `0.0.0.0:PORT`, `[::1]:PORT` beside `127.0.0.1:PORT`), where a dual-stack pod's redirect
//! sends IPv6 connections; both sockets feed the same proxy (its stacks, metrics, drain and
//! readiness). A host without IPv6 gets one warning and IPv4 alone
//! ([`SidecarConfig::ipv6`]).
//!
//! It is ready (`/ready` answers 200) once it has a certificate and the directory has
//! received its first service table; an application that waits for that never sends a
//! request the sidecar cannot route. It stops on the future given to [`Sidecar::run`]
//! (SIGTERM, for the command) or on `POST /shutdown` (for Jobs: the application's last act
//! lets the pod complete): it reports not-ready, closes its listeners, lets the open
//! connections finish their requests (up to [`SidecarConfig::drain_timeout`]), and returns.
//!
//! # Layout
//! - this file: [`SidecarConfig`], [`Sidecar`], [`ShutdownHandle`], [`SidecarError`].
//! - `status`: [`SidecarStatus`], and the readiness decision, pure.
//! - `admin`: the admin listener.
//! - `certificate`: the first certificate, retried until it arrives.

mod admin;
mod certificate;
mod status;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use orchestra_api::Client;
use tokio::sync::watch;
use tracing::{info, warn};

use super::drain::Drain;
use super::identity::{
    CertificateIssuer, RenewalConfig, SpiffeId, SpiffeIdError, spawn_renewal, system_clock,
};
use super::{
    AuthorizationPolicy, DirectoryConfig, HttpProxy, HttpProxyConfig, InboundConfig, InboundProxy,
    ListenError, Listeners, MeshDirectory, OutboundTls, SplitFollower,
};
use crate::follower::{FollowerConfig, ProxyFollower};
use crate::table::ServiceKey;

pub use status::SidecarStatus;

/// The settings of a [`Sidecar`].
#[derive(Clone, Debug)]
pub struct SidecarConfig {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's service account: with the namespace and trust domain, the sidecar's
    /// identity.
    pub service_account: String,
    /// The mesh's trust domain (the identity service's; default `cluster.local`).
    pub trust_domain: String,
    /// The cluster's DNS domain, for the names requests use (default `cluster.local`).
    pub cluster_domain: String,
    /// Where the inbound listener (mTLS from other sidecars) listens (default
    /// `0.0.0.0:4143`).
    pub inbound: SocketAddr,
    /// Where the application listens (default `127.0.0.1:8080`); its port is the one the
    /// policy names.
    pub app: SocketAddr,
    /// Where the outbound listener (plain HTTP from the application) listens (default
    /// `127.0.0.1:4140`).
    pub outbound: SocketAddr,
    /// Where the admin listener listens (default `0.0.0.0:4191`).
    pub admin: SocketAddr,
    /// Whether each of the three listeners also listens on its address's IPv6 twin
    /// (`[::]:PORT` for `0.0.0.0:PORT`, `[::1]:PORT` for `127.0.0.1:PORT`; IPv6-only
    /// sockets), where the pod's redirect sends IPv6 connections (default `true`). A host
    /// without IPv6 is not an error: the sidecar warns once and listens on IPv4 alone.
    pub ipv6: bool,
    /// Who may call the application (default: any caller with a mesh certificate).
    pub policy: AuthorizationPolicy,
    /// Identities pinned per service: every server of the service must prove it, whatever
    /// discovery says. Other services' endpoints must prove their own pod's ServiceAccount
    /// (any identity of the trust domain for an endpoint whose pod is not known).
    pub server_identities: HashMap<ServiceKey, SpiffeId>,
    /// The outbound proxy's settings (its `tls` is the sidecar's, whatever is set here).
    pub proxy: HttpProxyConfig,
    /// When and how the certificate is renewed; its backoff also paces the first request.
    pub renewal: RenewalConfig,
    /// How the service table follows the API.
    pub follower: FollowerConfig,
    /// How long open connections may take to finish at shutdown (default 30 s).
    pub drain_timeout: Duration,
}

impl SidecarConfig {
    /// The defaults for service account `service_account` of `namespace`.
    pub fn new(namespace: impl Into<String>, service_account: impl Into<String>) -> Self {
        SidecarConfig {
            namespace: namespace.into(),
            service_account: service_account.into(),
            trust_domain: "cluster.local".to_owned(),
            cluster_domain: "cluster.local".to_owned(),
            inbound: SocketAddr::from(([0, 0, 0, 0], 4143)),
            app: SocketAddr::from(([127, 0, 0, 1], 8080)),
            outbound: SocketAddr::from(([127, 0, 0, 1], 4140)),
            admin: SocketAddr::from(([0, 0, 0, 0], 4191)),
            ipv6: true,
            policy: AuthorizationPolicy::default(),
            server_identities: HashMap::new(),
            proxy: HttpProxyConfig::default(),
            renewal: RenewalConfig::default(),
            follower: FollowerConfig::default(),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// Why a sidecar could not start.
#[derive(Debug, thiserror::Error)]
pub enum SidecarError {
    /// The namespace, service account or trust domain do not make a SPIFFE ID.
    #[error("the sidecar's identity")]
    Identity(#[from] SpiffeIdError),
    /// A listener could not be opened (the configured address, or its IPv6 twin: see
    /// [`SidecarConfig::ipv6`]).
    #[error("cannot listen for the {listener} listener on {addr} (is the port free?)")]
    Bind {
        /// Which listener (`inbound`, `outbound`, `admin`).
        listener: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Stops a running sidecar (what `POST /shutdown` does). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ShutdownHandle {
    requested: Arc<watch::Sender<bool>>,
}

impl ShutdownHandle {
    fn new() -> Self {
        ShutdownHandle {
            requested: Arc::new(watch::Sender::new(false)),
        }
    }

    /// Asks the sidecar to drain and stop.
    pub fn shutdown(&self) {
        self.requested.send_replace(true);
    }

    /// Whether a shutdown was asked for.
    pub fn is_requested(&self) -> bool {
        *self.requested.borrow()
    }

    async fn requested(&self) {
        let mut rx = self.requested.subscribe();
        let _ = rx.wait_for(|requested| *requested).await;
    }
}

/// A sidecar with its listeners open, not running yet (see the module docs).
#[derive(Debug)]
pub struct Sidecar {
    config: SidecarConfig,
    identity: SpiffeId,
    inbound: Listeners,
    outbound: Listeners,
    admin: Listeners,
    status: watch::Sender<SidecarStatus>,
    shutdown: ShutdownHandle,
}

/// Binds `addr` (and with `*ipv6` its IPv6 twin) for `listener`; the first time the host
/// turns out to have no IPv6, warns and clears `*ipv6`, so that the warning is said once.
async fn bind(
    listener: &'static str,
    addr: SocketAddr,
    ipv6: &mut bool,
) -> Result<Listeners, SidecarError> {
    let bound = Listeners::bind(addr, *ipv6)
        .await
        .map_err(|ListenError { addr, source }| SidecarError::Bind {
            listener,
            addr,
            source,
        })?;
    if let Some(error) = bound.ipv6_unavailable() {
        warn!(%error, %listener, "no IPv6 on this host: listening on IPv4 alone (no IPv6 twin for this listener and those after it); redirected IPv6 connections are refused");
        *ipv6 = false;
    }
    Ok(bound)
}

impl Sidecar {
    /// Checks the identity and opens the three listeners, each with its IPv6 twin when
    /// [`SidecarConfig::ipv6`] (port 0 picks a free port, the same for both families: see
    /// the `*_addr` methods).
    pub async fn bind(config: SidecarConfig) -> Result<Self, SidecarError> {
        let identity = SpiffeId::new(
            &config.trust_domain,
            &config.namespace,
            &config.service_account,
        )?;
        let mut ipv6 = config.ipv6;
        Ok(Sidecar {
            inbound: bind("inbound", config.inbound, &mut ipv6).await?,
            outbound: bind("outbound", config.outbound, &mut ipv6).await?,
            admin: bind("admin", config.admin, &mut ipv6).await?,
            identity,
            config,
            status: watch::Sender::new(SidecarStatus::default()),
            shutdown: ShutdownHandle::new(),
        })
    }

    /// The identity the sidecar asks a certificate for.
    pub fn identity(&self) -> &SpiffeId {
        &self.identity
    }

    /// The inbound listener's address (the configured one; see also
    /// [`inbound_addrs`](Self::inbound_addrs)).
    pub fn inbound_addr(&self) -> SocketAddr {
        local_addr(&self.inbound, self.config.inbound)
    }

    /// The outbound listener's address (the configured one; see also
    /// [`outbound_addrs`](Self::outbound_addrs)).
    pub fn outbound_addr(&self) -> SocketAddr {
        local_addr(&self.outbound, self.config.outbound)
    }

    /// The admin listener's address (the configured one; see also
    /// [`admin_addrs`](Self::admin_addrs)).
    pub fn admin_addr(&self) -> SocketAddr {
        local_addr(&self.admin, self.config.admin)
    }

    /// Every address the inbound listener listens on: the configured one, then its IPv6
    /// twin if any.
    pub fn inbound_addrs(&self) -> Vec<SocketAddr> {
        self.inbound.local_addrs()
    }

    /// Every address the outbound listener listens on (see
    /// [`inbound_addrs`](Self::inbound_addrs)).
    pub fn outbound_addrs(&self) -> Vec<SocketAddr> {
        self.outbound.local_addrs()
    }

    /// Every address the admin listener listens on (see
    /// [`inbound_addrs`](Self::inbound_addrs)).
    pub fn admin_addrs(&self) -> Vec<SocketAddr> {
        self.admin.local_addrs()
    }

    /// The sidecar's progress (certificate, service table, draining), updated as it runs.
    pub fn status(&self) -> watch::Receiver<SidecarStatus> {
        self.status.subscribe()
    }

    /// A handle that stops the sidecar.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Runs the sidecar (see the module docs) with Services and Endpoints from `client` and
    /// certificates from `issuer`, until `shutdown` completes or a shutdown is requested;
    /// returns once the connections have drained.
    pub async fn run<C: Client>(
        self,
        client: C,
        issuer: Arc<dyn CertificateIssuer>,
        shutdown: impl Future<Output = ()> + Send,
    ) {
        let Sidecar {
            config,
            identity,
            inbound: inbound_listener,
            outbound: outbound_listener,
            admin: admin_listener,
            status,
            shutdown: handle,
        } = self;
        let status = Arc::new(status);
        let stop = async {
            tokio::select! {
                () = shutdown => {}
                () = handle.requested() => {}
            }
        };
        let mut stop = std::pin::pin!(stop);
        let mut tasks = tokio::task::JoinSet::new();

        let proxies = admin::Proxies::default();
        let admin = Arc::new(admin::Admin {
            status: status.subscribe(),
            shutdown: handle.clone(),
            proxies: proxies.clone(),
        });
        let admin_drain = Drain::new();
        for listener in admin_listener.into_listeners() {
            tasks.spawn(admin.clone().serve(listener, admin_drain.clone()));
        }

        // The service table arrives while the certificate is being obtained.
        let directory = MeshDirectory::new(DirectoryConfig {
            cluster_domain: config.cluster_domain.clone(),
            namespace: Some(config.namespace.clone()),
        });
        // Splits are not waited for: until they arrive, an apex service's requests go to its
        // own endpoints, which is what a split-unaware client would get.
        let splits = SplitFollower::new(client.clone(), directory.clone(), config.follower.clone());
        tasks.spawn(splits.run());
        let follower =
            ProxyFollower::new(client, Arc::new(directory.clone()), config.follower.clone())
                .with_endpoint_identities();
        let mut applied = follower.applied();
        tasks.spawn(follower.run());
        tasks.spawn({
            let status = status.clone();
            async move {
                // Every apply, even of an unchanged table, is a sign of life: the first
                // makes the sidecar ready.
                while applied.changed().await.is_ok() {
                    let ports = applied.borrow_and_update().len();
                    status.send_modify(|s| s.service_ports = Some(ports));
                }
            }
        });

        let first = certificate::first(&*issuer, &identity, &config, &status);
        let tls = tokio::select! {
            tls = first => tls,
            () = &mut stop => {
                info!(%identity, "sidecar stopped before it had a certificate");
                status.send_modify(|s| s.draining = true);
                admin_drain.start();
                let _ = tokio::time::timeout(config.drain_timeout, admin_drain.idle()).await;
                return;
            }
        };
        let renewal = spawn_renewal(tls.clone(), issuer, config.renewal.clone(), system_clock());
        let mut renewals = renewal.status();
        tasks.spawn({
            let status = status.clone();
            async move {
                while renewals.changed().await.is_ok() {
                    let renewed = renewals.borrow_and_update().clone();
                    status.send_modify(|s| {
                        s.certificate_expiry = Some(renewed.not_after);
                        s.certificates_issued = 1 + renewed.renewals;
                        s.certificate_error = renewed
                            .last_error
                            .filter(|_| renewed.consecutive_failures > 0);
                    });
                }
            }
        });

        let outbound = HttpProxy::new(
            directory,
            HttpProxyConfig {
                tls: Some(OutboundTls {
                    tls: tls.clone(),
                    server_identities: config.server_identities.clone(),
                }),
                ..config.proxy.clone()
            },
        );
        let inbound = InboundProxy::new(
            &tls,
            InboundConfig::new(config.namespace.clone(), config.app, config.policy.clone()),
        );
        // Set once, here: the admin endpoint only reads it.
        let _ = proxies.set((outbound.clone(), inbound.clone()));
        let drain = Drain::new();
        let (inbound_addrs, outbound_addrs) = (
            inbound_listener.local_addrs(),
            outbound_listener.local_addrs(),
        );
        // Both families' sockets feed the same proxies: one set of stacks, metrics, drain.
        for listener in outbound_listener.into_listeners() {
            tasks.spawn(outbound.clone().serve_until(listener, drain.clone()));
        }
        for listener in inbound_listener.into_listeners() {
            tasks.spawn(inbound.clone().serve_until(listener, drain.clone()));
        }
        info!(%identity, inbound = ?inbound_addrs, outbound = ?outbound_addrs, app = %config.app, "sidecar serving");

        stop.await;
        info!(%identity, connections = drain.live(), "sidecar draining");
        status.send_modify(|s| s.draining = true);
        drain.start();
        if tokio::time::timeout(config.drain_timeout, drain.idle())
            .await
            .is_err()
        {
            warn!(connections = drain.live(), timeout = ?config.drain_timeout, "connections still open after the drain timeout: closed");
        }
        // The admin listener last, so that `POST /shutdown` gets its answer.
        admin_drain.start();
        let _ = tokio::time::timeout(config.drain_timeout, admin_drain.idle()).await;
        renewal.stop();
        tasks.shutdown().await;
        info!(%identity, "sidecar stopped");
    }
}

fn local_addr(listeners: &Listeners, configured: SocketAddr) -> SocketAddr {
    listeners.primary().local_addr().unwrap_or(configured)
}
