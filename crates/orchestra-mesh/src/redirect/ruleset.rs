//! The redirect table as nft commands, from a [`RedirectConfig`]: pure, so that tests
//! assert the exact script.
//!
//! ```text
//! table inet orchestra-mesh
//!   chain prerouting  (nat, prerouting, priority -110)
//!     tcp dport { INBOUND, OUTBOUND, SKIPPED-INBOUND... } return
//!     meta l4proto tcp redirect to :INBOUND
//!   chain output      (nat, output, priority -110)
//!     meta skuid PROXY-UID return          the sidecar's own connections
//!     ip daddr 127.0.0.0/8 return          loopback: the app's explicit use of the sidecar,
//!     ip6 daddr ::1 return                 and its own local services
//!     tcp dport { SKIPPED-OUTBOUND... } return
//!     meta l4proto tcp redirect to :OUTBOUND
//! ```
//!
//! # Choices
//! - A table of its own (`inet orchestra-mesh`), never the service proxy's `inet
//!   orchestra`: the init container owns it alone, and both can live in one namespace.
//! - Priority -110, before the usual dstnat priority (-100, the service proxy's): when both
//!   run in one namespace, a pod's connection to a ClusterIP reaches the sidecar with the
//!   ClusterIP as its original destination (the first NAT of a connection wins), and the
//!   sidecar's own connections, returned here, are then balanced by the service proxy as
//!   any other process's.
//! - Only TCP is redirected (UDP, DNS included, goes its way), as Linkerd's proxy-init does.
//! - The sidecar's ports are never redirected inbound: a connection addressed to the
//!   inbound listener (the explicit way) arrives as it is, and reads as not redirected; one
//!   to the outbound port finds nothing listening on the pod's address (the outbound
//!   listener is on loopback), where a redirect would have let a peer's connection reach
//!   the outbound listener through the inbound one and leave as this pod.
//! - Idempotent: the script first makes sure the table exists (`add table`), deletes it,
//!   and creates it afresh, all in one nft transaction: applying twice leaves one table,
//!   and a failure leaves what was there before.

use super::{RedirectConfig, RedirectError};

/// The table's name (family `inet`).
pub const TABLE: &str = "orchestra-mesh";

/// `inet orchestra-mesh`, as each command names the table.
const T: &str = "inet orchestra-mesh";

/// The priority of both chains (see the module docs).
const PRIORITY: i32 = -110;

/// The commands that (re)create the table for `config`, in order, one transaction (nft
/// applies a whole `-f` batch or none of it). Refuses a config that cannot work.
pub fn commands(config: &RedirectConfig) -> Result<Vec<String>, RedirectError> {
    config.validate()?;
    let inbound = config.inbound_port;
    let outbound = config.outbound_port;
    let uid = config.proxy_uid;
    let mut commands = vec![
        format!("add table {T}"),
        format!("delete table {T}"),
        format!("add table {T}"),
        format!(
            "add chain {T} prerouting {{ type nat hook prerouting priority {PRIORITY} ; policy accept ; }}"
        ),
    ];
    // The sidecar's own ports are never redirected inbound: the inbound port needs no
    // redirect, and the outbound one must stay out of peers' reach (the inbound listener
    // would forward to it on loopback: a peer's requests sent out as this pod).
    let own = [inbound, outbound]
        .into_iter()
        .filter_map(super::PortRange::single);
    let skip_in = config.skip_inbound_ports.union(&super::PortList::new(own));
    commands.push(format!(
        "add rule {T} prerouting tcp dport {{ {skip_in} }} return"
    ));
    commands.push(format!(
        "add rule {T} prerouting meta l4proto tcp redirect to :{inbound}"
    ));
    commands.push(format!(
        "add chain {T} output {{ type nat hook output priority {PRIORITY} ; policy accept ; }}"
    ));
    commands.push(format!("add rule {T} output meta skuid {uid} return"));
    commands.push(format!("add rule {T} output ip daddr 127.0.0.0/8 return"));
    commands.push(format!("add rule {T} output ip6 daddr ::1 return"));
    if !config.skip_outbound_ports.is_empty() {
        commands.push(format!(
            "add rule {T} output tcp dport {{ {} }} return",
            config.skip_outbound_ports
        ));
    }
    commands.push(format!(
        "add rule {T} output meta l4proto tcp redirect to :{outbound}"
    ));
    Ok(commands)
}

