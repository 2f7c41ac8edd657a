//! Sidecars in-process against a started `Cluster`: each authenticates as its service
//! account (a token), obtains its mesh certificate from the cluster's identity service and
//! follows Services and Endpoints through the API server. A request from the `web` sidecar's
//! outbound listener reaches the echo backend through the `echo` sidecar's inbound listener
//! over mTLS, and the backend sees the caller's identity; the `cart` identity, which the
//! echo sidecar's policy does not admit, gets 403. `/ready` says 503 and why until the
//! certificate and then the service table have arrived, 200 after; `POST /shutdown` drains
//! the sidecar (503 "draining", the request in flight answered) and makes `run` return.

#![cfg(feature = "server")]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orchestra::api::resources::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Namespace, Service, ServicePort,
    ServiceSpec,
};
use orchestra::api::{Client, ObjectMeta, RemoteClient};
use orchestra::cluster::Cluster;
use orchestra_api::tls::Credentials;
use orchestra_mesh::l7::identity::{CertificateIssuer, IdentityClient, IssueError, SpiffeId};
use orchestra_mesh::l7::{
    AuthorizationPolicy, Caller, DefaultAction, NamespacePolicy, Rule, Sidecar, SidecarConfig,
    SidecarStatus,
};
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer};
use support::sidecar::{grant_sidecars_the_service_table, http, mesh_cluster, wait_for};
use tokio::sync::watch;

const TOKENS: &str = "\
web-token-0001,system:serviceaccount:shop:web,1,\"system:serviceaccounts,system:serviceaccounts:shop\"
echo-token-002,system:serviceaccount:shop:echo,2,\"system:serviceaccounts,system:serviceaccounts:shop\"
cart-token-003,system:serviceaccount:shop:cart,3,\"system:serviceaccounts,system:serviceaccounts:shop\"
";

async fn start(dir: &Path) -> Cluster {
    mesh_cluster(dir, TOKENS).await
}

fn id(service_account: &str) -> SpiffeId {
    SpiffeId::new("example.org", "shop", service_account).unwrap()
}

/// The API as service account `token` authenticates.
async fn api_as(cluster: &Cluster, token: &str) -> RemoteClient {
    let credentials = Credentials {
        client_certificate: None,
        client_key: None,
        token: Some(token.to_owned()),
        ..cluster.credentials().clone()
    };
    RemoteClient::connect_with(&credentials).await.unwrap()
}

/// An issuer that answers only once `open` says so (to see the sidecar before its
/// certificate).
struct Gated {
    inner: IdentityClient,
    open: watch::Receiver<bool>,
}

#[async_trait]
impl CertificateIssuer for Gated {
    async fn certify(
        &self,
        identity: &SpiffeId,
        csr: &CertificateSigningRequestDer<'static>,
    ) -> Result<(Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>), IssueError> {
        let _ = self.open.clone().wait_for(|open| *open).await;
        self.inner.certify(identity, csr).await
    }
}

fn config(service_account: &str, app: SocketAddr, policy: AuthorizationPolicy) -> SidecarConfig {
    let any = "127.0.0.1:0".parse().unwrap();
    let mut config = SidecarConfig::new("shop", service_account);
    config.trust_domain = "example.org".to_owned();
    config.inbound = any;
    config.outbound = any;
    config.admin = any;
    config.app = app;
    config.policy = policy;
    // Long enough never to cut the held request short: the drain waits for it.
    config.drain_timeout = Duration::from_secs(60);
    config
}

/// The echo service: selectorless, its endpoint the echo sidecar's inbound listener.
async fn echo_service(cluster: &Cluster, inbound: SocketAddr) {
    let client = cluster.client();
    let meta = |name: &str| ObjectMeta {
        name: name.to_owned(),
        namespace: "shop".to_owned(),
        ..ObjectMeta::default()
    };
    client
        .create(&Namespace {
            metadata: ObjectMeta::named("shop"),
            ..Namespace::default()
        })
        .await
        .unwrap();
    client
        .create(&Service {
            metadata: meta("echo"),
            spec: ServiceSpec {
                ports: vec![ServicePort {
                    name: "http".to_owned(),
                    port: 80,
                    ..ServicePort::default()
                }],
                ..ServiceSpec::default()
            },
            status: None,
        })
        .await
        .unwrap();
    client
        .create(&Endpoints {
            metadata: meta("echo"),
            subsets: vec![EndpointSubset {
                addresses: vec![EndpointAddress {
                    ip: inbound.ip().to_string(),
                    ..EndpointAddress::default()
                }],
                not_ready_addresses: vec![],
                ports: vec![EndpointPort {
                    name: "http".to_owned(),
                    port: i32::from(inbound.port()),
                    ..EndpointPort::default()
                }],
            }],
        })
        .await
        .unwrap();
}

