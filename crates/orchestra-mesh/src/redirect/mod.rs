//! Transparent redirection into the sidecar, Linkerd's proxy-init (and Istio's
//! istio-init) done with nftables: rules in a pod's network namespace send the
//! application's outbound TCP to the sidecar's outbound listener and the pod's inbound TCP
//! to its inbound listener, so that the application addresses services as if there were no
//! mesh. The sidecar learns where each connection was headed from the socket
//! (`SO_ORIGINAL_DST`, read by `l7::original_dst` with the `l7` feature).
//!
//! ```
//! use orchestra_mesh::redirect::{RedirectConfig, ruleset};
//!
//! let config = RedirectConfig {
//!     skip_inbound_ports: "4191".parse()?,
//!     ..RedirectConfig::new(2102)
//! };
//! let commands = ruleset::commands(&config)?;
//! assert!(commands.contains(&"add rule inet orchestra-mesh output meta skuid 2102 return".to_owned()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The rules live in table `inet orchestra-mesh` ([`ruleset`] gives its shape and why),
//! separate from the service proxy's `inet orchestra`. They are written as nft's text
//! input, as the service proxy writes its own (see the `nftables` module for why text
//! rather than JSON or netlink).
//!
//! [`apply`] runs `nft -f -` with the script (through the same helper as the service proxy,
//! so an optional command prefix such as `nsenter --net=/run/netns/POD` programs another
//! namespace); nft applies it as one transaction, and its own message comes back in the
//! error when it refuses.
//!
//! # Layout
//! - this file: [`RedirectConfig`], [`RedirectError`], [`apply`], [`remove`].
//! - [`ruleset`]: the table as nft commands (pure).
//! - `ports`: [`PortList`], the skipped ports as the command line writes them.

mod ports;
pub mod ruleset;

pub use ports::{PortList, PortListError, PortRange};

use crate::nftables::{NftError, NftablesProxyConfig};

/// What to redirect where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectConfig {
    /// The sidecar's inbound port: the pod's inbound TCP goes there (default 4143, the
    /// sidecar's and Linkerd's).
    pub inbound_port: u16,
    /// The sidecar's outbound port: the pod's outbound TCP goes there (default 4140).
    pub outbound_port: u16,
    /// The uid the sidecar runs as: its own connections (to the destinations it proxies
    /// for) must not be redirected back to it.
    pub proxy_uid: u32,
    /// Inbound ports left alone (the admin port, so that probes reach it; ports of
    /// applications that take no mesh traffic).
    pub skip_inbound_ports: PortList,
    /// Outbound destination ports left alone (SMTP, databases that speak first, ...).
    pub skip_outbound_ports: PortList,
}

impl RedirectConfig {
    /// The default ports (inbound 4143, outbound 4140) for a sidecar running as
    /// `proxy_uid`, skipping nothing.
    pub fn new(proxy_uid: u32) -> Self {
        RedirectConfig {
            inbound_port: 4143,
            outbound_port: 4140,
            proxy_uid,
            skip_inbound_ports: PortList::default(),
            skip_outbound_ports: PortList::default(),
        }
    }

    /// Refuses what cannot work: a port 0, or one port for both listeners.
    pub fn validate(&self) -> Result<(), RedirectError> {
        let invalid = |reason: String| Err(RedirectError::InvalidConfig { reason });
        if self.inbound_port == 0 {
            return invalid("the inbound port is 0; give the sidecar's inbound port".into());
        }
        if self.outbound_port == 0 {
            return invalid("the outbound port is 0; give the sidecar's outbound port".into());
        }
        if self.inbound_port == self.outbound_port {
            return invalid(format!(
                "the inbound and outbound ports are both {}: the sidecar listens on two different ports",
                self.inbound_port
            ));
        }
        Ok(())
    }
}

/// Why the redirect could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RedirectError {
    /// The configuration cannot work (nothing was applied).
    #[error("bad redirect configuration: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },
    /// nft could not be run, or refused the table (its message is in the source); the
    /// namespace's rules are unchanged.
    #[error("applying table inet {table} failed", table = ruleset::TABLE)]
    Nft(#[source] NftError),
}

/// Applies the redirect table for `config` in the network namespace `nft` runs in (this
/// process's, unless `nft.command_prefix` says otherwise): replaces the table if it is
/// there, in one transaction, so running it again (a restarted init container) is harmless.
/// Only `nft.nft` and `nft.command_prefix` are used.
pub async fn apply(
    config: &RedirectConfig,
    nft: &NftablesProxyConfig,
) -> Result<(), RedirectError> {
    let commands = ruleset::commands(config)?;
    crate::nftables::command::nft(nft, &ruleset::script(&commands), commands.len())
        .await
        .map_err(RedirectError::Nft)
}

/// Removes the redirect table, if it is there.
pub async fn remove(nft: &NftablesProxyConfig) -> Result<(), RedirectError> {
    let commands = ruleset::delete_commands();
    crate::nftables::command::nft(nft, &ruleset::script(&commands), commands.len())
        .await
        .map_err(RedirectError::Nft)
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::path::PathBuf;

    use super::*;

    /// An "nft" that reads its input and refuses it as nft does: its message on stderr, exit 1.
    fn refusing_nft() -> NftablesProxyConfig {
        NftablesProxyConfig {
            command_prefix: ["sh", "-c", "cat >/dev/null; echo 'Error: Could not process rule: Operation not permitted' >&2; exit 1", "sh"]
                .into_iter()
                .map(OsString::from)
                .collect(),
            ..NftablesProxyConfig::default()
        }
    }

    #[tokio::test]
    async fn a_refusal_carries_nfts_message() {
        let err = apply(&RedirectConfig::new(2102), &refusing_nft())
            .await
            .unwrap_err();
        let RedirectError::Nft(source) = &err else {
            panic!("expected nft's error, got {err:?}");
        };
        let text = format!("{err}: {source}");
        assert!(text.contains("inet orchestra-mesh"), "{text}");
        assert!(
            text.contains("Could not process rule: Operation not permitted"),
            "{text}"
        );
        assert!(text.contains("11 nftables commands"), "{text}");
    }

    #[tokio::test]
    async fn a_missing_nft_is_named_and_a_bad_config_runs_nothing() {
        let missing = NftablesProxyConfig {
            nft: PathBuf::from("/nonexistent/nft"),
            ..NftablesProxyConfig::default()
        };
        let err = remove(&missing).await.unwrap_err();
        let RedirectError::Nft(source) = &err else {
            panic!("expected nft's error, got {err:?}");
        };
        assert!(source.to_string().contains("/nonexistent/nft"), "{source}");
        let bad = RedirectConfig {
            outbound_port: 4143,
            ..RedirectConfig::new(2102)
        };
        // The refusal comes before nft would run (this nft would fail differently).
        let err = apply(&bad, &missing).await.unwrap_err();
        assert!(
            matches!(err, RedirectError::InvalidConfig { .. }),
            "{err:?}"
        );
    }
}
