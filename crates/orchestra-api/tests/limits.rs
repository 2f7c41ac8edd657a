//! The API server's limits against abuse, end to end over TLS with bearer tokens: a user over
//! the request rate gets 429 with `Retry-After` (gRPC `RESOURCE_EXHAUSTED`) while another
//! user's requests still succeed, watches are capped per user, list pages are capped, and a
//! connection that sends nothing, or never finishes its headers, is closed.
//!
//! The rates are tiny (one token per thousand seconds) so that what is allowed is exactly the
//! burst, whatever the machine's speed: the tests assert outcomes, never timings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use http::{HeaderMap, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use orchestra_api::registry::{ApiError, DynRegistry, ListOptions, WatchOptions};
use orchestra_api::remote::RetryPolicy;
use orchestra_api::resources::Pod;
use orchestra_api::server::{
    ApiServer, Authentication, Limits, Metrics, RunningServer, ServerOptions, TokenFile,
};
use orchestra_api::tls::{ClusterPki, Credentials};
use orchestra_api::{Client, Registry, RemoteClient};
use orchestra_store::MemStore;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const FLOODER: &str = "flooder-token-01";
const BOB: &str = "bobs-token-00001";
const ADMIN: &str = "admins-token-001";

struct Server {
    _dir: tempfile::TempDir,
    pki: Arc<ClusterPki>,
    running: RunningServer,
    metrics: Arc<Metrics>,
}

async fn start(limits: Limits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(ClusterPki::load_or_create(dir.path(), &[]).unwrap());
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        format!("{FLOODER},flooder,1\n{BOB},bob,2\n{ADMIN},root,3,\"system:masters\"\n"),
    )
    .unwrap();
    let options = ServerOptions {
        tls: Some(
            orchestra_api::tls::server_config(
                &pki.server().cert_pem,
                &pki.server().key_pem,
                Some(pki.ca_pem()),
            )
            .unwrap(),
        ),
        authentication: Some(Authentication {
            tokens: Some(Arc::new(TokenFile::load(&tokens).unwrap())),
            ..Authentication::default()
        }),
        limits,
        ..ServerOptions::default()
    };
    let server = ApiServer::with_options(DynRegistry::new(Registry::new(MemStore::new())), options);
    let metrics = server.metrics();
    let running = server.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    Server {
        _dir: dir,
        pki,
        running,
        metrics,
    }
}

impl Server {
    fn credentials(&self, token: &str) -> Credentials {
        Credentials {
            server: self.running.url(),
            certificate_authority: self.pki.ca_pem().to_owned(),
            client_certificate: None,
            client_key: None,
            token: Some(token.into()),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.running.local_addr()
    }

    /// A TLS connection to the server, as an HTTP/1.1 request sender.
    async fn connect(&self) -> hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>> {
        let config = orchestra_api::tls::client_config(self.pki.ca_pem(), None).unwrap();
        let tcp = tokio::net::TcpStream::connect(self.addr()).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect("127.0.0.1".try_into().unwrap(), tcp)
            .await
            .unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(connection);
        sender
    }

    /// One GET with `token`: the code, the headers and the body (a streaming body is not
    /// read: the response is returned as soon as its head arrives, with the connection).
    async fn get(&self, token: &str, path: &str) -> (u16, HeaderMap, Value) {
        let (code, headers, body, _sender) = self.open(token, path).await;
        let body = match body {
            Some(body) => body.collect().await.unwrap().to_bytes(),
            None => bytes::Bytes::new(),
        };
        let value = serde_json::from_slice(&body)
            .unwrap_or(Value::String(String::from_utf8_lossy(&body).into_owned()));
        (code, headers, value)
    }

    /// Sends a GET and returns the response head; the body (unread) and the sender keep the
    /// request, a watch for example, open until dropped.
    async fn open(
        &self,
        token: &str,
        path: &str,
    ) -> (
        u16,
        HeaderMap,
        Option<hyper::body::Incoming>,
        hyper::client::conn::http1::SendRequest<Full<bytes::Bytes>>,
    ) {
        let mut sender = self.connect().await;
        let request = Request::builder()
            .method(Method::GET)
            .uri(path)
            .header("host", self.addr().to_string())
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(bytes::Bytes::new()))
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        let code = response.status().as_u16();
        let headers = response.headers().clone();
        (code, headers, Some(response.into_body()), sender)
    }
}

