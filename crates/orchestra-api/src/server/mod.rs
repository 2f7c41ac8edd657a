//! The API server: the registry served over gRPC (for [`RemoteClient`](crate::RemoteClient))
//! and over HTTP/JSON on Kubernetes' REST paths (for curl and people), both on one listen
//! address, with `/healthz`, `/readyz` and Prometheus `/metrics`.
//!
//! The server admits writes with its registry's [`Admission`](crate::admission::Admission)
//! chain (`Registry::with_admission(Admission::recommended(..))` is what `orchestra server`
//! runs) and runs the chain's start-up work before it serves.
//!
//! Requests whose `content-type` is `application/grpc...` go to the gRPC service, every other
//! request to the REST handlers. Both dispatch through a [`DynRegistry`], so the kinds an
//! embedder registers there are served like the built-in ones, and both report failures as
//! Kubernetes `Status` objects built from the same [`ApiError`](crate::ApiError).
//!
//! ```no_run
//! use orchestra_api::Registry;
//! use orchestra_api::registry::DynRegistry;
//! use orchestra_api::server::ApiServer;
//! use orchestra_store::MemStore;
//!
//! # async fn demo() -> std::io::Result<()> {
//! let registry = DynRegistry::new(Registry::new(MemStore::new()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7443").await?;
//! // Serves until the future completes (here: a minute; `orchestra server` waits for
//! // SIGTERM or Ctrl-C), then ends watches and drains connections.
//! let stop = tokio::time::sleep(std::time::Duration::from_secs(60));
//! ApiServer::new(registry).serve(listener, stop).await
//! # }
//! ```
//!
//! Security (all off in [`ServerOptions::default`], all on in `orchestra server`): with
//! [`ServerOptions::tls`] the server speaks only TLS; with [`ServerOptions::authentication`]
//! every request but `/healthz`, `/livez` and `/readyz` needs a verified client certificate
//! or a bearer token (else 401, gRPC `UNAUTHENTICATED`); [`ServerOptions::authorizer`] then
//! decides each request (a denial is 403 `Forbidden`, gRPC `PERMISSION_DENIED`, naming the
//! user, verb and resource), and [`ServerOptions::audit`] records every write and every
//! denial.
//!
//! Limits against abuse ([`ServerOptions::limits`], [`Limits`]): a request rate per user (a
//! token bucket; over it, 429 `TooManyRequests` with `Retry-After`, gRPC
//! `RESOURCE_EXHAUSTED`), open watches per user, the largest list page, the request body
//! size ([`ServerOptions::max_body_bytes`]), and connection timeouts (the TLS handshake, a new
//! connection's first bytes, HTTP/1 headers, HTTP/2 keep-alive).
//!
//! # Layout
//! - [`authn`]: who sends a request (client certificates, token files, the join token).
//! - `authz`: the authorization and audit hook, and REST requests' RBAC verbs.
//! - `grpc`: the `orchestra.api.v1.Api` service.
//! - `rest`: the HTTP/JSON handlers; `path`: REST paths and query strings, parsed.
//! - `logs`: the `pods/log` subresource, relayed from the node agents.
//! - `token`: the `serviceaccounts/token` subresource (bound service account tokens).
//! - [`metrics`]: request counters and the `/metrics` text.
//! - [`watch_cache`]: per kind, one store watch serving every client watch from memory.
//! - [`limits`]: the per-user rate and watch limiters, pure and clock-injected.
//! - `conn`: connection settings and timeouts.

pub mod authn;
mod authz;
mod conn;
mod grpc;
pub mod limits;
mod logs;
pub mod metrics;
mod path;
mod rest;
mod token;
pub mod watch_cache;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tower::ServiceExt;

use crate::auth::{AuditSink, Authorizer, GROUP_AUTHENTICATED, GROUP_MASTERS, UserInfo};
use crate::registry::DynRegistry;
use crate::wire::proto::api_server::ApiServer as GrpcServer;

pub use authn::{Authentication, TokenFile};
pub use limits::Limits;
pub use metrics::Metrics;
pub use watch_cache::{CacheOptions, WatchCache};

/// The response body of both protocols.
pub(crate) type Body = tonic::body::Body;

