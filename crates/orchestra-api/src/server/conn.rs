//! Connection-level limits: the HTTP/1 and HTTP/2 settings of the server's connections
//! (header read timeout, HTTP/2 keep-alive pings and concurrent streams), and a deadline for
//! a new connection's first bytes, which hyper's version detection would otherwise wait for
//! forever.

use std::time::Duration;

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::limits::Limits;
use crate::io::PrefixedIo;

/// The connection builder with the limits' timeouts.
pub(crate) fn builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2_keep_alive)
        .keep_alive_timeout(limits.http2_keep_alive)
        .max_concurrent_streams(limits.http2_max_concurrent_streams);
    builder
}

/// Waits up to `timeout` for the first bytes of `stream`; `None` when the client sent none in
/// time or closed the connection, else the stream with those bytes put back in front.
pub(crate) async fn first_bytes<S>(mut stream: S, timeout: Duration) -> Option<PrefixedIo<S>>
where
    S: AsyncRead + Unpin,
{
    let mut buffer = vec![0; 4096];
    match tokio::time::timeout(timeout, stream.read(&mut buffer)).await {
        Ok(Ok(read)) if read > 0 => {
            buffer.truncate(read);
            Some(PrefixedIo::new(Bytes::from(buffer), stream))
        }
        // Closed, failed, or silent for too long.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn the_first_bytes_are_served_again_then_the_rest() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let mut stream = first_bytes(server, Duration::from_secs(60)).await.unwrap();
        client.write_all(b"rest").await.unwrap();
        drop(client);
        let mut all = String::new();
        stream.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "GET / HTTP/1.1\r\nrest");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_or_closed_client_gets_nothing() {
        let (_client, server) = tokio::io::duplex(64);
        // Paused time: the timeout fires as soon as nothing else can run.
        assert!(first_bytes(server, Duration::from_secs(10)).await.is_none());
        let (client, server) = tokio::io::duplex(64);
        drop(client);
        assert!(first_bytes(server, Duration::from_secs(10)).await.is_none());
    }
}
