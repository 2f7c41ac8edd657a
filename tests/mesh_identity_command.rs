//! `orchestra server` serves the mesh identity service: a sidecar holding a service account
//! token (from `--token-auth-file`) gets a certificate for that account's SPIFFE ID in the
//! `--mesh-trust-domain`, with the mesh CA's root as trust anchor; another account's
//! identity is refused; and a restarted server on the same data directory keeps its mesh CA.
//! `orchestra cluster` serves it the same way.

#![cfg(feature = "server")]

mod support;

use orchestra_api::RemoteClient;
use orchestra_api::tls::Credentials;
use orchestra_mesh::l7::identity::{IdentityClient, IssueError, SpiffeId, request_certificate};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use support::{free_port, spawn_orchestra, stop_with_sigterm};

fn start(data: &std::path::Path, tokens: &std::path::Path, port: u16) -> std::process::Child {
    spawn_orchestra([
        "server",
        "--store",
        "memory",
        "--no-scheduler",
        "--no-controllers",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        data.to_str().unwrap(),
        "--token-auth-file",
        tokens.to_str().unwrap(),
        "--mesh-trust-domain",
        "example.org",
    ])
}

async fn sidecar(data: &std::path::Path, port: u16, token: &str) -> IdentityClient {
    // Wait until the server is up (it writes the admin credentials, then answers).
    support::connect_secure(&data.join("admin.credentials")).await;
    let credentials = Credentials {
        server: format!("https://127.0.0.1:{port}"),
        certificate_authority: std::fs::read_to_string(data.join("tls/ca.crt")).unwrap(),
        client_certificate: None,
        client_key: None,
        token: Some(token.to_owned()),
    };
    IdentityClient::new(RemoteClient::connect_with(&credentials).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_account_token_gets_its_mesh_certificate_from_orchestra_server() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "web-token-0001,system:serviceaccount:shop:web,1,\"system:serviceaccounts\"\n",
    )
    .unwrap();
    let port = free_port();
    let server = start(&data, &tokens, port);
    let web = SpiffeId::new("example.org", "shop", "web").unwrap();
    let client = sidecar(&data, port, "web-token-0001").await;
    let (_key, certified) = request_certificate(&client, &web).await.unwrap();
    assert_eq!(certified.issued.identity, web);
    let root_pem = std::fs::read(data.join("mesh/ca.crt")).unwrap();
    let root = CertificateDer::from_pem_slice(&root_pem).unwrap();
    assert_eq!(certified.trust_roots, std::slice::from_ref(&root));
    // Another account's identity is refused.
    let cart = SpiffeId::new("example.org", "shop", "cart").unwrap();
    match request_certificate(&client, &cart).await {
        Err(IssueError::Refused(message)) => {
            assert!(message.contains("service account shop/web"), "{message}")
        }
        other => panic!("cart's identity must be refused: {other:?}"),
    }
    stop_with_sigterm(server, "orchestra server");

    // Restarted on the same data directory: the same mesh CA signs.
    let port = free_port();
    let server = start(&data, &tokens, port);
    let client = sidecar(&data, port, "web-token-0001").await;
    let (_key, again) = request_certificate(&client, &web).await.unwrap();
    assert_eq!(again.trust_roots, std::slice::from_ref(&root));
    stop_with_sigterm(server, "orchestra server");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestra_cluster_serves_mesh_certificates_too() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "web-token-0001,system:serviceaccount:shop:web,1,\"system:serviceaccounts\"\n",
    )
    .unwrap();
    let port = free_port();
    let cluster = spawn_orchestra([
        "cluster",
        "--nodes",
        "1",
        "--runtime",
        "fake",
        "--no-cluster-dns",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--data-dir",
        data.to_str().unwrap(),
        "--token-auth-file",
        tokens.to_str().unwrap(),
        "--mesh-trust-domain",
        "example.org",
    ]);
    let web = SpiffeId::new("example.org", "shop", "web").unwrap();
    let client = sidecar(&data, port, "web-token-0001").await;
    let (_key, certified) = request_certificate(&client, &web).await.unwrap();
    assert_eq!(certified.issued.identity, web);
    let root_pem = std::fs::read(data.join("mesh/ca.crt")).unwrap();
    let root = CertificateDer::from_pem_slice(&root_pem).unwrap();
    assert_eq!(certified.trust_roots, std::slice::from_ref(&root));
    stop_with_sigterm(cluster, "orchestra cluster");
}
