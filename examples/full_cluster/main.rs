//! # `full_cluster`: a whole orchestra cluster in one process, doing real work
//!
//! Composes, through the public API only ([`orchestra::cluster::Cluster`]): the durable
//! embedded store in a temporary directory, the API server on a loopback port, the scheduler,
//! the controller manager, three node agents running pods as local processes, the
//! userspace service proxy and the mesh's outbound L7 proxy. Then, step by step with a live
//! timeline:
//!
//! 1. deploys an HTTP echo workload (this very executable, started by the agents with
//!    `--echo`, answering with its pod's name and version) as a Deployment of 3 behind a
//!    Service, and sends requests to the Service's ClusterIP: different pods answer;
//! 2. sends requests through the mesh, naming the service (`Host: echo.default`) instead of
//!    its address: the mesh finds the pods from the API and balances over them;
//! 3. scales it to 5;
//! 4. rolls out version 2 while two clients keep sending requests, one to the ClusterIP and
//!    one through the mesh, and counts the failed ones (the claim is zero for both);
//! 5. crashes one node (its agent and its pods' processes) and shows its pods replaced on the
//!    other nodes once the controllers mark it unreachable;
//!
//! and prints a summary table. It exits 0 only when every step did what it claims.
//!
//! ```text
//! cargo run --release --example full_cluster                      # the demonstration
//! cargo run --release --example full_cluster -- --smoke           # the same, faster, for CI
//! cargo run --release --example full_cluster -- --nodes 50 --runtime fake   # simulated, at scale
//! ```

mod echo;
mod mesh;
mod traffic;

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use orchestra::api::registry::ListOptions;
use orchestra::api::resources::{ConditionStatus, Deployment, Endpoints, Node, Pod, Service};
use orchestra::api::{ApiError, Client, LocalClient};
use orchestra::cluster::{Cluster, NodeRuntime};
use serde_json::json;
use tokio::time::Instant;

use mesh::Mesh;
use traffic::{Target, Traffic, TrafficStats, burst};

/// The echo workload's port inside each pod.
const ECHO_PORT: u16 = 8080;
/// The Service's port.
const SERVICE_PORT: u16 = 80;
/// The namespace everything runs in.
const NAMESPACE: &str = "default";

/// Command line of the example.
#[derive(Debug, Parser)]
#[command(
    about = "A whole orchestra cluster in one process: deploy, scale, roll out, lose a node."
)]
struct Args {
    /// Faster, for CI (shorter node timeouts, fewer requests); finishes within a minute.
    #[arg(long)]
    smoke: bool,
    /// How many node agents.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// How pods run: as local processes (real traffic) or simulated (for scale).
    #[arg(long, value_enum, default_value_t = NodeRuntime::Process)]
    runtime: NodeRuntime,
    /// Run as the echo workload (what the agents start in each pod).
    #[arg(long, hide = true)]
    echo: bool,
}

/// Why a step failed.
#[derive(Debug)]
struct Failure(String);

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        Failure(format!("API error: {err}"))
    }
}

/// Fail with a message unless `condition` holds.
fn check(condition: bool, message: impl FnOnce() -> String) -> Result<(), Failure> {
    if condition {
        Ok(())
    } else {
        Err(Failure(message()))
    }
}

/// One line of the summary.
struct Outcome {
    step: &'static str,
    claim: &'static str,
    ok: bool,
    seconds: f64,
    requests: u64,
    failures: u64,
    detail: String,
}

/// What a step reports besides success.
#[derive(Default)]
struct Report {
    requests: u64,
    failures: u64,
    detail: String,
}

impl Report {
    fn with_traffic(stats: &TrafficStats, detail: String) -> Self {
        Report {
            requests: stats.sent(),
            failures: stats.failures,
            detail,
        }
    }
}

/// Prints each step as it ends and keeps it for the summary.
struct Timeline {
    start: Instant,
    outcomes: Vec<Outcome>,
}

