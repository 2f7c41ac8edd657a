//! Unit tests of the pure parts: the objects of a service port, the incremental plan, the
//! validation. No nft, no root.

use std::net::SocketAddr;
use std::time::Duration;

use nftables::schema::{FlushObject, NfCmd, NfListObject, NfObject};

use super::NftError;
use super::plan::{StaleFlows, plan};
use super::ruleset::{Command, to_json};
use super::validate::validate;
use crate::table::{Affinity, Protocol, ServiceEntry, ServiceKey, ServiceTable};

const MARK: u32 = 0x4000;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn entry(cluster: &str, protocol: Protocol, endpoints: &[&str]) -> ServiceEntry {
    ServiceEntry {
        cluster: addr(cluster),
        node_port: None,
        protocol,
        affinity: Affinity::None,
        endpoints: endpoints.iter().map(|e| addr(e)).collect(),
    }
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("default", name, "")
}

/// `verb kind name` per command (`add rule` names its chain).
fn summary(commands: &[Command]) -> Vec<String> {
    commands
        .iter()
        .map(|command| {
            let command = match command {
                Command::Nf(command) => command,
                Command::Raw(raw) => {
                    return format!("add map {}", raw["add"]["map"]["name"].as_str().unwrap());
                }
            };
            let (verb, object) = match command {
                NfObject::CmdObject(NfCmd::Add(o)) => ("add", describe(o)),
                NfObject::CmdObject(NfCmd::Delete(o)) => ("delete", describe(o)),
                NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(c))) => {
                    ("flush", format!("chain {}", c.name))
                }
                other => panic!("unexpected command {other:?}"),
            };
            format!("{verb} {object}")
        })
        .collect()
}

fn describe(object: &NfListObject<'static>) -> String {
    match object {
        NfListObject::Table(t) => format!("table {}", t.name),
        NfListObject::Chain(c) => format!("chain {}", c.name),
        NfListObject::Rule(r) => format!("rule {}", r.chain),
        NfListObject::Set(s) => format!("set {}", s.name),
        NfListObject::Map(m) => format!("map {}", m.name),
        NfListObject::Element(e) => format!("element {} x{}", e.name, e.elem.len()),
        other => panic!("unexpected object {other:?}"),
    }
}

fn many(n: u32) -> ServiceTable {
    (0..n)
        .map(|i| {
            let cluster = format!("10.96.{}.{}:80", i / 250, i % 250 + 1);
            let endpoints: Vec<String> = (0..3)
                .map(|j| format!("10.1.{}.{}:8080", i / 80, (i % 80) * 3 + j + 1))
                .collect();
            let endpoints: Vec<&str> = endpoints.iter().map(String::as_str).collect();
            (
                key(&format!("s{i}")),
                entry(&cluster, Protocol::Tcp, &endpoints),
            )
        })
        .collect()
}

