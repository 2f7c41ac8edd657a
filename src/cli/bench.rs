//! `orchestra bench ...`: the arguments of the benchmarks.
//!
//! [`BenchCommand`] holds one [`BenchTarget`] per benchmarked component: `store`, `sched`,
//! `proxy`, `mesh`, `node`, `cluster`, `api`, `controller` and `dns`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

/// `orchestra bench TARGET ...`.
#[derive(Debug, Args)]
pub struct BenchCommand {
    /// The component to benchmark.
    #[command(subcommand)]
    pub target: BenchTarget,
}

/// The benchmarked components.
#[derive(Debug, Subcommand)]
pub enum BenchTarget {
    /// The key-value store: put, get, compare-and-swap and watch fan-out, per backend.
    Store(StoreBenchArgs),
    /// The scheduler: pods placed one by one on a snapshot by the framework alone, or end to
    /// end by the scheduling loop against an in-process API (`--mode e2e`), per workload.
    Sched(SchedBenchArgs),
    /// The L4 service proxy: bulk throughput, latency at a fixed rate and max requests/s,
    /// direct vs through TcpProxy vs through nginx.
    Proxy(ProxyBenchArgs),
    /// The L7 sidecar: requests/s at saturation and latency at fixed rates, direct vs one
    /// outbound sidecar vs the sidecar pair over mTLS vs nginx as an HTTP reverse proxy.
    Mesh(MeshBenchArgs),
    /// The node agent: pod start latency (bound to Running and Ready) and teardown per
    /// runtime, against the bare runtime calls; memory per pod of the fake runtime.
    Node(NodeBenchArgs),
    /// The whole control plane with simulated nodes at scale: time until every pod runs, pod
    /// startup latency in bulk and under churn, peak memory and CPU.
    #[cfg(feature = "server")]
    Cluster(ClusterBenchArgs),
    /// The API: creates, gets, lists and watch fan-out through the bare store, LocalClient
    /// and RemoteClient (gRPC to an API server in the same process).
    Api(ApiBenchArgs),
    /// The workload controllers alone on an in-process API: ReplicaSets' pod creations per
    /// second, and the time of a Deployment's rolling update.
    Controller(crate::bench::controller::ControllerBenchArgs),
    /// The cluster DNS: queries/s and latency on loopback UDP with many services, side by
    /// side with dnsmasq serving the same names.
    Dns(DnsBenchArgs),
}

/// `orchestra bench dns`.
#[derive(Args, Debug, Clone)]
pub struct DnsBenchArgs {
    /// Services (one A name each).
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub services: u32,

    /// Concurrent clients (one outstanding query each), comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub clients: Vec<u32>,

    /// How long each run lasts, in seconds (fractions allowed).
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub seconds: Duration,

    /// A quick run for CI (50 services, 2 clients, 0.3 s): checks it works, not how fast.
    #[arg(long)]
    pub smoke: bool,
}

/// The scheduling workloads, modelled on kube-scheduler's scheduler_perf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchedWorkload {
    /// Pods with CPU and memory requests and nothing else (SchedulingBasic).
    Basic,
    /// Pods requiring a node label half of the nodes carry (SchedulingNodeAffinity).
    NodeAffinity,
    /// Pods in groups, each requiring a pod of its group in its zone (SchedulingPodAffinity).
    PodAffinity,
    /// Pods in groups, at most one pod of a group per node (SchedulingPodAntiAffinity).
    PodAntiAffinity,
    /// Pods in groups spread evenly over zones, maxSkew 1 (TopologySpreading).
    TopologySpread,
    /// Nodes full of low-priority pods; each high-priority pod preempts one
    /// (PreemptionBasic).
    Preemption,
    /// Gangs of 10 pods placed all or nothing (Coscheduling at Permit): each member waits,
    /// assumed on its node, until the tenth is placed.
    Gang,
}

