//! The node agent's HTTP endpoint (kubelet's port 10250): `GET
//! /containerLogs/{namespace}/{pod}/{container}?follow=true&tailLines=N&previous=true&limitBytes=N`
//! streams a container's log from the [`RuntimeDriver`], for the API server's `pods/log`.
//!
//! In a secure cluster ([`EndpointTls`]) the endpoint speaks only TLS with the node's
//! certificate, requires a client certificate from the cluster CA, and answers only the API
//! server's identity (`system:apiserver`): nobody else reads the node's logs. Without TLS it
//! is plain HTTP, for `--insecure` clusters (bind it to loopback or a trusted network).
//!
//! A followed log ends when the container stops or when the reader goes away (the stream is
//! dropped with the connection, which stops the runtime's follower).
//!
//! # Layout
//! - [`resolve`]: which runtime container a request means (pure).

pub mod resolve;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use orchestra_api::logs::AgentLogRequest;
use orchestra_api::tls::{TlsError, pki::APISERVER_USER};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::runtime::{LogOptions, RuntimeDriver};
use resolve::{Unresolved, find_container};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The endpoint's TLS: the node's certificate, client certificates from the cluster CA, and
/// the one user allowed in.
#[derive(Clone, Debug)]
pub struct EndpointTls {
    config: Arc<rustls::ServerConfig>,
    allowed_user: String,
}

impl EndpointTls {
    /// Serves with the node's certificate chain and key (PEM), requires client certificates
    /// issued by `ca_pem`, and lets only the API server's identity
    /// ([`APISERVER_USER`]) in.
    pub fn new(cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<Self, TlsError> {
        Ok(EndpointTls {
            config: orchestra_api::tls::mutual_server_config(cert_pem, key_pem, ca_pem)?,
            allowed_user: APISERVER_USER.to_owned(),
        })
    }
}

/// The endpoint over a runtime. See the [module docs](self).
pub struct AgentEndpoint<R> {
    runtime: Arc<R>,
    tls: Option<EndpointTls>,
}

impl<R: RuntimeDriver> AgentEndpoint<R> {
    /// A plain-HTTP endpoint over `runtime` (insecure clusters only).
    pub fn new(runtime: Arc<R>) -> Self {
        AgentEndpoint { runtime, tls: None }
    }

    /// The endpoint over TLS, see [`EndpointTls`].
    pub fn with_tls(mut self, tls: EndpointTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Binds `addr` (port 0: any free port) and serves in a background task until the
    /// returned handle is dropped or shut down.
    pub async fn bind(self, addr: SocketAddr) -> std::io::Result<RunningEndpoint> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let tls = self.tls.is_some();
        let task = tokio::spawn(self.serve(listener));
        Ok(RunningEndpoint {
            local_addr,
            tls,
            task,
        })
    }

    async fn serve(self, listener: TcpListener) {
        let runtime = self.runtime;
        let tls = self.tls;
        let mut connections = tokio::task::JoinSet::new();
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "the agent endpoint failed to accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Finished connections are reaped as new ones arrive.
            while connections.try_join_next().is_some() {}
            let _ = stream.set_nodelay(true);
            let runtime = runtime.clone();
            let tls = tls.clone();
            connections.spawn(async move {
                let result = match tls {
                    None => serve_connection(TokioIo::new(stream), runtime, Ok(())).await,
                    Some(tls) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(tls.config.clone());
                        let stream = match tokio::time::timeout(
                            HANDSHAKE_TIMEOUT,
                            acceptor.accept(stream),
                        )
                        .await
                        {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(error)) => {
                                tracing::debug!(%peer, %error, "agent endpoint: TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                        let allowed = check_peer(&stream, &tls.allowed_user);
                        serve_connection(TokioIo::new(stream), runtime, allowed).await
                    }
                };
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "agent endpoint connection ended with an error");
                }
            });
        }
    }
}

/// Whether the verified client certificate is `allowed`'s (else the message for 403).
fn check_peer<S>(stream: &tokio_rustls::server::TlsStream<S>, allowed: &str) -> Result<(), String> {
    let cert = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or_else(|| "a client certificate is required".to_owned())?;
    let user = orchestra_api::tls::user_from_certificate(cert)?;
    if user.name == allowed {
        Ok(())
    } else {
        Err(format!(
            "user {:?} may not read container logs from the node agent: only {allowed:?} may",
            user.name
        ))
    }
}

