//! The rustls side of mesh identity: [`MeshCredentials`], the sidecar's certificate and key
//! behind a lock so that a renewed certificate is swapped in without a restart (new
//! handshakes use it; established connections keep theirs), and [`MeshTls`], which builds
//! the server configuration (client certificate required and verified against the trust
//! bundle) and client configurations (the server's SPIFFE ID verified) of the sidecar.
//!
//! Names are not checked the web's way: mesh certificates carry no DNS names, only a
//! SPIFFE ID, so the verifiers here check the chain with webpki ([`TrustBundle::verify`])
//! and then the identity.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, DistinguishedName, OtherError,
    ServerConfig, SignatureScheme,
};

use super::bundle::{PeerRole, TrustBundle, VerifyError, spiffe_id_of};
use super::ca::{IssuedCert, SidecarKey};
use super::spiffe::SpiffeId;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The sidecar's current certificate and key (see the module docs).
pub struct MeshCredentials {
    current: RwLock<(Arc<CertifiedKey>, IssuedCert)>,
}

impl fmt::Debug for MeshCredentials {
    // The key is never printed: only the identity and validity.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let issued = self.issued();
        f.debug_struct("MeshCredentials")
            .field("identity", &issued.identity)
            .field("not_after", &issued.not_after)
            .finish_non_exhaustive()
    }
}

fn certified(key: &SidecarKey, issued: &IssuedCert) -> Result<Arc<CertifiedKey>, rustls::Error> {
    CertifiedKey::from_der(issued.chain.clone(), key.private_key_der(), &provider()).map(Arc::new)
}

impl MeshCredentials {
    /// Credentials from the sidecar's key and the certificate the CA issued for it (the key
    /// must be the one the certificate was issued for).
    pub fn new(key: &SidecarKey, issued: IssuedCert) -> Result<Arc<Self>, rustls::Error> {
        let certified = certified(key, &issued)?;
        Ok(Arc::new(MeshCredentials {
            current: RwLock::new((certified, issued)),
        }))
    }

    /// Swaps in a renewed certificate (and its new key): later handshakes present it.
    pub fn rotate(&self, key: &SidecarKey, issued: IssuedCert) -> Result<(), rustls::Error> {
        let certified = certified(key, &issued)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = (certified, issued);
        Ok(())
    }

    /// The certificate presented now (for the renewal decision).
    pub fn issued(&self) -> IssuedCert {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .1
            .clone()
    }

    fn key(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
            .clone()
    }
}

impl ResolvesServerCert for MeshCredentials {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }
}

impl ResolvesClientCert for MeshCredentials {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A sidecar's TLS settings: its credentials and the trust bundle (swappable, for a
/// trust-anchor rotation). Cheap to clone.
#[derive(Clone)]
pub struct MeshTls {
    credentials: Arc<MeshCredentials>,
    bundle: Arc<RwLock<Arc<TrustBundle>>>,
}

impl fmt::Debug for MeshTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshTls")
            .field("credentials", &self.credentials)
            .field("trust_domain", &self.bundle().trust_domain())
            .finish()
    }
}

fn rustls_error(error: VerifyError) -> rustls::Error {
    let cert_error = match error {
        VerifyError::Untrusted(webpki::Error::CertExpired { .. }) => CertificateError::Expired,
        VerifyError::Untrusted(webpki::Error::CertNotValidYet { .. }) => {
            CertificateError::NotValidYet
        }
        VerifyError::Untrusted(webpki::Error::UnknownIssuer) => CertificateError::UnknownIssuer,
        other => CertificateError::Other(OtherError(Arc::new(other))),
    };
    rustls::Error::InvalidCertificate(cert_error)
}

/// An identity check that failed after the chain was fine.
#[derive(Debug, thiserror::Error)]
#[error("the server is {actual}, expected {expected}")]
struct WrongServer {
    actual: SpiffeId,
    expected: SpiffeId,
}

