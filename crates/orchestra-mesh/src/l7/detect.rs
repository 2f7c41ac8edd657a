//! Protocol detection: what a new connection speaks, from its first bytes, and
//! [`PrefixedIo`] (from `orchestra_api::io`), which gives the bytes read for detection back to
//! whoever serves the connection.

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

pub use orchestra_api::io::PrefixedIo;

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
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
