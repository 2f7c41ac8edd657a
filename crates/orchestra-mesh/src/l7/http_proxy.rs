//! [`HttpProxy`]: the outbound L7 listener of a sidecar.
//!
//! Each accepted connection is classified from its first bytes ([`detect`](super::detect)):
//! HTTP/2 (the preface) and HTTP/1 (a request line) are served by hyper and every request is
//! routed by its authority (`:authority` or `Host`) to that service's [`Outbound`] stack (or,
//! when the service has a [`TrafficSplit`], set here or in the directory from the API, to
//! one of its weighted backends' stacks);
//! anything else, or a client that stays silent past the detection timeout (a
//! server-speaks-first protocol), is forwarded opaquely to the listener's opaque service. A
//! listener configured as opaque skips detection altogether, so that such protocols never
//! wait. Headers travel unchanged except the hop-by-hop ones, so a W3C `traceparent` passes
//! through.
//!
//! # Server identities
//! With mTLS ([`OutboundTls`]), every connection to an endpoint requires of the server the
//! identity expected of that endpoint ([`OutboundTls::expected_identity`]): the identity
//! pinned for its service in `server_identities` if any, else its pod's ServiceAccount as
//! discovery tells it ([`EndpointTarget::account`]: `spiffe://TRUST-DOMAIN/ns/NS/sa/SA`,
//! Linkerd's behaviour). A server presenting another identity (a pod impersonating a
//! service, an address that changed hands) fails the handshake: a connect error for that
//! endpoint, so the retry policy and the circuit breaker treat it as any other, the request
//! gets 503 when no endpoint can be connected to, and it is counted in
//! `orchestra_mesh_identity_mismatches_total`. An endpoint whose pod is not known keeps the
//! check of the chain alone (any identity of the trust domain). The rustls configurations
//! are built once per identity ([`ClientConfigs`]).
//!
//! # Redirected connections
//! When the pod's redirect rules (`orchestra sidecar init`) sent a connection here, its
//! original destination ([`original_dst`](super::original_dst())) decides: a service's
//! cluster address and port makes the connection that service's ([`Redirected::Service`]:
//! every request goes through its stack whatever its `Host`, opaque bytes to one of its
//! endpoints), anything else is forwarded unchanged to where it was headed
//! ([`Redirected::Passthrough`], counted as opaque). A connection addressed to the
//! listener itself is served as described above.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tower::{BoxError, Layer, ServiceExt};
use tracing::debug;

use super::body::MeshBody;
use super::breaker::{CircuitBreakerLayer, HttpFailures};
use super::detect::{Detected, PrefixedIo, detect};
use super::directory::{EndpointTarget, MeshDirectory};
use super::discover::EndpointDiscover;
use super::drain::{Drain, serve_draining};
use super::endpoint::{Endpoint, EndpointError, connect_tls};
use super::identity::{ClientConfigs, MeshTls, SpiffeId};
use super::metrics::MeshMetrics;
use super::original_dst::{Redirected, original_dst, passthrough};
use super::split::{SplitError, SplitPicker, TrafficSplit};
use super::stack::{Outbound, StackConfig};
use crate::table::{ServiceAccountRef, ServiceKey};

/// The body of the proxy's responses: the endpoint's, or the proxy's own error text.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// The settings of an [`HttpProxy`].
#[derive(Clone, Debug)]
pub struct HttpProxyConfig {
    /// Every service's outbound stack.
    pub stack: StackConfig,
    /// How long a new connection may stay silent before it is taken for a
    /// server-speaks-first protocol and forwarded opaquely (default 1 s).
    pub detect_timeout: Duration,
    /// Skip detection: every connection is opaque TCP (for MySQL, SMTP and the like).
    pub opaque: bool,
    /// Where opaque connections go (none: they are closed).
    pub opaque_service: Option<ServiceKey>,
    /// Request bodies up to this size (by `Content-Length`) are read whole before they are
    /// forwarded, so that they can be retried (default 64 KiB); larger ones stream.
    pub max_buffered_body: u64,
    /// How long an HTTP/1 client may take to send its request headers (default 10 s).
    pub header_read_timeout: Duration,
    /// mTLS to the peers (their inbound sidecars); plain TCP when `None`.
    pub tls: Option<OutboundTls>,
}

