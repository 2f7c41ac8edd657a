//! Bad input against the cluster DNS server on loopback: malformed packets over UDP and TCP
//! (random bytes, short headers, counts that promise more than the packet holds, names that
//! run past the end) get FORMERR or are dropped, and the server keeps answering; a huge answer
//! is truncated over UDP whatever buffer the client claims.
//!
//! No timing: whether a packet was answered is learnt by sending a valid query after it and
//! reading until that query's answer arrives (anything read before it must be a response to
//! one of the bad packets).

mod dns_objects;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use orchestra_api::ObjectMeta;
use orchestra_api::resources::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service};
use orchestra_mesh::dns::{DnsConfig, DnsServer, DnsSnapshot, MAX_UDP_PAYLOAD};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::watch;

/// The namespace of this file's objects.
const NAMESPACE: &str = "default";

fn meta(name: &str) -> ObjectMeta {
    dns_objects::meta(NAMESPACE, name)
}

fn service(name: &str, cluster_ip: &str) -> Service {
    dns_objects::service(NAMESPACE, name, cluster_ip)
}

/// A server with `web` (ClusterIP) and `big`, a headless service of 1,000 pods.
async fn start() -> (DnsServer, watch::Sender<Arc<DnsSnapshot>>) {
    let services = [service("web", "127.2.0.80"), service("big", "None")];
    let big = Endpoints {
        metadata: meta("big"),
        subsets: vec![EndpointSubset {
            addresses: (0..1000)
                .map(|i| EndpointAddress {
                    ip: format!("127.3.{}.{}", i / 250, i % 250 + 1),
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
    };
    let (sender, snapshots) = watch::channel(Arc::new(DnsSnapshot::build(&services, [&big], 1)));
    let server = DnsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        DnsConfig::default(),
        snapshots,
    )
    .await
    .unwrap();
    (server, sender)
}

/// A query for `name`/`qtype` with `id`, optionally with EDNS advertising `payload` bytes.
fn query(id: u16, name: &str, qtype: RecordType, payload: Option<u16>) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
    if let Some(payload) = payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.set_edns(edns);
    }
    message.to_vec().unwrap()
}

/// The id of a raw message.
fn id_of(packet: &[u8]) -> u16 {
    u16::from_be_bytes([packet[0], packet[1]])
}

/// A deterministic byte stream (xorshift64*): reproducible "random" packets without a
/// dependency.
struct Bytes(u64);

impl Bytes {
    fn next(&mut self) -> u8 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
    }

    fn packet(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next()).collect()
    }
}

/// Malformed packets that carry a readable header, by name; each must get FORMERR.
fn malformed() -> Vec<(&'static str, Vec<u8>)> {
    let header = |id: u16, qd: u16, an: u16| {
        let mut h = vec![0u8; 12];
        h[..2].copy_from_slice(&id.to_be_bytes());
        h[2] = 0x01; // RD
        h[4..6].copy_from_slice(&qd.to_be_bytes());
        h[6..8].copy_from_slice(&an.to_be_bytes());
        h
    };
    let mut name_past_end = header(0x1001, 1, 0);
    name_past_end.extend_from_slice(&[0x3f, b'a', b'b']);
    let bogus_questions = header(0x1002, 65535, 0);
    let mut bogus_answers = query(
        0x1003,
        "web.default.svc.cluster.local.",
        RecordType::A,
        None,
    );
    bogus_answers[6..8].copy_from_slice(&40_000u16.to_be_bytes());
    let mut pointer_loop = header(0x1004, 1, 0);
    // A compression pointer to itself.
    pointer_loop.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    let mut no_type = header(0x1005, 1, 0);
    no_type.extend_from_slice(&[3, b'w', b'e', b'b', 0]);
    vec![
        ("a name running past the end", name_past_end),
        ("65535 questions, none present", bogus_questions),
        ("40000 answers announced in a query", bogus_answers),
        ("a compression pointer loop", pointer_loop),
        ("a question without type and class", no_type),
    ]
}

/// Sends `sentinel` and reads until its answer, returning it and every other response read
/// before it by id.
async fn udp_until(
    socket: &UdpSocket,
    server: SocketAddr,
    sentinel: &[u8],
) -> (Message, HashMap<u16, Vec<u8>>) {
    socket.send_to(sentinel, server).await.unwrap();
    let mut others = HashMap::new();
    let mut buf = vec![0u8; 65535];
    loop {
        let (len, from) = socket.recv_from(&mut buf).await.unwrap();
        assert_eq!(from, server);
        let reply = buf[..len].to_vec();
        assert!(
            reply.len() >= 12,
            "a reply shorter than a header: {reply:?}"
        );
        assert_eq!(reply[2] & 0x80, 0x80, "every reply is a response (QR)");
        if id_of(&reply) == id_of(sentinel) {
            return (Message::from_vec(&reply).unwrap(), others);
        }
        others.insert(id_of(&reply), reply);
    }
}

