//! Transparent redirection into the sidecar, Linkerd's proxy-init (and Istio's
//! istio-init) done with nftables: rules in a pod's network namespace send the
//! application's outbound TCP to the sidecar's outbound listener and the pod's inbound TCP
//! to its inbound listener, so that the application addresses services as if there were no
//! mesh. The sidecar learns where each connection was headed from the socket
//! (`SO_ORIGINAL_DST`, see `l7::OriginalDst` with the `l7` feature).
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
//! # Layout
//! - this file: [`RedirectConfig`], [`RedirectError`].
//! - [`ruleset`]: the table as nft commands (pure).
//! - `ports`: [`PortList`], the skipped ports as the command line writes them.

mod ports;
pub mod ruleset;

pub use ports::{PortList, PortListError, PortRange};

use crate::nftables::NftError;

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
