//! [`plan`]: the nft transaction that takes the kernel from the table applied last to the
//! desired one, touching only the service ports that changed. Pure: tables in, commands out.
//!
//! Service ports whose entry is equal in both tables contribute nothing (not even a
//! comparison of their rules). For the others, the objects of the old and the new entries
//! ([`service_objects`]) are compared by name, across all changed ports at once (so that a
//! frontend moving from one service to another in the same sync is a change of contents, not
//! a delete and an add of the same name in the wrong order):
//! - a new chain is added and filled; a chain whose rules differ is flushed and refilled; a
//!   chain no longer needed is flushed and deleted;
//! - map elements are added, deleted, or deleted and re-added with a new verdict;
//! - affinity sets are added or deleted (a set's name carries its timeout, so a new timeout
//!   is a new set and its chains are rewritten).
//!
//! The commands are ordered so that every reference is valid inside the one transaction:
//! sets and chains are created first, elements pointing at chains that go away are deleted
//! before those chains are flushed and deleted, rules are added once their targets exist.

use std::collections::BTreeMap;
use std::net::IpAddr;

use nftables::schema::{NfListObject, Table};
use nftables::types::NfFamily;

use super::ruleset::{
    self, AffinitySet, Command, MapElement, RuleExprs, ServiceObjects, TABLE, service_objects,
};
use crate::table::{Protocol, ServiceEntry, ServiceTable};

/// One nft transaction and what else the sync must do.
#[derive(Clone, Debug, Default)]
pub(crate) struct Plan {
    /// The commands, in order (empty: nothing to do).
    pub commands: Vec<Command>,
    /// Service ports added, changed or removed.
    pub changed_ports: usize,
    /// UDP flows to removed endpoints, to flush from conntrack once the rules are in force.
    pub stale: Vec<StaleFlows>,
}

/// Conntrack entries of UDP flows from a service frontend to an endpoint that left it: without
/// a flush they keep sending a client's datagrams to the removed endpoint for as long as the
/// client keeps the flow alive (kube-proxy's long-standing UDP blackhole).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StaleFlows {
    /// The service port's ClusterIP and port (flows whose original destination it is).
    pub cluster_ip: IpAddr,
    /// The service port.
    pub port: u16,
    /// The NodePort, whose flows are flushed too.
    pub node_port: Option<u16>,
    /// The removed endpoint's address (flows DNATed to it).
    pub endpoint: IpAddr,
}

