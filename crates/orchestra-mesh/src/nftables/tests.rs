//! Unit tests of the pure parts: the objects of a service port, the incremental plan, the
//! validation. No nft, no root.

use std::net::SocketAddr;
use std::time::Duration;

use super::NftError;
use super::applied::Applied;
use super::diff::diff;
use super::plan::{Plan, StaleFlows};
use super::ruleset::script;
use super::validate::validate;
use crate::table::{Affinity, Protocol, ServiceEntry, ServiceKey, ServiceTable};

const MARK: u32 = 0x4000;

/// The plan the proxy makes when it has applied `old` (with pick chains for 1 to
/// `picks_upto` endpoints; `None`: nothing known) and is given `new`: the diff of the two
/// tables, then the incremental plan.
fn sync_plan(old: Option<&ServiceTable>, picks_upto: usize, new: &ServiceTable, mark: u32) -> Plan {
    let applied = old.map(|old| Applied::new(old.clone(), picks_upto));
    let changes = applied
        .as_ref()
        .map(|applied| diff(&applied.table, new))
        .unwrap_or_default();
    super::plan::plan(applied.as_ref(), new, changes, mark)
}

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

/// `verb kind name` per command (`add rule` names its chain, `add element` counts its
/// elements: `add element endpoints x3`).
fn summary(commands: &[String]) -> Vec<String> {
    commands
        .iter()
        .map(|command| {
            let words: Vec<&str> = command.split(' ').collect();
            assert_eq!(words[2..4], ["inet", "orchestra"], "{command}");
            let (verb, kind) = (words[0], words[1]);
            match (kind, words.get(4)) {
                ("table", None) => format!("{verb} table orchestra"),
                ("element", Some(set)) => {
                    let inside = command.split_once('{').unwrap().1;
                    format!("{verb} element {set} x{}", inside.split(", ").count())
                }
                (_, Some(name)) => format!("{verb} {kind} {name}"),
                _ => panic!("unexpected command {command}"),
            }
        })
        .collect()
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
    let plan = sync_plan(None, 0, &table, MARK);
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
        "add map endpoints",
        "add set hairpin",
        "add chain nat-prerouting",
        "add chain services",
        "add set pick-3",
        "add chain pick-3",
        "add rule pick-3",
        "add rule services",
        "add element pick-3 x1",
        "add element endpoints x3",
        "add element hairpin x3",
    ] {
        assert!(
            summary.iter().any(|s| s == expected),
            "{expected} missing from {summary:#?}"
        );
    }
    assert!(
        !summary.iter().any(|s| s.contains("svc-")),
        "a service without affinity owns no chain: {summary:#?}"
    );
    assert_eq!(plan.changed_ports, 1);
    // Members of pick-3 are DNATed to endpoint `numgen random mod 3` of their frontend;
    // endpoints calling their own service are marked for masquerade.
    let script = script(&plan.commands);
    for line in [
        "add rule inet orchestra services ip daddr . meta l4proto . th dport @pick-3 goto pick-3\n",
        "add rule inet orchestra pick-3 meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport . numgen random mod 3 map @endpoints\n",
        "add rule inet orchestra services ip saddr . ip daddr . meta l4proto . th dport @hairpin jump mark-for-masquerade\n",
        "add element inet orchestra pick-3 { 10.96.0.10 . tcp . 80 }\n",
        "add element inet orchestra endpoints { 10.96.0.10 . tcp . 80 . 0 : 10.1.0.1 . 8080, 10.96.0.10 . tcp . 80 . 1 : 10.1.0.2 . 8080, 10.96.0.10 . tcp . 80 . 2 : 10.1.0.3 . 8080 }\n",
        "add element inet orchestra hairpin { 10.1.0.1 . 10.96.0.10 . tcp . 80, 10.1.0.2 . 10.96.0.10 . tcp . 80, 10.1.0.3 . 10.96.0.10 . tcp . 80 }\n",
    ] {
        assert!(script.contains(line), "{line} missing from {script}");
    }
}