/// The outbound side's mTLS: the sidecar's TLS settings, and the identities servers must
/// prove (see [`OutboundTls::expected_identity`]).
#[derive(Clone, Debug)]
pub struct OutboundTls {
    /// The sidecar's credentials and trust bundle.
    pub tls: MeshTls,
    /// The SPIFFE ID every server of a service must present, whatever discovery says of its
    /// endpoints (an operator's pin).
    pub server_identities: HashMap<ServiceKey, SpiffeId>,
}

impl OutboundTls {
    /// The identity the server of an endpoint of `key` must present: the one pinned for
    /// `key` in `server_identities`; else the SPIFFE ID of the endpoint's ServiceAccount
    /// (`account`, from discovery) in the sidecar's trust domain; else (no pod known, or an
    /// account that makes no SPIFFE ID, which no sidecar can hold a certificate for) `None`:
    /// any identity of the trust domain, the chain alone being checked.
    pub fn expected_identity(
        &self,
        key: &ServiceKey,
        account: Option<&ServiceAccountRef>,
    ) -> Option<SpiffeId> {
        expected_identity(
            self.server_identities.get(key),
            account,
            self.tls.bundle().trust_domain(),
        )
    }
}

/// [`OutboundTls::expected_identity`], pure.
fn expected_identity(
    pinned: Option<&SpiffeId>,
    account: Option<&ServiceAccountRef>,
    trust_domain: &str,
) -> Option<SpiffeId> {
    if let Some(pinned) = pinned {
        return Some(pinned.clone());
    }
    let account = account?;
    match SpiffeId::new(trust_domain, &account.namespace, &account.name) {
        Ok(id) => Some(id),
        Err(error) => {
            debug!(%error, %account, "the endpoint's account makes no SPIFFE ID: its server's identity is not checked");
            None
        }
    }
}

/// The outbound side's TLS as the proxy uses it: the settings and the configurations
/// cached per identity.
#[derive(Debug)]
struct Tls {
    settings: OutboundTls,
    configs: ClientConfigs,
}

impl Tls {
    /// The client configuration for `target`, an endpoint of `key`.
    fn config_for(&self, key: &ServiceKey, target: &EndpointTarget) -> Arc<rustls::ClientConfig> {
        let expected = self
            .settings
            .expected_identity(key, target.account.as_ref());
        self.configs.get(expected.as_ref())
    }
}

impl Default for HttpProxyConfig {
    fn default() -> Self {
        HttpProxyConfig {
            stack: StackConfig::default(),
            detect_timeout: Duration::from_secs(1),
            opaque: false,
            opaque_service: None,
            max_buffered_body: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            tls: None,
        }
    }
}

/// The outbound L7 proxy (see the module docs). Shared (`Arc`) by its accept loop, its
/// connections and its admin endpoint.
#[derive(Debug)]
pub struct HttpProxy {
    directory: MeshDirectory,
    config: HttpProxyConfig,
    /// `config.tls` with its cached configurations.
    tls: Option<Arc<Tls>>,
    metrics: Arc<MeshMetrics>,
    stacks: Mutex<HashMap<ServiceKey, Outbound<Incoming>>>,
    splits: Mutex<HashMap<ServiceKey, SplitPicker>>,
    opaque_next: AtomicUsize,
}

impl HttpProxy {
    /// A proxy routing by `directory` (which a [`ProxyFollower`](crate::ProxyFollower) or a
    /// test keeps up to date).
    pub fn new(directory: MeshDirectory, config: HttpProxyConfig) -> Arc<Self> {
        let metrics = Arc::new(MeshMetrics::default());
        let tls = config.tls.clone().map(|settings| {
            let configs =
                ClientConfigs::new(settings.tls.clone(), metrics.identity_mismatches.clone());
            Arc::new(Tls { settings, configs })
        });
        Arc::new(HttpProxy {
            directory,
            config,
            tls,
            metrics,
            stacks: Mutex::default(),
            splits: Mutex::default(),
            opaque_next: AtomicUsize::new(0),
        })
    }

    /// Splits the requests for service port `apex` between `split`'s backends by weight,
    /// from the next request on (replacing any split `apex` had, and taking precedence over
    /// the directory's split of the service, see [`MeshDirectory::apply_splits`]). A backend
    /// without a ready endpoint is skipped; when none has one, requests get 503.
    pub fn set_traffic_split(
        &self,
        apex: ServiceKey,
        split: TrafficSplit,
    ) -> Result<(), SplitError> {
        let picker = SplitPicker::new(split)?;
        self.splits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(apex, picker);
        Ok(())
    }

