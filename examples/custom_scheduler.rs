//! # `custom_scheduler`: your own plugins in the scheduling loop
//!
//! A custom scheduler is the default profile plus a few plugins of your own, registered
//! under a `schedulerName` of your choosing; pods ask for it with `spec.schedulerName`. This
//! example writes two plugins in a few dozen lines:
//!
//! - `PreferSsd` (Score): prefers nodes labelled `disk: ssd`;
//! - `KeepOffGpu` (Filter): keeps pods that do not ask for a GPU (label `needs-gpu: "true"`)
//!   off nodes labelled `gpu: "true"`, so that GPU nodes stay free for GPU work.
//!
//! It runs the scheduling loop ([`SchedulerLoop`]) over an in-process API ([`LocalClient`]
//! over a [`MemStore`]) with four nodes, creates pods for the custom scheduler and one for the
//! default scheduler, prints where each landed, and checks the plugins' effect: every custom
//! pod is on the SSD node without a GPU, although the GPU node has SSDs too and more room.
//! It exits non-zero if a check fails.
//!
//! ```text
//! cargo run --example custom_scheduler
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use orchestra::api::meta::ObjectMeta;
use orchestra::api::registry::ListOptions;
use orchestra::api::resources::{Container, Node, NodeStatus, Pod, PodSpec, ResourceRequirements};
use orchestra::api::{Client, LocalClient};
use orchestra::sched::framework::{CycleState, Extensions, FilterPlugin, ScorePlugin, Status};
use orchestra::sched::plugins::helpers::default_normalize;
use orchestra::sched::run::SchedulerLoop;
use orchestra::sched::{NodeInfo, Plugin, PodInfo, Profiles, plugins};
use orchestra::store::MemStore;

/// The scheduler name pods use to ask for the custom profile.
const CUSTOM: &str = "ssd-first";

/// Score: nodes labelled `disk: ssd` score 100, others 0.
struct PreferSsd;

impl Plugin for PreferSsd {
    fn name(&self) -> &'static str {
        "PreferSsd"
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new().score(self)
    }
}

impl ScorePlugin for PreferSsd {
    fn score(&self, _: &CycleState, _: &PodInfo, node: &NodeInfo) -> Result<i64, Status> {
        Ok(i64::from(node.label("disk").is_some_and(|d| &**d == "ssd")))
    }
    fn normalize(
        &self,
        _: &CycleState,
        _: &PodInfo,
        _: &[&NodeInfo],
        scores: &mut [i64],
    ) -> Status {
        // The best node gets 100; the framework checks the range.
        default_normalize(scores, false);
        Status::success()
    }
}

/// Filter: only pods labelled `needs-gpu: "true"` may go to nodes labelled `gpu: "true"`.
struct KeepOffGpu;

impl Plugin for KeepOffGpu {
    fn name(&self) -> &'static str {
        "KeepOffGpu"
    }
    fn extensions(self: Arc<Self>) -> Extensions {
        Extensions::new().filter(self)
    }
}

impl FilterPlugin for KeepOffGpu {
    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let gpu_node = node.label("gpu").is_some_and(|g| &**g == "true");
        let wants_gpu = pod
            .pod
            .metadata
            .labels
            .get("needs-gpu")
            .is_some_and(|v| v == "true");
        if gpu_node && !wants_gpu {
            // A static reason allocates nothing; it is counted in FailedScheduling events.
            Status::unschedulable("node(s) are kept for GPU pods")
        } else {
            Status::success()
        }
    }
}

