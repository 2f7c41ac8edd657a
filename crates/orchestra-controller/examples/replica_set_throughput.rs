//! Measures the ReplicaSet controller through LocalClient over MemStore: `N` replica sets of
//! `R` replicas each are created at once; prints one JSON line with the time until every pod
//! exists and every status says so, and the pod creations per second.
//!
//! Run: `cargo run --release -p orchestra-controller --example replica_set_throughput -- 1000 10 8`
//! (replica sets, replicas each, workers). The `orchestra bench controller` subcommand is meant
//! to wrap this measurement.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use orchestra_api::resources::{Pod, ReplicaSet};
use orchestra_api::{Client, LabelSelector, LocalClient, ObjectMeta, testing};
use orchestra_controller::SharedInformers;
use orchestra_controller::controllers::ReplicaSetController;
use orchestra_store::MemStore;

fn arg(args: &[String], at: usize, default: usize) -> Result<usize, String> {
    match args.get(at) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("argument {at} must be a whole number, not {text:?}")),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let sets = arg(&args, 1, 1000)?;
    let replicas = arg(&args, 2, 10)?;
    let workers = arg(&args, 3, 8)?;

    let client = LocalClient::new(MemStore::new());
    let informers = SharedInformers::new(client.clone());
    let controller = ReplicaSetController::controller(&informers).concurrency(workers);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(controller.run(async move {
        let _ = stopped.await;
    }));
    let pods = informers.store::<Pod>();
    let statuses = informers.store::<ReplicaSet>();
    pods.wait_until_ready().await?;

    let started = Instant::now();
    for i in 0..sets {
        let name = format!("rs-{i}");
        let mut rs = ReplicaSet {
            metadata: ObjectMeta::namespaced("bench", &name),
            ..ReplicaSet::default()
        };
        rs.spec.replicas = Some(i32::try_from(replicas)?);
        rs.spec.selector = LabelSelector::match_labels([("app", name.as_str())]);
        rs.spec.template.metadata.labels = BTreeMap::from([("app".to_owned(), name.clone())]);
        rs.spec.template.spec = testing::pod("bench", "x", &name).spec;
        client.create(&rs).await?;
    }
    let created = started.elapsed();
    let want = sets * replicas;
    let deadline = started + Duration::from_secs(600);
    let pods_done = loop {
        if pods.len() >= want {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            return Err(format!("only {} of {want} pods after 600 s", pods.len()).into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let converged = loop {
        let done = statuses
            .list()
            .iter()
            .filter(|rs| {
                rs.status
                    .as_ref()
                    .is_some_and(|s| s.replicas as usize == replicas)
            })
            .count();
        if done == sets {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            return Err(format!("only {done} of {sets} statuses after 600 s").into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!(
        "{{\"bench\":\"replica_set_throughput\",\"replica_sets\":{sets},\"replicas\":{replicas},\"workers\":{workers},\"pods\":{want},\"create_replica_sets_s\":{:.3},\"all_pods_s\":{:.3},\"converged_s\":{:.3},\"pods_per_s\":{:.0}}}",
        created.as_secs_f64(),
        pods_done.as_secs_f64(),
        converged.as_secs_f64(),
        want as f64 / pods_done.as_secs_f64(),
    );
    let _ = stop.send(());
    running.await?;
    Ok(())
}