async fn serve_connection<I, R>(
    io: I,
    runtime: Arc<R>,
    allowed: Result<(), String>,
) -> Result<(), hyper::Error>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    R: RuntimeDriver,
{
    let allowed = Arc::new(allowed);
    let service = hyper::service::service_fn(move |request| {
        let runtime = runtime.clone();
        let allowed = allowed.clone();
        async move {
            Ok::<_, Infallible>(match allowed.as_ref() {
                Ok(()) => handle(runtime.as_ref(), request).await,
                Err(message) => text(StatusCode::FORBIDDEN, message.clone()),
            })
        }
    });
    hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await
}

/// Answers one request.
async fn handle<R: RuntimeDriver>(runtime: &R, request: Request<Incoming>) -> Response<Body> {
    let uri = request.uri();
    if request.method() == Method::GET && uri.path() == "/healthz" {
        return text(StatusCode::OK, "ok".into());
    }
    let parsed = match AgentLogRequest::parse(uri.path(), uri.query()) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            return text(
                StatusCode::NOT_FOUND,
                format!(
                    "{:?} is not served here: use /containerLogs/NAMESPACE/POD/CONTAINER",
                    uri.path()
                ),
            );
        }
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    if request.method() != Method::GET {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{} is not supported: use GET", request.method()),
        );
    }
    match logs(runtime, &parsed).await {
        Ok(response) => response,
        Err((code, message)) => text(code, message),
    }
}

/// The time `sinceTime` names, or `sinceSeconds` before now (on the agent's clock, as kubelet
/// computes it).
fn since(request: &AgentLogRequest) -> Option<jiff::Timestamp> {
    request.since_time.or_else(|| {
        let seconds = i64::try_from(request.since_seconds?).unwrap_or(i64::MAX);
        let now = jiff::Timestamp::try_from(crate::pod::clock::now()).ok()?;
        Some(
            now.checked_sub(jiff::SignedDuration::from_secs(seconds))
                .unwrap_or(jiff::Timestamp::MIN),
        )
    })
}

async fn logs<R: RuntimeDriver>(
    runtime: &R,
    request: &AgentLogRequest,
) -> Result<Response<Body>, (StatusCode, String)> {
    let internal = |err: crate::runtime::RuntimeError| {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the {} runtime failed: {err}", runtime.name()),
        )
    };
    let state = runtime.list().await.map_err(internal)?;
    let id = find_container(&state, request).map_err(|unresolved| match unresolved {
        Unresolved::NotFound(message) => (StatusCode::NOT_FOUND, message),
        Unresolved::NoPrevious(message) => (StatusCode::BAD_REQUEST, message),
    })?;
    let options = LogOptions {
        follow: request.follow,
        tail_lines: request
            .tail_lines
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        limit_bytes: request
            .limit_bytes
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        since: since(request),
        timestamps: request.timestamps,
    };
    let stream = runtime.logs(&id, options).await.map_err(|err| match err {
        // Options the runtime cannot honour (times of a log that has none) are the asker's.
        crate::runtime::RuntimeError::InvalidConfig { .. } => {
            (StatusCode::BAD_REQUEST, err.to_string())
        }
        err => internal(err),
    })?;
    let container = id.to_string();
    // An error while streaming ends the body (the status line is sent by then); logged.
    let frames = stream
        .take_while(move |chunk| {
            if let Err(error) = chunk {
                tracing::warn!(%container, %error, "reading a container log failed");
            }
            std::future::ready(chunk.is_ok())
        })
        .filter_map(|chunk| std::future::ready(chunk.ok()))
        .map(|data| Ok::<_, Infallible>(Frame::data(data)));
    let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

fn text(code: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(BodyExt::boxed_unsync(Full::new(Bytes::from(body))));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// An endpoint serving in the background.
#[derive(Debug)]
pub struct RunningEndpoint {
    local_addr: SocketAddr,
    tls: bool,
    task: JoinHandle<()>,
}

impl RunningEndpoint {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether it serves TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Stops accepting and closes open connections (as dropping it does).
    pub fn shutdown(self) {
        drop(self);
    }
}

impl Drop for RunningEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}
