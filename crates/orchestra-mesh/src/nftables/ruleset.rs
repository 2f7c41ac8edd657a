//! The ruleset as data: the fixed skeleton of table `inet orchestra`, and the objects (chains,
//! affinity sets, verdict-map elements) that one service port contributes. Pure functions, no
//! I/O; [`plan`](super::plan) diffs them.
//!
//! The shape follows kube-proxy's nftables mode:
//! - base chains at the NAT hooks jump to `services`, whose rules look the packet's
//!   `daddr . l4proto . dport` up in the verdict map `service-ips` (`service-ips6` for IPv6),
//!   and, for a local destination (`fib daddr type local`), `l4proto . dport` in
//!   `service-nodeports`; each element goes to one chain per service port;
//! - the service chain (`svc-FRONTEND`) first sends clients with a live affinity entry to
//!   their endpoint, then picks an endpoint chain at random (`numgen random mod N-i == 0`
//!   for endpoint i of N: uniform);
//! - the endpoint chain (`ep-FRONTEND-ENDPOINT`) marks hairpin traffic (the endpoint calling
//!   its own service) for masquerade, records the client in the endpoint's affinity set, and
//!   DNATs to the endpoint;
//! - NodePort traffic goes through `ext-FRONTEND`, which marks it for masquerade (the reply
//!   must come back through this node) before the service chain;
//! - `nat-postrouting` masquerades marked packets;
//! - service ports without endpoints are in `no-endpoint-services` / `no-endpoint-nodeports`,
//!   looked up by filter chains for new connections, and rejected at once.
//!
//! Object names are derived from the frontend (`10.96.0.10/udp/53`), unique within a valid
//! table, so the same table always gives the same names, across restarts too.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use nftables::expr::{
    BinaryOperation, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, NgMode,
    Numgen, Payload, PayloadField, Verdict,
};
use nftables::schema::{
    Chain, FlushObject, NfCmd, NfListObject, NfObject, Rule, Set, SetFlag, SetType, SetTypeValue,
};
use nftables::stmt::{
    JumpTarget, Mangle, Match, NAT, NATFamily, NATFlag, Operator, Reject, RejectType, SetOp,
    Statement, VerdictMap,
};
use nftables::types::{NfChainType, NfFamily, NfHook};
use serde::Serialize;

use crate::table::{Affinity, Protocol, ServiceEntry};

/// The table's name (family `inet`). Nothing outside it is ever touched.
pub const TABLE: &str = "orchestra";

/// One command of a transaction.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum Command {
    /// A command the `nftables` crate models.
    Nf(NfObject<'static>),
    /// A command it cannot express: creating a map whose values are verdicts (its `SetType`
    /// has no `verdict`), written as nft's JSON directly.
    Raw(serde_json::Value),
}

impl Command {
    /// `add OBJECT`.
    pub fn add(object: NfListObject<'static>) -> Self {
        Command::Nf(NfObject::CmdObject(NfCmd::Add(object)))
    }

    /// `delete OBJECT`.
    pub fn delete(object: NfListObject<'static>) -> Self {
        Command::Nf(NfObject::CmdObject(NfCmd::Delete(object)))
    }

    /// `flush chain NAME`.
    pub fn flush_chain(name: &str) -> Self {
        Command::Nf(NfObject::CmdObject(NfCmd::Flush(FlushObject::Chain(
            chain(name),
        ))))
    }
}

/// The JSON nft reads: `{"nftables": [COMMAND, ...]}`.
pub(crate) fn to_json(commands: &[Command]) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct Payload<'a> {
        nftables: &'a [Command],
    }
    serde_json::to_string(&Payload { nftables: commands })
}

/// One rule: its statements, in order.
pub(crate) type RuleExprs = Vec<Statement<'static>>;

/// What one service port puts in the table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ServiceObjects {
    /// Regular chains and their rules.
    pub chains: Vec<(String, Vec<RuleExprs>)>,
    /// Dynamic sets of client addresses (ClientIP affinity), by name.
    pub sets: Vec<AffinitySet>,
    /// Verdict-map elements: which map, which key, which chain it goes to.
    pub elements: Vec<MapElement>,
}

