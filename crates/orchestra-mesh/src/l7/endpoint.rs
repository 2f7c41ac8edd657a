//! [`Endpoint`]: the service that sends requests to one endpoint address, over a pool of
//! HTTP/1.1 connections or one HTTP/2 connection (hyper's pooled client), keeping the
//! request's own protocol version so that gRPC stays on HTTP/2. With a mesh TLS client
//! configuration, every connection to the endpoint is mTLS ([`EndpointStream::Tls`]): the
//! sidecar presents its own certificate and verifies the peer sidecar's SPIFFE ID.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tower::{BoxError, Service};

use super::body::MeshBody;

/// Why a request to an endpoint failed.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// No connection could be made: the request was not sent (safe to retry elsewhere).
    #[error("cannot connect to endpoint {addr}: {source}")]
    Connect {
        /// The endpoint.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// The connection failed while the request or its response was under way.
    #[error("request to endpoint {addr} failed: {source}")]
    Request {
        /// The endpoint.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: BoxError,
    },
}

/// A connection to an endpoint: plain TCP, or mTLS between sidecars.
#[derive(Debug)]
pub enum EndpointStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for EndpointStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            EndpointStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            EndpointStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for EndpointStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            EndpointStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            EndpointStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            EndpointStream::Plain(s) => Pin::new(s).poll_flush(cx),
            EndpointStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            EndpointStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            EndpointStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl Connection for EndpointStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Opens an mTLS connection to `addr` with `config` (the name is not used by mesh
/// verifiers, which check the SPIFFE ID instead; an IP name also sends no SNI).
pub async fn connect_tls(
    addr: SocketAddr,
    tcp: TcpStream,
    config: Arc<ClientConfig>,
) -> io::Result<TlsStream<TcpStream>> {
    TlsConnector::from(config)
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await
}

/// Connects to one fixed address whatever the URI says, so that requests keep their own
/// authority (the `Host` the application wrote) on the way to the endpoint; over mTLS when
/// it has a TLS configuration.
#[derive(Clone, Debug)]
pub struct FixedConnector {
    addr: SocketAddr,
    uri: Uri,
    inner: HttpConnector,
    tls: Option<Arc<ClientConfig>>,
}

impl FixedConnector {
    /// A plain TCP connector to `addr`, with `TCP_NODELAY` and the given connect timeout.
    pub fn new(addr: SocketAddr, connect_timeout: Duration) -> Self {
        Self::with_tls(addr, connect_timeout, None)
    }

    /// A connector to `addr` that speaks TLS with `tls` when given.
    pub fn with_tls(
        addr: SocketAddr,
        connect_timeout: Duration,
        tls: Option<Arc<ClientConfig>>,
    ) -> Self {
        let mut inner = HttpConnector::new();
        inner.set_nodelay(true);
        inner.set_connect_timeout(Some(connect_timeout));
        let uri = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(addr.to_string())
            .path_and_query("/")
            .build()
            // Built from a socket address: always a valid authority.
            .unwrap_or_default();
        FixedConnector {
            addr,
            uri,
            inner,
            tls,
        }
    }
}

impl Service<Uri> for FixedConnector {
    type Response = TokioIo<EndpointStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let connect = self.inner.call(self.uri.clone());
        let tls = self.tls.clone();
        let addr = self.addr;
        Box::pin(async move {
            let tcp = connect.await?.into_inner();
            Ok(TokioIo::new(match tls {
                None => EndpointStream::Plain(tcp),
                Some(config) => {
                    EndpointStream::Tls(Box::new(connect_tls(addr, tcp, config).await?))
                }
            }))
        })
    }
}

/// Sends requests to one endpoint (see the module docs).
#[derive(Clone, Debug)]
pub struct Endpoint {
    addr: SocketAddr,
    http1: Client<FixedConnector, MeshBody>,
    http2: Client<FixedConnector, MeshBody>,
}

impl Endpoint {
    /// The endpoint at `addr`, over plain TCP.
    pub fn new(addr: SocketAddr, connect_timeout: Duration) -> Self {
        Self::with_tls(addr, connect_timeout, None)
    }

    /// The endpoint at `addr`, over mTLS with `tls` when given (a sidecar's client
    /// configuration from [`MeshTls::client_config`](super::identity::MeshTls::client_config)).
    pub fn with_tls(
        addr: SocketAddr,
        connect_timeout: Duration,
        tls: Option<Arc<ClientConfig>>,
    ) -> Self {
        let connector = FixedConnector::with_tls(addr, connect_timeout, tls);
        let http1 = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector.clone());
        let http2 = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build(connector);
        Endpoint { addr, http1, http2 }
    }

    /// The endpoint's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Makes `request`'s URI absolute (`http://AUTHORITY/path`), taking the authority from the
/// `Host` header when the request line had none, or the endpoint's address without either.
fn absolute_uri(request: &mut Request<MeshBody>, fallback: SocketAddr) {
    if request.uri().authority().is_some() {
        return;
    }
    let authority = request
        .headers()
        .get(http::header::HOST)
        .and_then(|host| host.to_str().ok())
        .and_then(|host| host.parse::<Authority>().ok())
        .or_else(|| fallback.to_string().parse().ok());
    let mut parts = request.uri().clone().into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = authority;
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    if let Ok(uri) = Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}

impl Service<Request<MeshBody>> for Endpoint {
    type Response = Response<Incoming>;
    type Error = EndpointError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, EndpointError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
        // hyper's pool queues requests itself; backpressure comes from the balancer's load.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<MeshBody>) -> Self::Future {
        absolute_uri(&mut request, self.addr);
        let addr = self.addr;
        let response = if request.version() == Version::HTTP_2 {
            self.http2.request(request)
        } else {
            // HTTP/1.0 clients are answered in HTTP/1.1 terms by the endpoint; hyper writes
            // the Host header from the URI when the request had none.
            if !request.headers().contains_key(http::header::HOST)
                && let Some(authority) = request.uri().authority()
                && let Ok(host) = HeaderValue::from_str(authority.as_str())
            {
                request.headers_mut().insert(http::header::HOST, host);
            }
            *request.version_mut() = Version::HTTP_11;
            self.http1.request(request)
        };
        Box::pin(async move {
            response.await.map_err(|error| {
                if error.is_connect() {
                    EndpointError::Connect {
                        addr,
                        source: error.into(),
                    }
                } else {
                    EndpointError::Request {
                        addr,
                        source: error.into(),
                    }
                }
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_form_requests_get_their_host_as_authority() {
        let fallback = SocketAddr::from(([127, 0, 0, 1], 9000));
        let mut request = Request::builder()
            .uri("/a?b=1")
            .header("host", "web.shop:8080")
            .body(MeshBody::empty())
            .unwrap();
        absolute_uri(&mut request, fallback);
        assert_eq!(request.uri(), "http://web.shop:8080/a?b=1");

        let mut request = Request::builder().uri("/").body(MeshBody::empty()).unwrap();
        absolute_uri(&mut request, fallback);
        assert_eq!(request.uri(), "http://127.0.0.1:9000/");

        let mut request = Request::builder()
            .uri("http://other/x")
            .body(MeshBody::empty())
            .unwrap();
        absolute_uri(&mut request, fallback);
        assert_eq!(request.uri(), "http://other/x");
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        // Bind then drop: a loopback port nobody listens on.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut endpoint = Endpoint::new(addr, Duration::from_secs(1));
        let request = Request::builder().uri("/").body(MeshBody::empty()).unwrap();
        let error = endpoint.call(request).await.unwrap_err();
        assert!(matches!(error, EndpointError::Connect { .. }), "{error}");
    }
}
