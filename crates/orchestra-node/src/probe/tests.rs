use std::time::Duration;

use orchestra_api::IntOrString;
use orchestra_api::resources::{
    Container, ContainerPort, ExecAction, HttpGetAction, Probe, TcpSocketAction,
};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, sleep};

use super::http::Scheme;
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
            scheme: Scheme::Http,
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

/// The answer a test server gives to a path: status, extra header lines, body.
type Route = fn(&str, &str) -> (u16, String, String);

/// Serves `route` over plain HTTP (`tls` is `None`) or TLS on a loopback port, counting the
/// requests; returns the port and the count.
async fn serve(route: Route, tls: Option<tokio_rustls::TlsAcceptor>) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let served = count.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (tls, served) = (tls.clone(), served.clone());
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(socket).await {
                            answer(stream, route, port, &served).await;
                        }
                    }
                    None => answer(socket, route, port, &served).await,
                }
            });
        }
    });
    (port, count)
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    route: Route,
    port: u16,
    served: &AtomicUsize,
) {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.ends_with(b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    served.fetch_add(1, Ordering::SeqCst);
    let request = String::from_utf8_lossy(&request).into_owned();
    let path = request.split_whitespace().nth(1).unwrap_or_default();
    let (status, headers, body) = route(path, &request.replace(&port.to_string(), "PORT"));
    let reply = format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\n{headers}\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// A TLS acceptor with a self-signed certificate for a name that is not the address probed.
fn self_signed_acceptor() -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let certified = rcgen::generate_simple_self_signed(vec!["unrelated.example".to_owned()])
        .expect("a self-signed certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![certified.cert.der().clone()], key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

fn http_config(scheme: Scheme, port: u16, path: &str) -> ProbeConfig {
    ProbeConfig {
        handler: Ok(Handler::HttpGet {
            scheme,
            host: None,
            port,
            path: path.into(),
            headers: vec![("X-Probe".into(), "1".into())],
        }),
        initial_delay: Duration::ZERO,
        period: Duration::from_secs(1),
        timeout: Duration::from_secs(10),
        success_threshold: 1,
        failure_threshold: 3,
    }
}

const LOCAL: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));

/// `/healthz` answers 200 to a request carrying the probe's header and kubelet's defaults,
/// anything else 503.
fn health(path: &str, request: &str) -> (u16, String, String) {
    let proper = request.contains("\r\nX-Probe: 1\r\n")
        && request.contains("\r\nHost: 127.0.0.1:PORT\r\n")
        && request.contains("\r\nAccept: */*\r\n");
    match path {
        "/healthz" if proper => (200, String::new(), "ok".into()),
        _ => (503, String::new(), "no".into()),
    }
}

#[tokio::test]
async fn http_and_tcp_probes_reach_a_local_server() {
    let (port, _) = serve(health, None).await;
    let runtime = FakeRuntime::new();
    let id = ContainerId::from("unused");
    let config = |path| http_config(Scheme::Http, port, path);
    assert_eq!(
        run_once(&runtime, &id, LOCAL, &config("/healthz")).await,
        Outcome::Success
    );
    assert_eq!(
        run_once(&runtime, &id, LOCAL, &config("/other")).await,
        Outcome::Failure("HTTP probe failed with statuscode: 503".into())
    );
    let tcp = ProbeConfig {
        handler: Ok(Handler::TcpSocket { host: None, port }),
        ..config("/")
    };
    assert_eq!(run_once(&runtime, &id, LOCAL, &tcp).await, Outcome::Success);
    assert_eq!(
        run_once(&runtime, &id, None, &tcp).await,
        Outcome::Failure("the pod has no IP yet".into())
    );
}

#[tokio::test]
async fn https_probes_do_not_verify_the_certificate() {
    let (port, _) = serve(health, Some(self_signed_acceptor())).await;
    let runtime = FakeRuntime::new();
    let id = ContainerId::from("unused");
    // The certificate is self-signed and names another host, as kubelet's probes allow.
    assert_eq!(
        run_once(
            &runtime,
            &id,
            LOCAL,
            &http_config(Scheme::Https, port, "/healthz")
        )
        .await,
        Outcome::Success
    );
    assert_eq!(
        run_once(
            &runtime,
            &id,
            LOCAL,
            &http_config(Scheme::Https, port, "/down")
        )
        .await,
        Outcome::Failure("HTTP probe failed with statuscode: 503".into())
    );
    // Plain HTTP to the TLS port gets no HTTP answer: a failure that says so.
    let Outcome::Failure(why) = run_once(
        &runtime,
        &id,
        LOCAL,
        &http_config(Scheme::Http, port, "/healthz"),
    )
    .await
    else {
        panic!("plain HTTP to a TLS server passed");
    };
    assert!(
        why.starts_with(&format!("Get \"http://127.0.0.1:{port}/healthz\"")),
        "{why}"
    );
    // And HTTPS to a server that answers in plain HTTP fails its handshake.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let reply = "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
            let _ = socket.write_all(reply.as_bytes()).await;
        }
    });
    let Outcome::Failure(why) = run_once(
        &runtime,
        &id,
        LOCAL,
        &http_config(Scheme::Https, plain, "/healthz"),
    )
    .await
    else {
        panic!("HTTPS to a plain server passed");
    };
    assert!(why.contains("TLS handshake with 127.0.0.1:"), "{why}");
}