impl SchedWorkload {
    /// The name used on the command line and in the results.
    pub fn as_str(self) -> &'static str {
        match self {
            SchedWorkload::Basic => "basic",
            SchedWorkload::NodeAffinity => "node-affinity",
            SchedWorkload::PodAffinity => "pod-affinity",
            SchedWorkload::PodAntiAffinity => "pod-anti-affinity",
            SchedWorkload::TopologySpread => "topology-spread",
            SchedWorkload::Preemption => "preemption",
            SchedWorkload::Gang => "gang",
        }
    }
}

/// How `orchestra bench sched` schedules the pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchedMode {
    /// The framework alone: each pod scheduled on a snapshot and assumed there.
    Framework,
    /// The scheduling loop against an in-process API (LocalClient over MemStore): pods
    /// created through the API, watched, scheduled and bound through the API.
    E2e,
}

impl SchedMode {
    /// The name used on the command line and in the results.
    pub fn as_str(self) -> &'static str {
        match self {
            SchedMode::Framework => "framework",
            SchedMode::E2e => "e2e",
        }
    }
}

/// `orchestra bench sched`: each workload and mode is one run on a fresh cluster of `--nodes`
/// nodes, placing `--pods` pods with the default profile (framework: one by one, each
/// placement assumed into the snapshot before the next pod; e2e: created through the API and
/// bound by the scheduling loop), and prints one JSON line.
#[derive(Clone, Debug, Args)]
pub struct SchedBenchArgs {
    /// Workloads, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "basic")]
    pub workload: Vec<SchedWorkload>,

    /// Nodes in the cluster.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub nodes: u32,

    /// Pods to place.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub pods: u32,

    /// Seed of the scheduler's tie-breaking (runs with the same seed place pods identically).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// How pods are scheduled, comma-separated: `framework` (the framework alone on a
    /// snapshot) or `e2e` (the scheduling loop against an in-process API through LocalClient:
    /// pods created through the API, bound through the binding subresource).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "framework")]
    pub mode: Vec<SchedMode>,

    /// `--mode e2e`: how long the pods may take to be bound before the run fails, seconds.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout_seconds: u64,

    /// Cap everything for CI: at most 200 nodes and 400 pods.
    #[arg(long)]
    pub smoke: bool,
}

/// The store backends a benchmark can run against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// `MemStore`: everything in memory.
    Memory,
    /// `DiskStore`: durable, on redb, one fsync per group commit.
    Disk,
    /// `EtcdStore` against the etcd v3 endpoints of `--etcd-endpoints` (a real etcd or
    /// `orchestra etcd`); each run works under its own key prefix and deletes it afterwards.
    Etcd,
}

impl Backend {
    /// The name used on the command line and in the results.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Memory => "memory",
            Backend::Disk => "disk",
            Backend::Etcd => "etcd",
        }
    }
}

/// The store operations a benchmark can measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreOp {
    /// Unconditional puts to random keys of the key space.
    Put,
    /// Gets of random keys of a pre-populated key space.
    Get,
    /// Compare-and-swap transactions (update if the mod revision is unchanged) on random keys.
    Txn,
    /// Watch fan-out: many watchers on one prefix, one writer at a fixed rate.
    Watch,
}

impl StoreOp {
    /// The name used on the command line and in the results.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreOp::Put => "put",
            StoreOp::Get => "get",
            StoreOp::Txn => "txn",
            StoreOp::Watch => "watch",
        }
    }
}

/// `orchestra bench store`: every combination of `--op`, `--clients` and `--backend` is one run
/// with a fresh store, and prints one JSON line. Runs of the same op and clients on different
/// backends are printed next to each other.
#[derive(Clone, Debug, Args)]
pub struct StoreBenchArgs {
    /// Backends, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "memory")]
    pub backend: Vec<Backend>,

    /// Operations, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "put")]
    pub op: Vec<StoreOp>,

    /// Concurrent clients, comma-separated (ignored by `watch`, which has one writer).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1",
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub clients: Vec<u32>,

    /// How long each run lasts, in seconds (fractions allowed).
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub seconds: Duration,

    /// Bytes per value (the watch benchmark keeps a timestamp and a sequence number in the
    /// first 16).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(16..=1_048_576))]
    pub value_size: u32,

