//! [`Forwarder`]: asks upstream resolvers about names outside the cluster's zones, over UDP
//! with hickory-net's client, again over TCP when the UDP answer comes back truncated.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt;
use hickory_net::client::Client;
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_net::{DnsHandle, NetError};
use hickory_proto::op::{DnsRequestOptions, Message, Query};

/// Why no upstream answered.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// Every upstream failed; the last error is kept.
    #[error("no upstream resolver answered ({tried} tried)")]
    NoAnswer {
        /// How many upstreams were asked.
        tried: usize,
        /// The last failure.
        #[source]
        source: Option<NetError>,
    },
}

/// One upstream: its address and a UDP client multiplexing queries on one socket.
struct Upstream {
    addr: SocketAddr,
    udp: Client<TokioRuntimeProvider>,
}

/// The upstream resolvers, tried in order.
pub(crate) struct Forwarder {
    upstreams: Vec<Upstream>,
    timeout: Duration,
}

impl Forwarder {
    /// Clients for `upstreams` (their background tasks are spawned on the current runtime).
    pub(crate) fn new(upstreams: &[SocketAddr], timeout: Duration) -> Self {
        let upstreams = upstreams
            .iter()
            .map(|addr| {
                let stream = UdpClientStream::builder(*addr, TokioRuntimeProvider::default())
                    .with_timeout(Some(timeout))
                    .build();
                let (udp, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
                tokio::spawn(background);
                Upstream { addr: *addr, udp }
            })
            .collect();
        Forwarder { upstreams, timeout }
    }

    /// The first answer of an upstream to `query` (any response code counts as an answer).
    pub(crate) async fn forward(
        &self,
        query: Query,
        recursion_desired: bool,
    ) -> Result<Message, ForwardError> {
        let mut options = DnsRequestOptions::default();
        options.recursion_desired = recursion_desired;
        options.use_edns = true;
        let mut last = None;
        for upstream in &self.upstreams {
            let answer = match first(upstream.udp.lookup(query.clone(), options)).await {
                Ok(message) if message.metadata.truncation => {
                    self.over_tcp(upstream.addr, query.clone(), options).await
                }
                other => other,
            };
            match answer {
                Ok(message) => return Ok(message),
                Err(error) => {
                    tracing::debug!(upstream = %upstream.addr, %error, "upstream resolver failed");
                    last = Some(error);
                }
            }
        }
        Err(ForwardError::NoAnswer {
            tried: self.upstreams.len(),
            source: last,
        })
    }

    /// One query over a fresh TCP connection (for answers too large for UDP).
    async fn over_tcp(
        &self,
        addr: SocketAddr,
        query: Query,
        options: DnsRequestOptions,
    ) -> Result<Message, NetError> {
        let (connect, sender) = TcpClientStream::new(
            addr,
            None,
            Some(self.timeout),
            TokioRuntimeProvider::default(),
        );
        let stream = connect.await?;
        let (client, background) =
            Client::<TokioRuntimeProvider>::with_timeout(stream, sender, self.timeout);
        let background = tokio::spawn(background);
        let answer = first(client.lookup(query, options)).await;
        background.abort();
        answer
    }
}

/// The first response of a request's stream.
async fn first<S>(mut responses: S) -> Result<Message, NetError>
where
    S: futures::Stream<Item = Result<hickory_proto::op::DnsResponse, NetError>> + Unpin,
{
    match responses.next().await {
        Some(Ok(response)) => Ok(response.into_message()),
        Some(Err(error)) => Err(error),
        None => Err(NetError::from("the upstream closed without answering")),
    }
}