#[test]
fn applying_the_same_table_again_sends_nothing() {
    let table = many(50);
    let plan = sync_plan(Some(&table), 64, &table, MARK);
    assert!(plan.commands.is_empty());
    assert_eq!(plan.changed_ports, 0);
}

#[test]
fn a_change_to_one_service_among_many_sends_only_its_elements() {
    let mut old = many(2_000);
    // Another service already has two endpoints, so the count is not new to the table.
    let mut two = old.get(&key("s0")).unwrap().clone();
    two.endpoints.pop();
    old.insert(key("s0"), two);
    let mut new = old.clone();
    let mut changed = new.get(&key("s1234")).unwrap().clone();
    changed.endpoints.remove(0);
    new.insert(key("s1234"), changed.clone());
    let plan = sync_plan(Some(&old), 64, &new, MARK);
    // Endpoints move down one index: 0 and 1 get new data, 2 goes.
    assert_eq!(
        summary(&plan.commands),
        [
            "delete element endpoints x3",
            "delete element hairpin x1",
            "delete element pick-3 x1",
            "add element endpoints x2",
            "add element pick-2 x1",
        ]
    );
    let frontend = format!("{} . tcp . 80", changed.cluster.ip());
    for command in &plan.commands {
        assert!(command.contains(&frontend), "{command}");
    }
    assert_eq!(plan.changed_ports, 1);
    assert!(plan.stale.is_empty(), "TCP has no stale flows to flush");
}

#[test]
fn a_new_endpoint_count_adds_its_pick_and_the_last_user_removes_it() {
    let old = many(10);
    let mut new = old.clone();
    let mut changed = new.get(&key("s3")).unwrap().clone();
    changed.endpoints.pop();
    new.insert(key("s3"), changed);
    let added = summary(&sync_plan(Some(&old), 64, &new, MARK).commands);
    assert_eq!(
        added,
        [
            "add set pick-2",
            "delete element endpoints x1",
            "delete element hairpin x1",
            "delete element pick-3 x1",
            "flush chain services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add element pick-2 x1",
        ]
    );
    let removed = summary(&sync_plan(Some(&new), 64, &old, MARK).commands);
    assert_eq!(
        removed,
        [
            "flush chain services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add element endpoints x1",
            "add element hairpin x1",
            "add element pick-3 x1",
            "delete set pick-2",
        ]
    );
}

#[test]
fn more_endpoints_than_pick_chains_takes_the_table_over_again() {
    let old = many(3);
    let mut new = old.clone();
    let mut big = new.get(&key("s1")).unwrap().clone();
    big.endpoints = (1..=70u32)
        .map(|i| addr(&format!("10.2.0.{i}:8080")))
        .collect();
    new.insert(key("s1"), big);
    let plan = sync_plan(Some(&old), 64, &new, MARK);
    assert_eq!(plan.picks_upto, 70);
    let summary = summary(&plan.commands);
    assert_eq!(
        summary[..2],
        ["add table orchestra", "delete table orchestra"]
    );
    assert!(
        summary.iter().any(|s| s == "add rule pick-70"),
        "{summary:#?}"
    );
    // Within the chains there are, a change stays incremental.
    let again = sync_plan(Some(&new), 70, &old, MARK);
    assert_eq!(again.picks_upto, 70);
    assert!(!summary_has_table(&again.commands));
}

fn summary_has_table(commands: &[String]) -> bool {
    commands.iter().any(|c| c.contains(" table "))
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
    let plan = sync_plan(Some(&old), 64, &new, MARK);
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
    let plan = sync_plan(Some(&old), 64, &ServiceTable::new(), MARK);
    assert_eq!(plan.stale.len(), 2);
}

