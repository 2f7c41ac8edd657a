//! The ruleset as data: the fixed skeleton of table `inet orchestra`, the dispatch objects
//! that depend only on which endpoint counts are in use, and the objects (map and set
//! elements; chains and sets for ClientIP affinity) that one service port contributes. Pure
//! functions, no I/O; [`plan`](super::plan) diffs them into `nft -f` commands.
//!
//! # Why services are map elements, not chains
//! kube-proxy's nftables mode gives every service port a chain and every endpoint a chain.
//! With nft 1.0.x each `add rule` or `add element` makes nft list every chain of the host
//! first (its cache), and the kernel answers that dump in time quadratic in the number of
//! chains: at 30,000 services of 10 endpoints (330,000 chains) a one-service change took
//! 16.7 s, whatever it sent. Changing an element of a verdict map also makes the kernel
//! re-validate every element of the table's verdict maps at commit (about 4 ms at 30,000).
//! So a service port without affinity owns no chain and no verdict-map element:
//! - the sets `pick-N` (`pick6-N` for IPv6, `np-pick-N` for NodePorts) hold the service
//!   ports with N endpoints; `services` has one rule per set in use that sends members to
//!   chain `pick-N` (`np-pick-N`), which DNATs through map `endpoints` (`endpoints6`),
//!   keyed by `ClusterIP . proto . port . numgen random mod N` (uniform over the N
//!   endpoints). The pick chains for 1 to 64 endpoints (or the most a service has) are
//!   created with the table ([`pick_chains`] says why);
//! - `endpoints` (`endpoints6`, `nodeport-endpoints[6]`) holds endpoint i of each service
//!   port under index i;
//! - set `hairpin` holds `endpoint . ClusterIP . proto . port`: a client that is an endpoint
//!   of the service it calls is marked for masquerade (whichever endpoint it is sent to, a
//!   superset of kube-proxy's "only when sent to itself", which needs a chain per endpoint).
//!
//! A one-endpoint change is then a few element deletions and additions in plain sets and
//! maps, and the chains nft lists are only the table's fixed ones and the few `pick-N`.
//!
//! # ClientIP affinity: kube-proxy's shape
//! A service port with ClientIP affinity keeps the chain layout: `service-ips` (`-ips6`,
//! `service-nodeports`) map its frontend to its chain `svc-FRONTEND`, which first sends
//! clients with a live entry in an endpoint's affinity set to that endpoint's chain
//! `ep-FRONTEND-ENDPOINT`, then picks one at random (`numgen random mod N-i == 0` for
//! endpoint i of N); the endpoint chain marks hairpin traffic, records the client in its
//! affinity set (whose name carries the timeout) and DNATs. NodePort traffic goes through
//! `ext-FRONTEND`, which marks for masquerade first. Affinity needs state per endpoint that
//! maps keyed by index cannot keep across endpoint changes; its services are few, and each
//! adds 2 + N chains to what nft lists per change.
//!
//! # The rest
//! `nat-postrouting` masquerades marked packets; service ports without endpoints are in
//! `no-endpoint-services[6]` / `no-endpoint-nodeports`, looked up by filter chains for new
//! connections, and rejected at once.
//!
//! Object names are derived from the frontend (`10.96.0.10/udp/53`; an IPv6 address has its
//! `:` written `_`, since nft names are unquoted identifiers), unique within a valid table,
//! so the same table always gives the same names, across restarts too.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::table::{Affinity, Protocol, ServiceEntry, ServiceTable};

/// The table's name (family `inet`). Nothing outside it is ever touched.
pub const TABLE: &str = "orchestra";

/// `inet orchestra`, as every command names the table.
const T: &str = "inet orchestra";

/// One command of a transaction: one line of `nft -f` input.
pub(crate) type Command = String;

/// The script nft reads: one command per line.
pub(crate) fn script(commands: &[Command]) -> String {
    let mut out = String::with_capacity(commands.iter().map(|c| c.len() + 1).sum());
    for command in commands {
        out.push_str(command);
        out.push('\n');
    }
    out
}

/// A set or a map of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SetSpec {
    /// `set` or `map`.
    pub kind: &'static str,
    /// The declaration's body: `{ type ... ; }`.
    pub body: String,
}

