//! [`IdentityService`]: the control plane's side of mesh identity, as Linkerd's identity
//! controller does it. A sidecar generates its key, sends a signing request for the
//! identity it wants, and proves who it is with its pod's service account token; the API
//! server authenticates the token (so [`IdentityService::certify`] receives the token's
//! user), and the service signs only when the identity asked for is exactly that service
//! account's SPIFFE ID and the request's own subject alternative names agree.
//!
//! The token is a static one of the server's token file, or a bound service account token
//! (`orchestra_api::auth::token`) that the node agent projects into the pod: for the API's
//! audience or the mesh identity's own (`MESH_IDENTITY_AUDIENCE`, accepted on this call
//! only), refused once its pod or its ServiceAccount is gone.
//!
//! `orchestra server` plugs the service into the API server's `IssueWorkloadCertificate`
//! call through [`WorkloadSigner`]; its client side is
//! [`IdentityClient`](super::IdentityClient).

use std::time::SystemTime;

use orchestra_api::auth::UserInfo;
use orchestra_api::auth::workload::{
    WorkloadCertificate, WorkloadCertificateRequest, WorkloadSigner, service_account_of,
};
use orchestra_api::registry::ApiError;
use orchestra_store::StoreError;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer};

use super::ca::{CaError, IssuedCert, MeshCa};
use super::spiffe::{SpiffeId, SpiffeIdError};

/// Why a signing request was refused.
#[derive(Debug, thiserror::Error)]
pub enum CertifyError {
    /// The caller authenticated as someone who is not a service account.
    #[error(
        "user {user:?} is not a service account: mesh certificates are issued only to \
         service account tokens (system:serviceaccount:NAMESPACE:NAME)"
    )]
    NotAServiceAccount {
        /// The caller's user name.
        user: String,
    },
    /// The identity asked for does not parse.
    #[error("the requested identity is not valid: {0}")]
    BadIdentity(#[from] SpiffeIdError),
    /// The identity asked for is not the caller's service account's.
    #[error(
        "the token is service account {namespace}/{service_account}, whose identity is \
         {allowed}, but the request asks for {requested}"
    )]
    WrongServiceAccount {
        /// The caller's namespace.
        namespace: String,
        /// The caller's service account.
        service_account: String,
        /// The identity the caller may have.
        allowed: String,
        /// The identity asked for.
        requested: String,
    },
    /// The CA refused the request (malformed CSR, a CSR naming another identity) or failed.
    #[error(transparent)]
    Ca(#[from] CaError),
}

/// The mesh identity service (see the module docs).
#[derive(Debug)]
pub struct IdentityService {
    ca: MeshCa,
    trust_roots: Vec<CertificateDer<'static>>,
}

impl IdentityService {
    /// A service signing with `ca`, whose root is the trust anchor it hands out.
    pub fn new(ca: MeshCa) -> Self {
        let trust_roots = vec![ca.root().clone()];
        IdentityService { ca, trust_roots }
    }

    /// Also hands out `root` as a trust anchor (during a trust-anchor rotation, the other
    /// CA's root).
    pub fn with_trust_root(mut self, root: CertificateDer<'static>) -> Self {
        if !self.trust_roots.contains(&root) {
            self.trust_roots.push(root);
        }
        self
    }

    /// The trust anchors sidecars should verify peers with.
    pub fn trust_roots(&self) -> &[CertificateDer<'static>] {
        &self.trust_roots
    }

    /// The CA.
    pub fn ca(&self) -> &MeshCa {
        &self.ca
    }

    /// Signs `csr` for `requested` on behalf of `caller` (the user the API server
    /// authenticated from the sidecar's token), at `now`, for the CA's workload lifetime.
    pub fn certify(
        &self,
        caller: &UserInfo,
        requested: &str,
        csr: &CertificateSigningRequestDer<'_>,
        now: SystemTime,
    ) -> Result<IssuedCert, CertifyError> {
        let (namespace, service_account) =
            service_account_of(caller).ok_or_else(|| CertifyError::NotAServiceAccount {
                user: caller.name.clone(),
            })?;
        let allowed = SpiffeId::new(self.ca.trust_domain(), namespace, service_account)?;
        let requested_id: SpiffeId = requested.parse()?;
        if requested_id != allowed {
            return Err(CertifyError::WrongServiceAccount {
                namespace: namespace.to_owned(),
                service_account: service_account.to_owned(),
                allowed: allowed.to_string(),
                requested: requested.to_owned(),
            });
        }
        // The CA checks the CSR's signature and that it names no other identity.
        Ok(self.ca.issue(csr, &allowed, now)?)
    }
}

impl WorkloadSigner for IdentityService {
    fn sign(
        &self,
        caller: &UserInfo,
        request: &WorkloadCertificateRequest,
        now: SystemTime,
    ) -> Result<WorkloadCertificate, ApiError> {
        let csr = CertificateSigningRequestDer::from(request.csr_der.as_slice());
        match self.certify(caller, &request.identity, &csr, now) {
            Ok(issued) => Ok(WorkloadCertificate {
                chain_der: issued.chain.iter().map(|c| c.to_vec()).collect(),
                trust_roots_der: self.trust_roots.iter().map(|c| c.to_vec()).collect(),
                valid_until: issued.not_after,
            }),
            Err(
                error @ (CertifyError::NotAServiceAccount { .. }
                | CertifyError::WrongServiceAccount { .. }),
            ) => Err(ApiError::Forbidden(error.to_string())),
            Err(error @ CertifyError::Ca(CaError::Generate(_) | CaError::Time(_))) => Err(
                ApiError::Internal(StoreError::Other(format!("the mesh CA failed: {error}"))),
            ),
            Err(error) => Err(ApiError::BadRequest(error.to_string())),
        }
    }
}
