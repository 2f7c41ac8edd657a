//! [`original_dst`]: where a connection the pod's redirect rules (the `redirect` module,
//! `orchestra sidecar init`) sent to one of the sidecar's listeners was headed, and
//! [`Redirected`], what the outbound listener does with it.
//!
//! The kernel keeps each connection's address before NAT in its conntrack entry and gives
//! it back through `getsockopt(SO_ORIGINAL_DST)` (`IP6T_SO_ORIGINAL_DST` for IPv6), read
//! here through rustix (the workspace forbids `unsafe`; rustix is already a dependency of
//! the workspace and wraps both options safely). A connection addressed to the listener
//! itself (the explicit way: `http://127.0.0.1:4140`, or a peer dialling the inbound port)
//! has its own address as its original one, or no conntrack entry at all when conntrack is
//! not loaded: both read as "not redirected", and keep the listener's explicit behaviour.

use std::net::{IpAddr, SocketAddr};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Duration;

use super::directory::MeshDirectory;
use crate::table::ServiceKey;

/// Where `stream`, accepted by a listener, was headed before the redirect rules sent it to
/// the listener; `None` when it was addressed to the listener itself (or the system keeps
/// no record: not Linux, no conntrack).
pub fn original_dst(stream: &TcpStream) -> Option<SocketAddr> {
    let local = stream.local_addr().ok()?;
    redirected_from(local, read(stream, local)?)
}

/// The original destination, when it is not the listener's own address (pure).
fn redirected_from(local: SocketAddr, original: SocketAddr) -> Option<SocketAddr> {
    let original = canonical(original);
    (original != canonical(local)).then_some(original)
}

/// `addr` with an IPv4-mapped IPv6 address written as IPv4 (a dual-stack listener sees
/// IPv4 clients that way).
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

/// The socket's original destination as conntrack records it, IPv4 or IPv6 by the
/// connection's family.
#[cfg(target_os = "linux")]
fn read(stream: &TcpStream, local: SocketAddr) -> Option<SocketAddr> {
    use rustix::net::sockopt;
    let ipv4 = match canonical(local) {
        SocketAddr::V4(_) => true,
        SocketAddr::V6(_) => false,
    };
    if ipv4 {
        sockopt::ip_original_dst(stream).ok().map(SocketAddr::V4)
    } else {
        sockopt::ipv6_original_dst(stream).ok().map(SocketAddr::V6)
    }
}

/// No conntrack outside Linux: nothing is ever redirected.
#[cfg(not(target_os = "linux"))]
fn read(_stream: &TcpStream, _local: SocketAddr) -> Option<SocketAddr> {
    None
}

/// What the outbound listener does with a redirected connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Redirected {
    /// It was headed for a service's cluster address and port: it is that service's, as if
    /// the application had asked the sidecar for it by name (its requests go through the
    /// service's stack, whatever their `Host`; opaque bytes go to one of its endpoints).
    Service(ServiceKey),
    /// It was headed anywhere else (outside the mesh, a pod address, a port no service
    /// has): the bytes go there unchanged.
    Passthrough(SocketAddr),
}

impl Redirected {
    /// The route of a connection headed for `original`, by the directory's cluster
    /// addresses.
    pub fn of(directory: &MeshDirectory, original: SocketAddr) -> Self {
        // The directory knows each service port by its cluster IP and port, as an
        // authority; `SocketAddr`'s text (`[fd00::1]:80` for IPv6) is one.
        match directory.resolve(&original.to_string()) {
            Some(key) => Redirected::Service(key),
            None => Redirected::Passthrough(original),
        }
    }
}

/// Forwards `client` byte for byte to `destination` (after `prefix`, bytes already read
/// from the client); returns the bytes moved, 0 when `destination` cannot be reached in
/// `connect_timeout` (the client's connection is then closed, as a refused one would be).
pub(crate) async fn passthrough(
    mut client: TcpStream,
    destination: SocketAddr,
    prefix: &[u8],
    connect_timeout: Duration,
) -> u64 {
    let connect = tokio::time::timeout(connect_timeout, TcpStream::connect(destination)).await;
    let Ok(Ok(mut server)) = connect else {
        tracing::debug!(%destination, "passthrough: the original destination cannot be reached");
        return 0;
    };
    let _ = server.set_nodelay(true);
    if server.write_all(prefix).await.is_err() {
        return 0;
    }
    let moved = tokio::io::copy_bidirectional(&mut client, &mut server)
        .await
        .map_or(0, |(up, down)| up + down);
    moved + prefix.len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServiceProxy;
    use crate::l7::DirectoryConfig;
    use crate::table::{Affinity, Protocol, ServiceEntry, ServiceTable};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn only_a_destination_other_than_the_listener_is_a_redirect() {
        let listener = addr("127.0.0.1:4140");
        assert_eq!(redirected_from(listener, listener), None);
        assert_eq!(
            redirected_from(listener, addr("10.96.0.10:80")),
            Some(addr("10.96.0.10:80"))
        );
        // A dual-stack listener sees IPv4 as IPv4-mapped: the same address either way.
        let mapped = addr("[::ffff:10.1.0.2]:4143");
        assert_eq!(redirected_from(mapped, addr("10.1.0.2:4143")), None);
        assert_eq!(
            redirected_from(mapped, addr("[::ffff:10.1.0.2]:8080")),
            Some(addr("10.1.0.2:8080"))
        );
        assert_eq!(
            redirected_from(addr("[::1]:4140"), addr("[fd00::10]:443")),
            Some(addr("[fd00::10]:443"))
        );
    }

    #[tokio::test]
    async fn a_service_address_is_that_service_and_anything_else_passes_through() {
        let directory = MeshDirectory::new(DirectoryConfig::default());
        let entry = |cluster: &str| ServiceEntry {
            cluster: addr(cluster),
            node_port: None,
            protocol: Protocol::Tcp,
            affinity: Affinity::None,
            endpoints: vec![addr("10.1.0.2:8080")],
        };
        let web = ServiceKey::new("shop", "web", "http");
        let v6 = ServiceKey::new("shop", "web6", "");
        let table: ServiceTable = [
            (web.clone(), entry("10.96.0.10:80")),
            (v6.clone(), entry("[fd00::10]:8443")),
        ]
        .into_iter()
        .collect();
        directory.apply(&table).await.unwrap();
        assert_eq!(
            Redirected::of(&directory, addr("10.96.0.10:80")),
            Redirected::Service(web)
        );
        assert_eq!(
            Redirected::of(&directory, addr("[fd00::10]:8443")),
            Redirected::Service(v6)
        );
        // The service's address on another port, an endpoint, the outside world.
        for other in ["10.96.0.10:81", "10.1.0.2:8080", "93.184.216.34:443"] {
            assert_eq!(
                Redirected::of(&directory, addr(other)),
                Redirected::Passthrough(addr(other))
            );
        }
    }

    #[tokio::test]
    async fn a_connection_to_the_listener_itself_is_not_redirected() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = listener.local_addr().unwrap();
        let _client = TcpStream::connect(target).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert_eq!(original_dst(&accepted), None);
    }
}
