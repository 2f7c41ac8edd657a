//! Unit tests of the pure parts: snapshot building and [`resolve`]'s exact records.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, NS, PTR, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use orchestra_api::ObjectMeta;
use orchestra_api::resources::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Protocol as ApiProtocol, Service,
    ServicePort, ServiceSpec,
};

use super::*;

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: name.into(),
        namespace: namespace.into(),
        ..ObjectMeta::default()
    }
}

fn port(name: &str, protocol: ApiProtocol, number: i32) -> ServicePort {
    ServicePort {
        name: name.into(),
        protocol: Some(protocol),
        port: number,
        ..ServicePort::default()
    }
}

fn service(namespace: &str, name: &str, cluster_ip: &str, ports: Vec<ServicePort>) -> Service {
    Service {
        metadata: meta(namespace, name),
        spec: ServiceSpec {
            cluster_ip: cluster_ip.into(),
            ports,
            ..ServiceSpec::default()
        },
        status: None,
    }
}

fn address(ip: &str, hostname: &str) -> EndpointAddress {
    EndpointAddress {
        ip: ip.into(),
        hostname: hostname.into(),
        ..EndpointAddress::default()
    }
}

fn endpoints(
    namespace: &str,
    name: &str,
    ready: Vec<EndpointAddress>,
    not_ready: Vec<EndpointAddress>,
    ports: &[(&str, i32)],
) -> Endpoints {
    Endpoints {
        metadata: meta(namespace, name),
        subsets: vec![EndpointSubset {
            addresses: ready,
            not_ready_addresses: not_ready,
            ports: ports
                .iter()
                .map(|(name, number)| EndpointPort {
                    name: (*name).into(),
                    port: *number,
                    protocol: Some(ApiProtocol::Tcp),
                    ..EndpointPort::default()
                })
                .collect(),
        }],
    }
}

/// web (ClusterIP, two ports), db (headless, two ready pods and one not ready), and a
/// service in another namespace.
fn snapshot() -> DnsSnapshot {
    let services = [
        service(
            "default",
            "web",
            "127.2.0.10",
            vec![
                port("http", ApiProtocol::Tcp, 80),
                port("dns", ApiProtocol::Udp, 53),
            ],
        ),
        service(
            "default",
            "db",
            "None",
            vec![port("pg", ApiProtocol::Tcp, 5432)],
        ),
        service(
            "shop",
            "cart",
            "127.2.0.20",
            vec![port("", ApiProtocol::Tcp, 6379)],
        ),
    ];
    let endpoints = [
        endpoints(
            "default",
            "db",
            vec![address("127.3.0.6", ""), address("127.3.0.5", "db-0")],
            vec![address("127.3.0.7", "")],
            &[("pg", 15432)],
        ),
        endpoints(
            "default",
            "web",
            vec![address("127.3.0.9", "")],
            vec![],
            &[("http", 8080)],
        ),
    ];
    DnsSnapshot::build(services.iter(), endpoints.iter(), 7)
}

fn config() -> DnsConfig {
    let mut config = DnsConfig::new("cluster.local").unwrap();
    config.nameserver = Some("127.0.0.10".parse().unwrap());
    config
}

fn name(text: &str) -> Name {
    Name::from_str(text).unwrap()
}

fn ask(snapshot: &DnsSnapshot, config: &DnsConfig, qname: &str, qtype: RecordType) -> Answer {
    match resolve(snapshot, config, &name(qname), qtype, DNSClass::IN) {
        Resolution::Answer(answer) => answer,
        Resolution::Forward => panic!("{qname} {qtype} was forwarded"),
    }
}

fn a(owner: &str, ip: &str) -> Record {
    Record::from_rdata(name(owner), 5, RData::A(A(ip.parse().unwrap())))
}

fn soa(serial: u32) -> Record {
    Record::from_rdata(
        name("cluster.local."),
        5,
        RData::SOA(SOA::new(
            name("ns.dns.cluster.local."),
            name("hostmaster.cluster.local."),
            serial,
            7200,
            1800,
            86400,
            5,
        )),
    )
}

fn negative(code: ResponseCode) -> Answer {
    Answer {
        code,
        authoritative: true,
        answers: vec![],
        authorities: vec![soa(7)],
        additionals: vec![],
    }
}

fn positive(answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
    Answer {
        code: ResponseCode::NoError,
        authoritative: true,
        answers,
        authorities: vec![],
        additionals,
    }
}

