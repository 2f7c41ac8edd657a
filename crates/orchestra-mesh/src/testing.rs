//! The conformance suite of [`ServiceProxy`]: the behaviour every implementation must show,
//! as public async functions that take a factory of fresh proxies, so that a third-party
//! proxy runs the same checks as [`MemoryProxy`] and [`TcpProxy`].
//!
//! A proxy under test also implements [`Probe`]: open one connection (or UDP flow) as a given
//! client and report which backend answered. The suite starts real loopback backends that
//! answer with their own address ([`Backends`]), so a proxy that routes real traffic is
//! checked end to end, and [`MemoryProxy`] simply resolves.
//!
//! ```
//! use orchestra_mesh::{testing, MemoryProxy};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
//! testing::run_all(MemoryProxy::new).await;
//! testing::affinity_expires(MemoryProxy::new).await;
//! # });
//! ```
//!
//! Every check uses service addresses in 127.2.0.0/16 and NodePorts on 127.0.0.1 (so a
//! socket-based proxy must listen for NodePorts on 127.0.0.1 or on every address).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};

use crate::l4::{MemoryProxy, TcpProxy};
use crate::proxy::ServiceProxy;
use crate::table::{Affinity, Protocol, ServiceEntry, ServiceKey, ServiceTable};

/// A proxy the suite can observe.
#[async_trait]
pub trait Probe: ServiceProxy {
    /// Opens one connection (TCP) or one flow (UDP, from a fresh client port) from `client`
    /// to `dest`, and returns the address of the backend that answered, or `None` when the
    /// proxy refused it.
    async fn probe(
        &self,
        protocol: Protocol,
        dest: SocketAddr,
        client: IpAddr,
    ) -> Option<SocketAddr>;
}

#[async_trait]
impl Probe for MemoryProxy {
    async fn probe(
        &self,
        protocol: Protocol,
        dest: SocketAddr,
        client: IpAddr,
    ) -> Option<SocketAddr> {
        self.resolve(protocol, dest, client)
    }
}

#[async_trait]
impl Probe for TcpProxy {
    async fn probe(
        &self,
        protocol: Protocol,
        dest: SocketAddr,
        client: IpAddr,
    ) -> Option<SocketAddr> {
        match protocol {
            Protocol::Tcp => probe_tcp(dest, client).await,
            Protocol::Udp => probe_udp(dest, client).await,
        }
    }
}

/// Connects from `client` to `dest` and reads the backend's address.
pub async fn probe_tcp(dest: SocketAddr, client: IpAddr) -> Option<SocketAddr> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(client, 0)).ok()?;
    let mut stream = socket.connect(dest).await.ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.ok()?;
    reply.trim().parse().ok()
}

/// Sends one datagram from `client` (a fresh port) to `dest` and reads the backend's address.
pub async fn probe_udp(dest: SocketAddr, client: IpAddr) -> Option<SocketAddr> {
    let socket = UdpSocket::bind(SocketAddr::new(client, 0)).await.ok()?;
    socket.connect(dest).await.ok()?;
    socket.send(b"who").await.ok()?;
    let mut buf = [0u8; 128];
    // A refused flow shows as ECONNREFUSED here (ICMP port unreachable on a connected socket);
    // the timeout only keeps a broken proxy from hanging the suite.
    let n = tokio::time::timeout(Duration::from_secs(30), socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    std::str::from_utf8(&buf[..n]).ok()?.trim().parse().ok()
}

/// Loopback backends that answer every connection or datagram with their own address.
#[derive(Clone, Debug)]
pub struct Backends {
    /// Their addresses, sorted.
    pub addrs: Vec<SocketAddr>,
}

impl Backends {
    /// Starts `n` TCP backends on 127.0.0.1 (they live as long as the runtime).
    pub async fn tcp(n: usize) -> Backends {
        let mut addrs = Vec::new();
        for _ in 0..n {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("binding a loopback test backend");
            let addr = listener.local_addr().expect("a bound listener's address");
            tokio::spawn(async move {
                while let Ok((mut stream, _)) = listener.accept().await {
                    let _ = stream.write_all(addr.to_string().as_bytes()).await;
                    let _ = stream.shutdown().await;
                }
            });
            addrs.push(addr);
        }
        addrs.sort_unstable();
        Backends { addrs }
    }

    /// Starts `n` UDP backends on 127.0.0.1 (they live as long as the runtime).
    pub async fn udp(n: usize) -> Backends {
        let mut addrs = Vec::new();
        for _ in 0..n {
            let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("binding a loopback test backend");
            let addr = socket.local_addr().expect("a bound socket's address");
            tokio::spawn(async move {
                let mut buf = [0u8; 1500];
                while let Ok((_, peer)) = socket.recv_from(&mut buf).await {
                    let _ = socket.send_to(addr.to_string().as_bytes(), peer).await;
                }
            });
            addrs.push(addr);
        }
        addrs.sort_unstable();
        Backends { addrs }
    }
}

/// A fresh service address in 127.2.0.0/16 with a port that was free there: distinct per
/// call and per process, so that tests running in parallel do not collide.
pub fn service_addr() -> SocketAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let host = (std::process::id().wrapping_mul(97).wrapping_add(n)) % (254 * 254);
    let ip = Ipv4Addr::new(127, 2, (host / 254 + 1) as u8, (host % 254 + 1) as u8);
    let port = std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .expect("binding an address in 127.2.0.0/16 (Linux answers on all of 127.0.0.0/8)")
        .port();
    SocketAddr::new(IpAddr::V4(ip), port)
}

