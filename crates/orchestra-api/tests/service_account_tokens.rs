//! Bound service account tokens through a secure API server: a node has a token issued for
//! its pod's service account over gRPC (`RemoteClient::request_token`), the token then
//! authenticates as `system:serviceaccount:NS:NAME` until its pod is deleted; node
//! restriction keeps nodes to their own pods; a token for another audience is refused; and
//! REST's `POST .../serviceaccounts/NAME/token` issues the same.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use orchestra_api::auth::node::NodeAuthorizer;
use orchestra_api::auth::token::{MESH_IDENTITY_AUDIENCE, ServiceAccountTokens, SigningKey};
use orchestra_api::auth::{
    Authorizer, Decision, GROUP_MASTERS, GROUP_NODES, RequestAttributes, Verb,
};
use orchestra_api::registry::{DeleteOptions, DynRegistry};
use orchestra_api::resources::{
    BoundObjectReference, Pod, ServiceAccount, TokenRequest, TokenRequestSpec,
};
use orchestra_api::server::{ApiServer, Authentication, RunningServer, ServerOptions};
use orchestra_api::tls::{ClusterPki, Credentials};
use orchestra_api::watcher::Event;
use orchestra_api::{Client, LocalClient, ObjectMeta, Registry, RemoteClient};
use orchestra_store::MemStore;
use serde_json::{Value, json};

/// Administrators may do anything; nodes are decided by node restriction; service accounts
/// may read pods (so that a token's user can be seen acting).
#[derive(Debug)]
struct TestAuthorizer(NodeAuthorizer);

impl Authorizer for TestAuthorizer {
    fn authorize(&self, request: &RequestAttributes) -> Decision {
        if request.user.in_group(GROUP_MASTERS) {
            return Decision::Allow;
        }
        if request.user.node_name().is_some() {
            return self.0.authorize(request);
        }
        if request.user.in_group("system:serviceaccounts")
            && request.resource == "pods"
            && request.verb == Verb::Get
        {
            return Decision::Allow;
        }
        Decision::Deny("the test authorizer allows it to nobody".into())
    }
}

struct Server {
    _dir: tempfile::TempDir,
    pki: Arc<ClusterPki>,
    running: RunningServer,
    local: LocalClient,
    nodes: NodeAuthorizer,
}

async fn start() -> Server {
    let tmp = tempfile::tempdir().unwrap();
    let pki = Arc::new(ClusterPki::load_or_create(tmp.path(), &[]).unwrap());
    let registry = Registry::new(MemStore::new());
    let key = SigningKey::load_or_create(&tmp.path().join("service-account.key")).unwrap();
    let tokens = Arc::new(ServiceAccountTokens::new(key, registry.clone()));
    let nodes = NodeAuthorizer::new();
    let options = ServerOptions {
        tls: Some(
            orchestra_api::tls::server_config(
                &pki.server().cert_pem,
                &pki.server().key_pem,
                Some(pki.ca_pem()),
            )
            .unwrap(),
        ),
        authentication: Some(Authentication::default()),
        authorizer: Some(Arc::new(TestAuthorizer(nodes.clone()))),
        service_account_tokens: Some(tokens),
        ..ServerOptions::default()
    };
    let running = ApiServer::with_options(DynRegistry::new(registry.clone()), options)
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    Server {
        _dir: tmp,
        pki,
        running,
        local: LocalClient::from_registry(registry),
        nodes,
    }
}

impl Server {
    async fn client(&self, credentials: &Credentials) -> RemoteClient {
        RemoteClient::connect_with(credentials).await.unwrap()
    }

    fn admin(&self) -> Credentials {
        self.pki.admin_credentials(&self.running.url()).unwrap()
    }

    fn node(&self, name: &str) -> Credentials {
        let certified = self
            .pki
            .issue_client(&format!("system:node:{name}"), &[GROUP_NODES])
            .unwrap();
        Credentials {
            client_certificate: Some(certified.cert_pem),
            client_key: Some(certified.key_pem),
            ..self.token("")
        }
    }

    fn token(&self, token: &str) -> Credentials {
        Credentials {
            server: self.running.url(),
            certificate_authority: self.pki.ca_pem().to_owned(),
            client_certificate: None,
            client_key: None,
            token: (!token.is_empty()).then(|| token.to_owned()),
        }
    }

    /// Service account shop/web and pod shop/web-1 running as it on node n1.
    async fn workload(&self) -> Pod {
        let admin = self.client(&self.admin()).await;
        admin
            .create(&ServiceAccount {
                metadata: ObjectMeta::namespaced("shop", "web"),
                ..ServiceAccount::default()
            })
            .await
            .unwrap();
        let mut pod = orchestra_api::testing::pod("shop", "web-1", "web");
        pod.spec.service_account_name = "web".into();
        pod.spec.node_name = "n1".into();
        let pod = admin.create(&pod).await.unwrap();
        // The node graph, as NodeAuthorizer::run would feed it from a watch.
        self.nodes.apply(&Event::Applied(pod.clone().into()));
        pod
    }
}

