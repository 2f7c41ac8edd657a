//! `orchestra bench mesh`: the L7 sidecar measured against the direct path and nginx.
//!
//! One in-process HTTP/1.1 backend answering every request with a body of `--message-size`
//! bytes; four paths to it, measured one after the other in the same run:
//! - `direct`: the backend's own address;
//! - `l7-hop`: one outbound sidecar ([`HttpProxy`], plain HTTP to the backend): the tower
//!   stack (timeout, retries, buffer, p2c balancer, circuit breaker, pooled hyper client);
//! - `sidecars-mtls`: the client's outbound sidecar, mTLS with SPIFFE certificates from a
//!   [`MeshCa`], then the server's [`InboundProxy`] (handshake verification, authorization
//!   policy, identity header) in front of the backend: the whole mesh data path;
//! - `nginx`: nginx as a plain HTTP reverse proxy with upstream keep-alive (started by the
//!   benchmark, killed at the end; reported as `skipped` with the reason when it is missing).
//!
//! Per path: `max` (requests/s closed-loop over `--connections` keep-alive connections) and
//! `latency` at each `--rates` rate (open loop: each request is due at its scheduled time and
//! its latency counts from then, so that a stall is not hidden by coordinated omission). Every
//! line after the direct one carries its ratios to direct and the microseconds it adds at
//! p50/p99/p99.9. A last `memory` line gives the process's resident memory before and after
//! the two sidecars started, idle (everything runs in this one process).
//!
//! The load generator and the backend speak just enough HTTP/1.1 by hand (a request line, a
//! `Host`, `Content-Length` framing) to stay cheap next to the paths they measure.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Buf, BytesMut};
use hdrhistogram::Histogram;
use orchestra::mesh::l7::identity::{
    CaConfig, MeshCa, MeshCredentials, MeshTls, SidecarKey, SpiffeId, TrustBundle,
};
use orchestra::mesh::l7::{
    AuthorizationPolicy, Caller, DefaultAction, DirectoryConfig, HttpProxy, HttpProxyConfig,
    InboundConfig, InboundProxy, MeshDirectory, NamespacePolicy, OutboundTls, Rule,
};
use orchestra::mesh::{Affinity, Protocol, ServiceEntry, ServiceKey, ServiceProxy, ServiceTable};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use crate::bench::BenchError;
use crate::bench::proxy::nginx;
use crate::bench::report::{Latency, latency_histogram, merge, ratio, record, round1};
use crate::cli::bench::MeshBenchArgs;

/// The namespace of the benchmark's service and identities.
const NAMESPACE: &str = "bench";
/// The authority the load generator asks for: the `echo` service of [`NAMESPACE`].
const HOST: &str = "echo.bench";
/// The longest response head the load generator and the backend accept.
const MAX_HEAD: usize = 16 * 1024;

/// One result line of `orchestra bench mesh`.
#[derive(Clone, Debug, Serialize)]
pub struct MeshResult {
    /// Always `"mesh"`.
    pub bench: &'static str,
    /// `direct`, `l7-hop`, `sidecars-mtls`, `nginx`, or `process` (the memory line).
    pub path: &'static str,
    /// `max`, `latency` or `memory`.
    pub test: &'static str,
    /// Why this path was not measured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Target requests/s of a latency test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<u32>,
    /// Completed requests per second.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub req_per_sec: Option<f64>,
    /// Keep-alive connections used.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
    /// Request latency.
    #[serde(flatten)]
    pub latency: Option<Latency>,
    /// Requests completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// From the first request to the last response, in seconds (longer than `--seconds` when
    /// a path falls behind its rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// Resident memory, KiB: nginx's one process after the test on nginx lines; the whole
    /// benchmark process with both sidecars started and idle on the memory line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_kib: Option<u64>,
    /// The memory line: the process's resident memory before the sidecars started, KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_before_sidecars_kib: Option<u64>,
    /// How it compares with the direct path (absent on direct's own lines).
    #[serde(flatten)]
    pub vs: Option<VsDirect>,
}

