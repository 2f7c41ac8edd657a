//! [`validate`]: the checks a table passes before anything is sent to the kernel, so that a
//! bad table is refused whole and the rules in force stay as they were.
//!
//! A sync after the first checks only what changed ([`Frontends::validate_changes`]): the
//! entries that did not change passed when their table was applied, and [`Frontends`]
//! remembers which service port owns each frontend of that table, so a changed entry's
//! frontends are checked against the owners that stay. A table that fails that check is
//! validated whole, so that its error is the same as a first sync's.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use super::diff::Change;
use super::error::NftError;
use crate::table::{Affinity, Protocol, ServiceEntry, ServiceKey, ServiceTable};

/// A ClusterIP frontend: address, protocol and port.
type ClusterFrontend = (IpAddr, Protocol, u16);
/// A NodePort frontend: protocol and port.
type NodeFrontend = (Protocol, u16);

/// The frontends of `entry`: its ClusterIP one, and its NodePort one if it has one.
fn frontends_of(entry: &ServiceEntry) -> (ClusterFrontend, Option<NodeFrontend>) {
    (
        (entry.cluster.ip(), entry.protocol, entry.cluster.port()),
        entry.node_port.map(|port| (entry.protocol, port)),
    )
}

/// Which service port owns each frontend of a valid table (the one applied last).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Frontends {
    /// ClusterIP frontends.
    cluster: HashMap<ClusterFrontend, ServiceKey>,
    /// NodePort frontends.
    node: HashMap<NodeFrontend, ServiceKey>,
}

impl Frontends {
    /// The owners of `table`'s frontends (`table` must be valid: one owner each).
    pub(crate) fn of(table: &ServiceTable) -> Self {
        let mut frontends = Frontends::default();
        for (key, entry) in table.iter() {
            frontends.claim(key, entry);
        }
        frontends
    }

    /// Records `key` as the owner of `entry`'s frontends.
    fn claim(&mut self, key: &ServiceKey, entry: &ServiceEntry) {
        let (cluster, node) = frontends_of(entry);
        self.cluster.insert(cluster, key.clone());
        if let Some(node) = node {
            self.node.insert(node, key.clone());
        }
    }

    /// Checks the table `table`, which differs from the one these owners were taken from
    /// (valid) by `changes`: the changed entries' own checks, and that none claims a
    /// frontend that another changed entry or an unchanged one owns. On failure the whole
    /// table is validated, for the same error a first sync gives.
    pub(crate) fn validate_changes(
        &self,
        changes: &[Change],
        table: &ServiceTable,
    ) -> Result<(), NftError> {
        if self.changes_valid(changes) {
            Ok(())
        } else {
            // The whole-table check is the definition; this one only decides faster.
            validate(table)
        }
    }

    /// Whether the table these owners came from, with `changes`, is valid.
    fn changes_valid(&self, changes: &[Change]) -> bool {
        // Every port that changed gives up the frontends it had; only the others keep theirs.
        let touched: HashSet<&ServiceKey> = changes.iter().map(|c| &c.key).collect();
        let kept_by_other =
            |owner: Option<&ServiceKey>| owner.is_some_and(|o| !touched.contains(o));
        let mut cluster: HashSet<ClusterFrontend> = HashSet::new();
        let mut node: HashSet<NodeFrontend> = HashSet::new();
        for change in changes {
            let Some(entry) = &change.new else { continue };
            if check_entry(&change.key, entry).is_err() {
                return false;
            }
            let (cluster_frontend, node_frontend) = frontends_of(entry);
            if !cluster.insert(cluster_frontend)
                || kept_by_other(self.cluster.get(&cluster_frontend))
            {
                return false;
            }
            if let Some(node_frontend) = node_frontend
                && (!node.insert(node_frontend) || kept_by_other(self.node.get(&node_frontend)))
            {
                return false;
            }
        }
        true
    }

    /// Moves to the owners of the table after `changes` (which passed
    /// [`validate_changes`](Self::validate_changes)).
    pub(crate) fn apply(&mut self, changes: &[Change]) {
        // Every old claim goes first, so that a frontend moving from one changed port to
        // another ends with its new owner, in whatever order the changes come.
        for change in changes {
            if let Some(old) = &change.old {
                let (cluster, node) = frontends_of(old);
                if self.cluster.get(&cluster) == Some(&change.key) {
                    self.cluster.remove(&cluster);
                }
                if let Some(node) = node
                    && self.node.get(&node) == Some(&change.key)
                {
                    self.node.remove(&node);
                }
            }
        }
        for change in changes {
            if let Some(new) = &change.new {
                self.claim(&change.key, new);
            }
        }
    }
}

/// Checks every service port of `table`, and that no two of them claim the same frontend
/// (ClusterIP, protocol and port; or protocol and NodePort).
pub(crate) fn validate(table: &ServiceTable) -> Result<(), NftError> {
    let mut frontends: HashMap<(IpAddr, Protocol, u16), &ServiceKey> = HashMap::new();
    let mut node_ports: HashMap<(Protocol, u16), &ServiceKey> = HashMap::new();
    for (key, entry) in table.iter() {
        check_entry(key, entry)?;
        let cluster = (entry.cluster.ip(), entry.protocol, entry.cluster.port());
        if let Some(first) = frontends.insert(cluster, key) {
            return Err(NftError::ConflictingPorts {
                first: Box::new(first.clone()),
                second: Box::new(key.clone()),
                frontend: format!("{} {}", entry.protocol, entry.cluster),
            });
        }
        if let Some(port) = entry.node_port
            && let Some(first) = node_ports.insert((entry.protocol, port), key)
        {
            return Err(NftError::ConflictingPorts {
                first: Box::new(first.clone()),
                second: Box::new(key.clone()),
                frontend: format!("{} NodePort {port}", entry.protocol),
            });
        }
    }
    Ok(())
}

/// The checks of one service port.
fn check_entry(key: &ServiceKey, entry: &ServiceEntry) -> Result<(), NftError> {
    let invalid = |reason: String| NftError::InvalidEntry {
        key: key.clone(),
        reason,
    };
    check_address(entry.cluster)
        .map_err(|why| invalid(format!("cluster address {}: {why}", entry.cluster)))?;
    if entry.node_port == Some(0) {
        return Err(invalid("NodePort 0 is not a port".to_owned()));
    }
    for endpoint in &entry.endpoints {
        check_address(*endpoint).map_err(|why| invalid(format!("endpoint {endpoint}: {why}")))?;
        if endpoint.is_ipv4() != entry.cluster.is_ipv4() {
            return Err(invalid(format!(
                "endpoint {endpoint} is not of the cluster address {}'s family",
                entry.cluster.ip()
            )));
        }
    }
    if let Affinity::ClientIp { timeout } = entry.affinity
        && (timeout.is_zero() || timeout.as_secs() >= u64::from(u32::MAX))
    {
        return Err(invalid(format!(
            "ClientIP affinity timeout {timeout:?} is not between 1 s and {} s",
            u32::MAX - 1
        )));
    }
    Ok(())
}

/// Why `addr` cannot be a service address or a DNAT target, if it cannot.
fn check_address(addr: SocketAddr) -> Result<(), &'static str> {
    let ip = addr.ip();
    if ip.is_unspecified() {
        return Err("the unspecified address routes nowhere");
    }
    if ip.is_multicast() {
        return Err("a multicast address cannot be DNATed");
    }
    if let IpAddr::V4(v4) = ip
        && v4.is_broadcast()
    {
        return Err("the broadcast address cannot be DNATed");
    }
    if addr.port() == 0 {
        return Err("port 0 is not a port");
    }
    Ok(())
}