async fn status_until(
    status: &mut watch::Receiver<SidecarStatus>,
    what: &str,
    done: impl FnMut(&SidecarStatus) -> bool,
) {
    wait_for(what, status.wait_for(done)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_carry_a_request_over_mtls_and_enforce_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(dir.path()).await;
    let (backend, hold, _backend_task) = support::sidecar::echo_backend().await;

    // The echo sidecar: only shop/web may call its application.
    let only_web = AuthorizationPolicy {
        default: DefaultAction::Deny,
        namespaces: HashMap::from([(
            "shop".to_owned(),
            NamespacePolicy {
                default: DefaultAction::Deny,
                rules: vec![Rule {
                    port: Some(backend.port()),
                    from: vec![Caller::Identity(id("web"))],
                    ..Rule::default()
                }],
            },
        )]),
    };
    let echo = Sidecar::bind(config("echo", backend, only_web))
        .await
        .unwrap();
    assert_eq!(echo.identity(), &id("echo"));
    let echo_admin = echo.admin_addr();
    let echo_inbound = echo.inbound_addr();
    let mut echo_status = echo.status();
    let echo_api = api_as(&cluster, "echo-token-002").await;
    let (open, gate) = watch::channel(false);
    let issuer = Arc::new(Gated {
        inner: IdentityClient::new(echo_api.clone()),
        open: gate,
    });
    let echo_run = tokio::spawn(echo.run(echo_api, issuer, std::future::pending()));

    // No certificate yet: not ready, and it says why.
    let (status, body) = http(echo_admin, "GET", "/ready", "admin").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: no mesh certificate yet\n")
    );
    let (status, _) = http(echo_admin, "GET", "/live", "admin").await;
    assert_eq!(status, 200);

    // A certificate, but service accounts may not read the service table yet.
    open.send_replace(true);
    status_until(&mut echo_status, "the echo sidecar's certificate", |s| {
        s.certificate_expiry.is_some()
    })
    .await;
    let (status, body) = http(echo_admin, "GET", "/ready", "admin").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: no service table from the API server yet\n")
    );

    // Once they may, the table arrives and the sidecar is ready.
    echo_service(&cluster, echo_inbound).await;
    grant_sidecars_the_service_table(&cluster).await;
    status_until(&mut echo_status, "the echo sidecar's service table", |s| {
        s.service_ports.is_some()
    })
    .await;
    let (status, body) = http(echo_admin, "GET", "/ready", "admin").await;
    assert_eq!((status, body.as_str()), (200, "ready\n"));

    // Two callers, with identities shop/web and shop/cart.
    let mut callers = Vec::new();
    for (account, token) in [("web", "web-token-0001"), ("cart", "cart-token-003")] {
        let sidecar = Sidecar::bind(config(
            account,
            "127.0.0.1:1".parse().unwrap(),
            AuthorizationPolicy::default(),
        ))
        .await
        .unwrap();
        let outbound = sidecar.outbound_addr();
        let admin = sidecar.admin_addr();
        let mut status = sidecar.status();
        let stop = sidecar.shutdown_handle();
        let api = api_as(&cluster, token).await;
        let issuer = Arc::new(IdentityClient::new(api.clone()));
        let run = tokio::spawn(sidecar.run(api, issuer, std::future::pending()));
        // Ready once the echo service is in its table.
        status_until(&mut status, "a caller sidecar's readiness", |s| {
            s.readiness(std::time::SystemTime::now()).is_ok() && s.service_ports == Some(1)
        })
        .await;
        let (code, _) = http(admin, "GET", "/ready", "admin").await;
        assert_eq!(code, 200);
        callers.push((outbound, stop, run));
    }

    // web -> its outbound -> mTLS -> echo's inbound -> the backend, which sees web's identity.
    let (web_outbound, _, _) = &callers[0];
    let (status, body) = http(*web_outbound, "GET", "/hello", "echo.shop").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, id("web").to_string());
    // Also by the full DNS name.
    let (status, body) = http(*web_outbound, "GET", "/", "echo.shop.svc.cluster.local").await;
    assert_eq!(
        (status, body.as_str()),
        (200, id("web").to_string().as_str())
    );

    // cart is authenticated but not admitted.
    let (cart_outbound, _, _) = &callers[1];
    let (status, body) = http(*cart_outbound, "GET", "/hello", "echo.shop").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("forbidden"), "{body}");

    // The echo sidecar's metrics count both sides and its certificate.
    let (status, metrics) = http(echo_admin, "GET", "/metrics", "admin").await;
    assert_eq!(status, 200);
    for line in [
        "orchestra_mesh_authz_denied_total{direction=\"inbound\",protocol=\"http\"} 1",
        "orchestra_sidecar_ready 1",
        "orchestra_sidecar_certificates_issued_total 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
    assert_eq!(
        metrics
            .matches("# TYPE orchestra_mesh_requests_total")
            .count(),
        1,
        "one family block for both directions:\n{metrics}"
    );

    // POST /shutdown (from loopback) drains the echo sidecar: it is not ready any more, a
    // request in flight still gets its answer, then its run returns.
    let web_outbound = *web_outbound;
    let in_flight =
        tokio::spawn(async move { http(web_outbound, "GET", "/hold", "echo.shop").await });
    wait_for("the held request to reach the backend", hold.held(1)).await;
    let (status, body) = http(echo_admin, "POST", "/shutdown", "admin").await;
    assert_eq!((status, body.as_str()), (200, "shutting down\n"));
    status_until(&mut echo_status, "the echo sidecar to drain", |s| {
        s.draining
    })
    .await;
    let (status, body) = http(echo_admin, "GET", "/ready", "admin").await;
    assert_eq!(
        (status, body.as_str()),
        (503, "not ready: draining: the sidecar is shutting down\n")
    );
    assert!(
        !echo_run.is_finished(),
        "the drain waits for the request in flight"
    );
    hold.release();
    let (status, body) = wait_for("the held request's answer", in_flight)
        .await
        .unwrap();
    assert_eq!((status, body), (200, id("web").to_string()));
    wait_for("the echo sidecar's run to return", echo_run)
        .await
        .unwrap();
    // Its listeners are closed: web's request now fails at the proxy.
    let (status, _) = http(web_outbound, "GET", "/hello", "echo.shop").await;
    assert!(status >= 500, "{status}");

    for (_, stop, run) in callers {
        stop.shutdown();
        wait_for("a caller sidecar's run to return", run)
            .await
            .unwrap();
    }
    cluster.shutdown().await;
}