fn bound_to(pod: &Pod, audiences: &[&str]) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            audiences: audiences.iter().map(|a| (*a).to_owned()).collect(),
            expiration_seconds: Some(600),
            bound_object_ref: Some(BoundObjectReference {
                kind: "Pod".into(),
                api_version: "v1".into(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..TokenRequest::default()
    }
}

#[tokio::test]
async fn a_node_gets_its_pods_token_which_works_until_the_pod_is_gone() {
    let server = start().await;
    let pod = server.workload().await;
    let n1 = server.client(&server.node("n1")).await;
    let issued = n1
        .request_token("shop", "web", &bound_to(&pod, &[]))
        .await
        .unwrap();
    assert_eq!(issued.kind, "TokenRequest");
    assert_eq!(issued.spec.expiration_seconds, Some(600));
    let token = issued.status.unwrap().token;

    // The token acts as the service account.
    let workload = server.client(&server.token(&token)).await;
    let read: Pod = workload.get("shop", "web-1").await.unwrap();
    assert_eq!(read.metadata.uid, pod.metadata.uid);
    let err = workload
        .delete::<Pod>("shop", "web-1", &DeleteOptions::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("user \"system:serviceaccount:shop:web\" cannot delete"),
        "{err}"
    );

    // The pod goes: so does the token.
    let now = DeleteOptions {
        grace_period_seconds: Some(0),
        ..DeleteOptions::default()
    };
    server
        .local
        .delete::<Pod>("shop", "web-1", &now)
        .await
        .unwrap();
    let err = workload.get::<Pod>("shop", "web-1").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the pod shop/web-1 the token is bound to no longer exists"),
        "{err}"
    );
}

#[tokio::test]
async fn node_restriction_and_audiences_hold_over_grpc() {
    let server = start().await;
    let pod = server.workload().await;
    // Another node: its pods do not run as web.
    let n2 = server.client(&server.node("n2")).await;
    let err = n2
        .request_token("shop", "web", &bound_to(&pod, &[]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), 403, "{err}");
    // The right node, without binding the token to the pod.
    let n1 = server.client(&server.node("n1")).await;
    let err = n1
        .request_token("shop", "web", &TokenRequest::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("a node's tokens must be bound to one of its pods"),
        "{err}"
    );
    // A token for the mesh identity is not one for the API.
    let mesh = n1
        .request_token("shop", "web", &bound_to(&pod, &[MESH_IDENTITY_AUDIENCE]))
        .await
        .unwrap()
        .status
        .unwrap()
        .token;
    let err = server
        .client(&server.token(&mesh))
        .await
        .get::<Pod>("shop", "web-1")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("none of which this server accepts"),
        "{err}"
    );
    // A forged token is an unknown one.
    // A character of the claims changed, the signature kept.
    let mut parts: Vec<String> = mesh.split('.').map(str::to_owned).collect();
    let flipped = if parts[1].ends_with('A') { "B" } else { "A" };
    let last = parts[1].len() - 1;
    parts[1].replace_range(last.., flipped);
    let forged = parts.join(".");
    let err = server
        .client(&server.token(&forged))
        .await
        .get::<Pod>("shop", "web-1")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("the signature does not verify"),
        "{err}"
    );
}

/// One HTTPS POST with a JSON body as the admin: the code and the JSON answer.
async fn post(server: &Server, path: &str, body: &Value) -> (u16, Value) {
    let credentials = server.admin();
    let identity = credentials
        .client_certificate
        .as_deref()
        .zip(credentials.client_key.as_deref());
    let config =
        orchestra_api::tls::client_config(&credentials.certificate_authority, identity).unwrap();
    let addr: SocketAddr = server.running.local_addr();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("host", addr.to_string())
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let code = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (code, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn rest_issues_tokens_on_the_kubernetes_path() {
    let server = start().await;
    server.workload().await;
    let (code, body) = post(
        &server,
        "/api/v1/namespaces/shop/serviceaccounts/web/token",
        &json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3600, "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web-1"}},
        }),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let token = body["status"]["token"].as_str().unwrap();
    assert!(body["status"]["expirationTimestamp"].is_string(), "{body}");
    let workload = server.client(&server.token(token)).await;
    workload.get::<Pod>("shop", "web-1").await.unwrap();
    // Too short a lifetime, and an account that does not exist.
    let (code, body) = post(
        &server,
        "/api/v1/namespaces/shop/serviceaccounts/web/token",
        &json!({"spec": {"expirationSeconds": 60}}),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("spec.expirationSeconds: Invalid value: 60"),
        "{body}"
    );
    let (code, body) = post(
        &server,
        "/api/v1/namespaces/shop/serviceaccounts/nobody/token",
        &json!({}),
    )
    .await;
    assert_eq!(code, 404, "{body}");
}