impl Timeline {
    async fn step<F>(&mut self, step: &'static str, claim: &'static str, run: F) -> bool
    where
        F: Future<Output = Result<Report, Failure>>,
    {
        println!(
            "[{:>6.2}s] {step}: {claim}",
            self.start.elapsed().as_secs_f64()
        );
        let began = Instant::now();
        let result = run.await;
        let seconds = began.elapsed().as_secs_f64();
        let (ok, report) = match result {
            Ok(report) => (true, report),
            Err(Failure(why)) => (
                false,
                Report {
                    detail: why,
                    ..Report::default()
                },
            ),
        };
        println!(
            "[{:>6.2}s]   {} {} ({seconds:.2}s)",
            self.start.elapsed().as_secs_f64(),
            if ok { "ok:" } else { "FAILED:" },
            report.detail
        );
        self.outcomes.push(Outcome {
            step,
            claim,
            ok,
            seconds,
            requests: report.requests,
            failures: report.failures,
            detail: report.detail,
        });
        ok
    }

    fn summary(&self) -> bool {
        println!();
        println!(
            "{:<10} {:>8} {:>9} {:>9}  {:<6} claim",
            "step", "seconds", "requests", "failures", "result"
        );
        for o in &self.outcomes {
            println!(
                "{:<10} {:>8.2} {:>9} {:>9}  {:<6} {}",
                o.step,
                o.seconds,
                o.requests,
                o.failures,
                if o.ok { "ok" } else { "FAILED" },
                o.claim
            );
            println!("{:<10} {}", "", o.detail);
        }
        let all = self.outcomes.iter().all(|o| o.ok);
        println!(
            "\n{} in {:.1}s",
            if all {
                "every step did what it claims"
            } else {
                "some steps FAILED"
            },
            self.start.elapsed().as_secs_f64()
        );
        all
    }
}

