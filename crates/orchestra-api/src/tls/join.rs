//! Join tokens, for an agent's TLS bootstrap (kubelet's and k3s' idea): the server writes
//! `<data-dir>/node-token`; an agent given that token (`orchestra agent --token ...`) pins the
//! cluster CA by the hash in the token, fetches the CA from the server's TLS handshake (so it
//! needs no CA file), and authenticates with the token's secret to have a node certificate
//! signed. The token grants nothing else: the server refuses every other request of it.
//!
//! Format: `K10<sha256 of the CA certificate, hex>::node:<secret>`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use rand::Rng;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use super::config::{certificates, provider};
use super::{TlsError, files};

/// A join token: the CA's hash and the secret. See the [module docs](self).
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    ca_hash: String,
    secret: String,
}

impl std::fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_hash", &self.ca_hash)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "K10{}::node:{}", self.ca_hash, self.secret)
    }
}

impl std::str::FromStr for JoinToken {
    type Err = TlsError;

    fn from_str(text: &str) -> Result<Self, TlsError> {
        let text = text.trim();
        let (hash, secret) = text
            .strip_prefix("K10")
            .and_then(|rest| rest.split_once("::node:"))
            .ok_or_else(|| {
                TlsError::Token(
                    "expected K10<CA hash>::node:<secret>, as in the server's node-token file"
                        .into(),
                )
            })?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TlsError::Token(
                "the CA hash is not 64 hex digits (SHA-256)".into(),
            ));
        }
        if secret.len() < 16 {
            return Err(TlsError::Token(
                "the secret is shorter than 16 characters".into(),
            ));
        }
        Ok(JoinToken {
            ca_hash: hash.to_ascii_lowercase(),
            secret: secret.to_owned(),
        })
    }
}

/// The SHA-256 of a certificate's DER, hex.
fn hash(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl JoinToken {
    /// The token in `path`, or a new one for the CA `ca_pem` (written with mode 0600).
    pub fn load_or_create(path: &Path, ca_pem: &str) -> Result<Self, TlsError> {
        if files::exists(path) {
            return files::read(path)?
                .parse()
                .map_err(|err: TlsError| TlsError::Invalid {
                    path: path.to_owned(),
                    message: err.to_string(),
                });
        }
        let ca = certificates("the CA certificate", ca_pem)?;
        let secret: String = (0..32)
            .map(|_| format!("{:x}", rand::rng().random_range(0..16u8)))
            .collect();
        let token = JoinToken {
            ca_hash: hash(&ca[0]),
            secret,
        };
        files::write(path, &format!("{token}\n"), true)?;
        Ok(token)
    }

    /// Whether `presented` (a bearer token) is this token (compared in constant time).
    pub fn matches(&self, presented: &str) -> bool {
        let mine = self.to_string();
        mine.len() == presented.len()
            && mine
                .bytes()
                .zip(presented.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// Fetches the cluster CA (PEM) from the server at `url` (`https://HOST:PORT`): the
    /// handshake succeeds only if the server's chain holds a CA whose hash is the token's and
    /// the server's certificate verifies against it.
    pub async fn fetch_ca(&self, url: &str) -> Result<String, TlsError> {
        let fail = |message: String| TlsError::Fetch {
            server: url.to_owned(),
            message,
        };
        let authority = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default();
        let host = match authority.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => authority,
        };
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|err| fail(format!("{host:?} is no server name: {err}")))?;
        let verifier = Arc::new(PinnedCa {
            pin: self.ca_hash.clone(),
            provider: provider(),
            found: Mutex::new(None),
        });
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|err| fail(format!("connecting failed: {err}")))?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let stream = connector
            .connect(server_name, tcp)
            .await
            .map_err(|err| fail(format!("the TLS handshake failed: {err}")))?;
        drop(stream);
        let ca = verifier
            .found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .ok_or_else(|| fail("the server presented no CA".into()))?;
        Ok(pem("CERTIFICATE", &ca))
    }
}

/// PEM text of one DER object.
fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Accepts a server whose chain holds the pinned CA and whose certificate that CA signed.
#[derive(Debug)]
struct PinnedCa {
    pin: String,
    provider: Arc<CryptoProvider>,
    found: Mutex<Option<CertificateDer<'static>>>,
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|cert| hash(cert) == self.pin)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the server's CA is not the one the join token names (wrong server, or a new CA?)"
                        .into(),
                )
            })?
            .clone()
            .into_owned();
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone())?;
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|err| rustls::Error::General(err.to_string()))?;
        verifier.verify_server_cert(end_entity, &[], server_name, ocsp_response, now)?;
        *self
            .found
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(ca);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_and_refuse_malformed_text() {
        let token: JoinToken = format!("K10{}::node:{}", "ab".repeat(32), "s".repeat(20))
            .parse()
            .unwrap();
        assert!(token.matches(&token.to_string()));
        assert!(!token.matches("K10"));
        assert!(!format!("{token:?}").contains("sssss"));
        for bad in ["", "K10abc::node:ssssssssssssssssss", "xyz"] {
            assert!(bad.parse::<JoinToken>().is_err(), "{bad}");
        }
    }
}
