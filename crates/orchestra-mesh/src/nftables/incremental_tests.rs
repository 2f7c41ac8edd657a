//! The incremental sync against the whole-table one: for random tables and random edits of
//! them, the diff, the validation, the plan and the recorded state that the proxy computes
//! from what changed are the same as those computed from the two whole tables.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::applied::Applied;
use super::diff::{Change, diff, diff_keys};
use super::plan::{Then, from_scratch, plan};
use super::ruleset::{PRECREATED_PICKS, most_endpoints};
use super::validate::validate;
use crate::table::{Affinity, Protocol, ServiceEntry, ServiceKey, ServiceTable};

const MARK: u32 = 0x4000;

/// A few keys, so that edits hit existing service ports often.
fn key() -> impl Strategy<Value = ServiceKey> {
    (0..6u8, prop::bool::ANY).prop_map(|(name, port)| {
        ServiceKey::new("default", format!("s{name}"), if port { "p" } else { "" })
    })
}

/// Entries from a small space of frontends and endpoints, so that tables often have
/// conflicting frontends, shared endpoints, endpoint counts in common, and now and then an
/// invalid address (the unspecified ClusterIP, an endpoint of the other family).
fn entry() -> impl Strategy<Value = ServiceEntry> {
    let cluster = prop::sample::select(vec![
        "10.96.0.1:80",
        "10.96.0.1:81",
        "10.96.0.2:80",
        "10.96.0.3:53",
        "[fd00::1]:80",
        "0.0.0.0:80",
    ]);
    let endpoint = prop::sample::select(vec![
        "10.1.0.1:8080",
        "10.1.0.2:8080",
        "10.1.0.3:8080",
        "10.1.0.3:9090",
        "10.1.0.4:8080",
        "[fd00:1::1]:8080",
        "[fd00:1::2]:8080",
    ]);
    (
        cluster,
        prop::sample::select(vec![None, None, Some(30000u16), Some(30001)]),
        prop::bool::ANY,
        prop::sample::select(vec![0u64, 0, 1, 2]),
        prop::collection::vec(endpoint, 0..5),
    )
        .prop_map(|(cluster, node_port, udp, affinity, endpoints)| {
            let cluster: SocketAddr = cluster.parse().expect("a literal address");
            ServiceEntry {
                cluster,
                node_port,
                protocol: if udp { Protocol::Udp } else { Protocol::Tcp },
                affinity: match affinity {
                    0 => Affinity::None,
                    secs => Affinity::ClientIp {
                        timeout: Duration::from_secs(secs),
                    },
                },
                // Mostly endpoints of the cluster address's family, so that most tables
                // are valid.
                endpoints: endpoints
                    .iter()
                    .map(|e| e.parse::<SocketAddr>().expect("a literal address"))
                    .filter(|e| e.is_ipv4() == cluster.is_ipv4() || endpoints.len() == 4)
                    .collect(),
            }
        })
}

/// One edit of a table.
#[derive(Clone, Debug)]
enum Edit {
    /// Adds or replaces a service port.
    Insert(ServiceKey, ServiceEntry),
    /// Removes a service port (if there is one).
    Remove(ServiceKey),
    /// Replaces a service port with an equal entry (a new allocation, as a table rebuilt
    /// from scratch has).
    Rebuild(ServiceKey),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (key(), entry()).prop_map(|(k, e)| Edit::Insert(k, e)),
        1 => key().prop_map(Edit::Remove),
        1 => key().prop_map(Edit::Rebuild),
    ]
}

/// A valid table: the candidates that do not make it invalid, in order.
fn valid_table(candidates: Vec<(ServiceKey, ServiceEntry)>) -> ServiceTable {
    let mut table = ServiceTable::new();
    for (key, entry) in candidates {
        let mut with = table.clone();
        with.insert(key, entry);
        if validate(&with).is_ok() {
            table = with;
        }
    }
    table
}

/// `table` (cloned: unchanged entries stay shared) with `edits`.
fn edited(table: &ServiceTable, edits: &[Edit]) -> ServiceTable {
    let mut table = table.clone();
    for edit in edits {
        match edit {
            Edit::Insert(key, entry) => table.insert(key.clone(), entry.clone()),
            Edit::Remove(key) => {
                table.remove(key);
            }
            Edit::Rebuild(key) => {
                if let Some(entry) = table.get(key).cloned() {
                    table.insert(key.clone(), entry);
                }
            }
        }
    }
    table
}

impl Edit {
    /// The service port it edits.
    fn key(&self) -> &ServiceKey {
        match self {
            Edit::Insert(key, _) | Edit::Remove(key) | Edit::Rebuild(key) => key,
        }
    }
}

