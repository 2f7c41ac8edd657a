//! System tests of `NftablesProxy`, only inside network namespaces each test creates: a
//! client namespace and endpoint namespaces joined by veth pairs to a node namespace whose
//! nftables the proxy programs (`nsenter --net=/run/netns/NODE nft ...`). The host's own
//! ruleset is never touched.
//!
//! They need root, `ip` (iproute2), `nft` (nftables) and `conntrack`; without them each test
//! prints why and passes, unless `ORCHESTRA_SYSTEM_TESTS=1`, where that is a failure.

mod netns;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use netns::Topology;
use orchestra_api::resources::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service, ServicePort, ServiceSpec,
};
use orchestra_api::{Client, IntOrString, LocalClient, ObjectMeta};
use orchestra_mesh::nftables::{NftError, NftablesProxy, NftablesProxyConfig};
use orchestra_mesh::{
    Affinity, FollowerConfig, Protocol, ProxyError, ProxyFollower, ServiceEntry, ServiceKey,
    ServiceProxy, ServiceTable,
};
use orchestra_store::MemStore;

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("default", name, "")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn service(
    cluster: &str,
    protocol: Protocol,
    node_port: Option<u16>,
    eps: &[SocketAddr],
) -> ServiceEntry {
    ServiceEntry {
        cluster: addr(cluster),
        node_port,
        protocol,
        affinity: Affinity::None,
        endpoints: eps.to_vec(),
    }
}

fn proxy(topo: &Topology) -> NftablesProxy {
    NftablesProxy::new(NftablesProxyConfig::in_netns(&topo.node))
}

/// Pearson's chi-square statistic of `counts` against a uniform spread.
fn chi_square(counts: &[u32]) -> f64 {
    let total: u32 = counts.iter().sum();
    let expected = f64::from(total) / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (f64::from(c) - expected).powi(2) / expected)
        .sum()
}

#[tokio::test]
async fn tcp_and_udp_reach_endpoints_through_cluster_ip_and_node_port_evenly() {
    let Some(topo) = Topology::new("spread", 3) else {
        return;
    };
    let proxy = proxy(&topo);
    let tcp: Vec<SocketAddr> = topo.endpoints.iter().map(|e| e.tcp).collect();
    let udp: Vec<SocketAddr> = topo.endpoints.iter().map(|e| e.udp).collect();
    let table: ServiceTable = [
        (
            key("web"),
            service("10.96.0.10:80", Protocol::Tcp, Some(30080), &tcp),
        ),
        (
            key("dns"),
            service("10.96.0.10:53", Protocol::Udp, Some(30053), &udp),
        ),
    ]
    .into_iter()
    .collect();
    proxy.apply(&table).await.unwrap();

    let node = topo.node_addr;
    let client = topo.client();
    let names = topo.endpoint_names();
    let (tcp_counts, node_tcp, udp_cluster, udp_node) = tokio::task::spawn_blocking(move || {
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..300 {
            let name = client
                .tcp(addr("10.96.0.10:80"))
                .expect("TCP to the ClusterIP");
            *counts.entry(name).or_default() += 1;
        }
        let node_tcp = client
            .tcp(SocketAddr::new(node, 30080))
            .expect("TCP to the NodePort");
        let udp_cluster = client
            .udp(addr("10.96.0.10:53"))
            .expect("UDP to the ClusterIP");
        let udp_node = client
            .udp(SocketAddr::new(node, 30053))
            .expect("UDP to the NodePort");
        (counts, node_tcp, udp_cluster, udp_node)
    })
    .await
    .unwrap();
    for answer in [&node_tcp, &udp_cluster, &udp_node] {
        assert!(names.contains(answer), "{answer} is not an endpoint");
    }
    assert_eq!(
        tcp_counts.len(),
        3,
        "all three endpoints answer: {tcp_counts:?}"
    );
    let counts: Vec<u32> = tcp_counts.values().copied().collect();
    // 2 degrees of freedom: P(chi2 > 18.4) = 1e-4 for a uniform choice.
    let chi2 = chi_square(&counts);
    assert!(
        chi2 < 18.4,
        "spread {tcp_counts:?} is not uniform (chi2 = {chi2:.1})"
    );
}

