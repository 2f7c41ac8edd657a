//! [`ServiceAllocation`]: every Service of type `ClusterIP` or `NodePort` gets a cluster IP
//! from a range (127.2.0.0/16 by default: loopback, so a single host needs no privileges), and
//! every `NodePort` port a node port (30000-32767), unless it names its own, which must be in
//! the range and free.
//!
//! Allocations are stored, not remembered: each allocated IP and port is a key
//! (`/registry/ranges/serviceips/{ip}`, `/registry/ranges/servicenodeports/{port}`) that the
//! registry creates in the Service's own transaction, only if absent, and deletes with the
//! Service ([`Claim`]s). Two concurrent creates that pick the same IP cannot both commit: the
//! loser's transaction fails and the registry admits it again, which picks another IP; a
//! restart needs no rebuild, and several API servers over one etcd share the ranges.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;
use std::str::FromStr;

use async_trait::async_trait;
use orchestra_store::RangeRequest;
use rand::Rng;

use super::{AdmissionPlugin, AdmissionRequest, Claim, Operation};
use crate::registry::ApiError;
use crate::resource::Resource;
use crate::resources::{Service, ServiceType};
use crate::scheme::DynResource;
use crate::validation::{ErrorList, FieldError, FieldPath};

/// Where allocated cluster IPs are recorded, one key per IP.
pub const SERVICE_IPS_PREFIX: &str = "/registry/ranges/serviceips/";
/// Where allocated node ports are recorded, one key per port.
pub const NODE_PORTS_PREFIX: &str = "/registry/ranges/servicenodeports/";

/// A bad range in the configuration.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RangeError {
    /// Not `A.B.C.D/N`.
    #[error(
        "invalid IPv4 range {text:?}: {reason} (expected an address and a prefix length, like 127.2.0.0/16)"
    )]
    Cidr {
        /// The text given.
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// Not `LOW-HIGH` within 1-65535.
    #[error(
        "invalid port range {text:?}: expected LOW-HIGH with 1 <= LOW <= HIGH <= 65535, like 30000-32767"
    )]
    Ports {
        /// The text given.
        text: String,
    },
}

/// An IPv4 network, `127.2.0.0/16`.
///
/// Written here rather than taken from a crate: std parses the address, and what is left is
/// two lines of prefix arithmetic, not worth a dependency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    network: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// The network of `address/prefix` (host bits cleared); `None` for a prefix over 32.
    pub fn new(address: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then(|| Ipv4Cidr {
            network: Ipv4Addr::from(u32::from(address) & Self::mask(prefix)),
            prefix,
        })
    }

    fn mask(prefix: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
    }

    /// Whether `ip` is in the network.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Self::mask(self.prefix) == u32::from(self.network)
    }

    /// The first allocatable address and how many there are: every address but the
    /// network's and the broadcast address (for prefixes up to /30).
    fn allocatable(&self) -> (u32, u64) {
        let size = 1u64 << (32 - u32::from(self.prefix));
        let base = u32::from(self.network);
        if self.prefix >= 31 {
            (base, size)
        } else {
            (base + 1, size - 2)
        }
    }

    /// Whether `ip` may be allocated: in the network, and neither its network nor its
    /// broadcast address.
    pub fn is_allocatable(&self, ip: Ipv4Addr) -> bool {
        let (first, count) = self.allocatable();
        let ip = u64::from(u32::from(ip));
        self.contains_u64(ip) && ip >= u64::from(first) && ip < u64::from(first) + count
    }

    fn contains_u64(&self, ip: u64) -> bool {
        u32::try_from(ip).is_ok_and(|ip| self.contains(Ipv4Addr::from(ip)))
    }

    /// How many addresses may be allocated.
    pub fn capacity(&self) -> u64 {
        self.allocatable().1
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = RangeError;

    fn from_str(text: &str) -> Result<Self, RangeError> {
        let error = |reason: &str| RangeError::Cidr {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (address, prefix) = text.split_once('/').ok_or_else(|| error("no /prefix"))?;
        let address: Ipv4Addr = address
            .parse()
            .map_err(|_| error("the address is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .map_err(|_| error("the prefix length is not a number"))?;
        if !(1..=32).contains(&prefix) {
            return Err(error("the prefix length must be 1 to 32"));
        }
        Ipv4Cidr::new(address, prefix).ok_or_else(|| error("the prefix length must be 1 to 32"))
    }
}

/// Where cluster IPs and node ports come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRanges {
    /// Cluster IPs (Kubernetes' `--service-cluster-ip-range`); 127.2.0.0/16 by default.
    pub cluster_ips: Ipv4Cidr,
    /// Node ports (Kubernetes' `--service-node-port-range`); 30000-32767 by default.
    pub node_ports: RangeInclusive<u16>,
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            cluster_ips: Ipv4Cidr::new(Ipv4Addr::new(127, 2, 0, 0), 16)
                .unwrap_or_else(|| unreachable!("16 is a valid prefix")),
            node_ports: 30000..=32767,
        }
    }
}

