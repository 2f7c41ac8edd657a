//! The `pods/log` subresource on the API server, with a scripted node connector standing in
//! for the node agents: REST (`GET .../pods/{name}/log`, plain text) and gRPC
//! (`RemoteClient::pod_logs`) relay the connector's chunks and pass the options on; errors come
//! back as kubectl's; a user is let in only by a rule on `pods/log` (the built-in `view` role
//! has one, a rule on `pods` is not enough).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use orchestra_api::auth::bootstrap::default_cluster_roles;
use orchestra_api::auth::{Authorizer, Decision, RequestAttributes};
use orchestra_api::logs::{AgentLogRequest, LogStream, NodeConnector, PodLogOptions};
use orchestra_api::registry::DynRegistry;
use orchestra_api::resources::{
    ContainerState, ContainerStateRunning, ContainerStatus, Node, PodStatus,
};
use orchestra_api::server::{ApiServer, RunningServer, ServerOptions};
use orchestra_api::{ApiError, Client, LocalClient, Registry, RemoteClient, testing};
use orchestra_store::MemStore;

/// Answers every request with `one\n` then `two\n` and records what was asked.
#[derive(Debug, Default)]
struct Scripted {
    asked: Mutex<Vec<(String, AgentLogRequest)>>,
}

#[async_trait]
impl NodeConnector for Scripted {
    async fn container_logs(
        &self,
        node: &Node,
        request: &AgentLogRequest,
    ) -> Result<LogStream, ApiError> {
        self.asked
            .lock()
            .unwrap()
            .push((node.metadata.name.clone(), request.clone()));
        let chunks = [Bytes::from_static(b"one\n"), Bytes::from_static(b"two\n")];
        Ok(Box::pin(futures::stream::iter(chunks.map(Ok))))
    }
}

/// Allows `get` on `pods/log` only through the rules of the built-in `view` ClusterRole, for
/// user `viewer`; user `pod-reader` may get `pods` but not their log.
#[derive(Debug)]
struct ViewOnly;

