//! TcpProxy end to end over loopback, with real echo backends: balancing, affinity, refusal,
//! draining, incremental apply and UDP. Synchronisation is by awaiting reads (a round trip
//! through the proxy proves the connection is up); the only clock is tokio's, paused where a
//! timeout matters.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use orchestra_mesh::testing::service_addr;
use orchestra_mesh::{
    Affinity, Protocol, ServiceEntry, ServiceKey, ServiceProxy, ServiceTable, TcpProxy,
    TcpProxyConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};

/// A TCP echo server on loopback that counts the connections it accepted.
struct Echo {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Echo {
    async fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (mut r, mut w) = stream.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        Echo { addr, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn proxy(drain: Duration) -> TcpProxy {
    TcpProxy::new(TcpProxyConfig {
        node_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        drain_timeout: drain,
        ..TcpProxyConfig::default()
    })
}

fn tcp(cluster: SocketAddr, endpoints: &[SocketAddr]) -> ServiceEntry {
    ServiceEntry {
        cluster,
        node_port: None,
        protocol: Protocol::Tcp,
        affinity: Affinity::None,
        endpoints: endpoints.to_vec(),
    }
}

fn table(entries: &[(&str, ServiceEntry)]) -> ServiceTable {
    entries
        .iter()
        .map(|(name, entry)| (ServiceKey::new("default", *name, ""), entry.clone()))
        .collect()
}

/// Sends `msg` and reads the same bytes back.
async fn round_trip(stream: &mut TcpStream, msg: &[u8]) {
    stream.write_all(msg).await.unwrap();
    let mut buf = vec![0u8; msg.len()];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, msg);
}

async fn connect_from(client: Ipv4Addr, dest: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(client), 0))?;
    socket.connect(dest).await
}

#[tokio::test]
async fn round_robin_across_three_endpoints() {
    let echoes = [
        Echo::start().await,
        Echo::start().await,
        Echo::start().await,
    ];
    let cluster = service_addr();
    let addrs: Vec<_> = echoes.iter().map(|e| e.addr).collect();
    let proxy = proxy(Duration::from_secs(30));
    proxy
        .apply(&table(&[("web", tcp(cluster, &addrs))]))
        .await
        .unwrap();
    for i in 0..6u8 {
        let mut stream = TcpStream::connect(cluster).await.unwrap();
        round_trip(&mut stream, &[i; 100]).await;
    }
    let counts: Vec<_> = echoes.iter().map(Echo::accepted).collect();
    assert_eq!(counts, vec![2, 2, 2]);
}

#[tokio::test]
async fn client_ip_affinity_sticks() {
    let echoes = [
        Echo::start().await,
        Echo::start().await,
        Echo::start().await,
    ];
    let cluster = service_addr();
    let addrs: Vec<_> = echoes.iter().map(|e| e.addr).collect();
    let mut entry = tcp(cluster, &addrs);
    entry.affinity = Affinity::ClientIp {
        timeout: Duration::from_secs(10_800),
    };
    let proxy = proxy(Duration::from_secs(30));
    proxy.apply(&table(&[("web", entry)])).await.unwrap();
    for _ in 0..5 {
        let mut stream = connect_from(Ipv4Addr::new(127, 0, 0, 7), cluster)
            .await
            .unwrap();
        round_trip(&mut stream, b"hello").await;
    }
    let mut counts: Vec<_> = echoes.iter().map(Echo::accepted).collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![0, 0, 5]);
    // Another client takes the next backend.
    let mut stream = connect_from(Ipv4Addr::new(127, 0, 0, 8), cluster)
        .await
        .unwrap();
    round_trip(&mut stream, b"hello").await;
    let mut counts: Vec<_> = echoes.iter().map(Echo::accepted).collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![0, 1, 5]);
}

#[tokio::test]
async fn no_endpoints_is_refused_at_once() {
    let echo = Echo::start().await;
    let cluster = service_addr();
    let proxy = proxy(Duration::from_secs(30));
    proxy
        .apply(&table(&[("web", tcp(cluster, &[]))]))
        .await
        .unwrap();
    let error = TcpStream::connect(cluster).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);

    // Backends come and go: routed, then refused again (the listener is closed, not hung).
    proxy
        .apply(&table(&[("web", tcp(cluster, &[echo.addr]))]))
        .await
        .unwrap();
    let mut stream = TcpStream::connect(cluster).await.unwrap();
    round_trip(&mut stream, b"up").await;
    proxy
        .apply(&table(&[("web", tcp(cluster, &[]))]))
        .await
        .unwrap();
    let error = TcpStream::connect(cluster).await.unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::ConnectionRefused);
    assert!(proxy.listening().await.values().all(Vec::is_empty));
}

#[tokio::test]
async fn removed_endpoint_connections_finish_while_new_ones_go_elsewhere() {
    let (old, new) = (Echo::start().await, Echo::start().await);
    let cluster = service_addr();
    // A drain timeout far beyond the test: the connection must simply go on.
    let proxy = proxy(Duration::from_secs(3600));
    proxy
        .apply(&table(&[("web", tcp(cluster, &[old.addr]))]))
        .await
        .unwrap();
    let mut established = TcpStream::connect(cluster).await.unwrap();
    round_trip(&mut established, b"before").await;

    proxy
        .apply(&table(&[("web", tcp(cluster, &[new.addr]))]))
        .await
        .unwrap();
    round_trip(&mut established, b"during the drain").await;
    let mut fresh = TcpStream::connect(cluster).await.unwrap();
    round_trip(&mut fresh, b"fresh").await;
    assert_eq!((old.accepted(), new.accepted()), (1, 1));
    round_trip(&mut established, b"still").await;
}