impl ServiceRanges {
    /// Parses a node port range, `30000-32767`.
    pub fn parse_ports(text: &str) -> Result<RangeInclusive<u16>, RangeError> {
        let error = || RangeError::Ports {
            text: text.to_owned(),
        };
        let (low, high) = text.split_once('-').ok_or_else(error)?;
        let low: u16 = low.trim().parse().map_err(|_| error())?;
        let high: u16 = high.trim().parse().map_err(|_| error())?;
        if low == 0 || low > high {
            return Err(error());
        }
        Ok(low..=high)
    }

    fn ports_text(&self) -> String {
        format!("{}-{}", self.node_ports.start(), self.node_ports.end())
    }
}

/// The cluster IP and node port allocator (see the [module docs](self)).
#[derive(Clone, Debug, Default)]
pub struct ServiceAllocation {
    ranges: ServiceRanges,
}

impl ServiceAllocation {
    /// An allocator over these ranges.
    pub fn new(ranges: ServiceRanges) -> Self {
        ServiceAllocation { ranges }
    }

    /// The ranges it allocates from.
    pub fn ranges(&self) -> &ServiceRanges {
        &self.ranges
    }
}

/// `Service namespace/name`: what a claim key stores.
fn owner(namespace: &str, name: &str) -> String {
    format!("Service {namespace}/{name}")
}

/// Who holds each key under `prefix`, by the key's last segment.
async fn taken(
    request: &AdmissionRequest<'_>,
    prefix: &str,
) -> Result<HashMap<String, String>, ApiError> {
    let range = request
        .registry()
        .store()
        .range(RangeRequest::prefix(prefix.to_owned()))
        .await?;
    Ok(range
        .kvs
        .iter()
        .map(|kv| {
            let key = String::from_utf8_lossy(&kv.key[prefix.len()..]).into_owned();
            (key, String::from_utf8_lossy(&kv.value).into_owned())
        })
        .collect())
}

/// What an update keeps from the stored Service: an omitted cluster IP (a manifest applied
/// again) and omitted node ports of ports that still exist, as Kubernetes does.
fn carry_over(old: &Service, new: &mut Service) {
    if new.spec.cluster_ip.is_empty() && !old.spec.cluster_ip.is_empty() {
        new.spec.cluster_ip.clone_from(&old.spec.cluster_ip);
        if new.spec.cluster_ips.is_empty() {
            new.spec.cluster_ips.clone_from(&old.spec.cluster_ips);
        }
    }
    if new.spec.type_ == Some(ServiceType::NodePort) && old.spec.type_ == new.spec.type_ {
        for port in &mut new.spec.ports {
            if port.node_port.unwrap_or(0) != 0 {
                continue;
            }
            let same = old.spec.ports.iter().find(|o| {
                if port.name.is_empty() {
                    o.port == port.port && o.protocol == port.protocol
                } else {
                    o.name == port.name
                }
            });
            if let Some(node_port) = same.and_then(|o| o.node_port).filter(|n| *n != 0) {
                port.node_port = Some(node_port);
            }
        }
    }
}

fn invalid(
    service: &Service,
    path: &FieldPath,
    value: impl fmt::Display,
    detail: String,
) -> ApiError {
    let mut errors = ErrorList::new();
    errors.push(FieldError::invalid(path, value.to_string(), detail));
    ApiError::Invalid {
        kind: Service::KIND,
        name: service.metadata.name.clone(),
        errors,
    }
}

