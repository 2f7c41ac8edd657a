//! [`plan`]: the nft transaction that takes the kernel from the table applied last to the
//! desired one, touching only the service ports that changed. Pure: tables in, commands out.
//!
//! Service ports whose entry is equal in both tables contribute nothing (not even a
//! comparison of their rules). For the others, the objects of the old and the new entries
//! ([`service_objects`]) are compared by name, across all changed ports at once (so that a
//! frontend moving from one service to another in the same sync is a change of contents, not
//! a delete and an add of the same name in the wrong order), and so are the dispatch objects
//! ([`dispatch`]) of both tables when the endpoint counts in use differ:
//! - set and map elements are added, deleted, or deleted and re-added with new data (for
//!   most service ports that is all a sync sends);
//! - a new chain is added and filled; a chain whose rules differ is flushed and refilled; a
//!   chain no longer needed is flushed and deleted;
//! - sets are added or deleted (an affinity set's name carries its timeout, so a new timeout
//!   is a new set and its chains are rewritten).
//!
//! The commands are ordered so that every reference is valid inside the one transaction:
//! sets and chains are created first, elements pointing at chains that go away are deleted
//! before those chains are flushed and deleted, rules are added once their targets exist.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::ruleset::{self, Command, Objects, dispatch, picks_of, service_objects};
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
    /// The endpoint counts that have pick chains once the plan is applied (1 to this).
    pub picks_upto: usize,
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

/// The transaction from `old` (what the kernel runs, with pick chains for 1 to `picks_upto`
/// endpoints; `None`: nothing known) to `new`. The table is taken over (deleted if a
/// previous run left one, and created afresh) when nothing is known, or when `new` has a
/// service port with more endpoints than there are pick chains (see
/// [`pick_chains`](ruleset::pick_chains)).
///
/// `new` must have been validated ([`validate`](super::validate::validate)).
pub(crate) fn plan(
    old: Option<&ServiceTable>,
    picks_upto: usize,
    new: &ServiceTable,
    mark: u32,
) -> Plan {
    let empty = ServiceTable::new();
    let most = ruleset::most_endpoints(new);
    let takeover = old.is_none() || most > picks_upto;
    let known = old.unwrap_or(&empty);
    // A takeover builds everything afresh: the diff starts from an empty table.
    let old = if takeover { &empty } else { known };
    let mut plan = Plan {
        picks_upto: if takeover {
            most.max(ruleset::PRECREATED_PICKS)
        } else {
            picks_upto
        },
        ..Plan::default()
    };
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
    if takeover {
        // The flows of what the kernel ran still need their flush.
        for (key, previous) in known.iter() {
            stale_flows(previous, new.get(key), &mut plan.stale);
        }
    }
    let mut commands = Vec::new();
    if takeover {
        // Removes a table left by a previous run (and succeeds when there is none); the
        // whole skeleton is then created in the same transaction, with an empty `services`.
        commands.extend(ruleset::delete_table());
        commands.push(ruleset::add_table());
        commands.extend(ruleset::skeleton(mark));
        commands.extend(ruleset::pick_chains(plan.picks_upto));
        before.extend(dispatch(&Default::default()));
        before.chains.values_mut().for_each(Vec::clear);
        after.extend(dispatch(&picks_of(new)));
    } else if plan.changed_ports > 0 {
        // The dispatch depends on which endpoint counts are in use; when that set is the
        // same, both sides are equal and contribute nothing.
        before.extend(dispatch(&picks_of(old)));
        after.extend(dispatch(&picks_of(new)));
    }
    // 1. New sets and chains.
    for (name, spec) in &after.sets {
        if !before.sets.contains_key(name) {
            commands.push(ruleset::add_set(name, spec));
        }
    }
    for name in after.chains.keys() {
        if !before.chains.contains_key(name) {
            commands.push(ruleset::add_chain(name));
        }
    }
    // 2. Elements that go away or change their data.
    let mut removed: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for ((set, key), data) in &before.elements {
        if after.elements.get(&(set.clone(), key.clone())) != Some(data)
            && !set_replaced(&before, &after, set)
        {
            removed.entry(set).or_default().push(key);
        }
    }
    for (set, keys) in removed {
        commands.push(ruleset::delete_elements(set, keys));
    }
    // 3. Chains that change or go away are emptied; 4. new and changed chains are filled.
    let mut fills = Vec::new();
    for (name, rules) in &before.chains {
        match after.chains.get(name) {
            Some(new_rules) if new_rules == rules => {}
            Some(new_rules) => {
                commands.push(ruleset::flush_chain(name));
                fills.extend(new_rules.iter().map(|r| ruleset::add_rule(name, r)));
            }
            None => commands.push(ruleset::flush_chain(name)),
        }
    }
    for (name, rules) in &after.chains {
        if !before.chains.contains_key(name) {
            fills.extend(rules.iter().map(|r| ruleset::add_rule(name, r)));
        }
    }
    commands.extend(fills);
    // 5. Elements that are new or changed.
    let mut added: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for ((set, key), data) in &after.elements {
        if before.elements.get(&(set.clone(), key.clone())) != Some(data) {
            added
                .entry(set)
                .or_default()
                .push((key.as_str(), data.as_str()));
        }
    }
    for (set, elements) in added {
        commands.push(ruleset::add_elements(set, elements));
    }
    // 6. Chains and sets nothing refers to any more.
    for name in before.chains.keys() {
        if !after.chains.contains_key(name) {
            commands.push(ruleset::delete_chain(name));
        }
    }
    for (name, spec) in &before.sets {
        if !after.sets.contains_key(name) {
            commands.push(ruleset::delete_set(name, spec));
        }
    }
    plan.commands = commands;
    plan.stale.sort();
    plan.stale.dedup();
    plan
}

/// Whether set `name` goes away in this transaction (its elements go with it).
fn set_replaced(before: &Objects, after: &Objects, name: &str) -> bool {
    before.sets.contains_key(name) && !after.sets.contains_key(name)
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