/// The diff by value, key by key over both tables' keys.
fn diff_by_value(old: &ServiceTable, new: &ServiceTable) -> Vec<Change> {
    let olds: BTreeMap<_, _> = old.shared_iter().collect();
    let news: BTreeMap<_, _> = new.shared_iter().collect();
    let keys: BTreeSet<&ServiceKey> = olds.keys().chain(news.keys()).copied().collect();
    keys.into_iter()
        .filter_map(|key| {
            let (o, n) = (olds.get(key).copied(), news.get(key).copied());
            (o.map(Arc::as_ref) != n.map(Arc::as_ref)).then(|| Change {
                key: key.clone(),
                old: o.cloned(),
                new: n.cloned(),
            })
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn incremental_syncs_match_whole_table_ones(
        first in prop::collection::vec((key(), entry()), 0..8),
        spare_picks in 0..2usize,
        rounds in prop::collection::vec(prop::collection::vec(edit(), 0..5), 1..4),
        extra in prop::collection::btree_set(key(), 0..4),
    ) {
        let table = valid_table(first);
        // Sometimes exactly the pick chains the table needs, so that a change needing more
        // takes the table over.
        let upto = if spare_picks == 0 { PRECREATED_PICKS } else { most_endpoints(&table) };
        let mut applied = Applied::new(table, upto);
        for edits in rounds {
            let new = edited(&applied.table, &edits);
            let changes = diff(&applied.table, &new);
            prop_assert_eq!(&changes, &diff_by_value(&applied.table, &new));
            // Told the edited keys (and some that were not edited), the diff looks at those
            // alone and finds the same changes.
            let mut told: BTreeSet<ServiceKey> = edits.iter().map(|e| e.key().clone()).collect();
            told.extend(extra.iter().cloned());
            prop_assert_eq!(&diff_keys(&applied.table, &new, &told), &changes);

            let incremental = applied.frontends.validate_changes(&changes, &new);
            let whole = validate(&new);
            prop_assert_eq!(
                incremental.as_ref().map_err(ToString::to_string),
                whole.as_ref().map_err(ToString::to_string)
            );
            if whole.is_err() {
                // Refused: the rules in force, and so the record, stay as they were.
                continue;
            }

            let planned = plan(Some(&applied), &new, changes, MARK);
            let reference = from_scratch(Some(&applied.table), applied.picks_upto, &new, MARK);
            prop_assert_eq!(&planned.commands, &reference.commands);
            prop_assert_eq!(planned.changed_ports, reference.changed_ports);
            prop_assert_eq!(&planned.stale, &reference.stale);
            prop_assert_eq!(planned.picks_upto, reference.picks_upto);

            match planned.then {
                Then::Changed(changes) => applied.apply(&changes),
                Then::TakenOver => applied = Applied::new(new.clone(), planned.picks_upto),
            }
            prop_assert_eq!(&applied, &Applied::new(new, planned.picks_upto));
        }
    }
}

#[test]
fn an_edited_clone_differs_by_its_edits_alone() {
    let entry = |cluster: &str, endpoints: &[&str]| ServiceEntry {
        cluster: cluster.parse().expect("a literal address"),
        node_port: None,
        protocol: Protocol::Tcp,
        affinity: Affinity::None,
        endpoints: endpoints
            .iter()
            .map(|e| e.parse().expect("a literal address"))
            .collect(),
    };
    let key = |name: &str| ServiceKey::new("default", name, "");
    let old: ServiceTable = (0..100)
        .map(|i| {
            (
                key(&format!("s{i:03}")),
                entry(&format!("10.96.0.{}:80", i + 1), &["10.1.0.1:8080"]),
            )
        })
        .collect();
    let mut new = old.clone();
    new.insert(key("s050"), entry("10.96.0.51:80", &["10.1.0.2:8080"]));
    new.remove(&key("s007"));
    new.insert(key("t"), entry("10.96.1.1:80", &[]));
    // An equal entry in a new allocation is no change.
    new.insert(key("s099"), entry("10.96.0.100:80", &["10.1.0.1:8080"]));
    let changes = diff(&old, &new);
    let summary: Vec<(String, bool, bool)> = changes
        .iter()
        .map(|c| (c.key.name.clone(), c.old.is_some(), c.new.is_some()))
        .collect();
    assert_eq!(
        summary,
        [
            ("s007".to_owned(), true, false),
            ("s050".to_owned(), true, true),
            ("t".to_owned(), false, true),
        ]
    );
    assert!(diff(&new, &new).is_empty());
}

#[test]
fn a_change_taking_an_unchanged_ports_frontend_is_refused_as_a_whole_table_check_would() {
    let entry = |cluster: &str| ServiceEntry {
        cluster: cluster.parse().expect("a literal address"),
        node_port: None,
        protocol: Protocol::Tcp,
        affinity: Affinity::None,
        endpoints: vec![],
    };
    let key = |name: &str| ServiceKey::new("default", name, "");
    let old: ServiceTable = [
        (key("a"), entry("10.96.0.1:80")),
        (key("b"), entry("10.96.0.2:80")),
    ]
    .into_iter()
    .collect();
    let applied = Applied::new(old.clone(), PRECREATED_PICKS);
    let mut new = old.clone();
    new.insert(key("b"), entry("10.96.0.1:80"));
    let changes = diff(&old, &new);
    assert_eq!(changes.len(), 1, "only b changed");
    let error = applied
        .frontends
        .validate_changes(&changes, &new)
        .unwrap_err()
        .to_string();
    assert_eq!(error, validate(&new).unwrap_err().to_string());
    assert!(
        error.contains("default/a") && error.contains("default/b"),
        "{error}"
    );
    // Moving a's frontend to b in the same sync is fine.
    new.insert(key("a"), entry("10.96.0.3:80"));
    let changes = diff(&old, &new);
    applied.frontends.validate_changes(&changes, &new).unwrap();
}