#[test]
fn the_first_sync_takes_the_table_over_and_creates_everything() {
    let table: ServiceTable = [(
        key("web"),
        entry(
            "10.96.0.10:80",
            Protocol::Tcp,
            &["10.1.0.1:8080", "10.1.0.2:8080", "10.1.0.3:8080"],
        ),
    )]
    .into_iter()
    .collect();
    let plan = plan(None, &table, MARK);
    let summary = summary(&plan.commands);
    assert_eq!(
        summary[..3],
        [
            "add table orchestra",
            "delete table orchestra",
            "add table orchestra"
        ]
    );
    for expected in [
        "add map service-ips",
        "add map service-nodeports",
        "add map no-endpoint-services",
        "add chain nat-prerouting",
        "add chain svc-10.96.0.10/tcp/80",
        "add chain ep-10.96.0.10/tcp/80-10.1.0.2/8080",
        "add rule svc-10.96.0.10/tcp/80",
        "add element service-ips x1",
    ] {
        assert!(
            summary.iter().any(|s| s == expected),
            "{expected} missing from {summary:#?}"
        );
    }
    assert_eq!(plan.changed_ports, 1);
    // The service chain picks among the three endpoint chains at random, the endpoint chain
    // marks hairpin traffic and DNATs.
    let json = to_json(&plan.commands).unwrap();
    assert!(
        json.contains(r#""chain":"svc-10.96.0.10/tcp/80","expr":[{"match":{"left":{"numgen":{"mode":"random","mod":3}},"right":0,"op":"=="}},{"goto":{"target":"ep-10.96.0.10/tcp/80-10.1.0.1/8080"}}]}"#),
        "{json}"
    );
    assert!(
        json.contains(r#"{"dnat":{"addr":"10.1.0.2","family":"ip","port":8080}}"#),
        "{json}"
    );
    assert!(
        json.contains(r#""elem":[[{"concat":["10.96.0.10","tcp",80]},{"goto":{"target":"svc-10.96.0.10/tcp/80"}}]]"#),
        "{json}"
    );
}

#[test]
fn applying_the_same_table_again_sends_nothing() {
    let table = many(50);
    let plan = plan(Some(&table), &table, MARK);
    assert!(plan.commands.is_empty());
    assert_eq!(plan.changed_ports, 0);
}

#[test]
fn a_change_to_one_service_among_many_rewrites_only_its_chains() {
    let old = many(2_000);
    let mut new = old.clone();
    let mut changed = new.get(&key("s1234")).unwrap().clone();
    let removed = changed.endpoints.remove(0);
    new.insert(key("s1234"), changed.clone());
    let plan = plan(Some(&old), &new, MARK);
    let frontend = format!("{}/tcp/80", changed.cluster.ip());
    assert_eq!(
        summary(&plan.commands),
        [
            format!("flush chain ep-{frontend}-{}/8080", removed.ip()),
            format!("flush chain svc-{frontend}"),
            format!("add rule svc-{frontend}"),
            format!("add rule svc-{frontend}"),
            format!("delete chain ep-{frontend}-{}/8080", removed.ip()),
        ]
    );
    assert_eq!(plan.changed_ports, 1);
    assert!(plan.stale.is_empty(), "TCP has no stale flows to flush");
}

#[test]
fn a_removed_udp_endpoint_leaves_stale_flows_to_flush() {
    let mut dns = entry(
        "10.96.0.53:53",
        Protocol::Udp,
        &["10.1.0.1:5353", "10.1.0.2:5353"],
    );
    dns.node_port = Some(30053);
    let old: ServiceTable = [(key("dns"), dns.clone())].into_iter().collect();
    dns.endpoints.remove(1);
    let new: ServiceTable = [(key("dns"), dns.clone())].into_iter().collect();
    let plan = plan(Some(&old), &new, MARK);
    assert_eq!(
        plan.stale,
        [StaleFlows {
            cluster_ip: "10.96.0.53".parse().unwrap(),
            port: 53,
            node_port: Some(30053),
            endpoint: "10.1.0.2".parse().unwrap(),
        }]
    );
    // A deleted service flushes every endpoint's flows.
    let plan = super::plan::plan(Some(&old), &ServiceTable::new(), MARK);
    assert_eq!(plan.stale.len(), 2);
}

#[test]
fn a_service_losing_its_endpoints_moves_to_the_reject_map_and_back() {
    let mut web = entry("10.96.0.10:80", Protocol::Tcp, &["10.1.0.1:8080"]);
    web.node_port = Some(30080);
    let with: ServiceTable = [(key("web"), web.clone())].into_iter().collect();
    web.endpoints.clear();
    let without: ServiceTable = [(key("web"), web.clone())].into_iter().collect();
    let plan_empty = plan(Some(&with), &without, MARK);
    assert_eq!(
        summary(&plan_empty.commands),
        [
            "delete element service-ips x1",
            "delete element service-nodeports x1",
            "flush chain ep-10.96.0.10/tcp/80-10.1.0.1/8080",
            "flush chain ext-10.96.0.10/tcp/80",
            "flush chain svc-10.96.0.10/tcp/80",
            "add element no-endpoint-nodeports x1",
            "add element no-endpoint-services x1",
            "delete chain ep-10.96.0.10/tcp/80-10.1.0.1/8080",
            "delete chain ext-10.96.0.10/tcp/80",
            "delete chain svc-10.96.0.10/tcp/80",
        ]
    );
    let plan_back = plan(Some(&without), &with, MARK);
    assert_eq!(
        summary(&plan_back.commands),
        [
            "add chain ep-10.96.0.10/tcp/80-10.1.0.1/8080",
            "add chain ext-10.96.0.10/tcp/80",
            "add chain svc-10.96.0.10/tcp/80",
            "delete element no-endpoint-nodeports x1",
            "delete element no-endpoint-services x1",
            "add rule ep-10.96.0.10/tcp/80-10.1.0.1/8080",
            "add rule ep-10.96.0.10/tcp/80-10.1.0.1/8080",
            "add rule ext-10.96.0.10/tcp/80",
            "add rule ext-10.96.0.10/tcp/80",
            "add rule svc-10.96.0.10/tcp/80",
            "add element service-ips x1",
            "add element service-nodeports x1",
        ]
    );
}

#[test]
fn a_frontend_moving_between_services_is_rewritten_not_recreated() {
    let a = entry("10.96.0.10:80", Protocol::Tcp, &["10.1.0.1:8080"]);
    let b = entry("10.96.0.10:80", Protocol::Tcp, &["10.1.0.2:8080"]);
    let old: ServiceTable = [(key("a"), a)].into_iter().collect();
    let new: ServiceTable = [(key("b"), b)].into_iter().collect();
    let summary = summary(&plan(Some(&old), &new, MARK).commands);
    assert!(
        !summary
            .iter()
            .any(|s| s == "delete chain svc-10.96.0.10/tcp/80"
                || s == "add chain svc-10.96.0.10/tcp/80"),
        "{summary:#?}"
    );
    assert!(
        summary
            .iter()
            .any(|s| s == "flush chain svc-10.96.0.10/tcp/80")
    );
}

#[test]
fn affinity_adds_a_set_per_endpoint_and_a_new_timeout_replaces_them() {
    let mut web = entry(
        "10.96.0.10:80",
        Protocol::Tcp,
        &["10.1.0.1:8080", "10.1.0.2:8080"],
    );
    web.affinity = Affinity::ClientIp {
        timeout: Duration::from_secs(3),
    };
    let first: ServiceTable = [(key("web"), web.clone())].into_iter().collect();
    let created = summary(&plan(Some(&ServiceTable::new()), &first, MARK).commands);
    assert_eq!(
        created
            .iter()
            .filter(|s| s.starts_with("add set aff3-"))
            .count(),
        2,
        "{created:#?}"
    );
    web.affinity = Affinity::ClientIp {
        timeout: Duration::from_millis(10_500),
    };
    let second: ServiceTable = [(key("web"), web)].into_iter().collect();
    let changed = summary(&plan(Some(&first), &second, MARK).commands);
    assert_eq!(
        changed
            .iter()
            .filter(|s| s.starts_with("add set aff11-"))
            .count(),
        2,
        "sub-second timeouts round up: {changed:#?}"
    );
    assert_eq!(
        changed
            .iter()
            .filter(|s| s.starts_with("delete set aff3-"))
            .count(),
        2
    );
    // The sets go last, after the chains that used them were flushed.
    assert!(changed.last().unwrap().starts_with("delete set"));
}

#[test]
fn conflicting_frontends_are_refused_naming_both_ports() {
    let mut table: ServiceTable = [
        (key("a"), entry("10.96.0.10:80", Protocol::Tcp, &[])),
        (key("b"), entry("10.96.0.10:80", Protocol::Tcp, &[])),
    ]
    .into_iter()
    .collect();
    let err = validate(&table).unwrap_err();
    assert!(matches!(err, NftError::ConflictingPorts { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("default/a") && text.contains("default/b"),
        "{text}"
    );
    // The same address and port over UDP is another frontend.
    table.insert(key("b"), entry("10.96.0.10:80", Protocol::Udp, &[]));
    validate(&table).unwrap();
    let mut c = entry("10.96.0.11:80", Protocol::Udp, &[]);
    c.node_port = Some(30080);
    let mut d = entry("10.96.0.12:80", Protocol::Udp, &[]);
    d.node_port = Some(30080);
    table.insert(key("c"), c);
    table.insert(key("d"), d);
    let text = validate(&table).unwrap_err().to_string();
    assert!(text.contains("NodePort 30080"), "{text}");
}

#[test]
fn invalid_addresses_are_refused_with_the_reason() {
    for (cluster, endpoint, expected) in [
        ("0.0.0.0:80", "10.1.0.1:80", "unspecified"),
        ("224.0.0.1:80", "10.1.0.1:80", "multicast"),
        ("10.96.0.1:0", "10.1.0.1:80", "port 0"),
        ("10.96.0.1:80", "10.1.0.1:0", "endpoint 10.1.0.1:0"),
        ("10.96.0.1:80", "255.255.255.255:80", "broadcast"),
        ("10.96.0.1:80", "[fd00::1]:80", "family"),
    ] {
        let table: ServiceTable = [(key("x"), entry(cluster, Protocol::Tcp, &[endpoint]))]
            .into_iter()
            .collect();
        let text = validate(&table).unwrap_err().to_string();
        assert!(text.contains(expected), "{cluster} {endpoint}: {text}");
        assert!(text.contains("default/x"), "{text}");
    }
    let mut zero = entry("10.96.0.1:80", Protocol::Tcp, &["10.1.0.1:80"]);
    zero.affinity = Affinity::ClientIp {
        timeout: Duration::ZERO,
    };
    let table: ServiceTable = [(key("x"), zero)].into_iter().collect();
    assert!(
        validate(&table)
            .unwrap_err()
            .to_string()
            .contains("timeout")
    );
}

#[test]
fn ipv6_services_use_the_ipv6_map_and_dnat() {
    let table: ServiceTable = [(
        key("v6"),
        entry("[fd00:96::10]:80", Protocol::Tcp, &["[fd00:1::1]:8080"]),
    )]
    .into_iter()
    .collect();
    validate(&table).unwrap();
    let plan = plan(Some(&ServiceTable::new()), &table, MARK);
    assert!(
        summary(&plan.commands)
            .iter()
            .any(|s| s == "add element service-ips6 x1")
    );
    let json = to_json(&plan.commands).unwrap();
    assert!(
        json.contains(r#"{"dnat":{"addr":"fd00:1::1","family":"ip6","port":8080}}"#),
        "{json}"
    );
}