/// Named objects (of the skeleton, of the dispatch, or of some service ports), by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Objects {
    /// Regular chains and their rules (each rule as written after `add rule inet orchestra
    /// CHAIN`).
    pub chains: BTreeMap<String, Vec<String>>,
    /// Sets and maps.
    pub sets: BTreeMap<String, SetSpec>,
    /// Elements: (set or map, key) to the mapped data (empty for a set).
    pub elements: BTreeMap<(String, String), String>,
}

impl Objects {
    /// Adds `other`'s objects.
    pub fn extend(&mut self, other: Objects) {
        self.chains.extend(other.chains);
        self.sets.extend(other.sets);
        self.elements.extend(other.elements);
    }

    fn element(&mut self, set: &str, key: String, data: String) {
        self.elements.insert((set.to_owned(), key), data);
    }
}

/// The maps and sets of the skeleton.
pub(crate) mod maps {
    /// IPv4 ClusterIP . proto . port -> chain of an affinity service port.
    pub const SERVICE_IPS: &str = "service-ips";
    /// IPv6 ClusterIP . proto . port -> chain of an affinity service port.
    pub const SERVICE_IPS6: &str = "service-ips6";
    /// proto . NodePort -> external chain of an affinity service port.
    pub const SERVICE_NODEPORTS: &str = "service-nodeports";
    /// IPv4 ClusterIP . proto . port of a service port without endpoints -> reject.
    pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
    /// IPv6 ClusterIP . proto . port of a service port without endpoints -> reject.
    pub const NO_ENDPOINT_SERVICES6: &str = "no-endpoint-services6";
    /// proto . NodePort of a service port without endpoints -> reject.
    pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
    /// IPv4 ClusterIP . proto . port . index -> endpoint address . port.
    pub const ENDPOINTS: &str = "endpoints";
    /// IPv6 ClusterIP . proto . port . index -> endpoint address . port.
    pub const ENDPOINTS6: &str = "endpoints6";
    /// proto . NodePort . index -> IPv4 endpoint address . port.
    pub const NODEPORT_ENDPOINTS: &str = "nodeport-endpoints";
    /// proto . NodePort . index -> IPv6 endpoint address . port.
    pub const NODEPORT_ENDPOINTS6: &str = "nodeport-endpoints6";
    /// IPv4 endpoint . ClusterIP . proto . port: an endpoint calling its own service.
    pub const HAIRPIN: &str = "hairpin";
    /// IPv6 endpoint . ClusterIP . proto . port.
    pub const HAIRPIN6: &str = "hairpin6";
}

/// The regular chains of the skeleton that the dispatch refills.
const SERVICES: &str = "services";
/// The chain that rejects (ICMP port unreachable; TCP clients see a refused connection).
const REJECT_CHAIN: &str = "reject-chain";
/// The chain that marks a packet for masquerade.
const MARK_CHAIN: &str = "mark-for-masquerade";

/// `tcp` / `udp` as nftables writes them.
fn proto_name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

/// An address as part of an object name (nft names cannot hold `:`).
fn name_ip(ip: IpAddr) -> String {
    ip.to_string().replace(':', "_")
}

/// The frontend part of object names: `10.96.0.10/tcp/80`.
fn frontend(entry: &ServiceEntry) -> String {
    format!(
        "{}/{}/{}",
        name_ip(entry.cluster.ip()),
        proto_name(entry.protocol),
        entry.cluster.port()
    )
}

/// The name of an affinity service port's chain.
pub(crate) fn service_chain(entry: &ServiceEntry) -> String {
    format!("svc-{}", frontend(entry))
}

/// The name of one endpoint's chain (affinity service ports).
pub(crate) fn endpoint_chain(entry: &ServiceEntry, endpoint: SocketAddr) -> String {
    format!(
        "ep-{}-{}/{}",
        frontend(entry),
        name_ip(endpoint.ip()),
        endpoint.port()
    )
}

/// `ip` or `ip6`: the payload protocol of `ip`'s family.
fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv6() { "ip6" } else { "ip" }
}

/// The key of a ClusterIP frontend: `10.96.0.10 . tcp . 80`.
fn service_key(entry: &ServiceEntry) -> String {
    format!(
        "{} . {} . {}",
        entry.cluster.ip(),
        proto_name(entry.protocol),
        entry.cluster.port()
    )
}

/// The key of a NodePort frontend: `tcp . 30080`.
fn node_key(entry: &ServiceEntry, port: u16) -> String {
    format!("{} . {port}", proto_name(entry.protocol))
}