/// RCODE 1.
const FORMERR: u8 = 1;

fn rcode(reply: &[u8]) -> u8 {
    reply[3] & 0x0f
}

#[tokio::test]
async fn malformed_udp_packets_get_formerr_or_are_dropped_and_the_server_answers_on() {
    let (server, _snapshots) = start().await;
    let addr = server.local_addr();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let web = |id| query(id, "web.default.svc.cluster.local.", RecordType::A, None);

    // Each malformed packet with a header: FORMERR with its id echoed.
    for (what, packet) in malformed() {
        socket.send_to(&packet, addr).await.unwrap();
        let mut buf = [0u8; 512];
        let (len, _) = socket.recv_from(&mut buf).await.unwrap();
        assert!(len >= 12, "{what}");
        assert_eq!(id_of(&buf), id_of(&packet), "{what}: the id is echoed");
        assert_eq!(rcode(&buf[..len]), FORMERR, "{what}: FORMERR");
    }

    // A reserved label type (0x80): hickory drops it or answers FORMERR; either way the
    // query after it is answered.
    let mut bad_label = vec![0x10, 0x06, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    bad_label.extend_from_slice(&[0x80, b'x', 0, 0, 1, 0, 1]);
    socket.send_to(&bad_label, addr).await.unwrap();
    let (answer, others) = udp_until(&socket, addr, &web(0x1fff)).await;
    assert_eq!(answer.answers.len(), 1);
    if let Some(reply) = others.get(&0x1006) {
        assert_eq!(rcode(reply), FORMERR);
    }

    // Shorter than a header, empty, a response sent to the server (reflection): dropped;
    // the valid query after them is answered.
    for packet in [vec![], vec![0x12], vec![0xab; 11]] {
        socket.send_to(&packet, addr).await.unwrap();
    }
    let mut response = web(0x2000);
    response[2] |= 0x80;
    socket.send_to(&response, addr).await.unwrap();
    let (answer, others) = udp_until(&socket, addr, &web(0x2001)).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer.answers.len(), 1);
    assert!(
        !others.contains_key(&0x2000),
        "a response is never answered"
    );

    // 500 packets of random bytes, of random lengths, in batches of 25 each followed by a
    // valid query (a burst of 500 could overflow the socket's buffer and lose the query):
    // whatever comes back is a response to one of them, and the server still answers.
    let mut bytes = Bytes(0x9e37_79b9_7f4a_7c15);
    let mut sent = HashMap::new();
    for batch in 0..20u16 {
        for _ in 0..25 {
            let len = usize::from(bytes.next()) * 2;
            let mut packet = bytes.packet(len);
            // Ids 0x3000..0x3fff so that they cannot collide with the sentinels'.
            if packet.len() >= 2 {
                packet[0] = 0x30 | (packet[0] & 0x0f);
            }
            if packet.len() >= 12 {
                sent.insert(id_of(&packet), ());
            }
            socket.send_to(&packet, addr).await.unwrap();
        }
        let (answer, others) = udp_until(&socket, addr, &web(0x4000 + batch)).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
        assert_eq!(answer.answers.len(), 1);
        for id in others.keys() {
            assert!(
                sent.contains_key(id) || (0x4000..0x4000 + batch).contains(id),
                "a reply to nothing sent: {id:#x}"
            );
        }
    }
    server.shutdown().await.unwrap();
}

/// Writes one length-prefixed DNS message on a TCP stream.
async fn send_frame(stream: &mut TcpStream, message: &[u8]) {
    let len = u16::try_from(message.len()).unwrap().to_be_bytes();
    stream.write_all(&len).await.unwrap();
    stream.write_all(message).await.unwrap();
}

/// Reads frames until the one with `id` (its bytes) or the end of the connection (`None`);
/// every frame read must be a response.
async fn read_until(stream: &mut TcpStream, id: u16) -> Option<Vec<u8>> {
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).await.is_err() {
            return None;
        }
        let mut frame = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut frame).await.is_err() {
            return None;
        }
        assert!(frame.len() >= 12 && frame[2] & 0x80 == 0x80, "{frame:?}");
        if id_of(&frame) == id {
            return Some(frame);
        }
    }
}

