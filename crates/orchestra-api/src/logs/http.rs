//! [`HttpNodeConnector`]: the hop from the API server (or an in-process client) to a node
//! agent's log endpoint: HTTP/1.1 over TCP, or over mutual TLS in a secure cluster (the
//! agent's certificate must be the cluster CA's certificate *for that node*: its name is the
//! TLS server name; the connector shows the API server's own client certificate).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use orchestra_store::StoreError;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use super::{AgentLogRequest, LogStream, NodeConnector, agent_endpoint};
use crate::registry::ApiError;
use crate::resources::Node;
use crate::tls::TlsError;

/// How long connecting to an agent may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an agent's error answer that is read.
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// Reaches node agents over HTTP, or mutual TLS. See the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct HttpNodeConnector {
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl HttpNodeConnector {
    /// Plain HTTP: for `--insecure` clusters only (anyone on the network could read logs).
    pub fn plain() -> Self {
        HttpNodeConnector { tls: None }
    }

    /// Mutual TLS: trusts agents whose certificate `ca_pem` issued for their node's name, and
    /// shows `cert_pem`/`key_pem` (the API server's client identity, `system:apiserver`).
    pub fn mutual_tls(ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<Self, TlsError> {
        Ok(HttpNodeConnector {
            tls: Some(crate::tls::client_config(
                ca_pem,
                Some((cert_pem, key_pem)),
            )?),
        })
    }

    /// Whether the hop is encrypted and authenticated.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// Aborts the connection's task when the log stream is dropped (the reader went away).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn unreachable(node: &str, host: &str, port: u16, why: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(StoreError::Other(format!(
        "the agent of node {node:?} at {host}:{port} is unreachable: {why}"
    )))
}

#[async_trait]
impl NodeConnector for HttpNodeConnector {
    async fn container_logs(
        &self,
        node: &Node,
        request: &AgentLogRequest,
    ) -> Result<LogStream, ApiError> {
        let name = node.metadata.name.as_str();
        let (host, port) = agent_endpoint(node)?;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host.as_str(), port)))
            .await
            .map_err(|_| unreachable(name, &host, port, "connecting timed out"))?
            .map_err(|err| unreachable(name, &host, port, err))?;
        let _ = tcp.set_nodelay(true);
        let target = Target {
            node: name,
            host: &host,
            port,
        };
        match &self.tls {
            None => exchange(TokioIo::new(tcp), target, request).await,
            Some(config) => {
                // The agent's certificate names its node: that is what is verified.
                let server_name = ServerName::try_from(name.to_owned()).map_err(|err| {
                    ApiError::BadRequest(format!(
                        "node name {name:?} is not a TLS server name: {err}"
                    ))
                })?;
                let stream = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(server_name, tcp)
                    .await
                    .map_err(|err| unreachable(name, &host, port, format!("TLS: {err}")))?;
                exchange(TokioIo::new(stream), target, request).await
            }
        }
    }
}

/// Which agent a request goes to (for messages).
#[derive(Clone, Copy)]
struct Target<'a> {
    node: &'a str,
    host: &'a str,
    port: u16,
}

/// Sends the request over `io` and streams the answer's body.
async fn exchange<I>(
    io: I,
    target: Target<'_>,
    request: &AgentLogRequest,
) -> Result<LogStream, ApiError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let Target { node, host, port } = target;
    let failed = |err: hyper::Error| unreachable(node, host, port, err);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(failed)?;
    let guard = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let http_request = http::Request::get(request.path_and_query())
        .header(http::header::HOST, format!("{host}:{port}"))
        .body(Empty::<Bytes>::new())
        .map_err(|err| ApiError::BadRequest(format!("the agent request is invalid: {err}")))?;
    let response = sender.send_request(http_request).await.map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        let body = Limited::new(response.into_body(), MAX_ERROR_BYTES)
            .collect()
            .await
            .map(|body| String::from_utf8_lossy(&body.to_bytes()).trim().to_owned())
            .unwrap_or_default();
        return Err(if status.is_client_error() {
            ApiError::BadRequest(body)
        } else {
            ApiError::Internal(StoreError::Other(format!(
                "the agent of node {node:?} failed ({status}): {body}"
            )))
        });
    }
    let node = node.to_owned();
    let body = response.into_body();
    // The connection lives as long as the stream: dropping it closes the connection, which
    // tells the agent to stop following.
    let stream = futures::stream::unfold(Some((body, guard, sender)), move |state| {
        let node = node.clone();
        async move {
            let (mut body, guard, sender) = state?;
            loop {
                match body.frame().await? {
                    Ok(frame) => match frame.into_data() {
                        Ok(data) if !data.is_empty() => {
                            return Some((Ok(data), Some((body, guard, sender))));
                        }
                        _ => continue,
                    },
                    Err(err) => {
                        let err = ApiError::Internal(StoreError::Other(format!(
                            "reading the log from the agent of node {node:?} failed: {err}"
                        )));
                        return Some((Err(err), None));
                    }
                }
            }
        }
    });
    Ok(Box::pin(stream))
}
