//! What the sidecar tests share: a one-node cluster serving the mesh identity service, the
//! read access a mesh install grants sidecars, an echo backend that answers with the caller
//! identity the inbound sidecar passed on (and can hold requests, to see a drain wait for
//! them), a plain HTTP/1.1 exchange, and a bounded wait on a future.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use orchestra::api::auth::bootstrap::MESH_SIDECAR_ROLE;
use orchestra::api::resources::{ClusterRoleBinding, RoleRef, Subject};
use orchestra::api::{Client, ObjectMeta};
use orchestra::cluster::{Cluster, NodeRuntime};
use orchestra_mesh::l7::PEER_IDENTITY_HEADER;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A one-node fake cluster in `dir` serving the mesh identity service for trust domain
/// `example.org`, with `tokens` (a static token file's lines) authenticating service accounts.
#[allow(dead_code)] // Only the sidecar tests start a cluster.
pub async fn mesh_cluster(dir: &Path, tokens: &str) -> Cluster {
    let token_file = dir.join("tokens.csv");
    std::fs::write(&token_file, tokens).unwrap();
    Cluster::builder()
        .nodes(1)
        .runtime(NodeRuntime::Fake)
        .proxy(false)
        .data_dir(dir.join("data"))
        .mesh_trust_domain("example.org")
        .token_auth_file(&token_file)
        .start()
        .await
        .unwrap()
}

/// What the mesh's install grants sidecars: the built-in ClusterRole `system:mesh-sidecar`
/// (reading Services, Endpoints and TrafficSplits cluster-wide), bound to every service
/// account.
#[allow(dead_code)] // Only the sidecar tests start a cluster.
pub async fn grant_sidecars_the_service_table(cluster: &Cluster) {
    cluster
        .client()
        .create(&ClusterRoleBinding {
            metadata: ObjectMeta::named("mesh-sidecar"),
            subjects: vec![Subject::group("system:serviceaccounts")],
            role_ref: RoleRef::cluster_role(MESH_SIDECAR_ROLE),
        })
        .await
        .unwrap();
}

/// Holds the echo backend's requests for `/hold`: [`held`](Self::held) counts those that
/// arrived, and they are answered once [`release`](Self::release) is called.
#[derive(Clone, Debug)]
#[allow(dead_code)] // Not every test file holds requests.
pub struct Hold {
    arrived: watch::Sender<usize>,
    released: watch::Sender<bool>,
}

#[allow(dead_code)] // Not every test file holds requests.
impl Hold {
    /// Waits until `n` requests for `/hold` have arrived.
    pub async fn held(&self, n: usize) {
        let _ = self
            .arrived
            .subscribe()
            .wait_for(|arrived| *arrived >= n)
            .await;
    }

    /// Answers the held requests, and those to come.
    pub fn release(&self) {
        self.released.send_replace(true);
    }
}

/// An HTTP backend on loopback answering every request with the value of the
/// `x-orchestra-peer-identity` header (empty without it); requests for `/hold` wait for
/// the [`Hold`]'s release.
#[allow(dead_code)] // Not every test file runs an application.
pub async fn echo_backend() -> (SocketAddr, Hold, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = Hold {
        arrived: watch::Sender::new(0),
        released: watch::Sender::new(false),
    };
    let backend_hold = hold.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let hold = backend_hold.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                let caller = request
                    .headers()
                    .get(PEER_IDENTITY_HEADER)
                    .map(|v| v.as_bytes().to_vec())
                    .unwrap_or_default();
                let held = request.uri().path() == "/hold";
                let hold = hold.clone();
                async move {
                    if held {
                        let mut released = hold.released.subscribe();
                        hold.arrived.send_modify(|n| *n += 1);
                        let _ = released.wait_for(|released| *released).await;
                    }
                    Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(caller))))
                }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, hold, task)
}

/// `method path` with `Host: host` to `addr` over a fresh connection: the status and the
/// body (status 0 when the connection failed or closed without an answer).
#[allow(dead_code)] // Not every test file speaks HTTP.
pub async fn http(addr: SocketAddr, method: &str, path: &str, host: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        Some(String::from_utf8_lossy(&response).into_owned())
    };
    let Some(response) = wait_for("an HTTP answer", exchange).await else {
        return (0, String::new());
    };
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        return (0, response);
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

/// The data of a chunked body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// `future`'s output, or a panic naming `what` after 30 s.
#[allow(dead_code)] // Not every test file waits this way.
pub async fn wait_for<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within 30 s"))
}