/// How the server behaves.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The largest HTTP request body read (Kubernetes: 3 MiB); larger ones get 413.
    pub max_body_bytes: usize,
    /// The bookmark interval of HTTP watches with `allowWatchBookmarks=true`.
    pub bookmark_interval: Duration,
    /// How long a shutdown waits for open requests before it closes their connections.
    pub shutdown_grace: Duration,
    /// The watch cache (`None`: every watch is its own store watch).
    pub watch_cache: Option<CacheOptions>,
    /// Serve TLS with this configuration ([`crate::tls::server_config`]); `None`: plaintext.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// How requests are authenticated; `None`: they are not, and every request acts as an
    /// administrator (`--insecure`, in-process tests).
    pub authentication: Option<Authentication>,
    /// Decides every API request; `None`: every authenticated request is allowed.
    pub authorizer: Option<Arc<dyn Authorizer>>,
    /// Records every write and every denial.
    pub audit: Option<Arc<dyn AuditSink>>,
    /// How `pods/log` reaches node agents; `None`: plain HTTP
    /// ([`HttpNodeConnector::plain`](crate::logs::HttpNodeConnector::plain), for insecure
    /// clusters); a secure server passes [`HttpNodeConnector::mutual_tls`](crate::logs::HttpNodeConnector::mutual_tls).
    pub node_connector: Option<Arc<dyn crate::logs::NodeConnector>>,
    /// Per-user request rate and watch limits, list page size, connection timeouts.
    pub limits: Limits,
    /// Signs mesh workload certificates (the `IssueWorkloadCertificate` call); `None`: the
    /// server runs no mesh identity service and says so.
    pub workload_signer: Option<Arc<dyn crate::auth::workload::WorkloadSigner>>,
    /// Issues service account tokens (`serviceaccounts/token`) and, when
    /// [`ServerOptions::authentication`] is on, authenticates them; `None`: no tokens are
    /// issued and bearer JWTs are unknown tokens.
    pub service_account_tokens: Option<Arc<crate::auth::token::ServiceAccountTokens>>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_body_bytes: 3 * 1024 * 1024,
            bookmark_interval: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(5),
            watch_cache: Some(CacheOptions::default()),
            tls: None,
            authentication: None,
            authorizer: None,
            audit: None,
            node_connector: None,
            limits: Limits::default(),
            workload_signer: None,
            service_account_tokens: None,
        }
    }
}

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) registry: DynRegistry,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) options: ServerOptions,
    pub(crate) cache: Option<WatchCache>,
    pub(crate) limiters: limits::Limiters,
    shutdown: watch::Receiver<bool>,
}

impl State {
    /// Completes when the server shuts down (ends watches, which never end by themselves).
    pub(crate) fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut shutdown = self.shutdown.clone();
        async move {
            // An error means the server is gone: shut down too.
            let _ = shutdown.wait_for(|stopping| *stopping).await;
        }
    }
}

/// The API server over a [`DynRegistry`]. See the [module docs](self).
#[derive(Debug)]
pub struct ApiServer {
    registry: DynRegistry,
    options: ServerOptions,
    metrics: Arc<Metrics>,
}

impl ApiServer {
    /// A server for the registry's kinds, with default options.
    pub fn new(registry: DynRegistry) -> Self {
        Self::with_options(registry, ServerOptions::default())
    }

    /// A server with these options.
    pub fn with_options(registry: DynRegistry, options: ServerOptions) -> Self {
        ApiServer {
            registry,
            options,
            metrics: Arc::default(),
        }
    }

