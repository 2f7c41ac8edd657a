//! Two sidecars in-process, sidecar to sidecar over mTLS: client app -> outbound
//! `HttpProxy` -> mTLS -> `InboundProxy` -> echo backend. The request succeeds and the
//! backend learns the caller's SPIFFE ID; a client whose certificate comes from a foreign CA
//! is refused; an identity the policy denies gets 403; a certificate rotation in the middle
//! of traffic loses no request; a denied opaque connection is closed; a server with the wrong
//! identity is refused by the client; the outbound sidecar requires of each endpoint the
//! identity discovery gives it (its pod's ServiceAccount), so that an endpoint presenting
//! another ServiceAccount's certificate gets no request.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use orchestra_mesh::l7::identity::{
    CaConfig, MeshCa, MeshCredentials, MeshTls, SidecarKey, SpiffeId, TrustBundle,
};
use orchestra_mesh::l7::{
    AuthorizationPolicy, BreakerConfig, Caller, DefaultAction, DirectoryConfig, HttpProxy,
    HttpProxyConfig, HttpRoute, InboundConfig, InboundProxy, MeshDirectory, NamespacePolicy,
    OutboundTls, PathMatch, RetryConfig, Rule, StackConfig, connect_tls,
};
use orchestra_mesh::{
    Affinity, EndpointIdentities, Protocol, ServiceAccountRef, ServiceEntry, ServiceKey,
    ServiceProxy, ServiceTable,
};
use tokio::net::{TcpListener, TcpStream};

fn id(sa: &str) -> SpiffeId {
    SpiffeId::new("cluster.local", "shop", sa).unwrap()
}

/// A sidecar's key, a certificate for it from `ca`, and its TLS settings trusting `roots`.
fn sidecar(ca: &MeshCa, identity: &SpiffeId, roots: &[&MeshCa]) -> MeshTls {
    let (key, request) = SidecarKey::generate(identity).unwrap();
    let issued = ca.issue(&request, identity, SystemTime::now()).unwrap();
    let bundle =
        TrustBundle::new("cluster.local", roots.iter().map(|ca| ca.root().clone())).unwrap();
    MeshTls::new(MeshCredentials::new(&key, issued).unwrap(), bundle)
}

fn rotate(ca: &MeshCa, tls: &MeshTls) {
    let identity = tls.credentials().issued().identity;
    let (key, request) = SidecarKey::generate(&identity).unwrap();
    let issued = ca.issue(&request, &identity, SystemTime::now()).unwrap();
    tls.credentials().rotate(&key, issued).unwrap();
}

fn echo_key() -> ServiceKey {
    ServiceKey::new("shop", "echo", "")
}

/// The server side: an inbound sidecar (identity shop/echo) in front of the echo backend;
/// only shop/web may call its port.
async fn server_side(ca: &MeshCa) -> (SocketAddr, Arc<InboundProxy>, MeshTls, Arc<AtomicU64>) {
    server_side_with(ca, |port| {
        vec![Rule {
            port: Some(port),
            from: vec![Caller::Identity(id("web"))],
            ..Rule::default()
        }]
    })
    .await
}

/// [`server_side`] with the rules `rules(backend port)` for namespace shop (default deny).
async fn server_side_with(
    ca: &MeshCa,
    rules: impl FnOnce(u16) -> Vec<Rule>,
) -> (SocketAddr, Arc<InboundProxy>, MeshTls, Arc<AtomicU64>) {
    server_side_as(ca, &id("echo"), rules).await
}

/// [`server_side_with`], the server sidecar holding a certificate for `identity`.
async fn server_side_as(
    ca: &MeshCa,
    identity: &SpiffeId,
    rules: impl FnOnce(u16) -> Vec<Rule>,
) -> (SocketAddr, Arc<InboundProxy>, MeshTls, Arc<AtomicU64>) {
    let (backend, served) = support::identity_echo().await;
    let tls = sidecar(ca, identity, &[ca]);
    let shop = NamespacePolicy {
        default: DefaultAction::Deny,
        rules: rules(backend.port()),
    };
    let policy = AuthorizationPolicy {
        default: DefaultAction::Deny,
        namespaces: HashMap::from([("shop".to_owned(), shop)]),
    };
    let inbound = InboundProxy::new(&tls, InboundConfig::new("shop", backend, policy));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(inbound.clone().serve(listener));
    (addr, inbound, tls, served)
}

