//! A hundred pods on one agent over FakeRuntime, in paused time: every one reports Running and
//! Ready, and deleting them all leaves the runtime empty.

use std::time::Duration;

use orchestra_api::registry::{DeleteOptions, ListOptions};
use orchestra_api::resources::Pod;
use orchestra_api::{Client, LocalClient, testing};
use orchestra_node::agent::{Agent, AgentConfig};
use orchestra_node::fake::FakeRuntime;
use orchestra_store::MemStore;
use tokio::time::{Instant, sleep};

const PODS: usize = 100;

#[tokio::test(start_paused = true)]
async fn a_hundred_pods_run_and_go_away() {
    let client = LocalClient::new(MemStore::new());
    let runtime = FakeRuntime::new();
    let agent = Agent::new(client.clone(), runtime.clone(), AgentConfig::new("node-1"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent.run(async {
        let _ = stopped.await;
    }));
    for i in 0..PODS {
        let mut pod = testing::pod("default", &format!("p{i}"), "web");
        pod.spec.node_name = "node-1".into();
        client.create(&pod).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pods = client
            .list::<Pod>(Some("default"), &ListOptions::default())
            .await
            .unwrap();
        if pods
            .items
            .iter()
            .filter(|p| p.is_running_and_ready())
            .count()
            == PODS
        {
            break;
        }
        assert!(Instant::now() < deadline, "not all pods became ready");
        sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(runtime.counts(), (PODS, PODS));
    for i in 0..PODS {
        client
            .delete::<Pod>("default", &format!("p{i}"), &DeleteOptions::default())
            .await
            .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while runtime.counts() != (0, 0) {
        assert!(
            Instant::now() < deadline,
            "runtime not emptied: {:?}",
            runtime.counts()
        );
        sleep(Duration::from_millis(500)).await;
    }
    let left = client
        .list::<Pod>(Some("default"), &ListOptions::default())
        .await
        .unwrap();
    assert!(left.items.is_empty(), "{} pods left", left.items.len());
    let _ = stop.send(());
    task.await.unwrap();
}
