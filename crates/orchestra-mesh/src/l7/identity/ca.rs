//! The mesh CA and the sidecar's side of a signing request.
//!
//! A sidecar generates its own key pair ([`SidecarKey::generate`]) and sends the CA only a
//! certificate signing request (PKCS #10): the private key never leaves the sidecar. The CA
//! ([`MeshCa`]) checks the request's signature (proof that the requester holds the key),
//! and signs a short-lived certificate (24 hours by default) whose only subject alternative
//! name is the SPIFFE ID the *caller* vouches for (in a cluster, the control plane after
//! authenticating the pod's service account token): a request that asks for a different
//! identity is refused rather than trusted.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateSigningRequestDer, PrivateKeyDer, PrivatePkcs8KeyDer,
};
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::spiffe::SpiffeId;

/// Why the CA could not issue a certificate (or be created).
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The signing request is not a well-formed PKCS #10 request, or its signature is wrong.
    #[error("invalid certificate signing request: {0}")]
    InvalidRequest(rcgen::Error),
    /// The request names identities other than the one being issued.
    #[error("the signing request asks for {requested:?}, but the caller is {identity}")]
    IdentityMismatch {
        /// The SANs the request asked for.
        requested: Vec<String>,
        /// The identity the certificate would have carried.
        identity: SpiffeId,
    },
    /// The identity belongs to another trust domain than this CA's.
    #[error("identity {identity} is not in this CA's trust domain {trust_domain}")]
    ForeignTrustDomain {
        /// The identity asked for.
        identity: SpiffeId,
        /// The CA's trust domain.
        trust_domain: String,
    },
    /// A time outside what X.509 can express.
    #[error("validity time out of range: {0}")]
    Time(String),
    /// Key generation or signing failed.
    #[error("certificate generation failed: {0}")]
    Generate(rcgen::Error),
    /// The configured trust domain cannot be part of a SPIFFE ID.
    #[error(
        "invalid mesh trust domain {trust_domain:?}: it must be lowercase letters, digits, '.', '-' or '_'"
    )]
    InvalidTrustDomain {
        /// The trust domain given.
        trust_domain: String,
    },
    /// The CA's files could not be read, written or used.
    #[error("mesh CA file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The settings of a [`MeshCa`].
#[derive(Debug, Clone)]
pub struct CaConfig {
    /// The trust domain whose identities the CA signs (`cluster.local` by default).
    pub trust_domain: String,
    /// How long an issued workload certificate is valid (24 hours by default).
    pub workload_ttl: Duration,
    /// How far before "now" an issued certificate starts to be valid, to absorb clock skew
    /// between sidecars (1 minute by default).
    pub backdate: Duration,
    /// How long the CA's own root certificate is valid (1 year by default).
    pub root_ttl: Duration,
}

impl Default for CaConfig {
    fn default() -> Self {
        CaConfig {
            trust_domain: "cluster.local".to_owned(),
            workload_ttl: Duration::from_secs(24 * 3600),
            backdate: Duration::from_secs(60),
            root_ttl: Duration::from_secs(365 * 24 * 3600),
        }
    }
}

/// A certificate the CA issued: the chain a sidecar presents (its own certificate; the root
/// is distributed separately, in the trust bundle) and its validity.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// The identity in the certificate's URI SAN.
    pub identity: SpiffeId,
    /// The certificate chain, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// Valid from.
    pub not_before: SystemTime,
    /// Valid until.
    pub not_after: SystemTime,
}

impl IssuedCert {
    /// The identity and validity read from `chain`'s first certificate (a certificate the
    /// sidecar received: it checks that the CA signed what it asked for).
    pub fn from_chain(chain: Vec<CertificateDer<'static>>) -> Result<Self, super::VerifyError> {
        use super::VerifyError;
        let leaf = chain.first().ok_or(VerifyError::NoCertificate)?;
        let identity = super::spiffe_id_of(leaf)?;
        let (_, parsed) = X509Certificate::from_der(leaf)
            .map_err(|e| VerifyError::NoIdentity(format!("unparsable certificate: {e}")))?;
        let at = |t: x509_parser::time::ASN1Time| {
            UNIX_EPOCH + Duration::from_secs(u64::try_from(t.timestamp()).unwrap_or(0))
        };
        let validity = parsed.validity();
        let (not_before, not_after) = (at(validity.not_before), at(validity.not_after));
        Ok(IssuedCert {
            identity,
            chain,
            not_before,
            not_after,
        })
    }
}