/// A path against the direct path in the same test.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VsDirect {
    /// Always `"direct"`.
    pub vs: &'static str,
    /// Requests/s over direct's (1: as fast).
    pub throughput_ratio: Option<f64>,
    /// p50 latency over direct's.
    pub p50_ratio: Option<f64>,
    /// p99 latency over direct's.
    pub p99_ratio: Option<f64>,
    /// Microseconds the path adds to direct's p50.
    pub p50_added_us: f64,
    /// Microseconds the path adds to direct's p99.
    pub p99_added_us: f64,
    /// Microseconds the path adds to direct's p99.9.
    pub p999_added_us: f64,
}

impl VsDirect {
    /// `result` against `direct` (both measured: they carry a latency).
    fn of(direct: &MeshResult, result: &MeshResult) -> Option<Self> {
        let (d, r) = (direct.latency?, result.latency?);
        Some(VsDirect {
            vs: "direct",
            throughput_ratio: ratio(
                result.req_per_sec.unwrap_or(0.0),
                direct.req_per_sec.unwrap_or(0.0),
            ),
            p50_ratio: ratio(r.p50_us, d.p50_us),
            p99_ratio: ratio(r.p99_us, d.p99_us),
            p50_added_us: round1(r.p50_us - d.p50_us),
            p99_added_us: round1(r.p99_us - d.p99_us),
            p999_added_us: round1(r.p999_us - d.p999_us),
        })
    }
}

/// The error of a failed step, saying what the benchmark was doing.
fn mesh_error<E>(what: &'static str) -> impl Fn(E) -> BenchError
where
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    move |source| BenchError::Mesh {
        what: what.to_string(),
        source: source.into(),
    }
}

/// The sizes of one run, after `--smoke`.
#[derive(Clone, Debug)]
struct Plan {
    rates: Vec<u32>,
    connections: u32,
    size: usize,
    seconds: Duration,
}

impl Plan {
    fn of(args: &MeshBenchArgs) -> Self {
        let plan = Plan {
            rates: args.rates.clone(),
            connections: args.connections,
            size: args.message_size as usize,
            seconds: args.seconds,
        };
        if !args.smoke {
            return plan;
        }
        Plan {
            rates: plan.rates.iter().map(|&r| r.min(200)).collect(),
            connections: plan.connections.min(4),
            seconds: plan.seconds.min(Duration::from_millis(300)),
            ..plan
        }
    }
}

/// Run the mesh benchmark, printing each result line on stdout.
pub async fn run(args: MeshBenchArgs) -> Result<(), BenchError> {
    run_with(&args, |line| {
        let line = serde_json::to_string(line).map_err(|e| BenchError::Output(e.into()))?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .map_err(BenchError::Output)
    })
    .await
}

