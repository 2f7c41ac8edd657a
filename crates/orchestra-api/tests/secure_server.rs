//! The API server with security on: TLS from a cluster CA, client certificates and bearer
//! tokens, a test authorizer, an audit sink, and the join token's TLS bootstrap, driven over
//! gRPC (`RemoteClient`) and HTTPS (hyper over rustls).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use orchestra_api::auth::{
    AuditEntry, AuditSink, Authorizer, Decision, GROUP_MASTERS, RequestAttributes, Verb,
};
use orchestra_api::registry::{ApiError, DeleteOptions, DynRegistry, ListOptions};
use orchestra_api::resources::Pod;
use orchestra_api::server::{ApiServer, Authentication, RunningServer, ServerOptions, TokenFile};
use orchestra_api::tls::{ClusterPki, Credentials, JoinToken, pki};
use orchestra_api::{Client, Registry, RemoteClient};
use orchestra_store::MemStore;
use serde_json::Value;

/// Allows administrators everything, `bob` only reads, nodes only their own Node; denies
/// the rest.
#[derive(Debug)]
struct TestAuthorizer;

impl Authorizer for TestAuthorizer {
    fn authorize(&self, request: &RequestAttributes) -> Decision {
        if request.user.in_group(GROUP_MASTERS) {
            return Decision::Allow;
        }
        if request.user.name == "bob" && !request.verb.is_write() {
            return Decision::Allow;
        }
        if let Some(node) = request.user.node_name()
            && request.resource == "nodes"
            && request.name.as_deref() == Some(node)
        {
            return Decision::Allow;
        }
        Decision::Deny("the test authorizer allows it to nobody".into())
    }
}

/// Keeps every audit entry.
#[derive(Debug, Default)]
struct MemoryAudit(Mutex<Vec<AuditEntry>>);

impl AuditSink for MemoryAudit {
    fn record(&self, entry: AuditEntry) {
        self.0.lock().unwrap().push(entry);
    }
}

struct Secure {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    pki: Arc<ClusterPki>,
    running: RunningServer,
    audit: Arc<MemoryAudit>,
    join: JoinToken,
}

async fn start() -> Secure {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_owned();
    let pki = Arc::new(ClusterPki::load_or_create(&dir, &[]).unwrap());
    std::fs::write(
        dir.join("tokens.csv"),
        "bobs-token-0001,bob,2,\"readers\"\n",
    )
    .unwrap();
    let join = JoinToken::load_or_create(&dir.join("node-token"), pki.ca_pem()).unwrap();
    let audit = Arc::new(MemoryAudit::default());
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
            tokens: Some(Arc::new(TokenFile::load(&dir.join("tokens.csv")).unwrap())),
            join_token: Some(join.clone()),
            node_signer: Some(pki.clone()),
        }),
        authorizer: Some(Arc::new(TestAuthorizer)),
        audit: Some(audit.clone()),
        ..ServerOptions::default()
    };
    let running =
        ApiServer::with_options(DynRegistry::new(Registry::new(MemStore::new())), options)
            .spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    Secure {
        _dir: tmp,
        dir,
        pki,
        running,
        audit,
        join,
    }
}

impl Secure {
    fn credentials(&self) -> Credentials {
        Credentials {
            server: self.running.url(),
            certificate_authority: self.pki.ca_pem().to_owned(),
            client_certificate: None,
            client_key: None,
            token: None,
        }
    }

    fn admin(&self) -> Credentials {
        self.pki.admin_credentials(&self.running.url()).unwrap()
    }

    fn token(&self, token: &str) -> Credentials {
        Credentials {
            token: Some(token.into()),
            ..self.credentials()
        }
    }
}

/// One HTTPS request (trusting `ca`, with an optional client certificate and token): the code
/// and the JSON body.
async fn https(
    addr: SocketAddr,
    credentials: &Credentials,
    method: Method,
    path: &str,
) -> (u16, Value) {
    let identity = credentials
        .client_certificate
        .as_deref()
        .zip(credentials.client_key.as_deref());
    let config =
        orchestra_api::tls::client_config(&credentials.certificate_authority, identity).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(token) = &credentials.token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = sender
        .send_request(request.body(Full::new(bytes::Bytes::new())).unwrap())
        .await
        .unwrap();
    let code = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (
        code,
        serde_json::from_slice(&body)
            .unwrap_or(Value::String(String::from_utf8_lossy(&body).into_owned())),
    )
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap()
}

