//! A custom kind and its controller, in a few dozen lines, running in-process next to the
//! built-in Deployment, ReplicaSet and Endpoints controllers.
//!
//! `EchoService` (`example.orchestra.dev/v1`) asks for an echo server: the controller keeps a
//! Deployment and a Service for it (both owned through ownerReferences) and reports the ready
//! endpoints in its status. A stand-in kubelet makes pods ready, since no node runs here.
//!
//! Run: `cargo run -p orchestra-controller --example custom_controller`

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orchestra_api::registry::ListOptions;
use orchestra_api::resources::{
    ConditionStatus, Container, Deployment, Endpoints, Pod, PodCondition, PodPhase, PodStatus,
    Service, ServicePort,
};
use orchestra_api::{
    ApiError, Client, IntOrString, LabelSelector, LocalClient, ObjectMeta, OwnerReference, Resource,
};
use orchestra_controller::controllers::{
    DeploymentController, EndpointsController, ReplicaSetController,
};
use orchestra_controller::{Action, Context, Controller, Reconciler, SharedInformers};
use orchestra_store::MemStore;
use serde::{Deserialize, Serialize};

/// The custom kind.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct EchoService {
    metadata: ObjectMeta,
    spec: EchoSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<EchoStatus>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct EchoSpec {
    replicas: i32,
    message: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct EchoStatus {
    ready_endpoints: usize,
}

impl Resource for EchoService {
    const API_VERSION: &'static str = "example.orchestra.dev/v1";
    const KIND: &'static str = "EchoService";
    const PLURAL: &'static str = "echoservices";
    const NAMESPACED: bool = true;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The controller: desired Deployment and Service from the EchoService, created or updated.
struct EchoController<C> {
    client: C,
    endpoints: orchestra_api::reflector::Store<Endpoints>,
}

#[async_trait]
impl<C: Client> Reconciler for EchoController<C> {
    type Object = EchoService;
    type Error = ApiError;

    async fn reconcile(&self, echo: Arc<EchoService>, _ctx: &Context) -> Result<Action, ApiError> {
        let (ns, name) = (&echo.metadata.namespace, &echo.metadata.name);
        let owner = OwnerReference {
            api_version: EchoService::API_VERSION.into(),
            kind: EchoService::KIND.into(),
            name: name.clone(),
            uid: echo.metadata.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        let labels = BTreeMap::from([("echo".to_owned(), name.clone())]);
        let meta = ObjectMeta {
            labels: labels.clone(),
            owner_references: vec![owner],
            ..ObjectMeta::namespaced(ns, name)
        };

        let mut deployment = Deployment {
            metadata: meta.clone(),
            ..Deployment::default()
        };
        deployment.spec.replicas = Some(echo.spec.replicas);
        deployment.spec.selector = LabelSelector {
            match_labels: labels.clone(),
            ..Default::default()
        };
        deployment.spec.template.metadata.labels = labels.clone();
        deployment.spec.template.spec.containers = vec![Container {
            name: "echo".into(),
            image: "hashicorp/http-echo".into(),
            args: vec![format!("-text={}", echo.spec.message)],
            ..Container::default()
        }];
        match self.client.get::<Deployment>(ns, name).await {
            Ok(mut current)
                if current.spec.replicas != deployment.spec.replicas
                    || current.spec.template.spec.containers[0].args
                        != deployment.spec.template.spec.containers[0].args =>
            {
                current.spec.replicas = deployment.spec.replicas;
                current.spec.template.spec.containers = deployment.spec.template.spec.containers;
                self.client.update(&current).await?;
            }
            Ok(_) => {}
            Err(err) if err.is_not_found() => drop(self.client.create(&deployment).await?),
            Err(err) => return Err(err),
        }

        if let Err(err) = self.client.get::<Service>(ns, name).await {
            if !err.is_not_found() {
                return Err(err);
            }
            let mut service = Service {
                metadata: meta,
                ..Service::default()
            };
            service.spec.selector = labels;
            service.spec.ports = vec![ServicePort {
                port: 80,
                target_port: Some(IntOrString::Int(5678)),
                ..ServicePort::default()
            }];
            self.client.create(&service).await?;
        }

        let ready = self
            .endpoints
            .get(ns, name)
            .map_or(0, |e| e.subsets.iter().map(|s| s.addresses.len()).sum());
        let status = EchoStatus {
            ready_endpoints: ready,
        };
        if echo.status.as_ref() != Some(&status) {
            let mut updated = (*echo).clone();
            updated.status = Some(status);
            self.client.update_status(&updated).await?;
        }
        Ok(Action::await_change())
    }
}

/// Makes every pod running and ready with an IP, as a node agent would.
async fn stand_in_kubelet(client: LocalClient) {
    let mut next_ip = 1;
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let Ok(pods) = client.list::<Pod>(None, &ListOptions::default()).await else {
            continue;
        };
        for mut pod in pods.items.into_iter().filter(|p| p.status.is_none()) {
            pod.status = Some(PodStatus {
                phase: Some(PodPhase::Running),
                pod_ip: format!("10.244.0.{next_ip}"),
                conditions: vec![PodCondition {
                    type_: "Ready".into(),
                    status: ConditionStatus::True,
                    ..PodCondition::default()
                }],
                ..PodStatus::default()
            });
            next_ip += 1;
            let _ = client.update_status(&pod).await;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = LocalClient::new(MemStore::new());
    let informers = SharedInformers::new(client.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };

    // Events on the owned Deployment, Service and Endpoints reach their EchoService.
    let echo = Controller::new(
        EchoController {
            client: client.clone(),
            endpoints: informers.store::<Endpoints>(),
        },
        &informers,
    )
    .owns::<Deployment>()
    .owns::<Service>()
    .watches::<Endpoints, _>(|e| vec![orchestra_api::reflector::ObjectKey::of(e)]);
    let tasks = vec![
        tokio::spawn(echo.run(until_stopped())),
        tokio::spawn(DeploymentController::controller(&informers).run(until_stopped())),
        tokio::spawn(ReplicaSetController::controller(&informers).run(until_stopped())),
        tokio::spawn(EndpointsController::controller(&informers).run(until_stopped())),
    ];
    let kubelet = tokio::spawn(stand_in_kubelet(client.clone()));

    client
        .create(&EchoService {
            metadata: ObjectMeta::namespaced("default", "hello"),
            spec: EchoSpec {
                replicas: 3,
                message: "hello from orchestra".into(),
            },
            status: None,
        })
        .await?;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let echo: EchoService = client.get("default", "hello").await?;
        let ready = echo.status.map_or(0, |s| s.ready_endpoints);
        println!("EchoService default/hello: {ready}/3 endpoints ready");
        if ready == 3 {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("the echo service did not become ready in 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let endpoints: Endpoints = client.get("default", "hello").await?;
    for address in endpoints.subsets.iter().flat_map(|s| &s.addresses) {
        let pod = address.target_ref.as_ref().map_or("?", |r| r.name.as_str());
        println!("  {} (pod {pod})", address.ip);
    }

    kubelet.abort();
    stop.send(true)?;
    for task in tasks {
        task.await?;
    }
    informers.shut_down();
    Ok(())
}
