//! rustls configurations: the API server's (its certificate, and optional client
//! certificates verified against the cluster CA) and a client's (trusting only the CA).

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

use super::TlsError;

/// The crypto provider (ring, the one the workspace builds).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM text.
pub(crate) fn certificates(
    what: &'static str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::Pem {
            what,
            message: err.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what,
            message: "no certificate in it".into(),
        });
    }
    Ok(certs)
}

fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|err| TlsError::Pem {
        what: "the private key",
        message: err.to_string(),
    })
}

/// A root store holding the CA(s) of `ca_pem`.
pub(crate) fn roots(ca_pem: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in certificates("the CA certificate", ca_pem)? {
        roots.add(cert).map_err(TlsError::Config)?;
    }
    Ok(roots)
}

/// The server's configuration: `cert_pem` (chain) and `key_pem`; with `client_ca_pem`, client
/// certificates signed by that CA are verified and accepted (clients without one still
/// connect, to authenticate by bearer token; a certificate from another CA fails the
/// handshake). ALPN offers HTTP/2 (gRPC) and HTTP/1.1.
pub fn server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: Option<&str>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?;
    let builder = match client_ca_pem {
        Some(ca) => {
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider)
                    .allow_unauthenticated()
                    .build()
                    .map_err(|err| TlsError::Pem {
                        what: "the client CA",
                        message: err.to_string(),
                    })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(
            certificates("the server certificate", cert_pem)?,
            private_key(key_pem)?,
        )
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The TLS sessions a [`mutual_server_config`] server keeps for resumption.
const MUTUAL_TLS_SESSIONS: usize = 8;

/// A server configuration that *requires* a client certificate issued by `client_ca_pem`
/// (the node agent's log endpoint; the handshake fails without one). ALPN: HTTP/1.1.
pub fn mutual_server_config(
    cert_pem: &str,
    key_pem: &str,
    client_ca_pem: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = provider();
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots(client_ca_pem)?),
        provider.clone(),
    )
    .build()
    .map_err(|err| TlsError::Pem {
        what: "the client CA",
        message: err.to_string(),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certificates("the server certificate", cert_pem)?,
            private_key(key_pem)?,
        )
        .map_err(TlsError::Config)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Its one client is the API server: a few resumable sessions are plenty, while rustls'
    // default cache of 256 is allocated up front (about 30 KB per node agent, 150 MB for the
    // 5,000 agents of `orchestra bench cluster`).
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(MUTUAL_TLS_SESSIONS);
    Ok(Arc::new(config))
}

/// A client configuration trusting only `ca_pem`, with an optional client certificate
/// (`(cert_pem, key_pem)`); ALPN: HTTP/1.1 (for HTTP/JSON clients; gRPC goes through tonic).
pub fn client_config(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_root_certificates(roots(ca_pem)?);
    let mut config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                certificates("the client certificate", cert)?,
                private_key(key)?,
            )
            .map_err(TlsError::Config)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