impl ServiceAllocation {
    async fn allocate_ip(
        &self,
        request: &AdmissionRequest<'_>,
        service: &mut Service,
        old_ip: Option<&str>,
        me: &str,
    ) -> Result<(), ApiError> {
        let path = FieldPath::new("spec").child("clusterIP");
        let ip = service.spec.cluster_ip.clone();
        if ip == "None" || old_ip == Some(ip.as_str()) && !ip.is_empty() {
            return Ok(());
        }
        let range = self.ranges.cluster_ips;
        let taken = taken(request, SERVICE_IPS_PREFIX).await?;
        if ip.is_empty() {
            let (first, count) = range.allocatable();
            let start = rand::rng().random_range(0..count.max(1));
            let free = (0..count)
                .map(|i| Ipv4Addr::from(first + u32::try_from((start + i) % count).unwrap_or(0)))
                .find(|candidate| !taken.contains_key(&candidate.to_string()));
            let Some(free) = free else {
                return Err(invalid(
                    service,
                    &path,
                    "",
                    format!(
                        "no cluster IP is free: all {count} addresses of the service range {range} are allocated; delete a Service or widen the range"
                    ),
                ));
            };
            service.spec.cluster_ip = free.to_string();
            service.spec.cluster_ips = vec![free.to_string()];
            return Ok(());
        }
        let parsed: Ipv4Addr = ip.parse().map_err(|_| {
            invalid(
                service,
                &path,
                &ip,
                "must be an IPv4 address in the service range".to_owned(),
            )
        })?;
        if !range.is_allocatable(parsed) {
            return Err(invalid(
                service,
                &path,
                &ip,
                format!("provided IP is not in the valid range. The range of valid IPs is {range}"),
            ));
        }
        if let Some(holder) = taken.get(&ip).filter(|holder| *holder != me) {
            return Err(invalid(
                service,
                &path,
                &ip,
                format!("provided IP is already allocated (to {holder})"),
            ));
        }
        if service.spec.cluster_ips.is_empty() {
            service.spec.cluster_ips = vec![ip];
        }
        Ok(())
    }