    /// The server's metrics (shared with the running server).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Serves connections from `listener` until `shutdown` completes, then stops accepting,
    /// ends open watches, and waits up to [`ServerOptions::shutdown_grace`] for open requests.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        self.options
            .limits
            .validate()
            .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?;
        // The admission plug-ins' start-up work (the system namespaces) comes before the
        // first request.
        self.registry
            .registry()
            .initialize()
            .await
            .map_err(std::io::Error::other)?;
        let (stop, stopping) = watch::channel(false);
        let cache = self.options.watch_cache.clone().map(|options| {
            let stopping = stopping.clone();
            WatchCache::start(&self.registry, options, move || {
                let mut stopping = stopping.clone();
                Box::pin(async move {
                    let _ = stopping.wait_for(|stop| *stop).await;
                })
            })
        });
        let state = Arc::new(State {
            registry: self.registry,
            metrics: self.metrics,
            limiters: limits::Limiters::new(self.options.limits.clone()),
            options: self.options,
            cache,
            shutdown: stopping,
        });
        let grpc = GrpcServer::new(grpc::GrpcApi {
            state: state.clone(),
        })
        // A gRPC message is held whole, as a REST body: the same limit for both.
        .max_decoding_message_size(state.options.max_body_bytes)
        .max_encoding_message_size(usize::MAX);
        let builder = conn::builder(&state.options.limits);
        let first_bytes_timeout = state.options.limits.header_read_timeout;
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let acceptor = state
            .options
            .tls
            .clone()
            .map(tokio_rustls::TlsAcceptor::from);
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Out of file descriptors and the like: log, breathe, go on.
                        tracing::warn!(error = %err, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            let grpc = grpc.clone();
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let result = match acceptor {
                    None => {
                        // hyper's version detection waits for the first bytes untimed.
                        let Some(stream) = conn::first_bytes(stream, first_bytes_timeout).await
                        else {
                            tracing::debug!(%peer, "the connection sent nothing in time");
                            return;
                        };
                        let service = hyper::service::service_fn(move |request| {
                            dispatch(state.clone(), grpc.clone(), None, request)
                        });
                        let connection = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .into_owned();
                        watcher.watch(connection).await
                    }
                    Some(acceptor) => {
                        // A client that never finishes its handshake does not hold a task
                        // forever.
                        let handshake =
                            tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                        let stream = match handshake {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(err)) => {
                                tracing::debug!(%peer, error = %err, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(%peer, "TLS handshake timed out");
                                return;
                            }
                        };
                        let user = peer_user(&stream);
                        let Some(stream) = conn::first_bytes(stream, first_bytes_timeout).await
                        else {
                            tracing::debug!(%peer, "the connection sent nothing in time");
                            return;
                        };
                        let service = hyper::service::service_fn(move |request| {
                            dispatch(state.clone(), grpc.clone(), user.clone(), request)
                        });
                        let connection = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .into_owned();
                        watcher.watch(connection).await
                    }
                };
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
            });
        }
        tracing::info!("API server shutting down");
        let _ = stop.send(true);
        let grace = state.options.shutdown_grace;
        if tokio::time::timeout(grace, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(?grace, "open requests did not finish in time; closing them");
        }
        Ok(())
    }

    /// Binds `addr` (port 0: any free port) and serves in a background task until the
    /// returned handle is shut down or dropped.
    pub async fn spawn(self, addr: SocketAddr) -> std::io::Result<RunningServer> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let tls = self.options.tls.is_some();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(self.serve(listener, async move {
            let _ = stopped.await;
        }));
        Ok(RunningServer {
            local_addr,
            tls,
            stop: Some(stop),
            task,
        })
    }
}

