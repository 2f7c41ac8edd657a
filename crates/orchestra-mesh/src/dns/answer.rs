//! [`resolve`]: one question and a [`DnsSnapshot`] in, the records of the answer out, with no
//! I/O (the server only encodes what this returns, or forwards).
//!
//! The names and records are listed in the [`dns` module docs](crate::dns).

use std::net::IpAddr;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, NS, PTR, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::config::DnsConfig;
use super::snapshot::{DnsSnapshot, ServiceRecords};

/// What the server should do with a question.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Answer with these records.
    Answer(Answer),
    /// Ask the upstream resolvers (the name is outside the cluster's zones and upstreams are
    /// configured).
    Forward,
}

/// The sections and flags of a response computed from the snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// NOERROR, NXDOMAIN, REFUSED...
    pub code: ResponseCode,
    /// Whether the server is the authority for the name (AA).
    pub authoritative: bool,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section (the SOA of negative answers, the NS of the apex).
    pub authorities: Vec<Record>,
    /// The additional section (addresses of SRV targets and of the name server).
    pub additionals: Vec<Record>,
}

impl Answer {
    /// A response with only a code (REFUSED, FORMERR, ...), not authoritative.
    pub fn code(code: ResponseCode) -> Self {
        Answer {
            code,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

/// Answers `name`/`qtype`/`qclass` from `snapshot` (the names are listed in the [`dns` module docs](crate::dns)).
pub fn resolve(
    snapshot: &DnsSnapshot,
    config: &DnsConfig,
    name: &Name,
    qtype: RecordType,
    qclass: DNSClass,
) -> Resolution {
    let lower = name.to_lowercase();
    let zone = Zone {
        snapshot,
        config,
        qname: name,
        qtype,
    };
    let in_zone = config.domain.zone_of(&lower);
    let reverse = if in_zone { None } else { zone.reverse(&lower) };
    if !in_zone && reverse.is_none() {
        return if config.upstreams.is_empty() {
            Resolution::Answer(Answer::code(ResponseCode::Refused))
        } else {
            Resolution::Forward
        };
    }
    if !matches!(qclass, DNSClass::IN | DNSClass::ANY)
        || matches!(qtype, RecordType::AXFR | RecordType::IXFR)
    {
        return Resolution::Answer(Answer::code(ResponseCode::Refused));
    }
    Resolution::Answer(match reverse {
        Some(answer) => answer,
        None => zone.forward(&lower),
    })
}

/// One question against the snapshot.
struct Zone<'a> {
    snapshot: &'a DnsSnapshot,
    config: &'a DnsConfig,
    /// The name as asked (answers carry it as their owner, case and all).
    qname: &'a Name,
    qtype: RecordType,
}

impl Zone<'_> {
    /// A name in the cluster domain.
    fn forward(&self, lower: &Name) -> Answer {
        let depth = usize::from(lower.num_labels() - self.config.domain.num_labels());
        let mut labels: Vec<String> = Vec::with_capacity(depth);
        for label in lower.iter().take(depth) {
            match std::str::from_utf8(label) {
                Ok(label) => labels.push(label.to_owned()),
                Err(_) => return self.negative(ResponseCode::NXDomain),
            }
        }
        labels.reverse();
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        match labels.as_slice() {
            [] => self.apex(),
            ["dns"] | ["svc"] => self.negative(ResponseCode::NoError),
            ["dns", "ns"] => match self.config.nameserver {
                Some(ip) => self.positive(addresses(self.qname, [ip], self.qtype, self.ttl())),
                None => self.negative(ResponseCode::NoError),
            },
            ["pod"] if self.config.pod_records => self.negative(ResponseCode::NoError),
            ["pod", _namespace] if self.config.pod_records => self.negative(ResponseCode::NoError),
            ["pod", _namespace, dashed] if self.config.pod_records => match undashed(dashed) {
                Some(ip) => self.positive(addresses(self.qname, [ip], self.qtype, self.ttl())),
                None => self.negative(ResponseCode::NXDomain),
            },
            ["svc", namespace] => {
                if self.snapshot.has_namespace(namespace) {
                    self.negative(ResponseCode::NoError)
                } else {
                    self.negative(ResponseCode::NXDomain)
                }
            }
            ["svc", namespace, service] => match self.snapshot.service(namespace, service) {
                Some(records) => self.positive(self.service_addresses(records)),
                None => self.negative(ResponseCode::NXDomain),
            },
            ["svc", namespace, service, protocol] if protocol.starts_with('_') => {
                // `_tcp.SVC...`: exists (without records) when a port has that protocol.
                let exists = self
                    .snapshot
                    .service(namespace, service)
                    .is_some_and(|s| s.ports.iter().any(|p| proto_label(p) == *protocol));
                self.negative(if exists {
                    ResponseCode::NoError
                } else {
                    ResponseCode::NXDomain
                })
            }
            ["svc", namespace, service, host] => {
                let endpoint = self
                    .snapshot
                    .service(namespace, service)
                    .filter(|s| s.headless)
                    .and_then(|s| s.endpoints.iter().find(|e| e.hostname == *host));
                match endpoint {
                    Some(e) => self.positive(addresses(self.qname, [e.ip], self.qtype, self.ttl())),
                    None => self.negative(ResponseCode::NXDomain),
                }
            }
            ["svc", namespace, service, protocol, port]
                if protocol.starts_with('_') && port.starts_with('_') =>
            {
                self.srv(namespace, service, protocol, &port[1..])
            }
            _ => self.negative(ResponseCode::NXDomain),
        }
    }

    /// The zone apex: SOA and NS.
    fn apex(&self) -> Answer {
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        if matches!(self.qtype, RecordType::SOA | RecordType::ANY) {
            answers.push(self.soa());
        }
        if matches!(self.qtype, RecordType::NS | RecordType::ANY) {
            let ns = self.nameserver_name();
            answers.push(Record::from_rdata(
                self.qname.clone(),
                self.ttl(),
                RData::NS(NS(ns.clone())),
            ));
            if let Some(ip) = self.config.nameserver {
                additionals.extend(addresses(&ns, [ip], RecordType::ANY, self.ttl()));
            }
        }
        let mut answer = self.positive(answers);
        answer.additionals = additionals;
        answer
    }

    /// The addresses of a service's own name.
    fn service_addresses(&self, service: &ServiceRecords) -> Vec<Record> {
        if service.headless {
            addresses(
                self.qname,
                service.endpoints.iter().map(|e| e.ip),
                self.qtype,
                self.ttl(),
            )
        } else {
            addresses(
                self.qname,
                service.cluster_ips.iter().copied(),
                self.qtype,
                self.ttl(),
            )
        }
    }

    /// `_PORT._PROTO.SVC.NS.svc.DOMAIN`.
    fn srv(&self, namespace: &str, service: &str, protocol: &str, port_name: &str) -> Answer {
        let Some(records) = self.snapshot.service(namespace, service) else {
            return self.negative(ResponseCode::NXDomain);
        };
        let Some(port) = records
            .ports
            .iter()
            .find(|p| !p.name.is_empty() && p.name == port_name && proto_label(p) == protocol)
        else {
            return self.negative(ResponseCode::NXDomain);
        };
        if !matches!(self.qtype, RecordType::SRV | RecordType::ANY) {
            return self.negative(ResponseCode::NoError);
        }
        let ttl = self.ttl();
        let Some(service_name) = self.name(&[service, namespace, "svc"]) else {
            return self.negative(ResponseCode::NXDomain);
        };
        if !records.headless {
            let mut answer = self.positive(vec![Record::from_rdata(
                self.qname.clone(),
                ttl,
                RData::SRV(SRV::new(0, 100, port.port, service_name.clone())),
            )]);
            answer.additionals = addresses(
                &service_name,
                records.cluster_ips.iter().copied(),
                RecordType::ANY,
                ttl,
            );
            return answer;
        }
        let targets: Vec<(u16, &super::snapshot::EndpointRecord)> = records
            .endpoints
            .iter()
            .filter_map(|e| {
                e.ports
                    .iter()
                    .find(|p| p.name == port.name && p.protocol == port.protocol)
                    .map(|p| (p.port, e))
            })
            .collect();
        // Equal weights that add up to about 100, as Kubernetes' DNS gives them.
        let weight = u16::try_from(100 / targets.len().max(1))
            .unwrap_or(1)
            .max(1);
        let (mut answers, mut additionals) = (Vec::new(), Vec::new());
        for (number, endpoint) in targets {
            let Ok(target) = Name::from_labels([endpoint.hostname.as_str()])
                .and_then(|host| host.append_name(&service_name))
            else {
                continue;
            };
            answers.push(Record::from_rdata(
                self.qname.clone(),
                ttl,
                RData::SRV(SRV::new(0, weight, number, target.clone())),
            ));
            additionals.extend(addresses(&target, [endpoint.ip], RecordType::ANY, ttl));
        }
        let mut answer = self.positive(answers);
        answer.additionals = additionals;
        answer
    }

    /// A reverse name this server owns: `None` when it is not one.
    fn reverse(&self, lower: &Name) -> Option<Answer> {
        let net = lower.parse_arpa_name().ok()?;
        let full = net.prefix_len() == net.max_prefix_len();
        if full && let Some((namespace, service, host)) = self.snapshot.owner_of(net.addr()) {
            if !matches!(self.qtype, RecordType::PTR | RecordType::ANY) {
                return Some(self.negative(ResponseCode::NoError));
            }
            let target = if host.is_empty() {
                self.name(&[service, namespace, "svc"])
            } else {
                self.name(&[host, service, namespace, "svc"])
            }?;
            return Some(self.positive(vec![Record::from_rdata(
                self.qname.clone(),
                self.ttl(),
                RData::PTR(PTR(target)),
            )]));
        }
        if !self
            .config
            .reverse_ranges
            .iter()
            .any(|range| range.contains(&net))
        {
            return None;
        }
        Some(self.negative(if full {
            ResponseCode::NXDomain
        } else {
            // A parent of addresses in the range: it exists, without records.
            ResponseCode::NoError
        }))
    }

    /// A name under the domain from its labels, left to right.
    fn name(&self, labels: &[&str]) -> Option<Name> {
        Name::from_labels(labels.iter().copied())
            .and_then(|name| name.append_name(&self.config.domain))
            .ok()
    }

    fn nameserver_name(&self) -> Name {
        self.name(&["ns", "dns"])
            .unwrap_or_else(|| self.config.domain.clone())
    }

    fn ttl(&self) -> u32 {
        self.config.ttl
    }

    /// The zone's SOA record.
    fn soa(&self) -> Record {
        let domain = &self.config.domain;
        let hostmaster = Name::from_labels(["hostmaster"])
            .and_then(|n| n.append_name(domain))
            .unwrap_or_else(|_| domain.clone());
        Record::from_rdata(
            domain.clone(),
            self.ttl(),
            RData::SOA(SOA::new(
                self.nameserver_name(),
                hostmaster,
                self.snapshot.serial(),
                7200,
                1800,
                86400,
                self.ttl(),
            )),
        )
    }

    /// An authoritative answer with these records (NODATA when there are none).
    fn positive(&self, answers: Vec<Record>) -> Answer {
        if answers.is_empty() {
            return self.negative(ResponseCode::NoError);
        }
        Answer {
            code: ResponseCode::NoError,
            authoritative: true,
            answers,
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }

    /// NXDOMAIN, or NOERROR without records (NODATA), with the SOA for negative caching.
    fn negative(&self, code: ResponseCode) -> Answer {
        Answer {
            code,
            authoritative: true,
            answers: Vec::new(),
            authorities: vec![self.soa()],
            additionals: Vec::new(),
        }
    }
}

/// A pod label back to its address: `1-2-3-4` -> 1.2.3.4, `fd00--1` -> fd00::1 (the inverse
/// of [`dashed`](super::snapshot::dashed)); `None` when it is not one.
fn undashed(label: &str) -> Option<IpAddr> {
    if label.bytes().filter(|b| *b == b'-').count() == 3
        && let Ok(v4) = label.replace('-', ".").parse::<std::net::Ipv4Addr>()
    {
        return Some(IpAddr::V4(v4));
    }
    label
        .replace('-', ":")
        .parse::<std::net::Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// `_tcp` or `_udp` for a port.
fn proto_label(port: &super::snapshot::PortRecord) -> &'static str {
    match port.protocol {
        crate::table::Protocol::Tcp => "_tcp",
        crate::table::Protocol::Udp => "_udp",
    }
}

/// A and AAAA records of `owner` for the addresses that match `qtype`.
fn addresses(
    owner: &Name,
    ips: impl IntoIterator<Item = IpAddr>,
    qtype: RecordType,
    ttl: u32,
) -> Vec<Record> {
    ips.into_iter()
        .filter_map(|ip| match ip {
            IpAddr::V4(v4) if matches!(qtype, RecordType::A | RecordType::ANY) => {
                Some(RData::A(A(v4)))
            }
            IpAddr::V6(v6) if matches!(qtype, RecordType::AAAA | RecordType::ANY) => {
                Some(RData::AAAA(AAAA(v6)))
            }
            _ => None,
        })
        .map(|data| Record::from_rdata(owner.clone(), ttl, data))
        .collect()
}