    /// Distinct keys the clients pick from at random.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub keys: u32,

    /// Watchers of the watch benchmark, all on one prefix.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub watchers: u32,

    /// Writes per second of the watch benchmark's writer.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: u32,

    /// Where the disk backend keeps its data: each run gets a fresh subdirectory, removed
    /// afterwards (default: the system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The etcd v3 endpoints of the `etcd` backend, comma-separated (`http://host:port`): the
    /// members of one server or cluster. Repeat the flag to run against several servers in
    /// one invocation (say a real etcd and `orchestra etcd`): each is a backend of its own,
    /// compared with the first.
    #[arg(long, value_name = "URLS", value_parser = parse_endpoints)]
    pub etcd_endpoints: Vec<String>,

    /// Connections (HTTP/2 channels) the `etcd` backend opens to each endpoint; clients are
    /// spread over them round-robin, each request multiplexed as a stream on its channel.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub etcd_connections: u32,

    /// Compact the memory and disk stores automatically, keeping at least this many revisions
    /// of history (etcd's `--auto-compaction-mode=revision`); without it, history grows for
    /// the whole run.
    #[arg(long, value_name = "REVISIONS", value_parser = clap::value_parser!(u64).range(1..))]
    pub retain_revisions: Option<u64>,

    /// Cap everything for CI: at most 1 second per run, 100 watchers, 1000 keys.
    #[arg(long)]
    pub smoke: bool,
}

/// How `orchestra bench api` reaches the objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiPath {
    /// The bare store underneath: the same JSON at the same keys, no API (the baseline).
    Store,
    /// `LocalClient`: the registry in process.
    Local,
    /// `RemoteClient`: gRPC over loopback to an API server in the same process.
    Remote,
}

/// The operations of `orchestra bench api`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiOp {
    /// Create new pods.
    Create,
    /// Get pods at random out of `--objects`.
    Get,
    /// List a namespace of `--list-size` pods.
    List,
    /// `--watchers` watches of one namespace's pods while one writer creates pods at `--rate`.
    Watch,
}

/// Which store the API benchmark runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApiStore {
    /// The durable embedded store (DiskStore) in a fresh temporary directory.
    Embedded,
    /// The in-memory store.
    Memory,
}

/// `orchestra bench api`: every combination of `--op`, `--clients` and `--path` is one run on
/// a fresh store, printing one JSON line; the paths of one op and client count are printed
/// next to each other, with the ratio to the bare store.
#[derive(Clone, Debug, Args)]
pub struct ApiBenchArgs {
    /// Paths, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "store,local,remote"
    )]
    pub path: Vec<ApiPath>,

    /// Operations, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "create,get,list,watch"
    )]
    pub op: Vec<ApiOp>,

    /// Concurrent clients, comma-separated (the watch benchmark has one writer).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,64",
        value_parser = clap::value_parser!(u32).range(1..=100_000)
    )]
    pub clients: Vec<u32>,

    /// The store under the API.
    #[arg(long, value_enum, default_value_t = ApiStore::Embedded)]
    pub store: ApiStore,

    /// How long each run lasts, in seconds (fractions allowed).
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub seconds: Duration,

    /// Pods written before a `get` run, picked from at random.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub objects: u32,

    /// Pods in the namespace a `list` run lists.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub list_size: u32,

    /// Watchers of the watch benchmark.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub watchers: u32,

    /// Writes per second of the watch benchmark's writer.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rate: u32,

    /// gRPC connections the remote path opens; clients and watchers are spread over them.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub connections: u32,

    /// Cap everything for CI: 0.2 s per run, at most 4 clients, 4 watchers at 50 writes/s,
    /// 100 objects.
    #[arg(long)]
    pub smoke: bool,
}

/// Check one `--etcd-endpoints`: comma-separated, none empty.
fn parse_endpoints(text: &str) -> Result<String, String> {
    let endpoints: Vec<&str> = text.split(',').map(str::trim).collect();
    if endpoints.iter().any(|e| e.is_empty()) {
        return Err(format!(
            "`{text}` has an empty endpoint: give comma-separated URLs like http://127.0.0.1:2379"
        ));
    }
    Ok(endpoints.join(","))
}