/// A DNAT target: `10.1.0.1:8080`, `[fd00::1]:8080`.
fn dnat_target(endpoint: SocketAddr) -> String {
    match endpoint {
        SocketAddr::V4(v4) => v4.to_string(),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

/// Which pick chain a service port's frontend goes to: its kind and endpoint count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Pick {
    /// IPv4 ClusterIP frontends with N endpoints.
    Cluster(usize),
    /// IPv6 ClusterIP frontends with N endpoints.
    Cluster6(usize),
    /// NodePort frontends with N endpoints (either family).
    NodePort(usize),
}

impl Pick {
    /// The name of its set (the chain is `pick-N` for both ClusterIP kinds, `np-pick-N` for
    /// NodePorts).
    pub fn name(self) -> String {
        match self {
            Pick::Cluster(n) => format!("pick-{n}"),
            Pick::Cluster6(n) => format!("pick6-{n}"),
            Pick::NodePort(n) => format!("np-pick-{n}"),
        }
    }
}

/// The picks a service port uses (none with affinity or without endpoints).
pub(crate) fn picks(entry: &ServiceEntry) -> impl Iterator<Item = Pick> {
    let n = entry.endpoints.len();
    let used = n > 0 && entry.affinity == Affinity::None;
    let cluster = if entry.cluster.is_ipv6() {
        Pick::Cluster6(n)
    } else {
        Pick::Cluster(n)
    };
    let node = entry.node_port.map(|_| Pick::NodePort(n));
    used.then_some(cluster)
        .into_iter()
        .chain(node.filter(|_| used))
}

/// The picks `table` uses.
pub(crate) fn picks_of(table: &ServiceTable) -> BTreeSet<Pick> {
    let mut all = BTreeSet::new();
    for (_, entry) in table.iter() {
        all.extend(picks(entry));
    }
    all
}

/// The dispatch objects for `picks`: chain `services` with its rules, and each pick's set
/// (the pick chains themselves come with the takeover: [`pick_chains`]).
pub(crate) fn dispatch(picks: &BTreeSet<Pick>) -> Objects {
    let mut objects = Objects::default();
    let lookup = |f: &str, map: &str| format!("{f} daddr . meta l4proto . th dport vmap @{map}");
    let node_lookup =
        |map: &str| format!("fib daddr type local meta l4proto . th dport vmap @{map}");
    let mut services = vec![
        format!(
            "ip saddr . ip daddr . meta l4proto . th dport @{} jump {MARK_CHAIN}",
            maps::HAIRPIN
        ),
        format!(
            "ip6 saddr . ip6 daddr . meta l4proto . th dport @{} jump {MARK_CHAIN}",
            maps::HAIRPIN6
        ),
        lookup("ip", maps::SERVICE_IPS),
        lookup("ip6", maps::SERVICE_IPS6),
        node_lookup(maps::SERVICE_NODEPORTS),
    ];
    for &pick in picks {
        let name = pick.name();
        let (set_type, rule) = match pick {
            Pick::Cluster(n) => (
                "ipv4_addr . inet_proto . inet_service",
                format!("ip daddr . meta l4proto . th dport @{name} goto pick-{n}"),
            ),
            Pick::Cluster6(n) => (
                "ipv6_addr . inet_proto . inet_service",
                format!("ip6 daddr . meta l4proto . th dport @{name} goto pick-{n}"),
            ),
            Pick::NodePort(_) => (
                "inet_proto . inet_service",
                format!("fib daddr type local meta l4proto . th dport @{name} goto {name}"),
            ),
        };
        services.push(rule);
        objects.sets.insert(
            name,
            SetSpec {
                kind: "set",
                body: format!("{{ type {set_type} ; }}"),
            },
        );
    }
    objects.chains.insert(SERVICES.to_owned(), services);
    objects
}

/// Endpoint counts whose pick chains every takeover creates, whether used or not.
pub(crate) const PRECREATED_PICKS: usize = 64;

/// The commands that create the pick chains for 1 to `upto` endpoints: `pick-N` (ClusterIP
/// frontends of either family) and `np-pick-N` (NodePorts).
///
/// They are only ever created with the endpoint maps they refer to, in a takeover: nft
/// 1.0.6 cannot add a rule that refers to a `typeof` map it reads back from the kernel
/// (it misparses the stored `ip daddr . th dport`: "conflicting protocols specified"), so
/// a later sync cannot add them. A table needing more than `upto` endpoints is taken over
/// again ([`plan`](super::plan)).
pub(crate) fn pick_chains(upto: usize) -> Vec<Command> {
    let mut chains = Vec::new();
    let mut rules = Vec::new();
    for n in 1..=upto {
        let cluster = format!("pick-{n}");
        let node = Pick::NodePort(n).name();
        rules.push(add_rule(
            &cluster,
            &format!(
                "meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport . numgen random mod {n} map @{}",
                maps::ENDPOINTS
            ),
        ));
        rules.push(add_rule(
            &cluster,
            &format!(
                "meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport . numgen random mod {n} map @{}",
                maps::ENDPOINTS6
            ),
        ));
        rules.push(add_rule(&node, &format!("jump {MARK_CHAIN}")));
        rules.push(add_rule(
            &node,
            &format!(
                "meta nfproto ipv4 dnat ip to meta l4proto . th dport . numgen random mod {n} map @{}",
                maps::NODEPORT_ENDPOINTS
            ),
        ));
        rules.push(add_rule(
            &node,
            &format!(
                "meta nfproto ipv6 dnat ip6 to meta l4proto . th dport . numgen random mod {n} map @{}",
                maps::NODEPORT_ENDPOINTS6
            ),
        ));
        chains.push(add_chain(&cluster));
        chains.push(add_chain(&node));
    }
    chains.extend(rules);
    chains
}

/// The most endpoints any service port of `table` has.
pub(crate) fn most_endpoints(table: &ServiceTable) -> usize {
    table
        .iter()
        .map(|(_, entry)| entry.endpoints.len())
        .max()
        .unwrap_or(0)
}

/// The objects one service port needs (see the [module docs](self)).
pub(crate) fn service_objects(entry: &ServiceEntry) -> Objects {
    let mut objects = Objects::default();
    let ip = entry.cluster.ip();
    let v6 = ip.is_ipv6();
    let key = service_key(entry);
    let node_key = entry.node_port.map(|port| node_key(entry, port));
    if entry.endpoints.is_empty() {
        let map = if v6 {
            maps::NO_ENDPOINT_SERVICES6
        } else {
            maps::NO_ENDPOINT_SERVICES
        };
        objects.element(map, key, format!("goto {REJECT_CHAIN}"));
        if let Some(node_key) = node_key {
            objects.element(
                maps::NO_ENDPOINT_NODEPORTS,
                node_key,
                format!("goto {REJECT_CHAIN}"),
            );
        }
        return objects;
    }
    if entry.affinity != Affinity::None {
        affinity_objects(entry, &mut objects);
        return objects;
    }
    for pick in picks(entry) {
        let member = match pick {
            Pick::NodePort(_) => node_key.clone().unwrap_or_default(),
            _ => key.clone(),
        };
        objects.element(&pick.name(), member, String::new());
    }
    let (endpoints, node_endpoints, hairpin) = if v6 {
        (maps::ENDPOINTS6, maps::NODEPORT_ENDPOINTS6, maps::HAIRPIN6)
    } else {
        (maps::ENDPOINTS, maps::NODEPORT_ENDPOINTS, maps::HAIRPIN)
    };
    for (index, endpoint) in entry.endpoints.iter().enumerate() {
        let data = format!("{} . {}", endpoint.ip(), endpoint.port());
        objects.element(endpoints, format!("{key} . {index}"), data.clone());
        if let Some(node_key) = &node_key {
            objects.element(node_endpoints, format!("{node_key} . {index}"), data);
        }
        objects.element(hairpin, format!("{} . {key}", endpoint.ip()), String::new());
    }
    objects
}

/// The chains, sets and verdict-map elements of a service port with ClientIP affinity.
fn affinity_objects(entry: &ServiceEntry, objects: &mut Objects) {
    let ip = entry.cluster.ip();
    let service = service_chain(entry);
    let map = if ip.is_ipv6() {
        maps::SERVICE_IPS6
    } else {
        maps::SERVICE_IPS
    };
    objects.element(map, service_key(entry), format!("goto {service}"));
    if let Some(port) = entry.node_port {
        let external = format!("ext-{}", frontend(entry));
        objects.chains.insert(
            external.clone(),
            vec![format!("jump {MARK_CHAIN}"), format!("goto {service}")],
        );
        objects.element(
            maps::SERVICE_NODEPORTS,
            node_key(entry, port),
            format!("goto {external}"),
        );
    }
    let Affinity::ClientIp { timeout } = entry.affinity else {
        return;
    };
    // Validation refuses a zero timeout; sub-second parts round up.
    let timeout = u32::try_from(timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0))
        .unwrap_or(u32::MAX);
    let mut service_rules = Vec::new();
    let mut picks = Vec::new();
    for (index, &endpoint) in entry.endpoints.iter().enumerate() {
        let chain = endpoint_chain(entry, endpoint);
        let f = family(endpoint.ip());
        let set = format!(
            "aff{timeout}-{}-{}/{}",
            frontend(entry),
            name_ip(endpoint.ip()),
            endpoint.port()
        );
        service_rules.push(format!("{f} saddr @{set} goto {chain}"));
        objects.sets.insert(
            set.clone(),
            SetSpec {
                kind: "set",
                // `timeout` only: the kernel lets `update @set` add to a timeout set (nft
                // marks it dynamic when a rule refers to it).
                body: format!(
                    "{{ type {} ; flags timeout ; timeout {timeout}s ; }}",
                    if endpoint.is_ipv6() {
                        "ipv6_addr"
                    } else {
                        "ipv4_addr"
                    }
                ),
            },
        );
        let rules = vec![
            format!("{f} saddr {} jump {MARK_CHAIN}", endpoint.ip()),
            format!("update @{set} {{ {f} saddr }}"),
            format!(
                "meta l4proto {} dnat {f} to {}",
                proto_name(entry.protocol),
                dnat_target(endpoint)
            ),
        ];
        // Endpoint i of n is taken with probability 1/(n-i) when the ones before it were
        // not: 1/n each overall.
        let remaining = entry.endpoints.len() - index;
        picks.push(if remaining > 1 {
            format!("numgen random mod {remaining} == 0 goto {chain}")
        } else {
            format!("goto {chain}")
        });
        objects.chains.insert(chain, rules);
    }
    service_rules.extend(picks);
    objects.chains.insert(service, service_rules);
}

