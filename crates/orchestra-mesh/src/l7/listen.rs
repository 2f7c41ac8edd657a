//! [`Listeners`]: a sidecar listener's address and, for the IPv4 wildcard and loopback, its
//! IPv6 twin on the same port, so that a dual-stack pod's IPv6 connections reach the sidecar.
//!
//! The pod's redirect rules (table `inet orchestra-mesh`, see the `redirect` module) send
//! the application's IPv6 TCP to `[::1]:OUTBOUND` and peers' IPv6 TCP to
//! `[POD-IPV6]:INBOUND`: with listeners on `127.0.0.1` and `0.0.0.0` alone, those
//! connections would be refused. So `0.0.0.0:PORT` is also served on `[::]:PORT` and
//! `127.0.0.1:PORT` on `[::1]:PORT` ([`ipv6_twin`], pure), the way Linkerd's proxy listens
//! on both families in a dual-stack pod. The twin is bound with `IPV6_V6ONLY`, so that it
//! never competes with the IPv4 socket for IPv4 connections (a dual-stack `[::]` socket
//! would take the IPv4 port too). A configured port 0 gives both sockets the same port.
//!
//! A host without IPv6 (the twin's bind fails with `EADDRNOTAVAIL`: no `::1`, or
//! `EAFNOSUPPORT`: no IPv6 in the kernel) is not an error: the IPv4 listener serves alone,
//! and [`Listeners::ipv6_unavailable`] says why, for the caller to log once
//! ([`twin_failure`] decides, pure).

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::net::{TcpListener, TcpSocket};

/// How many times a pair on an ephemeral port (configured port 0) is tried again when the
/// port the IPv4 socket got is taken in IPv6.
const EPHEMERAL_ATTEMPTS: usize = 16;

/// The backlog of the IPv6 twin (what `TcpListener::bind` uses on Linux, through mio).
const BACKLOG: u32 = 1024;

/// The IPv6 counterpart of a listener address: `[::]` for `0.0.0.0`, `[::1]` for
/// `127.0.0.1`, same port; `None` for any other address (a specific IPv4 address has no
/// IPv6 equivalent, and an IPv6 address is one already).
pub fn ipv6_twin(addr: SocketAddr) -> Option<SocketAddr> {
    let SocketAddr::V4(v4) = addr else {
        return None;
    };
    let ip = if v4.ip().is_unspecified() {
        Ipv6Addr::UNSPECIFIED
    } else if *v4.ip() == Ipv4Addr::LOCALHOST {
        Ipv6Addr::LOCALHOST
    } else {
        return None;
    };
    Some(SocketAddr::new(ip.into(), addr.port()))
}

/// What a failed bind of the IPv6 twin means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TwinFailure {
    /// The host has no IPv6 (`EADDRNOTAVAIL`, `EAFNOSUPPORT`): serve IPv4 alone.
    NoIpv6,
    /// The port is taken in IPv6 (`EADDRINUSE`): another pair is tried for an ephemeral
    /// port; a configured port is an error, as for IPv4.
    PortTaken,
    /// Anything else (no permission, ...): an error.
    Other,
}

/// The meaning of `error`, the IPv6 twin's bind failure (pure).
pub fn twin_failure(error: &io::Error) -> TwinFailure {
    use rustix::io::Errno;
    let is = |errno: Errno| error.raw_os_error() == Some(errno.raw_os_error());
    if is(Errno::ADDRNOTAVAIL) || is(Errno::AFNOSUPPORT) {
        TwinFailure::NoIpv6
    } else if is(Errno::ADDRINUSE) {
        TwinFailure::PortTaken
    } else {
        match error.kind() {
            io::ErrorKind::AddrNotAvailable => TwinFailure::NoIpv6,
            io::ErrorKind::AddrInUse => TwinFailure::PortTaken,
            _ => TwinFailure::Other,
        }
    }
}

/// Why [`Listeners::bind`] failed: the address that could not be bound, and the system's
/// error.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr}")]
pub struct ListenError {
    /// The address (the configured one, or its IPv6 twin).
    pub addr: SocketAddr,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

/// One listener address's sockets: the configured address first, then its IPv6 twin when it
/// has one and the host has IPv6 (see the module docs).
#[derive(Debug)]
pub struct Listeners {
    listeners: Vec<TcpListener>,
    ipv6_unavailable: Option<io::Error>,
}

impl Listeners {
    /// Binds `addr`, and with `ipv6` its [`ipv6_twin`] (same port; for port 0, the port
    /// `addr` got). Fails when `addr` cannot be bound, or the twin for any reason but a host
    /// without IPv6.
    pub async fn bind(addr: SocketAddr, ipv6: bool) -> Result<Listeners, ListenError> {
        let twin = ipv6.then(|| ipv6_twin(addr)).flatten();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let primary = TcpListener::bind(addr)
                .await
                .map_err(|source| ListenError { addr, source })?;
            let Some(twin) = twin else {
                return Ok(Listeners {
                    listeners: vec![primary],
                    ipv6_unavailable: None,
                });
            };
            let port = primary.local_addr().map_or(addr.port(), |a| a.port());
            let twin = SocketAddr::new(twin.ip(), port);
            match bind_ipv6_only(twin) {
                Ok(second) => {
                    return Ok(Listeners {
                        listeners: vec![primary, second],
                        ipv6_unavailable: None,
                    });
                }
                Err(source) => match twin_failure(&source) {
                    TwinFailure::NoIpv6 => {
                        return Ok(Listeners {
                            listeners: vec![primary],
                            ipv6_unavailable: Some(source),
                        });
                    }
                    // An ephemeral port free in IPv4 but not in IPv6: another pair.
                    TwinFailure::PortTaken if addr.port() == 0 && attempts < EPHEMERAL_ATTEMPTS => {
                    }
                    TwinFailure::PortTaken | TwinFailure::Other => {
                        return Err(ListenError { addr: twin, source });
                    }
                },
            }
        }
    }