/// Redirects as a test server gives them (`TLS_PORT` is the port of an HTTPS server).
fn redirects(path: &str, _: &str) -> (u16, String, String) {
    let tls_port = TLS_PORT.load(Ordering::SeqCst);
    match path {
        "/start" => (302, "Location: /next\r\n".into(), String::new()),
        "/next" => (307, "Location: step/../final\r\n".into(), String::new()),
        "/final" => (200, String::new(), String::new()),
        "/away" => (
            301,
            "Location: http://probe-target.invalid/elsewhere\r\n".into(),
            "moved away".into(),
        ),
        "/loop" => (302, "Location: /loop\r\n".into(), String::new()),
        "/to-tls" => (
            308,
            format!("Location: https://127.0.0.1:{tls_port}/healthz\r\n"),
            String::new(),
        ),
        "/not-modified" => (304, String::new(), String::new()),
        _ => (404, String::new(), String::new()),
    }
}

static TLS_PORT: AtomicU16 = AtomicU16::new(0);

#[tokio::test]
async fn redirects_follow_kubelets_rules() {
    let (tls_port, _) = serve(health, Some(self_signed_acceptor())).await;
    TLS_PORT.store(tls_port, Ordering::SeqCst);
    let (port, count) = serve(redirects, None).await;
    let runtime = FakeRuntime::new();
    let id = ContainerId::from("unused");
    let probe = |path| {
        let config = http_config(Scheme::Http, port, path);
        let (runtime, id) = (&runtime, &id);
        async move { run_once(runtime, id, LOCAL, &config).await }
    };
    // Same host: followed, relative locations resolved against the current URL.
    assert_eq!(probe("/start").await, Outcome::Success);
    // Same host name, another port and scheme: followed.
    assert_eq!(probe("/to-tls").await, Outcome::Success);
    // Another host: not followed; the redirect passes with kubelet's warning.
    assert_eq!(
        probe("/away").await,
        Outcome::Warning("Probe terminated redirects, Response body: moved away".into())
    );
    // Any other final 3xx passes with the warning too.
    assert_eq!(
        probe("/not-modified").await,
        Outcome::Warning("Probe terminated redirects, Response body: ".into())
    );
    // A loop on the same host stops after ten requests.
    count.store(0, Ordering::SeqCst);
    assert_eq!(
        probe("/loop").await,
        Outcome::Failure(format!(
            "Get \"http://127.0.0.1:{port}/loop\": stopped after 10 redirects"
        ))
    );
    assert_eq!(count.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn a_warning_is_reported_and_passes_the_probe() {
    let (port, _) = serve(redirects, None).await;
    let runtime = FakeRuntime::new();
    let id = running(&runtime, "fake/run").await;
    let spec = Container {
        name: "web".into(),
        readiness_probe: Some(Probe {
            http_get: Some(HttpGetAction {
                port: IntOrString::Int(i32::from(port)),
                path: "/away".into(),
                ..HttpGetAction::default()
            }),
            period_seconds: Some(1),
            ..Probe::default()
        }),
        ..Container::default()
    };
    let (results, notify) = (ProbeResults::default(), Arc::new(Notify::new()));
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let report: ProbeReport = Arc::new(move |event| seen.lock().unwrap().push(event));
    let _prober = Prober::start_reporting(
        Arc::new(runtime.clone()),
        &spec,
        id,
        LOCAL,
        results.clone(),
        notify.clone(),
        report,
    )
    .unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while !state(&results).ready {
            notify.notified().await;
        }
    })
    .await
    .expect("the readiness probe passed");
    let events = events.lock().unwrap().clone();
    assert_eq!(
        events.first(),
        Some(&ProbeEvent::Warning(
            "Readiness probe warning: Probe terminated redirects, Response body: moved away".into()
        )),
        "{events:?}"
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