/// One endpoint's affinity set: the clients that stick to it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct AffinitySet {
    /// The set's name (it carries the timeout, so a new timeout is a new set).
    pub name: String,
    /// Whether it holds IPv6 addresses.
    pub ipv6: bool,
    /// Seconds an idle client keeps its endpoint.
    pub timeout: u32,
}

/// One element of a verdict map.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct MapElement {
    /// The map.
    pub map: &'static str,
    /// The key.
    pub key: ElementKey,
    /// The chain it goes to.
    pub target: String,
}

/// The key of a verdict-map element.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ElementKey {
    /// `ip . proto . port` (service-ips, no-endpoint-services).
    Service(IpAddr, Protocol, u16),
    /// `proto . port` (service-nodeports, no-endpoint-nodeports).
    NodePort(Protocol, u16),
}

impl ElementKey {
    /// The key as an nftables expression.
    pub fn expr(&self) -> Expression<'static> {
        match *self {
            ElementKey::Service(ip, protocol, port) => concat(vec![
                Expression::String(ip.to_string().into()),
                Expression::String(proto_name(protocol).into()),
                Expression::Number(u32::from(port)),
            ]),
            ElementKey::NodePort(protocol, port) => concat(vec![
                Expression::String(proto_name(protocol).into()),
                Expression::Number(u32::from(port)),
            ]),
        }
    }
}

/// The maps of the skeleton.
pub(crate) mod maps {
    /// IPv4 ClusterIP . proto . port -> service chain.
    pub const SERVICE_IPS: &str = "service-ips";
    /// IPv6 ClusterIP . proto . port -> service chain.
    pub const SERVICE_IPS6: &str = "service-ips6";
    /// proto . NodePort -> external chain.
    pub const SERVICE_NODEPORTS: &str = "service-nodeports";
    /// IPv4 ClusterIP . proto . port of a service port without endpoints -> reject.
    pub const NO_ENDPOINT_SERVICES: &str = "no-endpoint-services";
    /// IPv6 ClusterIP . proto . port of a service port without endpoints -> reject.
    pub const NO_ENDPOINT_SERVICES6: &str = "no-endpoint-services6";
    /// proto . NodePort of a service port without endpoints -> reject.
    pub const NO_ENDPOINT_NODEPORTS: &str = "no-endpoint-nodeports";
}

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

/// The frontend part of object names: `10.96.0.10/tcp/80`.
fn frontend(entry: &ServiceEntry) -> String {
    format!(
        "{}/{}/{}",
        entry.cluster.ip(),
        proto_name(entry.protocol),
        entry.cluster.port()
    )
}

/// The name of a service port's chain.
pub(crate) fn service_chain(entry: &ServiceEntry) -> String {
    format!("svc-{}", frontend(entry))
}

/// The name of one endpoint's chain.
pub(crate) fn endpoint_chain(entry: &ServiceEntry, endpoint: SocketAddr) -> String {
    format!(
        "ep-{}-{}/{}",
        frontend(entry),
        endpoint.ip(),
        endpoint.port()
    )
}