/// A port free on 127.0.0.1 now, for a NodePort.
pub fn free_node_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// The client addresses the suite connects from.
fn client(i: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, i))
}

/// A one-entry table.
fn table_of(entries: Vec<(ServiceKey, ServiceEntry)>) -> ServiceTable {
    entries.into_iter().collect()
}

/// A TCP entry without affinity.
fn entry(cluster: SocketAddr, endpoints: &[SocketAddr]) -> ServiceEntry {
    ServiceEntry {
        cluster,
        node_port: None,
        protocol: Protocol::Tcp,
        affinity: Affinity::None,
        endpoints: endpoints.to_vec(),
    }
}

/// Applies a table, failing the test with the error.
async fn apply<P: ServiceProxy>(proxy: &P, table: &ServiceTable) {
    if let Err(error) = proxy.apply(table).await {
        panic!("apply failed: {error}");
    }
}

/// Runs every check that needs no clock control.
pub async fn run_all<P: Probe, F: Fn() -> P>(factory: F) {
    round_robin(&factory).await;
    no_endpoints_is_refused(&factory).await;
    client_ip_affinity_sticks(&factory).await;
    endpoint_changes_apply_to_new_connections(&factory).await;
    incremental_apply_keeps_other_services(&factory).await;
    node_port(&factory).await;
    removed_service_is_refused(&factory).await;
    udp_round_robin(&factory).await;
}

/// New connections take the backends in turn: each of 3 backends once per round, in the
/// same order every round.
pub async fn round_robin<P: Probe, F: Fn() -> P>(factory: F) {
    let proxy = factory();
    let backends = Backends::tcp(3).await;
    let cluster = service_addr();
    let key = ServiceKey::new("default", "rr", "");
    apply(
        &proxy,
        &table_of(vec![(key, entry(cluster, &backends.addrs))]),
    )
    .await;
    let mut picks = Vec::new();
    for _ in 0..6 {
        picks.push(proxy.probe(Protocol::Tcp, cluster, client(2)).await);
    }
    let first: Vec<_> = picks[..3].iter().map(|p| p.expect("routed")).collect();
    let mut sorted = first.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted, backends.addrs,
        "one round reaches every backend once"
    );
    assert_eq!(picks[3..], picks[..3], "the second round repeats the order");
}

/// A service port without ready backends refuses clients; it routes once backends appear and
/// refuses again when they are gone.
pub async fn no_endpoints_is_refused<P: Probe, F: Fn() -> P>(factory: F) {
    let proxy = factory();
    let backends = Backends::tcp(1).await;
    let cluster = service_addr();
    let key = ServiceKey::new("default", "empty", "");
    apply(&proxy, &table_of(vec![(key.clone(), entry(cluster, &[]))])).await;
    assert_eq!(proxy.probe(Protocol::Tcp, cluster, client(2)).await, None);
    apply(
        &proxy,
        &table_of(vec![(key.clone(), entry(cluster, &backends.addrs))]),
    )
    .await;
    assert_eq!(
        proxy.probe(Protocol::Tcp, cluster, client(2)).await,
        Some(backends.addrs[0])
    );
    apply(&proxy, &table_of(vec![(key, entry(cluster, &[]))])).await;
    assert_eq!(proxy.probe(Protocol::Tcp, cluster, client(2)).await, None);
}

