//! [`InboundProxy`]: the inbound side of a sidecar, in front of the local application.
//!
//! Each connection must be mTLS with a client certificate that chains to the trust bundle
//! (anything else fails the handshake and is counted); the caller's SPIFFE ID comes from
//! that certificate, and the [`AuthorizationPolicy`] decides whether it may call this port.
//! Then, as on the outbound side, the first decrypted bytes say HTTP/1, HTTP/2 or opaque:
//! each HTTP request is decided on its own (the policy's HTTP routes look at its method and
//! path), answered 403 when denied and otherwise forwarded to the application
//! (with the caller's identity in `x-orchestra-peer-identity`, which callers cannot forge:
//! any such header they send is replaced); a denied opaque connection is closed at once,
//! an allowed one is copied byte for byte.
//!
//! # Redirected connections
//! A connection the pod's redirect rules (`orchestra sidecar init`) sent here was headed for
//! a port of the pod ([`original_dst`](super::original_dst())): it goes to the application
//! on that port (at the address of [`InboundConfig::app`]), and the policy decides for that
//! port. A connection addressed to the inbound listener itself goes to
//! [`InboundConfig::app`], as before.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use http::header::HeaderName;
use http::{HeaderValue, Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::{BoxError, ServiceExt};
use tracing::debug;

use super::body::MeshBody;
use super::detect::{Detected, PrefixedIo, detect};
use super::drain::{Drain, serve_draining};
use super::endpoint::Endpoint;
use super::http_proxy::{ProxyBody, strip_hop_by_hop, text_response};
use super::identity::{MeshTls, SpiffeId, peer_identity};
use super::metrics::MeshMetrics;
use super::original_dst::original_dst;
use super::policy::{AuthorizationPolicy, Decision, HttpRequestInfo};

/// The header carrying the verified caller identity to the application.
pub const PEER_IDENTITY_HEADER: &str = "x-orchestra-peer-identity";

/// The settings of an [`InboundProxy`].
#[derive(Clone, Debug)]
pub struct InboundConfig {
    /// The namespace of the pod the sidecar serves (the policy is looked up by it).
    pub namespace: String,
    /// The application's port, as the policy names it.
    pub port: u16,
    /// Where the application listens (usually 127.0.0.1:PORT).
    pub app: SocketAddr,
    /// Who may call.
    pub policy: AuthorizationPolicy,
    /// How long a client may take to complete the TLS handshake (default 10 s).
    pub handshake_timeout: Duration,
    /// How long a connection may stay silent before it is taken for opaque (default 1 s).
    pub detect_timeout: Duration,
    /// How long an HTTP/1 client may take to send its request headers (default 10 s).
    pub header_read_timeout: Duration,
    /// Connect timeout to the application (default 1 s: it is local).
    pub connect_timeout: Duration,
}

impl InboundConfig {
    /// Defaults for an application at `app` in `namespace`, port taken from `app`.
    pub fn new(namespace: impl Into<String>, app: SocketAddr, policy: AuthorizationPolicy) -> Self {
        InboundConfig {
            namespace: namespace.into(),
            port: app.port(),
            app,
            policy,
            handshake_timeout: Duration::from_secs(10),
            detect_timeout: Duration::from_secs(1),
            header_read_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(1),
        }
    }
}

/// The inbound sidecar listener (see the module docs).
pub struct InboundProxy {
    config: InboundConfig,
    acceptor: TlsAcceptor,
    app: Endpoint,
    /// The application's other ports that redirected connections were headed for, each
    /// with its pooled client, made on first use.
    redirected_apps: Mutex<HashMap<u16, Endpoint>>,
    metrics: Arc<MeshMetrics>,
}

impl std::fmt::Debug for InboundProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundProxy")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl InboundProxy {
    /// An inbound proxy with the sidecar's `tls` settings (its credentials and trust bundle
    /// are read at each handshake, so rotations apply to new connections).
    pub fn new(tls: &MeshTls, config: InboundConfig) -> Arc<Self> {
        Arc::new(InboundProxy {
            acceptor: TlsAcceptor::from(tls.server_config()),
            app: Endpoint::new(config.app, config.connect_timeout),
            redirected_apps: Mutex::default(),
            config,
            metrics: Arc::new(MeshMetrics::inbound()),
        })
    }

    /// The proxy's counters (denials, TLS failures, requests).
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
                    debug!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// The application port a connection is for, and the client to it: the original
    /// destination's port for a redirected connection, else the configured application.
    fn app_for(&self, stream: &TcpStream) -> (u16, Endpoint) {
        let Some(port) = original_dst(stream).map(|dst| dst.port()) else {
            return (self.config.port, self.app.clone());
        };
        if port == self.config.app.port() {
            return (self.config.port, self.app.clone());
        }
        let mut apps = self
            .redirected_apps
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let app = apps.entry(port).or_insert_with(|| {
            let addr = SocketAddr::new(self.config.app.ip(), port);
            Endpoint::new(addr, self.config.connect_timeout)
        });
        (port, app.clone())
    }

    async fn connection(self: Arc<Self>, stream: TcpStream, drain: Drain) {
        let _guard = drain.track();
        // Read before the handshake: the socket is the accepted one, as the kernel knows it.
        let (port, app) = self.app_for(&stream);
        let accept = self.acceptor.accept(stream);
        let mut tls = match tokio::time::timeout(self.config.handshake_timeout, accept).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                debug!(%error, "inbound mTLS handshake failed");
                self.metrics.record_tls_failure();
                return;
            }
            Err(_) => {
                debug!("inbound mTLS handshake timed out");
                self.metrics.record_tls_failure();
                return;
            }
        };
        // The verifier accepted only certificates with a SPIFFE ID: this is always there.
        let Some(peer) = peer_identity(tls.get_ref().1.peer_certificates()) else {
            self.metrics.record_tls_failure();
            return;
        };
        let mut prefix = BytesMut::with_capacity(64);
        let deadline = Instant::now() + self.config.detect_timeout;
        let detected = loop {
            match detect(&prefix) {
                Detected::NeedMore => {}
                done => break done,
            }
            match tokio::time::timeout_at(deadline, tls.read_buf(&mut prefix)).await {
                Err(_) => break Detected::Opaque,
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(_)) => {}
            }
        };
        if detected == Detected::Opaque || detected == Detected::NeedMore {
            let decision = self
                .config
                .policy
                .decide(&self.config.namespace, port, &peer);
            if let Decision::Deny(why) = decision {
                debug!(%peer, %why, "inbound TCP connection denied");
                self.metrics.record_denied_tcp();
                return; // dropping the stream closes it
            }
            let Ok(mut app) = TcpStream::connect(app.addr()).await else {
                return;
            };
            let _ = app.set_nodelay(true);
            if app.write_all(&prefix).await.is_err() {
                return;
            }
            let moved = tokio::io::copy_bidirectional(&mut tls, &mut app)
                .await
                .map_or(0, |(up, down)| up + down);
            self.metrics.record_opaque(moved + prefix.len() as u64);
            return;
        }
        let io = TokioIo::new(PrefixedIo::new(prefix.freeze(), tls));
        let proxy = self.clone();
        let peer = Arc::new(peer);
        let service = service_fn(move |request: Request<Incoming>| {
            let proxy = proxy.clone();
            let peer = peer.clone();
            let app = app.clone();
            async move {
                let response = proxy.request(request, &peer, port, app).await;
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let served = if detected == Detected::Http2 {
            let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .timer(TokioTimer::new())
                .serve_connection(io, service);
            serve_draining(connection, &drain, |c| c.graceful_shutdown()).await
        } else {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(self.config.header_read_timeout)
                .serve_connection(io, service);
            serve_draining(connection, &drain, |c| c.graceful_shutdown()).await
        };
        if let Err(error) = served {
            debug!(%error, "inbound HTTP connection ended with an error");
        }
    }

    /// Answers one request for application port `port` (served by `app`): 403 when
    /// denied, else the application's response.
    async fn request(
        &self,
        request: Request<Incoming>,
        peer: &SpiffeId,
        port: u16,
        app: Endpoint,
    ) -> http::Response<ProxyBody> {
        let start = Instant::now();
        let decision = self.config.policy.decide_request(
            &self.config.namespace,
            port,
            peer,
            HttpRequestInfo {
                method: request.method(),
                path: request.uri().path(),
            },
        );
        let authority = request
            .uri()
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                let host = request.headers().get(http::header::HOST)?;
                host.to_str().ok().map(str::to_owned)
            })
            .unwrap_or_default();
        let response = match decision {
            Decision::Deny(why) => {
                debug!(%peer, %why, "inbound HTTP request denied");
                self.metrics.record_denied_http();
                text_response(StatusCode::FORBIDDEN, format!("forbidden: {why}\n"))
            }
            Decision::Allow => {
                let (mut parts, body) = request.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                let name = HeaderName::from_static(PEER_IDENTITY_HEADER);
                parts.headers.remove(&name);
                if let Ok(value) = HeaderValue::from_str(&peer.to_string()) {
                    parts.headers.insert(name, value);
                }
                let request = Request::from_parts(parts, MeshBody::Streaming(body));
                match app.oneshot(request).await {
                    Ok(response) => {
                        response.map(|body| body.map_err(BoxError::from).boxed_unsync())
                    }
                    Err(error) => text_response(
                        StatusCode::BAD_GATEWAY,
                        format!("the application did not answer: {error}\n"),
                    ),
                }
            }
        };
        self.metrics
            .record_request(&authority, response.status().as_u16(), start.elapsed());
        response
    }
}