/// The endpoints of one `--etcd-endpoints`.
pub fn split_endpoints(group: &str) -> Vec<String> {
    group.split(',').map(str::to_string).collect()
}

/// The longest run `--seconds` accepts.
const MAX_SECONDS: f64 = 24.0 * 3600.0;

/// Parse `--seconds`: a positive number of seconds, at most a day.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds (for example 5 or 0.5)"))?;
    if !seconds.is_finite() || seconds <= 0.0 || seconds > MAX_SECONDS {
        return Err(format!(
            "{seconds} seconds is out of range: use more than 0 and at most {MAX_SECONDS}"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
pub(crate) mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    /// Parse `orchestra bench store LINE...` into its arguments (for the tests of every module).
    pub(crate) fn store_args(line: &[&str]) -> Result<StoreBenchArgs, clap::Error> {
        let cli = Cli::try_parse_from(["orchestra", "bench", "store"].iter().chain(line))?;
        // Other commands and targets exist only with some features: the last arm is then
        // unreachable.
        #[allow(unreachable_patterns)]
        match cli.command {
            Command::Bench(BenchCommand {
                target: BenchTarget::Store(args),
            }) => Ok(args),
            other => panic!("`bench store` parsed as {other:?}"),
        }
    }

    #[test]
    fn parses_comma_separated_lists() {
        let args = store_args(&[
            "--backend",
            "memory,disk",
            "--op",
            "put,watch",
            "--clients",
            "1,100",
        ])
        .unwrap();
        assert_eq!(args.backend, [Backend::Memory, Backend::Disk]);
        assert_eq!(args.op, [StoreOp::Put, StoreOp::Watch]);
        assert_eq!(args.clients, [1, 100]);
    }

    #[test]
    fn has_small_defaults() {
        let args = store_args(&[]).unwrap();
        assert_eq!(args.backend, [Backend::Memory]);
        assert_eq!(args.op, [StoreOp::Put]);
        assert_eq!(args.clients, [1]);
        assert_eq!(args.seconds, Duration::from_secs(5));
        assert_eq!(
            (args.value_size, args.keys, args.watchers, args.rate),
            (256, 10_000, 10_000, 1_000)
        );
    }

    #[test]
    fn rejects_bad_values_with_a_clear_error() {
        for bad in [
            &["--clients", "0"][..],
            &["--backend", "zookeeper"],
            &["--etcd-connections", "0"],
            &["--etcd-endpoints", "http://a:1,,http://b:2"],
            &["--etcd-endpoints", ""],
            &["--op", "scan"],
            &["--seconds", "-1"],
            &["--seconds", "NaN"],
            &["--seconds", "soon"],
            &["--value-size", "8"],
        ] {
            assert!(store_args(bad).is_err(), "{bad:?} was accepted");
        }
        let err = store_args(&["--seconds", "soon"]).unwrap_err().to_string();
        assert!(err.contains("not a number of seconds"), "{err}");
    }

    fn api_args(line: &[&str]) -> Result<ApiBenchArgs, clap::Error> {
        let cli = Cli::try_parse_from(["orchestra", "bench", "api"].iter().chain(line))?;
        #[allow(unreachable_patterns)]
        match cli.command {
            Command::Bench(BenchCommand {
                target: BenchTarget::Api(args),
            }) => Ok(args),
            other => panic!("`bench api` parsed as {other:?}"),
        }
    }

    #[test]
    fn api_parses_paths_ops_and_sizes() {
        let args = api_args(&[]).unwrap();
        assert_eq!(args.path, [ApiPath::Store, ApiPath::Local, ApiPath::Remote]);
        assert_eq!(
            args.op,
            [ApiOp::Create, ApiOp::Get, ApiOp::List, ApiOp::Watch]
        );
        assert_eq!(args.clients, [1, 64]);
        assert_eq!(
            (args.store, args.watchers, args.rate),
            (ApiStore::Embedded, 1000, 1000)
        );
        let args = api_args(&[
            "--path", "remote", "--op", "watch", "--store", "memory", "--smoke",
        ])
        .unwrap();
        assert_eq!(
            (args.path, args.op, args.smoke),
            (vec![ApiPath::Remote], vec![ApiOp::Watch], true)
        );
        for bad in [
            &["--path", "grpc"][..],
            &["--clients", "0"],
            &["--op", "scan"],
        ] {
            assert!(api_args(bad).is_err(), "{bad:?} was accepted");
        }
    }

    fn sched_args(line: &[&str]) -> Result<SchedBenchArgs, clap::Error> {
        let cli = Cli::try_parse_from(["orchestra", "bench", "sched"].iter().chain(line))?;
        #[allow(unreachable_patterns)]
        match cli.command {
            Command::Bench(BenchCommand {
                target: BenchTarget::Sched(args),
            }) => Ok(args),
            other => panic!("`bench sched` parsed as {other:?}"),
        }
    }

    #[test]
    fn sched_parses_workloads_and_sizes() {
        let args =
            sched_args(&["--workload", "basic,pod-anti-affinity", "--nodes", "100"]).unwrap();
        assert_eq!(
            args.workload,
            [SchedWorkload::Basic, SchedWorkload::PodAntiAffinity]
        );
        assert_eq!((args.nodes, args.pods, args.smoke), (100, 10_000, false));
        assert_eq!(args.mode, [SchedMode::Framework]);
        let args = sched_args(&["--mode", "framework,e2e", "--timeout-seconds", "9"]).unwrap();
        assert_eq!(
            (args.mode, args.timeout_seconds),
            (vec![SchedMode::Framework, SchedMode::E2e], 9)
        );
        assert!(sched_args(&["--mode", "loop"]).is_err());
        assert_eq!(
            sched_args(&["--workload", "gang"]).unwrap().workload,
            [SchedWorkload::Gang]
        );
        assert!(sched_args(&["--workload", "gangs"]).is_err());
        assert!(sched_args(&["--nodes", "0"]).is_err());
    }

    #[test]
    fn parses_the_etcd_backend_and_its_endpoints() {
        let args = store_args(&[
            "--backend",
            "disk,etcd",
            "--etcd-endpoints",
            "http://127.0.0.1:2379,http://127.0.0.1:22379",
            "--etcd-endpoints",
            "http://127.0.0.1:32379",
            "--etcd-connections",
            "4",
        ])
        .unwrap();
        assert_eq!(args.backend, [Backend::Disk, Backend::Etcd]);
        assert_eq!(
            args.etcd_endpoints,
            [
                "http://127.0.0.1:2379,http://127.0.0.1:22379",
                "http://127.0.0.1:32379"
            ]
        );
        assert_eq!(
            split_endpoints(&args.etcd_endpoints[0]),
            ["http://127.0.0.1:2379", "http://127.0.0.1:22379"]
        );
        assert_eq!(args.etcd_connections, 4);
        let defaults = store_args(&[]).unwrap();
        assert!(defaults.etcd_endpoints.is_empty());
        assert_eq!(defaults.etcd_connections, 1);
    }

    #[test]
    fn accepts_fractional_seconds() {
        assert_eq!(
            store_args(&["--seconds", "0.25"]).unwrap().seconds,
            Duration::from_millis(250)
        );
    }
}

/// `orchestra bench proxy`: an in-process echo backend reached three ways (directly, through
/// `TcpProxy`, through nginx's TCP proxy when nginx is installed), each measured for bulk
/// throughput, latency at a fixed open-loop rate, and max requests/s with many connections.
#[derive(Clone, Debug, Args)]
pub struct ProxyBenchArgs {
    /// MiB streamed through one connection by the bulk test.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub bulk_mib: u32,

    /// Requests per second of the open-loop latency test.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: u32,

    /// Connections of the latency test (requests go to them in turn) and of the closed-loop
    /// max-throughput test.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,

    /// Bytes per request (and per echoed response).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=1_048_576))]
    pub message_size: u32,

    /// How long the latency and the max-throughput tests each last, in seconds.
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub seconds: Duration,

    /// The nginx binary (default: `nginx` on PATH, then /usr/sbin/nginx); without one the
    /// nginx path is reported as skipped.
    #[arg(long, value_name = "PATH")]
    pub nginx: Option<PathBuf>,

    /// Cap everything for CI: 16 MiB bulk, 0.5 s per timed test, 8 connections.
    #[arg(long)]
    pub smoke: bool,

    /// `userspace`: the paths above; `nftables`: NftablesProxy's sync time (needs root, `ip`
    /// and `nft`; reported as skipped otherwise).
    #[arg(long, value_enum, default_value = "userspace")]
    pub mode: ProxyBenchMode,

    /// Service counts of the nftables sync test, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,30000", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub services: Vec<u32>,

    /// Endpoints per service of the nftables sync test.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub endpoints: u32,
}

/// `orchestra bench mesh`: an in-process HTTP/1.1 backend reached directly, through one
/// outbound sidecar, through the client and server sidecars over mTLS, and through nginx as
/// a reverse proxy (when installed), each measured for max requests/s and for latency at
/// fixed open-loop rates.
#[derive(Clone, Debug, Args)]
pub struct MeshBenchArgs {
    /// Requests per second of the open-loop latency tests, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rates: Vec<u32>,

    /// Keep-alive connections of every test (the latency tests send to them in turn).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub connections: u32,

    /// Bytes of each response's body.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(0..=1_048_576))]
    pub message_size: u32,

    /// How long each test lasts, in seconds (fractions allowed).
    #[arg(long, default_value = "5", value_parser = parse_seconds)]
    pub seconds: Duration,

    /// The nginx binary (default: `nginx` on PATH, then /usr/sbin/nginx); without one the
    /// nginx path is reported as skipped.
    #[arg(long, value_name = "PATH")]
    pub nginx: Option<PathBuf>,

    /// Cap everything for CI: rates at most 200/s, 4 connections, 0.3 s per test.
    #[arg(long)]
    pub smoke: bool,
}

/// What `orchestra bench proxy` measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyBenchMode {
    /// Direct vs TcpProxy vs nginx: throughput and latency.
    Userspace,
    /// NftablesProxy: full and one-service sync times.
    Nftables,
}

/// The runtimes `orchestra bench node` can measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRuntime {
    /// `FakeRuntime`: containers simulated in memory, no processes.
    Fake,
    /// `ProcessRuntime`: containers as local processes (`sleep 1000`), state in a temporary
    /// directory.
    Process,
    /// `CriRuntime`: containerd at `--cri-endpoint`, pods of `--cri-image` (needs the `cri`
    /// feature).
    Cri,
}

