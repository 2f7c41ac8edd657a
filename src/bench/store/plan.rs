//! [`Plan`]: the runs one `orchestra bench store` invocation asks for, with `--smoke` applied.
//!
//! Each backend is one [`Target`], except `etcd`, which is one target per `--etcd-endpoints`
//! (so that one invocation compares, say, a real etcd with `orchestra etcd`).

use std::path::PathBuf;
use std::time::Duration;

use crate::bench::BenchError;
use crate::cli::bench::{Backend, StoreBenchArgs, StoreOp, split_endpoints};

/// `--smoke`: the longest run.
const SMOKE_DURATION: Duration = Duration::from_secs(1);
/// `--smoke`: the most watchers.
const SMOKE_WATCHERS: u32 = 100;
/// `--smoke`: the most keys.
const SMOKE_KEYS: u32 = 1_000;
/// The shortest time the watch benchmark waits for deliveries after its last write.
const MIN_DRAIN: Duration = Duration::from_secs(10);

/// The settings shared by every run of an invocation, and the lists it runs over.
#[derive(Clone, Debug)]
pub struct Plan {
    /// What the runs run against: the backends without duplicates, in the order given, the
    /// `etcd` backend once per `--etcd-endpoints`. Every run is compared with the first.
    pub targets: Vec<Target>,
    /// Operations, without duplicates, in the order given.
    pub ops: Vec<StoreOp>,
    /// Client counts, without duplicates, in the order given.
    pub clients: Vec<u32>,
    /// How long each run lasts.
    pub duration: Duration,
    /// Bytes per value.
    pub value_size: u32,
    /// Distinct keys.
    pub keys: u32,
    /// Watchers of the watch run.
    pub watchers: u32,
    /// The watch run's write rate.
    pub rate: u32,
    /// How long the watch run waits for deliveries after its last write.
    pub drain_timeout: Duration,
    /// Where the disk backend makes its data directories.
    pub data_dir: Option<PathBuf>,
    /// HTTP/2 connections per etcd endpoint.
    pub etcd_connections: usize,
    /// Automatic compaction's retention, in revisions (None: history grows for the whole run).
    pub retain_revisions: Option<u64>,
}

/// A backend, and for `etcd` the server it connects to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The backend.
    pub backend: Backend,
    /// The etcd endpoints (empty for the others).
    pub endpoints: Vec<String>,
}

impl Target {
    /// How results and comparisons name the target: the backend, and the endpoints of etcd.
    pub fn label(&self) -> String {
        if self.endpoints.is_empty() {
            self.backend.as_str().to_string()
        } else {
            format!("{}@{}", self.backend.as_str(), self.endpoints.join(","))
        }
    }
}

/// One run: a fresh store of a target, `clients` clients doing `op`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// The backend and its server.
    pub target: Target,
    /// The operation.
    pub op: StoreOp,
    /// Concurrent clients (1 for watch).
    pub clients: u32,
}

impl Plan {
    /// The plan of a command line; an error when the `etcd` backend has no endpoints.
    pub fn from_args(args: &StoreBenchArgs) -> Result<Self, BenchError> {
        let mut targets = Vec::new();
        for backend in dedup(&args.backend) {
            if backend != Backend::Etcd {
                targets.push(Target {
                    backend,
                    endpoints: Vec::new(),
                });
                continue;
            }
            if !cfg!(feature = "etcd") {
                return Err(BenchError::EtcdUnsupported);
            }
            if args.etcd_endpoints.is_empty() {
                return Err(BenchError::NoEtcdEndpoints);
            }
            for group in &args.etcd_endpoints {
                let target = Target {
                    backend,
                    endpoints: split_endpoints(group),
                };
                if !targets.contains(&target) {
                    targets.push(target);
                }
            }
        }
        let mut plan = Plan {
            targets,
            ops: dedup(&args.op),
            clients: dedup(&args.clients),
            duration: args.seconds,
            value_size: args.value_size,
            keys: args.keys,
            watchers: args.watchers,
            rate: args.rate,
            drain_timeout: MIN_DRAIN.max(args.seconds * 4),
            data_dir: args.data_dir.clone(),
            etcd_connections: usize::try_from(args.etcd_connections).unwrap_or(1),
            retain_revisions: args.retain_revisions,
        };
        if args.smoke {
            plan.duration = plan.duration.min(SMOKE_DURATION);
            plan.watchers = plan.watchers.min(SMOKE_WATCHERS);
            plan.keys = plan.keys.min(SMOKE_KEYS);
            plan.drain_timeout = MIN_DRAIN;
        }
        Ok(plan)
    }

