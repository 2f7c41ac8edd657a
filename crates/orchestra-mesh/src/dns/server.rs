//! [`DnsServer`]: the cluster DNS on UDP and TCP, a thin layer over hickory-server.
//!
//! hickory-server (the Hickory DNS project's server crate) reads the sockets, frames TCP,
//! answers malformed packets with FORMERR, and truncates UDP answers that exceed the
//! client's buffer (512 bytes, or its EDNS size up to [`MAX_UDP_PAYLOAD`]) with the TC bit
//! set, so that clients retry over TCP. This module only turns a request into a question for
//! [`resolve`] against the latest snapshot, and encodes the result (or forwards the question).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{
    Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::Record;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo, Server};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use super::answer::{Answer, Resolution, resolve};
use super::config::DnsConfig;
use super::forward::Forwarder;
use super::snapshot::DnsSnapshot;

/// The largest UDP answer sent even to clients that advertise more (DNS Flag Day 2020's
/// 1232 bytes, which avoids IP fragmentation).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// How long a TCP client may stay silent before its connection is closed.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the DNS server could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum DnsServerError {
    /// A socket could not be bound.
    #[error("binding the cluster DNS {protocol} socket on {addr}")]
    Bind {
        /// `UDP` or `TCP`.
        protocol: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving stopped with an error.
    #[error("the cluster DNS server failed")]
    Serve(#[source] hickory_server::net::NetError),
}

/// A running cluster DNS server (UDP and TCP on the same port).
pub struct DnsServer {
    local_addr: SocketAddr,
    server: Server<Handler>,
}

impl DnsServer {
    /// Binds UDP and TCP on `addr` (port 0: a free port, the same for both) and serves the
    /// snapshots `snapshots` receives. `config.nameserver` defaults to the bound IP.
    pub async fn bind(
        addr: SocketAddr,
        mut config: DnsConfig,
        snapshots: watch::Receiver<Arc<DnsSnapshot>>,
    ) -> Result<Self, DnsServerError> {
        let (udp, tcp) = bind_pair(addr).await?;
        let local_addr = udp.local_addr().map_err(|source| DnsServerError::Bind {
            protocol: "UDP",
            addr,
            source,
        })?;
        config.nameserver.get_or_insert(local_addr.ip());
        let forwarder = (!config.upstreams.is_empty())
            .then(|| Forwarder::new(&config.upstreams, config.upstream_timeout));
        let mut server = Server::new(Handler {
            config: Arc::new(config),
            snapshots,
            forwarder,
        });
        server.register_socket(udp);
        server.register_listener(tcp, TCP_IDLE_TIMEOUT, 64);
        Ok(DnsServer { local_addr, server })
    }

    /// Where it listens (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until a socket fails (normally never).
    pub async fn wait(mut self) -> Result<(), DnsServerError> {
        self.server
            .block_until_done()
            .await
            .map_err(DnsServerError::Serve)
    }

    /// Stops serving and waits for the sockets to close.
    pub async fn shutdown(mut self) -> Result<(), DnsServerError> {
        self.server
            .shutdown_gracefully()
            .await
            .map_err(DnsServerError::Serve)
    }
}

/// A UDP socket and a TCP listener on the same address (the same free port for port 0).
async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsServerError> {
    let bind_udp = |addr| async move {
        UdpSocket::bind(addr)
            .await
            .map_err(|source| DnsServerError::Bind {
                protocol: "UDP",
                addr,
                source,
            })
    };
    let bind_tcp = |addr| async move {
        TcpListener::bind(addr)
            .await
            .map_err(|source| DnsServerError::Bind {
                protocol: "TCP",
                addr,
                source,
            })
    };
    if addr.port() != 0 {
        return Ok((bind_udp(addr).await?, bind_tcp(addr).await?));
    }
    // The port the UDP socket got may be taken for TCP: try a few.
    let mut last = None;
    for _ in 0..16 {
        let udp = bind_udp(addr).await?;
        let port = udp
            .local_addr()
            .map_err(|source| DnsServerError::Bind {
                protocol: "UDP",
                addr,
                source,
            })?
            .port();
        match bind_tcp(SocketAddr::new(addr.ip(), port)).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(error) => last = Some(error),
        }
    }
    Err(last.unwrap_or(DnsServerError::Bind {
        protocol: "TCP",
        addr,
        source: std::io::ErrorKind::AddrInUse.into(),
    }))
}

/// Answers requests from the latest snapshot.
struct Handler {
    config: Arc<DnsConfig>,
    snapshots: watch::Receiver<Arc<DnsSnapshot>>,
    forwarder: Option<Forwarder>,
}

impl Handler {
    /// The answer to a request's one question.
    async fn answer(&self, request: &Request) -> Answer {
        if request.metadata.op_code != OpCode::Query {
            return Answer::code(ResponseCode::NotImp);
        }
        let [query] = request.queries.queries() else {
            return Answer::code(ResponseCode::FormErr);
        };
        let name = query.name().into();
        let resolution = {
            let snapshot = self.snapshots.borrow().clone();
            resolve(
                &snapshot,
                &self.config,
                &name,
                query.query_type(),
                query.query_class(),
            )
        };
        match (resolution, &self.forwarder) {
            (Resolution::Answer(answer), _) => answer,
            (Resolution::Forward, None) => Answer::code(ResponseCode::Refused),
            (Resolution::Forward, Some(forwarder)) => {
                let mut question = Query::query(name, query.query_type());
                question.set_query_class(query.query_class());
                match forwarder
                    .forward(question, request.metadata.recursion_desired)
                    .await
                {
                    Ok(mut message) => Answer {
                        code: message.metadata.response_code,
                        authoritative: false,
                        answers: std::mem::take(&mut message.answers),
                        authorities: std::mem::take(&mut message.authorities),
                        additionals: std::mem::take(&mut message.additionals),
                    },
                    Err(error) => {
                        tracing::debug!(%error, "forwarding a query failed");
                        Answer::code(ResponseCode::ServFail)
                    }
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let answer = self.answer(request).await;
        let edns = request.edns.as_ref().map(|asked| {
            let mut edns = Edns::new();
            edns.set_max_payload(asked.max_payload().clamp(512, MAX_UDP_PAYLOAD));
            edns
        });
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = answer.code;
        metadata.authoritative = answer.authoritative;
        metadata.recursion_available = self.forwarder.is_some();
        let response = MessageResponseBuilder::new(&request.queries, edns.as_ref()).build(
            metadata,
            answer.answers.iter(),
            answer.authorities.iter(),
            std::iter::empty::<&Record>(),
            answer.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "sending a DNS response failed");
                let mut metadata =
                    Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query);
                metadata.response_code = ResponseCode::ServFail;
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }
}