    /// Removes `apex`'s split: its requests go to its own endpoints again.
    pub fn remove_traffic_split(&self, apex: &ServiceKey) {
        self.splits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(apex);
    }

    /// The backend a request for `apex` goes to: `None` when `apex` has no split,
    /// `Some(None)` when no backend of its split has a ready endpoint. A split set here
    /// for the port wins over the directory's split of the whole service (the API's).
    fn split_backend(&self, apex: &ServiceKey) -> Option<Option<ServiceKey>> {
        let mut splits = self.splits.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(picker) = splits.get_mut(apex) else {
            drop(splits);
            return self.directory.pick_split(apex);
        };
        let ready = |key: &ServiceKey| {
            self.directory
                .endpoints(key)
                .is_some_and(|endpoints| !endpoints.borrow().is_empty())
        };
        Some(picker.pick(ready).cloned())
    }

    /// The proxy's counters.
    pub fn metrics(&self) -> &MeshMetrics {
        &self.metrics
    }

    /// Accepts and serves connections on `listener` until the future is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        self.serve_until(listener, Drain::new()).await;
    }

    /// Accepts and serves connections on `listener` until `drain` starts; then returns,
    /// and the open HTTP connections finish their requests and close (see [`Drain`]).
    pub async fn serve_until(self: Arc<Self>, listener: TcpListener, drain: Drain) {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = drain.draining() => return,
            };
            match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(self.clone().connection(stream, drain.clone()));
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// Serves `/metrics` (Prometheus text) and `/healthz` on `listener` until dropped.
    pub async fn serve_admin(self: Arc<Self>, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let proxy = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let proxy = proxy.clone();
                    async move {
                        let (status, text) = match request.uri().path() {
                            "/metrics" => (StatusCode::OK, proxy.metrics.render()),
                            "/healthz" => (StatusCode::OK, "ok\n".to_owned()),
                            _ => (
                                StatusCode::NOT_FOUND,
                                "not found: try /metrics or /healthz\n".to_owned(),
                            ),
                        };
                        Ok::<_, std::convert::Infallible>(text_response(status, text))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    /// Detects the connection's protocol and serves it.
    async fn connection(self: Arc<Self>, mut stream: TcpStream, drain: Drain) {
        let _guard = drain.track();
        // A redirected connection's service, from its original destination (see the module
        // docs); `None` for one addressed to this listener, routed by authority.
        let redirected = original_dst(&stream).map(|dst| Redirected::of(&self.directory, dst));
        let pinned = match redirected {
            Some(Redirected::Passthrough(destination)) => {
                let timeout = self.config.stack.connect_timeout;
                let moved = passthrough(stream, destination, &[], timeout).await;
                self.metrics.record_opaque(moved);
                return;
            }
            Some(Redirected::Service(key)) => Some(key),
            None => None,
        };
        if self.config.opaque {
            return self.opaque(stream, Bytes::new(), pinned.as_ref()).await;
        }
        let mut prefix = BytesMut::with_capacity(64);
        let deadline = Instant::now() + self.config.detect_timeout;
        let detected = loop {
            match detect(&prefix) {
                Detected::NeedMore => {}
                done => break done,
            }
            match tokio::time::timeout_at(deadline, stream.read_buf(&mut prefix)).await {
                // Silent past the timeout: a server-speaks-first protocol.
                Err(_) => break Detected::Opaque,
                // Closed or broken before saying anything useful.
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => {}
            }
        };
        let io = TokioIo::new(PrefixedIo::new(prefix.freeze(), stream));
        let proxy = self.clone();
        let pinned_key = pinned.clone();
        let service = service_fn(move |request: Request<Incoming>| {
            let proxy = proxy.clone();
            let pinned = pinned_key.clone();
            async move { Ok::<_, std::convert::Infallible>(proxy.route(request, pinned).await) }
        });
        let served = match detected {
            Detected::Http2 => {
                let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .serve_connection(io, service);
                serve_draining(connection, &drain, |c| c.graceful_shutdown()).await
            }
            Detected::Http1 => {
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(self.config.header_read_timeout)
                    .serve_connection(io, service);
                serve_draining(connection, &drain, |c| c.graceful_shutdown()).await
            }
            Detected::Opaque | Detected::NeedMore => {
                let (prefix, stream) = io.into_inner().into_parts();
                return self.opaque(stream, prefix, pinned.as_ref()).await;
            }
        };
        if let Err(error) = served {
            debug!(%error, "HTTP connection ended with an error");
        }
    }

    /// Forwards a connection byte for byte to one endpoint of `service` (a redirected
    /// connection's), else of the opaque service.
    async fn opaque(&self, mut client: TcpStream, prefix: Bytes, service: Option<&ServiceKey>) {
        let service = service.or(self.config.opaque_service.as_ref());
        let picked = service.and_then(|key| {
            let targets = self.directory.targets(key)?;
            let targets = targets.borrow();
            let n = targets.len();
            (n > 0).then(|| {
                let target = targets[self.opaque_next.fetch_add(1, Ordering::Relaxed) % n].clone();
                (key, target)
            })
        });
        let Some((key, target)) = picked else {
            debug!("opaque connection with no opaque service endpoint: closed");
            return;
        };
        let endpoint = target.addr;
        let Ok(server) = TcpStream::connect(endpoint).await else {
            return;
        };
        let _ = server.set_nodelay(true);
        let moved = match &self.tls {
            None => copy(&mut client, server, &prefix).await,
            Some(tls) => {
                let config = tls.config_for(key, &target);
                match connect_tls(endpoint, server, config).await {
                    Ok(server) => copy(&mut client, server, &prefix).await,
                    Err(error) => {
                        debug!(%error, %endpoint, "mTLS to the opaque endpoint failed");
                        return;
                    }
                }
            }
        };
        self.metrics.record_opaque(moved + prefix.len() as u64);
    }

    /// The stack of `key`, built on first use.
    fn stack(&self, key: &ServiceKey) -> Option<Outbound<Incoming>> {
        let mut stacks = self.stacks.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(stack) = stacks.get(key) {
            return Some(stack.clone());
        }
        let targets = self.directory.targets(key)?;
        let breaker = CircuitBreakerLayer::new(
            self.config.stack.breaker,
            HttpFailures,
            self.metrics.ejections.clone(),
        );
        let connect_timeout = self.config.stack.connect_timeout;
        let tls = self.tls.clone();
        let service = key.clone();
        // Each endpoint's connections require its own identity; an endpoint whose identity
        // changes is a new endpoint to the balancer (see `EndpointDiscover::targets`).
        let discover = EndpointDiscover::targets(targets, move |target: &EndpointTarget| {
            let config = tls.as_ref().map(|tls| tls.config_for(&service, target));
            breaker.layer(Endpoint::with_tls(target.addr, connect_timeout, config))
        });
        let stack = Outbound::new(discover, &self.config.stack, self.metrics.retries.clone());
        stacks.insert(key.clone(), stack.clone());
        Some(stack)
    }

    /// Answers one request: finds its service (`pinned`, a redirected connection's, else by
    /// its authority) and sends it through that service's stack.
    async fn route(
        &self,
        request: Request<Incoming>,
        pinned: Option<ServiceKey>,
    ) -> Response<ProxyBody> {
        let start = Instant::now();
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                let host = request.headers().get(header::HOST)?;
                host.to_str().ok().map(str::to_owned)
            });
        let (authority, key) = match (pinned, authority) {
            // Counted under the service's name, not the Host: a redirected application's
            // Host headers are anything it likes, and each would be a metrics series.
            (Some(key), _) => (key.to_string(), key),
            (None, None) => {
                return text_response(
                    StatusCode::BAD_REQUEST,
                    "the request names no authority (no Host header)\n",
                );
            }
            (None, Some(authority)) => match self.directory.resolve(&authority) {
                Some(key) => (authority, key),
                None => {
                    self.metrics.record_request("unknown", 404, start.elapsed());
                    return text_response(
                        StatusCode::NOT_FOUND,
                        format!("no service is known as {authority}\n"),
                    );
                }
            },
        };
        let key = match self.split_backend(&key) {
            None => key,
            Some(Some(backend)) => backend,
            Some(None) => {
                self.metrics
                    .record_request(&authority, 503, start.elapsed());
                return text_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("no backend of the traffic split of {key} has a ready endpoint\n"),
                );
            }
        };
        let no_endpoints = self
            .directory
            .endpoints(&key)
            .is_none_or(|endpoints| endpoints.borrow().is_empty());
        let stack = if no_endpoints { None } else { self.stack(&key) };
        let response = match stack {
            // Fail at once rather than wait for an endpoint until the timeout.
            None if no_endpoints => text_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("service {key} has no ready endpoint\n"),
            ),
            None => text_response(
                StatusCode::NOT_FOUND,
                format!("no service is known as {authority}\n"),
            ),
            Some(stack) => match self.forward(stack, request).await {
                Ok(response) => response.map(|body| body.map_err(BoxError::from).boxed_unsync()),
                Err(error) => error_response(&key, &error),
            },
        };
        self.metrics
            .record_request(&authority, response.status().as_u16(), start.elapsed());
        response
    }

    /// Prepares the request (body, hop-by-hop headers) and sends it through `stack`.
    async fn forward(
        &self,
        stack: Outbound<Incoming>,
        request: Request<Incoming>,
    ) -> Result<Response<Incoming>, BoxError> {
        let (mut parts, body) = request.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let body = if body.is_end_stream() {
            MeshBody::empty()
        } else if length.is_some_and(|n| n <= self.config.max_buffered_body) {
            let limit = usize::try_from(self.config.max_buffered_body).unwrap_or(usize::MAX);
            MeshBody::from(Limited::new(body, limit).collect().await?.to_bytes())
        } else {
            MeshBody::Streaming(body)
        };
        stack.oneshot(Request::from_parts(parts, body)).await
    }
}