/// The sizes and timeouts of one run.
struct Plan {
    /// How long a silent node stays Ready.
    node_grace: Duration,
    /// Requests per burst check.
    burst: usize,
    /// The steady client's pace.
    pace: Duration,
    /// The longest a step may wait for the cluster to converge.
    patience: Duration,
    /// Real processes answer traffic; simulated ones do not.
    traffic: bool,
    nodes: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("starting the tokio runtime failed: {err}");
            return ExitCode::FAILURE;
        }
    };
    if args.echo {
        return runtime.block_on(run_echo());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            // Controllers retry conflicts with each other's writes, as they should: not worth a
            // warning in a demo.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,orchestra_controller::controller=error".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let plan = Plan {
        node_grace: if args.smoke {
            Duration::from_secs(3)
        } else {
            Duration::from_secs(6)
        },
        burst: if args.smoke { 20 } else { 50 },
        pace: Duration::from_millis(if args.smoke { 20 } else { 10 }),
        patience: Duration::from_secs(if args.smoke { 25 } else { 60 }),
        traffic: args.runtime == NodeRuntime::Process,
        nodes: args.nodes.max(2),
    };
    if runtime.block_on(demo(plan, args.runtime)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The echo workload: serve on the pod's IP until SIGTERM.
async fn run_echo() -> ExitCode {
    let ip: IpAddr = std::env::var("POD_IP")
        .ok()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let identity = echo::Identity::from_env();
    match echo::serve(
        SocketAddr::new(ip, ECHO_PORT),
        identity,
        Duration::from_millis(1500),
    )
    .await
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("echo: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn demo(plan: Plan, runtime: NodeRuntime) -> bool {
    let mut timeline = Timeline {
        start: Instant::now(),
        outcomes: Vec::new(),
    };
    let started = Cluster::builder()
        .nodes(plan.nodes)
        .runtime(runtime)
        .node_monitor_grace(plan.node_grace)
        .start()
        .await;
    let mut cluster = match started {
        Ok(cluster) => cluster,
        Err(err) => {
            eprintln!("the cluster did not start: {err}");
            return false;
        }
    };
    println!(
        "cluster: API at {}, {} {runtime:?} nodes, service proxy on\n",
        cluster.url(),
        plan.nodes
    );
    let ok = steps(&plan, &mut cluster, &mut timeline).await;
    cluster.shutdown().await;
    timeline.summary() && ok
}

/// The demo's steps; stops at the first that fails (the next would stand on it).
async fn steps(plan: &Plan, cluster: &mut Cluster, timeline: &mut Timeline) -> bool {
    let client = cluster.client().clone();
    let nodes = plan.nodes;
    let ok = timeline
        .step(
            "nodes",
            "every node agent registers and turns Ready",
            async {
                let ready = wait_until(plan.patience, "every node Ready", || async {
                    let (ready, _) = ready_nodes(&client).await?;
                    Ok((ready == nodes).then_some(ready))
                })
                .await?;
                Ok(Report {
                    detail: format!("{ready} nodes Ready"),
                    ..Report::default()
                })
            },
        )
        .await;
    if !ok {
        return false;
    }
    let ok = timeline
        .step(
            "deploy",
            if plan.traffic {
                "3 echo pods serve behind the Service's ClusterIP; all 3 answer"
            } else {
                "3 echo pods run and turn Ready (simulated: no traffic)"
            },
            deploy(plan, &client),
        )
        .await;
    if !ok {
        return false;
    }
    // The mesh proxy follows the cluster from here on (with real traffic only).
    let mut mesh = None;
    if plan.traffic {
        let ok = timeline
            .step(
                "mesh",
                "requests naming the service reach its pods through the mesh",
                mesh_step(plan, &client, &mut mesh),
            )
            .await;
        if !ok {
            return false;
        }
    }
    let ok = timeline
        .step(
            "scale",
            "scaled to 5, all 5 pods answer",
            scale(plan, &client),
        )
        .await;
    if !ok {
        return false;
    }
    let ok = timeline
        .step(
            "rollout",
            if plan.traffic {
                "version 2 replaces version 1 under load, zero failed requests by IP and by mesh"
            } else {
                "version 2 replaces version 1"
            },
            rollout(plan, &client, mesh.as_ref()),
        )
        .await;
    if !ok {
        return false;
    }
    timeline
        .step(
            "node-loss",
            "a crashed node's pods are replaced on the other nodes",
            node_loss(plan, cluster, &client),
        )
        .await
}

/// Polls `probe` every 100 ms until it yields `Some`, for at most `patience`.
async fn wait_until<T, F, Fut>(patience: Duration, what: &str, mut probe: F) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, Failure>>,
{
    let deadline = Instant::now() + patience;
    loop {
        if let Some(value) = probe().await? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(Failure(format!("{what}: not within {patience:?}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn ready_nodes(client: &LocalClient) -> Result<(usize, usize), Failure> {
    let nodes = client.list::<Node>(None, &ListOptions::default()).await?;
    let ready = nodes
        .items
        .iter()
        .filter(|node| {
            node.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == ConditionStatus::True)
            })
        })
        .count();
    Ok((ready, nodes.items.len()))
}

/// The echo Deployment at `version` with `replicas`.
fn echo_deployment(plan: &Plan, replicas: i32, version: &str) -> Result<Deployment, Failure> {
    let exe =
        std::env::current_exe().map_err(|e| Failure(format!("finding this executable: {e}")))?;
    let mut container = json!({
        "name": "echo",
        "image": "orchestra/echo",
        "command": [exe.to_string_lossy(), "--echo"],
        "env": [{"name": "VERSION", "value": version}],
        "ports": [{"name": "http", "containerPort": ECHO_PORT}],
    });
    if plan.traffic {
        container["readinessProbe"] = json!({
            "httpGet": {"path": "/", "port": ECHO_PORT},
            "periodSeconds": 1,
        });
    }
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "echo", "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "echo"}},
            "template": {
                "metadata": {"labels": {"app": "echo"}},
                "spec": {
                    "containers": [container],
                    "terminationGracePeriodSeconds": 5,
                    // Leave a lost node's pods after a second rather than the default 5 minutes.
                    "tolerations": [
                        {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 1},
                        {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                         "effect": "NoExecute", "tolerationSeconds": 1},
                    ],
                },
            },
        },
    });
    serde_json::from_value(deployment).map_err(|e| Failure(format!("the echo Deployment: {e}")))
}

