//! The L7 proxy end to end on loopback: in-process HTTP backends behind an [`HttpProxy`],
//! through endpoint churn (a backend failing, one removed, one killed without notice), over
//! HTTP/1.1 and HTTP/2, with opaque TCP passthrough and the admin metrics.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use orchestra_mesh::l7::{DirectoryConfig, HttpProxy, HttpProxyConfig, MeshDirectory};
use orchestra_mesh::{Affinity, Protocol, ServiceEntry, ServiceKey, ServiceProxy, ServiceTable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// An in-process HTTP backend: answers `NAME METHOD PATH` and echoes `traceparent`; 503 while
/// `failing`; [`Backend::kill`] makes it dead.
struct Backend {
    addr: SocketAddr,
    served: Arc<AtomicU64>,
    rejected: Arc<AtomicU64>,
    failing: Arc<AtomicBool>,
    /// Set by [`Backend::kill`]: every connection is reset as soon as it is accepted.
    dead: Arc<AtomicBool>,
    /// The tasks serving the accepted connections (their lock also orders accepting against
    /// `dead`).
    connections: Arc<Mutex<JoinSet<()>>>,
    /// The accept loop, which holds the listener (and so the port) as long as the backend
    /// exists, dead or alive.
    _accept: JoinSet<()>,
}

impl Backend {
    async fn start(name: &'static str) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = Arc::new(AtomicU64::new(0));
        let rejected = Arc::new(AtomicU64::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let dead = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Mutex::new(JoinSet::new()));
        let mut accept = JoinSet::new();
        let (s, f, rj) = (served.clone(), failing.clone(), rejected.clone());
        let (d, cs) = (dead.clone(), connections.clone());
        accept.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let mut connections = cs.lock().unwrap();
                if d.load(Ordering::SeqCst) {
                    // A dead pod's port: the connection fails at once (RST), it never hangs.
                    let _ = stream.set_zero_linger();
                    drop(stream);
                    continue;
                }
                let (served, failing, rejected) = (s.clone(), f.clone(), rj.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let (served, failing, rejected) =
                        (served.clone(), failing.clone(), rejected.clone());
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await?.to_bytes();
                        let mut response = if failing.load(Ordering::SeqCst) {
                            rejected.fetch_add(1, Ordering::SeqCst);
                            let mut r = Response::new(Full::new(Bytes::from_static(b"failing")));
                            *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                            r
                        } else {
                            served.fetch_add(1, Ordering::SeqCst);
                            let text = format!(
                                "{name} {} {} {}",
                                parts.method,
                                parts.uri.path(),
                                body.len()
                            );
                            Response::new(Full::new(Bytes::from(text)))
                        };
                        if let Some(trace) = parts.headers.get("traceparent") {
                            response.headers_mut().insert("traceparent", trace.clone());
                        }
                        Ok::<_, hyper::Error>(response)
                    }
                });
                connections.spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Backend {
            addr,
            served,
            rejected,
            failing,
            dead,
            connections,
            _accept: accept,
        }
    }

    /// Kills the backend without notice: its open connections break (their tasks are
    /// aborted, which closes them), and every new one is reset once accepted. The listener
    /// stays, so that its port is not free for another listener (of another test or
    /// process) that would accept the proxy's connections and never answer, holding the
    /// requests until their timeout.
    async fn kill(&self) {
        let mut connections = {
            let mut connections = self.connections.lock().unwrap();
            self.dead.store(true, Ordering::SeqCst);
            std::mem::take(&mut *connections)
        };
        connections.shutdown().await;
    }

    fn served(&self) -> u64 {
        self.served.load(Ordering::SeqCst)
    }
}

fn key() -> ServiceKey {
    ServiceKey::new("shop", "web", "")
}

fn table(endpoints: &[SocketAddr], echo: Option<SocketAddr>) -> ServiceTable {
    let entry = |cluster: &str, endpoints: Vec<SocketAddr>| ServiceEntry {
        cluster: cluster.parse().unwrap(),
        node_port: None,
        protocol: Protocol::Tcp,
        affinity: Affinity::None,
        endpoints,
    };
    let mut table: ServiceTable = [(key(), entry("127.2.0.10:80", endpoints.to_vec()))]
        .into_iter()
        .collect();
    if let Some(echo) = echo {
        table.insert(
            ServiceKey::new("shop", "echo", ""),
            entry("127.2.0.11:7", vec![echo]),
        );
    }
    table
}

type TestClient = Client<HttpConnector, Full<Bytes>>;

/// Sends `n` GETs for `web.shop` through the proxy, 10 at a time, returning the bodies; every
/// one must be 200.
async fn get_all(client: &TestClient, proxy: SocketAddr, n: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    for batch in (0..n).collect::<Vec<_>>().chunks(10) {
        let gets = batch.iter().map(|&i| get(client, proxy, i));
        bodies.extend(futures::future::join_all(gets).await);
    }
    bodies
}

