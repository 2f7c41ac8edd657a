//! The environment the agent adds to every container: the services of the pod's namespace,
//! as Kubernetes injects them, and the pod's DNS settings. Pure functions of the pod and the
//! services, so that their tests assert exact variables.
//!
//! Service links (unless `enableServiceLinks: false`), for each service of the namespace
//! with a cluster IP, named `NAME` after the service with `-` as `_`, upper case:
//! `NAME_SERVICE_HOST`, `NAME_SERVICE_PORT` (the first port), `NAME_SERVICE_PORT_PORTNAME`
//! per named port, and Docker's link variables: `NAME_PORT=tcp://IP:PORT` (the first port) and
//! per port `NAME_PORT_80_TCP`, `..._PROTO`, `..._PORT`, `..._ADDR`. The container's own
//! variables come after them, so they win.
//!
//! DNS: a process started by `ProcessRuntime` shares the host's resolver configuration
//! (`/etc/resolv.conf`): the agent cannot point the C library at the cluster DNS server, which
//! listens on a loopback port rather than port 53 of the pod's address. The closest thing it
//! offers is the resolved settings as variables a program (or a wrapper writing its own
//! resolv.conf) can use: `ORCHESTRA_DNS_SERVER` (`IP:PORT` of the first name server),
//! `ORCHESTRA_DNS_SEARCH` (the search list, space-separated) and `ORCHESTRA_DNS_OPTIONS`
//! (`ndots:5`). The agent also gives the [`PodDns`] to the runtime in the sandbox's
//! configuration: CriRuntime passes it as the CRI DNSConfig, which containerd writes into the
//! pod's resolv.conf (the cluster DNS must then listen on port 53 of an address the pods
//! reach).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use orchestra_api::resources::{DnsPolicy, Pod, Protocol, Service};

/// Where the cluster DNS is, for pods with `dnsPolicy: ClusterFirst`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterDnsSettings {
    /// The cluster DNS server's address (UDP and TCP).
    pub server: SocketAddr,
    /// The cluster domain, without the trailing dot (`cluster.local`).
    pub domain: String,
}

pub use crate::runtime::PodDns;

/// The resolver settings of `pod` (Kubernetes' rules): `ClusterFirst` (the default, and
/// `ClusterFirstWithHostNet`) uses the cluster DNS with the namespace's search list and
/// `ndots:5` (the host's settings when there is no cluster DNS, or for `ClusterFirst` with
/// host networking); `Default` uses the host's (`None` here); `None` only the pod's
/// `dnsConfig`, which the other policies append to. `None` when the pod keeps the host's.
pub fn pod_dns(pod: &Pod, cluster: Option<&ClusterDnsSettings>) -> Option<PodDns> {
    let policy = pod.spec.dns_policy.unwrap_or(DnsPolicy::ClusterFirst);
    let mut dns = PodDns::default();
    let cluster_first = match policy {
        DnsPolicy::ClusterFirst => !pod.spec.host_network,
        DnsPolicy::ClusterFirstWithHostNet => true,
        DnsPolicy::Default | DnsPolicy::None => false,
    };
    if cluster_first && let Some(cluster) = cluster {
        dns.servers.push(cluster.server.to_string());
        let domain = cluster.domain.trim_end_matches('.');
        dns.searches = vec![
            format!("{}.svc.{domain}", pod.metadata.namespace),
            format!("svc.{domain}"),
            domain.to_owned(),
        ];
        dns.options.push("ndots:5".to_owned());
    }
    if let Some(own) = &pod.spec.dns_config {
        dns.servers.extend(own.nameservers.iter().cloned());
        for search in &own.searches {
            if !dns.searches.contains(search) {
                dns.searches.push(search.clone());
            }
        }
        for option in &own.options {
            // The pod's value of an option replaces the policy's.
            dns.options
                .retain(|o| o.split(':').next() != Some(option.name.as_str()));
            dns.options.push(match &option.value {
                Some(value) => format!("{}:{value}", option.name),
                None => option.name.clone(),
            });
        }
    }
    (dns != PodDns::default()).then_some(dns)
}

/// The variables that carry [`pod_dns`] to a process.
pub fn dns_env(dns: &PodDns) -> Vec<(String, String)> {
    let mut env = Vec::new();
    if let Some(server) = dns.servers.first() {
        env.push(("ORCHESTRA_DNS_SERVER".to_owned(), server.clone()));
    }
    if !dns.searches.is_empty() {
        env.push(("ORCHESTRA_DNS_SEARCH".to_owned(), dns.searches.join(" ")));
    }
    if !dns.options.is_empty() {
        env.push(("ORCHESTRA_DNS_OPTIONS".to_owned(), dns.options.join(" ")));
    }
    env
}

