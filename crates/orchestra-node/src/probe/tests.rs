use std::time::Duration;

use orchestra_api::IntOrString;
use orchestra_api::resources::{
    Container, ContainerPort, ExecAction, HttpGetAction, Probe, TcpSocketAction,
};
use tokio::time::{Instant, sleep};

use super::*;
use crate::fake::FakeRuntime;
use crate::runtime::{ContainerConfig, SandboxConfig};

fn exec_probe(period: i32, failure: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: vec!["check".into()],
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failure),
        ..Probe::default()
    }
}

async fn running(runtime: &FakeRuntime, image: &str) -> ContainerId {
    let sandbox = runtime
        .run_pod_sandbox(&SandboxConfig::default())
        .await
        .unwrap();
    let id = runtime
        .create_container(
            &sandbox,
            &ContainerConfig {
                name: "web".into(),
                image: image.into(),
                ..ContainerConfig::default()
            },
        )
        .await
        .unwrap();
    runtime.start_container(&id).await.unwrap();
    id
}

fn state(results: &ProbeResults) -> ProbeState {
    results.lock().unwrap().get("web").cloned().unwrap()
}

#[test]
fn kubernetes_defaults_and_port_resolution() {
    let container = Container {
        name: "web".into(),
        ports: vec![ContainerPort {
            name: "http".into(),
            container_port: 8080,
            ..ContainerPort::default()
        }],
        ..Container::default()
    };
    let probe = Probe {
        http_get: Some(HttpGetAction {
            port: IntOrString::String("http".into()),
            ..HttpGetAction::default()
        }),
        ..Probe::default()
    };
    let config = ProbeConfig::new(&probe, &container);
    assert_eq!(config.initial_delay, Duration::ZERO);
    assert_eq!(config.period, Duration::from_secs(10));
    assert_eq!(config.timeout, Duration::from_secs(1));
    assert_eq!((config.success_threshold, config.failure_threshold), (1, 3));
    assert_eq!(
        config.handler,
        Ok(Handler::HttpGet {
            host: None,
            port: 8080,
            path: "/".into(),
            headers: vec![]
        })
    );
    let bad = Probe {
        tcp_socket: Some(TcpSocketAction {
            port: IntOrString::String("grpc".into()),
            host: String::new(),
        }),
        ..Probe::default()
    };
    let err = ProbeConfig::new(&bad, &container).handler.unwrap_err();
    assert_eq!(
        err,
        "port \"grpc\" is not a named port of container \"web\""
    );
}

#[tokio::test(start_paused = true)]
async fn liveness_fails_after_three_periods_of_failures() {
    let runtime = FakeRuntime::new();
    let id = running(&runtime, "fake/run?healthy-for=15s").await;
    let results = ProbeResults::default();
    let spec = Container {
        name: "web".into(),
        liveness_probe: Some(exec_probe(10, 3)),
        ..Container::default()
    };
    let t0 = Instant::now();
    let _prober = Prober::start(
        Arc::new(runtime.clone()),
        &spec,
        id.clone(),
        None,
        results.clone(),
        Arc::new(Notify::new()),
    )
    .unwrap();
    // Attempts at 0 and 10 s pass; 20, 30 and 40 s fail: the verdict comes at 40 s.
    sleep(Duration::from_millis(39_900)).await;
    assert_eq!(state(&results).failed, None);
    sleep(Duration::from_millis(200)).await;
    let failed = state(&results).failed.unwrap();
    assert!(
        failed.starts_with("Liveness probe failed: command"),
        "{failed}"
    );
    assert!(t0.elapsed() >= Duration::from_secs(40));
}

#[tokio::test(start_paused = true)]
async fn readiness_follows_the_container_both_ways() {
    let runtime = FakeRuntime::new();
    let id = running(&runtime, "fake/run?ready-after=25s").await;
    let results = ProbeResults::default();
    let spec = Container {
        name: "web".into(),
        readiness_probe: Some(exec_probe(10, 1)),
        ..Container::default()
    };
    let notify = Arc::new(Notify::new());
    let _prober = Prober::start(
        Arc::new(runtime.clone()),
        &spec,
        id.clone(),
        None,
        results.clone(),
        notify.clone(),
    )
    .unwrap();
    sleep(Duration::from_secs(21)).await;
    assert!(!state(&results).ready);
    sleep(Duration::from_secs(10)).await; // the attempt at 30 s passes
    assert!(state(&results).ready);
    runtime.set_exec_exit_code(&id, Some(1)).unwrap();
    sleep(Duration::from_secs(10)).await;
    assert!(!state(&results).ready);
    assert_eq!(state(&results).failed, None);
}