/// Run the mesh benchmark, handing each result line to `emit`.
async fn run_with(
    args: &MeshBenchArgs,
    mut emit: impl FnMut(&MeshResult) -> Result<(), BenchError>,
) -> Result<(), BenchError> {
    let plan = Plan::of(args);
    let backend = start_backend(plan.size).await?;
    let rss_before = rss_of(std::process::id());
    let l7_hop = start_outbound(backend, None).await?;
    let (inbound, client_tls, server_id) = start_inbound(backend).await?;
    let sidecars = start_outbound(inbound, Some((client_tls, server_id))).await?;
    let nginx = match nginx::find(args.nginx.as_deref()) {
        Ok(binary) => start_nginx(&binary, backend).await,
        Err(reason) => Err(reason),
    };
    if let Err(reason) = &nginx {
        tracing::warn!(%reason, "nginx path skipped");
    }
    let paths: [(&'static str, Result<SocketAddr, String>); 4] = [
        ("direct", Ok(backend)),
        ("l7-hop", Ok(l7_hop)),
        ("sidecars-mtls", Ok(sidecars)),
        (
            "nginx",
            nginx.as_ref().map(|n| n.addr).map_err(Clone::clone),
        ),
    ];
    // One request on each path first: every sidecar builds its stack and pool, and the memory
    // line below sees them set up but idle.
    for (path, addr) in &paths {
        if let Ok(addr) = addr {
            let mut conn = HttpConn::connect(*addr).await?;
            conn.round_trip(plan.size)
                .await
                .inspect_err(|_| tracing::error!(path, "the warm-up request failed"))?;
        }
    }
    let rss_idle = rss_of(std::process::id());

    let tests: Vec<(&'static str, Option<u32>)> = std::iter::once(("max", None))
        .chain(plan.rates.iter().map(|&rate| ("latency", Some(rate))))
        .collect();
    for (test, rate) in tests {
        let mut direct: Option<MeshResult> = None;
        for (path, addr) in &paths {
            let mut result = match addr {
                Ok(addr) => {
                    tracing::info!(path, test, rate, "measuring");
                    measure(path, test, rate, *addr, &plan).await?
                }
                Err(reason) => skipped(path, test, reason),
            };
            result.rate = rate;
            if *path == "nginx" {
                result.rss_kib = nginx.as_ref().ok().and_then(nginx::Nginx::rss_kib);
            }
            match &direct {
                None => direct = Some(result.clone()),
                Some(base) => result.vs = VsDirect::of(base, &result),
            }
            emit(&result)?;
        }
    }
    let mut memory = skipped("process", "memory", "");
    memory.skipped = None;
    memory.rss_kib = rss_idle;
    memory.rss_before_sidecars_kib = rss_before;
    emit(&memory)?;
    if let Ok(nginx) = nginx {
        nginx.stop().await?;
    }
    Ok(())
}

/// One test on one path.
async fn measure(
    path: &'static str,
    test: &'static str,
    rate: Option<u32>,
    addr: SocketAddr,
    plan: &Plan,
) -> Result<MeshResult, BenchError> {
    let started = Instant::now();
    let (hist, requests) = match rate {
        Some(rate) => open_loop(addr, rate, plan).await?,
        None => closed_loop(addr, plan).await?,
    };
    // Until the last response: a path that cannot keep up with an open-loop rate takes
    // longer than planned, and its requests/s says so.
    let seconds = started
        .elapsed()
        .as_secs_f64()
        .max(plan.seconds.as_secs_f64());
    let mut result = skipped(path, test, "");
    result.skipped = None;
    result.req_per_sec = Some(round1(requests as f64 / seconds));
    result.connections = Some(plan.connections);
    result.latency = Some(Latency::of(&hist));
    result.requests = Some(requests);
    result.seconds = Some((seconds * 1000.0).round() / 1000.0);
    Ok(result)
}

/// A line for a path that was not measured.
fn skipped(path: &'static str, test: &'static str, reason: &str) -> MeshResult {
    MeshResult {
        bench: "mesh",
        path,
        test,
        skipped: Some(reason.to_string()),
        rate: None,
        req_per_sec: None,
        connections: None,
        latency: None,
        requests: None,
        seconds: None,
        rss_kib: None,
        rss_before_sidecars_kib: None,
        vs: None,
    }
}

/// What one load task measured: its latencies and completed requests.
type Measured = (Histogram<u64>, u64);

/// Sends `rate` requests per second for the plan's duration, spread over its connections in
/// turn, each request at its scheduled time whatever happened before (open loop); a latency
/// counts from the scheduled time when the connection was still busy then (no coordinated
/// omission), from the actual send otherwise (the timer's own lateness is not the path's).
async fn open_loop(addr: SocketAddr, rate: u32, plan: &Plan) -> Result<Measured, BenchError> {
    let total = (f64::from(rate) * plan.seconds.as_secs_f64()).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let conns = connect_all(addr, plan).await?;
    let start = Instant::now() + Duration::from_millis(20);
    let step = u64::from(plan.connections);
    let size = plan.size;
    let tasks = conns
        .into_iter()
        .zip(0u64..)
        .map(|(mut conn, first)| {
            tokio::spawn(async move {
                let mut hist = latency_histogram()?;
                let mut done = 0u64;
                let mut previous_done = Instant::now();
                let mut i = first;
                while i < total {
                    let due = start + interval.mul_f64(i as f64);
                    tokio::time::sleep_until(due).await;
                    let sent = if previous_done > due {
                        due
                    } else {
                        Instant::now()
                    };
                    conn.round_trip(size).await?;
                    previous_done = Instant::now();
                    record(&mut hist, previous_done - sent);
                    done += 1;
                    i += step;
                }
                Ok::<_, BenchError>((hist, done))
            })
        })
        .collect();
    collect(tasks).await
}

/// Each connection sends its next request as soon as the previous response is in, for the
/// plan's duration.
async fn closed_loop(addr: SocketAddr, plan: &Plan) -> Result<Measured, BenchError> {
    let conns = connect_all(addr, plan).await?;
    let end = Instant::now() + plan.seconds;
    let size = plan.size;
    let tasks = conns
        .into_iter()
        .map(|mut conn| {
            tokio::spawn(async move {
                let mut hist = latency_histogram()?;
                let mut done = 0u64;
                while Instant::now() < end {
                    let one = Instant::now();
                    conn.round_trip(size).await?;
                    record(&mut hist, one.elapsed());
                    done += 1;
                }
                Ok::<_, BenchError>((hist, done))
            })
        })
        .collect();
    collect(tasks).await
}

/// The plan's connections to `addr`, each warmed by one request (so that the sidecars' pools
/// and TLS sessions upstream exist before the clock starts).
async fn connect_all(addr: SocketAddr, plan: &Plan) -> Result<Vec<HttpConn>, BenchError> {
    let mut conns = Vec::new();
    for _ in 0..plan.connections {
        let mut conn = HttpConn::connect(addr).await?;
        conn.round_trip(plan.size).await?;
        conns.push(conn);
    }
    Ok(conns)
}

/// Merges the tasks' histograms and counts.
async fn collect(
    tasks: Vec<tokio::task::JoinHandle<Result<Measured, BenchError>>>,
) -> Result<Measured, BenchError> {
    let mut hist = latency_histogram()?;
    let mut done = 0;
    for task in tasks {
        let (h, n) = task.await.map_err(BenchError::Task)??;
        merge(&mut hist, &h)?;
        done += n;
    }
    Ok((hist, done))
}

/// A keep-alive HTTP/1.1 client connection of the load generator.
struct HttpConn {
    stream: TcpStream,
    buf: BytesMut,
}

/// The one request the load generator sends.
const REQUEST: &[u8] =
    b"GET /echo HTTP/1.1\r\nhost: echo.bench\r\nuser-agent: orchestra-bench\r\n\r\n";

impl HttpConn {
    /// A connection with Nagle off (requests are small and latency-bound).
    async fn connect(addr: SocketAddr) -> Result<Self, BenchError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(mesh_error("connecting"))?;
        stream
            .set_nodelay(true)
            .map_err(mesh_error("setting TCP_NODELAY"))?;
        Ok(HttpConn {
            stream,
            buf: BytesMut::with_capacity(4096),
        })
    }

    /// One request and its whole response, which must be a 200 with `size` bytes of body.
    async fn round_trip(&mut self, size: usize) -> Result<(), BenchError> {
        self.stream
            .write_all(REQUEST)
            .await
            .map_err(mesh_error("sending a request"))?;
        let head = loop {
            if let Some(end) = head_end(&self.buf) {
                break end;
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad_response("a response head longer than 16 KiB"));
            }
            self.read_more().await?;
        };
        let text = String::from_utf8_lossy(&self.buf[..head]).into_owned();
        let status = text.split(' ').nth(1).unwrap_or_default();
        let length = content_length(&text)
            .ok_or_else(|| bad_response(&format!("a response without Content-Length: {text}")))?;
        while self.buf.len() < head + length {
            self.read_more().await?;
        }
        if status != "200" || length != size {
            let body = String::from_utf8_lossy(&self.buf[head..head + length]).into_owned();
            return Err(bad_response(&format!(
                "status {status} with {length} bytes (expected 200 with {size}): {body}"
            )));
        }
        self.buf.advance(head + length);
        Ok(())
    }

    async fn read_more(&mut self) -> Result<(), BenchError> {
        let n = self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(mesh_error("reading a response"))?;
        if n == 0 {
            return Err(bad_response("the connection closed mid-response"));
        }
        Ok(())
    }
}