/// The objects of several service ports, by name.
#[derive(Default)]
struct Objects {
    chains: BTreeMap<String, Vec<RuleExprs>>,
    sets: BTreeMap<String, AffinitySet>,
    elements: BTreeMap<(&'static str, ruleset::ElementKey), MapElement>,
}

impl Objects {
    fn extend(&mut self, objects: ServiceObjects) {
        self.chains.extend(objects.chains);
        self.sets
            .extend(objects.sets.into_iter().map(|s| (s.name.clone(), s)));
        self.elements.extend(
            objects
                .elements
                .into_iter()
                .map(|e| ((e.map, e.key.clone()), e)),
        );
    }
}

/// The transaction from `old` (what the kernel runs; `None`: nothing known, so the table is
/// taken over: deleted if a previous run left one, and created afresh) to `new`.
///
/// `new` must have been validated ([`validate`](super::validate::validate)).
pub(crate) fn plan(old: Option<&ServiceTable>, new: &ServiceTable, mark: u32) -> Plan {
    let empty = ServiceTable::new();
    let takeover = old.is_none();
    let old = old.unwrap_or(&empty);
    let mut plan = Plan::default();
    let mut before = Objects::default();
    let mut after = Objects::default();
    for (key, entry) in new.iter() {
        match old.get(key) {
            Some(previous) if previous == entry => {}
            previous => {
                plan.changed_ports += 1;
                if let Some(previous) = previous {
                    before.extend(service_objects(previous));
                    stale_flows(previous, Some(entry), &mut plan.stale);
                }
                after.extend(service_objects(entry));
            }
        }
    }
    for (key, previous) in old.iter() {
        if new.get(key).is_none() {
            plan.changed_ports += 1;
            before.extend(service_objects(previous));
            stale_flows(previous, None, &mut plan.stale);
        }
    }
    let table = || Table {
        family: NfFamily::INet,
        name: TABLE.into(),
        handle: None,
    };
    let mut commands = Vec::new();
    let add = Command::add;
    let delete = Command::delete;
    let flush = Command::flush_chain;
    if takeover {
        // `add` then `delete`: removes a table left by a previous run, and succeeds when there
        // is none; the whole skeleton is then created in the same transaction.
        commands.push(add(NfListObject::Table(table())));
        commands.push(delete(NfListObject::Table(table())));
        commands.push(add(NfListObject::Table(table())));
        commands.extend(ruleset::skeleton(mark));
    }
    // 1. New sets and chains.
    for (name, spec) in &after.sets {
        if !before.sets.contains_key(name) {
            commands.push(add(ruleset::set(spec)));
        }
    }
    for name in after.chains.keys() {
        if !before.chains.contains_key(name) {
            commands.push(add(NfListObject::Chain(ruleset::chain(name))));
        }
    }
    // 2. Elements that go away or change their verdict.
    let mut removed: BTreeMap<&'static str, Vec<&MapElement>> = BTreeMap::new();
    for (id, element) in &before.elements {
        if after.elements.get(id) != Some(element) {
            removed.entry(element.map).or_default().push(element);
        }
    }
    for (map, elements) in &removed {
        commands.push(delete(ruleset::elements(map, elements, false)));
    }
    // 3. Chains that change or go away are emptied; 4. new and changed chains are filled.
    let mut fills = Vec::new();
    for (name, rules) in &before.chains {
        match after.chains.get(name) {
            Some(new_rules) if new_rules == rules => {}
            Some(new_rules) => {
                commands.push(flush(name));
                fills.extend(new_rules.iter().map(|r| ruleset::rule(name, r.clone())));
            }
            None => commands.push(flush(name)),
        }
    }
    for (name, rules) in &after.chains {
        if !before.chains.contains_key(name) {
            fills.extend(rules.iter().map(|r| ruleset::rule(name, r.clone())));
        }
    }
    commands.extend(fills.into_iter().map(add));
    // 5. Elements that are new or changed.
    let mut added: BTreeMap<&'static str, Vec<&MapElement>> = BTreeMap::new();
    for (id, element) in &after.elements {
        if before.elements.get(id) != Some(element) {
            added.entry(element.map).or_default().push(element);
        }
    }
    for (map, elements) in &added {
        commands.push(add(ruleset::elements(map, elements, true)));
    }
    // 6. Chains and sets nothing refers to any more.
    for name in before.chains.keys() {
        if !after.chains.contains_key(name) {
            commands.push(delete(NfListObject::Chain(ruleset::chain(name))));
        }
    }
    for (name, spec) in &before.sets {
        if !after.sets.contains_key(name) {
            commands.push(delete(ruleset::set(spec)));
        }
    }
    plan.commands = commands;
    plan.stale.sort();
    plan.stale.dedup();
    plan
}

/// The UDP flows of `old` that `new` (the same service port now, if any) no longer routes.
fn stale_flows(old: &ServiceEntry, new: Option<&ServiceEntry>, out: &mut Vec<StaleFlows>) {
    if old.protocol != Protocol::Udp {
        return;
    }
    let kept: &[std::net::SocketAddr] = match new {
        Some(new) if new.same_frontend(old) => &new.endpoints,
        _ => &[],
    };
    for endpoint in &old.endpoints {
        // An endpoint that only changed its port is stale too: flows are DNATed to ip:port.
        if !kept.contains(endpoint) {
            out.push(StaleFlows {
                cluster_ip: old.cluster.ip(),
                port: old.cluster.port(),
                node_port: old.node_port,
                endpoint: endpoint.ip(),
            });
        }
    }
}