/// Writes `prefix` to `server`, then copies both ways; the bytes moved (0 on failure).
async fn copy<S>(client: &mut TcpStream, mut server: S, prefix: &[u8]) -> u64
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if server.write_all(prefix).await.is_err() {
        return 0;
    }
    match tokio::io::copy_bidirectional(client, &mut server).await {
        Ok((up, down)) => up + down,
        Err(_) => 0,
    }
}

/// Removes the headers that describe one hop's connection (RFC 9110, 7.6.1), and those the
/// `Connection` header names. `Transfer-Encoding` stays: hyper frames bodies by it.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| name.trim().parse().ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}

/// The proxy's answer when the stack failed: 504 for a timeout, 503 when no endpoint could
/// be connected to, 502 for anything else.
fn error_response(key: &ServiceKey, error: &BoxError) -> Response<ProxyBody> {
    let status = if error.is::<tower::timeout::error::Elapsed>() {
        StatusCode::GATEWAY_TIMEOUT
    } else if matches!(
        error.downcast_ref::<EndpointError>(),
        Some(EndpointError::Connect { .. })
    ) {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_GATEWAY
    };
    text_response(status, format!("service {key}: {error}\n"))
}

pub(crate) fn text_response(status: StatusCode, text: impl Into<String>) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from(text.into()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_dropped_and_tracing_headers_kept() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONNECTION, "keep-alive, x-hop".parse().unwrap());
        headers.insert("x-hop", "1".parse().unwrap());
        headers.insert("keep-alive", "timeout=5".parse().unwrap());
        headers.insert(header::UPGRADE, "websocket".parse().unwrap());
        headers.insert(
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
                .parse()
                .unwrap(),
        );
        headers.insert(header::CONTENT_LENGTH, "3".parse().unwrap());
        strip_hop_by_hop(&mut headers);
        let mut names: Vec<_> = headers.keys().map(|k| k.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-length", "traceparent"]);
    }

    #[test]
    fn the_expected_identity_is_the_pin_else_the_endpoints_account_in_the_trust_domain() {
        let id = |td: &str, ns: &str, sa: &str| SpiffeId::new(td, ns, sa).unwrap();
        let web = ServiceAccountRef::new("shop", "web");
        // The pod's account, in the sidecar's trust domain.
        assert_eq!(
            expected_identity(None, Some(&web), "example.org"),
            Some(id("example.org", "shop", "web"))
        );
        // Kubernetes' default account is an identity like any other.
        assert_eq!(
            expected_identity(
                None,
                Some(&ServiceAccountRef::new("jobs", "default")),
                "cluster.local"
            ),
            Some(id("cluster.local", "jobs", "default"))
        );
        // A pin for the service wins over discovery.
        let pinned = id("cluster.local", "shop", "frontend");
        assert_eq!(
            expected_identity(Some(&pinned), Some(&web), "cluster.local"),
            Some(pinned.clone())
        );
        assert_eq!(
            expected_identity(Some(&pinned), None, "cluster.local"),
            Some(pinned)
        );
        // No known pod, or an account no certificate can name: the chain alone.
        assert_eq!(expected_identity(None, None, "cluster.local"), None);
        assert_eq!(
            expected_identity(
                None,
                Some(&ServiceAccountRef::new("shop", "Web")),
                "cluster.local"
            ),
            None
        );
    }
}