fn node(name: &str, cpu: &str, labels: &[(&str, &str)]) -> Node {
    let mut metadata = ObjectMeta::named(name);
    for (k, v) in labels {
        metadata.labels.insert((*k).into(), (*v).into());
    }
    Node {
        metadata,
        status: Some(NodeStatus {
            allocatable: [
                ("cpu".to_owned(), cpu.parse().expect("a valid quantity")),
                (
                    "memory".to_owned(),
                    "16Gi".parse().expect("a valid quantity"),
                ),
                ("pods".to_owned(), "110".parse().expect("a valid quantity")),
            ]
            .into(),
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}

fn pod(name: &str, scheduler: &str, labels: &[(&str, &str)]) -> Pod {
    let mut metadata = ObjectMeta::namespaced("default", name);
    for (k, v) in labels {
        metadata.labels.insert((*k).into(), (*v).into());
    }
    Pod {
        metadata,
        spec: PodSpec {
            scheduler_name: scheduler.into(),
            containers: vec![Container {
                name: "app".into(),
                image: "nginx".into(),
                resources: ResourceRequirements {
                    requests: [("cpu".to_owned(), "500m".parse().expect("a valid quantity"))]
                        .into(),
                    ..ResourceRequirements::default()
                },
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        status: None,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("custom_scheduler: {why}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // The profiles: the default one, and the default plugins plus ours under CUSTOM.
    let custom = plugins::default_profile_named(CUSTOM)?
        .with_plugin(Arc::new(PreferSsd), 10)?
        .with_plugin(Arc::new(KeepOffGpu), 1)?;
    let mut profiles = Profiles::new();
    profiles.insert(plugins::default_profile());
    profiles.insert(custom);

    let client = LocalClient::new(MemStore::new());
    client
        .create(&node("hdd-1", "8", &[("disk", "hdd")]))
        .await?;
    client
        .create(&node("hdd-2", "8", &[("disk", "hdd")]))
        .await?;
    client
        .create(&node("ssd-1", "4", &[("disk", "ssd")]))
        .await?;
    // SSDs too, and the most room: without KeepOffGpu, custom pods would go here.
    client
        .create(&node("gpu-1", "16", &[("disk", "ssd"), ("gpu", "true")]))
        .await?;

    let scheduler = SchedulerLoop::new(client.clone(), profiles)?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(scheduler.run(async move {
        let _ = stopped.await;
    }));

    let mut custom_pods = Vec::new();
    for i in 0..4 {
        let name = format!("web-{i}");
        client
            .create(&pod(&name, CUSTOM, &[("app", "web")]))
            .await?;
        custom_pods.push(name);
    }
    client
        .create(&pod("trainer", CUSTOM, &[("needs-gpu", "true")]))
        .await?;
    client.create(&pod("plain", "", &[])).await?;

    // Wait (at most 10 s) for every pod to be bound.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let pods = loop {
        let pods = client
            .list::<Pod>(Some("default"), &ListOptions::default())
            .await?
            .items;
        if pods.iter().all(|p| !p.spec.node_name.is_empty()) {
            break pods;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("pods were not all bound within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let _ = stop.send(());
    task.await?;

    println!("{:<10} {:<18} node", "pod", "schedulerName");
    for p in &pods {
        let scheduler = match p.spec.scheduler_name.as_str() {
            "" => "default-scheduler",
            name => name,
        };
        println!(
            "{:<10} {:<18} {}",
            p.metadata.name, scheduler, p.spec.node_name
        );
    }

    let node_of = |name: &str| {
        pods.iter()
            .find(|p| p.metadata.name == name)
            .map(|p| p.spec.node_name.clone())
            .unwrap_or_default()
    };
    for name in &custom_pods {
        let node = node_of(name);
        if node != "ssd-1" {
            return Err(
                format!("{name} landed on {node}, expected ssd-1 (PreferSsd, KeepOffGpu)").into(),
            );
        }
    }
    // The GPU pod may use the GPU node; PreferSsd ties it with ssd-1, and the default
    // plugins prefer the emptier gpu-1.
    if node_of("trainer") != "gpu-1" {
        return Err(format!("trainer landed on {}, expected gpu-1", node_of("trainer")).into());
    }
    println!("ok: the custom pods went to the SSD node and stayed off the GPU node");
    Ok(())
}
