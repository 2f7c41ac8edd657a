//! CriRuntime against a real containerd: the RuntimeDriver conformance suite, then what only a
//! container runtime shows (a container serving on its pod IP reached from the host, exec,
//! CRI-format logs, a graceful stop of a PID 1 that handles TERM, images, a ConfigMap volume
//! refreshed under the agent while its subPath mount keeps the old content, a securityContext's
//! uid and capabilities applied), with the latencies of the CRI calls printed. Everything runs
//! in one test around one containerd, which the harness starts with its own configuration and
//! removes afterwards, checking that nothing is left behind.
//!
//! Needs root, containerd, runc, the CNI plugins and a static busybox (see `cri_harness`);
//! skipped with the reason printed when one is missing, unless `ORCHESTRA_SYSTEM_TESTS=1`.

mod cri_harness;

use std::time::{Duration, Instant};

use async_trait::async_trait;
use orchestra_node::cri::CriRuntime;
use orchestra_node::testing::util::{read_logs, sandbox_config, wait_for_container, wait_for_log};
use orchestra_node::testing::{Harness, Step, Suite, Workload};
use orchestra_node::{
    ContainerConfig, ContainerSecurity, ContainerState, LogOptions, RuntimeDriver, RuntimeError,
    SandboxConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use cri_harness::{Containerd, IMAGE};

const LIMIT: Duration = Duration::from_secs(20);

/// Fresh CriRuntimes (new connections) on the test's containerd.
struct CriHarness {
    config: orchestra_node::CriRuntimeConfig,
}

#[async_trait]
impl Harness for CriHarness {
    type Runtime = CriRuntime;

    async fn runtime(&self) -> CriRuntime {
        CriRuntime::connect(self.config.clone())
            .await
            .expect("connect to containerd")
    }

    /// The workload's script under `/bin/sh -c`, with two adaptations to what a container is:
    /// - the shell is PID 1 of the container's PID namespace, where the kernel ignores TERM
    ///   unless a handler is installed: a trap gives the TERM-ends-it behaviour of a plain
    ///   process (a workload's own `trap '' TERM` still overrides it);
    /// - containerd reads stdout and stderr from two pipes concurrently and stamps each line
    ///   as it reads it, so lines written to the two streams within microseconds can land in
    ///   the log in either order: a short pause where the output switches streams keeps the
    ///   order that the log checks assert.
    fn command(&self, workload: &Workload) -> Vec<String> {
        let mut parts = vec!["trap 'exit 143' TERM".to_owned()];
        let mut last_stream = None;
        for step in &workload.steps {
            let stream = match step {
                Step::Print(_) => Some(1),
                Step::PrintErr(_) => Some(2),
                _ => None,
            };
            if stream.is_some() && last_stream.is_some() && stream != last_stream {
                parts.push("sleep 0.05".to_owned());
            }
            if stream.is_some() {
                last_stream = stream;
            }
            parts.push(Workload::new(vec![step.clone()]).shell_script());
        }
        sh(&parts.join("; "))
    }

    fn image(&self) -> String {
        IMAGE.to_owned()
    }

    /// CRI falls back to the image's entrypoint.
    fn empty_command_is_invalid(&self) -> bool {
        false
    }

    fn wait_limit(&self) -> Duration {
        LIMIT
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), script.into()]
}

