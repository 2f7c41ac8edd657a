//! [`build_table`]: Services and Endpoints in, a [`ServiceTable`] out, with no I/O.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use orchestra_api::IntOrString;
use orchestra_api::resources::{
    EndpointSubset, Endpoints, Protocol as ApiProtocol, Service, ServicePort, ServiceType,
    SessionAffinity,
};

use super::{
    Affinity, DEFAULT_AFFINITY_TIMEOUT, EndpointIdentities, PodAccounts, Protocol,
    ServiceAccountRef, ServiceEntry, ServiceKey, ServiceTable,
};

/// Something [`build_table`] skipped, and why (for logs and metrics: the rest of the table is
/// still built).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TableWarning {
    /// The service's `clusterIP` is not an IP address.
    #[error("service {namespace}/{name}: clusterIP {value:?} is not an IP address; skipped")]
    BadClusterIp {
        /// The service's namespace.
        namespace: String,
        /// The service's name.
        name: String,
        /// The value as written.
        value: String,
    },
    /// A service port the proxy cannot serve (out of range, or SCTP).
    #[error("service port {key}: {reason}; skipped")]
    BadPort {
        /// The service port.
        key: ServiceKey,
        /// Why.
        reason: String,
    },
    /// An endpoint address or port that cannot be routed to.
    #[error("endpoints of {key}: {reason}; that backend is skipped")]
    BadEndpoint {
        /// The service port.
        key: ServiceKey,
        /// Why.
        reason: String,
    },
}

/// The result of [`build_table`]: the table, and what it had to leave out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuiltTable {
    /// The service ports that can be proxied.
    pub table: ServiceTable,
    /// Services, ports and backends left out, with the reason.
    pub warnings: Vec<TableWarning>,
}

/// Builds the service table from every Service and Endpoints object.
///
/// - Services without a cluster IP (empty: not allocated yet) or with `clusterIP: None`
///   (headless) are skipped: there is no address to proxy.
/// - One entry per service port; the NodePort is kept for `type: NodePort` services.
/// - Backends are the ready addresses (`subsets[].addresses`) of the Endpoints object of
///   the same namespace and name; `notReadyAddresses` are never routed to.
/// - A backend's port is resolved per subset: the subset port named like the service port
///   (what the endpoints controller writes, with `targetPort` already resolved per pod);
///   failing that, a subset port named like a named `targetPort`; failing that, a numeric
///   `targetPort` (or the service port when it is absent). A subset where a named
///   `targetPort` cannot be resolved contributes no backend.
pub fn build_table<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    endpoints: impl IntoIterator<Item = &'a Endpoints>,
) -> BuiltTable {
    build(services, endpoints, None)
}

/// [`build_table`], and each endpoint's ServiceAccount ([`ServiceTable::identities`]): the
/// account of the pod its address's `targetRef` names, looked up in `accounts` (see
/// [`PodAccounts::lookup`]). An endpoint without a known account (no `targetRef`, a pod
/// not in `accounts`, a pod of another uid) has no identity in the table, and neither has
/// an address that two subsets of one port give to pods of different accounts.
pub fn build_table_with_identities<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    endpoints: impl IntoIterator<Item = &'a Endpoints>,
    accounts: &PodAccounts,
) -> BuiltTable {
    build(services, endpoints, Some(accounts))
}

fn build<'a>(
    services: impl IntoIterator<Item = &'a Service>,
    endpoints: impl IntoIterator<Item = &'a Endpoints>,
    accounts: Option<&PodAccounts>,
) -> BuiltTable {
    let endpoints: HashMap<(&str, &str), &Endpoints> = endpoints
        .into_iter()
        .map(|e| ((e.metadata.namespace.as_str(), e.metadata.name.as_str()), e))
        .collect();
    let mut built = BuiltTable::default();
    for service in services {
        let meta = &service.metadata;
        let cluster_ip = service.spec.cluster_ip.trim();
        if cluster_ip.is_empty() || cluster_ip == "None" {
            continue;
        }
        let Ok(ip) = cluster_ip.parse::<IpAddr>() else {
            built.warnings.push(TableWarning::BadClusterIp {
                namespace: meta.namespace.clone(),
                name: meta.name.clone(),
                value: service.spec.cluster_ip.clone(),
            });
            continue;
        };
        let affinity = affinity_of(service);
        let node_ports = service.spec.type_ == Some(ServiceType::NodePort);
        let subsets = endpoints
            .get(&(meta.namespace.as_str(), meta.name.as_str()))
            .map(|e| e.subsets.as_slice())
            .unwrap_or_default();
        let identify = accounts.map(|accounts| (accounts, meta.namespace.as_str()));
        for port in &service.spec.ports {
            let key = ServiceKey::new(&meta.namespace, &meta.name, &port.name);
            let (protocol, number) = match frontend(port) {
                Ok(frontend) => frontend,
                Err(reason) => {
                    built.warnings.push(TableWarning::BadPort { key, reason });
                    continue;
                }
            };
            let node_port = if node_ports {
                port.node_port
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p != 0)
            } else {
                None
            };
            let (endpoints, identities) =
                backends(&key, port, protocol, subsets, identify, &mut built.warnings);
            built.table.insert_with_identities(
                key,
                ServiceEntry {
                    cluster: SocketAddr::new(ip, number),
                    node_port,
                    protocol,
                    affinity,
                    endpoints,
                },
                identities,
            );
        }
    }
    built
}

