//! [`validate`]: the checks a table passes before anything is sent to the kernel, so that a
//! bad table is refused whole and the rules in force stay as they were.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use super::error::NftError;
use crate::table::{Affinity, Protocol, ServiceEntry, ServiceKey, ServiceTable};

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
