//! The sidecar's side of the identity service: [`CertificateIssuer`], anything that turns a
//! signing request into a certificate (the control plane's [`IdentityClient`] over the
//! API server, or an in-process [`IdentityService`](super::IdentityService) in tests), and
//! [`request_certificate`], one round: a fresh key, its CSR, the issuer's answer, checked
//! to be the identity asked for before the sidecar uses it.

use std::sync::Arc;

use async_trait::async_trait;
use orchestra_api::auth::UserInfo;
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer};

use super::ca::{CaError, IssuedCert, SidecarKey};
use super::service::IdentityService;
use super::spiffe::SpiffeId;

/// Why a sidecar did not get a certificate.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The key or the signing request could not be made.
    #[error("making the signing request failed: {0}")]
    Request(#[from] CaError),
    /// The identity service refused or could not be reached.
    #[error("the identity service refused the signing request: {0}")]
    Refused(String),
    /// The answer is not a certificate for the identity asked for.
    #[error("the identity service answered with an unusable certificate: {0}")]
    BadAnswer(String),
}

/// A certificate and the trust anchors that came with it.
#[derive(Clone, Debug)]
pub struct Certified {
    /// The certificate (issued for the sidecar's key).
    pub issued: IssuedCert,
    /// The mesh's trust anchors.
    pub trust_roots: Vec<CertificateDer<'static>>,
}

/// Signs a sidecar's requests (see the module docs).
#[async_trait]
pub trait CertificateIssuer: Send + Sync {
    /// Asks for a certificate for `identity` from `csr`; returns the chain (leaf first) and
    /// the trust anchors, unchecked.
    async fn certify(
        &self,
        identity: &SpiffeId,
        csr: &CertificateSigningRequestDer<'static>,
    ) -> Result<(Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>), IssueError>;
}

#[async_trait]
impl<T: CertificateIssuer + ?Sized> CertificateIssuer for Arc<T> {
    async fn certify(
        &self,
        identity: &SpiffeId,
        csr: &CertificateSigningRequestDer<'static>,
    ) -> Result<(Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>), IssueError> {
        (**self).certify(identity, csr).await
    }
}

/// One round with `issuer`: a new key for `identity`, its CSR, and the certificate, checked
/// to carry `identity`.
pub async fn request_certificate(
    issuer: &(impl CertificateIssuer + ?Sized),
    identity: &SpiffeId,
) -> Result<(SidecarKey, Certified), IssueError> {
    let (key, csr) = SidecarKey::generate(identity)?;
    let (chain, trust_roots) = issuer.certify(identity, &csr).await?;
    let issued = IssuedCert::from_chain(chain).map_err(|e| IssueError::BadAnswer(e.to_string()))?;
    if issued.identity != *identity {
        return Err(IssueError::BadAnswer(format!(
            "the certificate is for {}, not {identity}",
            issued.identity
        )));
    }
    if trust_roots.is_empty() {
        return Err(IssueError::BadAnswer(
            "no trust anchors came with it".into(),
        ));
    }
    Ok((
        key,
        Certified {
            issued,
            trust_roots,
        },
    ))
}

/// An in-process issuer: the identity service with a caller already authenticated (the
/// control plane's own components, simulations and tests). The clock is `SystemTime::now`
/// unless set with [`with_clock`](Self::with_clock).
pub struct LocalIssuer {
    service: Arc<IdentityService>,
    caller: UserInfo,
    clock: Arc<dyn Fn() -> std::time::SystemTime + Send + Sync>,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer")
            .field("caller", &self.caller)
            .finish_non_exhaustive()
    }
}

impl LocalIssuer {
    /// `service` answering as if `caller` had authenticated.
    pub fn new(service: Arc<IdentityService>, caller: UserInfo) -> Self {
        LocalIssuer {
            service,
            caller,
            clock: Arc::new(std::time::SystemTime::now),
        }
    }

    /// Uses `clock` for the certificates' validity.
    pub fn with_clock(
        mut self,
        clock: impl Fn() -> std::time::SystemTime + Send + Sync + 'static,
    ) -> Self {
        self.clock = Arc::new(clock);
        self
    }
}

#[async_trait]
impl CertificateIssuer for LocalIssuer {
    async fn certify(
        &self,
        identity: &SpiffeId,
        csr: &CertificateSigningRequestDer<'static>,
    ) -> Result<(Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>), IssueError> {
        let issued = self
            .service
            .certify(&self.caller, &identity.to_string(), csr, (self.clock)())
            .map_err(|e| IssueError::Refused(e.to_string()))?;
        Ok((issued.chain, self.service.trust_roots().to_vec()))
    }
}

/// The identity service through the API server (its `IssueWorkloadCertificate` call). The
/// client must authenticate with the pod's service account token.
#[cfg(feature = "remote")]
#[derive(Clone, Debug)]
pub struct IdentityClient {
    client: orchestra_api::RemoteClient,
}

#[cfg(feature = "remote")]
impl IdentityClient {
    /// Asks through `client` (connected with the service account token's credentials).
    pub fn new(client: orchestra_api::RemoteClient) -> Self {
        IdentityClient { client }
    }
}

#[cfg(feature = "remote")]
#[async_trait]
impl CertificateIssuer for IdentityClient {
    async fn certify(
        &self,
        identity: &SpiffeId,
        csr: &CertificateSigningRequestDer<'static>,
    ) -> Result<(Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>), IssueError> {
        let request = orchestra_api::auth::workload::WorkloadCertificateRequest {
            identity: identity.to_string(),
            csr_der: csr.as_ref().to_vec(),
        };
        let signed = self
            .client
            .issue_workload_certificate(&request)
            .await
            .map_err(|e| IssueError::Refused(e.to_string()))?;
        let der = |v: Vec<Vec<u8>>| v.into_iter().map(CertificateDer::from).collect();
        Ok((der(signed.chain_der), der(signed.trust_roots_der)))
    }
}
