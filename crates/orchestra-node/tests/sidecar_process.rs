//! A sidecar with real processes: the agent over a ProcessRuntime runs a Job-style pod whose
//! sidecar (`sh -c`, forever) would never exit on its own and whose app exits 0. The pod
//! reaches Succeeded, the sidecar is stopped, and none of its processes is left. Waits are
//! on observable state with a generous timeout.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use orchestra_api::resources::{Container, Pod, PodPhase, PodSpec, RestartPolicy};
use orchestra_api::{Client, LocalClient, ObjectMeta};
use orchestra_node::RuntimeDriver;
use orchestra_node::agent::{Agent, AgentConfig};
use orchestra_node::process::{ProcessRuntime, ProcessRuntimeConfig};
use orchestra_store::MemStore;
use tokio::sync::oneshot;

const NODE: &str = "node-1";
const LIMIT: Duration = Duration::from_secs(60);

fn sh(name: &str, script: &str) -> Container {
    Container {
        name: name.into(),
        image: "busybox".into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..Container::default()
    }
}

/// The live processes whose process group is `pgid` (a container's processes: the runtime
/// starts each in a group of its own). Zombies are dead and left out: a grandchild orphaned
/// by the container's shell is reaped by whatever init this machine has, not by the runtime.
fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // `pid (comm) state ppid pgrp ...`: comm may hold spaces, so split after it.
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            let mut fields = after.split_whitespace();
            let state = fields.next();
            state != Some("Z") && fields.nth(1) == Some(pgid.to_string().as_str())
        })
        .collect()
}

async fn wait_for_file(path: &Path) -> String {
    tokio::time::timeout(LIMIT, async {
        loop {
            if let Ok(text) = std::fs::read_to_string(path)
                && text.ends_with('\n')
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{} was not written within {LIMIT:?}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_a_forever_sidecar_succeeds_and_leaves_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut runtime_config = ProcessRuntimeConfig::new(dir.path().join("state"));
    runtime_config.cgroup_root = None;
    let runtime = Arc::new(ProcessRuntime::new(runtime_config).await.unwrap());
    let client = LocalClient::new(MemStore::new());
    let mut config = AgentConfig::new(NODE);
    config.volumes_dir = dir.path().join("volumes");
    config.sync_interval = Duration::from_millis(100);
    let (stop, stopped) = oneshot::channel::<()>();
    let agent = Agent::with_shared_runtime(client.clone(), runtime.clone(), config);
    let agent = tokio::spawn(agent.run(async {
        let _ = stopped.await;
    }));

    let pid_file = dir.path().join("sidecar.pid");
    let seen = dir.path().join("app.saw-sidecar");
    // The sidecar records its pid and loops forever (with a child `sleep` in its group);
    // the app waits for the sidecar's pid (the sidecar's process has started, its shell may
    // not have written it yet), then exits 0. (`$$$$` is the shell's
    // `$$`: the agent expands `$(VAR)` references in commands, where `$$` escapes `$`.)
    let mut sidecar = sh(
        "mesh",
        &format!(
            "echo $$$$ > {pid}.tmp && mv {pid}.tmp {pid}; while true; do sleep 1; done",
            pid = pid_file.display()
        ),
    );
    sidecar.restart_policy = Some(RestartPolicy::Always);
    let app = sh(
        "job",
        &format!(
            "while [ ! -s {pid} ]; do sleep 0.05; done; echo yes > {seen}",
            pid = pid_file.display(),
            seen = seen.display()
        ),
    );
    let pod = Pod {
        metadata: ObjectMeta::namespaced("default", "job"),
        spec: PodSpec {
            node_name: NODE.into(),
            restart_policy: Some(RestartPolicy::Never),
            termination_grace_period_seconds: Some(5),
            init_containers: vec![sidecar],
            containers: vec![app],
            ..PodSpec::default()
        },
        ..Pod::default()
    };
    client.create(&pod).await.unwrap();

    let pid: i32 = wait_for_file(&pid_file).await.trim().parse().unwrap();
    let done = tokio::time::timeout(LIMIT, async {
        loop {
            let pod: Pod = client.get("default", "job").await.unwrap();
            match pod.status.as_ref().and_then(|s| s.phase) {
                Some(PodPhase::Succeeded) => return pod,
                Some(PodPhase::Failed) => panic!("the pod failed: {:#?}", pod.status),
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the pod did not succeed");
    assert_eq!(
        wait_for_file(&seen).await,
        "yes\n",
        "the app ran beside the sidecar"
    );
    let status = done.status.unwrap();
    let app = status.container_statuses[0].state.clone().unwrap();
    assert_eq!(app.terminated.unwrap().exit_code, 0);
    let mesh = &status.init_container_statuses[0];
    assert!(
        mesh.state.as_ref().unwrap().terminated.is_some(),
        "{mesh:?}"
    );
    assert_eq!(mesh.restart_count, 0);
    let left: Vec<String> = group_members(pid)
        .iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/stat")).ok())
        .collect();
    assert!(
        left.is_empty(),
        "sidecar processes left: {left:?} (mesh: {mesh:?})"
    );

    let _ = stop.send(());
    agent.await.unwrap();
    for sandbox in runtime.list().await.unwrap().sandboxes {
        let _ = runtime.stop_pod_sandbox(&sandbox.id).await;
        let _ = runtime.remove_pod_sandbox(&sandbox.id).await;
    }
}