/// With ClientIP affinity a client keeps its backend while other clients are spread.
pub async fn client_ip_affinity_sticks<P: Probe, F: Fn() -> P>(factory: F) {
    let proxy = factory();
    let backends = Backends::tcp(3).await;
    let cluster = service_addr();
    let mut sticky = entry(cluster, &backends.addrs);
    sticky.affinity = Affinity::ClientIp {
        timeout: Duration::from_secs(60),
    };
    let key = ServiceKey::new("default", "sticky", "");
    apply(&proxy, &table_of(vec![(key, sticky)])).await;
    let a = proxy.probe(Protocol::Tcp, cluster, client(2)).await;
    let b = proxy.probe(Protocol::Tcp, cluster, client(3)).await;
    assert!(a.is_some() && b.is_some());
    assert_ne!(a, b, "a second client takes the next backend");
    for _ in 0..5 {
        assert_eq!(proxy.probe(Protocol::Tcp, cluster, client(2)).await, a);
        assert_eq!(proxy.probe(Protocol::Tcp, cluster, client(3)).await, b);
    }
}

/// ClientIP affinity ends after the client has been idle for the timeout. Needs paused time
/// (`#[tokio::test(start_paused = true)]`): it advances the clock.
pub async fn affinity_expires<P: Probe, F: Fn() -> P>(factory: F) {
    let proxy = factory();
    let backends = Backends::tcp(2).await;
    let cluster = service_addr();
    let timeout = Duration::from_secs(60);
    let mut sticky = entry(cluster, &backends.addrs);
    sticky.affinity = Affinity::ClientIp { timeout };
    let key = ServiceKey::new("default", "expiring", "");
    apply(&proxy, &table_of(vec![(key, sticky)])).await;
    let first = proxy.probe(Protocol::Tcp, cluster, client(2)).await;
    assert!(first.is_some());
    // Uses within the timeout keep it alive, however long the total.
    for _ in 0..3 {
        tokio::time::sleep(timeout - Duration::from_secs(1)).await;
        assert_eq!(proxy.probe(Protocol::Tcp, cluster, client(2)).await, first);
    }
    tokio::time::sleep(timeout + Duration::from_secs(1)).await;
    let after = proxy.probe(Protocol::Tcp, cluster, client(2)).await;
    assert!(after.is_some());
    assert_ne!(after, first, "round-robin moved on to the other backend");
}

/// A changed backend set is what new connections use.
pub async fn endpoint_changes_apply_to_new_connections<P: Probe, F: Fn() -> P>(factory: F) {
    let proxy = factory();
    let backends = Backends::tcp(3).await;
    let [e0, e1, e2] = [backends.addrs[0], backends.addrs[1], backends.addrs[2]];
    let cluster = service_addr();
    let key = ServiceKey::new("default", "churn", "");
    apply(
        &proxy,
        &table_of(vec![(key.clone(), entry(cluster, &[e0, e1]))]),
    )
    .await;
    assert!(
        proxy
            .probe(Protocol::Tcp, cluster, client(2))
            .await
            .is_some()
    );
    apply(&proxy, &table_of(vec![(key, entry(cluster, &[e1, e2]))])).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(proxy.probe(Protocol::Tcp, cluster, client(2)).await);
    }
    assert!(
        seen.iter().all(|p| *p == Some(e1) || *p == Some(e2)),
        "only current backends: {seen:?}"
    );
    assert!(
        seen.contains(&Some(e1)) && seen.contains(&Some(e2)),
        "{seen:?}"
    );
}