#[tokio::test]
async fn malformed_tcp_frames_get_formerr_or_a_closed_connection_never_a_crash() {
    let (server, _snapshots) = start().await;
    let addr = server.local_addr();
    let web = |id| query(id, "web.default.svc.cluster.local.", RecordType::A, None);
    let answers = |reply: Option<Vec<u8>>| {
        let reply = reply.expect("the valid query on a fresh connection is answered");
        let message = Message::from_vec(&reply).unwrap();
        assert_eq!(message.metadata.response_code, ResponseCode::NoError);
        assert_eq!(message.answers.len(), 1);
    };

    // Malformed messages with a header, each on its own connection: FORMERR (or the
    // connection closes); a fresh connection is then answered.
    for (what, packet) in malformed() {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        send_frame(&mut stream, &packet).await;
        if let Some(reply) = read_until(&mut stream, id_of(&packet)).await {
            assert_eq!(rcode(&reply), FORMERR, "{what}");
        }
        let mut fresh = TcpStream::connect(addr).await.unwrap();
        send_frame(&mut fresh, &web(0x5000)).await;
        answers(read_until(&mut fresh, 0x5000).await);
    }

    // Frames too short for a header, an empty frame, random frames, then a valid query on
    // the same connection: answered, or the connection was closed.
    let mut bytes = Bytes(0x0123_4567_89ab_cdef);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    send_frame(&mut stream, &[]).await;
    send_frame(&mut stream, &[0xde, 0xad]).await;
    for _ in 0..50 {
        let len = usize::from(bytes.next()) + 12;
        let mut packet = bytes.packet(len);
        packet[0] = 0x60;
        send_frame(&mut stream, &packet).await;
    }
    send_frame(&mut stream, &web(0x7000)).await;
    if let Some(reply) = read_until(&mut stream, 0x7000).await {
        answers(Some(reply));
    }

    // A length prefix promising more than ever comes, then the client leaves.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&[0xff, 0xff, 1, 2, 3]).await.unwrap();
    stream.shutdown().await.unwrap();
    drop(stream);

    let mut fresh = TcpStream::connect(addr).await.unwrap();
    send_frame(&mut fresh, &web(0x7001)).await;
    answers(read_until(&mut fresh, 0x7001).await);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn huge_answers_are_truncated_over_udp_whatever_the_client_claims() {
    let (server, _snapshots) = start().await;
    let addr = server.local_addr();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let name = "big.default.svc.cluster.local.";
    for (id, qtype, payload, limit) in [
        (1, RecordType::A, None, 512),
        (2, RecordType::A, Some(4096), MAX_UDP_PAYLOAD),
        (3, RecordType::A, Some(65535), MAX_UDP_PAYLOAD),
        (4, RecordType::A, Some(100), 512),
        (5, RecordType::SRV, Some(1232), MAX_UDP_PAYLOAD),
    ] {
        let name = if qtype == RecordType::SRV {
            "_http._tcp.big.default.svc.cluster.local."
        } else {
            name
        };
        socket
            .send_to(&query(id, name, qtype, payload), addr)
            .await
            .unwrap();
        let mut buf = vec![0u8; 65535];
        let (len, _) = socket.recv_from(&mut buf).await.unwrap();
        assert!(
            len <= usize::from(limit),
            "{qtype} with payload {payload:?}: {len} bytes over {limit}"
        );
        let reply = Message::from_vec(&buf[..len]).unwrap();
        assert_eq!(reply.metadata.id, id);
        assert!(reply.metadata.truncation, "{qtype} {payload:?}: TC set");
        assert!(reply.answers.len() < 1000);
    }
    // Over TCP the 1,000 addresses come whole; the SRV answer with its additionals passes
    // the 64 KB a DNS message can hold, so even TCP truncates it (and says so).
    let mut stream = TcpStream::connect(addr).await.unwrap();
    send_frame(&mut stream, &query(9, name, RecordType::A, None)).await;
    let reply = Message::from_vec(&read_until(&mut stream, 9).await.unwrap()).unwrap();
    assert!(!reply.metadata.truncation);
    assert_eq!(reply.answers.len(), 1000);
    let srv = query(
        10,
        "_http._tcp.big.default.svc.cluster.local.",
        RecordType::SRV,
        None,
    );
    send_frame(&mut stream, &srv).await;
    let reply = Message::from_vec(&read_until(&mut stream, 10).await.unwrap()).unwrap();
    assert!(reply.metadata.truncation, "over 64 KB: TC even over TCP");
    assert!(!reply.answers.is_empty() && reply.answers.len() < 1000);
    server.shutdown().await.unwrap();
}
