//! [`DnsSnapshot`]: the cluster's names at one moment, built from Services and Endpoints with
//! no I/O, and only read afterwards (the server swaps whole snapshots).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use orchestra_api::resources::{EndpointAddress, Endpoints, Protocol as ApiProtocol, Service};

use crate::table::Protocol;

/// One port of a service or of an endpoint: what an SRV record names.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRecord {
    /// The port's name (SRV records exist only for named ports).
    pub name: String,
    /// TCP or UDP (SCTP ports are left out).
    pub protocol: Protocol,
    /// The port number.
    pub port: u16,
}

/// One address behind a headless service.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct EndpointRecord {
    /// The address.
    pub ip: IpAddr,
    /// Its DNS label under the service: the endpoint's hostname, or the address with `-` for
    /// separators (`127-3-0-5`) when it has none.
    pub hostname: String,
    /// The ports of its subset.
    pub ports: Vec<PortRecord>,
}

/// What DNS knows about one service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceRecords {
    /// The cluster IPs (empty for a headless service).
    pub cluster_ips: Vec<IpAddr>,
    /// `clusterIP: None`: names resolve to the endpoints.
    pub headless: bool,
    /// The service's ports.
    pub ports: Vec<PortRecord>,
    /// For a headless service, the addresses to answer with: the ready ones (and the not
    /// ready ones too with `publishNotReadyAddresses`), sorted. Empty otherwise.
    pub endpoints: Vec<EndpointRecord>,
}

/// The names of the cluster at one moment (see [`DnsSnapshot::build`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsSnapshot {
    /// By (namespace, name).
    services: BTreeMap<(String, String), ServiceRecords>,
    /// The namespaces that have at least one service.
    namespaces: BTreeSet<String>,
    /// Address -> (namespace, service, endpoint hostname; empty for a ClusterIP).
    reverse: BTreeMap<IpAddr, (String, String, String)>,
    /// The zone's SOA serial: changes with every snapshot.
    serial: u32,
}

impl DnsSnapshot {
    /// Builds the snapshot from every Service and Endpoints object; `serial` becomes the
    /// zone's SOA serial.
    ///
    /// - A service with a cluster IP answers with it (every family in `clusterIPs`); one
    ///   whose IP is not allocated yet (empty) or does not parse is left out.
    /// - A headless service (`clusterIP: None`) answers with its Endpoints' ready addresses
    ///   (not-ready ones too when it publishes them).
    /// - Only TCP and UDP ports get SRV records.
    pub fn build<'a>(
        services: impl IntoIterator<Item = &'a Service>,
        endpoints: impl IntoIterator<Item = &'a Endpoints>,
        serial: u32,
    ) -> Self {
        let endpoints: BTreeMap<(&str, &str), &Endpoints> = endpoints
            .into_iter()
            .map(|e| ((e.metadata.namespace.as_str(), e.metadata.name.as_str()), e))
            .collect();
        let mut snapshot = DnsSnapshot {
            serial,
            ..DnsSnapshot::default()
        };
        for service in services {
            let (namespace, name) = (&service.metadata.namespace, &service.metadata.name);
            let spec = &service.spec;
            let headless = spec.cluster_ip.trim() == "None";
            let cluster_ips: Vec<IpAddr> = if headless {
                Vec::new()
            } else {
                let listed = if spec.cluster_ips.is_empty() {
                    std::slice::from_ref(&spec.cluster_ip)
                } else {
                    spec.cluster_ips.as_slice()
                };
                listed
                    .iter()
                    .filter_map(|ip| ip.trim().parse().ok())
                    .collect()
            };
            if !headless && cluster_ips.is_empty() {
                continue;
            }
            let ports = spec
                .ports
                .iter()
                .filter_map(|p| port_record(&p.name, p.protocol, p.port))
                .collect();
            let mut records = ServiceRecords {
                cluster_ips,
                headless,
                ports,
                endpoints: Vec::new(),
            };
            if headless && let Some(object) = endpoints.get(&(namespace.as_str(), name.as_str())) {
                for subset in &object.subsets {
                    let ports: Vec<PortRecord> = subset
                        .ports
                        .iter()
                        .filter_map(|p| port_record(&p.name, p.protocol, p.port))
                        .collect();
                    let not_ready = spec
                        .publish_not_ready_addresses
                        .then_some(subset.not_ready_addresses.iter())
                        .into_iter()
                        .flatten();
                    for address in subset.addresses.iter().chain(not_ready) {
                        if let Some(record) = endpoint_record(address, &ports) {
                            records.endpoints.push(record);
                        }
                    }
                }
                records.endpoints.sort();
                records.endpoints.dedup_by(|a, b| a.ip == b.ip);
            }
            for ip in &records.cluster_ips {
                snapshot
                    .reverse
                    .entry(*ip)
                    .or_insert_with(|| (namespace.clone(), name.clone(), String::new()));
            }
            for endpoint in &records.endpoints {
                snapshot.reverse.entry(endpoint.ip).or_insert_with(|| {
                    (namespace.clone(), name.clone(), endpoint.hostname.clone())
                });
            }
            snapshot.namespaces.insert(namespace.clone());
            snapshot
                .services
                .insert((namespace.clone(), name.clone()), records);
        }
        snapshot
    }

    /// One service's records.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&ServiceRecords> {
        self.services.get(&(namespace.to_owned(), name.to_owned()))
    }

    /// Whether a namespace has services.
    pub fn has_namespace(&self, namespace: &str) -> bool {
        self.namespaces.contains(namespace)
    }

    /// Who owns an address: (namespace, service, endpoint hostname or empty for a
    /// ClusterIP).
    pub fn owner_of(&self, ip: IpAddr) -> Option<(&str, &str, &str)> {
        self.reverse
            .get(&ip)
            .map(|(ns, name, host)| (ns.as_str(), name.as_str(), host.as_str()))
    }

    /// The zone's SOA serial.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    /// How many services.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether there is no service.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }
}

/// A port record, or `None` for SCTP and numbers out of range.
fn port_record(name: &str, protocol: Option<ApiProtocol>, port: i32) -> Option<PortRecord> {
    let protocol = match protocol {
        None | Some(ApiProtocol::Tcp) => Protocol::Tcp,
        Some(ApiProtocol::Udp) => Protocol::Udp,
        Some(ApiProtocol::Sctp) => return None,
    };
    let port = u16::try_from(port).ok().filter(|p| *p != 0)?;
    Some(PortRecord {
        name: name.to_ascii_lowercase(),
        protocol,
        port,
    })
}

/// An endpoint record, or `None` when the address does not parse.
fn endpoint_record(address: &EndpointAddress, ports: &[PortRecord]) -> Option<EndpointRecord> {
    let ip: IpAddr = address.ip.trim().parse().ok()?;
    let hostname = if address.hostname.is_empty() {
        dashed(ip)
    } else {
        address.hostname.to_ascii_lowercase()
    };
    Some(EndpointRecord {
        ip,
        hostname,
        ports: ports.to_vec(),
    })
}

/// An address as one DNS label: `127.3.0.5` -> `127-3-0-5`, `fd00::1` -> `fd00--1`.
pub fn dashed(ip: IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}