#[tokio::test(start_paused = true)]
async fn removed_endpoint_connections_close_after_the_drain_timeout() {
    let (old, new) = (Echo::start().await, Echo::start().await);
    let cluster = service_addr();
    let drain = Duration::from_secs(20);
    let proxy = proxy(drain);
    proxy
        .apply(&table(&[("web", tcp(cluster, &[old.addr]))]))
        .await
        .unwrap();
    let mut established = TcpStream::connect(cluster).await.unwrap();
    round_trip(&mut established, b"before").await;

    let removed_at = tokio::time::Instant::now();
    proxy
        .apply(&table(&[("web", tcp(cluster, &[new.addr]))]))
        .await
        .unwrap();
    // The proxy closes the connection when the (paused, auto-advancing) clock reaches the
    // drain deadline; nothing else can end it.
    let mut buf = [0u8; 16];
    let read = established.read(&mut buf).await;
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(removed_at.elapsed() >= drain, "{:?}", removed_at.elapsed());
}

#[tokio::test]
async fn incremental_apply_keeps_another_services_connection() {
    let (a, b1, b2) = (
        Echo::start().await,
        Echo::start().await,
        Echo::start().await,
    );
    let (a_addr, b_addr, c_addr) = (service_addr(), service_addr(), service_addr());
    // Drain at zero: any connection the proxy thought removed would close at once.
    let proxy = proxy(Duration::ZERO);
    let a_entry = tcp(a_addr, &[a.addr]);
    proxy
        .apply(&table(&[
            ("a", a_entry.clone()),
            ("b", tcp(b_addr, &[b1.addr])),
        ]))
        .await
        .unwrap();
    let mut to_a = TcpStream::connect(a_addr).await.unwrap();
    round_trip(&mut to_a, b"a1").await;

    // b changes backends, then moves address, then goes; c comes: a is never touched.
    proxy
        .apply(&table(&[
            ("a", a_entry.clone()),
            ("b", tcp(b_addr, &[b2.addr])),
        ]))
        .await
        .unwrap();
    round_trip(&mut to_a, b"a2").await;
    proxy
        .apply(&table(&[
            ("a", a_entry.clone()),
            ("b", tcp(c_addr, &[b2.addr])),
        ]))
        .await
        .unwrap();
    round_trip(&mut to_a, b"a3").await;
    proxy
        .apply(&table(&[
            ("a", a_entry.clone()),
            ("c", tcp(b_addr, &[b1.addr])),
        ]))
        .await
        .unwrap();
    round_trip(&mut to_a, b"a4").await;
    let mut to_c = TcpStream::connect(b_addr).await.unwrap();
    round_trip(&mut to_c, b"c").await;
    assert_eq!(a.accepted(), 1, "a's one connection, never re-made");
}

#[tokio::test]
async fn node_port_forwards_like_the_cluster_address() {
    let echo = Echo::start().await;
    let cluster = service_addr();
    let node_port = orchestra_mesh::testing::free_node_port();
    let mut entry = tcp(cluster, &[echo.addr]);
    entry.node_port = Some(node_port);
    let proxy = proxy(Duration::from_secs(30));
    proxy.apply(&table(&[("web", entry)])).await.unwrap();
    let mut stream = TcpStream::connect(("127.0.0.1", node_port)).await.unwrap();
    round_trip(&mut stream, b"via the node port").await;
}

#[tokio::test]
async fn udp_echo_through_the_proxy() {
    let backend = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let backend_addr = backend.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while let Ok((n, peer)) = backend.recv_from(&mut buf).await {
            let _ = backend.send_to(&buf[..n], peer).await;
        }
    });
    let cluster = service_addr();
    let mut entry = tcp(cluster, &[backend_addr]);
    entry.protocol = Protocol::Udp;
    let proxy = proxy(Duration::from_secs(30));
    proxy.apply(&table(&[("dns", entry)])).await.unwrap();

    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client.connect(cluster).await.unwrap();
    for msg in [&b"one"[..], b"two", &[7u8; 1400]] {
        client.send(msg).await.unwrap();
        let mut buf = [0u8; 2048];
        let n = client.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], msg);
    }
}

#[tokio::test]
async fn bind_failure_is_reported_and_retried_by_the_next_apply() {
    let echo = Echo::start().await;
    let cluster = service_addr();
    let squatter = std::net::TcpListener::bind(cluster).unwrap();
    let proxy = proxy(Duration::from_secs(30));
    let entry = tcp(cluster, &[echo.addr]);
    let error = proxy
        .apply(&table(&[("web", entry.clone())]))
        .await
        .unwrap_err();
    assert!(error.to_string().contains(&cluster.to_string()), "{error}");
    drop(squatter);
    proxy.apply(&table(&[("web", entry)])).await.unwrap();
    let mut stream = TcpStream::connect(cluster).await.unwrap();
    round_trip(&mut stream, b"bound now").await;
}
