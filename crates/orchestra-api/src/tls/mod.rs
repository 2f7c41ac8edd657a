//! TLS and identities: the cluster's certificate authority and the certificates it issues,
//! credentials files, and the identity a client certificate carries.
//!
//! `orchestra server` creates a cluster CA in its data directory on first start (as k3s does),
//! issues the API server's certificate and an administrator's client certificate from it, and
//! writes `admin.credentials`, a kubeconfig-like file that `orchestra ctl` reads. Clients
//! verify the server against the CA; the server maps a verified client certificate to a user:
//! its common name (CN) is the user name, its organizations (O) the groups
//! (`system:node:NAME` in `system:nodes` for a node agent, `system:masters` for admins).
//!
//! ```no_run
//! use orchestra_api::tls::{ClusterPki, Credentials};
//!
//! # fn demo() -> Result<(), orchestra_api::tls::TlsError> {
//! let dir = std::path::Path::new("/var/lib/orchestra");
//! let pki = ClusterPki::load_or_create(dir, &["api.example.com".to_owned()])?;
//! let admin: Credentials = pki.admin_credentials("https://api.example.com:7443")?;
//! admin.save(&dir.join("admin.credentials"))?;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`pki`]: [`ClusterPki`], the CA and the certificates it issues (rcgen).
//! - [`credentials`]: [`Credentials`], the credentials file of a client.
//! - [`identity`]: [`user_from_certificate`], a certificate's subject as a [`UserInfo`].
//! - [`config`]: rustls configurations for the server and for one-off clients.
//! - [`join`]: join tokens (a CA pin and a secret) for agents' TLS bootstrap.
//! - `files`: reading and writing PEM files with clear errors and private modes.

pub mod config;
pub mod credentials;
mod files;
pub mod identity;
pub mod join;
pub mod pki;

use std::path::PathBuf;

pub use config::{client_config, mutual_server_config, server_config};
pub use credentials::Credentials;
pub use identity::user_from_certificate;
pub use join::JoinToken;
pub use pki::ClusterPki;

#[cfg(doc)]
use crate::auth::UserInfo;

/// Why a TLS file, certificate or configuration could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path} failed")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written.
    #[error("writing {path} failed")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file's content is not what it should be.
    #[error("{path} is not valid: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        message: String,
    },
    /// One file of a pair is missing.
    #[error(
        "{missing} is missing while {present} exists: restore it, or remove both to create new ones (credentials issued from the old ones stop working)"
    )]
    Incomplete {
        /// The file that is missing.
        missing: PathBuf,
        /// Its partner that exists.
        present: PathBuf,
    },
    /// A certificate or key could not be generated or signed.
    #[error("{what} failed")]
    Generate {
        /// What was being made.
        what: String,
        /// Why.
        #[source]
        source: rcgen::Error,
    },
    /// A certificate was asked for with more than one group: rcgen's distinguished names hold
    /// one value per attribute type, so a second `O` would silently replace the first.
    #[error(
        "a certificate for {user:?} can name one group (O), not {}: {groups:?}; bind the roles to the user or to one group",
        groups.len()
    )]
    TooManyGroups {
        /// The certificate's user (CN).
        user: String,
        /// The groups asked for.
        groups: Vec<String>,
    },
    /// PEM text given in memory (not a file) is not valid.
    #[error("{what} is not valid PEM: {message}")]
    Pem {
        /// What the PEM was for.
        what: &'static str,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration (a key that does not match its certificate, ...).
    #[error("the TLS configuration is not valid")]
    Config(#[source] rustls::Error),
    /// A join token is malformed.
    #[error("the join token is not valid: {0}")]
    Token(String),
    /// Fetching the server's CA for a join failed.
    #[error("fetching the cluster CA from {server} failed: {message}")]
    Fetch {
        /// The server.
        server: String,
        /// What went wrong.
        message: String,
    },
}
