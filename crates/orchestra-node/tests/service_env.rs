//! The agent gives containers the services of their namespace as environment variables (and
//! `enableServiceLinks: false` turns them off), and the cluster DNS settings; FakeRuntime
//! records the configuration it was given, in paused time.

use std::time::Duration;

use orchestra_api::resources::{
    Container, EnvVar, Pod, PodSpec, Service, ServicePort, ServiceSpec,
};
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_node::RuntimeDriver;
use orchestra_node::agent::env::ClusterDnsSettings;
use orchestra_node::agent::{Agent, AgentConfig};
use orchestra_node::fake::FakeRuntime;
use orchestra_store::MemStore;
use tokio::time::sleep;

fn service(namespace: &str, name: &str, ip: &str) -> Service {
    Service {
        metadata: ObjectMeta::namespaced(namespace, name),
        spec: ServiceSpec {
            cluster_ip: ip.into(),
            ports: vec![ServicePort {
                name: "redis".into(),
                port: 6379,
                ..ServicePort::default()
            }],
            ..ServiceSpec::default()
        },
        status: None,
    }
}

fn pod(name: &str, links: Option<bool>) -> Pod {
    Pod {
        metadata: ObjectMeta::namespaced("shop", name),
        spec: PodSpec {
            node_name: "node-1".into(),
            enable_service_links: links,
            containers: vec![Container {
                name: "main".into(),
                image: "app:1".into(),
                env: vec![EnvVar {
                    name: "CART_DB_SERVICE_PORT".into(),
                    value: Some("override".into()),
                    ..EnvVar::default()
                }],
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

/// The environment the runtime got for `pod`'s container, once it exists.
async fn env_of(runtime: &FakeRuntime, pod: &Pod) -> Vec<(String, String)> {
    for _ in 0..100 {
        let state = runtime.list().await.unwrap();
        let sandbox = state
            .sandboxes
            .iter()
            .find(|s| s.config.name == pod.metadata.name);
        if let Some(sandbox) = sandbox
            && let Some(container) = state.containers.iter().find(|c| c.sandbox == sandbox.id)
        {
            return container.config.env.clone();
        }
        sleep(Duration::from_millis(100)).await;
    }
    panic!("no container for {}", pod.metadata.name);
}

fn value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    // The last one wins, as in the process's environment.
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(start_paused = true)]
async fn containers_get_service_links_and_dns_settings() {
    let client = LocalClient::new(MemStore::new());
    for namespace in ["shop", "other"] {
        let ns = orchestra_api::resources::Namespace {
            metadata: ObjectMeta::named(namespace),
            ..Default::default()
        };
        client.create(&ns).await.ok();
    }
    client
        .create(&service("shop", "cart-db", "127.2.0.7"))
        .await
        .unwrap();
    client
        .create(&service("other", "elsewhere", "127.2.0.9"))
        .await
        .unwrap();
    let runtime = FakeRuntime::new();
    let mut config = AgentConfig::new("node-1");
    config.cluster_dns = Some(ClusterDnsSettings {
        server: "127.0.0.1:5353".parse().unwrap(),
        domain: "cluster.local".into(),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let agent = tokio::spawn(
        Agent::new(client.clone(), runtime.clone(), config).run(async {
            let _ = stopped.await;
        }),
    );

    let linked = client.create(&pod("linked", None)).await.unwrap();
    let env = env_of(&runtime, &linked).await;
    assert_eq!(value(&env, "CART_DB_SERVICE_HOST"), Some("127.2.0.7"));
    assert_eq!(value(&env, "CART_DB_PORT_6379_TCP_ADDR"), Some("127.2.0.7"));
    assert_eq!(
        value(&env, "CART_DB_SERVICE_PORT"),
        Some("override"),
        "the container's own variable wins"
    );
    assert_eq!(
        value(&env, "ELSEWHERE_SERVICE_HOST"),
        None,
        "other namespace"
    );
    assert_eq!(value(&env, "ORCHESTRA_DNS_SERVER"), Some("127.0.0.1:5353"));
    assert_eq!(
        value(&env, "ORCHESTRA_DNS_SEARCH"),
        Some("shop.svc.cluster.local svc.cluster.local cluster.local")
    );
    assert_eq!(value(&env, "ORCHESTRA_DNS_OPTIONS"), Some("ndots:5"));

    let unlinked = client.create(&pod("unlinked", Some(false))).await.unwrap();
    let env = env_of(&runtime, &unlinked).await;
    assert_eq!(value(&env, "CART_DB_SERVICE_HOST"), None);
    assert_eq!(value(&env, "ORCHESTRA_DNS_SERVER"), Some("127.0.0.1:5353"));

    let _ = stop.send(());
    agent.await.unwrap();
}