impl NodeRuntime {
    /// The name used on the command line and in the results.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRuntime::Fake => "fake",
            NodeRuntime::Process => "process",
            NodeRuntime::Cri => "cri",
        }
    }
}

/// `orchestra bench node`: per runtime and per batch size, pods created already bound to the
/// agent's node, timed until a watch sees them Running and Ready, then deleted and timed until
/// they are gone; the bare runtime calls are timed in the same run for comparison.
#[derive(Clone, Debug, Args)]
pub struct NodeBenchArgs {
    /// Runtimes, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "fake,process"
    )]
    pub runtime: Vec<NodeRuntime>,

    /// Batch sizes, comma-separated: pods created at once (a batch of 1 is repeated
    /// `--repeat` times; larger batches run once).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1,100",
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub pods: Vec<u32>,

    /// How many times a batch of 1 pod is run.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub repeat: u32,

    /// The agent's sync interval(s) in seconds, comma-separated (the agent's default is 1):
    /// how often a pod worker re-reads the runtime when nothing else wakes it.
    #[arg(long, value_delimiter = ',', default_value = "1,0.01", value_parser = parse_seconds)]
    pub sync_interval: Vec<Duration>,

    /// Fake pods created directly in a FakeRuntime to measure its memory per pod (0: skip).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub memory_pods: u32,

    /// The CRI runtime's socket (`--runtime cri`).
    #[arg(long, default_value = "unix:///run/containerd/containerd.sock")]
    pub cri_endpoint: String,

    /// The image of the CRI runtime's pods: it must be present (or pullable) and have
    /// `/bin/sh` and `sleep` (busybox does).
    #[arg(long, default_value = "docker.io/library/busybox:latest")]
    pub cri_image: String,

    /// Cap everything for CI: batches of at most 10 pods, 5 repeats, 1,000 memory pods.
    #[arg(long)]
    pub smoke: bool,
}

