//! The demo workload: a tiny HTTP server that answers every request with the name of the pod
//! it runs in and its version, so that traffic through a Service shows which pod answered.
//!
//! The example runs it as its containers' command (its own executable with `--echo`), so the
//! pods are real processes. It speaks just enough HTTP/1.1 for the demo's client (one request
//! per connection, `Connection: close`): a dependency on an HTTP server crate would add nothing.
//! On SIGTERM it keeps answering for a short lame-duck period before exiting, as well-behaved
//! services do, so that a rollout loses no request while the proxies learn of the change.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest request head the server reads.
const MAX_HEAD: usize = 8 * 1024;

/// What one echo server says about itself.
#[derive(Clone, Debug)]
pub struct Identity {
    /// The pod's name (from `HOSTNAME`, which the node agent sets to the pod's name).
    pub pod: String,
    /// The workload's version (from `VERSION`).
    pub version: String,
}

impl Identity {
    /// Read from the environment the node agent gives the container.
    pub fn from_env() -> Self {
        Identity {
            pod: std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into()),
            version: std::env::var("VERSION").unwrap_or_else(|_| "v1".into()),
        }
    }

    /// The response body: `pod=NAME version=V`.
    pub fn body(&self) -> String {
        format!("pod={} version={}\n", self.pod, self.version)
    }
}

/// Serve until SIGTERM (plus `lame_duck`), answering every request with `identity`.
pub async fn serve(
    addr: SocketAddr,
    identity: Identity,
    lame_duck: Duration,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    let body = identity.body();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = async {
        term.recv().await;
        tokio::time::sleep(lame_duck).await;
    };
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return Ok(()),
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let body = body.clone();
                tokio::spawn(async move {
                    // A client that goes away mid-request is its own problem, not the server's.
                    let _ = answer(stream, &body).await;
                });
            }
        }
    }
}

/// Read one request head and answer it.
async fn answer(mut stream: TcpStream, body: &str) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}
