//! The mesh identity service served by the API server: a sidecar authenticates with its
//! service account token (from the server's token file), sends a CSR made with its own key,
//! and gets a certificate for its service account's SPIFFE ID; another service account's
//! token, an unknown token, a person's token and a CSR naming someone else are refused with
//! errors that say so.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use orchestra_api::registry::DynRegistry;
use orchestra_api::server::{ApiServer, Authentication, RunningServer, ServerOptions, TokenFile};
use orchestra_api::tls::{ClusterPki, Credentials};
use orchestra_api::{Registry, RemoteClient};
use orchestra_mesh::l7::identity::{
    CaConfig, CertificateIssuer, IdentityClient, IdentityService, IssueError, MeshCa, PeerRole,
    SidecarKey, SpiffeId, TrustBundle, request_certificate,
};
use orchestra_store::MemStore;
use rustls::pki_types::UnixTime;

struct Control {
    _dir: tempfile::TempDir,
    pki: Arc<ClusterPki>,
    running: RunningServer,
    mesh_root: rustls::pki_types::CertificateDer<'static>,
}

async fn start(with_mesh_ca: bool) -> Control {
    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(ClusterPki::load_or_create(dir.path(), &[]).unwrap());
    std::fs::write(
        dir.path().join("tokens.csv"),
        "web-token-0001,system:serviceaccount:shop:web,1,\"system:serviceaccounts,system:serviceaccounts:shop\"\n\
         cart-token-0002,system:serviceaccount:shop:cart,2,\"system:serviceaccounts,system:serviceaccounts:shop\"\n\
         alice-token-003,alice,3,\"system:masters\"\n",
    )
    .unwrap();
    let ca = MeshCa::load_or_create(
        &dir.path().join("mesh"),
        CaConfig::default(),
        SystemTime::now(),
    )
    .unwrap();
    let mesh_root = ca.root().clone();
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
            tokens: Some(Arc::new(
                TokenFile::load(&dir.path().join("tokens.csv")).unwrap(),
            )),
            join_token: None,
            node_signer: None,
        }),
        workload_signer: with_mesh_ca.then(|| Arc::new(IdentityService::new(ca)) as Arc<_>),
        ..ServerOptions::default()
    };
    let running =
        ApiServer::with_options(DynRegistry::new(Registry::new(MemStore::new())), options)
            .spawn("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    Control {
        _dir: dir,
        pki,
        running,
        mesh_root,
    }
}

impl Control {
    async fn identity_client(&self, token: &str) -> IdentityClient {
        let credentials = Credentials {
            server: self.running.url(),
            certificate_authority: self.pki.ca_pem().to_owned(),
            client_certificate: None,
            client_key: None,
            token: Some(token.to_owned()),
        };
        IdentityClient::new(RemoteClient::connect_with(&credentials).await.unwrap())
    }
}

fn id(sa: &str) -> SpiffeId {
    SpiffeId::new("cluster.local", "shop", sa).unwrap()
}