/// `orchestra bench cluster`: `--nodes` fake nodes, `--pods` pods as ReplicaSets, then churn;
/// one JSON line per phase.
#[derive(Clone, Debug, Args)]
pub struct ClusterBenchArgs {
    /// Simulated nodes (agents on the fake runtime).
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub nodes: u32,

    /// Pods of the bulk load.
    #[arg(long, default_value_t = 150_000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub pods: u32,

    /// Replicas per ReplicaSet of the bulk load.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub pods_per_set: u32,

    /// Pods created (and deleted) per second in the churn phase (0: skip it).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(0..=100_000))]
    pub churn_rate: u32,

    /// How long the churn phase creates pods, seconds.
    #[arg(long, default_value_t = 30)]
    pub churn_seconds: u32,

    /// How long each phase may take before the run fails, seconds.
    #[arg(long, default_value_t = 600)]
    pub timeout_seconds: u64,

    /// Revisions of store history kept: older ones are compacted as they accumulate (etcd's
    /// revision auto-compaction), so that the bulk load's history does not all stay in memory
    /// until the periodic compactor runs (0: only the periodic compactor).
    #[arg(long, default_value_t = 100_000)]
    pub store_history: u64,

    /// Cap everything for CI: 20 nodes, 400 pods in sets of 50, 2 s of churn at 50 pods/s.
    #[arg(long)]
    pub smoke: bool,
}