    /// The addresses listened on, the configured one first.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Why the IPv6 twin is missing although asked for: the host has no IPv6.
    pub fn ipv6_unavailable(&self) -> Option<&io::Error> {
        self.ipv6_unavailable.as_ref()
    }

    /// The sockets, the configured address's first.
    pub fn into_listeners(self) -> Vec<TcpListener> {
        self.listeners
    }

    /// The first socket (the configured address's).
    pub fn primary(&self) -> &TcpListener {
        &self.listeners[0]
    }
}

/// A listener on IPv6 address `addr` that takes IPv6 connections only (`IPV6_V6ONLY`), with
/// `SO_REUSEADDR` as `TcpListener::bind` sets it.
fn bind_ipv6_only(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v6()?;
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    rustix::net::sockopt::set_ipv6_v6only(&socket, true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_wildcard_and_loopback_have_an_ipv6_twin_and_nothing_else_does() {
        assert_eq!(ipv6_twin(addr("0.0.0.0:4143")), Some(addr("[::]:4143")));
        assert_eq!(ipv6_twin(addr("127.0.0.1:4140")), Some(addr("[::1]:4140")));
        assert_eq!(ipv6_twin(addr("127.0.0.1:0")), Some(addr("[::1]:0")));
        for none in ["10.1.0.2:4143", "127.0.0.2:4140", "[::]:4143", "[::1]:4140"] {
            assert_eq!(ipv6_twin(addr(none)), None, "{none}");
        }
    }

    #[test]
    fn a_host_without_ipv6_falls_back_and_a_taken_port_does_not() {
        use rustix::io::Errno;
        let os = |errno: Errno| io::Error::from_raw_os_error(errno.raw_os_error());
        assert_eq!(twin_failure(&os(Errno::ADDRNOTAVAIL)), TwinFailure::NoIpv6);
        assert_eq!(twin_failure(&os(Errno::AFNOSUPPORT)), TwinFailure::NoIpv6);
        assert_eq!(twin_failure(&os(Errno::ADDRINUSE)), TwinFailure::PortTaken);
        assert_eq!(twin_failure(&os(Errno::ACCESS)), TwinFailure::Other);
        assert_eq!(
            twin_failure(&io::Error::from(io::ErrorKind::AddrNotAvailable)),
            TwinFailure::NoIpv6
        );
        assert_eq!(
            twin_failure(&io::Error::other("anything")),
            TwinFailure::Other
        );
    }

    /// Whether this machine has an IPv6 loopback (`::1` can be bound).
    fn has_ipv6_loopback() -> bool {
        std::net::TcpListener::bind("[::1]:0").is_ok()
    }

    #[tokio::test]
    async fn loopback_is_served_on_both_families_and_the_port_is_shared() {
        if !has_ipv6_loopback() {
            eprintln!("skipped: this machine has no IPv6 loopback (::1)");
            return;
        }
        let bound = Listeners::bind(addr("127.0.0.1:0"), true).await.unwrap();
        assert!(bound.ipv6_unavailable().is_none());
        let addrs = bound.local_addrs();
        assert_eq!(addrs.len(), 2, "{addrs:?}");
        let port = addrs[0].port();
        assert_eq!(
            addrs,
            [
                SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                SocketAddr::from((Ipv6Addr::LOCALHOST, port))
            ]
        );
        // Each family reaches its own socket: the twin is IPv6-only.
        let [v4, v6]: [TcpListener; 2] = bound.into_listeners().try_into().unwrap();
        let _a = tokio::net::TcpStream::connect(addrs[1]).await.unwrap();
        let (_, peer) = v6.accept().await.unwrap();
        assert!(peer.is_ipv6(), "{peer}");
        let _b = tokio::net::TcpStream::connect(addrs[0]).await.unwrap();
        let (_, peer) = v4.accept().await.unwrap();
        assert!(peer.is_ipv4(), "{peer}");
    }

    #[tokio::test]
    async fn without_ipv6_asked_or_for_other_addresses_one_socket() {
        let alone = Listeners::bind(addr("127.0.0.1:0"), false).await.unwrap();
        assert_eq!(alone.local_addrs().len(), 1);
        let other = Listeners::bind(addr("127.0.0.3:0"), true).await.unwrap();
        assert_eq!(other.local_addrs().len(), 1);
        assert!(other.ipv6_unavailable().is_none());
    }

    #[tokio::test]
    async fn a_configured_port_taken_in_ipv6_is_an_error_naming_the_twin() {
        if !has_ipv6_loopback() {
            eprintln!("skipped: this machine has no IPv6 loopback (::1)");
            return;
        }
        // A port free in IPv4 but held in IPv6 (by an IPv6-only socket).
        let holder = bind_ipv6_only(addr("[::1]:0")).unwrap();
        let port = holder.local_addr().unwrap().port();
        let Ok(v4) = std::net::TcpListener::bind(("127.0.0.1", port)) else {
            eprintln!("skipped: port {port} is taken in IPv4 by someone else");
            return;
        };
        drop(v4);
        let err = Listeners::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), true)
            .await
            .unwrap_err();
        assert_eq!(err.addr, SocketAddr::from((Ipv6Addr::LOCALHOST, port)));
        assert_eq!(twin_failure(&err.source), TwinFailure::PortTaken);
    }
}