fn limits(rate: f64, burst: u32) -> Limits {
    Limits {
        requests_per_second: Some(rate),
        burst,
        ..Limits::default()
    }
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap()
}

const PODS: &str = "/api/v1/namespaces/default/pods";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_user_gets_429s_while_another_user_is_served() {
    // One token per thousand seconds: each user may send exactly its burst of 5.
    let server = start(limits(0.001, 5)).await;
    let flood = futures::future::join_all((0..40).map(|_| server.get(FLOODER, PODS)));
    let bob = futures::future::join_all((0..5).map(|_| server.get(BOB, PODS)));
    let (flood, bob) = tokio::join!(flood, bob);

    let ok = flood.iter().filter(|(code, _, _)| *code == 200).count();
    let throttled: Vec<_> = flood.iter().filter(|(code, _, _)| *code == 429).collect();
    assert_eq!(
        (ok, throttled.len()),
        (5, 35),
        "the flooder gets its burst, no more"
    );
    for (_, headers, body) in &throttled {
        let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry >= 1, "Retry-After {retry}");
        assert_eq!(body["reason"], "TooManyRequests", "{body}");
        assert_eq!(body["details"]["retryAfterSeconds"], retry, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("user \"flooder\""), "{message}");
    }
    for (code, _, body) in &bob {
        assert_eq!(*code, 200, "bob is not starved by the flooder: {body}");
    }
    // Administrators are exempt.
    for _ in 0..10 {
        assert_eq!(server.get(ADMIN, PODS).await.0, 200);
    }
    assert_eq!(server.metrics.throttled_count("rate"), 35);
    let (_, _, metrics) = server.get(ADMIN, "/metrics").await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains(
            "orchestra_apiserver_throttled_requests_total{protocol=\"http\",limit=\"rate\"} 35"
        ),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_grpc_the_flooder_gets_resource_exhausted_and_bob_is_served() {
    let server = start(limits(0.001, 3)).await;
    let flooder = RemoteClient::connect_with(&server.credentials(FLOODER))
        .await
        .unwrap();
    let bob = RemoteClient::connect_with(&server.credentials(BOB))
        .await
        .unwrap();
    let options = ListOptions::default();
    let flood =
        futures::future::join_all((0..20).map(|_| flooder.list::<Pod>(Some("default"), &options)));
    let bobs =
        futures::future::join_all((0..3).map(|_| bob.list::<Pod>(Some("default"), &options)));
    let (flood, bobs) = tokio::join!(flood, bobs);
    assert_eq!(flood.iter().filter(|r| r.is_ok()).count(), 3);
    for result in flood.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(
                result,
                Err(ApiError::TooManyRequests {
                    retry_after_seconds: 1..,
                    ..
                })
            ),
            "{result:?}"
        );
    }
    assert!(bobs.iter().all(Result::is_ok), "{bobs:?}");
    assert_eq!(server.metrics.throttled_count("rate"), 17);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_are_capped_per_user_over_rest_and_grpc() {
    let server = start(Limits {
        max_watches_per_user: Some(2),
        ..Limits::default()
    })
    .await;
    let watch = format!("{PODS}?watch=true");
    let first = server.open(BOB, &watch).await;
    let second = server.open(BOB, &watch).await;
    assert_eq!((first.0, second.0), (200, 200));
    let (code, headers, body) = server.get(BOB, &watch).await;
    assert_eq!(code, 429, "{body}");
    assert!(headers.contains_key("retry-after"));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("user \"bob\" has 2 watches open"),
        "{body}"
    );
    // Over gRPC the same count applies (the client's retries off: this is about the refusal).
    let bob = RemoteClient::connect_with(&server.credentials(BOB))
        .await
        .unwrap()
        .with_retry(RetryPolicy::never());
    let refused = bob
        .watch::<Pod>(Some("default"), &WatchOptions::default())
        .await;
    assert!(
        matches!(refused, Err(ApiError::TooManyRequests { .. })),
        "{:?}",
        refused.map(|_| ())
    );
    // Another user is not affected.
    let flooder = RemoteClient::connect_with(&server.credentials(FLOODER))
        .await
        .unwrap();
    let mut other = flooder
        .watch::<Pod>(Some("default"), &WatchOptions::default())
        .await
        .unwrap();
    // Closing a watch frees its place: wait (observably) until bob may open one again. Each
    // try creates a pod, so that the server writes to the closed watch and notices.
    drop(first);
    let admin = RemoteClient::connect_with(&server.credentials(ADMIN))
        .await
        .unwrap();
    let reopened = tokio::time::timeout(Duration::from_secs(30), async {
        for attempt in 0.. {
            admin
                .create(&pod(&format!("poke-{attempt}")))
                .await
                .unwrap();
            let opened = server.open(BOB, &watch).await;
            if opened.0 == 200 {
                return opened;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        unreachable!()
    })
    .await
    .expect("a closed watch frees its place");
    assert!(server.metrics.throttled_count("watches") >= 2);
    drop((second, reopened));
    // The other user's watch was never refused: the pods created arrive on it.
    let event = tokio::time::timeout(Duration::from_secs(30), other.next())
        .await
        .expect("an event")
        .expect("the stream is open");
    assert!(event.is_ok(), "{event:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_asking_for_a_larger_page_gets_the_largest_page_and_a_continue_token() {
    let server = start(Limits {
        max_list_page: 2,
        ..Limits::default()
    })
    .await;
    let admin = RemoteClient::connect_with(&server.credentials(ADMIN))
        .await
        .unwrap();
    for name in ["a", "b", "c"] {
        admin.create(&pod(name)).await.unwrap();
    }
    let (code, _, body) = server.get(BOB, &format!("{PODS}?limit=500")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["items"].as_array().unwrap().len(), 2, "{body}");
    assert!(body["metadata"]["continue"].is_string(), "{body}");
    let page = admin
        .list::<Pod>(
            Some("default"),
            &ListOptions {
                limit: 500,
                ..ListOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 2);
    assert!(page.continue_token.is_some());
    // An unpaged list is served whole.
    let (_, _, body) = server.get(BOB, PODS).await;
    assert_eq!(body["items"].as_array().unwrap().len(), 3, "{body}");
}

/// Reads until the server closes the connection (a TLS close or a reset both end it).
async fn closed_by_server(mut stream: tokio::net::TcpStream) {
    let mut buffer = [0u8; 1024];
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .expect("the server closes the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_header_connections_are_closed() {
    let server = start(Limits {
        header_read_timeout: Duration::from_millis(200),
        ..Limits::default()
    })
    .await;
    // Connected, never a byte: the TLS handshake deadline or the first-bytes deadline ends it.
    let silent = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    closed_by_server(silent).await;
    // A TLS connection that never sends a request.
    let config = orchestra_api::tls::client_config(server.pki.ca_pem(), None).unwrap();
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config.clone())
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(30), tls.read(&mut buffer))
        .await
        .expect("the server closes an idle TLS connection");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // Half a request, the rest of the headers never sent.
    let tcp = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /api/v1/pods HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        let mut all = Vec::new();
        let _ = tls.read_to_end(&mut all).await;
        all
    })
    .await
    .expect("the server closes a connection whose headers never end");
    // Whatever hyper says before closing, it never served the request.
    assert!(!String::from_utf8_lossy(&ended).contains("200 OK"));
    // A client that does send its request is served as usual.
    assert_eq!(server.get(BOB, PODS).await.0, 200);
}

#[tokio::test]
async fn invalid_limits_stop_the_server_from_starting() {
    let options = ServerOptions {
        limits: limits(-1.0, 5),
        ..ServerOptions::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = ApiServer::with_options(DynRegistry::new(Registry::new(MemStore::new())), options)
        .serve(listener, std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("positive number"), "{err}");
}