/// Applying a table where another service changed (and applying the same table again) keeps a
/// service's state: its round-robin goes on where it was instead of starting over.
pub async fn incremental_apply_keeps_other_services<P: Probe, F: Fn() -> P>(factory: F) {
    let proxy = factory();
    let backends = Backends::tcp(3).await;
    let (a_addr, b_addr) = (service_addr(), service_addr());
    let a = (
        ServiceKey::new("default", "a", ""),
        entry(a_addr, &backends.addrs[..2]),
    );
    let b_key = ServiceKey::new("default", "b", "");
    apply(
        &proxy,
        &table_of(vec![
            a.clone(),
            (b_key.clone(), entry(b_addr, &backends.addrs[2..])),
        ]),
    )
    .await;
    let first = proxy.probe(Protocol::Tcp, a_addr, client(2)).await;
    apply(
        &proxy,
        &table_of(vec![
            a.clone(),
            (b_key.clone(), entry(b_addr, &backends.addrs[..1])),
        ]),
    )
    .await;
    apply(
        &proxy,
        &table_of(vec![
            a.clone(),
            (b_key, entry(b_addr, &backends.addrs[..1])),
        ]),
    )
    .await;
    let second = proxy.probe(Protocol::Tcp, a_addr, client(2)).await;
    assert!(first.is_some() && second.is_some());
    assert_ne!(first, second, "service a's round-robin was not reset");
    assert_eq!(
        proxy.probe(Protocol::Tcp, b_addr, client(2)).await,
        Some(backends.addrs[0])
    );
}

/// A NodePort service answers on the node address's port as on its cluster address.
pub async fn node_port<P: Probe, F: Fn() -> P>(factory: F) {
    let proxy = factory();
    let backends = Backends::tcp(1).await;
    let cluster = service_addr();
    let node_port = free_node_port();
    let mut e = entry(cluster, &backends.addrs);
    e.node_port = Some(node_port);
    apply(
        &proxy,
        &table_of(vec![(ServiceKey::new("default", "np", "web"), e)]),
    )
    .await;
    let node = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), node_port);
    assert_eq!(
        proxy.probe(Protocol::Tcp, node, client(2)).await,
        Some(backends.addrs[0])
    );
    assert_eq!(
        proxy.probe(Protocol::Tcp, cluster, client(2)).await,
        Some(backends.addrs[0])
    );
}

/// A service port that leaves the table is refused (and an empty table closes everything).
pub async fn removed_service_is_refused<P: Probe, F: Fn() -> P>(factory: F) {
    let proxy = factory();
    let backends = Backends::tcp(1).await;
    let (a_addr, b_addr) = (service_addr(), service_addr());
    let a = (
        ServiceKey::new("default", "a", ""),
        entry(a_addr, &backends.addrs),
    );
    let b = (
        ServiceKey::new("default", "b", ""),
        entry(b_addr, &backends.addrs),
    );
    apply(&proxy, &table_of(vec![a.clone(), b])).await;
    assert!(
        proxy
            .probe(Protocol::Tcp, b_addr, client(2))
            .await
            .is_some()
    );
    apply(&proxy, &table_of(vec![a])).await;
    assert_eq!(proxy.probe(Protocol::Tcp, b_addr, client(2)).await, None);
    assert!(
        proxy
            .probe(Protocol::Tcp, a_addr, client(2))
            .await
            .is_some()
    );
    apply(&proxy, &ServiceTable::new()).await;
    assert_eq!(proxy.probe(Protocol::Tcp, a_addr, client(2)).await, None);
}

/// UDP flows are balanced like connections, and refused without backends.
pub async fn udp_round_robin<P: Probe, F: Fn() -> P>(factory: F) {
    let proxy = factory();
    let backends = Backends::udp(2).await;
    let cluster = service_addr();
    let key = ServiceKey::new("default", "dns", "dns");
    let mut e = entry(cluster, &backends.addrs);
    e.protocol = Protocol::Udp;
    apply(&proxy, &table_of(vec![(key.clone(), e.clone())])).await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(proxy.probe(Protocol::Udp, cluster, client(2)).await);
    }
    assert_eq!(seen[0..2], seen[2..4], "{seen:?}");
    let mut first: Vec<_> = seen[..2].iter().map(|p| p.expect("routed")).collect();
    first.sort_unstable();
    assert_eq!(first, backends.addrs);
    // The TCP port of the same number is not this service.
    assert_eq!(proxy.probe(Protocol::Tcp, cluster, client(2)).await, None);
    e.endpoints.clear();
    apply(&proxy, &table_of(vec![(key, e)])).await;
    assert_eq!(proxy.probe(Protocol::Udp, cluster, client(2)).await, None);
}