/// The service variables of `namespace`'s services (see the [module docs](self)), sorted by
/// service name. Services without a cluster IP (headless, or not allocated) have none.
pub fn service_env<'a>(
    namespace: &str,
    services: impl IntoIterator<Item = &'a Service>,
) -> Vec<(String, String)> {
    let by_name: BTreeMap<&str, &Service> = services
        .into_iter()
        .filter(|s| s.metadata.namespace == namespace)
        .map(|s| (s.metadata.name.as_str(), s))
        .collect();
    let mut env = Vec::new();
    for (name, service) in by_name {
        let Ok(ip) = service.spec.cluster_ip.trim().parse::<IpAddr>() else {
            continue;
        };
        let prefix = env_name(name);
        env.push((format!("{prefix}_SERVICE_HOST"), ip.to_string()));
        let Some(first) = service.spec.ports.first() else {
            continue;
        };
        env.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
        for port in &service.spec.ports {
            if !port.name.is_empty() {
                env.push((
                    format!("{prefix}_SERVICE_PORT_{}", env_name(&port.name)),
                    port.port.to_string(),
                ));
            }
        }
        let url = |protocol: &str, port: i32| {
            format!("{protocol}://{}", SocketAddr::new(ip, port_u16(port)))
        };
        let protocol_of = |p: Option<Protocol>| match p {
            None | Some(Protocol::Tcp) => "tcp",
            Some(Protocol::Udp) => "udp",
            Some(Protocol::Sctp) => "sctp",
        };
        env.push((
            format!("{prefix}_PORT"),
            url(protocol_of(first.protocol), first.port),
        ));
        for port in &service.spec.ports {
            let protocol = protocol_of(port.protocol);
            let link = format!("{prefix}_PORT_{}_{}", port.port, protocol.to_uppercase());
            env.push((link.clone(), url(protocol, port.port)));
            env.push((format!("{link}_PROTO"), protocol.to_owned()));
            env.push((format!("{link}_PORT"), port.port.to_string()));
            env.push((format!("{link}_ADDR"), ip.to_string()));
        }
    }
    env
}

/// A name as an environment variable name: upper case, `-` as `_`.
fn env_name(name: &str) -> String {
    name.to_ascii_uppercase().replace('-', "_")
}