/// The client side: an outbound sidecar whose `echo.shop` service is the server sidecar.
async fn client_side(tls: MeshTls, inbound: SocketAddr) -> SocketAddr {
    let directory = MeshDirectory::new(DirectoryConfig::default());
    let entry = ServiceEntry {
        cluster: "127.2.0.20:80".parse().unwrap(),
        node_port: None,
        protocol: Protocol::Tcp,
        affinity: Affinity::None,
        endpoints: vec![inbound],
    };
    let table: ServiceTable = [(echo_key(), entry)].into_iter().collect();
    directory.apply(&table).await.unwrap();
    let config = HttpProxyConfig {
        tls: Some(OutboundTls {
            tls,
            server_identities: HashMap::from([(echo_key(), id("echo"))]),
        }),
        ..HttpProxyConfig::default()
    };
    let proxy = HttpProxy::new(directory, config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(proxy.serve(listener));
    addr
}

/// The client application: plain HTTP to its own sidecar.
async fn get(
    client: &Client<HttpConnector, Empty<Bytes>>,
    proxy: SocketAddr,
) -> (StatusCode, String) {
    send(client, proxy, "GET", "/hello").await
}

/// `method path` to the echo service through the client's sidecar.
async fn send(
    client: &Client<HttpConnector, Empty<Bytes>>,
    proxy: SocketAddr,
    method: &str,
    path: &str,
) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(format!("http://{proxy}{path}"))
        .header("host", "echo.shop")
        .body(Empty::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .expect("no answer within 20 s")
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn app_client() -> Client<HttpConnector, Empty<Bytes>> {
    Client::builder(TokioExecutor::new()).build(HttpConnector::new())
}

/// Waits (up to 10 s) for `check` to hold: counters are updated by other tasks.
async fn eventually(check: impl Fn() -> bool) {
    for _ in 0..1000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not reached within 10 s");
}

fn ca() -> MeshCa {
    MeshCa::generate(CaConfig::default(), SystemTime::now()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_crosses_both_sidecars_over_mtls() {
    let ca = ca();
    let (inbound_addr, inbound, _, served) = server_side(&ca).await;
    let proxy = client_side(sidecar(&ca, &id("web"), &[&ca]), inbound_addr).await;
    let client = app_client();
    let (status, body) = get(&client, proxy).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The backend saw the verified identity of the calling sidecar.
    assert_eq!(body, "spiffe://cluster.local/ns/shop/sa/web");
    assert_eq!(served.load(Ordering::SeqCst), 1);
    assert_eq!(inbound.metrics().denied(), (0, 0));
    assert_eq!(inbound.metrics().tls_failures(), 0);

    // A plaintext client straight to the inbound port never reaches the backend.
    let mut raw = TcpStream::connect(inbound_addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut raw, &mut reply).await;
    assert!(
        !String::from_utf8_lossy(&reply).contains("200"),
        "{reply:?}"
    );
    eventually(|| inbound.metrics().tls_failures() == 1).await;
    assert_eq!(served.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_from_a_foreign_ca_is_refused() {
    let ca = ca();
    let foreign = ca_foreign();
    let (inbound_addr, inbound, _, served) = server_side(&ca).await;
    // The impostor trusts our root (so it would accept the server), but its own
    // certificate, with the same identity as the legitimate client, is from another CA.
    let proxy = client_side(
        sidecar(&foreign, &id("web"), &[&ca, &foreign]),
        inbound_addr,
    )
    .await;
    let (status, body) = get(&app_client(), proxy).await;
    // Its own sidecar sees the server's TLS alert, which is not worth a retry: 502.
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(served.load(Ordering::SeqCst), 0);
    eventually(|| inbound.metrics().tls_failures() >= 1).await;
}

fn ca_foreign() -> MeshCa {
    ca()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_the_policy_denies_gets_403() {
    let ca = ca();
    let (inbound_addr, inbound, _, served) = server_side(&ca).await;
    let proxy = client_side(sidecar(&ca, &id("intruder"), &[&ca]), inbound_addr).await;
    let (status, body) = get(&app_client(), proxy).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.contains("spiffe://cluster.local/ns/shop/sa/intruder"),
        "{body}"
    );
    assert_eq!(served.load(Ordering::SeqCst), 0);
    assert_eq!(inbound.metrics().denied(), (1, 0));
    assert!(
        inbound.metrics().render().contains(
            "orchestra_mesh_authz_denied_total{direction=\"inbound\",protocol=\"http\"} 1"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_rotation_under_traffic_loses_no_request() {
    let ca = ca();
    let (inbound_addr, _inbound, server_tls, served) = server_side(&ca).await;
    let client_tls = sidecar(&ca, &id("web"), &[&ca]);
    let proxy = client_side(client_tls.clone(), inbound_addr).await;

    const WORKERS: usize = 4;
    const REQUESTS: usize = 50;
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        workers.spawn(async move {
            // A fresh connection pool per request half of the time, so that new TLS
            // connections are made on both sides of the rotation.
            let shared = app_client();
            let mut statuses = Vec::new();
            for n in 0..REQUESTS {
                let client = if n % 2 == 0 {
                    app_client()
                } else {
                    shared.clone()
                };
                statuses.push(get(&client, proxy).await);
            }
            statuses
        });
    }
    // Rotate both sidecars' certificates while requests are flowing.
    eventually(|| served.load(Ordering::SeqCst) >= 20).await;
    let old_server_cert = server_tls.credentials().issued().chain[0].clone();
    rotate(&ca, &server_tls);
    rotate(&ca, &client_tls);
    let new_server_cert = server_tls.credentials().issued().chain[0].clone();
    assert_ne!(old_server_cert, new_server_cert);

    let mut total = 0;
    while let Some(statuses) = workers.join_next().await {
        for (status, body) in statuses.unwrap() {
            assert_eq!(status, StatusCode::OK, "{body}");
            total += 1;
        }
    }
    assert_eq!(total, WORKERS * REQUESTS);
    assert_eq!(served.load(Ordering::SeqCst), (WORKERS * REQUESTS) as u64);

    // A handshake made after the rotation gets the new server certificate.
    let tcp = TcpStream::connect(inbound_addr).await.unwrap();
    let tls = connect_tls(
        inbound_addr,
        tcp,
        client_tls.client_config(Some(id("echo"))),
    )
    .await
    .unwrap();
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(presented, new_server_cert);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_tcp_connection_is_closed_and_a_wrong_server_identity_refused() {
    let ca = ca();
    let (inbound_addr, inbound, _, served) = server_side(&ca).await;
    let intruder = sidecar(&ca, &id("intruder"), &[&ca]);

    // Opaque bytes (no HTTP) from a denied identity: the connection is closed at once.
    let tcp = TcpStream::connect(inbound_addr).await.unwrap();
    let mut tls = connect_tls(inbound_addr, tcp, intruder.client_config(Some(id("echo"))))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tls, b"SSH-2.0-client\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut reply),
    )
    .await
    .expect("the denied connection was not closed");
    assert!(reply.is_empty(), "{read:?} {reply:?}");
    eventually(|| inbound.metrics().denied() == (0, 1)).await;
    assert_eq!(served.load(Ordering::SeqCst), 0);

    // A client expecting another identity refuses the server's certificate.
    let tcp = TcpStream::connect(inbound_addr).await.unwrap();
    let web = sidecar(&ca, &id("web"), &[&ca]);
    let error = connect_tls(inbound_addr, tcp, web.client_config(Some(id("payments"))))
        .await
        .unwrap_err();
    // rustls prints the verifier's error with Debug: the expected account is in it.
    let text = error.to_string();
    assert!(
        text.contains("WrongServer") && text.contains("payments"),
        "{text}"
    );
}

/// HTTP routes in the policy: web may GET the catalogue, cart may POST orders, anyone in the
/// mesh may probe /healthz; everything else, and opaque connections, are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_routes_allow_by_identity_path_and_method_through_the_inbound_proxy() {
    use http::Method;
    let ca = ca();
    let (inbound_addr, inbound, _, served) = server_side_with(&ca, |port| {
        let rule = |who: Caller, path: PathMatch, methods: Vec<Method>| Rule {
            port: Some(port),
            from: vec![who],
            http: vec![HttpRoute {
                path: Some(path),
                methods,
            }],
        };
        vec![
            rule(
                Caller::Identity(id("web")),
                PathMatch::Prefix("/api/items".into()),
                vec![Method::GET, Method::HEAD],
            ),
            rule(
                Caller::Identity(id("cart")),
                PathMatch::Exact("/api/orders".into()),
                vec![Method::POST],
            ),
            rule(
                Caller::AnyAuthenticated,
                PathMatch::Exact("/healthz".into()),
                vec![],
            ),
        ]
    })
    .await;
    let web = client_side(sidecar(&ca, &id("web"), &[&ca]), inbound_addr).await;
    let cart = client_side(sidecar(&ca, &id("cart"), &[&ca]), inbound_addr).await;
    let client = app_client();

    for (proxy, method, path) in [
        (web, "GET", "/api/items/42"),
        (web, "GET", "/api/items?page=2"),
        (cart, "POST", "/api/orders"),
        (cart, "GET", "/healthz"),
    ] {
        let (status, body) = send(&client, proxy, method, path).await;
        assert_eq!(status, StatusCode::OK, "{method} {path}: {body}");
    }
    let allowed = served.load(Ordering::SeqCst);
    assert_eq!(allowed, 4);

    let denied = [
        (web, "POST", "/api/items/42", "POST /api/items/42"),
        (web, "GET", "/admin", "GET /admin"),
        (web, "GET", "/api/itemsx", "GET /api/itemsx"),
        (
            web,
            "GET",
            "/api/items/../../admin",
            "GET /api/items/../../admin",
        ),
        (
            web,
            "POST",
            "/api/orders",
            "sa/web is not allowed to POST /api/orders",
        ),
        (
            cart,
            "GET",
            "/api/orders",
            "sa/cart is not allowed to GET /api/orders",
        ),
    ];
    for (proxy, method, path, reason) in denied {
        let (status, body) = send(&client, proxy, method, path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        assert!(body.contains(reason), "{method} {path}: {body}");
    }
    // Nothing denied reached the application; each denial was counted.
    assert_eq!(served.load(Ordering::SeqCst), allowed);
    assert_eq!(inbound.metrics().denied(), (denied.len() as u64, 0));

    // web's rule is for HTTP routes only: an opaque connection of web's is closed.
    let web_tls = sidecar(&ca, &id("web"), &[&ca]);
    let tcp = TcpStream::connect(inbound_addr).await.unwrap();
    let mut tls = connect_tls(inbound_addr, tcp, web_tls.client_config(Some(id("echo"))))
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tls, b"SSH-2.0-client\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut reply),
    )
    .await
    .expect("the opaque connection was not closed");
    assert!(reply.is_empty(), "{reply:?}");
    eventually(|| inbound.metrics().denied() == (denied.len() as u64, 1)).await;
}

/// `echo.shop`'s table as discovery gives it: its endpoints, each with the ServiceAccount of
/// its pod in namespace shop when known.
fn discovered(endpoints: &[(SocketAddr, Option<&str>)]) -> ServiceTable {
    let entry = ServiceEntry {
        cluster: "127.2.0.21:80".parse().unwrap(),
        node_port: None,
        protocol: Protocol::Tcp,
        affinity: Affinity::None,
        endpoints: endpoints.iter().map(|(addr, _)| *addr).collect(),
    };
    let identities: EndpointIdentities = endpoints
        .iter()
        .filter_map(|(addr, account)| Some((*addr, ServiceAccountRef::new("shop", (*account)?))))
        .collect();
    let mut table = ServiceTable::new();
    table.insert_with_identities(echo_key(), entry, identities);
    table
}

/// A client sidecar (identity shop/web) whose `echo.shop` is `table`, with no identity
/// pinned: each endpoint must prove what discovery says. No retries, so that every request
/// is one connection attempt; the circuit breaker ejects after 3 consecutive failures.
async fn discovering_client_side(
    tls: MeshTls,
    table: &ServiceTable,
) -> (SocketAddr, Arc<HttpProxy>, MeshDirectory) {
    let directory = MeshDirectory::new(DirectoryConfig::default());
    directory.apply(table).await.unwrap();
    let config = HttpProxyConfig {
        tls: Some(OutboundTls {
            tls,
            server_identities: HashMap::new(),
        }),
        stack: StackConfig {
            retry: RetryConfig {
                ratio: 0.0,
                min_per_sec: 0,
                ..RetryConfig::default()
            },
            breaker: BreakerConfig {
                failures: 3,
                ..BreakerConfig::default()
            },
            ..StackConfig::default()
        },
        ..HttpProxyConfig::default()
    };
    let proxy = HttpProxy::new(directory.clone(), config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(proxy.clone().serve(listener));
    (addr, proxy, directory)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbound_sidecar_requires_each_endpoints_own_identity() {
    let ca = ca();
    // The real echo server, and an impostor pod (ServiceAccount shop/intruder) whose
    // inbound sidecar would let web in.
    let (echo_addr, _, _, served) = server_side(&ca).await;
    let (impostor_addr, _, _, impostor_served) = server_side_as(&ca, &id("intruder"), |port| {
        vec![Rule {
            port: Some(port),
            from: vec![Caller::Identity(id("web"))],
            ..Rule::default()
        }]
    })
    .await;
    let (proxy_addr, proxy, directory) = discovering_client_side(
        sidecar(&ca, &id("web"), &[&ca]),
        &discovered(&[(echo_addr, Some("echo"))]),
    )
    .await;
    let client = app_client();
    let mismatches_line = |n: u64| {
        format!("orchestra_mesh_identity_mismatches_total{{direction=\"outbound\"}} {n}\n")
    };

    // The endpoint proves the identity its pod's account gives: served.
    let (status, body) = get(&client, proxy_addr).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, "spiffe://cluster.local/ns/shop/sa/web");
    assert_eq!(served.load(Ordering::SeqCst), 1);
    assert_eq!(proxy.metrics().identity_mismatches(), 0);
    assert!(proxy.metrics().render().contains(&mismatches_line(0)));

    // Discovery now says the same endpoint is a pod of shop/payments (it changed hands);
    // the server still presents shop/echo's certificate. The connection pooled for echo is
    // not reused: the request fails as a connect failure (503), counted, and the backend
    // sees nothing. Three such failures eject the endpoint, as any connect error would.
    directory
        .apply(&discovered(&[(echo_addr, Some("payments"))]))
        .await
        .unwrap();
    for n in 1..=3 {
        let (status, body) = get(&client, proxy_addr).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(body.contains("cannot connect to endpoint"), "{body}");
        assert_eq!(proxy.metrics().identity_mismatches(), n);
    }
    assert_eq!(served.load(Ordering::SeqCst), 1);
    assert_eq!(proxy.metrics().ejections(), 1);
    assert_eq!(proxy.metrics().requests("echo.shop", 503), 3);
    assert!(proxy.metrics().render().contains(&mismatches_line(3)));

    // A pod impersonating echo: listed as a pod of shop/echo, it presents shop/intruder.
    directory
        .apply(&discovered(&[(impostor_addr, Some("echo"))]))
        .await
        .unwrap();
    let (status, body) = get(&client, proxy_addr).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(proxy.metrics().identity_mismatches(), 4);
    assert_eq!(impostor_served.load(Ordering::SeqCst), 0);

    // Back to the truth: the endpoint is a new one to the balancer (a fresh breaker).
    directory
        .apply(&discovered(&[(echo_addr, Some("echo"))]))
        .await
        .unwrap();
    let (status, body) = get(&client, proxy_addr).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(served.load(Ordering::SeqCst), 2);

    // An endpoint whose pod is not known keeps the chain check alone: the impostor, a
    // valid mesh workload, is reached (what the sidecar did before it followed identities).
    directory
        .apply(&discovered(&[(impostor_addr, None)]))
        .await
        .unwrap();
    let (status, body) = get(&client, proxy_addr).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(impostor_served.load(Ordering::SeqCst), 1);
    assert_eq!(proxy.metrics().identity_mismatches(), 4);
}
