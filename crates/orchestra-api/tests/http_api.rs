//! The HTTP/JSON API, driven by a real HTTP/1.1 client (hyper) against the server on a free
//! 127.0.0.1 port: Kubernetes' REST paths and verbs, selectors and pages, `?watch=true` JSON
//! lines with bookmarks and 410, subresources, errors as `Status` objects with the right
//! codes, bad input of every kind, and health and metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use orchestra_api::registry::DynRegistry;
use orchestra_api::server::{ApiServer, RunningServer, ServerOptions};
use orchestra_api::{Registry, RemoteClient};
use orchestra_store::{MemStore, Store};
use serde_json::{Value, json};

struct Server {
    running: RunningServer,
    store: Arc<dyn Store>,
}

async fn start() -> Server {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let options = ServerOptions {
        bookmark_interval: Duration::from_millis(20),
        ..ServerOptions::default()
    };
    let running =
        ApiServer::with_options(DynRegistry::new(Registry::from_arc(store.clone())), options)
            .spawn("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
    Server { running, store }
}

/// Sends one request on a fresh HTTP/1.1 connection.
async fn send(
    addr: SocketAddr,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<Bytes>,
) -> hyper::Response<Incoming> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let request = request.body(Full::new(body.into())).expect("request");
    sender.send_request(request).await.expect("response")
}

/// A request with a JSON body (or none), and the response's code, headers and JSON body.
async fn call(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, HeaderMap, Value) {
    let (content_type, bytes) = match &body {
        Some(body) => (Some("application/json"), Bytes::from(body.to_string())),
        None => (None, Bytes::new()),
    };
    let response = send(addr, method, path, content_type, bytes).await;
    let code = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (code, headers, value)
}

fn pod(name: &str, app: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
    })
}

