//! `Cluster` (like `orchestra server`) writes a credentials file for each component that may
//! run as its own process: the scheduler, the controller manager, the service proxy
//! (`kube-proxy.credentials`, `system:kube-proxy`) and the cluster DNS
//! (`coredns.credentials`, the service account `kube-system/coredns`). Each names its own
//! user, and the proxy's and the DNS's hold least privilege: they list Services and
//! Endpoints, and are refused pods, secrets and every write.

#![cfg(feature = "server")]

use orchestra::api::registry::{ApiError, DeleteOptions, ListOptions};
use orchestra::api::resources::{Endpoints, Pod, Secret, Service};
use orchestra::api::tls::Credentials;
use orchestra::api::{Client, RemoteClient};
use orchestra::cluster::credentials::COMPONENT_CREDENTIALS;
use orchestra::cluster::{Cluster, NodeRuntime};
use orchestra_api::testing;

fn forbidden<T: std::fmt::Debug>(result: Result<T, ApiError>, user: &str) {
    match result {
        Err(ApiError::Forbidden(message)) => {
            assert!(
                message.contains(user),
                "the refusal names {user}: {message}"
            )
        }
        other => panic!("{user} must be refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_and_the_dns_get_least_privileged_credentials_files() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::builder()
        .nodes(1)
        .runtime(NodeRuntime::Fake)
        .proxy(false)
        .data_dir(dir.path())
        .start()
        .await
        .unwrap();
    let admin = cluster.client();
    admin
        .create(&testing::pod("default", "web", "web"))
        .await
        .unwrap();

    // Every file names its component's user, and points at the cluster's API.
    let files: Vec<_> = COMPONENT_CREDENTIALS.iter().map(|c| c.file).collect();
    assert_eq!(
        files,
        [
            "scheduler.credentials",
            "controller-manager.credentials",
            "kube-proxy.credentials",
            "coredns.credentials"
        ]
    );
    for component in COMPONENT_CREDENTIALS {
        let credentials = Credentials::load(&dir.path().join(component.file)).unwrap();
        assert_eq!(credentials.server, cluster.url());
        let user = orchestra::api::tls::identity::user_from_pem(
            credentials.client_certificate.as_deref().unwrap(),
        )
        .unwrap();
        assert_eq!(user.name, component.user, "{}", component.file);
        for group in component.groups {
            assert!(user.groups.iter().any(|g| g == group), "{group}");
        }
    }
    // The scheduler's file works for what the scheduler does.
    let scheduler = RemoteClient::connect_with(
        &Credentials::load(&dir.path().join("scheduler.credentials")).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        scheduler
            .list::<Pod>(None, &ListOptions::default())
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    for (file, user) in [
        ("kube-proxy.credentials", "system:kube-proxy"),
        (
            "coredns.credentials",
            "system:serviceaccount:kube-system:coredns",
        ),
    ] {
        let client =
            RemoteClient::connect_with(&Credentials::load(&dir.path().join(file)).unwrap())
                .await
                .unwrap();
        // What the follower reads, cluster-wide.
        client
            .list::<Service>(None, &ListOptions::default())
            .await
            .unwrap_or_else(|err| panic!("{user} lists Services: {err}"));
        client
            .list::<Endpoints>(None, &ListOptions::default())
            .await
            .unwrap_or_else(|err| panic!("{user} lists Endpoints: {err}"));
        // Nothing else.
        forbidden(
            client.list::<Pod>(None, &ListOptions::default()).await,
            user,
        );
        forbidden(client.get::<Secret>("default", "token").await, user);
        forbidden(
            client
                .create(&testing::pod("default", "planted", "web"))
                .await,
            user,
        );
        forbidden(
            client
                .delete::<Pod>("default", "web", &DeleteOptions::default())
                .await,
            user,
        );
    }
    cluster.shutdown().await;
}