    /// Does the invocation give client counts that a watch run ignores?
    pub fn ignores_clients(&self) -> bool {
        self.ops.contains(&StoreOp::Watch) && self.clients.iter().any(|&c| c != 1)
    }

    /// Every run, ordered by op, then clients, then target (so targets sit side by side).
    pub fn runs(&self) -> Vec<Run> {
        let mut runs = Vec::new();
        for &op in &self.ops {
            let clients: &[u32] = if op == StoreOp::Watch {
                &[1]
            } else {
                &self.clients
            };
            for &clients in clients {
                for target in &self.targets {
                    runs.push(Run {
                        target: target.clone(),
                        op,
                        clients,
                    });
                }
            }
        }
        runs
    }
}

/// The items of `items` in order, each once.
fn dedup<T: Copy + PartialEq>(items: &[T]) -> Vec<T> {
    let mut out = Vec::with_capacity(items.len());
    for &item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::bench::tests::store_args;

    fn plan(line: &[&str]) -> Plan {
        Plan::from_args(&store_args(line).unwrap()).unwrap()
    }

    #[test]
    fn puts_backends_side_by_side_and_runs_watch_once_per_backend() {
        let plan = plan(&[
            "--backend",
            "memory,disk,memory",
            "--op",
            "put,watch",
            "--clients",
            "1,8",
        ]);
        let runs: Vec<(Backend, StoreOp, u32)> = plan
            .runs()
            .iter()
            .map(|r| (r.target.backend, r.op, r.clients))
            .collect();
        use Backend::*;
        use StoreOp::*;
        assert_eq!(
            runs,
            [
                (Memory, Put, 1),
                (Disk, Put, 1),
                (Memory, Put, 8),
                (Disk, Put, 8),
                (Memory, Watch, 1),
                (Disk, Watch, 1)
            ]
        );
        assert!(plan.ignores_clients());
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn each_etcd_endpoints_flag_is_a_target_of_its_own() {
        let plan = plan(&[
            "--backend",
            "etcd,disk",
            "--op",
            "get",
            "--etcd-endpoints",
            "http://a:1,http://b:2",
            "--etcd-endpoints",
            "http://c:3",
        ]);
        let labels: Vec<String> = plan.runs().iter().map(|r| r.target.label()).collect();
        assert_eq!(
            labels,
            ["etcd@http://a:1,http://b:2", "etcd@http://c:3", "disk"]
        );
    }

    #[cfg(feature = "etcd")]
    #[test]
    fn the_etcd_backend_without_endpoints_is_a_clear_error() {
        let args = store_args(&["--backend", "disk,etcd"]).unwrap();
        let err = Plan::from_args(&args).unwrap_err().to_string();
        assert!(err.contains("--etcd-endpoints"), "{err}");
        // Endpoints without the etcd backend are simply unused.
        let args = store_args(&["--backend", "disk", "--etcd-endpoints", "http://a:1"]).unwrap();
        assert_eq!(Plan::from_args(&args).unwrap().targets.len(), 1);
    }

    #[cfg(not(feature = "etcd"))]
    #[test]
    fn the_etcd_backend_needs_a_build_with_etcd() {
        let args = store_args(&["--backend", "etcd", "--etcd-endpoints", "http://a:1"]).unwrap();
        let err = Plan::from_args(&args).unwrap_err().to_string();
        assert!(err.contains("`etcd` feature"), "{err}");
    }

    #[test]
    fn smoke_caps_the_run() {
        let plan = plan(&[
            "--smoke",
            "--seconds",
            "30",
            "--watchers",
            "5000",
            "--keys",
            "50",
        ]);
        assert_eq!(plan.duration, SMOKE_DURATION);
        assert_eq!(plan.watchers, SMOKE_WATCHERS);
        assert_eq!(plan.keys, 50);
    }
}
