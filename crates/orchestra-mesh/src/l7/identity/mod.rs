//! Mesh identity: who a sidecar is and how sidecars prove it to each other.
//!
//! - `spiffe`: [`SpiffeId`], `spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICEACCOUNT`.
//! - `ca`: [`MeshCa`], which signs short-lived certificates from signing requests, and
//!   [`SidecarKey`], the sidecar's key and request (the key never leaves the sidecar).
//! - `bundle`: [`TrustBundle`], the trusted roots (two during a trust-anchor rotation) and
//!   the verification of a peer's certificate to its SPIFFE ID.
//! - `rotation`: [`renew_decision`], when to renew (70% of the lifetime), pure.
//! - `service`: [`IdentityService`], the control plane's signing service: a service
//!   account's token buys a certificate for that service account's identity only.
//! - `client`: the sidecar's side: [`CertificateIssuer`], [`request_certificate`],
//!   [`LocalIssuer`] (in-process) and `IdentityClient` (through the API server, feature
//!   `remote`).
//! - `renew`: [`spawn_renewal`], the sidecar's task that renews its certificate at 70% of
//!   its lifetime, retries with backoff, and swaps the new one in without dropping
//!   connections.
//! - `tls`: [`MeshCredentials`] (a swappable certificate, for rotation without restarts) and
//!   [`MeshTls`], the rustls configurations of the inbound and outbound sides.
//! - `client_configs`: [`ClientConfigs`], the outbound side's configurations cached per
//!   expected server identity, counting the servers refused for another identity.

mod bundle;
mod ca;
mod client;
mod client_configs;
mod renew;
mod rotation;
mod service;
mod spiffe;
mod tls;

#[cfg(test)]
mod tests;

pub use bundle::{BundleError, PeerRole, TrustBundle, VerifyError, root_not_after, spiffe_id_of};
pub use ca::{CaConfig, CaError, IssuedCert, MeshCa, SidecarKey};
#[cfg(feature = "remote")]
pub use client::IdentityClient;
pub use client::{CertificateIssuer, Certified, IssueError, LocalIssuer, request_certificate};
pub use client_configs::ClientConfigs;
pub use renew::{
    Clock, RenewalConfig, RenewalHandle, RenewalStatus, spawn_renewal, system_clock, tokio_clock,
};
pub use rotation::{RENEW_AT_FRACTION, RenewDecision, renew_decision, renewal_time};
pub use service::{CertifyError, IdentityService};
pub use spiffe::{SpiffeId, SpiffeIdError};
pub use tls::{MeshCredentials, MeshTls, peer_identity};