/// The objects one service port needs (see the [module docs](self)).
pub(crate) fn service_objects(entry: &ServiceEntry) -> ServiceObjects {
    let mut objects = ServiceObjects::default();
    let ip = entry.cluster.ip();
    let key = ElementKey::Service(ip, entry.protocol, entry.cluster.port());
    let node_key = entry
        .node_port
        .map(|port| ElementKey::NodePort(entry.protocol, port));
    if entry.endpoints.is_empty() {
        let map = if ip.is_ipv6() {
            maps::NO_ENDPOINT_SERVICES6
        } else {
            maps::NO_ENDPOINT_SERVICES
        };
        objects.elements.push(MapElement {
            map,
            key,
            target: REJECT_CHAIN.to_owned(),
        });
        if let Some(key) = node_key {
            objects.elements.push(MapElement {
                map: maps::NO_ENDPOINT_NODEPORTS,
                key,
                target: REJECT_CHAIN.to_owned(),
            });
        }
        return objects;
    }
    let service = service_chain(entry);
    let map = if ip.is_ipv6() {
        maps::SERVICE_IPS6
    } else {
        maps::SERVICE_IPS
    };
    objects.elements.push(MapElement {
        map,
        key,
        target: service.clone(),
    });
    if let Some(key) = node_key {
        let external = format!("ext-{}", frontend(entry));
        objects.chains.push((
            external.clone(),
            vec![vec![jump(MARK_CHAIN)], vec![goto(&service)]],
        ));
        objects.elements.push(MapElement {
            map: maps::SERVICE_NODEPORTS,
            key,
            target: external,
        });
    }
    let timeout = match entry.affinity {
        Affinity::None => None,
        // Validation refuses a zero timeout; sub-second parts round up.
        Affinity::ClientIp { timeout } => Some(
            u32::try_from(timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0))
                .unwrap_or(u32::MAX),
        ),
    };
    let mut service_rules = Vec::new();
    let mut picks = Vec::new();
    for (index, &endpoint) in entry.endpoints.iter().enumerate() {
        let chain = endpoint_chain(entry, endpoint);
        let family = if endpoint.is_ipv6() { "ip6" } else { "ip" };
        let mut rules = vec![vec![
            matches(
                payload(family, "saddr"),
                Expression::String(endpoint.ip().to_string().into()),
            ),
            jump(MARK_CHAIN),
        ]];
        if let Some(timeout) = timeout {
            let set = format!(
                "aff{timeout}-{}-{}/{}",
                frontend(entry),
                endpoint.ip(),
                endpoint.port()
            );
            service_rules.push(vec![
                matches(
                    payload(family, "saddr"),
                    Expression::String(format!("@{set}").into()),
                ),
                goto(&chain),
            ]);
            rules.push(vec![Statement::Set(nftables::stmt::Set {
                op: SetOp::Update,
                elem: payload(family, "saddr"),
                set: format!("@{set}").into(),
            })]);
            objects.sets.push(AffinitySet {
                name: set,
                ipv6: endpoint.is_ipv6(),
                timeout,
            });
        }
        rules.push(vec![
            matches(
                meta(MetaKey::L4proto),
                Expression::String(proto_name(entry.protocol).into()),
            ),
            Statement::DNAT(Some(NAT {
                addr: Some(Expression::String(endpoint.ip().to_string().into())),
                family: Some(if endpoint.is_ipv6() {
                    NATFamily::IP6
                } else {
                    NATFamily::IP
                }),
                port: Some(Expression::Number(u32::from(endpoint.port()))),
                flags: None,
            })),
        ]);
        // Endpoint i of n is taken with probability 1/(n-i) when the ones before it were not:
        // 1/n each overall. Rules rather than one `numgen random mod n vmap {...}`: nft 1.0.x
        // slows down with the number of anonymous maps in a table (measured: 5,000 services
        // of 10 endpoints take 37 s to load with vmaps, 5 s with rules), and NAT chains only
        // see a connection's first packet, so the few extra rule evaluations cost nothing.
        let remaining = u32::try_from(entry.endpoints.len() - index).unwrap_or(u32::MAX);
        picks.push(if remaining > 1 {
            vec![
                matches(
                    Expression::Named(NamedExpression::Numgen(Numgen {
                        mode: NgMode::Random,
                        ng_mod: remaining,
                        offset: None,
                    })),
                    Expression::Number(0),
                ),
                goto(&chain),
            ]
        } else {
            vec![goto(&chain)]
        });
        objects.chains.push((chain, rules));
    }
    service_rules.extend(picks);
    objects.chains.push((service, service_rules));
    objects
}

