//! [`TrustBundle`]: the roots a sidecar trusts, and the check of a peer's certificate against
//! them that yields the peer's [`SpiffeId`].
//!
//! During a trust-anchor rotation the bundle holds two roots (the old and the new): peers
//! with certificates from either are accepted while sidecars move to the new CA one by one;
//! then the old root is removed. A sidecar follows the rotation with
//! [`TrustBundle::refreshed`]: the roots the identity service hands out now are taken up at
//! once, and a root it no longer hands out stays until it expires, since peers may still
//! present certificates it signed until then.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::{CertificateDer, UnixTime};
use webpki::{EndEntityCert, KeyUsage, anchor_from_trusted_cert};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::spiffe::SpiffeId;

/// Which side of the connection the verified certificate belongs to (the EKU it must allow).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRole {
    /// The peer is the TLS client (inbound side verifying a caller).
    Client,
    /// The peer is the TLS server (outbound side verifying the callee).
    Server,
}

/// Why a peer's certificate was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The peer presented no certificate.
    #[error("the peer presented no certificate")]
    NoCertificate,
    /// The certificate does not chain to a root of the bundle, has expired, is not valid yet,
    /// or is not for this use.
    #[error("the peer's certificate is not trusted: {0}")]
    Untrusted(webpki::Error),
    /// The certificate carries no (or not exactly one) mesh SPIFFE ID.
    #[error("the peer's certificate has no usable SPIFFE ID: {0}")]
    NoIdentity(String),
    /// The identity is of another trust domain.
    #[error("peer identity {identity} is not in trust domain {trust_domain}")]
    ForeignTrustDomain {
        /// The peer's identity.
        identity: SpiffeId,
        /// The bundle's trust domain.
        trust_domain: String,
    },
}

/// Why a root cannot go into a bundle.
#[derive(Debug, thiserror::Error)]
#[error("root certificate {index} of the trust bundle is not a usable trust anchor: {source}")]
pub struct BundleError {
    index: usize,
    #[source]
    source: webpki::Error,
}

/// The trusted roots of one trust domain (see the module docs).
#[derive(Debug, Clone)]
pub struct TrustBundle {
    trust_domain: String,
    roots: Vec<CertificateDer<'static>>,
}

impl TrustBundle {
    /// A bundle of `roots` for `trust_domain`; each root must parse as a trust anchor.
    pub fn new(
        trust_domain: impl Into<String>,
        roots: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<Self, BundleError> {
        let roots: Vec<_> = roots.into_iter().collect();
        for (index, root) in roots.iter().enumerate() {
            anchor_from_trusted_cert(root).map_err(|source| BundleError { index, source })?;
        }
        Ok(TrustBundle {
            trust_domain: trust_domain.into(),
            roots,
        })
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The roots.
    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    /// A copy with `root` added (the start of a trust-anchor rotation).
    pub fn with_root(&self, root: CertificateDer<'static>) -> Result<Self, BundleError> {
        let mut roots = self.roots.clone();
        if !roots.contains(&root) {
            roots.push(root);
        }
        TrustBundle::new(self.trust_domain.clone(), roots)
    }

    /// The bundle after the identity service handed out `current` at `now`: `current`'s
    /// roots (a new trust anchor is trusted at once), then this bundle's other roots that
    /// are still valid at `now` (peers whose certificates an old root signed stay trusted
    /// until that root expires; one whose expiry cannot be read is dropped). Each root must
    /// be a usable trust anchor.
    pub fn refreshed(
        &self,
        current: &[CertificateDer<'static>],
        now: SystemTime,
    ) -> Result<Self, BundleError> {
        let mut roots: Vec<CertificateDer<'static>> = Vec::with_capacity(current.len() + 1);
        for root in current {
            if !roots.contains(root) {
                roots.push(root.clone());
            }
        }
        for root in &self.roots {
            if !roots.contains(root) && root_not_after(root).is_some_and(|end| now < end) {
                roots.push(root.clone());
            }
        }
        TrustBundle::new(self.trust_domain.clone(), roots)
    }

    /// When [`refreshed`](Self::refreshed) with the same `current` next drops a root: the
    /// earliest expiry of this bundle's roots that are not in `current` (`None`: none).
    pub fn next_expiry_outside(&self, current: &[CertificateDer<'_>]) -> Option<SystemTime> {
        self.roots
            .iter()
            .filter(|root| !current.iter().any(|c| c.as_ref() == root.as_ref()))
            .filter_map(|root| root_not_after(root))
            .min()
    }

    /// A copy without `root` (the end of a rotation).
    pub fn without_root(&self, root: &CertificateDer<'_>) -> Self {
        TrustBundle {
            trust_domain: self.trust_domain.clone(),
            roots: self.roots.iter().filter(|r| *r != root).cloned().collect(),
        }
    }

    /// Verifies `chain` (leaf first) presented by a peer in `role` at `now`: it must chain to
    /// one of the roots, be valid at `now`, allow the role's use, and name exactly one
    /// SPIFFE ID of this trust domain, which is returned.
    pub fn verify(
        &self,
        chain: &[CertificateDer<'_>],
        role: PeerRole,
        now: UnixTime,
    ) -> Result<SpiffeId, VerifyError> {
        let (leaf, intermediates) = chain.split_first().ok_or(VerifyError::NoCertificate)?;
        let anchors = self
            .roots
            .iter()
            // Checked when the bundle was made.
            .filter_map(|root| anchor_from_trusted_cert(root).ok())
            .collect::<Vec<_>>();
        let cert = EndEntityCert::try_from(leaf).map_err(VerifyError::Untrusted)?;
        let usage = match role {
            PeerRole::Client => KeyUsage::client_auth(),
            PeerRole::Server => KeyUsage::server_auth(),
        };
        let algorithms = rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all;
        cert.verify_for_usage(algorithms, &anchors, intermediates, now, usage, None, None)
            .map_err(VerifyError::Untrusted)?;
        let identity = spiffe_id_of(leaf)?;
        if identity.trust_domain() != self.trust_domain {
            return Err(VerifyError::ForeignTrustDomain {
                identity,
                trust_domain: self.trust_domain.clone(),
            });
        }
        Ok(identity)
    }
}

/// When `root` stops being valid (its notAfter), or `None` when it does not parse.
pub fn root_not_after(root: &CertificateDer<'_>) -> Option<SystemTime> {
    let (_, parsed) = X509Certificate::from_der(root).ok()?;
    let secs = u64::try_from(parsed.validity().not_after.timestamp()).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// The SPIFFE ID in `cert`'s URI SAN (exactly one URI SAN, in the mesh form). This does not
/// verify anything: call it on certificates that were verified.
pub fn spiffe_id_of(cert: &CertificateDer<'_>) -> Result<SpiffeId, VerifyError> {
    let (_, parsed) = X509Certificate::from_der(cert)
        .map_err(|e| VerifyError::NoIdentity(format!("unparsable certificate: {e}")))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| VerifyError::NoIdentity(format!("bad subjectAltName: {e}")))?
        .ok_or_else(|| VerifyError::NoIdentity("no subjectAltName".to_owned()))?;
    let uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect();
    match uris[..] {
        [uri] => uri
            .parse()
            .map_err(|e: super::spiffe::SpiffeIdError| VerifyError::NoIdentity(e.to_string())),
        [] => Err(VerifyError::NoIdentity("no URI SAN".to_owned())),
        _ => Err(VerifyError::NoIdentity(format!(
            "{} URI SANs, expected one",
            uris.len()
        ))),
    }
}