/// The commands that remove the table, if it is there (`add` first, so that a missing table
/// is not an error).
pub fn delete_commands() -> Vec<String> {
    vec![format!("add table {T}"), format!("delete table {T}")]
}

/// `commands`, one a line: what `nft -f -` reads.
pub fn script(commands: &[String]) -> String {
    let mut out = commands.join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redirect::PortList;

    fn config() -> RedirectConfig {
        RedirectConfig {
            inbound_port: 4143,
            outbound_port: 4140,
            proxy_uid: 2102,
            skip_inbound_ports: "4191,4190".parse().unwrap(),
            skip_outbound_ports: "25, 3306-3307".parse().unwrap(),
        }
    }

    #[test]
    fn the_script_is_exactly_the_table() {
        let script = script(&commands(&config()).unwrap());
        assert_eq!(
            script,
            "add table inet orchestra-mesh
delete table inet orchestra-mesh
add table inet orchestra-mesh
add chain inet orchestra-mesh prerouting { type nat hook prerouting priority -110 ; policy accept ; }
add rule inet orchestra-mesh prerouting tcp dport { 4140, 4143, 4190-4191 } return
add rule inet orchestra-mesh prerouting meta l4proto tcp redirect to :4143
add chain inet orchestra-mesh output { type nat hook output priority -110 ; policy accept ; }
add rule inet orchestra-mesh output meta skuid 2102 return
add rule inet orchestra-mesh output ip daddr 127.0.0.0/8 return
add rule inet orchestra-mesh output ip6 daddr ::1 return
add rule inet orchestra-mesh output tcp dport { 25, 3306-3307 } return
add rule inet orchestra-mesh output meta l4proto tcp redirect to :4140
"
        );
    }

    #[test]
    fn no_skipped_outbound_ports_no_rule_and_the_sidecars_ports_are_always_skipped_inbound() {
        let config = RedirectConfig {
            skip_inbound_ports: PortList::default(),
            skip_outbound_ports: PortList::default(),
            ..config()
        };
        let commands = commands(&config).unwrap();
        assert!(
            commands.contains(
                &"add rule inet orchestra-mesh prerouting tcp dport { 4140, 4143 } return"
                    .to_owned()
            ),
            "{commands:#?}"
        );
        assert!(
            !commands.iter().any(|c| c.contains("output tcp dport")),
            "{commands:#?}"
        );
        assert_eq!(commands.len(), 11);
    }

    #[test]
    fn the_same_config_gives_the_same_script_and_it_starts_by_replacing_the_table() {
        let first = commands(&config()).unwrap();
        assert_eq!(first, commands(&config()).unwrap());
        // Re-applying replaces: the table is made sure to exist, deleted, then created.
        assert_eq!(
            &first[..3],
            &[
                "add table inet orchestra-mesh",
                "delete table inet orchestra-mesh",
                "add table inet orchestra-mesh",
            ]
        );
        assert_eq!(delete_commands(), &first[..2]);
    }

    #[test]
    fn a_config_that_cannot_work_is_refused() {
        for (bad, says) in [
            (
                RedirectConfig {
                    inbound_port: 0,
                    ..config()
                },
                "inbound port",
            ),
            (
                RedirectConfig {
                    outbound_port: 0,
                    ..config()
                },
                "outbound port",
            ),
            (
                RedirectConfig {
                    outbound_port: 4143,
                    ..config()
                },
                "both 4143",
            ),
        ] {
            let err = commands(&bad).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }
}