fn assert_status(body: &Value, code: u16, reason: &str) {
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["apiVersion"], "v1", "{body}");
    assert_eq!(body["status"], "Failure", "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["reason"], reason, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn pods_over_rest_paths() {
    let server = start().await;
    let addr = server.running.local_addr();
    let base = "/api/v1/namespaces/shop/pods";

    let (code, _, created) = call(addr, Method::POST, base, Some(pod("web", "web"))).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["kind"], "Pod");
    assert_eq!(
        created["metadata"]["namespace"], "shop",
        "taken from the path"
    );
    assert_eq!(created["metadata"]["generation"], 1);
    assert_eq!(created["spec"]["restartPolicy"], "Always", "defaulted");
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();

    let (code, _, read) = call(addr, Method::GET, &format!("{base}/web"), None).await;
    assert_eq!((code, &read), (200, &created));

    let (code, _, again) = call(addr, Method::POST, base, Some(pod("web", "web"))).await;
    assert_eq!(code, 409);
    assert_status(&again, 409, "AlreadyExists");
    assert_eq!(again["details"], json!({"name": "shop/web", "kind": "Pod"}));

    let mut relabelled = created.clone();
    relabelled["metadata"]["labels"]["tier"] = json!("front");
    let (code, _, updated) = call(
        addr,
        Method::PUT,
        &format!("{base}/web"),
        Some(relabelled.clone()),
    )
    .await;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["metadata"]["labels"]["tier"], "front");
    let (code, _, stale) = call(addr, Method::PUT, &format!("{base}/web"), Some(relabelled)).await;
    assert_eq!(code, 409);
    assert_status(&stale, 409, "Conflict");

    let response = send(
        addr,
        Method::PATCH,
        &format!("{base}/web"),
        Some("application/merge-patch+json"),
        json!({"metadata": {"labels": {"tier": null, "team": "a"}}}).to_string(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let patched: Value = serde_json::from_slice(
        &response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes(),
    )
    .expect("json");
    assert_eq!(
        patched["metadata"]["labels"],
        json!({"app": "web", "team": "a"})
    );

    let mut running = patched.clone();
    running["status"] = json!({"phase": "Running"});
    let (code, _, status) = call(
        addr,
        Method::PUT,
        &format!("{base}/web/status"),
        Some(running),
    )
    .await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["status"]["phase"], "Running");
    assert_eq!(status["metadata"]["generation"], 1);
    let (code, _, via_status) = call(addr, Method::GET, &format!("{base}/web/status"), None).await;
    assert_eq!((code, &via_status), (200, &status));

    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "web"}, "target": {"kind": "Node", "name": "node-1"}});
    let (code, _, bound) = call(
        addr,
        Method::POST,
        &format!("{base}/web/binding"),
        Some(binding.clone()),
    )
    .await;
    assert_eq!(code, 201, "{bound}");
    assert_eq!(bound["status"], "Success");
    let (_, _, read) = call(addr, Method::GET, &format!("{base}/web"), None).await;
    assert_eq!(read["spec"]["nodeName"], "node-1");
    let (code, _, twice) = call(
        addr,
        Method::POST,
        &format!("{base}/web/binding"),
        Some(binding),
    )
    .await;
    assert_eq!(code, 409);
    assert_status(&twice, 409, "Conflict");

    let (code, _, list) = call(addr, Method::GET, "/api/v1/pods", None).await;
    assert_eq!(code, 200);
    assert_eq!(list["kind"], "PodList");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert!(
        list["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|v| v.parse::<i64>().expect("rv") > rv.parse::<i64>().expect("rv"))
    );

    let (code, _, deleted) = call(addr, Method::DELETE, &format!("{base}/web"), None).await;
    assert_eq!(code, 200, "{deleted}");
    assert_eq!(deleted["metadata"]["name"], "web");
    let (code, _, gone) = call(addr, Method::GET, &format!("{base}/web"), None).await;
    assert_eq!(code, 404);
    assert_status(&gone, 404, "NotFound");
    assert_eq!(gone["message"], "Pod \"shop/web\" not found");
    server.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn nodes_deployments_selectors_and_pages() {
    let server = start().await;
    let addr = server.running.local_addr();
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
    let (code, _, created) = call(addr, Method::POST, "/api/v1/nodes", Some(node)).await;
    assert_eq!(code, 201, "{created}");
    let (code, _, nodes) = call(addr, Method::GET, "/api/v1/nodes", None).await;
    assert_eq!((code, nodes["kind"].clone()), (200, json!("NodeList")));
    assert_eq!(nodes["items"][0]["metadata"]["name"], "n1");
    let (code, _, wrong) = call(addr, Method::GET, "/api/v1/namespaces/shop/nodes/n1", None).await;
    assert_eq!(code, 404, "{wrong}");

    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
    });
    let (code, _, created) = call(
        addr,
        Method::POST,
        "/apis/apps/v1/namespaces/shop/deployments",
        Some(deployment),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["spec"]["strategy"]["rollingUpdate"]["maxSurge"],
        "25%"
    );
    let (code, _, list) = call(addr, Method::GET, "/apis/apps/v1/deployments", None).await;
    assert_eq!((code, list["kind"].clone()), (200, json!("DeploymentList")));

    for (name, app) in [("a", "web"), ("b", "db"), ("c", "web"), ("d", "web")] {
        let (code, _, body) = call(
            addr,
            Method::POST,
            "/api/v1/namespaces/shop/pods",
            Some(pod(name, app)),
        )
        .await;
        assert_eq!(code, 201, "{body}");
    }
    let names = |list: &Value| {
        list["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["metadata"]["name"].as_str().expect("name").to_owned())
            .collect::<Vec<_>>()
    };
    let base = "/api/v1/namespaces/shop/pods";
    let (_, _, web) = call(
        addr,
        Method::GET,
        &format!("{base}?labelSelector=app%3Dweb"),
        None,
    )
    .await;
    assert_eq!(names(&web), ["a", "c", "d"]);
    let (_, _, set) = call(
        addr,
        Method::GET,
        &format!("{base}?labelSelector=app+in+(db)"),
        None,
    )
    .await;
    assert_eq!(names(&set), ["b"]);
    let (_, _, by_name) = call(
        addr,
        Method::GET,
        &format!("{base}?fieldSelector=metadata.name%21%3Da"),
        None,
    )
    .await;
    assert_eq!(names(&by_name), ["b", "c", "d"]);
    let (_, _, page1) = call(addr, Method::GET, &format!("{base}?limit=2"), None).await;
    assert_eq!(names(&page1), ["a", "b"]);
    let token = page1["metadata"]["continue"]
        .as_str()
        .expect("continue")
        .to_owned();
    let (_, _, page2) = call(
        addr,
        Method::GET,
        &format!("{base}?limit=2&continue={token}"),
        None,
    )
    .await;
    assert_eq!(names(&page2), ["c", "d"]);
    assert_eq!(
        page2["metadata"]["resourceVersion"],
        page1["metadata"]["resourceVersion"]
    );
    assert!(page2["metadata"].get("continue").is_none());

    for bad in [
        "?labelSelector=app%3D%3D%3D",
        "?fieldSelector=spec.color%3Dred",
        "?limit=lots",
        "?continue=garbage",
        "?watch=maybe",
    ] {
        let (code, _, body) = call(addr, Method::GET, &format!("{base}{bad}"), None).await;
        assert_eq!(code, 400, "{bad}: {body}");
        assert_status(&body, 400, "BadRequest");
    }
    server.running.shutdown().await.expect("shutdown");
}

