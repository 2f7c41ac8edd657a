//! `Cluster` (what `orchestra cluster` and `examples/full_cluster` run) serves the mesh
//! identity service as `orchestra server` does: a workload authenticated as a service account
//! (a bearer token from the builder's token file, or a client certificate from the cluster
//! CA) gets a certificate for that account's SPIFFE ID in the configured trust domain, with
//! the mesh CA kept in `<data-dir>/mesh` as its trust anchor; other identities and
//! non-service-account users are refused; in-process sidecars get the same CA's certificates
//! from `Cluster::mesh_identity`; and a restarted cluster keeps its mesh CA.

#![cfg(feature = "server")]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use orchestra::api::RemoteClient;
use orchestra::api::auth::UserInfo;
use orchestra::api::tls::{ClusterPki, Credentials};
use orchestra::cluster::Cluster;
use orchestra_mesh::l7::identity::{
    IdentityClient, IssueError, LocalIssuer, PeerRole, SpiffeId, TrustBundle, request_certificate,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use support::sidecar::mesh_cluster;

const TOKENS: &str = "web-token-0001,system:serviceaccount:shop:web,1,\"system:serviceaccounts,system:serviceaccounts:shop\"\n";

async fn start(dir: &Path) -> Cluster {
    mesh_cluster(dir, TOKENS).await
}

fn id(service_account: &str) -> SpiffeId {
    SpiffeId::new("example.org", "shop", service_account).unwrap()
}

/// The sidecar's client of `cluster`'s identity service, authenticated by `token`.
async fn with_token(cluster: &Cluster, token: &str) -> IdentityClient {
    let credentials = Credentials {
        client_certificate: None,
        client_key: None,
        token: Some(token.to_owned()),
        ..cluster.credentials().clone()
    };
    IdentityClient::new(RemoteClient::connect_with(&credentials).await.unwrap())
}

/// The client as `user` in `groups`, with a certificate from the cluster CA in `data`.
async fn with_certificate(
    cluster: &Cluster,
    data: &Path,
    user: &str,
    groups: &[&str],
) -> IdentityClient {
    let certified = ClusterPki::load_or_create(data, &[])
        .unwrap()
        .issue_client(user, groups)
        .unwrap();
    let credentials = Credentials {
        client_certificate: Some(certified.cert_pem.clone()),
        client_key: Some(certified.key_pem.clone()),
        token: None,
        ..cluster.credentials().clone()
    };
    IdentityClient::new(RemoteClient::connect_with(&credentials).await.unwrap())
}

fn mesh_root(data: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(&std::fs::read(data.join("mesh/ca.crt")).unwrap()).unwrap()
}

fn now() -> UnixTime {
    UnixTime::since_unix_epoch(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap(),
    )
}

fn refusal<T: std::fmt::Debug>(result: Result<T, IssueError>) -> String {
    match result {
        Err(IssueError::Refused(message)) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_in_a_started_cluster_obtains_its_mesh_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cluster = start(dir.path()).await;
    let root = mesh_root(&data);

    // A service account token buys that account's certificate, anchored at the CA kept in
    // DATA_DIR/mesh.
    let web = with_token(&cluster, "web-token-0001").await;
    let (_key, certified) = request_certificate(&web, &id("web")).await.unwrap();
    assert_eq!(certified.issued.identity, id("web"));
    assert_eq!(certified.trust_roots, std::slice::from_ref(&root));
    let bundle = TrustBundle::new("example.org", certified.trust_roots.clone()).unwrap();
    assert_eq!(
        bundle
            .verify(&certified.issued.chain, PeerRole::Client, now())
            .unwrap(),
        id("web")
    );
    // ...and no other account's.
    let message = refusal(request_certificate(&web, &id("cart")).await);
    assert!(message.contains("service account shop/web"), "{message}");

    // A client certificate from the cluster CA naming a service account works the same way.
    let cart = with_certificate(
        &cluster,
        &data,
        "system:serviceaccount:shop:cart",
        &["system:serviceaccounts"],
    )
    .await;
    let (_key, certified) = request_certificate(&cart, &id("cart")).await.unwrap();
    assert_eq!(certified.issued.identity, id("cart"));

    // The administrator is not a service account: no mesh identity.
    let admin = IdentityClient::new(
        RemoteClient::connect_with(cluster.credentials())
            .await
            .unwrap(),
    );
    let message = refusal(request_certificate(&admin, &id("web")).await);
    assert!(message.contains("is not a service account"), "{message}");

    // In-process sidecars ask the same service directly.
    let local = LocalIssuer::new(
        Arc::clone(cluster.mesh_identity()),
        UserInfo::new("system:serviceaccount:shop:web", ["system:serviceaccounts"]),
    );
    let (_key, certified) = request_certificate(&local, &id("web")).await.unwrap();
    assert_eq!(certified.trust_roots, std::slice::from_ref(&root));
    cluster.shutdown().await;

    // Restarted on the same data directory, the cluster signs with the same mesh CA.
    let cluster = start(dir.path()).await;
    let web = with_token(&cluster, "web-token-0001").await;
    let (_key, again) = request_certificate(&web, &id("web")).await.unwrap();
    assert_eq!(again.trust_roots, std::slice::from_ref(&root));
    cluster.shutdown().await;
}