/// The session affinity of a service, with Kubernetes' default timeout.
fn affinity_of(service: &Service) -> Affinity {
    match service.spec.session_affinity {
        Some(SessionAffinity::ClientIP) => {
            let seconds = service
                .spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|s| u64::try_from(s).ok())
                .filter(|s| *s > 0);
            Affinity::ClientIp {
                timeout: seconds.map_or(DEFAULT_AFFINITY_TIMEOUT, Duration::from_secs),
            }
        }
        Some(SessionAffinity::None) | None => Affinity::None,
    }
}

/// A service port's protocol and number, or why the proxy cannot serve it.
fn frontend(port: &ServicePort) -> Result<(Protocol, u16), String> {
    let protocol = protocol_of(port.protocol)?;
    let number = u16::try_from(port.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("port {} is not in 1-65535", port.port))?;
    Ok((protocol, number))
}

/// The proxy's protocol for the API's (TCP when absent).
fn protocol_of(protocol: Option<ApiProtocol>) -> Result<Protocol, String> {
    match protocol {
        None | Some(ApiProtocol::Tcp) => Ok(Protocol::Tcp),
        Some(ApiProtocol::Udp) => Ok(Protocol::Udp),
        Some(ApiProtocol::Sctp) => Err("SCTP is not supported by the L4 proxy".to_string()),
    }
}

/// The ready backends of one service port, over every subset, and (with `identify`: the
/// pods' accounts and the Endpoints' namespace) the accounts of those whose pod is known.
fn backends(
    key: &ServiceKey,
    port: &ServicePort,
    protocol: Protocol,
    subsets: &[EndpointSubset],
    identify: Option<(&PodAccounts, &str)>,
    warnings: &mut Vec<TableWarning>,
) -> (Vec<SocketAddr>, EndpointIdentities) {
    let mut out = Vec::new();
    // Each address's account; `None` once two of its listings disagree (two pods of
    // different accounts, or a known pod and an unknown one): no single identity to expect.
    let mut accounts_seen: BTreeMap<SocketAddr, Option<ServiceAccountRef>> = BTreeMap::new();
    for subset in subsets {
        if subset.addresses.is_empty() {
            continue;
        }
        let Some(number) = target_port(port, protocol, subset) else {
            warnings.push(TableWarning::BadEndpoint {
                key: key.clone(),
                reason: format!(
                    "no subset port resolves targetPort {}",
                    port.target_port
                        .as_ref()
                        .map_or_else(|| port.port.to_string(), ToString::to_string)
                ),
            });
            continue;
        };
        for address in &subset.addresses {
            let Ok(ip) = address.ip.parse::<IpAddr>() else {
                warnings.push(TableWarning::BadEndpoint {
                    key: key.clone(),
                    reason: format!("address {:?} is not an IP address", address.ip),
                });
                continue;
            };
            let addr = SocketAddr::new(ip, number);
            out.push(addr);
            let Some((accounts, namespace)) = identify else {
                continue;
            };
            let account = address
                .target_ref
                .as_ref()
                .and_then(|target| accounts.lookup(target, namespace))
                .cloned();
            accounts_seen
                .entry(addr)
                .and_modify(|known| {
                    if *known != account {
                        *known = None;
                    }
                })
                .or_insert(account);
        }
    }
    let identities: EndpointIdentities = accounts_seen
        .into_iter()
        .filter_map(|(addr, account)| Some((addr, account?)))
        .collect();
    out.sort_unstable();
    out.dedup();
    (out, identities)
}

