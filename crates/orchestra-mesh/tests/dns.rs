//! The cluster DNS server on a free loopback port, fed by DnsFollower over LocalClient and
//! MemStore, queried over UDP and TCP with hickory's client. Changes are awaited on the
//! follower's snapshot channel (the server reads the latest snapshot for every query), never
//! with sleeps.

mod dns_objects;

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_net::client::{Client, ClientHandle};
use hickory_net::runtime::TokioRuntimeProvider;
use hickory_net::tcp::TcpClientStream;
use hickory_net::udp::UdpClientStream;
use hickory_proto::op::{DnsResponse, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use orchestra_api::resources::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service};
use orchestra_api::{Client as _, LocalClient, ObjectMeta};
use orchestra_mesh::dns::{DnsConfig, DnsFollower, DnsServer, DnsSnapshot};
use orchestra_store::MemStore;
use tokio::sync::watch;

/// The namespace of this file's objects.
const NAMESPACE: &str = "default";

fn meta(name: &str) -> ObjectMeta {
    dns_objects::meta(NAMESPACE, name)
}

fn service(name: &str, cluster_ip: &str) -> Service {
    dns_objects::service(NAMESPACE, name, cluster_ip)
}

fn endpoints(name: &str, ips: &[String]) -> Endpoints {
    Endpoints {
        metadata: meta(name),
        subsets: vec![EndpointSubset {
            addresses: ips
                .iter()
                .map(|ip| EndpointAddress {
                    ip: ip.clone(),
                    ..EndpointAddress::default()
                })
                .collect(),
            not_ready_addresses: vec![],
            ports: vec![EndpointPort {
                name: "http".into(),
                port: 8080,
                ..EndpointPort::default()
            }],
        }],
    }
}

/// A DNS server for `domain` (with `upstreams`) over a fresh API, and the API's client.
async fn start(
    domain: &str,
    upstreams: &[SocketAddr],
) -> (LocalClient, DnsServer, watch::Receiver<Arc<DnsSnapshot>>) {
    let client = LocalClient::new(MemStore::new());
    let follower = DnsFollower::new(client.clone()).with_debounce(Duration::from_millis(1));
    let snapshots = follower.snapshots();
    let config = DnsConfig::new(domain)
        .unwrap()
        .with_upstreams(upstreams.iter().copied());
    let server = DnsServer::bind("127.0.0.1:0".parse().unwrap(), config, snapshots.clone())
        .await
        .unwrap();
    tokio::spawn(follower.run());
    (client, server, snapshots)
}

/// Waits until the snapshot satisfies `ready` (the follower saw the change).
async fn until(
    snapshots: &mut watch::Receiver<Arc<DnsSnapshot>>,
    ready: impl FnMut(&Arc<DnsSnapshot>) -> bool,
) {
    snapshots.wait_for(ready).await.unwrap();
}

fn udp_client(server: SocketAddr) -> Client<TokioRuntimeProvider> {
    let stream = UdpClientStream::builder(server, TokioRuntimeProvider::default()).build();
    let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
    tokio::spawn(background);
    client
}

async fn tcp_client(server: SocketAddr) -> Client<TokioRuntimeProvider> {
    let (connect, sender) =
        TcpClientStream::new(server, None, None, TokioRuntimeProvider::default());
    let (client, background) = Client::<TokioRuntimeProvider>::new(connect.await.unwrap(), sender);
    tokio::spawn(background);
    client
}

async fn query(
    client: &mut Client<TokioRuntimeProvider>,
    name: &str,
    qtype: RecordType,
) -> DnsResponse {
    client
        .query(Name::from_str(name).unwrap(), DNSClass::IN, qtype)
        .await
        .unwrap()
}

fn addresses(response: &DnsResponse) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|ip| ip.parse().unwrap()).collect()
}