#[tokio::test]
async fn unauthenticated_requests_are_refused_over_rest_and_grpc() {
    let server = start().await;
    let addr = server.running.local_addr();
    let (code, body) = https(addr, &server.credentials(), Method::GET, "/api/v1/pods").await;
    assert_eq!(code, 401, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("no credentials"),
        "{body}"
    );
    // Probes stay open.
    let (code, _) = https(addr, &server.credentials(), Method::GET, "/healthz").await;
    assert_eq!(code, 200);

    let anonymous = RemoteClient::connect_with(&server.credentials())
        .await
        .unwrap();
    let err = anonymous
        .list::<Pod>(None, &ListOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Unauthenticated"), "{err}");
    assert!(err.to_string().contains("no credentials"), "{err}");
    // A plaintext client gets nothing from a TLS server.
    let plain = RemoteClient::connect(&format!("http://{addr}")).await;
    if let Ok(plain) = plain {
        assert!(
            plain
                .list::<Pod>(None, &ListOptions::default())
                .await
                .is_err()
        );
    }
    let (code, _) = https(addr, &server.admin(), Method::GET, "/metrics").await;
    assert_eq!(code, 200);
}

#[tokio::test]
async fn the_admin_certificate_works_and_a_foreign_ca_certificate_is_refused() {
    let server = start().await;
    let admin = RemoteClient::connect_with(&server.admin()).await.unwrap();
    admin.create(&pod("web")).await.unwrap();
    let (code, body) = https(
        server.running.local_addr(),
        &server.admin(),
        Method::GET,
        "/api/v1/namespaces/default/pods/web",
    )
    .await;
    assert_eq!(
        (code, body["metadata"]["name"].as_str()),
        (200, Some("web"))
    );

    // A certificate for "admin" from another CA: the handshake fails.
    let other = tempfile::tempdir().unwrap();
    let foreign = ClusterPki::load_or_create(other.path(), &[]).unwrap();
    let forged = Credentials {
        client_certificate: Some(foreign.admin().cert_pem.clone()),
        client_key: Some(foreign.admin().key_pem.clone()),
        ..server.credentials()
    };
    let refused = match RemoteClient::connect_with(&forged).await {
        Err(_) => true,
        Ok(client) => client.get::<Pod>("default", "web").await.is_err(),
    };
    assert!(refused, "a certificate from a foreign CA must not get in");
    // And a client trusting another CA does not trust this server.
    let wrong_trust = Credentials {
        certificate_authority: foreign.ca_pem().to_owned(),
        ..server.admin()
    };
    assert!(RemoteClient::connect_with(&wrong_trust).await.is_err());
}

#[tokio::test]
async fn a_token_user_works_until_the_token_is_revoked() {
    let server = start().await;
    RemoteClient::connect_with(&server.admin())
        .await
        .unwrap()
        .create(&pod("web"))
        .await
        .unwrap();
    let bob = RemoteClient::connect_with(&server.token("bobs-token-0001"))
        .await
        .unwrap();
    let pods = bob
        .list::<Pod>(None, &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(pods.items.len(), 1);
    let (code, _) = https(
        server.running.local_addr(),
        &server.token("bobs-token-0001"),
        Method::GET,
        "/api/v1/namespaces/default/pods/web",
    )
    .await;
    assert_eq!(code, 200);

    // Revoke: rewrite the file without bob (a later mtime, for coarse-grained filesystems).
    let path = server.dir.join("tokens.csv");
    std::fs::write(&path, "someone-else-0001,carol,3\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    let err = bob.get::<Pod>("default", "web").await.unwrap_err();
    assert!(
        err.to_string().contains("not valid (unknown or revoked)"),
        "{err}"
    );
    let (code, _) = https(
        server.running.local_addr(),
        &server.token("bobs-token-0001"),
        Method::GET,
        "/api/v1/namespaces/default/pods/web",
    )
    .await;
    assert_eq!(code, 401);
}

#[tokio::test]
async fn a_denial_is_forbidden_naming_user_verb_and_resource_counted_and_audited() {
    let server = start().await;
    let admin = RemoteClient::connect_with(&server.admin()).await.unwrap();
    admin.create(&pod("web")).await.unwrap();
    let bob = RemoteClient::connect_with(&server.token("bobs-token-0001"))
        .await
        .unwrap();
    let err = bob
        .delete::<Pod>("default", "web", &DeleteOptions::default())
        .await
        .unwrap_err();
    let ApiError::Forbidden(message) = &err else {
        panic!("expected Forbidden, got {err:?}");
    };
    assert!(
        message.starts_with(
            "user \"bob\" cannot delete resource \"pods\" named \"web\" in the namespace \"default\""
        ),
        "{message}"
    );
    let (code, body) = https(
        server.running.local_addr(),
        &server.token("bobs-token-0001"),
        Method::DELETE,
        "/api/v1/namespaces/default/pods/web",
    )
    .await;
    assert_eq!((code, body["reason"].as_str()), (403, Some("Forbidden")));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("user \"bob\" cannot delete")
    );
    // Still there; counted; audited (the admin's create allowed, bob's deletes denied).
    admin.get::<Pod>("default", "web").await.unwrap();
    let (_, metrics) = https(
        server.running.local_addr(),
        &server.admin(),
        Method::GET,
        "/metrics",
    )
    .await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(metrics.contains(
        "orchestra_apiserver_denied_requests_total{protocol=\"grpc\",verb=\"delete\",resource=\"pods\"} 1"
    ), "{metrics}");
    assert!(metrics.contains(
        "orchestra_apiserver_denied_requests_total{protocol=\"http\",verb=\"delete\",resource=\"pods\"} 1"
    ), "{metrics}");
    let audit = server.audit.0.lock().unwrap().clone();
    let summary: Vec<(String, Verb, bool)> = audit
        .iter()
        .map(|e| (e.request.user.name.clone(), e.request.verb, e.allowed))
        .collect();
    assert_eq!(
        summary,
        [
            ("admin".to_owned(), Verb::Create, true),
            ("bob".to_owned(), Verb::Delete, false),
            ("bob".to_owned(), Verb::Delete, false),
        ]
    );
    assert!(audit[1].reason.contains("test authorizer"));
}

#[tokio::test]
async fn the_join_token_buys_a_node_identity_and_nothing_else() {
    let server = start().await;
    let url = server.running.url();
    // The agent knows only the URL and the token: it pins the CA by the token's hash.
    let ca = server.join.fetch_ca(&url).await.unwrap();
    assert_eq!(ca, server.pki.ca_pem());
    let bootstrap = Credentials {
        server: url.clone(),
        certificate_authority: ca,
        client_certificate: None,
        client_key: None,
        token: Some(server.join.to_string()),
    };
    let bootstrap = RemoteClient::connect_with(&bootstrap).await.unwrap();
    let err = bootstrap
        .list::<Pod>(None, &ListOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ApiError::Forbidden(ref m) if m.contains("only grants a node certificate")),
        "{err}"
    );
    let (key, csr) = pki::node_csr("n1").unwrap();
    let chain = bootstrap.issue_node_certificate("n1", &csr).await.unwrap();
    let node = Credentials {
        client_certificate: Some(chain),
        client_key: Some(key),
        ..server.credentials()
    };
    let node = RemoteClient::connect_with(&node).await.unwrap();
    // The test authorizer lets a node read its own Node only: the identity is system:node:n1.
    let err = node
        .get::<orchestra_api::resources::Node>("", "n1")
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::NotFound { .. }), "{err:?}");
    let err = node
        .get::<orchestra_api::resources::Node>("", "n2")
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("user \"system:node:n1\" cannot get resource \"nodes\""),
        "{err}"
    );
    // A token for another CA is refused before anything is sent.
    let other = tempfile::tempdir().unwrap();
    let foreign = ClusterPki::load_or_create(other.path(), &[]).unwrap();
    let wrong =
        JoinToken::load_or_create(&other.path().join("node-token"), foreign.ca_pem()).unwrap();
    assert!(wrong.fetch_ca(&url).await.is_err());
}