impl MeshTls {
    /// Settings from the sidecar's credentials and the trust bundle.
    pub fn new(credentials: Arc<MeshCredentials>, bundle: TrustBundle) -> Self {
        MeshTls {
            credentials,
            bundle: Arc::new(RwLock::new(Arc::new(bundle))),
        }
    }

    /// The credentials (to rotate them).
    pub fn credentials(&self) -> &Arc<MeshCredentials> {
        &self.credentials
    }

    /// The trust bundle used by handshakes now.
    pub fn bundle(&self) -> Arc<TrustBundle> {
        self.bundle
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the trust bundle (a trust-anchor rotation): later handshakes use it.
    pub fn set_bundle(&self, bundle: TrustBundle) {
        *self.bundle.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(bundle);
    }

    /// The inbound side's configuration: TLS 1.3, a client certificate required and verified
    /// against the bundle, this sidecar's certificate presented.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        let verifier = Arc::new(Verifier {
            tls: self.clone(),
            expected: None,
            mismatches: None,
            algorithms: provider().signature_verification_algorithms,
        });
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            // The ring provider supports TLS 1.3: this cannot fail.
            .unwrap_or_else(|_| unreachable_config())
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(self.credentials.clone());
        Arc::new(config)
    }

    /// The outbound side's configuration for a server that must be `expected` (or any
    /// identity of the trust domain when `None`): TLS 1.3, this sidecar's certificate
    /// presented.
    pub fn client_config(&self, expected: Option<SpiffeId>) -> Arc<ClientConfig> {
        self.client_config_counting(expected, None)
    }

    /// [`client_config`](Self::client_config), counting in `mismatches` the handshakes
    /// refused because the server (with a valid chain) was not `expected`.
    pub(crate) fn client_config_counting(
        &self,
        expected: Option<SpiffeId>,
        mismatches: Option<Arc<AtomicU64>>,
    ) -> Arc<ClientConfig> {
        let verifier = Arc::new(Verifier {
            tls: self.clone(),
            expected,
            mismatches,
            algorithms: provider().signature_verification_algorithms,
        });
        let config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap_or_else(|_| unreachable_config())
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(self.credentials.clone());
        Arc::new(config)
    }
}

#[allow(clippy::panic)]
fn unreachable_config<T>() -> T {
    panic!("rustls' ring provider lacks TLS 1.3")
}

/// Peer identity after a handshake: the SPIFFE ID of the (verified) end-entity certificate.
pub fn peer_identity(certificates: Option<&[CertificateDer<'_>]>) -> Option<SpiffeId> {
    spiffe_id_of(certificates?.first()?).ok()
}

/// Both verifiers: the chain against the current bundle, then (server side of an outbound
/// connection) the expected identity.
struct Verifier {
    tls: MeshTls,
    expected: Option<SpiffeId>,
    /// Counts the servers refused for not being `expected` (rustls calls the verifier once
    /// per handshake, so each refused handshake counts once).
    mismatches: Option<Arc<AtomicU64>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("expected", &self.expected)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    fn verify(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        role: PeerRole,
        now: UnixTime,
    ) -> Result<SpiffeId, rustls::Error> {
        let mut chain = Vec::with_capacity(1 + intermediates.len());
        chain.push(end_entity.clone());
        chain.extend(intermediates.iter().cloned());
        self.tls
            .bundle()
            .verify(&chain, role, now)
            .map_err(rustls_error)
    }
}

impl ClientCertVerifier for Verifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Sidecars have one certificate: no hints needed.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verify(end_entity, intermediates, PeerRole::Client, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual = self.verify(end_entity, intermediates, PeerRole::Server, now)?;
        if let Some(expected) = &self.expected
            && *expected != actual
        {
            if let Some(mismatches) = &self.mismatches {
                mismatches.fetch_add(1, Ordering::Relaxed);
            }
            return Err(rustls::Error::InvalidCertificate(CertificateError::Other(
                OtherError(Arc::new(WrongServer {
                    actual,
                    expected: expected.clone(),
                })),
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