/// The mesh's certificate authority (see the module docs).
pub struct MeshCa {
    config: CaConfig,
    issuer: Issuer<'static, KeyPair>,
    root: CertificateDer<'static>,
}

impl fmt::Debug for MeshCa {
    // Never print the signing key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshCa")
            .field("trust_domain", &self.config.trust_domain)
            .field("workload_ttl", &self.config.workload_ttl)
            .finish_non_exhaustive()
    }
}

/// Refuses a trust domain no SPIFFE ID can carry, before anything is generated or written.
fn check_trust_domain(trust_domain: &str) -> Result<(), CaError> {
    SpiffeId::new(trust_domain, "ns", "sa")
        .map(drop)
        .map_err(|_| CaError::InvalidTrustDomain {
            trust_domain: trust_domain.to_owned(),
        })
}

/// `der` as a PEM `CERTIFICATE` block.
fn pem_certificate(der: &CertificateDer<'_>) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// `time` in X.509's one-second resolution.
fn to_x509_time(time: SystemTime) -> Result<OffsetDateTime, CaError> {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CaError::Time(format!("{time:?} is before 1970")))?
        .as_secs();
    let secs = i64::try_from(secs).map_err(|_| CaError::Time(format!("{time:?}")))?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| CaError::Time(e.to_string()))
}