/// Every object of the skeleton, in creation order: maps, chains (base chains last, so that
/// everything they reference exists), then the chains' rules.
pub(crate) fn skeleton(mark: u32) -> Vec<Command> {
    let mut commands = Vec::new();
    let service_key = |ip: &str| serde_json::json!([ip, "inet_proto", "inet_service"]);
    let node_key = || serde_json::json!(["inet_proto", "inet_service"]);
    for (name, key) in [
        (maps::SERVICE_IPS, service_key("ipv4_addr")),
        (maps::SERVICE_IPS6, service_key("ipv6_addr")),
        (maps::SERVICE_NODEPORTS, node_key()),
        (maps::NO_ENDPOINT_SERVICES, service_key("ipv4_addr")),
        (maps::NO_ENDPOINT_SERVICES6, service_key("ipv6_addr")),
        (maps::NO_ENDPOINT_NODEPORTS, node_key()),
    ] {
        commands.push(Command::Raw(serde_json::json!({"add": {"map": {
            "family": "inet",
            "table": TABLE,
            "name": name,
            "type": key,
            "map": "verdict",
        }}})));
    }
    let local = || {
        matches_op(
            Expression::Named(NamedExpression::Fib(Fib {
                result: FibResult::Type,
                flags: HashSet::from([FibFlag::Daddr]),
            })),
            Expression::String("local".into()),
            Operator::EQ,
        )
    };
    let lookup = |family: &'static str, map: &str| {
        vec![Statement::VerdictMap(VerdictMap {
            key: concat(vec![
                payload(family, "daddr"),
                meta(MetaKey::L4proto),
                payload("th", "dport"),
            ]),
            data: Expression::String(format!("@{map}").into()),
        })]
    };
    let node_lookup = |map: &str| {
        vec![
            local(),
            Statement::VerdictMap(VerdictMap {
                key: concat(vec![meta(MetaKey::L4proto), payload("th", "dport")]),
                data: Expression::String(format!("@{map}").into()),
            }),
        ]
    };
    let mark_expr = || Expression::Number(mark);
    let regular: Vec<(&str, Vec<RuleExprs>)> = vec![
        (
            "services",
            vec![
                lookup("ip", maps::SERVICE_IPS),
                lookup("ip6", maps::SERVICE_IPS6),
                node_lookup(maps::SERVICE_NODEPORTS),
            ],
        ),
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
                vec![
                    matches(meta(MetaKey::L4proto), Expression::String("tcp".into())),
                    Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None))),
                ],
                vec![Statement::Reject(Some(Reject::new(None, None)))],
            ],
        ),
        (
            MARK_CHAIN,
            vec![vec![Statement::Mangle(Mangle {
                key: meta(MetaKey::Mark),
                value: Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![
                    meta(MetaKey::Mark),
                    mark_expr(),
                ]))),
            })]],
        ),
        (
            "masquerading",
            vec![
                vec![
                    matches_op(
                        Expression::BinaryOperation(Box::new(BinaryOperation::AND(
                            meta(MetaKey::Mark),
                            mark_expr(),
                        ))),
                        Expression::Number(0),
                        Operator::EQ,
                    ),
                    Statement::Return(None),
                ],
                vec![Statement::Mangle(Mangle {
                    key: meta(MetaKey::Mark),
                    value: Expression::BinaryOperation(Box::new(BinaryOperation::XOR(
                        meta(MetaKey::Mark),
                        mark_expr(),
                    ))),
                })],
                vec![Statement::Masquerade(Some(NAT {
                    addr: None,
                    family: None,
                    port: None,
                    flags: Some(HashSet::from([NATFlag::FullyRandom])),
                }))],
            ],
        ),
    ];
    let new_connection = || {
        matches_op(
            Expression::Named(NamedExpression::CT(nftables::expr::CT {
                key: "state".into(),
                family: None,
                dir: None,
            })),
            Expression::String("new".into()),
            Operator::IN,
        )
    };
    // Filter chains run before the usual filter priority (0) so a reject wins over other
    // tables' accepts; NAT chains at the standard dstnat/srcnat priorities.
    let base: Vec<(&str, NfChainType, NfHook, i32, Vec<RuleExprs>)> = vec![
        (
            "filter-input",
            NfChainType::Filter,
            NfHook::Input,
            -110,
            vec![vec![new_connection(), jump("no-endpoints")]],
        ),
        (
            "filter-forward",
            NfChainType::Filter,
            NfHook::Forward,
            -110,
            vec![vec![new_connection(), jump("no-endpoints")]],
        ),
        (
            "filter-output",
            NfChainType::Filter,
            NfHook::Output,
            -110,
            vec![vec![new_connection(), jump("no-endpoints")]],
        ),
        (
            "nat-prerouting",
            NfChainType::NAT,
            NfHook::Prerouting,
            -100,
            vec![vec![jump("services")]],
        ),
        (
            "nat-output",
            NfChainType::NAT,
            NfHook::Output,
            -100,
            vec![vec![jump("services")]],
        ),
        (
            "nat-postrouting",
            NfChainType::NAT,
            NfHook::Postrouting,
            100,
            vec![vec![jump("masquerading")]],
        ),
    ];
    let mut rules = Vec::new();
    for (name, chain_rules) in regular {
        commands.push(Command::add(NfListObject::Chain(chain(name))));
        rules.extend(chain_rules.into_iter().map(|r| rule(name, r)));
    }
    for (name, kind, hook, prio, chain_rules) in base {
        commands.push(Command::add(NfListObject::Chain(Chain {
            _type: Some(kind),
            hook: Some(hook),
            prio: Some(prio),
            ..chain(name)
        })));
        rules.extend(chain_rules.into_iter().map(|r| rule(name, r)));
    }
    commands.extend(rules.into_iter().map(Command::add));
    commands
}