/// The error for a response the load generator cannot use.
fn bad_response(what: &str) -> BenchError {
    BenchError::Mesh {
        what: format!("unexpected response: {what}"),
        source: Box::new(std::io::Error::from(std::io::ErrorKind::InvalidData)),
    }
}

/// The length of the head (through its blank line) at the start of `buf`, once complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// The `Content-Length` of a message head (0 is a valid value; `None` when absent or bad).
fn content_length(head: &str) -> Option<usize> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse().ok())?
    })
}

/// Whether a request head announces a chunked body (which the backend does not read).
fn is_chunked(head: &str) -> bool {
    head.split("\r\n").skip(1).any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
        })
    })
}

/// Starts the HTTP/1.1 backend on 127.0.0.1 (it runs until the runtime stops): every request
/// on a keep-alive connection gets a 200 with `size` bytes; returns its address.
async fn start_backend(size: usize) -> Result<SocketAddr, BenchError> {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(mesh_error("binding the HTTP backend"))?;
    let addr = listener
        .local_addr()
        .map_err(mesh_error("reading the HTTP backend's address"))?;
    let mut response =
        format!("HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {size}\r\n\r\n")
            .into_bytes();
    response.resize(response.len() + size, b'x');
    let response: Arc<[u8]> = response.into();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve_backend(stream, response.clone()));
        }
    });
    Ok(addr)
}

