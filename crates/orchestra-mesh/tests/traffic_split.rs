//! TrafficSplit objects through the API drive the mesh: a canary `web` split 90/10 between
//! `web-v1` and `web-v2`, then 0/100, then deleted, with Services, Endpoints and the split
//! written through a `LocalClient`, followed by a `ProxyFollower` and a `SplitFollower` into
//! the directory of an `HttpProxy`, and in-process HTTP backends that answer with their name.
//! Counts are exact (the split is a smooth weighted round-robin); waits are on observable
//! state (what the followers applied, what the proxy answers) with generous timeouts.

mod dns_objects;
mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{TrafficSplit, TrafficSplitBackend, TrafficSplitSpec};
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_mesh::l7::{
    DirectoryConfig, HttpProxy, HttpProxyConfig, MeshDirectory, ServiceName, SplitFollower,
    TrafficSplit as MeshSplit,
};
use orchestra_mesh::{FollowerConfig, ProxyFollower};
use orchestra_store::MemStore;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Generous: the wait is for a debounced apply on a busy machine, not a measurement.
const WAIT: Duration = Duration::from_secs(30);

/// An in-process HTTP backend answering `NAME`; requests for `/slow` are held until
/// `release` is set, so that one can be in flight across a change.
struct Backend {
    addr: SocketAddr,
    held: Arc<AtomicU64>,
}

impl Backend {
    async fn start(name: &'static str, release: watch::Receiver<bool>) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(AtomicU64::new(0));
        let counter = held.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (held, release) = (counter.clone(), release.clone());
                let service = service_fn(move |request: Request<Incoming>| {
                    let (held, mut release) = (held.clone(), release.clone());
                    async move {
                        if request.uri().path() == "/slow" {
                            held.fetch_add(1, Ordering::SeqCst);
                            let _ = release.wait_for(|released| *released).await;
                        }
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(name))))
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Backend { addr, held }
    }
}

fn meta(name: &str) -> ObjectMeta {
    dns_objects::meta("shop", name)
}

/// Service `name` (port `http` 80, its target the backend's port) and its Endpoints: the
/// backend at `addr`.
async fn publish(client: &LocalClient, name: &str, cluster_ip: &str, addr: SocketAddr) {
    let mut service = dns_objects::service("shop", name, cluster_ip);
    service.spec.ports[0].target_port = Some(i32::from(addr.port()).into());
    support::publish(client, service, addr).await;
}

fn split(weights: [i32; 2]) -> TrafficSplit {
    TrafficSplit {
        metadata: meta("web-canary"),
        spec: TrafficSplitSpec {
            service: "web".into(),
            backends: vec![
                TrafficSplitBackend {
                    service: "web-v1".into(),
                    weight: weights[0],
                },
                TrafficSplitBackend {
                    service: "web-v2".into(),
                    weight: weights[1],
                },
            ],
        },
    }
}

type Http = HttpClient<HttpConnector, Full<Bytes>>;

