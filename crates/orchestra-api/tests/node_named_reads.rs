//! A node's list and watch of one Secret or ConfigMap by the field selector
//! `metadata.name=NAME`, over the API server's gRPC and REST APIs with the node's client
//! certificate and node restriction: allowed for an object a pod bound to the node references (as a
//! `get` of it would be), Forbidden for another node's pod's Secret and for an unnamed list.

use std::sync::Arc;

use orchestra_api::auth::node::NodeAuthorizer;
use orchestra_api::registry::{ApiError, DynRegistry, ListOptions, WatchOptions};
use orchestra_api::resources::{
    ConfigMap, ConfigMapVolumeSource, Pod, Secret, SecretVolumeSource, Volume,
};
use orchestra_api::server::{ApiServer, Authentication, ServerOptions};
use orchestra_api::tls::{ClusterPki, Credentials};
use orchestra_api::watcher::Event;
use orchestra_api::{
    Client, FieldSelector, LocalClient, ObjectMeta, Registry, RemoteClient, testing,
};
use orchestra_store::MemStore;

/// Pod `name` on `node` mounting ConfigMap `config_map` or Secret `secret`.
fn pod(name: &str, node: &str, config_map: Option<&str>, secret: Option<&str>) -> Pod {
    let mut pod = testing::pod("shop", name, "web");
    pod.spec.node_name = node.into();
    pod.spec.volumes.push(Volume {
        name: "v".into(),
        config_map: config_map.map(|name| ConfigMapVolumeSource {
            name: name.into(),
            ..ConfigMapVolumeSource::default()
        }),
        secret: secret.map(|name| SecretVolumeSource {
            secret_name: name.into(),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    });
    pod
}

/// The status code of a GET of `path` over HTTPS with the node's certificate.
async fn rest_get(addr: std::net::SocketAddr, node: &Credentials, path: &str) -> u16 {
    let identity = node
        .client_certificate
        .as_deref()
        .zip(node.client_key.as_deref());
    let config = orchestra_api::tls::client_config(&node.certificate_authority, identity).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    sender
        .send_request(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn forbidden<T: std::fmt::Debug>(result: Result<T, ApiError>, what: &str) {
    match result {
        Err(ApiError::Forbidden(message)) => {
            assert!(message.contains("system:node:n1"), "{message}")
        }
        other => panic!("{what}: {other:?}, not Forbidden"),
    }
}

#[tokio::test]
async fn a_node_lists_and_watches_by_name_only_what_its_pods_reference() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = ClusterPki::load_or_create(tmp.path(), &[]).unwrap();
    let registry = Registry::new(MemStore::new());
    let local = LocalClient::from_registry(registry.clone());
    let ours = pod("web", "n1", Some("app"), None);
    let theirs = pod("other", "n2", None, Some("theirs"));
    for pod in [&ours, &theirs] {
        local.create(pod).await.unwrap();
    }
    local
        .create(&ConfigMap {
            metadata: ObjectMeta::namespaced("shop", "app"),
            ..ConfigMap::default()
        })
        .await
        .unwrap();
    local
        .create(&Secret {
            metadata: ObjectMeta::namespaced("shop", "theirs"),
            ..Secret::default()
        })
        .await
        .unwrap();
    let authorizer = NodeAuthorizer::new();
    authorizer.apply(&Event::Restarted(vec![Arc::new(ours), Arc::new(theirs)]));
    let options = ServerOptions {
        tls: Some(
            orchestra_api::tls::server_config(
                &pki.server().cert_pem,
                &pki.server().key_pem,
                Some(pki.ca_pem()),
            )
            .unwrap(),
        ),
        // Client certificates identify their users (without it, every user is the admin).
        authentication: Some(Authentication::default()),
        authorizer: Some(Arc::new(authorizer)),
        ..ServerOptions::default()
    };
    let running = ApiServer::with_options(DynRegistry::new(registry), options)
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let identity = pki.issue_node("n1").unwrap();
    let credentials = Credentials {
        server: running.url(),
        certificate_authority: pki.ca_pem().to_owned(),
        client_certificate: Some(identity.cert_pem),
        client_key: Some(identity.key_pem),
        token: None,
    };
    let node = RemoteClient::connect_with(&credentials).await.unwrap();

    let by_name = |name: &str| FieldSelector::equals("metadata.name", name);
    let listed = node
        .list::<ConfigMap>(Some("shop"), &ListOptions::fields(by_name("app")))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let watch = |name: &str| WatchOptions {
        field_selector: by_name(name),
        resource_version: Some(listed.resource_version.clone()),
        ..WatchOptions::default()
    };
    let events = node.watch::<ConfigMap>(Some("shop"), &watch("app")).await;
    drop(events.expect("a watch of the referenced ConfigMap by name"));

    forbidden(
        node.list::<Secret>(Some("shop"), &ListOptions::fields(by_name("theirs")))
            .await,
        "a list of another node's pod's Secret",
    );
    forbidden(
        node.watch::<Secret>(Some("shop"), &watch("theirs"))
            .await
            .map(drop),
        "a watch of another node's pod's Secret",
    );
    forbidden(
        node.list::<ConfigMap>(Some("shop"), &ListOptions::default())
            .await,
        "an unnamed list",
    );

    // The same over REST: the name comes from the query's fieldSelector.
    let addr = running.local_addr();
    let path = |kind: &str, query: &str| format!("/api/v1/namespaces/shop/{kind}?{query}");
    let get = async |path: String| rest_get(addr, &credentials, &path).await;
    assert_eq!(
        get(path("configmaps", "fieldSelector=metadata.name%3Dapp")).await,
        200
    );
    let watch_app = path("configmaps", "watch=true&fieldSelector=metadata.name%3Dapp");
    assert_eq!(get(watch_app).await, 200);
    assert_eq!(
        get(path("secrets", "fieldSelector=metadata.name%3Dtheirs")).await,
        403
    );
    assert_eq!(get(path("configmaps", "")).await, 403);
}