async fn get(client: &TestClient, proxy: SocketAddr, i: usize) -> String {
    {
        let request = Request::get(format!("http://{proxy}/item/{i}"))
            .header("host", "web.shop")
            .body(Full::default())
            .unwrap();
        let response = client.request(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, StatusCode::OK, "request {i} lost: {body}");
        body
    }
}

async fn start_proxy(
    directory: MeshDirectory,
    config: HttpProxyConfig,
) -> (Arc<HttpProxy>, SocketAddr) {
    let proxy = HttpProxy::new(directory, config);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(proxy.clone().serve(listener));
    (proxy, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_retryable_request_is_lost_through_endpoint_churn() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let directory = MeshDirectory::new(DirectoryConfig::default());
    directory
        .apply(&table(&[a.addr, b.addr], None))
        .await
        .unwrap();
    let (proxy, proxy_addr) = start_proxy(directory.clone(), HttpProxyConfig::default()).await;
    let client: TestClient = Client::builder(TokioExecutor::new()).build_http();

    // Both backends serve.
    let bodies = get_all(&client, proxy_addr, 60).await;
    assert!(
        bodies.iter().any(|b| b.starts_with("a GET /item/")),
        "{bodies:?}"
    );
    assert!(
        bodies.iter().any(|b| b.starts_with("b GET /item/")),
        "{bodies:?}"
    );

    // b fails with 503: its requests are retried on a, and b is ejected.
    b.failing.store(true, Ordering::SeqCst);
    // (Which endpoint p2c picks is random: count what b refused rather than assume.)
    get_all(&client, proxy_addr, 60).await;
    assert_eq!(
        proxy.metrics().retries(),
        b.rejected.load(Ordering::SeqCst),
        "every 503 retried once"
    );
    if b.rejected.load(Ordering::SeqCst) >= 7 {
        assert!(proxy.metrics().ejections() >= 1);
    }

    // b is removed (then killed) and c added: no request reaches b after the removal.
    let c = Backend::start("c").await;
    directory
        .apply(&table(&[a.addr, c.addr], None))
        .await
        .unwrap();
    b.failing.store(false, Ordering::SeqCst);
    let b_before = b.served();
    // (Sequential requests all go to a: peak-EWMA has measured it fast, and c starts at the
    // default 30 ms estimate; c takes over below when a dies.)
    let bodies = get_all(&client, proxy_addr, 60).await;
    assert_eq!(b.served(), b_before, "a removed endpoint got requests");
    assert!(bodies.iter().all(|b| !b.starts_with("b ")));
    b.kill().await;

    // a dies without notice (its pooled connections break, new ones are reset at once):
    // every GET is retried on c.
    a.kill().await;
    let bodies = get_all(&client, proxy_addr, 60).await;
    assert!(bodies.iter().all(|b| b.starts_with("c ")), "{bodies:?}");
    assert_eq!(proxy.metrics().requests("web.shop", 200), 240);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_bodies_traceparent_errors_and_metrics() {
    let a = Backend::start("a").await;
    let directory = MeshDirectory::new(DirectoryConfig::default());
    directory.apply(&table(&[a.addr], None)).await.unwrap();
    let (proxy, proxy_addr) = start_proxy(directory.clone(), HttpProxyConfig::default()).await;

    // HTTP/2 with prior knowledge, a body, and a traceparent that comes back unchanged.
    let stream = TcpStream::connect(proxy_addr).await.unwrap();
    let (mut h2, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let request = Request::post("http://web.shop.svc.cluster.local/upload")
        .header("traceparent", trace)
        .body(Full::new(Bytes::from_static(b"hello")))
        .unwrap();
    let response = h2.send_request(request).await.unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["traceparent"], trace);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "a POST /upload 5");

    // Unknown services are 404, services without endpoints 503 at once.
    let h1: TestClient = Client::builder(TokioExecutor::new()).build_http();
    let status = |host: &'static str| {
        let h1 = h1.clone();
        async move {
            let request = Request::get(format!("http://{proxy_addr}/"))
                .header("host", host)
                .body(Full::default())
                .unwrap();
            h1.request(request).await.unwrap().status()
        }
    };
    assert_eq!(status("nothing.here").await, StatusCode::NOT_FOUND);
    directory.apply(&table(&[], None)).await.unwrap();
    assert_eq!(status("web.shop").await, StatusCode::SERVICE_UNAVAILABLE);

    // The admin endpoint renders the counts.
    let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_addr = admin.local_addr().unwrap();
    tokio::spawn(proxy.clone().serve_admin(admin));
    let response = h1
        .get(format!("http://{admin_addr}/metrics").parse().unwrap())
        .await
        .unwrap();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("authority=\"web.shop.svc.cluster.local\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("authority=\"web.shop\",status=\"503\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("orchestra_mesh_response_latency_seconds_count{direction=\"outbound\"} 3"),
        "{text}"
    );
}

