//! [`plan`]: the nft transaction that takes the kernel from the table applied last to the
//! desired one, touching only the service ports that changed. Pure: tables in, commands out.
//!
//! An incremental plan costs what changed, not the size of the table: it is given the
//! changed service ports ([`diff`](super::diff)) and what the proxy knows of the applied
//! table ([`Applied`]: the endpoint counts in use come from its pick counts, not from a walk
//! of either table). Service ports that did not change contribute nothing. For the others, the objects of the old and the new entries
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

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::applied::Applied;
use super::diff::Change;
use super::ruleset::{self, Command, Objects, Pick, dispatch, picks_of, service_objects};
use crate::table::{Protocol, ServiceEntry, ServiceTable};

/// One nft transaction and what else the sync must do.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// The commands, in order (empty: nothing to do).
    pub commands: Vec<Command>,
    /// Service ports added, changed or removed.
    pub changed_ports: usize,
    /// UDP flows to removed endpoints, to flush from conntrack once the rules are in force.
    pub stale: Vec<StaleFlows>,
    /// The endpoint counts that have pick chains once the plan is applied (1 to this).
    pub picks_upto: usize,
    /// How the proxy's [`Applied`] follows once the transaction is in force.
    pub then: Then,
}

/// How the proxy's record of what the kernel runs follows a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Then {
    /// The table was taken over: the record is rebuilt from the new table.
    TakenOver,
    /// These changes were applied to the recorded table (none: nothing to do).
    Changed(Vec<Change>),
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

/// The transaction from what `applied` says the kernel runs (`None`: nothing known) to
/// `new`, which differs from `applied`'s table by `changes` (see [`diff`](super::diff::diff);
/// ignored when nothing is known). The table is taken over (deleted if a previous run left
/// one, and created afresh) when nothing is known, or when a changed service port has more
/// endpoints than there are pick chains (see [`pick_chains`](ruleset::pick_chains)): only
/// then does the plan cost the size of `new`.
///
/// `new` must have been validated ([`validate`](super::validate)).
pub(crate) fn plan(
    applied: Option<&Applied>,
    new: &ServiceTable,
    changes: Vec<Change>,
    mark: u32,
) -> Plan {
    let Some(applied) = applied else {
        return takeover(None, new, mark);
    };
    // Entries that did not change have at most `picks_upto` endpoints already.
    let most = changes
        .iter()
        .filter_map(|c| c.new.as_ref())
        .map(|entry| entry.endpoints.len())
        .max()
        .unwrap_or(0);
    if most > applied.picks_upto {
        return takeover(Some(&applied.table), new, mark);
    }
    let dispatch = (!changes.is_empty()).then(|| {
        (
            applied.picks.in_use(),
            applied.picks.after(&changes).in_use(),
        )
    });
    let mut plan = incremental(
        changes.iter().map(|c| (c.old.as_deref(), c.new.as_deref())),
        dispatch.as_ref().map(|(before, after)| (before, after)),
        applied.picks_upto,
    );
    plan.then = Then::Changed(changes);
    plan
}

/// The transaction that deletes whatever table `inet orchestra` there is and creates `new`
/// afresh; `known` is what the proxy had programmed (its UDP flows that `new` no longer
/// routes are flushed).
fn takeover(known: Option<&ServiceTable>, new: &ServiceTable, mark: u32) -> Plan {
    let picks_upto = ruleset::most_endpoints(new).max(ruleset::PRECREATED_PICKS);
    let (mut before, mut after, changed_ports, mut stale) =
        sides(new.iter().map(|(_, entry)| (None, Some(entry))));
    for (key, previous) in known.into_iter().flat_map(ServiceTable::iter) {
        stale_flows(previous, new.get(key), &mut stale);
    }
    // Removes a table left by a previous run (and succeeds when there is none); the whole
    // skeleton is then created in the same transaction, with an empty `services`.
    let mut commands = ruleset::delete_table();
    commands.push(ruleset::add_table());
    commands.extend(ruleset::skeleton(mark));
    commands.extend(ruleset::pick_chains(picks_upto));
    before.extend(dispatch(&Default::default()));
    before.chains.values_mut().for_each(Vec::clear);
    after.extend(dispatch(&picks_of(new)));
    commands.extend(transaction(&before, &after));
    finish(Plan {
        commands,
        changed_ports,
        stale,
        picks_upto,
        then: Then::TakenOver,
    })
}

/// The transaction for `changes` (each an old and a new entry of one service port, `None`
/// for absent), with the picks in use before and after them when they differ or may
/// (`None`: no change at all).
fn incremental<'a>(
    changes: impl Iterator<Item = (Option<&'a ServiceEntry>, Option<&'a ServiceEntry>)>,
    picks: Option<(&BTreeSet<Pick>, &BTreeSet<Pick>)>,
    picks_upto: usize,
) -> Plan {
    let (mut before, mut after, changed_ports, stale) = sides(changes);
    if let Some((picks_before, picks_after)) = picks {
        // The dispatch depends on which endpoint counts are in use; when that set is the
        // same, both sides are equal and contribute nothing.
        before.extend(dispatch(picks_before));
        after.extend(dispatch(picks_after));
    }
    finish(Plan {
        commands: transaction(&before, &after),
        changed_ports,
        stale,
        picks_upto,
        then: Then::Changed(Vec::new()),
    })
}

/// The objects of the changed service ports before and after, how many there are, and the
/// UDP flows the changes leave stale.
fn sides<'a>(
    changes: impl Iterator<Item = (Option<&'a ServiceEntry>, Option<&'a ServiceEntry>)>,
) -> (Objects, Objects, usize, Vec<StaleFlows>) {
    let (mut before, mut after) = (Objects::default(), Objects::default());
    let (mut changed, mut stale) = (0, Vec::new());
    for (old, new) in changes {
        changed += 1;
        if let Some(old) = old {
            before.extend(service_objects(old));
            stale_flows(old, new, &mut stale);
        }
        if let Some(new) = new {
            after.extend(service_objects(new));
        }
    }
    (before, after, changed, stale)
}

/// Sorts and deduplicates the stale flows.
fn finish(mut plan: Plan) -> Plan {
    plan.stale.sort();
    plan.stale.dedup();
    plan
}

/// The commands that take the named objects `before` to `after`, ordered so that every
/// reference is valid inside the one transaction.
fn transaction(before: &Objects, after: &Objects) -> Vec<Command> {
    let mut commands = Vec::new();
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
            && !set_replaced(before, after, set)
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
    commands
}

/// The plan computed from the two whole tables, as the proxy did before it kept
/// [`Applied`]: every entry of both compared by value, the picks in use recomputed from both.
/// The reference that the tests hold [`plan`] to.
#[cfg(test)]
pub(crate) fn from_scratch(
    old: Option<&ServiceTable>,
    picks_upto: usize,
    new: &ServiceTable,
    mark: u32,
) -> Plan {
    let old = match old {
        Some(old) if ruleset::most_endpoints(new) <= picks_upto => old,
        known => return takeover(known, new, mark),
    };
    let mut changes = Vec::new();
    for (key, entry) in new.iter() {
        match old.get(key) {
            Some(previous) if previous == entry => {}
            previous => changes.push((previous, Some(entry))),
        }
    }
    for (key, previous) in old.iter() {
        if new.get(key).is_none() {
            changes.push((Some(previous), None));
        }
    }
    let picks = (picks_of(old), picks_of(new));
    let dispatch = (!changes.is_empty()).then_some((&picks.0, &picks.1));
    incremental(changes.into_iter(), dispatch, picks_upto)
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
