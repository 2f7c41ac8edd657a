//! [`NftError`]: why [`NftablesProxy`](super::NftablesProxy) refused or failed a sync.

use std::ffi::OsString;

use crate::table::ServiceKey;

/// Why an nftables sync failed. A refused table and a failed `nft` leave the rules in force
/// unchanged (one transaction); a failed conntrack flush comes after the rules were applied.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// Two service ports claim the same frontend.
    #[error(
        "service ports {first} and {second} both use {frontend}; a frontend belongs to one service port (the table was refused, the rules in force are unchanged)"
    )]
    ConflictingPorts {
        /// The first service port (in key order).
        first: Box<ServiceKey>,
        /// The second.
        second: Box<ServiceKey>,
        /// The frontend both claim (`TCP 10.96.0.1:80`, `UDP NodePort 30053`).
        frontend: String,
    },
    /// A service port that cannot be programmed.
    #[error(
        "service port {key}: {reason} (the table was refused, the rules in force are unchanged)"
    )]
    InvalidEntry {
        /// The service port.
        key: ServiceKey,
        /// What is wrong.
        reason: String,
    },
    /// `nft` could not be run, or refused the transaction.
    #[error(
        "running {program:?} to apply {commands} nftables commands failed: {detail} (the transaction was not applied; is nftables installed, and is this process allowed CAP_NET_ADMIN?)"
    )]
    Nft {
        /// The program run (`nft`, or the first word of the command prefix).
        program: OsString,
        /// How many commands the transaction had.
        commands: usize,
        /// Its exit status and what it said on stderr, or why it could not run.
        detail: String,
    },
    /// `conntrack` could not flush stale UDP flows (the rules were applied; the flush is
    /// tried again by the next sync).
    #[error(
        "flushing stale UDP conntrack entries to {endpoint} with {program:?} failed: {detail} (is the conntrack tool installed? apt-get install conntrack)"
    )]
    Conntrack {
        /// The program run.
        program: OsString,
        /// The removed endpoint.
        endpoint: std::net::IpAddr,
        /// What went wrong.
        detail: String,
    },
}