/// A TCP echo server.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_http_bytes_pass_through_opaquely() {
    let echo = echo_server().await;
    let directory = MeshDirectory::new(DirectoryConfig::default());
    directory.apply(&table(&[], Some(echo))).await.unwrap();
    let config = HttpProxyConfig {
        opaque_service: Some(ServiceKey::new("shop", "echo", "")),
        ..HttpProxyConfig::default()
    };
    let (proxy, proxy_addr) = start_proxy(directory.clone(), config.clone()).await;
    let mut stream = TcpStream::connect(proxy_addr).await.unwrap();
    stream.write_all(b"SSH-2.0-test\r\n").await.unwrap();
    let mut reply = [0u8; 14];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(&reply, b"SSH-2.0-test\r\n");
    drop(stream);

    // An opaque listener forwards a server-speaks-first exchange without waiting for the
    // client: here the "server" (echo) answers what the client sends at once.
    let (opaque, opaque_addr) = start_proxy(
        directory,
        HttpProxyConfig {
            opaque: true,
            ..config
        },
    )
    .await;
    let mut stream = TcpStream::connect(opaque_addr).await.unwrap();
    stream.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut reply = [0u8; 18];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(
        &reply, b"GET / HTTP/1.1\r\n\r\n",
        "HTTP bytes on an opaque port are not parsed"
    );
    drop(stream);
    let _ = (proxy, opaque);
}

/// A canary: `web.shop` split 90/10 between `web-v1` and `web-v2`; the counts are exact (a
/// smooth weighted round-robin), a backend that loses its endpoints takes nothing, and
/// without the split the apex's own endpoints answer again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traffic_split_sends_each_backend_its_weight() {
    use orchestra_mesh::l7::{TrafficSplit, WeightedBackend};
    let apex = Backend::start("apex").await;
    let v1 = Backend::start("v1").await;
    let v2 = Backend::start("v2").await;
    let entry = |cluster: &str, endpoints: Vec<SocketAddr>| ServiceEntry {
        cluster: cluster.parse().unwrap(),
        node_port: None,
        protocol: Protocol::Tcp,
        affinity: Affinity::None,
        endpoints,
    };
    let v1_key = ServiceKey::new("shop", "web-v1", "");
    let v2_key = ServiceKey::new("shop", "web-v2", "");
    let tables = |v2_endpoints: Vec<SocketAddr>| -> ServiceTable {
        [
            (key(), entry("127.2.0.10:80", vec![apex.addr])),
            (v1_key.clone(), entry("127.2.0.12:80", vec![v1.addr])),
            (v2_key.clone(), entry("127.2.0.13:80", v2_endpoints)),
        ]
        .into_iter()
        .collect()
    };
    let directory = MeshDirectory::new(DirectoryConfig::default());
    directory.apply(&tables(vec![v2.addr])).await.unwrap();
    let (proxy, addr) = start_proxy(directory.clone(), HttpProxyConfig::default()).await;
    let split = |weights: [u32; 2]| TrafficSplit {
        backends: vec![
            WeightedBackend {
                service: v1_key.clone(),
                weight: weights[0],
            },
            WeightedBackend {
                service: v2_key.clone(),
                weight: weights[1],
            },
        ],
    };
    proxy.set_traffic_split(key(), split([90, 10])).unwrap();
    let client: TestClient = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let count = |bodies: &[String], name: &str| {
        bodies
            .iter()
            .filter(|b| b.starts_with(&format!("{name} ")))
            .count()
    };
    let bodies = get_all(&client, addr, 200).await;
    assert_eq!(
        (
            count(&bodies, "v1"),
            count(&bodies, "v2"),
            count(&bodies, "apex")
        ),
        (180, 20, 0)
    );

    // The canary loses its pods: everything goes to v1.
    directory.apply(&tables(vec![])).await.unwrap();
    let bodies = get_all(&client, addr, 30).await;
    assert_eq!(count(&bodies, "v1"), 30);

    // The split removed: the apex's own endpoints.
    proxy.remove_traffic_split(&key());
    let bodies = get_all(&client, addr, 10).await;
    assert_eq!(count(&bodies, "apex"), 10);

    // A split whose only weighted backend has no endpoint: 503 at once, saying why.
    proxy.set_traffic_split(key(), split([0, 100])).unwrap();
    let request = Request::get(format!("http://{addr}/"))
        .header("host", "web.shop")
        .body(Full::default())
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("no backend of the traffic split of shop/web"),
        "{body:?}"
    );
    // A split without weight is refused.
    assert!(proxy.set_traffic_split(key(), split([0, 0])).is_err());
    assert_eq!(v1.served() + v2.served() + apex.served(), 240);
}
