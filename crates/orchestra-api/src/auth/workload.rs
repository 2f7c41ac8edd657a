//! The hook through which the API server signs mesh workload certificates
//! ([`WorkloadSigner`]), the way Linkerd's identity controller does: a sidecar sends a
//! certificate signing request made with a key it generated, authenticated by its pod's
//! service account token; the server authenticates the token like any bearer token (so a
//! revoked or unknown token is refused before anything else), and the signer checks that
//! the requested identity is that service account's and signs.
//!
//! The signer itself (the mesh CA) lives in `orchestra-mesh`, which depends on this crate:
//! the trait is the seam that lets `orchestra server` plug it in without a dependency cycle.

use std::fmt;
use std::time::SystemTime;

use super::UserInfo;
use crate::registry::ApiError;

/// The prefix of a service account's user name (`system:serviceaccount:NAMESPACE:NAME`).
pub const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";

/// The namespace and name of the service account `user` is, when it is one
/// (`system:serviceaccount:NAMESPACE:NAME`, both parts non-empty, no further `:`).
pub fn service_account_of(user: &UserInfo) -> Option<(&str, &str)> {
    let rest = user.name.strip_prefix(SERVICE_ACCOUNT_USER_PREFIX)?;
    let (namespace, name) = rest.split_once(':')?;
    (!namespace.is_empty() && !name.is_empty() && !name.contains(':')).then_some((namespace, name))
}

/// A sidecar's signing request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadCertificateRequest {
    /// The identity asked for (`spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/ACCOUNT`).
    pub identity: String,
    /// The PKCS #10 request (DER), signed with the sidecar's key.
    pub csr_der: Vec<u8>,
}

/// A signed workload certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadCertificate {
    /// The chain, the workload's certificate first (DER).
    pub chain_der: Vec<Vec<u8>>,
    /// The mesh's trust anchors (DER).
    pub trust_roots_der: Vec<Vec<u8>>,
    /// When the certificate expires.
    pub valid_until: SystemTime,
}

/// Signs workload certificates for authenticated callers (see the module docs).
pub trait WorkloadSigner: Send + Sync + fmt::Debug {
    /// Signs `request` for `caller` at `now`, or says why not: `Forbidden` when the caller
    /// may not have the identity (not a service account, another service account),
    /// `BadRequest` for a malformed request or one whose CSR names another identity.
    fn sign(
        &self,
        caller: &UserInfo,
        request: &WorkloadCertificateRequest,
        now: SystemTime,
    ) -> Result<WorkloadCertificate, ApiError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_service_account_users_name_a_service_account() {
        let user = |name: &str| UserInfo::new(name, ["system:authenticated"]);
        assert_eq!(
            service_account_of(&user("system:serviceaccount:shop:web")),
            Some(("shop", "web"))
        );
        for name in [
            "alice",
            "system:serviceaccount:shop",
            "system:serviceaccount::web",
            "system:serviceaccount:shop:",
            "system:serviceaccount:shop:web:extra",
            "system:node:n1",
        ] {
            assert_eq!(service_account_of(&user(name)), None, "{name}");
        }
    }
}