fn refusal(result: Result<impl std::fmt::Debug, IssueError>) -> String {
    match result {
        Err(IssueError::Refused(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_service_account_token_buys_a_certificate_for_its_own_identity() {
    let control = start(true).await;
    let web = control.identity_client("web-token-0001").await;
    let before = SystemTime::now();
    let (_key, certified) = request_certificate(&web, &id("web")).await.unwrap();
    assert_eq!(certified.issued.identity, id("web"));
    assert_eq!(
        certified.trust_roots,
        std::slice::from_ref(&control.mesh_root)
    );
    // 24 hours by default (less the CA's one-minute backdate at the start).
    let lifetime = certified
        .issued
        .not_after
        .duration_since(certified.issued.not_before)
        .unwrap();
    assert_eq!(lifetime, Duration::from_secs(24 * 3600 + 60));
    assert!(certified.issued.not_after >= before + Duration::from_secs(24 * 3600 - 1));
    // It verifies against the trust anchors that came with it, as web's identity.
    let bundle = TrustBundle::new("cluster.local", certified.trust_roots.clone()).unwrap();
    let now = UnixTime::since_unix_epoch(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap(),
    );
    assert_eq!(
        bundle
            .verify(&certified.issued.chain, PeerRole::Client, now)
            .unwrap(),
        id("web")
    );
    control.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn wrong_service_account_bad_token_people_and_mismatched_csrs_are_refused() {
    let control = start(true).await;

    // cart's token asking for web's identity.
    let cart = control.identity_client("cart-token-0002").await;
    let message = refusal(request_certificate(&cart, &id("web")).await);
    assert!(
        message.contains("service account shop/cart")
            && message.contains("asks for spiffe://cluster.local/ns/shop/sa/web"),
        "{message}"
    );
    // ...but its own is fine.
    request_certificate(&cart, &id("cart")).await.unwrap();

    // A token the API server does not know.
    let stranger = control.identity_client("no-such-token").await;
    let message = refusal(request_certificate(&stranger, &id("web")).await);
    assert!(message.contains("bearer token is not valid"), "{message}");

    // An administrator is still not a service account.
    let alice = control.identity_client("alice-token-003").await;
    let message = refusal(request_certificate(&alice, &id("web")).await);
    assert!(
        message.contains("\"alice\" is not a service account"),
        "{message}"
    );

    // web's token and identity, but a CSR made for cart's name.
    let web = control.identity_client("web-token-0001").await;
    let (_key, cart_csr) = SidecarKey::generate(&id("cart")).unwrap();
    let message = refusal(web.certify(&id("web"), &cart_csr).await);
    assert!(
        message.contains("the signing request asks for") && message.contains("sa/cart"),
        "{message}"
    );

    // Garbage instead of a CSR.
    let garbage = rustls::pki_types::CertificateSigningRequestDer::from(b"garbage".to_vec());
    let message = refusal(web.certify(&id("web"), &garbage).await);
    assert!(
        message.contains("invalid certificate signing request"),
        "{message}"
    );
    control.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_server_without_a_mesh_ca_says_so() {
    let control = start(false).await;
    let web = control.identity_client("web-token-0001").await;
    let message = refusal(request_certificate(&web, &id("web")).await);
    assert!(
        message.contains("runs no mesh identity service"),
        "{message}"
    );
    control.running.shutdown().await.unwrap();
}

/// A bound service account token (issued by the API server's TokenRequest, as the node agent
/// projects it into the sidecar) for the mesh identity's audience buys the certificate of its
/// service account, and nothing else on the API; once its pod is gone it buys nothing.
#[tokio::test]
async fn a_bound_token_for_the_mesh_audience_buys_its_accounts_identity_only() {
    use orchestra_api::auth::token::{MESH_IDENTITY_AUDIENCE, ServiceAccountTokens, SigningKey};
    use orchestra_api::registry::DeleteOptions;
    use orchestra_api::resources::{
        BoundObjectReference, Pod, ServiceAccount, TokenRequest, TokenRequestSpec,
    };
    use orchestra_api::{Client, LocalClient, ObjectMeta};

    let dir = tempfile::tempdir().unwrap();
    let pki = Arc::new(ClusterPki::load_or_create(dir.path(), &[]).unwrap());
    let ca = MeshCa::load_or_create(
        &dir.path().join("mesh"),
        CaConfig::default(),
        SystemTime::now(),
    )
    .unwrap();
    let registry = Registry::new(MemStore::new());
    let tokens = Arc::new(ServiceAccountTokens::new(
        SigningKey::generate().unwrap(),
        registry.clone(),
    ));
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
        workload_signer: Some(Arc::new(IdentityService::new(ca))),
        service_account_tokens: Some(tokens.clone()),
        ..ServerOptions::default()
    };
    let running = ApiServer::with_options(DynRegistry::new(registry.clone()), options)
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let control = Control {
        _dir: dir,
        pki,
        running,
        mesh_root: rustls::pki_types::CertificateDer::from(Vec::new()),
    };
    let local = LocalClient::from_registry(registry).with_token_issuer(tokens);
    local
        .create(&ServiceAccount {
            metadata: ObjectMeta::namespaced("shop", "web"),
            ..ServiceAccount::default()
        })
        .await
        .unwrap();
    let mut pod = orchestra_api::testing::pod("shop", "web-1", "web");
    pod.spec.service_account_name = "web".into();
    let pod = local.create(&pod).await.unwrap();
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![MESH_IDENTITY_AUDIENCE.into()],
            expiration_seconds: Some(600),
            bound_object_ref: Some(BoundObjectReference {
                kind: "Pod".into(),
                api_version: "v1".into(),
                name: "web-1".into(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..TokenRequest::default()
    };
    let token = local
        .request_token("shop", "web", &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token;

    let web = control.identity_client(&token).await;
    let (_key, certified) = request_certificate(&web, &id("web")).await.unwrap();
    assert_eq!(certified.issued.identity, id("web"));
    // Only its own account's identity.
    let message = refusal(request_certificate(&web, &id("cart")).await);
    assert!(
        message.contains("spiffe://cluster.local/ns/shop/sa/web"),
        "{message}"
    );
    // The mesh audience is not the API's.
    let credentials = Credentials {
        server: control.running.url(),
        certificate_authority: control.pki.ca_pem().to_owned(),
        client_certificate: None,
        client_key: None,
        token: Some(token.clone()),
    };
    let api = RemoteClient::connect_with(&credentials).await.unwrap();
    let err = api.get::<Pod>("shop", "web-1").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("none of which this server accepts"),
        "{err}"
    );
    // The pod goes: the token buys nothing more.
    let now = DeleteOptions {
        grace_period_seconds: Some(0),
        ..DeleteOptions::default()
    };
    local.delete::<Pod>("shop", "web-1", &now).await.unwrap();
    let err = request_certificate(&web, &id("web")).await.unwrap_err();
    assert!(err.to_string().contains("no longer exists"), "{err}");
    control.running.shutdown().await.unwrap();
}