/// One GET of `path` for `web.shop` through the proxy: (status, body).
async fn get(http: &Http, proxy: SocketAddr, path: &str) -> (StatusCode, String) {
    let request = Request::get(format!("http://{proxy}{path}"))
        .header("host", "web.shop")
        .body(Full::default())
        .unwrap();
    let response = http.request(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// `n` GETs one after the other (so that the picks are in order): the answers by backend
/// `(web, web-v1, web-v2)`; every one must be 200.
async fn counts(http: &Http, proxy: SocketAddr, n: usize) -> (usize, usize, usize) {
    let mut counts = (0, 0, 0);
    for _ in 0..n {
        let (status, body) = get(http, proxy, "/").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        match body.as_str() {
            "web" => counts.0 += 1,
            "web-v1" => counts.1 += 1,
            "web-v2" => counts.2 += 1,
            other => panic!("an answer from nowhere: {other}"),
        }
    }
    counts
}

/// The weights of `web`'s split as the directory has them (`None`: no split).
fn weights(directory: &MeshDirectory) -> Option<Vec<u32>> {
    let splits = directory.splits();
    let split = splits.get(&ServiceName::new("shop", "web"))?;
    Some(split.backends.iter().map(|b| b.weight).collect())
}

/// Waits until the split follower has applied a set in which `web` has `expected`.
async fn wait_for_split(
    applied: &mut watch::Receiver<Option<Arc<BTreeMap<ServiceName, MeshSplit>>>>,
    directory: &MeshDirectory,
    expected: Option<Vec<u32>>,
) {
    let seen = tokio::time::timeout(
        WAIT,
        applied.wait_for(|splits| splits.is_some() && weights(directory) == expected),
    )
    .await;
    assert!(
        seen.is_ok(),
        "the split follower did not apply {expected:?} within {WAIT:?} (it has {:?})",
        weights(directory)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traffic_split_through_the_api_moves_the_mesh_traffic() {
    let client = LocalClient::new(MemStore::new());
    let (release, released) = watch::channel(false);
    let apex = Backend::start("web", released.clone()).await;
    let v1 = Backend::start("web-v1", released.clone()).await;
    let v2 = Backend::start("web-v2", released.clone()).await;
    publish(&client, "web", "127.2.0.10", apex.addr).await;
    publish(&client, "web-v1", "127.2.0.11", v1.addr).await;
    publish(&client, "web-v2", "127.2.0.12", v2.addr).await;

    let directory = MeshDirectory::new(DirectoryConfig::default());
    let config = FollowerConfig {
        debounce: Duration::from_millis(20),
        ..FollowerConfig::default()
    };
    let services = ProxyFollower::new(client.clone(), Arc::new(directory.clone()), config.clone());
    let mut table = services.applied();
    tokio::spawn(services.run());
    let splits = SplitFollower::new(client.clone(), directory.clone(), config);
    let mut applied = splits.applied();
    tokio::spawn(splits.run());
    let proxy = HttpProxy::new(directory.clone(), HttpProxyConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_addr = listener.local_addr().unwrap();
    tokio::spawn(proxy.clone().serve(listener));
    let http: Http = HttpClient::builder(TokioExecutor::new()).build_http();

    // The three services are known, and no split exists yet: the apex answers.
    tokio::time::timeout(WAIT, table.wait_for(|t| t.len() == 3))
        .await
        .expect("the service table within the timeout")
        .unwrap();
    wait_for_split(&mut applied, &directory, None).await;
    assert_eq!(counts(&http, proxy_addr, 10).await, (10, 0, 0));

    // The API refuses a split without weight, naming the field.
    let error = client.create(&split([0, 0])).await.unwrap_err();
    assert!(error.to_string().contains("spec.backends"), "{error}");

    // 90/10: exactly so over each cycle of 100 requests.
    client.create(&split([90, 10])).await.unwrap();
    wait_for_split(&mut applied, &directory, Some(vec![90, 10])).await;
    assert_eq!(counts(&http, proxy_addr, 200).await, (0, 180, 20));

    // A request in flight (held by web-v1: the first pick of a new cycle is the heaviest
    // backend) survives the weight change to 0/100, which every later request follows.
    let slow = tokio::spawn({
        let http = http.clone();
        async move { get(&http, proxy_addr, "/slow").await }
    });
    tokio::time::timeout(WAIT, async {
        while v1.held.load(Ordering::SeqCst) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the slow request reaches web-v1");
    let mut current: TrafficSplit = client.get("shop", "web-canary").await.unwrap();
    current.spec = split([0, 100]).spec;
    client.update(&current).await.unwrap();
    wait_for_split(&mut applied, &directory, Some(vec![0, 100])).await;
    assert_eq!(counts(&http, proxy_addr, 50).await, (0, 0, 50));
    release.send_replace(true);
    assert_eq!(
        slow.await.unwrap(),
        (StatusCode::OK, "web-v1".to_owned()),
        "the in-flight request finished on its backend"
    );
    assert_eq!(v2.held.load(Ordering::SeqCst), 0);

    // The split deleted: the apex's own endpoints answer again.
    client
        .delete::<TrafficSplit>("shop", "web-canary", &DeleteOptions::default())
        .await
        .unwrap();
    wait_for_split(&mut applied, &directory, None).await;
    assert_eq!(counts(&http, proxy_addr, 20).await, (20, 0, 0));
    assert_eq!(apex.held.load(Ordering::SeqCst), 0);
}
