//! `Cluster` (what `orchestra cluster` runs) authorizes like `orchestra server`: its API
//! refuses a user without a role, and its in-process components act as their own users
//! through the Node authorizer and RBAC with the built-in roles. The scheduler, the
//! controllers and the node agents (`system:kube-scheduler`, `system:kube-controller-manager`,
//! `system:node:NAME`) run a Deployment to Ready with none of them refused, and the audit log
//! names each. The service proxy (`system:kube-proxy`) and the cluster DNS (the service
//! account `kube-system/coredns`) serve a Service through their read-only roles, and their
//! identities may write nothing.

#![cfg(feature = "server")]

mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use orchestra::api::registry::{DeleteOptions, ListOptions};
use orchestra::api::resources::{ClusterRole, Endpoints, Pod, Secret, Service};
use orchestra::api::tls::{ClusterPki, Credentials};
use orchestra::api::{Client, RemoteClient};
use orchestra::cluster::{Cluster, NodeRuntime};
use orchestra_api::testing;
use support::secure::{Audit, ready_pods, wait_for, web_deployment};

/// A client of `cluster`'s API as `user` in `groups`, with a certificate from the cluster's CA
/// (kept in its data directory `dir`).
async fn connect_as(cluster: &Cluster, dir: &Path, user: &str, groups: &[&str]) -> RemoteClient {
    let pki = ClusterPki::load_or_create(dir, &[]).unwrap();
    let certified = pki.issue_client(user, groups).unwrap();
    RemoteClient::connect_with(&Credentials {
        client_certificate: Some(certified.cert_pem.clone()),
        client_key: Some(certified.key_pem.clone()),
        ..cluster.credentials().clone()
    })
    .await
    .unwrap()
}

/// A secure `Cluster` of `nodes` fake nodes keeping its data in `dir`; with `services`, the
/// service proxy and the cluster DNS (on a free loopback port) run too.
async fn start(dir: &Path, nodes: usize, services: bool) -> Cluster {
    let builder = Cluster::builder()
        .nodes(nodes)
        .runtime(NodeRuntime::Fake)
        .proxy(services)
        .data_dir(dir);
    let builder = if services {
        builder.dns(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    } else {
        builder
    };
    builder.start().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_components_act_as_themselves_and_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(dir.path(), 2, false).await;

    // A certificate from the cluster CA for a user no role names: authenticated, not allowed.
    let stranger = connect_as(&cluster, dir.path(), "mallory", &[]).await;
    let refused = stranger
        .list::<Pod>(Some("default"), &ListOptions::default())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), 403, "{refused}");
    assert!(refused.to_string().contains("\"mallory\""), "{refused}");

    let admin = RemoteClient::connect_with(cluster.credentials())
        .await
        .unwrap();
    admin.create(&web_deployment(3)).await.unwrap();
    wait_for("the Deployment's 3 pods Running and Ready", || async {
        (ready_pods(&admin, None).await? == 3).then_some(())
    })
    .await;
    cluster.shutdown().await;

    let audit = Audit::read(&dir.path().join("audit.log"));
    assert!(audit.allowed("system:kube-controller-manager", "create", "replicasets"));
    assert!(audit.allowed("system:kube-controller-manager", "create", "pods"));
    assert!(
        audit.allowed("system:kube-scheduler", "create", "pods"),
        "bindings"
    );
    assert!(
        audit.allowed("system:node:node-1", "create", "nodes")
            && audit.allowed("system:node:node-2", "create", "nodes")
    );
    let denied = audit.unexpected_denials(|user| user != "mallory");
    assert!(
        denied.is_empty(),
        "the built-in roles let every component do its job: {denied:#?}"
    );
}