/// One backend connection: answers requests until the client closes or sends what the
/// backend does not read (a chunked body, an oversized head).
async fn serve_backend(mut stream: TcpStream, response: Arc<[u8]>) {
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        let head = loop {
            if let Some(end) = head_end(&buf) {
                break end;
            }
            if buf.len() > MAX_HEAD {
                return;
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        };
        let text = String::from_utf8_lossy(&buf[..head]).into_owned();
        if is_chunked(&text) {
            let _ = stream
                .write_all(b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
            return;
        }
        let body = content_length(&text).unwrap_or(0);
        while buf.len() < head + body {
            match stream.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        buf.advance(head + body);
        if stream.write_all(&response).await.is_err() {
            return;
        }
    }
}

/// The `echo` service of the benchmark's namespace, with `endpoint` as its one endpoint.
fn service_table(endpoint: SocketAddr) -> ServiceTable {
    let entry = ServiceEntry {
        // Only a name for the directory: nothing listens there.
        cluster: SocketAddr::from(([127, 2, 255, 2], 80)),
        node_port: None,
        protocol: Protocol::Tcp,
        affinity: Affinity::None,
        endpoints: vec![endpoint],
    };
    [(ServiceKey::new(NAMESPACE, "echo", ""), entry)]
        .into_iter()
        .collect()
}

/// Starts an outbound sidecar whose `echo.bench` service has `endpoint` as its one endpoint,
/// over mTLS with `tls` (the sidecar's settings and the server's expected identity) or plain
/// HTTP; returns where it listens.
async fn start_outbound(
    endpoint: SocketAddr,
    tls: Option<(MeshTls, SpiffeId)>,
) -> Result<SocketAddr, BenchError> {
    let directory = MeshDirectory::new(DirectoryConfig::default());
    directory
        .apply(&service_table(endpoint))
        .await
        .map_err(mesh_error("applying the service table to the sidecar"))?;
    let tls = tls.map(|(tls, server)| OutboundTls {
        tls,
        server_identities: HashMap::from([(ServiceKey::new(NAMESPACE, "echo", ""), server)]),
    });
    let proxy = HttpProxy::new(
        directory,
        HttpProxyConfig {
            tls,
            ..HttpProxyConfig::default()
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(mesh_error("binding the outbound sidecar"))?;
    let addr = listener
        .local_addr()
        .map_err(mesh_error("reading the outbound sidecar's address"))?;
    tokio::spawn(proxy.serve(listener));
    Ok(addr)
}

/// A sidecar's credentials for `identity`, issued by `ca`, trusting `ca` alone.
fn sidecar_tls(ca: &MeshCa, identity: &SpiffeId) -> Result<MeshTls, BenchError> {
    let (key, request) =
        SidecarKey::generate(identity).map_err(mesh_error("generating a sidecar key"))?;
    let issued = ca
        .issue(&request, identity, SystemTime::now())
        .map_err(mesh_error("issuing a sidecar certificate"))?;
    let bundle = TrustBundle::new(ca.trust_domain(), [ca.root().clone()])
        .map_err(mesh_error("building the trust bundle"))?;
    let credentials =
        MeshCredentials::new(&key, issued).map_err(mesh_error("loading sidecar credentials"))?;
    Ok(MeshTls::new(credentials, bundle))
}

/// Starts the server's inbound sidecar in front of `backend` (identity bench/echo, a policy
/// admitting only bench/client on the backend's port); returns where it listens, the client
/// sidecar's TLS settings and the identity the client must find on the server.
async fn start_inbound(backend: SocketAddr) -> Result<(SocketAddr, MeshTls, SpiffeId), BenchError> {
    let ca = MeshCa::generate(CaConfig::default(), SystemTime::now())
        .map_err(mesh_error("generating the mesh CA"))?;
    let id = |sa: &str| {
        SpiffeId::new(ca.trust_domain(), NAMESPACE, sa).map_err(mesh_error("naming an identity"))
    };
    let (client_id, server_id) = (id("client")?, id("echo")?);
    let policy = AuthorizationPolicy {
        default: DefaultAction::Deny,
        namespaces: HashMap::from([(
            NAMESPACE.to_owned(),
            NamespacePolicy {
                default: DefaultAction::Deny,
                rules: vec![Rule {
                    port: Some(backend.port()),
                    from: vec![Caller::Identity(client_id.clone())],
                    // Every request: the benchmark measures the identity check, not routes.
                    http: Vec::new(),
                }],
            },
        )]),
    };
    let inbound = InboundProxy::new(
        &sidecar_tls(&ca, &server_id)?,
        InboundConfig::new(NAMESPACE, backend, policy),
    );
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(mesh_error("binding the inbound sidecar"))?;
    let addr = listener
        .local_addr()
        .map_err(mesh_error("reading the inbound sidecar's address"))?;
    tokio::spawn(inbound.serve(listener));
    Ok((addr, sidecar_tls(&ca, &client_id)?, server_id))
}

/// Starts nginx as an HTTP reverse proxy to `backend`, with keep-alive upstream connections
/// (as the sidecars pool theirs), no cap on requests per client connection (nginx closes a
/// connection after 1,000 by default, which the load generator does not reconnect from) and
/// its temporary files in its own directory.
async fn start_nginx(binary: &Path, backend: SocketAddr) -> Result<nginx::Nginx, String> {
    nginx::start_with(binary, |addr, dir| {
        let d = dir.display();
        format!(
            "http {{\n  access_log off;\n  keepalive_requests 100000000;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             upstream echo {{ server {backend}; keepalive 256; }}\n  \
             server {{ listen {addr}; location / {{ proxy_pass http://echo; proxy_http_version 1.1; \
             proxy_set_header Connection \"\"; proxy_set_header Host {HOST}; }} }}\n}}\n"
        )
    })
    .await
}

/// VmRSS of one process in KiB.
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: MeshBenchArgs,
    }

    #[test]
    fn heads_are_parsed_for_their_framing() {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: x\r\nContent-Length: 64\r\n\r\n";
        assert_eq!(head_end(head.as_bytes()), Some(head.len()));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(content_length(head), Some(64));
        assert_eq!(
            content_length("HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n"),
            None
        );
        assert!(is_chunked(
            "POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n"
        ));
        assert!(!is_chunked(head));
    }

    #[test]
    fn smoke_caps_the_plan() {
        let args = Cli::try_parse_from(["mesh", "--smoke", "--rates", "1000,5"])
            .unwrap()
            .args;
        let plan = Plan::of(&args);
        assert_eq!(plan.rates, [200, 5]);
        assert_eq!(plan.connections, 4);
        assert_eq!(plan.seconds, Duration::from_millis(300));
    }

    /// The smoke run end to end: every path answers (the mTLS one included), each line after
    /// direct's compares with it, and nginx is measured or says why not.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_smoke_run_measures_every_path() {
        let args = Cli::try_parse_from(["mesh", "--smoke", "--rates", "100", "--seconds", "0.2"])
            .unwrap()
            .args;
        let mut lines = Vec::new();
        run_with(&args, |line| {
            lines.push(line.clone());
            Ok(())
        })
        .await
        .unwrap();
        let tests: Vec<_> = lines.iter().map(|l| (l.test, l.path)).collect();
        assert_eq!(tests.len(), 2 * 4 + 1, "{tests:?}");
        for line in &lines[..8] {
            if line.path == "nginx" && line.skipped.is_some() {
                continue;
            }
            assert!(line.requests.unwrap() > 0, "{line:?}");
            assert_eq!(line.vs.is_some(), line.path != "direct", "{line:?}");
        }
        for path in ["direct", "l7-hop", "sidecars-mtls"] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.path == path && l.test == "latency" && l.rate == Some(100)),
                "{path}"
            );
        }
        let memory = lines.last().unwrap();
        assert_eq!((memory.path, memory.test), ("process", "memory"));
        assert!(memory.rss_kib.unwrap() > 0);
    }
}
