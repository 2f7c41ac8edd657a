//! Mesh identity: who a sidecar is and how sidecars prove it to each other.
//!
//! - `spiffe`: [`SpiffeId`], `spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICEACCOUNT`.
//! - `ca`: [`MeshCa`], which signs short-lived certificates from signing requests, and
//!   [`SidecarKey`], the sidecar's key and request (the key never leaves the sidecar).
//! - `bundle`: [`TrustBundle`], the trusted roots (two during a trust-anchor rotation) and
//!   the verification of a peer's certificate to its SPIFFE ID.
//! - `rotation`: [`renew_decision`], when to renew (70% of the lifetime), pure.
//! - `tls`: [`MeshCredentials`] (a swappable certificate, for rotation without restarts) and
//!   [`MeshTls`], the rustls configurations of the inbound and outbound sides.

mod bundle;
mod ca;
mod rotation;
mod spiffe;
mod tls;

#[cfg(test)]
mod tests;

pub use bundle::{BundleError, PeerRole, TrustBundle, VerifyError, spiffe_id_of};
pub use ca::{CaConfig, CaError, IssuedCert, MeshCa, SidecarKey};
pub use rotation::{RENEW_AT_FRACTION, RenewDecision, renew_decision, renewal_time};
pub use spiffe::{SpiffeId, SpiffeIdError};
pub use tls::{MeshCredentials, MeshTls, peer_identity};