fn container(name: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        name: name.into(),
        image: IMAGE.into(),
        command: sh(script),
        ..ContainerConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cri_runtime_against_containerd() {
    cri_harness::run_with_containerd("cri_runtime_against_containerd", checks).await;
}

async fn checks(containerd: &Containerd) {
    let rt = containerd.runtime().await;
    println!("runtime: {}", rt.runtime_version());
    images(&rt).await;
    latencies(&rt).await;
    let started = Instant::now();
    Suite::new(CriHarness {
        config: containerd.runtime_config(),
    })
    .run_all()
    .await;
    println!("conformance suite: {:?}", started.elapsed());
    served_port_exec_logs_and_graceful_stop(&rt, containerd).await;
    missing_image(&rt).await;
    security_context_applied(&rt).await;
    agent_over_cri(containerd).await;
    config_map_refresh_over_cri(containerd).await;
}

/// The node agent over CriRuntime (LocalClient, real time): a pod with an httpGet readiness
/// probe (sent from the host to the pod IP) and an exec liveness probe runs and reports
/// Running, Ready and its CNI address; failing liveness restarts the container; deletion stops
/// it on TERM and removes everything from containerd.
async fn agent_over_cri(containerd: &Containerd) {
    use std::sync::Arc;

    use orchestra_api::registry::DeleteOptions;
    use orchestra_api::resources::{
        ConditionStatus, Container, ExecAction, HttpGetAction, Pod, PodPhase, PodSpec, Probe,
    };
    use orchestra_api::{Client, IntOrString, LocalClient, ObjectMeta};
    use orchestra_node::agent::{Agent, AgentConfig};

    let client = LocalClient::new(orchestra_store::MemStore::new());
    let runtime = Arc::new(containerd.runtime().await);
    let mut config = AgentConfig::new("cri-node");
    config.sync_interval = Duration::from_millis(100);
    let agent = Agent::with_shared_runtime(client.clone(), Arc::clone(&runtime), config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent.run(async {
        let _ = stopped.await;
    }));

    let script = "touch /tmp/healthy; mkdir -p /tmp/www && echo ok > /tmp/www/index.html \
        && httpd -f -p 8080 -h /tmp/www & trap 'exit 0' TERM; wait";
    let pod = Pod {
        metadata: ObjectMeta::namespaced("default", "agent-web"),
        spec: PodSpec {
            node_name: "cri-node".into(),
            termination_grace_period_seconds: Some(30),
            containers: vec![Container {
                name: "web".into(),
                image: IMAGE.into(),
                command: sh(script),
                readiness_probe: Some(Probe {
                    http_get: Some(HttpGetAction {
                        path: "/index.html".into(),
                        port: IntOrString::Int(8080),
                        ..HttpGetAction::default()
                    }),
                    period_seconds: Some(1),
                    ..Probe::default()
                }),
                liveness_probe: Some(Probe {
                    exec: Some(ExecAction {
                        command: vec!["cat".into(), "/tmp/healthy".into()],
                    }),
                    period_seconds: Some(1),
                    failure_threshold: Some(1),
                    ..Probe::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    };
    client.create(&pod).await.expect("create the pod");
    let ready = |p: &Pod| {
        p.status.as_ref().is_some_and(|s| {
            s.phase == Some(PodPhase::Running)
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
        })
    };
    let restarts = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.first())
            .map_or(0, |c| c.restart_count)
    };
    let wait = |what: &'static str, check: Box<dyn Fn(&Pod) -> bool + Send + Sync>| {
        let client = client.clone();
        async move {
            let mut last = None;
            let found = tokio::time::timeout(LIMIT, async {
                loop {
                    match client.get::<Pod>("default", "agent-web").await {
                        Ok(p) if check(&p) => return p,
                        Ok(p) => last = Some(format!("{:#?}", p.status)),
                        Err(e) => last = Some(e.to_string()),
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await;
            found
                .unwrap_or_else(|_| panic!("the pod did not get {what} within {LIMIT:?}: {last:?}"))
        }
    };
    let t = Instant::now();
    let running = wait("Running and Ready", Box::new(ready)).await;
    println!(
        "agent over CRI: pod Running and Ready after {:?}",
        t.elapsed()
    );
    let status = running.status.expect("status");
    assert!(status.pod_ip.starts_with("10.231.17."), "{status:?}");

    // Liveness: take the file away; the agent restarts the container, which makes it again.
    let state = runtime.list().await.expect("list");
    let first = state
        .containers
        .iter()
        .find(|c| c.config.name == "web" && c.state == ContainerState::Running)
        .expect("the pod's container runs in containerd");
    let rm = runtime
        .exec_sync(&first.id, &sh("rm /tmp/healthy"), LIMIT)
        .await
        .expect("exec");
    assert_eq!(rm.exit_code, 0);
    wait(
        "restarted by its liveness probe and Ready again",
        Box::new(move |p| restarts(p) >= 1 && ready(p)),
    )
    .await;

    client
        .delete::<Pod>("default", "agent-web", &DeleteOptions::default())
        .await
        .expect("delete");
    let gone = tokio::time::timeout(LIMIT, async {
        while client.get::<Pod>("default", "agent-web").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        gone.is_ok(),
        "the pod object was not removed within {LIMIT:?}"
    );
    let cleaned = tokio::time::timeout(LIMIT, async {
        loop {
            let state = runtime.list().await.expect("list");
            if state.sandboxes.iter().all(|s| s.config.name != "agent-web") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(
        cleaned.is_ok(),
        "the agent left the pod's sandbox in containerd"
    );
    let _ = stop.send(());
    task.await.expect("agent task");
}

/// The agent over CriRuntime with a ConfigMap volume mounted whole and, by `subPath`, one key
/// alone: after the ConfigMap changes, the container sees the new content through the bind
/// mount of the volume's directory (the `..data` link is swapped inside it) and the old one
/// at the subPath (a bind mount of the snapshot taken at its start), without a restart.
async fn config_map_refresh_over_cri(containerd: &Containerd) {
    use std::sync::Arc;

    use orchestra_api::registry::DeleteOptions;
    use orchestra_api::resources::{
        ConfigMap, ConfigMapVolumeSource, Container, Pod, PodSpec, Volume, VolumeMount,
    };
    use orchestra_api::{Client, LocalClient, ObjectMeta};
    use orchestra_node::agent::{Agent, AgentConfig};

    let client = LocalClient::new(orchestra_store::MemStore::new());
    let app = |content: &str| ConfigMap {
        metadata: ObjectMeta::namespaced("default", "app"),
        data: [("app.conf".to_owned(), content.to_owned())].into(),
        ..ConfigMap::default()
    };
    client
        .create(&app("v1"))
        .await
        .expect("create the ConfigMap");
    let volumes = tempfile::tempdir().expect("tempdir");
    let runtime = Arc::new(containerd.runtime().await);
    let mut config = AgentConfig::new("cri-node");
    config.sync_interval = Duration::from_millis(100);
    config.volume_refresh_interval = Duration::from_millis(200);
    config.volumes_dir = volumes.path().to_owned();
    let agent = Agent::with_shared_runtime(client.clone(), Arc::clone(&runtime), config);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent.run(async {
        let _ = stopped.await;
    }));

    let script = "trap 'exit 0' TERM; echo \"start=$(cat /etc/app/app.conf)\"; \
        while [ \"$(cat /etc/app/app.conf)\" = v1 ]; do sleep 0.1; done; \
        echo \"seen=$(cat /etc/app/app.conf) sub=$(cat /etc/app.conf)\"; \
        while :; do sleep 1; done";
    let mount = |path: &str, sub_path: &str| VolumeMount {
        name: "conf".into(),
        mount_path: path.into(),
        sub_path: sub_path.into(),
        ..VolumeMount::default()
    };
    let pod = Pod {
        metadata: ObjectMeta::namespaced("default", "agent-conf"),
        spec: PodSpec {
            node_name: "cri-node".into(),
            enable_service_links: Some(false),
            volumes: vec![Volume {
                name: "conf".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: "app".into(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            }],
            containers: vec![Container {
                name: "main".into(),
                image: IMAGE.into(),
                command: sh(script),
                volume_mounts: vec![mount("/etc/app", ""), mount("/etc/app.conf", "app.conf")],
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    };
    client.create(&pod).await.expect("create the pod");
    let id = tokio::time::timeout(LIMIT, async {
        loop {
            let state = runtime.list().await.expect("list");
            let running = state
                .containers
                .iter()
                .find(|c| c.config.name == "main" && c.state == ContainerState::Running);
            if let Some(container) = running {
                return container.id.clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the pod's container runs in containerd");
    let log = wait_for_log(runtime.as_ref(), &id, "start=", LIMIT).await;
    assert!(log.contains("start=v1"), "{log}");

    let mut current: ConfigMap = client.get("default", "app").await.expect("get");
    current.data.insert("app.conf".into(), "v2".into());
    client.update(&current).await.expect("update the ConfigMap");
    let log = wait_for_log(runtime.as_ref(), &id, "seen=", LIMIT).await;
    assert!(log.contains("seen=v2 sub=v1"), "{log}");
    let status = runtime.container_status(&id).await.expect("status");
    assert_eq!(status.state, ContainerState::Running, "not restarted");
    println!("agent over CRI: ConfigMap update seen in the container, subPath kept: {log:?}");

    client
        .delete::<Pod>("default", "agent-conf", &DeleteOptions::default())
        .await
        .expect("delete");
    let cleaned = tokio::time::timeout(LIMIT, async {
        loop {
            let state = runtime.list().await.expect("list");
            let pod_gone = client.get::<Pod>("default", "agent-conf").await.is_err();
            if pod_gone
                && state
                    .sandboxes
                    .iter()
                    .all(|s| s.config.name != "agent-conf")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(cleaned.is_ok(), "the agent left the pod in containerd");
    let _ = stop.send(());
    task.await.expect("agent task");
}

/// The imported image is present (pull is a no-op); an image that is not present and cannot be
/// pulled (no registry) is an Image error naming it.
async fn images(rt: &CriRuntime) {
    rt.pull_image(IMAGE)
        .await
        .expect("the imported image is present");
    let missing = "orchestra.invalid/no-such-image:1";
    let err = rt.pull_image(missing).await.expect_err("no registry");
    assert!(
        matches!(&err, RuntimeError::Image { image, .. } if image == missing),
        "{err:?}"
    );
    assert_eq!(err.waiting_reason(), "ErrImagePull");
}

/// Times the bare CRI calls a pod start makes (printed, not asserted: speed is measured by
/// `orchestra bench node`).
async fn latencies(rt: &CriRuntime) {
    const ROUNDS: usize = 5;
    let mut sandbox = Vec::new();
    let mut create_start = Vec::new();
    let mut teardown = Vec::new();
    for round in 0..ROUNDS {
        let config = sandbox_config(&format!("latency-{round}"));
        let t = Instant::now();
        let id = rt.run_pod_sandbox(&config).await.expect("run sandbox");
        sandbox.push(t.elapsed());
        let t = Instant::now();
        let c = rt
            .create_container(&id, &container("c", "exec sleep 1000"))
            .await
            .expect("create");
        rt.start_container(&c).await.expect("start");
        create_start.push(t.elapsed());
        let t = Instant::now();
        rt.remove_pod_sandbox(&id).await.expect("remove");
        teardown.push(t.elapsed());
    }
    for (what, mut samples) in [
        ("RunPodSandbox", sandbox),
        ("CreateContainer+StartContainer", create_start),
        ("StopPodSandbox+RemoveContainer+RemovePodSandbox", teardown),
    ] {
        samples.sort();
        println!(
            "latency {what}: min {:?} median {:?} max {:?} ({ROUNDS} rounds)",
            samples[0],
            samples[ROUNDS / 2],
            samples[ROUNDS - 1]
        );
    }
}

/// An HTTP server in a pod, reached from the host on the pod's IP; exec in it; its log in CRI
/// format where the runtime says; a graceful stop on TERM; everything gone after removal.
async fn served_port_exec_logs_and_graceful_stop(rt: &CriRuntime, containerd: &Containerd) {
    let config = SandboxConfig {
        log_directory: None,
        ..sandbox_config("web")
    };
    let sandbox = rt.run_pod_sandbox(&config).await.expect("sandbox");
    let ip = rt
        .sandbox_status(&sandbox)
        .await
        .expect("status")
        .ip
        .expect("the pod has an IP");
    assert!(ip.to_string().starts_with("10.231.17."), "{ip}");

    // The shell (PID 1) handles TERM: it says so and exits 0, which ends httpd with it.
    let script = "mkdir -p /tmp/www && echo hello-from-pod > /tmp/www/index.html \
        && httpd -f -p 8080 -h /tmp/www & trap 'echo got TERM; exit 0' TERM; echo serving; wait";
    let id = rt
        .create_container(&sandbox, &container("web", script))
        .await
        .expect("create");
    rt.start_container(&id).await.expect("start");
    wait_for_log(rt, &id, "serving", LIMIT).await;

    let body = tokio::time::timeout(LIMIT, async {
        loop {
            if let Ok(body) = http_get(ip, 8080).await
                && body.contains("hello-from-pod")
            {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the pod's server answers on its IP from the host");
    assert!(body.starts_with("HTTP/1."), "{body}");

    let exec = rt
        .exec_sync(&id, &sh("cat /tmp/www/index.html; hostname; exit 7"), LIMIT)
        .await
        .expect("exec");
    assert_eq!(exec.exit_code, 7);
    assert_eq!(
        String::from_utf8_lossy(&exec.stdout),
        "hello-from-pod\nweb\n"
    );

    let status = rt.container_status(&id).await.expect("status");
    let log_path = status.log_path.clone().expect("a log path");
    assert_eq!(
        log_path,
        containerd
            .log_root
            .join("default_web_uid-web")
            .join("web/0.log")
    );
    let raw = std::fs::read_to_string(&log_path).expect("the CRI log file");
    assert!(raw.contains(" stdout F serving\n"), "CRI format: {raw:?}");

    let grace = Duration::from_secs(30);
    let t = Instant::now();
    tokio::time::timeout(LIMIT, rt.stop_container(&id, grace))
        .await
        .expect("stop returns once PID 1 exited on TERM, not after the grace period")
        .expect("stop");
    println!("graceful stop (TERM handled): {:?}", t.elapsed());
    let stopped = rt.container_status(&id).await.expect("status");
    assert_eq!(
        (stopped.state, stopped.exit_code),
        (ContainerState::Exited, Some(0)),
        "{stopped:?}"
    );
    let logs = read_logs(rt, &id, LogOptions::default())
        .await
        .expect("logs");
    assert_eq!(logs, "serving\ngot TERM\n");
    assert!(
        http_get(ip, 8080).await.is_err(),
        "the server ended with its container"
    );

    rt.remove_pod_sandbox(&sandbox).await.expect("remove");
    assert!(!log_path.exists(), "the log goes with the container");
    assert!(
        !containerd.log_root.join("default_web_uid-web").exists(),
        "the log directory the runtime chose goes with the sandbox"
    );
    let state = rt.list().await.expect("list");
    assert!(state.sandboxes.iter().all(|s| s.id != sandbox));
}

/// A container's securityContext reaches containerd: the mesh's init container (root,
/// `drop: [ALL]`, `add: [NET_ADMIN]`) holds exactly NET_ADMIN, and the mesh proxy runs as
/// its uid.
async fn security_context_applied(rt: &CriRuntime) {
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("security"))
        .await
        .expect("sandbox");
    let mut init = container("init", "echo uid=$(id -u); grep CapEff /proc/self/status");
    init.security = ContainerSecurity {
        run_as_user: Some(0),
        add_capabilities: vec!["NET_ADMIN".into()],
        drop_capabilities: vec!["ALL".into()],
    };
    let mut proxy = container("proxy", "echo uid=$(id -u) done");
    proxy.security.run_as_user = Some(2102);
    for (config, needle, expected) in [
        (&init, "CapEff", ["uid=0", "CapEff:\t0000000000001000"]),
        (&proxy, "done", ["uid=2102", "done"]),
    ] {
        let id = rt.create_container(&sandbox, config).await.expect("create");
        rt.start_container(&id).await.expect("start");
        let log = wait_for_log(rt, &id, needle, LIMIT).await;
        for line in expected {
            assert!(
                log.contains(line),
                "{}: {line:?} not in {log:?}",
                config.name
            );
        }
    }
    rt.remove_pod_sandbox(&sandbox).await.expect("remove");
}

/// A container whose image is not present cannot be created: an Image error.
async fn missing_image(rt: &CriRuntime) {
    let sandbox = rt
        .run_pod_sandbox(&sandbox_config("no-image"))
        .await
        .expect("sandbox");
    let mut config = container("c", "true");
    config.image = "orchestra.invalid/absent:1".into();
    let err = rt
        .create_container(&sandbox, &config)
        .await
        .expect_err("absent image");
    assert!(matches!(err, RuntimeError::Image { .. }), "{err:?}");
    let started = rt
        .create_container(&sandbox, &container("ok", "exit 0"))
        .await
        .expect("create");
    rt.start_container(&started).await.expect("start");
    wait_for_container(rt, &started, LIMIT, "exit", |s| {
        s.state == ContainerState::Exited
    })
    .await;
    rt.remove_pod_sandbox(&sandbox).await.expect("remove");
}

/// `GET /` on `ip:port`, the whole response as text.
async fn http_get(ip: std::net::IpAddr, port: u16) -> std::io::Result<String> {
    let mut stream = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect((ip, port)),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect"))??;
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
        .await?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "read"))??;
    Ok(response)
}