/// Every command of the skeleton, in creation order: maps and sets, chains (base chains
/// last, so that everything they reference exists), then the chains' rules. Chain
/// `services` is created empty: [`dispatch`] fills it.
pub(crate) fn skeleton(mark: u32) -> Vec<Command> {
    let mut commands = Vec::new();
    let service_key = |ip: &str| format!("{ip} . inet_proto . inet_service");
    let node_key = "inet_proto . inet_service";
    for (name, key) in [
        (maps::SERVICE_IPS, service_key("ipv4_addr")),
        (maps::SERVICE_IPS6, service_key("ipv6_addr")),
        (maps::SERVICE_NODEPORTS, node_key.to_owned()),
        (maps::NO_ENDPOINT_SERVICES, service_key("ipv4_addr")),
        (maps::NO_ENDPOINT_SERVICES6, service_key("ipv6_addr")),
        (maps::NO_ENDPOINT_NODEPORTS, node_key.to_owned()),
    ] {
        commands.push(format!("add map {T} {name} {{ type {key} : verdict ; }}"));
    }
    // `typeof`: the key ends with the index that `numgen` computes, an integer nft can only
    // type by the expression.
    for (name, key, data) in [
        (
            maps::ENDPOINTS,
            "ip daddr . meta l4proto . th dport",
            "ip daddr . th dport",
        ),
        (
            maps::ENDPOINTS6,
            "ip6 daddr . meta l4proto . th dport",
            "ip6 daddr . th dport",
        ),
        (
            maps::NODEPORT_ENDPOINTS,
            "meta l4proto . th dport",
            "ip daddr . th dport",
        ),
        (
            maps::NODEPORT_ENDPOINTS6,
            "meta l4proto . th dport",
            "ip6 daddr . th dport",
        ),
    ] {
        commands.push(format!(
            "add map {T} {name} {{ typeof {key} . numgen random mod 1 : {data} ; }}"
        ));
    }
    for (name, ip) in [(maps::HAIRPIN, "ipv4_addr"), (maps::HAIRPIN6, "ipv6_addr")] {
        commands.push(format!(
            "add set {T} {name} {{ type {ip} . {ip} . inet_proto . inet_service ; }}"
        ));
    }
    let lookup = |f: &str, map: &str| format!("{f} daddr . meta l4proto . th dport vmap @{map}");
    let node_lookup =
        |map: &str| format!("fib daddr type local meta l4proto . th dport vmap @{map}");
    let regular: Vec<(&str, Vec<String>)> = vec![
        (SERVICES, vec![]),
        (
            "no-endpoints",
            vec![
                lookup("ip", maps::NO_ENDPOINT_SERVICES),
                lookup("ip6", maps::NO_ENDPOINT_SERVICES6),
                node_lookup(maps::NO_ENDPOINT_NODEPORTS),
            ],
        ),
        (
            REJECT_CHAIN,
            // TCP gets a reset (refused at once, and not subject to the kernel's ICMP rate
            // limit); everything else an ICMP port unreachable.
            vec![
                "meta l4proto tcp reject with tcp reset".to_owned(),
                "reject".to_owned(),
            ],
        ),
        (
            MARK_CHAIN,
            vec![format!("meta mark set meta mark | {mark:#x}")],
        ),
        (
            "masquerading",
            vec![
                format!("meta mark & {mark:#x} == 0 return"),
                format!("meta mark set meta mark ^ {mark:#x}"),
                "masquerade fully-random".to_owned(),
            ],
        ),
    ];
    // Filter chains run before the usual filter priority (0) so a reject wins over other
    // tables' accepts; NAT chains at the standard dstnat/srcnat priorities.
    let new_connection = "ct state new jump no-endpoints".to_owned();
    let base: Vec<(&str, &str, i32, Vec<String>)> = vec![
        (
            "filter-input",
            "filter hook input",
            -110,
            vec![new_connection.clone()],
        ),
        (
            "filter-forward",
            "filter hook forward",
            -110,
            vec![new_connection.clone()],
        ),
        (
            "filter-output",
            "filter hook output",
            -110,
            vec![new_connection],
        ),
        (
            "nat-prerouting",
            "nat hook prerouting",
            -100,
            vec![format!("jump {SERVICES}")],
        ),
        (
            "nat-output",
            "nat hook output",
            -100,
            vec![format!("jump {SERVICES}")],
        ),
        (
            "nat-postrouting",
            "nat hook postrouting",
            100,
            vec!["jump masquerading".to_owned()],
        ),
    ];
    let mut rules = Vec::new();
    for (name, chain_rules) in regular {
        commands.push(add_chain(name));
        rules.extend(chain_rules.iter().map(|r| add_rule(name, r)));
    }
    for (name, hook, prio, chain_rules) in base {
        commands.push(format!(
            "add chain {T} {name} {{ type {hook} priority {prio} ; }}"
        ));
        rules.extend(chain_rules.iter().map(|r| add_rule(name, r)));
    }
    commands.extend(rules);
    commands
}