/// The Service's address, once it has a ClusterIP.
async fn service_address(client: &LocalClient) -> Result<Target, Failure> {
    let service: Service = client.get(NAMESPACE, "echo").await?;
    let ip: IpAddr = service.spec.cluster_ip.parse().map_err(|_| {
        Failure(format!(
            "no ClusterIP on the Service: {:?}",
            service.spec.cluster_ip
        ))
    })?;
    Ok(Target {
        address: SocketAddr::new(ip, SERVICE_PORT),
        host: "echo",
    })
}

/// The mesh proxy, asked for the Service by its name.
fn mesh_target(mesh: &Mesh) -> Target {
    Target {
        address: mesh.address(),
        host: "echo.default",
    }
}

/// Ready endpoint addresses of the echo Service: (ip, node).
async fn endpoints(client: &LocalClient) -> Result<Vec<(String, String)>, Failure> {
    match client.get::<Endpoints>(NAMESPACE, "echo").await {
        Ok(endpoints) => Ok(endpoints
            .subsets
            .iter()
            .flat_map(|subset| subset.addresses.iter())
            .map(|a| (a.ip.clone(), a.node_name.clone().unwrap_or_default()))
            .collect()),
        Err(err) if err.is_not_found() => Ok(Vec::new()),
        Err(err) => Err(err.into()),
    }
}

/// The pods the echo Service's ready addresses point at, by name.
async fn endpoint_pods(client: &LocalClient) -> Result<BTreeSet<String>, Failure> {
    match client.get::<Endpoints>(NAMESPACE, "echo").await {
        Ok(endpoints) => Ok(endpoints
            .subsets
            .iter()
            .flat_map(|subset| subset.addresses.iter())
            .filter_map(|a| a.target_ref.as_ref().map(|pod| pod.name.clone()))
            .collect()),
        Err(err) if err.is_not_found() => Ok(BTreeSet::new()),
        Err(err) => Err(err.into()),
    }
}

fn pod_names(pods: &[Pod]) -> BTreeSet<String> {
    pods.iter().map(|pod| pod.metadata.name.clone()).collect()
}

/// Waits until the Deployment has `replicas` available pods of its newest template, all the
/// pods of the echo app are those, and (with traffic) the Service routes to exactly them.
async fn converge(plan: &Plan, client: &LocalClient, replicas: i32) -> Result<(), Failure> {
    wait_until(plan.patience, "the Deployment to converge", || async {
        let deployment: Deployment = client.get(NAMESPACE, "echo").await?;
        let Some(status) = deployment.status.as_ref() else {
            return Ok(None);
        };
        let settled = status.observed_generation >= deployment.metadata.generation
            && status.updated_replicas == Some(replicas)
            && status.available_replicas == Some(replicas)
            && status.replicas == Some(replicas);
        if !settled {
            return Ok(None);
        }
        let live = live_pods(client).await?;
        if live.len() != usize::try_from(replicas).unwrap_or(0) {
            return Ok(None);
        }
        if plan.traffic && endpoint_pods(client).await? != pod_names(&live) {
            return Ok(None);
        }
        Ok(Some(()))
    })
    .await
}

/// The echo pods not being deleted.
async fn live_pods(client: &LocalClient) -> Result<Vec<Pod>, Failure> {
    let pods = client
        .list::<Pod>(Some(NAMESPACE), &ListOptions::default())
        .await?;
    Ok(pods
        .items
        .into_iter()
        .filter(|p| {
            p.metadata.labels.get("app").map(String::as_str) == Some("echo")
                && p.metadata.deletion_timestamp.is_none()
        })
        .collect())
}

/// Sends bursts until `pods` distinct pods, all of `version`, answer a burst without failure
/// (the proxy learns of endpoint changes a moment after the Endpoints object shows them; while
/// a rollout's last old pod is still routed, a burst can reach `pods` pods with it among them),
/// and returns that burst.
async fn settled_burst(
    plan: &Plan,
    target: Target,
    count: usize,
    pods: usize,
    version: &str,
) -> Result<TrafficStats, Failure> {
    let last = parking_lot::Mutex::new(TrafficStats::default());
    let settled = wait_until(
        plan.patience,
        "the service proxy to route to every pod",
        || async {
            let stats = burst(target, count).await;
            let done = stats.failures == 0
                && stats.pods() == pods
                && stats.answers_of(version) == stats.sent();
            *last.lock() = stats.clone();
            Ok(done.then_some(stats))
        },
    )
    .await;
    let last = last.into_inner();
    settled.map_err(|Failure(why)| {
        Failure(format!(
            "{why}; the last burst: {} pods answered, {} failed {:?}",
            last.pods(),
            last.failures,
            last.failure_samples
        ))
    })
}