impl Authorizer for ViewOnly {
    fn authorize(&self, request: &RequestAttributes) -> Decision {
        let view = default_cluster_roles()
            .into_iter()
            .find(|role| role.metadata.name == "view")
            .unwrap();
        let allowed = match request.user.name.as_str() {
            "admin" => true,
            "viewer" => view
                .rules
                .iter()
                .any(|rule| orchestra_api::auth::rbac::rules::rule_allows(rule, request)),
            "pod-reader" => request.resource == "pods" && request.subresource.is_none(),
            _ => false,
        };
        if allowed {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }
}

async fn serve(connector: Arc<Scripted>) -> (RunningServer, LocalClient) {
    let registry = Registry::new(MemStore::new());
    let client = LocalClient::from_registry(registry.clone());
    let options = ServerOptions {
        node_connector: Some(connector),
        ..ServerOptions::default()
    };
    let server = ApiServer::with_options(DynRegistry::new(registry), options)
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (server, client)
}

/// A running pod `web` (container `main`) on `node-1`, and the Node.
async fn running_pod(client: &LocalClient) {
    let mut pod = testing::pod("default", "web", "web");
    pod.spec.node_name = "node-1".into();
    let mut pod = client.create(&pod).await.unwrap();
    pod.status = Some(PodStatus {
        container_statuses: vec![ContainerStatus {
            name: "main".into(),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }],
        ..PodStatus::default()
    });
    client.update_status(&pod).await.unwrap();
    let mut node = Node::default();
    node.metadata.name = "node-1".into();
    client.create(&node).await.unwrap();
}

async fn http_get(server: &RunningServer, path: &str) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", server.local_addr().to_string())
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let code = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (code, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn rest_and_grpc_relay_the_agents_stream_with_the_options() {
    let connector = Arc::new(Scripted::default());
    let (server, client) = serve(connector.clone()).await;
    running_pod(&client).await;

    let (code, body) = http_get(
        &server,
        "/api/v1/namespaces/default/pods/web/log?container=main&follow=true&tailLines=5&previous=false",
    )
    .await;
    assert_eq!((code, body.as_str()), (200, "one\ntwo\n"));
    let remote = RemoteClient::connect(&server.url()).await.unwrap();
    let options = PodLogOptions {
        tail_lines: Some(1),
        limit_bytes: Some(100),
        ..PodLogOptions::default()
    };
    let chunks: Vec<Bytes> = remote
        .pod_logs("default", "web", &options)
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    assert_eq!(chunks, [&b"one\n"[..], &b"two\n"[..]]);
    let asked = connector.asked.lock().unwrap().clone();
    let request = |follow, tail_lines, limit_bytes| AgentLogRequest {
        namespace: "default".into(),
        pod: "web".into(),
        container: "main".into(),
        follow,
        tail_lines,
        previous: false,
        limit_bytes,
        ..AgentLogRequest::default()
    };
    assert_eq!(
        asked,
        [
            ("node-1".to_owned(), request(true, Some(5), None)),
            ("node-1".to_owned(), request(false, Some(1), Some(100))),
        ]
    );

    // sinceTime / sinceSeconds and timestamps reach the agent over both protocols.
    connector.asked.lock().unwrap().clear();
    let (code, _) = http_get(
        &server,
        "/api/v1/namespaces/default/pods/web/log?sinceTime=2026-11-27T03%3A00%3A00Z&timestamps=true",
    )
    .await;
    assert_eq!(code, 200);
    let options = PodLogOptions {
        since_seconds: Some(30),
        ..PodLogOptions::default()
    };
    let _ = remote.pod_logs("default", "web", &options).await.unwrap();
    let (code, body) = http_get(
        &server,
        "/api/v1/namespaces/default/pods/web/log?sinceSeconds=3&sinceTime=2026-11-27T03:00:00Z",
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("at most one of sinceTime or sinceSeconds"),
        "{body}"
    );
    let asked = connector.asked.lock().unwrap().clone();
    assert_eq!(
        asked,
        [
            (
                "node-1".to_owned(),
                AgentLogRequest {
                    since_time: Some("2026-11-27T03:00:00Z".parse().unwrap()),
                    timestamps: true,
                    ..request(false, None, None)
                }
            ),
            (
                "node-1".to_owned(),
                AgentLogRequest {
                    since_seconds: Some(30),
                    ..request(false, None, None)
                }
            ),
        ]
    );

    // Errors, as kubectl gives them, over both protocols.
    let (code, body) = http_get(&server, "/api/v1/namespaces/default/pods/nope/log").await;
    assert_eq!(code, 404, "{body}");
    let (code, body) = http_get(
        &server,
        "/api/v1/namespaces/default/pods/web/log?container=db",
    )
    .await;
    assert_eq!(code, 400);
    assert!(
        body.contains("container db is not valid for pod web"),
        "{body}"
    );
    let (code, body) = http_get(
        &server,
        "/api/v1/namespaces/default/pods/web/log?tailLines=x",
    )
    .await;
    assert_eq!(code, 400);
    assert!(body.contains("tailLines"), "{body}");
    let err = match remote
        .pod_logs(
            "default",
            "web",
            &PodLogOptions {
                previous: true,
                ..PodLogOptions::default()
            },
        )
        .await
    {
        Ok(_) => panic!("previous without a terminated container"),
        Err(err) => err,
    };
    assert_eq!(err.code(), 400);
    assert!(
        err.to_string().contains("previous terminated container"),
        "{err}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn reading_logs_needs_get_on_pods_log() {
    let connector = Arc::new(Scripted::default());
    let registry = Registry::new(MemStore::new());
    let client = LocalClient::from_registry(registry.clone());
    running_pod(&client).await;
    // Users by bearer token, as in `--token-auth-file`.
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "viewer-token,viewer,u1,\"devs\"\npod-token,pod-reader,u2,\"devs\"\n",
    )
    .unwrap();
    let authentication = orchestra_api::server::Authentication {
        tokens: Some(Arc::new(
            orchestra_api::server::TokenFile::load(&tokens).unwrap(),
        )),
        join_token: None,
        node_signer: None,
    };
    let options = ServerOptions {
        node_connector: Some(connector),
        authentication: Some(authentication),
        authorizer: Some(Arc::new(ViewOnly)),
        ..ServerOptions::default()
    };
    let server = ApiServer::with_options(DynRegistry::new(registry), options)
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let get = |token: &'static str| {
        let addr = server.local_addr();
        async move {
            let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            let request = http::Request::get("/api/v1/namespaces/default/pods/web/log")
                .header("host", addr.to_string())
                .header("authorization", format!("Bearer {token}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            let code = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (code, String::from_utf8_lossy(&body).into_owned())
        }
    };
    assert_eq!(get("viewer-token").await, (200, "one\ntwo\n".to_owned()));
    let (code, body) = get("pod-token").await;
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("pods/log"), "{body}");
    server.shutdown().await.unwrap();
}
