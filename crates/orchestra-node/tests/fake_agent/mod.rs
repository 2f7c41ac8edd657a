//! What the node agent's fake-runtime tests share: an agent on node [`NODE`] over a
//! `LocalClient`, stopped on demand, and reading a pod back until it reaches a state (in
//! paused time).

#![allow(dead_code)] // Each test file uses a part of it.

use std::time::Duration;

use orchestra_api::resources::{Pod, PodPhase};
use orchestra_api::{Client, LocalClient};
use orchestra_node::agent::{Agent, AgentConfig};
use orchestra_node::fake::FakeRuntime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

/// The node the agent runs as.
pub const NODE: &str = "node-1";

/// A running agent.
pub struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Running {
    /// Stops the agent and waits until it has returned.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap();
    }
}

/// Starts an agent for [`NODE`] with `runtime` and the default configuration.
pub fn start_agent(client: &LocalClient, runtime: &FakeRuntime) -> Running {
    start_agent_with(client, runtime, AgentConfig::new(NODE))
}

/// Starts an agent with `runtime` and `config`.
pub fn start_agent_with(
    client: &LocalClient,
    runtime: &FakeRuntime,
    config: AgentConfig,
) -> Running {
    let (stop, stopped) = oneshot::channel();
    let agent = Agent::new(client.clone(), runtime.clone(), config);
    let task = tokio::spawn(agent.run(async {
        let _ = stopped.await;
    }));
    Running { stop, task }
}

/// The pod `default/NAME`, if it exists.
pub async fn get(client: &LocalClient, name: &str) -> Option<Pod> {
    client.get::<Pod>("default", name).await.ok()
}

/// Waits (in paused time) until `check` holds for the pod, at most `limit`.
pub async fn wait_pod(
    client: &LocalClient,
    name: &str,
    limit: Duration,
    check: impl Fn(&Pod) -> bool,
) -> Pod {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(pod) = get(client, name).await
            && check(&pod)
        {
            return pod;
        }
        assert!(
            Instant::now() < deadline,
            "pod {name} did not get there in {limit:?}: {:#?}",
            get(client, name).await.map(|p| p.status)
        );
        sleep(Duration::from_millis(100)).await;
    }
}

/// The pod's phase, if the agent has reported one.
pub fn phase(pod: &Pod) -> Option<PodPhase> {
    pod.status.as_ref().and_then(|s| s.phase)
}