#[test]
fn a_service_losing_its_endpoints_moves_to_the_reject_map_and_back() {
    let mut web = entry("10.96.0.10:80", Protocol::Tcp, &["10.1.0.1:8080"]);
    web.node_port = Some(30080);
    let with: ServiceTable = [(key("web"), web.clone())].into_iter().collect();
    web.endpoints.clear();
    let without: ServiceTable = [(key("web"), web.clone())].into_iter().collect();
    let plan_empty = sync_plan(Some(&with), 64, &without, MARK);
    // Its picks are no longer used: their sets go, with their elements.
    assert_eq!(
        summary(&plan_empty.commands),
        [
            "delete element endpoints x1",
            "delete element hairpin x1",
            "delete element nodeport-endpoints x1",
            "flush chain services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add element no-endpoint-nodeports x1",
            "add element no-endpoint-services x1",
            "delete set np-pick-1",
            "delete set pick-1",
        ]
    );
    let plan_back = sync_plan(Some(&without), 64, &with, MARK);
    assert_eq!(
        summary(&plan_back.commands),
        [
            "add set np-pick-1",
            "add set pick-1",
            "delete element no-endpoint-nodeports x1",
            "delete element no-endpoint-services x1",
            "flush chain services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add rule services",
            "add element endpoints x1",
            "add element hairpin x1",
            "add element nodeport-endpoints x1",
            "add element np-pick-1 x1",
            "add element pick-1 x1",
        ]
    );
    let script = script(&plan_back.commands);
    assert!(
        script.contains(
            "add element inet orchestra nodeport-endpoints { tcp . 30080 . 0 : 10.1.0.1 . 8080 }\n"
        ),
        "{script}"
    );
}

#[test]
fn a_frontend_moving_between_services_is_rewritten_not_recreated() {
    let mut a = entry("10.96.0.10:80", Protocol::Tcp, &["10.1.0.1:8080"]);
    a.affinity = Affinity::ClientIp {
        timeout: Duration::from_secs(60),
    };
    let mut b = a.clone();
    b.endpoints = vec![addr("10.1.0.2:8080")];
    let old: ServiceTable = [(key("a"), a)].into_iter().collect();
    let new: ServiceTable = [(key("b"), b)].into_iter().collect();
    let summary = summary(&sync_plan(Some(&old), 64, &new, MARK).commands);
    assert!(
        !summary
            .iter()
            .any(|s| s == "delete chain svc-10.96.0.10/tcp/80"
                || s == "add chain svc-10.96.0.10/tcp/80"
                || s.starts_with("delete element service-ips")),
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
    let created = summary(&sync_plan(Some(&ServiceTable::new()), 64, &first, MARK).commands);
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
    let changed = summary(&sync_plan(Some(&first), 64, &second, MARK).commands);
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
fn ipv6_services_use_the_ipv6_maps_and_dnat() {
    let mut sticky = entry("[fd00:96::11]:80", Protocol::Tcp, &["[fd00:1::2]:8080"]);
    sticky.affinity = Affinity::ClientIp {
        timeout: Duration::from_secs(60),
    };
    let table: ServiceTable = [
        (
            key("v6"),
            entry("[fd00:96::10]:80", Protocol::Tcp, &["[fd00:1::1]:8080"]),
        ),
        (key("sticky"), sticky),
    ]
    .into_iter()
    .collect();
    validate(&table).unwrap();
    let plan = sync_plan(Some(&ServiceTable::new()), 64, &table, MARK);
    let script = script(&plan.commands);
    for line in [
        "add rule inet orchestra services ip6 daddr . meta l4proto . th dport @pick6-1 goto pick-1\n",
        "add element inet orchestra endpoints6 { fd00:96::10 . tcp . 80 . 0 : fd00:1::1 . 8080 }\n",
        "add element inet orchestra hairpin6 { fd00:1::1 . fd00:96::10 . tcp . 80 }\n",
        "add element inet orchestra service-ips6 { fd00:96::11 . tcp . 80 : goto svc-fd00_96__11/tcp/80 }\n",
        "add rule inet orchestra ep-fd00_96__11/tcp/80-fd00_1__2/8080 meta l4proto tcp dnat ip6 to [fd00:1::2]:8080\n",
    ] {
        assert!(script.contains(line), "{line} missing from {script}");
    }
}