#[cfg(test)]
mod node_tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn node_args(line: &[&str]) -> Result<NodeBenchArgs, clap::Error> {
        let cli = Cli::try_parse_from(["orchestra", "bench", "node"].iter().chain(line))?;
        #[allow(unreachable_patterns)]
        match cli.command {
            Command::Bench(BenchCommand {
                target: BenchTarget::Node(args),
            }) => Ok(args),
            other => panic!("`bench node` parsed as {other:?}"),
        }
    }

    #[test]
    fn node_parses_runtimes_batches_and_intervals() {
        let args = node_args(&[
            "--runtime",
            "process",
            "--pods",
            "1,20",
            "--sync-interval",
            "0.05",
            "--smoke",
        ])
        .unwrap();
        assert_eq!(args.runtime, [NodeRuntime::Process]);
        assert_eq!(args.pods, [1, 20]);
        let cri = node_args(&["--runtime", "cri", "--cri-endpoint", "unix:///tmp/c.sock"]).unwrap();
        assert_eq!(cri.runtime, [NodeRuntime::Cri]);
        assert_eq!(cri.cri_endpoint, "unix:///tmp/c.sock");
        assert_eq!(args.sync_interval, [Duration::from_millis(50)]);
        assert!(args.smoke);
    }

    #[test]
    fn node_has_the_issues_defaults() {
        let args = node_args(&[]).unwrap();
        assert_eq!(args.runtime, [NodeRuntime::Fake, NodeRuntime::Process]);
        assert_eq!(args.pods, [1, 100]);
        assert_eq!(args.repeat, 50);
        assert_eq!(
            args.sync_interval,
            [Duration::from_secs(1), Duration::from_millis(10)]
        );
        assert_eq!((args.memory_pods, args.smoke), (10_000, false));
    }

    #[test]
    fn node_rejects_bad_values() {
        for bad in [
            &["--runtime", "containerd"][..],
            &["--pods", "0"],
            &["--pods", "1,,2"],
            &["--repeat", "0"],
            &["--sync-interval", "0"],
            &["--sync-interval", "often"],
        ] {
            assert!(node_args(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
