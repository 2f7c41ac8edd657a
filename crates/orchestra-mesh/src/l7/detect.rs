//! Protocol detection: what a new connection speaks, from its first bytes, and
//! [`PrefixedIo`], which gives the bytes read for detection back to whoever serves the
//! connection.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface (RFC 9113, 3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// HTTP/1 request methods recognised at the start of a connection.
const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"CONNECT ",
    b"OPTIONS ",
    b"TRACE ",
    b"PATCH ",
];

/// What a connection speaks, as far as its first bytes tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// The HTTP/2 preface (prior knowledge, as gRPC clients and sidecars send).
    Http2,
    /// An HTTP/1 request line.
    Http1,
    /// Anything else: forward the bytes opaquely.
    Opaque,
    /// Too few bytes to tell yet.
    NeedMore,
}

/// Detects the protocol from the first bytes of a connection (a pure function).
pub fn detect(prefix: &[u8]) -> Detected {
    if prefix.is_empty() {
        return Detected::NeedMore;
    }
    let n = prefix.len().min(H2_PREFACE.len());
    if prefix[..n] == H2_PREFACE[..n] {
        return if n == H2_PREFACE.len() {
            Detected::Http2
        } else {
            Detected::NeedMore
        };
    }
    let mut could_be_method = false;
    for method in METHODS {
        let n = prefix.len().min(method.len());
        if prefix[..n] == method[..n] {
            if n == method.len() {
                return Detected::Http1;
            }
            could_be_method = true;
        }
    }
    if could_be_method {
        Detected::NeedMore
    } else {
        Detected::Opaque
    }
}

/// An I/O object that yields `prefix` before reading from `inner` (writes go to `inner`).
#[derive(Debug)]
pub struct PrefixedIo<T> {
    prefix: Bytes,
    inner: T,
}

impl<T> PrefixedIo<T> {
    /// `inner`, with `prefix` read first.
    pub fn new(prefix: Bytes, inner: T) -> Self {
        PrefixedIo { prefix, inner }
    }

    /// The prefix not read yet, and the inner I/O object.
    pub fn into_parts(self) -> (Bytes, T) {
        (self.prefix, self.inner)
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for PrefixedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.prefix.has_remaining() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for PrefixedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn detects_from_the_first_bytes() {
        assert_eq!(detect(b""), Detected::NeedMore);
        assert_eq!(detect(b"PRI * HTTP/2.0\r\n"), Detected::NeedMore);
        assert_eq!(detect(H2_PREFACE), Detected::Http2);
        assert_eq!(detect(b"GET / HTTP/1.1\r\n"), Detected::Http1);
        assert_eq!(detect(b"POST"), Detected::NeedMore);
        assert_eq!(detect(b"P"), Detected::NeedMore, "PRI, POST, PUT, PATCH");
        assert_eq!(detect(b"PATCH /x"), Detected::Http1);
        assert_eq!(
            detect(b"\x16\x03\x01\x02\x00"),
            Detected::Opaque,
            "a TLS ClientHello"
        );
        assert_eq!(detect(b"SSH-2.0-OpenSSH"), Detected::Opaque);
        assert_eq!(
            detect(b"get / HTTP/1.1"),
            Detected::Opaque,
            "methods are case-sensitive"
        );
        assert_eq!(detect(b"PRI * HTTP/1.1"), Detected::Opaque);
    }

    #[tokio::test]
    async fn prefixed_io_replays_the_prefix() {
        let mut io = PrefixedIo::new(Bytes::from_static(b"GET "), &b"/ HTTP/1.1"[..]);
        let mut all = String::new();
        io.read_to_string(&mut all).await.unwrap();
        assert_eq!(all, "GET / HTTP/1.1");
    }
}