async fn deploy(plan: &Plan, client: &LocalClient) -> Result<Report, Failure> {
    client.create(&echo_deployment(plan, 3, "v1")?).await?;
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "echo", "namespace": NAMESPACE},
        "spec": {
            "selector": {"app": "echo"},
            "ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}],
        },
    }))
    .map_err(|e| Failure(format!("the echo Service: {e}")))?;
    let service = client.create(&service).await?;
    converge(plan, client, 3).await?;
    let placement = placement(client).await?;
    if !plan.traffic {
        return Ok(Report {
            detail: format!("3 pods Running and Ready on {placement}"),
            ..Report::default()
        });
    }
    let target = service_address(client).await?;
    let stats = settled_burst(plan, target, plan.burst, 3, "v1").await?;
    Ok(Report::with_traffic(
        &stats,
        format!(
            "Service {} at {target}; {} pods answered {} requests; pods on {placement}",
            service.metadata.name,
            stats.pods(),
            stats.sent()
        ),
    ))
}

/// Starts the mesh proxy (into `mesh`, which outlives the step) and sends a burst through it.
async fn mesh_step(
    plan: &Plan,
    client: &LocalClient,
    mesh: &mut Option<Mesh>,
) -> Result<Report, Failure> {
    let started = Mesh::start(client.clone())
        .await
        .map_err(|e| Failure(format!("starting the mesh proxy: {e}")))?;
    let mesh = mesh.insert(started);
    let target = mesh_target(mesh);
    let stats = settled_burst(plan, target, plan.burst, 3, "v1").await?;
    let answered = mesh.metrics().requests("echo.default", 200);
    Ok(Report::with_traffic(
        &stats,
        format!(
            "{} pods answered {} requests to {target}; the mesh counted {answered} answered 200",
            stats.pods(),
            stats.sent(),
        ),
    ))
}

/// `node: count` of the live echo pods.
async fn placement(client: &LocalClient) -> Result<String, Failure> {
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    for pod in live_pods(client).await? {
        *per_node.entry(pod.spec.node_name.clone()).or_default() += 1;
    }
    Ok(per_node
        .iter()
        .map(|(node, n)| format!("{node}: {n}"))
        .collect::<Vec<_>>()
        .join(", "))
}

/// Changes the Deployment with `change`, retrying on conflicts with the controllers' writes.
async fn edit_deployment(
    client: &LocalClient,
    change: impl Fn(&mut Deployment),
) -> Result<(), Failure> {
    loop {
        let mut deployment: Deployment = client.get(NAMESPACE, "echo").await?;
        change(&mut deployment);
        match client.update(&deployment).await {
            Ok(_) => return Ok(()),
            Err(err) if err.is_conflict() => continue,
            Err(err) => return Err(err.into()),
        }
    }
}

async fn scale(plan: &Plan, client: &LocalClient) -> Result<Report, Failure> {
    edit_deployment(client, |d| d.spec.replicas = Some(5)).await?;
    converge(plan, client, 5).await?;
    let placement = placement(client).await?;
    if !plan.traffic {
        return Ok(Report {
            detail: format!("5 pods on {placement}"),
            ..Report::default()
        });
    }
    let target = service_address(client).await?;
    let stats = settled_burst(plan, target, plan.burst, 5, "v1").await?;
    Ok(Report::with_traffic(
        &stats,
        format!("5 pods answered; pods on {placement}"),
    ))
}