    async fn allocate_ports(
        &self,
        request: &AdmissionRequest<'_>,
        service: &mut Service,
        old: Option<&Service>,
        me: &str,
    ) -> Result<(), ApiError> {
        if service.spec.type_ != Some(ServiceType::NodePort) {
            return Ok(());
        }
        let held: HashSet<i32> = old
            .filter(|o| o.spec.type_ == Some(ServiceType::NodePort))
            .map(|o| o.spec.ports.iter().filter_map(|p| p.node_port).collect())
            .unwrap_or_default();
        let taken = taken(request, NODE_PORTS_PREFIX).await?;
        let range = self.ranges.node_ports.clone();
        let mut mine: HashSet<i32> = HashSet::new();
        for index in 0..service.spec.ports.len() {
            let path = FieldPath::new("spec")
                .child("ports")
                .index(index)
                .child("nodePort");
            match service.spec.ports[index].node_port.filter(|n| *n != 0) {
                Some(port) => {
                    if held.contains(&port) {
                        mine.insert(port);
                        continue;
                    }
                    if !u16::try_from(port).is_ok_and(|p| range.contains(&p)) {
                        return Err(invalid(
                            service,
                            &path,
                            port,
                            format!(
                                "provided port is not in the valid range. The range of valid ports is {}",
                                self.ranges.ports_text()
                            ),
                        ));
                    }
                    if let Some(holder) =
                        taken.get(&port.to_string()).filter(|holder| *holder != me)
                    {
                        return Err(invalid(
                            service,
                            &path,
                            port,
                            format!("provided port is already allocated (to {holder})"),
                        ));
                    }
                    mine.insert(port);
                }
                None => {
                    let (low, high) = (i32::from(*range.start()), i32::from(*range.end()));
                    let count = high - low + 1;
                    let start = rand::rng().random_range(0..count);
                    let free = (0..count).map(|i| low + (start + i) % count).find(|p| {
                        !mine.contains(p)
                            && !held.contains(p)
                            && !taken.contains_key(&p.to_string())
                    });
                    let Some(free) = free else {
                        return Err(invalid(
                            service,
                            &path,
                            "",
                            format!(
                                "no node port is free: all {count} ports of the range {} are allocated; delete a NodePort Service or widen the range",
                                self.ranges.ports_text()
                            ),
                        ));
                    };
                    service.spec.ports[index].node_port = Some(free);
                    mine.insert(free);
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl AdmissionPlugin for ServiceAllocation {
    fn name(&self) -> &'static str {
        "ServiceAllocation"
    }

    async fn mutate(&self, request: &mut AdmissionRequest<'_>) -> Result<(), ApiError> {
        if request.operation() == Operation::Delete || request.kind() != Service::type_info() {
            return Ok(());
        }
        let old: Option<Service> = request
            .old()
            .and_then(|o| o.downcast_ref::<Service>())
            .cloned();
        let me = owner(request.namespace(), request.name());
        let Some(mut service) = request
            .object()
            .and_then(|o| o.downcast_ref::<Service>())
            .cloned()
        else {
            return Ok(());
        };
        if let Some(old) = &old {
            carry_over(old, &mut service);
        }
        let type_ = service.spec.type_.unwrap_or(ServiceType::ClusterIP);
        if matches!(type_, ServiceType::ClusterIP | ServiceType::NodePort) {
            let old_ip = old.as_ref().map(|o| o.spec.cluster_ip.as_str());
            self.allocate_ip(request, &mut service, old_ip, &me).await?;
            self.allocate_ports(request, &mut service, old.as_ref(), &me)
                .await?;
        }
        if let Some(target) = request
            .object_mut()
            .and_then(|o| o.downcast_mut::<Service>())
        {
            *target = service;
        }
        Ok(())
    }

    fn claims(&self, object: &dyn DynResource) -> Vec<Claim> {
        let Some(service) = object.downcast_ref::<Service>() else {
            return Vec::new();
        };
        let me = owner(&service.metadata.namespace, &service.metadata.name);
        let mut claims = Vec::new();
        if service.spec.cluster_ip.parse::<Ipv4Addr>().is_ok() {
            claims.push(Claim {
                key: format!("{SERVICE_IPS_PREFIX}{}", service.spec.cluster_ip),
                owner: me.clone(),
            });
        }
        if service.spec.type_ == Some(ServiceType::NodePort) {
            for port in service.spec.ports.iter().filter_map(|p| p.node_port) {
                if port != 0 {
                    claims.push(Claim {
                        key: format!("{NODE_PORTS_PREFIX}{port}"),
                        owner: me.clone(),
                    });
                }
            }
        }
        claims
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parses_and_bounds() {
        let cidr: Ipv4Cidr = "127.2.3.4/16".parse().unwrap();
        assert_eq!(cidr.to_string(), "127.2.0.0/16");
        assert_eq!(cidr.capacity(), 65534);
        assert!(cidr.is_allocatable("127.2.0.1".parse().unwrap()));
        assert!(cidr.is_allocatable("127.2.255.254".parse().unwrap()));
        assert!(!cidr.is_allocatable("127.2.0.0".parse().unwrap()));
        assert!(!cidr.is_allocatable("127.2.255.255".parse().unwrap()));
        assert!(!cidr.is_allocatable("127.3.0.1".parse().unwrap()));
        let tiny: Ipv4Cidr = "10.0.0.0/30".parse().unwrap();
        assert_eq!(tiny.capacity(), 2);
        assert_eq!("10.0.0.9/32".parse::<Ipv4Cidr>().unwrap().capacity(), 1);
        for bad in [
            "127.2.0.0",
            "127.2.0/16",
            "127.2.0.0/33",
            "127.2.0.0/x",
            "::1/64",
        ] {
            let err = bad.parse::<Ipv4Cidr>().unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn port_ranges_parse() {
        assert_eq!(ServiceRanges::parse_ports("30000-32767"), Ok(30000..=32767));
        for bad in ["30000", "0-10", "20-10", "1-70000", "a-b"] {
            assert!(ServiceRanges::parse_ports(bad).is_err(), "{bad}");
        }
    }
}