#[tokio::test]
async fn client_ip_affinity_sticks_and_expires() {
    let Some(topo) = Topology::new("affinity", 3) else {
        return;
    };
    let proxy = proxy(&topo);
    let tcp: Vec<SocketAddr> = topo.endpoints.iter().map(|e| e.tcp).collect();
    let mut web = service("10.96.0.11:80", Protocol::Tcp, None, &tcp);
    web.affinity = Affinity::ClientIp {
        timeout: Duration::from_secs(2),
    };
    proxy
        .apply(&[(key("web"), web)].into_iter().collect())
        .await
        .unwrap();
    let client = topo.client();
    let answers = tokio::task::spawn_blocking(move || {
        (0..30)
            .map(|_| {
                client
                    .tcp(addr("10.96.0.11:80"))
                    .expect("TCP to the ClusterIP")
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    assert!(
        answers.iter().all(|a| a == &answers[0]),
        "not sticky: {answers:?}"
    );
    // The client is recorded in its endpoint's affinity set, with the 2 s timeout ...
    let members = topo.affinity_members();
    assert_eq!(members, [topo.client_addr.to_string()], "{members:?}");
    // ... and forgotten once it has been idle for longer: the kernel expires the element.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    assert!(topo.affinity_members().is_empty());
}

#[tokio::test]
async fn a_service_without_endpoints_refuses_at_once() {
    let Some(topo) = Topology::new("reject", 1) else {
        return;
    };
    let proxy = proxy(&topo);
    let table: ServiceTable = [
        (
            key("tcp"),
            service("10.96.0.12:80", Protocol::Tcp, Some(30081), &[]),
        ),
        (
            key("udp"),
            service("10.96.0.12:53", Protocol::Udp, None, &[]),
        ),
    ]
    .into_iter()
    .collect();
    proxy.apply(&table).await.unwrap();
    let node = topo.node_addr;
    let client = topo.client();
    let (cluster, node_port, udp) = tokio::task::spawn_blocking(move || {
        (
            client.tcp(addr("10.96.0.12:80")),
            client.tcp(SocketAddr::new(node, 30081)),
            client.udp(addr("10.96.0.12:53")),
        )
    })
    .await
    .unwrap();
    for result in [cluster, node_port] {
        let err = result.expect_err("nothing may answer");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
    }
    // UDP is rejected with an ICMP port unreachable, which the kernel rate-limits and which
    // did not always reach the client socket in these namespaces: the datagram must simply
    // not be answered.
    let err = udp.expect_err("nothing may answer over UDP");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
        ),
        "{err}"
    );
}

#[tokio::test]
async fn removing_an_endpoint_stops_new_traffic_and_flushes_its_udp_flows() {
    let Some(topo) = Topology::new("remove", 2) else {
        return;
    };
    let proxy = proxy(&topo);
    let (a, b) = (&topo.endpoints[0], &topo.endpoints[1]);
    let only_b: ServiceTable = [
        (
            key("web"),
            service("10.96.0.13:80", Protocol::Tcp, None, &[b.tcp]),
        ),
        (
            key("dns"),
            service("10.96.0.13:53", Protocol::Udp, Some(30054), &[b.udp]),
        ),
    ]
    .into_iter()
    .collect();
    proxy.apply(&only_b).await.unwrap();
    // One UDP flow (one client socket) that conntrack pins to b.
    let client = topo.client();
    let flow = client.udp_flow(addr("10.96.0.13:53"));
    let first = tokio::task::spawn_blocking({
        let flow = flow.try_clone().unwrap();
        move || netns::udp_exchange(&flow)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(first, b.name);
    assert_eq!(topo.udp_flows_to(b.udp.ip()), 1, "the flow is tracked");

    let only_a: ServiceTable = [
        (
            key("web"),
            service("10.96.0.13:80", Protocol::Tcp, None, &[a.tcp]),
        ),
        (
            key("dns"),
            service("10.96.0.13:53", Protocol::Udp, Some(30054), &[a.udp]),
        ),
    ]
    .into_iter()
    .collect();
    let report = proxy.sync(&only_a).await.unwrap();
    assert_eq!(report.flushed_flows, 1, "{report:?}");
    assert_eq!(topo.udp_flows_to(b.udp.ip()), 0);
    // The same flow now goes to a (without the flush it would stick to b, which still runs).
    let (again, tcp) = tokio::task::spawn_blocking(move || {
        let again = netns::udp_exchange(&flow);
        let tcp: Vec<_> = (0..20).map(|_| client.tcp(addr("10.96.0.13:80"))).collect();
        (again, tcp)
    })
    .await
    .unwrap();
    assert_eq!(again.unwrap(), a.name);
    for answer in tcp {
        assert_eq!(answer.unwrap(), a.name);
    }
}

#[tokio::test]
async fn a_change_to_one_service_among_thousands_touches_only_its_elements() {
    let Some(topo) = Topology::new("handles", 2) else {
        return;
    };
    let proxy = proxy(&topo);
    let eps: Vec<SocketAddr> = topo.endpoints.iter().map(|e| e.tcp).collect();
    let mut table: ServiceTable = (0..1_000u32)
        .map(|i| {
            let cluster = format!("10.96.{}.{}:80", 10 + i / 250, i % 250 + 1);
            // Service 0 has one endpoint, so that the change below uses a count in use.
            let eps = if i == 0 { &eps[..1] } else { &eps[..] };
            (
                key(&format!("s{i}")),
                service(&cluster, Protocol::Tcp, None, eps),
            )
        })
        .collect();
    proxy.apply(&table).await.unwrap();
    let handles_before = topo.rule_handles();
    let elements_before = topo.elements("endpoints");
    assert_eq!(elements_before.len(), 1 + 999 * 2);
    let mut changed = table.get(&key("s500")).unwrap().clone();
    changed.endpoints.truncate(1);
    table.insert(key("s500"), changed.clone());
    let report = proxy.sync(&table).await.unwrap();
    assert_eq!(report.changed_ports, 1);
    assert_eq!(
        topo.rule_handles(),
        handles_before,
        "a one-endpoint change rewrote rules"
    );
    let elements_after = topo.elements("endpoints");
    let cluster_ip = format!("\"{}\"", changed.cluster.ip());
    let others = |elements: &[String]| -> Vec<String> {
        let mut others: Vec<String> = elements
            .iter()
            .filter(|e| !e.contains(&cluster_ip))
            .cloned()
            .collect();
        others.sort();
        others
    };
    assert_eq!(others(&elements_before).len(), 998 * 2 + 1);
    assert_eq!(
        others(&elements_before),
        others(&elements_after),
        "endpoints of unchanged services were rewritten"
    );
    assert_eq!(elements_after.len(), elements_before.len() - 1);
    // And the new rules route, to the one endpoint left.
    let client = topo.client();
    let cluster = changed.cluster;
    for _ in 0..5 {
        let client = client.clone();
        let answer = tokio::task::spawn_blocking(move || client.tcp(cluster))
            .await
            .unwrap();
        assert_eq!(answer.unwrap(), topo.endpoints[0].name);
    }
}

#[tokio::test]
async fn an_endpoint_count_new_to_the_table_routes_after_an_incremental_sync() {
    let Some(topo) = Topology::new("newcount", 2) else {
        return;
    };
    let proxy = proxy(&topo);
    let (a, b) = (&topo.endpoints[0], &topo.endpoints[1]);
    let both: ServiceTable = [
        (
            key("web"),
            service("10.96.0.16:80", Protocol::Tcp, Some(30086), &[a.tcp, b.tcp]),
        ),
        (
            key("dns"),
            service("10.96.0.16:53", Protocol::Udp, Some(30056), &[a.udp, b.udp]),
        ),
    ]
    .into_iter()
    .collect();
    proxy.apply(&both).await.unwrap();
    // One endpoint each: a count no service had, so this sync adds its pick chains and sets
    // (rules that refer to the endpoint maps nft reads back from the kernel).
    let only_a: ServiceTable = [
        (
            key("web"),
            service("10.96.0.16:80", Protocol::Tcp, Some(30086), &[a.tcp]),
        ),
        (
            key("dns"),
            service("10.96.0.16:53", Protocol::Udp, Some(30056), &[a.udp]),
        ),
    ]
    .into_iter()
    .collect();
    let report = proxy.sync(&only_a).await.unwrap();
    assert!(
        report.commands > 4,
        "the pick chains were added: {report:?}"
    );
    let client = topo.client();
    let node = topo.node_addr;
    let answers = tokio::task::spawn_blocking(move || {
        let mut answers = Vec::new();
        for _ in 0..10 {
            answers.push(client.tcp(addr("10.96.0.16:80")));
            answers.push(client.udp(addr("10.96.0.16:53")));
            answers.push(client.tcp(SocketAddr::new(node, 30086)));
            answers.push(client.udp(SocketAddr::new(node, 30056)));
        }
        answers
    })
    .await
    .unwrap();
    for answer in answers {
        assert_eq!(answer.unwrap(), a.name);
    }
}

#[tokio::test]
async fn ipv6_and_affinity_services_are_accepted_by_nft() {
    let Some(topo) = Topology::new("v6", 1) else {
        return;
    };
    let proxy = proxy(&topo);
    let mut sticky = service(
        "[fd00:96::11]:53",
        Protocol::Udp,
        Some(30053),
        &[addr("[fd00:1::2]:5353"), addr("[fd00:1::3]:5353")],
    );
    sticky.affinity = Affinity::ClientIp {
        timeout: Duration::from_secs(30),
    };
    let mut table: ServiceTable = [
        (
            key("v6"),
            service(
                "[fd00:96::10]:80",
                Protocol::Tcp,
                Some(30080),
                &[addr("[fd00:1::1]:8080")],
            ),
        ),
        (key("sticky"), sticky),
        (
            key("empty6"),
            service("[fd00:96::12]:80", Protocol::Tcp, None, &[]),
        ),
    ]
    .into_iter()
    .collect();
    proxy.apply(&table).await.unwrap();
    let ruleset = topo.ruleset_json();
    assert!(ruleset.contains("svc-fd00_96__11/udp/53"), "{ruleset}");
    assert!(ruleset.contains("fd00:1::1"), "{ruleset}");
    // And a change to each, then their removal.
    table.remove(&key("v6"));
    let mut sticky = table.get(&key("sticky")).unwrap().clone();
    sticky.endpoints.pop();
    table.insert(key("sticky"), sticky);
    proxy.apply(&table).await.unwrap();
    proxy.apply(&ServiceTable::new()).await.unwrap();
    let ruleset = topo.ruleset_json();
    assert!(!ruleset.contains("fd00"), "{ruleset}");
}

#[tokio::test]
async fn bad_input_is_refused_and_the_rules_in_force_stay() {
    let Some(topo) = Topology::new("badinput", 1) else {
        return;
    };
    let proxy = proxy(&topo);
    let ep = topo.endpoints[0].tcp;
    let good: ServiceTable = [(
        key("web"),
        service("10.96.0.14:80", Protocol::Tcp, Some(30082), &[ep]),
    )]
    .into_iter()
    .collect();
    proxy.apply(&good).await.unwrap();
    let before = topo.ruleset_json();

    let mut conflicting = good.clone();
    conflicting.insert(
        key("other"),
        service("10.96.0.15:80", Protocol::Tcp, Some(30082), &[ep]),
    );
    let err = proxy.apply(&conflicting).await.unwrap_err();
    assert!(
        matches!(err, ProxyError::Nftables(NftError::ConflictingPorts { .. })),
        "{err:?}"
    );
    let mut invalid = good.clone();
    invalid.insert(
        key("zero"),
        service("0.0.0.0:80", Protocol::Tcp, None, &[ep]),
    );
    let err = proxy.apply(&invalid).await.unwrap_err();
    assert!(err.to_string().contains("default/zero"), "{err}");
    assert_eq!(
        topo.ruleset_json(),
        before,
        "a refused table changed the rules"
    );

    let client = topo.client();
    let answer = tokio::task::spawn_blocking(move || client.tcp(addr("10.96.0.14:80")))
        .await
        .unwrap();
    assert_eq!(answer.unwrap(), topo.endpoints[0].name);
}

#[tokio::test]
async fn the_first_sync_takes_over_its_own_table_and_leaves_others_alone() {
    let Some(topo) = Topology::new("takeover", 1) else {
        return;
    };
    topo.nft("add table inet orchestra");
    topo.nft("add chain inet orchestra left-by-a-previous-run");
    topo.nft("add table inet someone-else");
    topo.nft("add chain inet someone-else theirs");
    let proxy = proxy(&topo);
    proxy.apply(&ServiceTable::new()).await.unwrap();
    let tables = topo.ruleset_json();
    assert!(!tables.contains("left-by-a-previous-run"), "{tables}");
    assert!(
        tables.contains("\"theirs\""),
        "another table was touched: {tables}"
    );
    assert!(tables.contains("nat-prerouting"), "{tables}");
    // The same table again sends nothing.
    let report = proxy.sync(&ServiceTable::new()).await.unwrap();
    assert_eq!(report.commands, 0);
}

#[tokio::test]
async fn a_pod_calling_its_own_service_is_balanced_back_to_itself() {
    let Some(topo) = Topology::new("hairpin", 2) else {
        return;
    };
    let proxy = proxy(&topo);
    let (a, b) = (&topo.endpoints[0], &topo.endpoints[1]);
    let table: ServiceTable = [
        // Only a behind it: a's call must come back to a.
        (
            key("self-tcp"),
            service("10.96.0.20:80", Protocol::Tcp, None, &[a.tcp]),
        ),
        (
            key("self-udp"),
            service("10.96.0.20:53", Protocol::Udp, None, &[a.udp]),
        ),
        // a and b behind it: a's calls reach both, itself included.
        (
            key("both"),
            service("10.96.0.21:80", Protocol::Tcp, None, &[a.tcp, b.tcp]),
        ),
        // ClientIP affinity takes the chain-per-endpoint path, which marks hairpin itself.
        (
            key("sticky"),
            ServiceEntry {
                affinity: Affinity::ClientIp {
                    timeout: Duration::from_secs(60),
                },
                ..service("10.96.0.22:80", Protocol::Tcp, None, &[a.tcp])
            },
        ),
    ]
    .into_iter()
    .collect();
    proxy.apply(&table).await.unwrap();
    // Without masquerade the endpoint would see its own address as the source, answer
    // itself directly, and the caller's connection to the ClusterIP would never complete.
    let pod = topo.endpoint_client(0);
    let (own_tcp, own_udp, sticky, spread) = tokio::task::spawn_blocking(move || {
        let own_tcp = pod.tcp(addr("10.96.0.20:80"));
        let own_udp = pod.udp(addr("10.96.0.20:53"));
        let sticky = pod.tcp(addr("10.96.0.22:80"));
        let mut spread: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..40 {
            let name = pod
                .tcp(addr("10.96.0.21:80"))
                .expect("TCP from an endpoint to its service's ClusterIP");
            *spread.entry(name).or_default() += 1;
        }
        (own_tcp, own_udp, sticky, spread)
    })
    .await
    .unwrap();
    assert_eq!(own_tcp.expect("hairpin TCP"), a.name);
    assert_eq!(own_udp.expect("hairpin UDP"), a.name);
    assert_eq!(sticky.expect("hairpin TCP with affinity"), a.name);
    // 40 random picks of 2 all landing on one: probability 2^-39.
    assert_eq!(
        spread.keys().cloned().collect::<Vec<_>>(),
        vec![a.name.clone(), b.name.clone()],
        "{spread:?}"
    );
}

#[tokio::test]
async fn a_sync_refused_by_nft_is_reported_and_the_next_one_restores_the_table() {
    let Some(topo) = Topology::new("recover", 2) else {
        return;
    };
    let proxy = proxy(&topo);
    let (a, b) = (&topo.endpoints[0], &topo.endpoints[1]);
    let first: ServiceTable = [(
        key("web"),
        service("10.96.0.30:80", Protocol::Tcp, None, &[a.tcp, b.tcp]),
    )]
    .into_iter()
    .collect();
    proxy.apply(&first).await.unwrap();
    // Someone deletes the table behind the proxy's back: the incremental batch (through the
    // long-lived nft) refers to what is gone, and nft refuses it.
    topo.nft("delete table inet orchestra");
    let only_a: ServiceTable = [(
        key("web"),
        service("10.96.0.30:80", Protocol::Tcp, None, &[a.tcp]),
    )]
    .into_iter()
    .collect();
    let err = proxy.sync(&only_a).await.unwrap_err();
    assert!(
        matches!(&err, NftError::Nft { detail, .. } if detail.contains("Error")),
        "{err}"
    );
    // The next sync takes the table over and routes again.
    let report = proxy.sync(&only_a).await.unwrap();
    assert!(report.commands > 0, "{report:?}");
    let client = topo.client();
    let answers = tokio::task::spawn_blocking(move || {
        (0..5)
            .map(|_| client.tcp(addr("10.96.0.30:80")))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for answer in answers {
        assert_eq!(answer.unwrap(), a.name);
    }
}

/// A Service of one unnamed port (80 to 8080) on ClusterIP `ip`, for the API.
fn api_service(name: &str, ip: &str) -> Service {
    Service {
        metadata: ObjectMeta {
            name: name.to_string(),
            namespace: "default".to_string(),
            ..ObjectMeta::default()
        },
        spec: ServiceSpec {
            cluster_ip: ip.to_string(),
            ports: vec![ServicePort {
                port: 80,
                target_port: Some(IntOrString::Int(8080)),
                ..ServicePort::default()
            }],
            ..ServiceSpec::default()
        },
        status: None,
    }
}

/// The Endpoints of service `name`: the TCP addresses of `eps` (all on port 8080).
fn api_endpoints(name: &str, eps: &[netns::Endpoint]) -> Endpoints {
    Endpoints {
        metadata: ObjectMeta {
            name: name.to_string(),
            namespace: "default".to_string(),
            ..ObjectMeta::default()
        },
        subsets: vec![EndpointSubset {
            addresses: eps
                .iter()
                .map(|e| EndpointAddress {
                    ip: e.tcp.ip().to_string(),
                    ..EndpointAddress::default()
                })
                .collect(),
            not_ready_addresses: vec![],
            ports: vec![EndpointPort {
                port: 8080,
                ..EndpointPort::default()
            }],
        }],
    }
}

/// The agent's path: Services and Endpoints written through the API, followed by a
/// `ProxyFollower`, which hands the proxy the changed service alone.
#[tokio::test]
async fn an_endpoints_change_through_the_follower_touches_only_its_elements() {
    let Some(topo) = Topology::new("follow", 2) else {
        return;
    };
    let client = LocalClient::new(MemStore::new());
    for i in 0..1_000u32 {
        let name = format!("s{i}");
        let ip = format!("127.2.{}.{}", 10 + i / 250, i % 250 + 1);
        client.create(&api_service(&name, &ip)).await.unwrap();
        // Service 0 has one endpoint, so that the change below uses a count in use.
        let eps = if i == 0 {
            &topo.endpoints[..1]
        } else {
            &topo.endpoints[..]
        };
        client.create(&api_endpoints(&name, eps)).await.unwrap();
    }
    let proxy = Arc::new(proxy(&topo));
    let follower = ProxyFollower::new(
        client.clone(),
        Arc::clone(&proxy),
        FollowerConfig {
            debounce: Duration::from_millis(10),
            ..FollowerConfig::default()
        },
    );
    let mut applied = follower.applied();
    let task = tokio::spawn(follower.run());
    let patience = Duration::from_secs(120);
    tokio::time::timeout(patience, applied.wait_for(|t| t.len() == 1_000))
        .await
        .expect("the first apply in time")
        .unwrap();
    let handles_before = topo.rule_handles();
    let elements_before = topo.elements("endpoints");
    assert_eq!(elements_before.len(), 1 + 999 * 2);

    let mut changed: Endpoints = client.get("default", "s500").await.unwrap();
    changed.subsets = api_endpoints("s500", &topo.endpoints[..1]).subsets;
    client.update(&changed).await.unwrap();
    let key = ServiceKey::new("default", "s500", "");
    tokio::time::timeout(
        patience,
        applied.wait_for(|t| t.get(&key).is_some_and(|e| e.endpoints.len() == 1)),
    )
    .await
    .expect("the change applied in time")
    .unwrap();
    task.abort();
    assert_eq!(
        topo.rule_handles(),
        handles_before,
        "a one-endpoint change rewrote rules"
    );
    let elements_after = topo.elements("endpoints");
    let cluster_ip = "\"127.2.12.1\"";
    let others = |elements: &[String]| -> Vec<String> {
        let mut others: Vec<String> = elements
            .iter()
            .filter(|e| !e.contains(cluster_ip))
            .cloned()
            .collect();
        others.sort();
        others
    };
    assert_eq!(others(&elements_before).len(), 998 * 2 + 1);
    assert_eq!(
        others(&elements_before),
        others(&elements_after),
        "endpoints of unchanged services were rewritten"
    );
    assert_eq!(elements_after.len(), elements_before.len() - 1);
}