/// A regular chain of the table.
pub(crate) fn chain(name: &str) -> Chain<'static> {
    Chain {
        family: NfFamily::INet,
        table: TABLE.into(),
        name: name.to_owned().into(),
        newname: None,
        handle: None,
        _type: None,
        hook: None,
        prio: None,
        dev: None,
        policy: None,
    }
}

/// A rule of chain `chain`.
pub(crate) fn rule(chain: &str, exprs: RuleExprs) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family: NfFamily::INet,
        table: TABLE.into(),
        chain: chain.to_owned().into(),
        expr: exprs.into(),
        handle: None,
        index: None,
        comment: None,
    })
}

/// An affinity set of the table.
pub(crate) fn set(spec: &AffinitySet) -> NfListObject<'static> {
    NfListObject::Set(Box::new(Set {
        family: NfFamily::INet,
        table: TABLE.into(),
        name: spec.name.clone().into(),
        handle: None,
        set_type: SetTypeValue::Single(if spec.ipv6 {
            SetType::Ipv6Addr
        } else {
            SetType::Ipv4Addr
        }),
        policy: None,
        // `timeout` only: nft 1.0.6's JSON parser does not know `dynamic`, and the kernel lets
        // `update @set` add to a timeout set anyway (nft marks it when the rule refers to it).
        flags: Some(HashSet::from([SetFlag::Timeout])),
        elem: None,
        timeout: Some(spec.timeout),
        gc_interval: None,
        size: None,
        comment: None,
    }))
}

/// Map elements of one map (all of the same map).
pub(crate) fn elements(
    map: &str,
    elements: &[&MapElement],
    with_verdict: bool,
) -> NfListObject<'static> {
    NfListObject::Element(nftables::schema::Element {
        family: NfFamily::INet,
        table: TABLE.into(),
        name: map.to_owned().into(),
        elem: elements
            .iter()
            .map(|element| {
                if with_verdict {
                    Expression::List(vec![
                        element.key.expr(),
                        Expression::Verdict(Verdict::Goto(JumpTarget {
                            target: element.target.clone().into(),
                        })),
                    ])
                } else {
                    element.key.expr()
                }
            })
            .collect::<Vec<_>>()
            .into(),
    })
}

fn concat(parts: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(parts))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn matches(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    matches_op(left, right, Operator::EQ)
}

fn matches_op(
    left: Expression<'static>,
    right: Expression<'static>,
    op: Operator,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn jump(target: &str) -> Statement<'static> {
    Statement::Jump(JumpTarget {
        target: target.to_owned().into(),
    })
}

fn goto(target: &str) -> Statement<'static> {
    Statement::Goto(JumpTarget {
        target: target.to_owned().into(),
    })
}
