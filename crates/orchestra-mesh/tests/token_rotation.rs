//! A sidecar's API client reading its service account token from a file (`orchestra sidecar
//! --token-file`, a pod's projected token): when the node agent rewrites the file with a new
//! token and the old one stops working (here revoked: the pod it was bound to is gone, as an
//! expired one is refused), the sidecar's next certificate request and API call are refused
//! once, read the file again and succeed with the new token, without a restart.

use std::sync::Arc;
use std::time::SystemTime;

use orchestra_api::auth::token::{ServiceAccountTokens, SigningKey};
use orchestra_api::registry::{DeleteOptions, DynRegistry};
use orchestra_api::remote::BearerToken;
use orchestra_api::resources::{
    BoundObjectReference, Pod, ServiceAccount, TokenRequest, TokenRequestSpec,
};
use orchestra_api::server::{ApiServer, Authentication, ServerOptions};
use orchestra_api::tls::{ClusterPki, Credentials};
use orchestra_api::{Client, LocalClient, ObjectMeta, Registry, RemoteClient};
use orchestra_mesh::l7::identity::{
    CaConfig, IdentityClient, IdentityService, MeshCa, SpiffeId, request_certificate,
};
use orchestra_store::MemStore;

/// A token for the API's audiences, bound to pod `pod` (running as shop/web).
async fn token_for(local: &LocalClient, pod: &Pod) -> String {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: Vec::new(),
            expiration_seconds: Some(3607),
            bound_object_ref: Some(BoundObjectReference {
                kind: "Pod".into(),
                api_version: "v1".into(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
            }),
        },
        ..TokenRequest::default()
    };
    local
        .request_token("shop", "web", &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token
}

async fn web_pod(local: &LocalClient, name: &str) -> Pod {
    let mut pod = orchestra_api::testing::pod("shop", name, "web");
    pod.spec.service_account_name = "web".into();
    local.create(&pod).await.unwrap()
}

/// Replaces the file as the node agent does: a new file renamed over the old one.
fn rewrite(path: &std::path::Path, token: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, token).unwrap();
    std::fs::rename(&next, path).unwrap();
}

#[tokio::test]
async fn a_sidecar_keeps_working_after_its_token_file_is_renewed_and_the_old_token_dies() {
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
    let local = LocalClient::from_registry(registry).with_token_issuer(tokens);
    local
        .create(&ServiceAccount {
            metadata: ObjectMeta::namespaced("shop", "web"),
            ..ServiceAccount::default()
        })
        .await
        .unwrap();
    let first_pod = web_pod(&local, "web-1").await;
    let token_path = dir.path().join("token");
    let first_token = token_for(&local, &first_pod).await;
    std::fs::write(&token_path, &first_token).unwrap();

    // The sidecar's client, as `orchestra sidecar --token-file` makes it.
    let credentials = Credentials {
        server: running.url(),
        certificate_authority: pki.ca_pem().to_owned(),
        client_certificate: None,
        client_key: None,
        token: None,
    };
    let api = RemoteClient::connect_with_token(
        &credentials,
        BearerToken::from_file(&token_path).unwrap(),
    )
    .await
    .unwrap();
    let identity = IdentityClient::new(api.clone());
    let web = SpiffeId::new("cluster.local", "shop", "web").unwrap();
    request_certificate(&identity, &web).await.unwrap();
    api.get::<Pod>("shop", "web-1").await.unwrap();

    // The file gets a new token; the old one dies (its pod is deleted, which revokes it).
    let second_pod = web_pod(&local, "web-2").await;
    rewrite(&token_path, &token_for(&local, &second_pod).await);
    let now = DeleteOptions {
        grace_period_seconds: Some(0),
        ..DeleteOptions::default()
    };
    local.delete::<Pod>("shop", "web-1", &now).await.unwrap();
    // The old token is refused (checked with a client that has only it)...
    let old_only = RemoteClient::connect_with(&Credentials {
        token: Some(first_token),
        ..credentials.clone()
    })
    .await
    .unwrap();
    let err = old_only.get::<Pod>("shop", "web-2").await.unwrap_err();
    assert!(err.to_string().contains("no longer exists"), "{err}");

    // ...and the sidecar's client, within the minute in which it would not read the file
    // on its own, is refused once, reads the file and goes on with the new token.
    let (_key, certified) = request_certificate(&identity, &web).await.unwrap();
    assert_eq!(certified.issued.identity, web);
    let pod: Pod = api.get("shop", "web-2").await.unwrap();
    assert_eq!(pod.metadata.uid, second_pod.metadata.uid);

    // A file whose token is dead too is reported as the server's refusal.
    local.delete::<Pod>("shop", "web-2", &now).await.unwrap();
    let err = api.get::<Pod>("shop", "web-2").await.unwrap_err();
    assert!(err.to_string().contains("no longer exists"), "{err}");
    running.shutdown().await.unwrap();
}