/// A port number (validated by the API to 1-65535; 0 otherwise).
fn port_u16(port: i32) -> u16 {
    u16::try_from(port).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use orchestra_api::ObjectMeta;
    use orchestra_api::resources::{PodDnsConfig, PodDnsConfigOption, ServicePort, ServiceSpec};

    use super::*;

    fn service(namespace: &str, name: &str, ip: &str, ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: namespace.into(),
                ..ObjectMeta::default()
            },
            spec: ServiceSpec {
                cluster_ip: ip.into(),
                ports,
                ..ServiceSpec::default()
            },
            status: None,
        }
    }

    fn port(name: &str, number: i32, protocol: Option<Protocol>) -> ServicePort {
        ServicePort {
            name: name.into(),
            port: number,
            protocol,
            ..ServicePort::default()
        }
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn service_variables_follow_kubernetes_naming() {
        let services = [
            service(
                "shop",
                "cart-db",
                "127.2.0.7",
                vec![port("redis", 6379, None), port("metrics", 9121, None)],
            ),
            service(
                "shop",
                "dns",
                "127.2.0.8",
                vec![port("", 53, Some(Protocol::Udp))],
            ),
            service("shop", "headless", "None", vec![port("", 80, None)]),
            service("other", "elsewhere", "127.2.0.9", vec![port("", 80, None)]),
        ];
        assert_eq!(
            service_env("shop", services.iter()),
            pairs(&[
                ("CART_DB_SERVICE_HOST", "127.2.0.7"),
                ("CART_DB_SERVICE_PORT", "6379"),
                ("CART_DB_SERVICE_PORT_REDIS", "6379"),
                ("CART_DB_SERVICE_PORT_METRICS", "9121"),
                ("CART_DB_PORT", "tcp://127.2.0.7:6379"),
                ("CART_DB_PORT_6379_TCP", "tcp://127.2.0.7:6379"),
                ("CART_DB_PORT_6379_TCP_PROTO", "tcp"),
                ("CART_DB_PORT_6379_TCP_PORT", "6379"),
                ("CART_DB_PORT_6379_TCP_ADDR", "127.2.0.7"),
                ("CART_DB_PORT_9121_TCP", "tcp://127.2.0.7:9121"),
                ("CART_DB_PORT_9121_TCP_PROTO", "tcp"),
                ("CART_DB_PORT_9121_TCP_PORT", "9121"),
                ("CART_DB_PORT_9121_TCP_ADDR", "127.2.0.7"),
                ("DNS_SERVICE_HOST", "127.2.0.8"),
                ("DNS_SERVICE_PORT", "53"),
                ("DNS_PORT", "udp://127.2.0.8:53"),
                ("DNS_PORT_53_UDP", "udp://127.2.0.8:53"),
                ("DNS_PORT_53_UDP_PROTO", "udp"),
                ("DNS_PORT_53_UDP_PORT", "53"),
                ("DNS_PORT_53_UDP_ADDR", "127.2.0.8"),
            ])
        );
    }

    #[test]
    fn ipv6_service_urls_bracket_the_address() {
        let services = [service(
            "default",
            "v6",
            "fd00::7",
            vec![port("", 80, None)],
        )];
        let env = service_env("default", services.iter());
        assert!(env.contains(&("V6_PORT".into(), "tcp://[fd00::7]:80".into())));
    }

    fn pod(namespace: &str, policy: Option<DnsPolicy>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.namespace = namespace.into();
        pod.spec.dns_policy = policy;
        pod
    }

    fn cluster() -> ClusterDnsSettings {
        ClusterDnsSettings {
            server: "127.0.0.1:5353".parse().unwrap(),
            domain: "cluster.local".into(),
        }
    }

    #[test]
    fn cluster_first_points_at_the_cluster_dns_with_the_namespace_search_list() {
        let dns = pod_dns(&pod("shop", None), Some(&cluster())).unwrap();
        assert_eq!(
            dns,
            PodDns {
                servers: vec!["127.0.0.1:5353".into()],
                searches: vec![
                    "shop.svc.cluster.local".into(),
                    "svc.cluster.local".into(),
                    "cluster.local".into()
                ],
                options: vec!["ndots:5".into()],
            }
        );
        assert_eq!(
            dns_env(&dns),
            pairs(&[
                ("ORCHESTRA_DNS_SERVER", "127.0.0.1:5353"),
                (
                    "ORCHESTRA_DNS_SEARCH",
                    "shop.svc.cluster.local svc.cluster.local cluster.local"
                ),
                ("ORCHESTRA_DNS_OPTIONS", "ndots:5"),
            ])
        );
    }

    #[test]
    fn default_policy_and_missing_cluster_dns_keep_the_host_resolver() {
        assert_eq!(
            pod_dns(&pod("shop", Some(DnsPolicy::Default)), Some(&cluster())),
            None
        );
        assert_eq!(pod_dns(&pod("shop", None), None), None);
        let mut host = pod("shop", Some(DnsPolicy::ClusterFirst));
        host.spec.host_network = true;
        assert_eq!(pod_dns(&host, Some(&cluster())), None);
        host.spec.dns_policy = Some(DnsPolicy::ClusterFirstWithHostNet);
        assert!(pod_dns(&host, Some(&cluster())).is_some());
    }

    #[test]
    fn policy_none_takes_only_the_pod_dns_config_which_others_append_to() {
        let mut own = pod("shop", Some(DnsPolicy::None));
        own.spec.dns_config = Some(PodDnsConfig {
            nameservers: vec!["127.0.0.53".into()],
            searches: vec!["corp.example".into()],
            options: vec![PodDnsConfigOption {
                name: "ndots".into(),
                value: Some("2".into()),
            }],
        });
        assert_eq!(
            pod_dns(&own, Some(&cluster())),
            Some(PodDns {
                servers: vec!["127.0.0.53".into()],
                searches: vec!["corp.example".into()],
                options: vec!["ndots:2".into()],
            })
        );
        own.spec.dns_policy = None;
        let merged = pod_dns(&own, Some(&cluster())).unwrap();
        assert_eq!(merged.servers, ["127.0.0.1:5353", "127.0.0.53"]);
        assert_eq!(
            merged.searches.last().map(String::as_str),
            Some("corp.example")
        );
        assert_eq!(merged.options, ["ndots:2"]);
    }
}
