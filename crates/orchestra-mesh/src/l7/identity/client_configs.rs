//! [`ClientConfigs`]: the outbound side's rustls client configurations, one per expected
//! server identity, built once and shared by every connection that expects it.
//!
//! Building a `rustls::ClientConfig` allocates a provider, a verifier and session caches;
//! an outbound proxy that checks each endpoint's identity would otherwise build one per
//! endpoint (or per connection). Configurations stay valid across certificate renewals and
//! trust-bundle rotations: they read the sidecar's [`MeshTls`] at each handshake. The cache
//! holds one entry per identity the proxy has connected to (the cluster's ServiceAccounts
//! with meshed endpoints, at most), so it is never trimmed.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::ClientConfig;

use super::spiffe::SpiffeId;
use super::tls::MeshTls;

/// Client configurations by expected server identity (see the module docs). Cheap to
/// clone: clones share the cache and the mismatch counter.
#[derive(Clone)]
pub struct ClientConfigs {
    tls: MeshTls,
    configs: Arc<Mutex<HashMap<Option<SpiffeId>, Arc<ClientConfig>>>>,
    mismatches: Arc<AtomicU64>,
}

impl fmt::Debug for ClientConfigs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfigs")
            .field("tls", &self.tls)
            .field("mismatches", &self.mismatches())
            .finish_non_exhaustive()
    }
}

impl ClientConfigs {
    /// Configurations of the sidecar whose TLS settings are `tls`; `mismatches` counts the
    /// handshakes refused because the server was not the identity expected (shared with
    /// the proxy's metrics).
    pub fn new(tls: MeshTls, mismatches: Arc<AtomicU64>) -> Self {
        ClientConfigs {
            tls,
            configs: Arc::default(),
            mismatches,
        }
    }

    /// The configuration for a server that must be `expected` (any identity of the trust
    /// domain when `None`), built on first use.
    pub fn get(&self, expected: Option<&SpiffeId>) -> Arc<ClientConfig> {
        let mut configs = self.configs.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(config) = configs.get(&expected.cloned()) {
            return config.clone();
        }
        let config = self
            .tls
            .client_config_counting(expected.cloned(), Some(self.mismatches.clone()));
        configs.insert(expected.cloned(), config.clone());
        config
    }

    /// The sidecar's TLS settings.
    pub fn tls(&self) -> &MeshTls {
        &self.tls
    }

    /// Handshakes refused so far because the server's identity was not the one expected.
    pub fn mismatches(&self) -> u64 {
        self.mismatches.load(Ordering::Relaxed)
    }

    /// How many configurations are cached.
    pub fn len(&self) -> usize {
        self.configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether none is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use http::{Method, Request};
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;
    use tower::{BoxError, Service};

    use super::*;
    use crate::l7::identity::{CaConfig, MeshCa, MeshCredentials, SidecarKey, TrustBundle};
    use crate::l7::{Endpoint, EndpointError, MeshBody, is_retryable};

    fn id(account: &str) -> SpiffeId {
        SpiffeId::new("cluster.local", "shop", account).unwrap()
    }

    fn tls(ca: &MeshCa, identity: &SpiffeId) -> MeshTls {
        let (key, request) = SidecarKey::generate(identity).unwrap();
        let issued = ca.issue(&request, identity, SystemTime::now()).unwrap();
        let bundle = TrustBundle::new("cluster.local", [ca.root().clone()]).unwrap();
        MeshTls::new(MeshCredentials::new(&key, issued).unwrap(), bundle)
    }

    #[test]
    fn one_configuration_per_expected_identity() {
        let ca = MeshCa::generate(CaConfig::default(), SystemTime::now()).unwrap();
        let configs = ClientConfigs::new(tls(&ca, &id("web")), Arc::default());
        assert!(configs.is_empty());
        let echo = configs.get(Some(&id("echo")));
        assert!(Arc::ptr_eq(&echo, &configs.get(Some(&id("echo")))));
        assert!(!Arc::ptr_eq(&echo, &configs.get(Some(&id("cart")))));
        assert!(!Arc::ptr_eq(&echo, &configs.get(None)));
        assert_eq!(configs.len(), 3);
    }

    /// A server presenting shop/echo's certificate, to an endpoint expecting shop/payments:
    /// the handshake fails as a connect error (retryable, an endpoint failure for the
    /// breaker), counted once; expecting shop/echo, the request is sent.
    #[tokio::test]
    async fn another_identity_is_a_connect_error_counted_as_a_mismatch() {
        let ca = MeshCa::generate(CaConfig::default(), SystemTime::now()).unwrap();
        let server = tls(&ca, &id("echo"));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = TlsAcceptor::from(server.server_config());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|_| async {
                        Ok::<_, hyper::Error>(http::Response::new(http_body_util::Empty::<
                            bytes::Bytes,
                        >::new()))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        let configs = ClientConfigs::new(tls(&ca, &id("web")), Arc::default());
        let request = || Request::builder().uri("/").body(MeshBody::empty()).unwrap();

        let config = configs.get(Some(&id("payments")));
        let mut endpoint = Endpoint::with_tls(addr, Duration::from_secs(5), Some(config));
        let error = endpoint.call(request()).await.unwrap_err();
        assert!(matches!(error, EndpointError::Connect { .. }), "{error}");
        assert_eq!(configs.mismatches(), 1);
        let error: Result<http::Response<()>, BoxError> = Err(error.into());
        assert!(is_retryable(&Method::POST, &error), "a connect error");

        let config = configs.get(Some(&id("echo")));
        let mut endpoint = Endpoint::with_tls(addr, Duration::from_secs(5), Some(config));
        let response = endpoint.call(request()).await.unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(configs.mismatches(), 1);
    }
}