#[test]
fn a_service_name_resolves_to_its_cluster_ip() {
    let answer = ask(
        &snapshot(),
        &config(),
        "web.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        answer,
        positive(
            vec![a("web.default.svc.cluster.local.", "127.2.0.10")],
            vec![]
        )
    );
}

#[test]
fn names_are_case_insensitive_and_answers_keep_the_asked_case() {
    let answer = ask(
        &snapshot(),
        &config(),
        "WEB.Default.SVC.Cluster.Local.",
        RecordType::A,
    );
    assert_eq!(answer.answers.len(), 1);
    assert!(
        answer.answers[0]
            .name
            .eq_case(&name("WEB.Default.SVC.Cluster.Local."))
    );
}

#[test]
fn a_family_the_service_lacks_is_nodata_with_the_soa() {
    let snapshot = snapshot();
    let answer = ask(
        &snapshot,
        &config(),
        "web.default.svc.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(answer, negative(ResponseCode::NoError));
    let answer = ask(
        &snapshot,
        &config(),
        "web.default.svc.cluster.local.",
        RecordType::TXT,
    );
    assert_eq!(answer, negative(ResponseCode::NoError));
}

#[test]
fn an_ipv6_cluster_ip_answers_aaaa() {
    let services = [service("default", "v6", "fd00::10", vec![])];
    let snapshot = DnsSnapshot::build(services.iter(), [], 7);
    let answer = ask(
        &snapshot,
        &config(),
        "v6.default.svc.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(
        answer.answers,
        vec![Record::from_rdata(
            name("v6.default.svc.cluster.local."),
            5,
            RData::AAAA(AAAA("fd00::10".parse().unwrap()))
        )]
    );
}

#[test]
fn a_headless_service_resolves_to_its_ready_endpoints() {
    let snapshot = snapshot();
    let answer = ask(
        &snapshot,
        &config(),
        "db.default.svc.cluster.local.",
        RecordType::A,
    );
    // Sorted, without the not-ready 127.3.0.7.
    assert_eq!(
        answer,
        positive(
            vec![
                a("db.default.svc.cluster.local.", "127.3.0.5"),
                a("db.default.svc.cluster.local.", "127.3.0.6"),
            ],
            vec![]
        )
    );
    // Each endpoint has its own name: its hostname, or its address with dashes.
    let answer = ask(
        &snapshot,
        &config(),
        "db-0.db.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        answer.answers,
        vec![a("db-0.db.default.svc.cluster.local.", "127.3.0.5")]
    );
    let answer = ask(
        &snapshot,
        &config(),
        "127-3-0-6.db.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(
        answer.answers,
        vec![a("127-3-0-6.db.default.svc.cluster.local.", "127.3.0.6")]
    );
    let answer = ask(
        &snapshot,
        &config(),
        "127-3-0-7.db.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(answer, negative(ResponseCode::NXDomain));
}

#[test]
fn publish_not_ready_addresses_includes_them() {
    let mut db = service(
        "default",
        "db",
        "None",
        vec![port("pg", ApiProtocol::Tcp, 5432)],
    );
    db.spec.publish_not_ready_addresses = true;
    let eps = endpoints(
        "default",
        "db",
        vec![address("127.3.0.5", "")],
        vec![address("127.3.0.7", "")],
        &[("pg", 15432)],
    );
    let snapshot = DnsSnapshot::build([&db], [&eps], 1);
    let ips: Vec<IpAddr> = snapshot
        .service("default", "db")
        .unwrap()
        .endpoints
        .iter()
        .map(|e| e.ip)
        .collect();
    assert_eq!(
        ips,
        ["127.3.0.5", "127.3.0.7"].map(|ip| ip.parse::<IpAddr>().unwrap())
    );
}

#[test]
fn srv_of_a_named_port_points_at_the_service() {
    let answer = ask(
        &snapshot(),
        &config(),
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(
        answer,
        positive(
            vec![Record::from_rdata(
                name("_http._tcp.web.default.svc.cluster.local."),
                5,
                RData::SRV(SRV::new(0, 100, 80, name("web.default.svc.cluster.local.")))
            )],
            vec![a("web.default.svc.cluster.local.", "127.2.0.10")]
        )
    );
    let udp = ask(
        &snapshot(),
        &config(),
        "_dns._udp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(udp.answers.len(), 1);
    // The right name with the wrong protocol does not exist.
    let wrong = ask(
        &snapshot(),
        &config(),
        "_http._udp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(wrong, negative(ResponseCode::NXDomain));
    // `_tcp.web...` exists (it has names below it) but holds no record.
    let parent = ask(
        &snapshot(),
        &config(),
        "_tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(parent, negative(ResponseCode::NoError));
}

#[test]
fn srv_of_a_headless_service_lists_each_endpoint_with_its_port() {
    let answer = ask(
        &snapshot(),
        &config(),
        "_pg._tcp.db.default.svc.cluster.local.",
        RecordType::SRV,
    );
    let srv = |target: &str| {
        Record::from_rdata(
            name("_pg._tcp.db.default.svc.cluster.local."),
            5,
            RData::SRV(SRV::new(0, 50, 15432, name(target))),
        )
    };
    assert_eq!(
        answer,
        positive(
            vec![
                srv("db-0.db.default.svc.cluster.local."),
                srv("127-3-0-6.db.default.svc.cluster.local."),
            ],
            vec![
                a("db-0.db.default.svc.cluster.local.", "127.3.0.5"),
                a("127-3-0-6.db.default.svc.cluster.local.", "127.3.0.6"),
            ]
        )
    );
}

#[test]
fn cluster_ips_and_headless_endpoints_have_ptr_records() {
    let snapshot = snapshot();
    let answer = ask(
        &snapshot,
        &config(),
        "10.0.2.127.in-addr.arpa.",
        RecordType::PTR,
    );
    assert_eq!(
        answer,
        positive(
            vec![Record::from_rdata(
                name("10.0.2.127.in-addr.arpa."),
                5,
                RData::PTR(PTR(name("web.default.svc.cluster.local.")))
            )],
            vec![]
        )
    );
    let answer = ask(
        &snapshot,
        &config(),
        "5.0.3.127.in-addr.arpa.",
        RecordType::PTR,
    );
    assert_eq!(
        answer.answers[0].data,
        RData::PTR(PTR(name("db-0.db.default.svc.cluster.local.")))
    );
    // An unknown address in the service range is NXDOMAIN; a parent of the range exists.
    let answer = ask(
        &snapshot,
        &config(),
        "99.0.2.127.in-addr.arpa.",
        RecordType::PTR,
    );
    assert_eq!(answer, negative(ResponseCode::NXDomain));
    let answer = ask(&snapshot, &config(), "2.127.in-addr.arpa.", RecordType::PTR);
    assert_eq!(answer, negative(ResponseCode::NoError));
    // Another address is not ours: refused without upstreams.
    let answer = ask(
        &snapshot,
        &config(),
        "1.1.168.192.in-addr.arpa.",
        RecordType::PTR,
    );
    assert_eq!(answer, Answer::code(ResponseCode::Refused));
}

#[test]
fn missing_names_in_the_domain_are_nxdomain_with_the_soa() {
    let snapshot = snapshot();
    for missing in [
        "nope.default.svc.cluster.local.",
        "web.nope.svc.cluster.local.",
        "nope.svc.cluster.local.",
        "a.b.c.d.e.web.default.svc.cluster.local.",
        "x.pod.default.pod.cluster.local.",
        "_nope._tcp.web.default.svc.cluster.local.",
    ] {
        let answer = ask(&snapshot, &config(), missing, RecordType::A);
        assert_eq!(answer, negative(ResponseCode::NXDomain), "{missing}");
    }
    // A namespace with services exists, as do `svc` and the domain itself.
    for exists in [
        "default.svc.cluster.local.",
        "svc.cluster.local.",
        "cluster.local.",
    ] {
        let answer = ask(&snapshot, &config(), exists, RecordType::A);
        assert_eq!(answer, negative(ResponseCode::NoError), "{exists}");
    }
}

#[test]
fn the_apex_has_soa_and_ns_and_the_name_server_an_address() {
    let snapshot = snapshot();
    let answer = ask(&snapshot, &config(), "cluster.local.", RecordType::SOA);
    assert_eq!(answer, positive(vec![soa(7)], vec![]));
    let answer = ask(&snapshot, &config(), "cluster.local.", RecordType::NS);
    assert_eq!(
        answer,
        positive(
            vec![Record::from_rdata(
                name("cluster.local."),
                5,
                RData::NS(NS(name("ns.dns.cluster.local.")))
            )],
            vec![a("ns.dns.cluster.local.", "127.0.0.10")]
        )
    );
    let answer = ask(&snapshot, &config(), "ns.dns.cluster.local.", RecordType::A);
    assert_eq!(
        answer.answers,
        vec![a("ns.dns.cluster.local.", "127.0.0.10")]
    );
}

#[test]
fn names_outside_the_domain_are_refused_or_forwarded() {
    let snapshot = snapshot();
    let answer = ask(&snapshot, &config(), "example.com.", RecordType::A);
    assert_eq!(answer, Answer::code(ResponseCode::Refused));
    let upstream: SocketAddr = "127.0.0.53:53".parse().unwrap();
    let forwarding = config().with_upstreams([upstream]);
    assert_eq!(
        resolve(
            &snapshot,
            &forwarding,
            &name("example.com."),
            RecordType::A,
            DNSClass::IN
        ),
        Resolution::Forward
    );
    // A name that only ends like the domain is not in it.
    assert_eq!(
        resolve(
            &snapshot,
            &forwarding,
            &name("notcluster.local."),
            RecordType::A,
            DNSClass::IN
        ),
        Resolution::Forward
    );
}

#[test]
fn other_classes_and_zone_transfers_are_refused() {
    let snapshot = snapshot();
    let chaos = resolve(
        &snapshot,
        &config(),
        &name("web.default.svc.cluster.local."),
        RecordType::A,
        DNSClass::CH,
    );
    assert_eq!(
        chaos,
        Resolution::Answer(Answer::code(ResponseCode::Refused))
    );
    let axfr = ask(&snapshot, &config(), "cluster.local.", RecordType::AXFR);
    assert_eq!(axfr, Answer::code(ResponseCode::Refused));
}

#[test]
fn another_cluster_domain_and_ttl_are_honoured() {
    let mut config = DnsConfig::new("corp.example").unwrap();
    config.ttl = 30;
    let answer = ask(
        &snapshot(),
        &config,
        "web.default.svc.corp.example.",
        RecordType::A,
    );
    assert_eq!(
        answer.answers,
        vec![Record::from_rdata(
            name("web.default.svc.corp.example."),
            30,
            RData::A(A("127.2.0.10".parse().unwrap()))
        )]
    );
    let answer = ask(
        &snapshot(),
        &config,
        "web.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(answer, Answer::code(ResponseCode::Refused));
}

#[test]
fn the_snapshot_skips_what_it_cannot_name() {
    let services = [
        service("default", "pending", "", vec![]),
        service("default", "bad", "not-an-ip", vec![]),
        service(
            "default",
            "mixed",
            "127.2.0.30",
            vec![
                port("s", ApiProtocol::Sctp, 9),
                port("t", ApiProtocol::Tcp, 70_000),
                port("ok", ApiProtocol::Tcp, 80),
            ],
        ),
    ];
    let snapshot = DnsSnapshot::build(services.iter(), [], 3);
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot.serial(), 3);
    let mixed = snapshot.service("default", "mixed").unwrap();
    assert_eq!(
        mixed.ports,
        vec![PortRecord {
            name: "ok".into(),
            protocol: crate::table::Protocol::Tcp,
            port: 80
        }]
    );
    assert_eq!(dashed("fd00::1".parse().unwrap()), "fd00--1");
}

#[test]
fn pod_names_resolve_to_the_address_they_spell() {
    let snapshot = snapshot();
    let asked = "127-3-0-9.shop.pod.cluster.local.";
    assert_eq!(
        ask(&snapshot, &config(), asked, RecordType::A),
        positive(vec![a(asked, "127.3.0.9")], vec![])
    );
    let v6 = "fd00--9.shop.pod.cluster.local.";
    assert_eq!(
        ask(&snapshot, &config(), v6, RecordType::AAAA),
        positive(
            vec![Record::from_rdata(
                name(v6),
                5,
                RData::AAAA(AAAA("fd00::9".parse().unwrap()))
            )],
            vec![]
        )
    );
    // The other family: the name exists without records.
    assert_eq!(
        ask(&snapshot, &config(), asked, RecordType::AAAA),
        negative(ResponseCode::NoError)
    );
    // `pod.DOMAIN` and a namespace under it exist; a label that is no address does not.
    for exists in ["pod.cluster.local.", "shop.pod.cluster.local."] {
        assert_eq!(
            ask(&snapshot, &config(), exists, RecordType::A),
            negative(ResponseCode::NoError),
            "{exists}"
        );
    }
    for missing in [
        "web.shop.pod.cluster.local.",
        "1-2-3.shop.pod.cluster.local.",
        "1-2-3-456.shop.pod.cluster.local.",
    ] {
        assert_eq!(
            ask(&snapshot, &config(), missing, RecordType::A),
            negative(ResponseCode::NXDomain),
            "{missing}"
        );
    }
    // Turned off: every pod name is NXDOMAIN.
    let mut off = config();
    off.pod_records = false;
    assert_eq!(
        ask(&snapshot, &off, asked, RecordType::A),
        negative(ResponseCode::NXDomain)
    );
}