/// The backend port of one subset for a service port (see [`build_table`]).
fn target_port(port: &ServicePort, protocol: Protocol, subset: &EndpointSubset) -> Option<u16> {
    let same_protocol = |p: &&orchestra_api::resources::EndpointPort| {
        protocol_of(p.protocol).ok() == Some(protocol)
    };
    let by_name = |name: &str| {
        subset
            .ports
            .iter()
            .filter(same_protocol)
            .find(|p| p.name == name)
            .and_then(|p| u16::try_from(p.port).ok())
            .filter(|p| *p != 0)
    };
    // A single unnamed service port matches a single unnamed endpoint port by that rule too.
    if let Some(number) = by_name(&port.name) {
        return Some(number);
    }
    match &port.target_port {
        Some(IntOrString::String(name)) => by_name(name),
        Some(IntOrString::Int(n)) => u16::try_from(*n).ok().filter(|p| *p != 0),
        None => u16::try_from(port.port).ok().filter(|p| *p != 0),
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::resources::{
        ClientIpConfig, EndpointAddress, EndpointPort, ServiceSpec, SessionAffinityConfig,
    };
    use orchestra_api::{ObjectMeta, Resource};

    use super::*;

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: name.to_string(),
            namespace: "default".to_string(),
            ..ObjectMeta::default()
        }
    }

    fn service(name: &str, cluster_ip: &str, ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: meta(name),
            spec: ServiceSpec {
                cluster_ip: cluster_ip.to_string(),
                ports,
                ..ServiceSpec::default()
            },
            status: None,
        }
    }

    fn port(name: &str, port: i32, target: Option<IntOrString>) -> ServicePort {
        ServicePort {
            name: name.to_string(),
            port,
            target_port: target,
            ..ServicePort::default()
        }
    }

    fn address(ip: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.to_string(),
            ..EndpointAddress::default()
        }
    }

    fn endpoints(name: &str, subsets: Vec<EndpointSubset>) -> Endpoints {
        let mut e = Endpoints {
            metadata: meta(name),
            subsets,
        };
        e.default_fields();
        e
    }

    fn subset(ready: &[&str], not_ready: &[&str], ports: &[(&str, i32)]) -> EndpointSubset {
        EndpointSubset {
            addresses: ready.iter().map(|ip| address(ip)).collect(),
            not_ready_addresses: not_ready.iter().map(|ip| address(ip)).collect(),
            ports: ports
                .iter()
                .map(|(name, port)| EndpointPort {
                    name: name.to_string(),
                    port: *port,
                    ..EndpointPort::default()
                })
                .collect(),
        }
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ready_addresses_only_with_ports_resolved_by_endpoint_port_name() {
        let web = service(
            "web",
            "127.2.0.10",
            vec![
                port("http", 80, Some("http".into())),
                port("admin", 9000, Some(9001.into())),
            ],
        );
        let eps = endpoints(
            "web",
            vec![subset(
                &["10.0.0.2", "10.0.0.1"],
                &["10.0.0.3"],
                &[("http", 8080), ("admin", 9001)],
            )],
        );
        let built = build_table([&web], [&eps]);
        assert!(built.warnings.is_empty(), "{:?}", built.warnings);
        let http = built
            .table
            .get(&ServiceKey::new("default", "web", "http"))
            .unwrap();
        assert_eq!(http.cluster, sa("127.2.0.10:80"));
        assert_eq!(http.protocol, Protocol::Tcp);
        assert_eq!(http.affinity, Affinity::None);
        assert_eq!(http.node_port, None);
        assert_eq!(
            http.endpoints,
            vec![sa("10.0.0.1:8080"), sa("10.0.0.2:8080")]
        );
        let admin = built
            .table
            .get(&ServiceKey::new("default", "web", "admin"))
            .unwrap();
        assert_eq!(
            admin.endpoints,
            vec![sa("10.0.0.1:9001"), sa("10.0.0.2:9001")]
        );
    }

    #[test]
    fn numeric_target_port_is_used_when_no_endpoint_port_is_named_like_the_service_port() {
        let svc = service("db", "127.2.0.11", vec![port("", 5432, Some(6432.into()))]);
        let eps = endpoints("db", vec![subset(&["10.0.0.5"], &[], &[("other", 1)])]);
        let built = build_table([&svc], [&eps]);
        let entry = built
            .table
            .get(&ServiceKey::new("default", "db", ""))
            .unwrap();
        assert_eq!(entry.endpoints, vec![sa("10.0.0.5:6432")]);

        // No targetPort: the service port itself.
        let svc = service("db", "127.2.0.11", vec![port("pg", 5432, None)]);
        let eps = endpoints("db", vec![subset(&["10.0.0.5"], &[], &[])]);
        let built = build_table([&svc], [&eps]);
        let entry = built
            .table
            .get(&ServiceKey::new("default", "db", "pg"))
            .unwrap();
        assert_eq!(entry.endpoints, vec![sa("10.0.0.5:5432")]);
    }

    #[test]
    fn named_target_port_resolves_through_a_subset_port_of_that_name_or_skips_the_subset() {
        let svc = service(
            "web",
            "127.2.0.12",
            vec![port("web", 80, Some("http".into()))],
        );
        let eps = endpoints(
            "web",
            vec![
                subset(&["10.0.0.1"], &[], &[("http", 8080)]),
                subset(&["10.0.0.2"], &[], &[("metrics", 9090)]),
            ],
        );
        let built = build_table([&svc], [&eps]);
        let entry = built
            .table
            .get(&ServiceKey::new("default", "web", "web"))
            .unwrap();
        assert_eq!(entry.endpoints, vec![sa("10.0.0.1:8080")]);
        assert_eq!(built.warnings.len(), 1, "{:?}", built.warnings);
        assert!(matches!(
            built.warnings[0],
            TableWarning::BadEndpoint { .. }
        ));
    }

    #[test]
    fn headless_unallocated_and_malformed_services_are_skipped() {
        let headless = service("a", "None", vec![port("", 80, None)]);
        let unallocated = service("b", "", vec![port("", 80, None)]);
        let bad = service("c", "not-an-ip", vec![port("", 80, None)]);
        let sctp = {
            let mut s = service("d", "127.2.0.13", vec![port("s", 80, None)]);
            s.spec.ports[0].protocol = Some(ApiProtocol::Sctp);
            s
        };
        let built = build_table([&headless, &unallocated, &bad, &sctp], []);
        assert!(built.table.is_empty());
        assert_eq!(built.warnings.len(), 2, "{:?}", built.warnings);
        assert!(
            built.warnings[0].to_string().contains("not-an-ip"),
            "{}",
            built.warnings[0]
        );
        assert!(built.warnings[1].to_string().contains("SCTP"));
    }

    #[test]
    fn a_service_without_endpoints_has_an_entry_with_no_backends() {
        let svc = service("lonely", "127.2.0.14", vec![port("", 80, None)]);
        let eps = endpoints("lonely", vec![subset(&[], &["10.0.0.9"], &[("", 80)])]);
        let built = build_table([&svc], [&eps]);
        let entry = built
            .table
            .get(&ServiceKey::new("default", "lonely", ""))
            .unwrap();
        assert!(entry.endpoints.is_empty());
        let built = build_table([&svc], []);
        assert_eq!(built.table.len(), 1);
    }

    #[test]
    fn node_port_udp_and_client_ip_affinity_with_its_default_timeout() {
        let mut svc = service("dns", "127.2.0.15", vec![port("dns", 53, None)]);
        svc.spec.type_ = Some(ServiceType::NodePort);
        svc.spec.ports[0].protocol = Some(ApiProtocol::Udp);
        svc.spec.ports[0].node_port = Some(30053);
        svc.spec.session_affinity = Some(SessionAffinity::ClientIP);
        let built = build_table([&svc], []);
        let entry = built
            .table
            .get(&ServiceKey::new("default", "dns", "dns"))
            .unwrap();
        assert_eq!(entry.node_port, Some(30053));
        assert_eq!(entry.protocol, Protocol::Udp);
        assert_eq!(
            entry.affinity,
            Affinity::ClientIp {
                timeout: Duration::from_secs(10_800)
            }
        );

        svc.spec.session_affinity_config = Some(SessionAffinityConfig {
            client_ip: Some(ClientIpConfig {
                timeout_seconds: Some(60),
            }),
        });
        // A node port on a ClusterIP service is not opened.
        svc.spec.type_ = Some(ServiceType::ClusterIP);
        let built = build_table([&svc], []);
        let entry = built
            .table
            .get(&ServiceKey::new("default", "dns", "dns"))
            .unwrap();
        assert_eq!(
            entry.affinity,
            Affinity::ClientIp {
                timeout: Duration::from_secs(60)
            }
        );
        assert_eq!(entry.node_port, None);
    }

    #[test]
    fn endpoints_of_another_namespace_or_protocol_do_not_match() {
        let svc = service("web", "127.2.0.16", vec![port("http", 80, None)]);
        let mut other_ns = endpoints("web", vec![subset(&["10.0.0.1"], &[], &[("http", 81)])]);
        other_ns.metadata.namespace = "prod".to_string();
        let built = build_table([&svc], [&other_ns]);
        let entry = built
            .table
            .get(&ServiceKey::new("default", "web", "http"))
            .unwrap();
        assert!(entry.endpoints.is_empty());

        let mut udp = endpoints("web", vec![subset(&["10.0.0.1"], &[], &[("http", 81)])]);
        udp.subsets[0].ports[0].protocol = Some(ApiProtocol::Udp);
        let built = build_table([&svc], [&udp]);
        let entry = built
            .table
            .get(&ServiceKey::new("default", "web", "http"))
            .unwrap();
        // The UDP port is not the TCP service port's: the service port number is used.
        assert_eq!(entry.endpoints, vec![sa("10.0.0.1:80")]);
    }

    #[test]
    fn bad_endpoint_addresses_are_reported_and_skipped() {
        let svc = service("web", "127.2.0.17", vec![port("", 80, None)]);
        let eps = endpoints(
            "web",
            vec![subset(&["10.0.0.1", "nope"], &[], &[("", 8080)])],
        );
        let built = build_table([&svc], [&eps]);
        let entry = built
            .table
            .get(&ServiceKey::new("default", "web", ""))
            .unwrap();
        assert_eq!(entry.endpoints, vec![sa("10.0.0.1:8080")]);
        assert!(built.warnings[0].to_string().contains("\"nope\""));
    }

    fn pod_address(ip: &str, pod: &str, uid: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.to_string(),
            target_ref: Some(orchestra_api::resources::ObjectReference {
                kind: "Pod".to_string(),
                namespace: "default".to_string(),
                name: pod.to_string(),
                uid: uid.to_string(),
                ..Default::default()
            }),
            ..EndpointAddress::default()
        }
    }

    fn pod(name: &str, uid: &str, account: &str) -> orchestra_api::resources::Pod {
        let mut pod = orchestra_api::resources::Pod {
            metadata: meta(name),
            ..Default::default()
        };
        pod.metadata.uid = uid.to_string();
        pod.spec.service_account_name = account.to_string();
        pod
    }

    #[test]
    fn endpoints_get_the_account_of_the_pod_their_target_ref_names() {
        let web = service(
            "web",
            "127.2.0.10",
            vec![
                port("http", 80, None),
                port("admin", 9000, Some(9001.into())),
            ],
        );
        let mut eps = endpoints("web", vec![subset(&[], &[], &[("http", 8080)])]);
        eps.subsets[0].addresses = vec![
            pod_address("10.0.0.1", "web-1", "u1"),
            // A pod with no serviceAccountName: `default`.
            pod_address("10.0.0.2", "web-2", "u2"),
            // Replaced under the same name since: its uid is not the known pod's.
            pod_address("10.0.0.3", "web-3", "old"),
            // Not a pod (a manual endpoint), and a pod not seen yet.
            address("10.0.0.4"),
            pod_address("10.0.0.5", "web-5", "u5"),
        ];
        // Another subset listing 10.0.0.1 again for another pod's account: ambiguous.
        let mut other = subset(&[], &[], &[("http", 8080)]);
        other.addresses = vec![
            pod_address("10.0.0.1", "intruder", "u6"),
            pod_address("10.0.0.2", "web-2", "u2"),
        ];
        eps.subsets.push(other);
        let mut accounts = PodAccounts::new();
        for (name, uid, account) in [
            ("web-1", "u1", "web"),
            ("web-2", "u2", ""),
            ("web-3", "new", "web"),
            ("intruder", "u6", "intruder"),
        ] {
            accounts.insert(&pod(name, uid, account));
        }

        let built = build_table_with_identities([&web], [&eps], &accounts);
        assert!(built.warnings.is_empty(), "{:?}", built.warnings);
        let http = ServiceKey::new("default", "web", "http");
        assert_eq!(built.table.get(&http).unwrap().endpoints.len(), 5);
        let expected: EndpointIdentities = [(
            sa("10.0.0.2:8080"),
            ServiceAccountRef::new("default", "default"),
        )]
        .into();
        assert_eq!(built.table.identities(&http), Some(&expected));
        // The first subset alone: 10.0.0.1 is web's.
        eps.subsets.pop();
        let built = build_table_with_identities([&web], [&eps], &accounts);
        assert_eq!(
            built.table.identity(&http, &sa("10.0.0.1:8080")),
            Some(&ServiceAccountRef::new("default", "web"))
        );
        // Every port of the service gets them, at its own target port.
        let admin = ServiceKey::new("default", "web", "admin");
        assert_eq!(
            built.table.identity(&admin, &sa("10.0.0.1:9001")),
            Some(&ServiceAccountRef::new("default", "web"))
        );
        assert_eq!(built.table.identities(&admin).unwrap().len(), 2);
        // Without identities, the same entries and none.
        let plain = build_table([&web], [&eps]);
        assert_eq!(plain.table.get(&http), built.table.get(&http));
        assert_eq!(plain.table.identities(&http), None);
    }
}