/// Reads watch lines until `count` have arrived (failing, not hanging, after 10 s).
async fn lines(body: &mut Incoming, buffer: &mut Vec<u8>, count: usize) -> Vec<Value> {
    let mut out = Vec::new();
    while out.len() < count {
        if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            out.push(serde_json::from_slice(&line).expect("a JSON line"));
            continue;
        }
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("no watch line within 10 s")
            .expect("the watch ended")
            .expect("body error");
        if let Ok(data) = frame.into_data() {
            buffer.extend_from_slice(&data);
        }
    }
    out
}

#[tokio::test]
async fn watch_streams_json_lines_with_bookmarks_and_410() {
    let server = start().await;
    let addr = server.running.local_addr();
    let base = "/api/v1/namespaces/w/pods";
    let (_, _, list) = call(addr, Method::GET, base, None).await;
    let start_rv = list["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_owned();

    let response = send(
        addr,
        Method::GET,
        &format!("{base}?watch=true&resourceVersion={start_rv}&labelSelector=app%3Dweb"),
        None,
        Bytes::new(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut buffer = Vec::new();

    let (_, _, created) = call(addr, Method::POST, base, Some(pod("a", "web"))).await;
    let (_, _, _other) = call(addr, Method::POST, base, Some(pod("b", "db"))).await;
    let (_, _, deleted) = call(addr, Method::DELETE, &format!("{base}/a"), None).await;
    let events = lines(&mut body, &mut buffer, 2).await;
    assert_eq!(events[0], json!({"type": "ADDED", "object": created}));
    assert_eq!(events[1], json!({"type": "DELETED", "object": deleted}));
    drop(body);

    // Bookmarks (every 20 ms in this server) on a watch where nothing matches.
    let response = send(addr, Method::GET, &format!("/api/v1/namespaces/quiet/pods?watch=1&resourceVersion={start_rv}&allowWatchBookmarks=true"), None, Bytes::new()).await;
    let mut body = response.into_body();
    let mut buffer = Vec::new();
    let bookmark = &lines(&mut body, &mut buffer, 1).await[0];
    assert_eq!(bookmark["type"], "BOOKMARK");
    assert_eq!(bookmark["object"]["kind"], "Pod");
    assert!(
        bookmark["object"]["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|rv| rv.parse::<i64>().is_ok())
    );
    drop(body);

    // A too-old resourceVersion: 410 Expired.
    let current: i64 = deleted["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .parse()
        .expect("rv");
    server.store.compact(current).await.expect("compact");
    let (code, _, expired) = call(
        addr,
        Method::GET,
        &format!("{base}?watch=true&resourceVersion={start_rv}"),
        None,
    )
    .await;
    assert_eq!(code, 410, "{expired}");
    assert_status(&expired, 410, "Expired");

    // timeoutSeconds ends a watch by itself.
    let response = send(
        addr,
        Method::GET,
        &format!("{base}?watch=true&timeoutSeconds=0"),
        None,
        Bytes::new(),
    )
    .await;
    let ended = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect()).await;
    assert!(ended.is_ok(), "a watch with timeoutSeconds=0 must end");
    server.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn bad_input_gets_a_status_and_stores_nothing() {
    let server = start().await;
    let addr = server.running.local_addr();
    let base = "/api/v1/namespaces/bad/pods";

    let response = send(
        addr,
        Method::POST,
        base,
        Some("application/json"),
        "{\"apiVersion\": \"v1\", \"kind\": ",
    )
    .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_slice(
        &response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes(),
    )
    .expect("json");
    assert_status(&body, 400, "BadRequest");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("not valid JSON")),
        "{body}"
    );

    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
    let (code, _, body) = call(addr, Method::POST, base, Some(node)).await;
    assert_eq!(code, 400, "a Node on the pods path: {body}");
    assert_status(&body, 400, "BadRequest");

    let mut elsewhere = pod("x", "web");
    elsewhere["metadata"]["namespace"] = json!("other");
    let (code, _, body) = call(addr, Method::POST, base, Some(elsewhere)).await;
    assert_eq!(code, 400, "{body}");

    let (code, _, body) = call(addr, Method::POST, base, Some(json!([1, 2]))).await;
    assert_eq!(code, 400, "{body}");
    let (code, _, body) = call(addr, Method::POST, base, Some(json!({"metadata": "web"}))).await;
    assert_eq!(code, 400, "{body}");
    let (code, _, body) = call(addr, Method::POST, base, None).await;
    assert_eq!(code, 400, "no body: {body}");

    let mut invalid = pod("Not_Valid", "web");
    invalid["spec"]["containers"] = json!([]);
    let (code, _, body) = call(addr, Method::POST, base, Some(invalid)).await;
    assert_eq!(code, 422, "{body}");
    assert_status(&body, 422, "Invalid");
    let fields: Vec<&str> = body["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|c| c["field"].as_str().expect("field"))
        .collect();
    assert!(
        fields.contains(&"metadata.name") && fields.contains(&"spec.containers"),
        "{body}"
    );

    let mut big = pod("big", "web");
    big["spec"]["containers"][0]["args"] = json!(vec!["x".repeat(1024); 1600]);
    let (code, _, body) = call(addr, Method::POST, base, Some(big)).await;
    assert_eq!(code, 413, "an object over 1.5 MiB");
    assert_status(&body, 413, "RequestEntityTooLarge");
    let huge = vec![b' '; 4 * 1024 * 1024];
    let response = send(addr, Method::POST, base, Some("application/json"), huge).await;
    assert_eq!(
        response.status(),
        StatusCode::PAYLOAD_TOO_LARGE,
        "a body over 3 MiB"
    );

    let mut typo = pod("typo", "web");
    typo["spec"]["containerz"] = json!([]);
    let (code, _, body) = call(
        addr,
        Method::POST,
        &format!("{base}?fieldValidation=Strict"),
        Some(typo.clone()),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.containerz: unknown field")),
        "{body}"
    );
    let (code, headers, _) = call(addr, Method::POST, base, Some(typo)).await;
    assert_eq!(code, 201);
    let warning = headers
        .get("warning")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(warning.contains("spec.containerz"), "{warning:?}");

    for (method, path, code, reason) in [
        (Method::GET, "/nope", 404, "NotFound"),
        (Method::GET, "/api/v1/widgets", 404, "NotFound"),
        (Method::GET, "/apis/apps/v2/deployments", 404, "NotFound"),
        (Method::DELETE, base, 405, "MethodNotAllowed"),
        (Method::PUT, base, 405, "MethodNotAllowed"),
        (
            Method::POST,
            "/api/v1/nodes/n1/binding",
            405,
            "MethodNotAllowed",
        ),
        (
            Method::GET,
            "/api/v1/namespaces/bad/pods/typo/logs",
            404,
            "NotFound",
        ),
        (Method::GET, "/api/v1/pods/typo", 404, "NotFound"),
    ] {
        let (got, _, body) = call(addr, method.clone(), path, None).await;
        assert_eq!(got, code, "{method} {path}: {body}");
        assert_status(&body, code, reason);
    }
    let response = send(
        addr,
        Method::PATCH,
        &format!("{base}/typo"),
        Some("application/json-patch+json"),
        "[]",
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (code, _, body) = call(
        addr,
        Method::DELETE,
        &format!("{base}/typo?propagationPolicy=Sideways"),
        None,
    )
    .await;
    assert_eq!(code, 400, "{body}");

    let (_, _, list) = call(addr, Method::GET, base, None).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["typo"], "only the one good create was stored");
    server.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn delete_options_come_from_the_body_and_finalizers_answer_202() {
    let server = start().await;
    let addr = server.running.local_addr();
    let base = "/api/v1/namespaces/fin/pods";
    let mut held = pod("held", "web");
    held["metadata"]["finalizers"] = json!(["example.com/cleanup"]);
    call(addr, Method::POST, base, Some(held)).await;
    let options = json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 30, "propagationPolicy": "Foreground"});
    let (code, _, pending) =
        call(addr, Method::DELETE, &format!("{base}/held"), Some(options)).await;
    assert_eq!(code, 202, "{pending}");
    assert!(pending["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(pending["metadata"]["deletionGracePeriodSeconds"], 30);
    assert_eq!(
        pending["metadata"]["finalizers"],
        json!(["example.com/cleanup", "foregroundDeletion"])
    );
    call(addr, Method::POST, base, Some(pod("plain", "web"))).await;
    let stale = json!({"preconditions": {"resourceVersion": "1"}});
    let (code, _, body) = call(addr, Method::DELETE, &format!("{base}/plain"), Some(stale)).await;
    assert_eq!(code, 409, "{body}");
    assert_status(&body, 409, "Conflict");
    let (code, _, body) = call(
        addr,
        Method::DELETE,
        &format!("{base}/plain"),
        Some(json!("x")),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    server.running.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = start().await;
    let addr = server.running.local_addr();
    for path in ["/healthz", "/readyz"] {
        let (code, _, body) = call(addr, Method::GET, path, None).await;
        assert_eq!((code, body), (200, json!("ok")), "{path}");
    }
    call(
        addr,
        Method::POST,
        "/api/v1/namespaces/m/pods",
        Some(pod("a", "web")),
    )
    .await;
    call(
        addr,
        Method::POST,
        "/api/v1/namespaces/m/pods",
        Some(pod("a", "web")),
    )
    .await;
    call(addr, Method::GET, "/api/v1/namespaces/m/pods/a", None).await;
    // gRPC requests on the same address are counted too.
    let client = RemoteClient::connect(&server.running.url())
        .await
        .expect("connect");
    let pod: orchestra_api::resources::Pod = orchestra_api::Client::get(&client, "m", "a")
        .await
        .expect("get over gRPC");
    assert_eq!(pod.metadata.name, "a");

    let response = send(addr, Method::GET, "/metrics", None, Bytes::new()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    let text = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf-8");
    for line in [
        "# TYPE orchestra_apiserver_requests_total counter",
        "orchestra_apiserver_requests_total{protocol=\"http\",verb=\"create\",kind=\"Pod\",code=\"201\"} 1",
        "orchestra_apiserver_requests_total{protocol=\"http\",verb=\"create\",kind=\"Pod\",code=\"409\"} 1",
        "orchestra_apiserver_requests_total{protocol=\"http\",verb=\"get\",kind=\"Pod\",code=\"200\"} 1",
        "orchestra_apiserver_requests_total{protocol=\"grpc\",verb=\"get\",kind=\"Pod\",code=\"200\"} 1",
        "orchestra_apiserver_watches 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    server.running.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_namespaces_service_ips_and_cached_lists_over_http() {
    use orchestra_api::admission::{Admission, AdmissionConfig};
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let registry = Registry::from_arc(store)
        .with_admission(Admission::recommended(AdmissionConfig::default()));
    let running = ApiServer::new(DynRegistry::new(registry))
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = running.local_addr();
    // The system namespaces are there from the start.
    let (code, _, body) = call(addr, Method::GET, "/api/v1/namespaces/kube-system", None).await;
    assert_eq!(code, 200, "{body}");
    // A pod in a namespace that does not exist: 403 Forbidden, nothing stored.
    let (code, _, body) = call(
        addr,
        Method::POST,
        "/api/v1/namespaces/shop/pods",
        Some(pod("web", "web")),
    )
    .await;
    assert_status(&body, 403, "Forbidden");
    assert_eq!(code, 403);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains("namespace shop"),
        "{body}"
    );
    let (code, _, _) = call(
        addr,
        Method::POST,
        "/api/v1/namespaces",
        Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})),
    )
    .await;
    assert_eq!(code, 201);
    let service = json!({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
    });
    let (code, _, body) = call(
        addr,
        Method::POST,
        "/api/v1/namespaces/shop/services",
        Some(service),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let ip = body["spec"]["clusterIP"].as_str().unwrap_or("").to_owned();
    assert!(ip.starts_with("127.2."), "{body}");
    // Deleting the namespace: 202, Terminating, held by the kubernetes finalizer.
    let (code, _, body) = call(addr, Method::DELETE, "/api/v1/namespaces/shop", None).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["status"]["phase"], "Terminating");
    assert_eq!(body["spec"]["finalizers"], json!(["kubernetes"]));
    // A list at resourceVersion=0 (from the watch cache, once it has caught up) and a
    // consistent one agree.
    let (code, _, consistent) =
        call(addr, Method::GET, "/api/v1/namespaces/shop/services", None).await;
    assert_eq!(code, 200);
    assert_eq!(consistent["items"][0]["spec"]["clusterIP"], ip.as_str());
    let (code, _, cached) = call(
        addr,
        Method::GET,
        "/api/v1/namespaces/shop/services?resourceVersion=0",
        None,
    )
    .await;
    assert_eq!(code, 200, "{cached}");
    assert!(
        cached["items"]
            .as_array()
            .is_some_and(|items| items.len() <= 1),
        "{cached}"
    );
    // The namespace controller's last step, as Kubernetes': PUT /finalize with no finalizers
    // removes the namespace.
    let (code, _, body) = call(
        addr,
        Method::PUT,
        "/api/v1/namespaces/shop/finalize",
        Some(
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"},
                    "spec": {"finalizers": []}}),
        ),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, _, _) = call(addr, Method::GET, "/api/v1/namespaces/shop", None).await;
    assert_eq!(code, 404);
    // /finalize is for namespaces only.
    let (code, _, _) = call(
        addr,
        Method::PUT,
        "/api/v1/nodes/n1/finalize",
        Some(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})),
    )
    .await;
    assert_eq!(code, 405);
    running.shutdown().await.expect("shutdown");
}