/// A server serving in a background task: its address, and a way to stop it.
#[derive(Debug)]
pub struct RunningServer {
    local_addr: SocketAddr,
    tls: bool,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://` (or `https://` when serving TLS) and the address, for clients.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// Stops the server and waits until it has.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(err) => Err(std::io::Error::other(err)),
        }
    }
}

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The user a verified client certificate names (`None`: no certificate, or one naming
/// nobody, which then authenticates nobody).
fn peer_user<S>(stream: &tokio_rustls::server::TlsStream<S>) -> Option<Arc<UserInfo>> {
    let cert = stream.get_ref().1.peer_certificates()?.first()?;
    match crate::tls::user_from_certificate(cert) {
        Ok(user) => Some(Arc::new(user)),
        Err(error) => {
            tracing::debug!(%error, "a client certificate names no user");
            None
        }
    }
}

/// The gRPC path of the mesh identity service's call.
const WORKLOAD_CERTIFICATE_PATH: &str = "/orchestra.api.v1.Api/IssueWorkloadCertificate";

/// Who every request is when the server does not authenticate.
fn insecure_user() -> UserInfo {
    UserInfo::new("admin", [GROUP_MASTERS, GROUP_AUTHENTICATED])
}

/// Paths anyone may read: probes must work without credentials.
fn is_open(request: &http::Request<Incoming>) -> bool {
    request.method() == http::Method::GET
        && matches!(request.uri().path(), "/healthz" | "/livez" | "/readyz")
}

/// Authenticates, then gRPC or REST by content-type.
async fn dispatch(
    state: Arc<State>,
    grpc: GrpcServer<grpc::GrpcApi>,
    peer: Option<Arc<UserInfo>>,
    mut request: http::Request<Incoming>,
) -> Result<http::Response<Body>, Infallible> {
    let is_grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
    if is_grpc || !is_open(&request) {
        let user = match &state.options.authentication {
            None => insecure_user(),
            Some(authentication) => {
                // A token for the mesh identity's audience only buys a workload certificate.
                let mesh_identity = is_grpc && request.uri().path() == WORKLOAD_CERTIFICATE_PATH;
                let tokens = state.options.service_account_tokens.as_deref();
                match authentication
                    .authenticate(peer.as_deref(), request.headers(), tokens, mesh_identity)
                    .await
                {
                    Ok(user) => user,
                    Err(message) => {
                        state.metrics.unauthenticated();
                        let message = format!("Unauthorized: {message}");
                        return Ok(if is_grpc {
                            tonic::Status::unauthenticated(message).into_http()
                        } else {
                            rest::status_response(&crate::wire::Status::failure(
                                401,
                                "Unauthorized",
                                message,
                            ))
                        });
                    }
                }
            }
        };
        // The clock is tokio's, so that tests with paused time decide what it reads.
        let now = tokio::time::Instant::now().into_std();
        if let Err(err) = state.limiters.admit(&user, now) {
            state
                .metrics
                .throttled(if is_grpc { "grpc" } else { "http" }, "rate");
            tracing::debug!(user = %user.name, "request over the user's rate limit");
            return Ok(if is_grpc {
                crate::wire::to_grpc(&err).into_http()
            } else {
                rest::status_response(&crate::wire::Status::from_error(&err))
            });
        }
        request.extensions_mut().insert(user);
    }
    if is_grpc {
        let limit = state.options.max_body_bytes;
        grpc.oneshot(request)
            .await
            .map(|response| grpc_too_large(response, limit))
    } else {
        Ok(rest::handle(&state, request).await)
    }
}

/// tonic refuses a gRPC message over [`ServerOptions::max_body_bytes`] with `OUT_OF_RANGE`
/// and its own wording, before any handler runs; this answers it as REST answers a body over
/// the limit: 413 `RequestEntityTooLarge` (gRPC `RESOURCE_EXHAUSTED`) naming the limit, with
/// the size and limit in the details, so that clients get [`ApiError::TooLarge`](crate::registry::ApiError::TooLarge). Any other
/// response passes through.
fn grpc_too_large(response: http::Response<Body>, limit: usize) -> http::Response<Body> {
    let Some(status) = tonic::Status::from_header_map(response.headers()) else {
        return response;
    };
    // "Error, decoded message length too large: found N bytes, the limit is: M bytes"
    let Some(size) = (status.code() == tonic::Code::OutOfRange)
        .then(|| {
            status
                .message()
                .strip_prefix("Error, decoded message length too large: found ")
        })
        .flatten()
        .and_then(|rest| rest.split(' ').next())
        .and_then(|size| size.parse::<usize>().ok())
    else {
        return response;
    };
    let mut body = crate::wire::Status::failure(
        413,
        "RequestEntityTooLarge",
        format!(
            "the gRPC request message is {size} bytes, over the limit of {limit} bytes (the same as a REST request body's)"
        ),
    );
    body.details = Some(crate::wire::StatusDetails {
        size: Some(size),
        limit: Some(limit),
        ..crate::wire::StatusDetails::default()
    });
    let details = serde_json::to_vec(&body).unwrap_or_default();
    tonic::Status::with_details(
        tonic::Code::ResourceExhausted,
        body.message,
        bytes::Bytes::from(details),
    )
    .into_http()
}

/// Parses a REST path and a query string exactly as the HTTP API does, returning what the
/// path names (debug-formatted) and the query's parameters. For the fuzz targets; not a
/// stable API.
#[doc(hidden)]
pub fn parse_path_for_fuzzing(
    path: &str,
    query: Option<&str>,
) -> (
    Option<String>,
    Result<std::collections::BTreeMap<String, String>, String>,
) {
    (
        path::parse_target(path).map(|t| format!("{t:?}")),
        path::parse_query(query),
    )
}