/// `time` truncated to whole seconds, as it is written into a certificate.
fn truncate_to_secs(time: SystemTime) -> SystemTime {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl MeshCa {
    /// A new CA with a freshly generated root key and self-signed root certificate, valid
    /// from `now`.
    pub fn generate(config: CaConfig, now: SystemTime) -> Result<Self, CaError> {
        check_trust_domain(&config.trust_domain)?;
        let key = KeyPair::generate().map_err(CaError::Generate)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::OrganizationName, config.trust_domain.as_str());
        name.push(DnType::CommonName, "orchestra mesh root CA");
        params.distinguished_name = name;
        // A root that signs workload certificates directly: no intermediates below it.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = to_x509_time(now.checked_sub(config.backdate).unwrap_or(now))?;
        params.not_after = to_x509_time(now + config.root_ttl)?;
        let root = params.self_signed(&key).map_err(CaError::Generate)?;
        Ok(MeshCa {
            config,
            root: root.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA kept in `dir` (`ca.crt` and `ca.key`, PEM; the key readable by the owner
    /// only), made with [`generate`](Self::generate) and written there the first time, so
    /// that a restarted control plane keeps the trust anchor its sidecars know. A root that
    /// has expired, or files that do not parse, are an error naming the file.
    pub fn load_or_create(dir: &Path, config: CaConfig, now: SystemTime) -> Result<Self, CaError> {
        check_trust_domain(&config.trust_domain)?;
        let cert_path = dir.join("ca.crt");
        let key_path = dir.join("ca.key");
        let file_error = |path: &Path, message: String| CaError::File {
            path: path.to_owned(),
            message,
        };
        if !cert_path.exists() {
            let ca = MeshCa::generate(config, now)?;
            std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e.to_string()))?;
            let key_pem = ca.issuer.key().serialize_pem();
            let mut key = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&key_path)
                .map_err(|e| file_error(&key_path, e.to_string()))?;
            key.write_all(key_pem.as_bytes())
                .map_err(|e| file_error(&key_path, e.to_string()))?;
            let cert_pem = pem_certificate(&ca.root);
            std::fs::write(&cert_path, cert_pem)
                .map_err(|e| file_error(&cert_path, e.to_string()))?;
            return Ok(ca);
        }
        let cert_pem =
            std::fs::read(&cert_path).map_err(|e| file_error(&cert_path, e.to_string()))?;
        let root = CertificateDer::from_pem_slice(&cert_pem)
            .map_err(|e| file_error(&cert_path, format!("not a PEM certificate: {e}")))?;
        let key_pem =
            std::fs::read_to_string(&key_path).map_err(|e| file_error(&key_path, e.to_string()))?;
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| file_error(&key_path, format!("not a PEM private key: {e}")))?;
        let (_, parsed) = X509Certificate::from_der(&root)
            .map_err(|e| file_error(&cert_path, format!("unparsable certificate: {e}")))?;
        let not_after = UNIX_EPOCH
            + Duration::from_secs(
                u64::try_from(parsed.validity().not_after.timestamp()).unwrap_or(0),
            );
        if not_after <= now {
            return Err(file_error(
                &cert_path,
                "the mesh root certificate has expired: rotate the trust anchor".to_owned(),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&root, key).map_err(|e| {
            file_error(
                &cert_path,
                format!("not usable as the CA with {}: {e}", key_path.display()),
            )
        })?;
        Ok(MeshCa {
            config,
            issuer,
            root,
        })
    }

    /// The CA's root certificate, to put in trust bundles.
    pub fn root(&self) -> &CertificateDer<'static> {
        &self.root
    }

    /// The CA's trust domain.
    pub fn trust_domain(&self) -> &str {
        &self.config.trust_domain
    }

    /// Signs `request` for `identity`, valid from `now` (less the backdate) for the
    /// configured workload lifetime.
    pub fn issue(
        &self,
        request: &CertificateSigningRequestDer<'_>,
        identity: &SpiffeId,
        now: SystemTime,
    ) -> Result<IssuedCert, CaError> {
        self.issue_for(request, identity, now, self.config.workload_ttl)
    }

    /// Like [`issue`](Self::issue) with an explicit lifetime.
    pub fn issue_for(
        &self,
        request: &CertificateSigningRequestDer<'_>,
        identity: &SpiffeId,
        now: SystemTime,
        ttl: Duration,
    ) -> Result<IssuedCert, CaError> {
        if identity.trust_domain() != self.config.trust_domain {
            return Err(CaError::ForeignTrustDomain {
                identity: identity.clone(),
                trust_domain: self.config.trust_domain.clone(),
            });
        }
        // Parsing checks the request's signature with the public key it carries.
        let request =
            CertificateSigningRequestParams::from_der(request).map_err(CaError::InvalidRequest)?;
        let uri = identity.to_string();
        let requested: Vec<String> = request
            .params
            .subject_alt_names
            .iter()
            .map(|san| match san {
                SanType::URI(uri) => uri.as_str().to_owned(),
                other => format!("{other:?}"),
            })
            .collect();
        if !(requested.is_empty() || requested == [uri.as_str()]) {
            return Err(CaError::IdentityMismatch {
                requested,
                identity: identity.clone(),
            });
        }
        // Everything in the certificate is the CA's choice; only the public key comes from
        // the request.
        let not_before = truncate_to_secs(now.checked_sub(self.config.backdate).unwrap_or(now));
        let not_after = truncate_to_secs(now + ttl);
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(
            uri.as_str()
                .try_into()
                .map_err(|e: rcgen::Error| CaError::Generate(e))?,
        )];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = to_x509_time(not_before)?;
        params.not_after = to_x509_time(not_after)?;
        let cert = params
            .signed_by(&request.public_key, &self.issuer)
            .map_err(CaError::Generate)?;
        Ok(IssuedCert {
            identity: identity.clone(),
            chain: vec![cert.der().clone()],
            not_before,
            not_after,
        })
    }
}

/// A sidecar's private key: generated in the sidecar, never sent anywhere, never printed.
pub struct SidecarKey {
    key: KeyPair,
}

impl fmt::Debug for SidecarKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SidecarKey(<private key redacted>)")
    }
}

impl SidecarKey {
    /// A new key pair (ECDSA P-256) and a signing request for `identity` made with it.
    pub fn generate(
        identity: &SpiffeId,
    ) -> Result<(SidecarKey, CertificateSigningRequestDer<'static>), CaError> {
        let key = KeyPair::generate().map_err(CaError::Generate)?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = vec![SanType::URI(
            identity
                .to_string()
                .as_str()
                .try_into()
                .map_err(CaError::Generate)?,
        )];
        params.distinguished_name = DistinguishedName::new();
        let request = params.serialize_request(&key).map_err(CaError::Generate)?;
        Ok((SidecarKey { key }, request.der().clone()))
    }

    /// The key in PKCS #8, for rustls.
    pub(crate) fn private_key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }
}