/// `add table` then `delete table`: removes the table if it exists, and succeeds when it
/// does not.
pub(crate) fn delete_table() -> Vec<Command> {
    vec![format!("add table {T}"), format!("delete table {T}")]
}

/// `add table`.
pub(crate) fn add_table() -> Command {
    format!("add table {T}")
}

/// `add chain NAME`.
pub(crate) fn add_chain(name: &str) -> Command {
    format!("add chain {T} {name}")
}

/// `flush chain NAME`.
pub(crate) fn flush_chain(name: &str) -> Command {
    format!("flush chain {T} {name}")
}

/// `delete chain NAME`.
pub(crate) fn delete_chain(name: &str) -> Command {
    format!("delete chain {T} {name}")
}

/// `add rule CHAIN RULE`.
pub(crate) fn add_rule(chain: &str, rule: &str) -> Command {
    format!("add rule {T} {chain} {rule}")
}

/// `add set|map NAME { ... }`.
pub(crate) fn add_set(name: &str, spec: &SetSpec) -> Command {
    format!("add {} {T} {name} {}", spec.kind, spec.body)
}

/// `delete set|map NAME`.
pub(crate) fn delete_set(name: &str, spec: &SetSpec) -> Command {
    format!("delete {} {T} {name}", spec.kind)
}

/// `add element SET { KEY : DATA, ... }` (`{ KEY, ... }` for a set).
pub(crate) fn add_elements<'a>(
    set: &str,
    elements: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Command {
    let mut command = format!("add element {T} {set} {{ ");
    for (i, (key, data)) in elements.into_iter().enumerate() {
        if i > 0 {
            command.push_str(", ");
        }
        command.push_str(key);
        if !data.is_empty() {
            let _ = write!(command, " : {data}");
        }
    }
    command.push_str(" }");
    command
}

/// `delete element SET { KEY, ... }`.
pub(crate) fn delete_elements<'a>(set: &str, keys: impl IntoIterator<Item = &'a str>) -> Command {
    let mut command = format!("delete element {T} {set} {{ ");
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            command.push_str(", ");
        }
        command.push_str(key);
    }
    command.push_str(" }");
    command
}