#[tokio::test]
async fn answers_over_udp_and_tcp_and_follows_endpoint_changes() {
    let (client, server, mut snapshots) = start("cluster.local", &[]).await;
    client.create(&service("web", "127.2.0.80")).await.unwrap();
    client.create(&service("db", "None")).await.unwrap();
    let db = client
        .create(&endpoints("db", &["127.3.0.5".into()]))
        .await
        .unwrap();
    until(&mut snapshots, |s| {
        s.service("default", "db")
            .is_some_and(|db| db.endpoints.len() == 1)
            && s.service("default", "web").is_some()
    })
    .await;

    let mut udp = udp_client(server.local_addr());
    let mut tcp = tcp_client(server.local_addr()).await;
    for client in [&mut udp, &mut tcp] {
        let web = query(client, "web.default.svc.cluster.local.", RecordType::A).await;
        assert_eq!(web.metadata.response_code, ResponseCode::NoError);
        assert!(web.metadata.authoritative);
        assert_eq!(web.answers[0].ttl, 5);
        assert_eq!(addresses(&web), ips(&["127.2.0.80"]));
        let db = query(client, "db.default.svc.cluster.local.", RecordType::A).await;
        assert_eq!(addresses(&db), ips(&["127.3.0.5"]));
        let missing = query(client, "nope.default.svc.cluster.local.", RecordType::A).await;
        assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
        assert!(matches!(missing.authorities[0].data, RData::SOA(_)));
        let outside = query(client, "example.com.", RecordType::A).await;
        assert_eq!(outside.metadata.response_code, ResponseCode::Refused);
        let ptr = query(client, "80.0.2.127.in-addr.arpa.", RecordType::PTR).await;
        assert_eq!(
            ptr.answers[0].data.to_string(),
            "web.default.svc.cluster.local."
        );
    }

    // A pod joins the headless service: the next answer has it.
    let mut changed = db.clone();
    changed.subsets = endpoints("db", &["127.3.0.5".into(), "127.3.0.6".into()]).subsets;
    client.update(&changed).await.unwrap();
    until(&mut snapshots, |s| {
        s.service("default", "db")
            .is_some_and(|db| db.endpoints.len() == 2)
    })
    .await;
    let db = query(&mut udp, "db.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(addresses(&db), ips(&["127.3.0.5", "127.3.0.6"]));
    let srv = query(
        &mut tcp,
        "_http._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    )
    .await;
    assert_eq!(srv.answers.len(), 2);
    assert_eq!(srv.additionals.len(), 2);

    // The service goes away: NXDOMAIN.
    client
        .delete::<Service>("default", "web", &Default::default())
        .await
        .unwrap();
    until(&mut snapshots, |s| s.service("default", "web").is_none()).await;
    let web = query(&mut udp, "web.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(web.metadata.response_code, ResponseCode::NXDomain);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn large_answers_are_truncated_over_udp_and_whole_over_tcp() {
    let (client, server, mut snapshots) = start("cluster.local", &[]).await;
    client.create(&service("big", "None")).await.unwrap();
    let many: Vec<String> = (1..=150).map(|i| format!("127.3.1.{i}")).collect();
    client.create(&endpoints("big", &many)).await.unwrap();
    until(&mut snapshots, |s| {
        s.service("default", "big")
            .is_some_and(|big| big.endpoints.len() == 150)
    })
    .await;
    let mut udp = udp_client(server.local_addr());
    let truncated = query(&mut udp, "big.default.svc.cluster.local.", RecordType::A).await;
    assert!(
        truncated.metadata.truncation,
        "150 A records exceed 1232 bytes"
    );
    assert!(truncated.answers.len() < 150);
    let mut tcp = tcp_client(server.local_addr()).await;
    let whole = query(&mut tcp, "big.default.svc.cluster.local.", RecordType::A).await;
    assert!(!whole.metadata.truncation);
    assert_eq!(whole.answers.len(), 150);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_packets_get_formerr_and_the_server_keeps_serving() {
    let (_client, server, _snapshots) = start("cluster.local", &[]).await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // A header announcing one question, followed by a name that runs past the packet.
    let packet = [
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3f, b'a',
    ];
    socket.send_to(&packet, server.local_addr()).await.unwrap();
    let mut reply = [0u8; 512];
    let (len, _) = socket.recv_from(&mut reply).await.unwrap();
    assert!(len >= 12);
    assert_eq!(&reply[..2], &[0x12, 0x34], "the id is echoed");
    assert_eq!(reply[3] & 0x0f, 1, "RCODE is FORMERR");
    let mut udp = udp_client(server.local_addr());
    let apex = query(&mut udp, "cluster.local.", RecordType::SOA).await;
    assert_eq!(apex.metadata.response_code, ResponseCode::NoError);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn names_outside_the_domain_are_forwarded_to_the_upstream() {
    // The upstream: another cluster DNS, for another domain.
    let (upstream_client, upstream, mut upstream_snapshots) = start("upstream.test", &[]).await;
    upstream_client
        .create(&service("far", "127.2.9.9"))
        .await
        .unwrap();
    until(&mut upstream_snapshots, |s| {
        s.service("default", "far").is_some()
    })
    .await;
    let (_client, server, _snapshots) = start("cluster.local", &[upstream.local_addr()]).await;
    let mut udp = udp_client(server.local_addr());
    let far = query(&mut udp, "far.default.svc.upstream.test.", RecordType::A).await;
    assert_eq!(far.metadata.response_code, ResponseCode::NoError);
    assert!(
        !far.metadata.authoritative,
        "a forwarded answer is not ours"
    );
    assert!(far.metadata.recursion_available);
    assert_eq!(addresses(&far), ips(&["127.2.9.9"]));
    let missing = query(&mut udp, "gone.default.svc.upstream.test.", RecordType::A).await;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    server.shutdown().await.unwrap();
    upstream.shutdown().await.unwrap();
}