/// The addresses `server` answers for an A query of `name` (none if it does not answer).
async fn resolve(server: SocketAddr, name: &str) -> Vec<Ipv4Addr> {
    let mut query = Message::new(7, MessageType::Query, OpCode::Query);
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    socket
        .send_to(&query.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buffer = vec![0; 4096];
    // One unanswered query is asked again by the caller's poll.
    let Ok(Ok(len)) = tokio::time::timeout(Duration::from_secs(2), socket.recv(&mut buffer)).await
    else {
        return vec![];
    };
    Message::from_vec(&buffer[..len])
        .unwrap()
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

const PROXY_USER: &str = "system:kube-proxy";
const DNS_USER: &str = "system:serviceaccount:kube-system:coredns";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_and_the_dns_read_services_as_themselves_and_may_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = start(dir.path(), 1, true).await;
    let admin = RemoteClient::connect_with(cluster.credentials())
        .await
        .unwrap();
    // A Service without a selector and its Endpoints, written by the admin.
    let service: Service = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    let service = admin.create(&service).await.unwrap();
    let cluster_ip: Ipv4Addr = service.spec.cluster_ip.parse().unwrap();
    let endpoints: Endpoints = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 8080}]}]
    }))
    .unwrap();
    admin.create(&endpoints).await.unwrap();

    // The proxy read both: it listens for the Service, which has a backend.
    let proxy = cluster.proxy().unwrap().clone();
    wait_for("the proxy to serve default/web", || {
        let proxy = proxy.clone();
        async move {
            let listening = proxy.listening().await;
            listening
                .iter()
                .any(|(key, addrs)| {
                    key.namespace == "default" && key.name == "web" && !addrs.is_empty()
                })
                .then_some(())
        }
    })
    .await;
    // The DNS read the Service: its name resolves to the ClusterIP.
    let dns = cluster.dns_addr().unwrap();
    wait_for(
        "the DNS to answer web.default.svc.cluster.local",
        || async move {
            (resolve(dns, "web.default.svc.cluster.local.").await == [cluster_ip]).then_some(())
        },
    )
    .await;

    // Their identities, over the API: reading Services and Endpoints, nothing else.
    for (user, groups) in [
        (PROXY_USER, &[][..]),
        // A certificate names one group (see `TlsError::TooManyGroups`).
        (DNS_USER, &["system:serviceaccounts"][..]),
    ] {
        let client = connect_as(&cluster, dir.path(), user, groups).await;
        let services = client
            .list::<Service>(None, &ListOptions::default())
            .await
            .unwrap_or_else(|err| panic!("{user} lists services: {err}"));
        assert!(services.items.iter().any(|s| s.metadata.name == "web"));
        client
            .list::<Endpoints>(None, &ListOptions::default())
            .await
            .unwrap_or_else(|err| panic!("{user} lists endpoints: {err}"));
        let refusals = [
            client
                .create(&testing::pod("default", "intruder", "web"))
                .await
                .map(|_| ())
                .unwrap_err(),
            client
                .delete::<Service>("default", "web", &DeleteOptions::default())
                .await
                .map(|_| ())
                .unwrap_err(),
            client.update(&endpoints).await.map(|_| ()).unwrap_err(),
            client
                .list::<Pod>(None, &ListOptions::default())
                .await
                .map(|_| ())
                .unwrap_err(),
            client
                .get::<Secret>("default", "token")
                .await
                .map(|_| ())
                .unwrap_err(),
        ];
        for refused in refusals {
            assert_eq!(refused.code(), 403, "{user}: {refused}");
            assert!(refused.to_string().contains(user), "{refused}");
        }
    }
    cluster.shutdown().await;

    // In the process, neither was ever refused; over the API, the refusals were audited.
    let audit = Audit::read(&dir.path().join("audit.log"));
    for user in [PROXY_USER, DNS_USER] {
        let denied = audit.unexpected_denials(|who| who == user);
        assert!(
            denied
                .iter()
                .all(|e| !matches!(e["verb"].as_str(), Some("list" | "watch"))
                    || e["resource"] == "pods"),
            "{user} may follow services and endpoints: {denied:#?}"
        );
        assert!(
            denied
                .iter()
                .any(|e| e["verb"] == "create" && e["resource"] == "pods"),
            "{user}'s refused write is audited: {denied:#?}"
        );
    }

    // The control: with their roles emptied (and kept so across the restart), the same
    // cluster's proxy and DNS are refused their watches, so it is these identities, through
    // these roles, that the in-process components use.
    let cluster = start(dir.path(), 1, false).await;
    let admin = RemoteClient::connect_with(cluster.credentials())
        .await
        .unwrap();
    for role in ["system:node-proxier", "system:coredns"] {
        let mut emptied: ClusterRole = admin.get("", role).await.unwrap();
        emptied.rules.clear();
        emptied.metadata.annotations.insert(
            "rbac.authorization.kubernetes.io/autoupdate".into(),
            "false".into(),
        );
        admin.update(&emptied).await.unwrap();
    }
    cluster.shutdown().await;
    let cluster = start(dir.path(), 1, true).await;
    let log = dir.path().join("audit.log");
    wait_for(
        "the proxy's and the DNS's refused lists in the audit log",
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let refused = |user: &str| {
                text.lines().any(|line| {
                    line.contains(&format!("\"user\":\"{user}\""))
                        && line.contains("\"verb\":\"list\"")
                        && line.contains("\"allowed\":false")
                })
            };
            std::future::ready((refused(PROXY_USER) && refused(DNS_USER)).then_some(()))
        },
    )
    .await;
    cluster.shutdown().await;
    let audit = Audit::read(&log);
    for user in [PROXY_USER, DNS_USER] {
        for resource in ["services", "endpoints"] {
            assert!(
                audit.0.iter().any(|e| e["user"] == user
                    && e["verb"] == "list"
                    && e["resource"] == resource
                    && e["allowed"] == false),
                "{user} was refused listing {resource} without its role"
            );
        }
    }
}