async fn rollout(
    plan: &Plan,
    client: &LocalClient,
    mesh: Option<&Mesh>,
) -> Result<Report, Failure> {
    let steady = if plan.traffic {
        Some(Traffic::start(service_address(client).await?, plan.pace))
    } else {
        None
    };
    let meshed = mesh.map(|mesh| Traffic::start(mesh_target(mesh), plan.pace));
    let template = echo_deployment(plan, 5, "v2")?.spec.template;
    edit_deployment(client, |d| d.spec.template = template.clone()).await?;
    let converged = converge(plan, client, 5).await;
    let Some(steady) = steady else {
        converged?;
        return Ok(Report {
            detail: "5 pods of the new template Ready".into(),
            ..Report::default()
        });
    };
    // The client keeps going while the proxy drops the last old endpoints.
    let target = service_address(client).await?;
    let after = settled_burst(plan, target, plan.burst, 5, "v2").await;
    let stats = steady.stop().await;
    let meshed = match meshed {
        Some(meshed) => Some(meshed.stop().await),
        None => None,
    };
    converged?;
    let after = after?;
    check(after.answers_of("v2") == after.sent(), || {
        format!("after the rollout, answers were {:?}", after.answers)
    })?;
    check(stats.answers_of("v2") > 0, || {
        "no request reached version 2 during the rollout".into()
    })?;
    check(stats.failures == 0, || {
        format!(
            "{} of {} requests to the ClusterIP failed during the rollout: {:?}",
            stats.failures,
            stats.sent(),
            stats.failure_samples
        )
    })?;
    let mut detail = format!(
        "{} requests to the ClusterIP during the rollout ({} by v1, {} by v2), {} failed",
        stats.sent(),
        stats.answers_of("v1"),
        stats.answers_of("v2"),
        stats.failures
    );
    let mut total = stats;
    if let Some(meshed) = meshed {
        check(meshed.failures == 0, || {
            format!(
                "{} of {} requests through the mesh failed during the rollout: {:?}",
                meshed.failures,
                meshed.sent(),
                meshed.failure_samples
            )
        })?;
        detail.push_str(&format!(
            "; {} through the mesh ({} by v1, {} by v2), {} failed",
            meshed.sent(),
            meshed.answers_of("v1"),
            meshed.answers_of("v2"),
            meshed.failures
        ));
        total.failures += meshed.failures;
        for (body, n) in meshed.answers {
            *total.answers.entry(body).or_default() += n;
        }
    }
    Ok(Report::with_traffic(&total, detail))
}

async fn node_loss(
    plan: &Plan,
    cluster: &mut Cluster,
    client: &LocalClient,
) -> Result<Report, Failure> {
    // The node with the most echo pods.
    let pods = live_pods(client).await?;
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    for pod in &pods {
        *per_node.entry(pod.spec.node_name.clone()).or_default() += 1;
    }
    let Some((victim, lost)) = per_node.into_iter().max_by_key(|(_, n)| *n) else {
        return Err(Failure("no echo pods to lose".into()));
    };
    check(cluster.crash_node(&victim).await, || {
        format!("{victim} is not running")
    })?;
    let began = Instant::now();
    // Replacements: 5 live pods, none on the lost node, all serving.
    wait_until(
        plan.patience + plan.node_grace,
        "the lost node's pods to be replaced",
        || async {
            let live = live_pods(client).await?;
            let elsewhere = live.iter().filter(|p| p.spec.node_name != victim).count();
            if live.len() != 5 || elsewhere != 5 {
                return Ok(None);
            }
            let deployment: Deployment = client.get(NAMESPACE, "echo").await?;
            let available = deployment.status.and_then(|s| s.available_replicas);
            if available != Some(5) {
                return Ok(None);
            }
            if plan.traffic {
                let routed = endpoints(client).await?;
                if routed.len() != 5 || routed.iter().any(|(_, node)| *node == victim) {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await?;
    let replaced_in = began.elapsed();
    let placement = placement(client).await?;
    if !plan.traffic {
        return Ok(Report {
            detail: format!(
                "{lost} pods of {victim} replaced in {replaced_in:.1?}; now {placement}"
            ),
            ..Report::default()
        });
    }
    let target = service_address(client).await?;
    let stats = settled_burst(plan, target, plan.burst, 5, "v2").await?;
    Ok(Report::with_traffic(
        &stats,
        format!(
            "{lost} pods of {victim} replaced in {replaced_in:.1?}; 5 pods answer, on {placement}"
        ),
    ))
}
