//! The Endpoints controller over LocalClient in paused time: addresses follow pod readiness,
//! IPs and deletions; ports resolve by name; foreign edits are reverted; endpoints go with
//! their service; selectorless services are left alone.

mod support;

use std::collections::BTreeMap;

use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{
    ConditionStatus, ContainerPort, EndpointAddress, EndpointSubset, Endpoints, Pod, PodCondition,
    PodPhase, PodStatus, Service, ServicePort,
};
use orchestra_api::{Client, IntOrString, LocalClient, ObjectMeta, testing};
use orchestra_controller::SharedInformers;
use orchestra_controller::controllers::EndpointsController;
use orchestra_store::MemStore;
use support::{eventually, start};

fn service(name: &str, selector: Option<&str>) -> Service {
    let mut svc = Service {
        metadata: ObjectMeta::namespaced("ns", name),
        ..Service::default()
    };
    if let Some(app) = selector {
        svc.spec.selector = BTreeMap::from([("app".to_owned(), app.to_owned())]);
    }
    svc.spec.ports = vec![ServicePort {
        name: "http".into(),
        port: 80,
        target_port: Some(IntOrString::String("web".into())),
        ..ServicePort::default()
    }];
    svc
}

fn pod(name: &str) -> Pod {
    let mut pod = testing::pod("ns", name, "web");
    pod.spec.containers[0].ports = vec![ContainerPort {
        name: "web".into(),
        container_port: 8080,
        ..ContainerPort::default()
    }];
    pod
}

async fn set_status<C: Client>(client: &C, name: &str, ip: &str, ready: bool) {
    let mut pod: Pod = client.get("ns", name).await.unwrap();
    pod.status = Some(PodStatus {
        phase: Some(PodPhase::Running),
        pod_ip: ip.into(),
        conditions: vec![PodCondition {
            type_: "Ready".into(),
            status: if ready {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            ..PodCondition::default()
        }],
        ..PodStatus::default()
    });
    client.update_status(&pod).await.unwrap();
}

/// The ready and not-ready IPs, and the ports, of the endpoints `name`.
async fn endpoints_of<C: Client>(
    client: &C,
    name: &str,
) -> Option<(Vec<String>, Vec<String>, Vec<i32>)> {
    let endpoints: Endpoints = client.get("ns", name).await.ok()?;
    let ips = |f: fn(&EndpointSubset) -> &Vec<EndpointAddress>| {
        let mut ips: Vec<String> = endpoints
            .subsets
            .iter()
            .flat_map(|s| f(s).iter().map(|a| a.ip.clone()))
            .collect();
        ips.sort();
        ips
    };
    let ports = endpoints
        .subsets
        .iter()
        .flat_map(|s| s.ports.iter().map(|p| p.port))
        .collect();
    Some((
        ips(|s| &s.addresses),
        ips(|s| &s.not_ready_addresses),
        ports,
    ))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test(start_paused = true)]
async fn endpoints_follow_pods_and_their_service() {
    let client = LocalClient::new(MemStore::new());
    client.create(&service("web", Some("web"))).await.unwrap();
    client.create(&service("manual", None)).await.unwrap();
    for name in ["a", "b", "c"] {
        client.create(&pod(name)).await.unwrap();
    }
    set_status(&client, "a", "10.0.0.1", true).await;
    set_status(&client, "b", "10.0.0.2", false).await;
    // c has no IP yet: not listed.
    let informers = SharedInformers::new(client.clone());
    let running = start(EndpointsController::controller(&informers));

    let expect =
        |ready: &[&str], not_ready: &[&str]| Some((strings(ready), strings(not_ready), vec![8080]));
    eventually("initial endpoints", || async {
        endpoints_of(&client, "web").await == expect(&["10.0.0.1"], &["10.0.0.2"])
    })
    .await;

    set_status(&client, "c", "10.0.0.3", true).await;
    set_status(&client, "b", "10.0.0.2", true).await;
    eventually("readiness followed", || async {
        endpoints_of(&client, "web").await == expect(&["10.0.0.1", "10.0.0.2", "10.0.0.3"], &[])
    })
    .await;

    client
        .delete::<Pod>("ns", "a", &DeleteOptions::default())
        .await
        .unwrap();
    let mut relabelled: Pod = client.get("ns", "c").await.unwrap();
    relabelled
        .metadata
        .labels
        .insert("app".into(), "other".into());
    client.update(&relabelled).await.unwrap();
    eventually("deleted and relabelled pods dropped", || async {
        endpoints_of(&client, "web").await == expect(&["10.0.0.2"], &[])
    })
    .await;

    // Someone else's edit is reverted.
    let mut tampered: Endpoints = client.get("ns", "web").await.unwrap();
    tampered.subsets.clear();
    client.update(&tampered).await.unwrap();
    eventually("edit reverted", || async {
        endpoints_of(&client, "web").await == expect(&["10.0.0.2"], &[])
    })
    .await;

    assert!(
        endpoints_of(&client, "manual").await.is_none(),
        "no endpoints managed for a service without a selector"
    );

    client
        .delete::<Service>("ns", "web", &DeleteOptions::default())
        .await
        .unwrap();
    eventually("endpoints deleted with the service", || async {
        endpoints_of(&client, "web").await.is_none()
    })
    .await;
    running.stop().await;
}