#[tokio::test(start_paused = true)]
async fn a_startup_probe_gates_and_can_fail_the_container() {
    let runtime = FakeRuntime::new();
    let id = running(&runtime, "fake/run?ready-after=15s").await;
    let results = ProbeResults::default();
    let spec = Container {
        name: "web".into(),
        startup_probe: Some(exec_probe(5, 10)),
        liveness_probe: Some(exec_probe(10, 3)),
        ..Container::default()
    };
    let _prober = Prober::start(
        Arc::new(runtime.clone()),
        &spec,
        id.clone(),
        None,
        results.clone(),
        Arc::new(Notify::new()),
    )
    .unwrap();
    assert!(!state(&results).started);
    sleep(Duration::from_secs(16)).await;
    assert!(state(&results).started);

    let stuck = running(&runtime, "fake/run?ready-after=1h").await;
    let results = ProbeResults::default();
    let spec = Container {
        name: "web".into(),
        startup_probe: Some(exec_probe(1, 3)),
        ..Container::default()
    };
    let _prober = Prober::start(
        Arc::new(runtime.clone()),
        &spec,
        stuck,
        None,
        results.clone(),
        Arc::new(Notify::new()),
    )
    .unwrap();
    sleep(Duration::from_millis(2100)).await;
    let failed = state(&results).failed.unwrap();
    assert!(failed.starts_with("Startup probe failed"), "{failed}");
}

#[tokio::test]
async fn http_and_tcp_probes_reach_a_local_server() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = [0u8; 1024];
                let n = socket.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let answer = if request.starts_with("GET /healthz ") {
                    "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"
                } else {
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"
                };
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    let runtime = FakeRuntime::new();
    let ip = Some("127.0.0.1".parse().unwrap());
    let config = |path: &str| ProbeConfig {
        handler: Ok(Handler::HttpGet {
            host: None,
            port,
            path: path.into(),
            headers: vec![("X-Probe".into(), "1".into())],
        }),
        initial_delay: Duration::ZERO,
        period: Duration::from_secs(10),
        timeout: Duration::from_secs(5),
        success_threshold: 1,
        failure_threshold: 3,
    };
    let id = ContainerId::from("unused");
    assert_eq!(
        run_once(&runtime, &id, ip, &config("/healthz")).await,
        Ok(())
    );
    assert_eq!(
        run_once(&runtime, &id, ip, &config("/other")).await,
        Err("HTTP probe failed with statuscode: 503".into())
    );
    let tcp = ProbeConfig {
        handler: Ok(Handler::TcpSocket { host: None, port }),
        ..config("/")
    };
    assert_eq!(run_once(&runtime, &id, ip, &tcp).await, Ok(()));
    assert_eq!(
        run_once(&runtime, &id, None, &tcp).await,
        Err("the pod has no IP yet".into())
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_attempt_replaces_the_verdicts_of_the_previous_one() {
    let runtime = FakeRuntime::new();
    let first = running(&runtime, "fake/run?healthy-for=1s").await;
    let results = ProbeResults::default();
    let spec = Container {
        name: "web".into(),
        liveness_probe: Some(exec_probe(1, 1)),
        ..Container::default()
    };
    let start = |id: ContainerId| {
        Prober::start(
            Arc::new(runtime.clone()),
            &spec,
            id,
            None,
            results.clone(),
            Arc::new(Notify::new()),
        )
        .unwrap()
    };
    let prober = start(first.clone());
    sleep(Duration::from_millis(1500)).await;
    assert!(state(&results).failed.is_some());
    drop(prober);
    let second = running(&runtime, "fake/run").await;
    let _prober = start(second.clone());
    let now = state(&results);
    assert_eq!((now.container, now.failed), (second, None));
}
