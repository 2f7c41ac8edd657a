//! [`Plan`]: the runs one `orchestra bench store` invocation asks for, with `--smoke` applied.

use std::path::PathBuf;
use std::time::Duration;

use super::backend::EtcdTarget;
use crate::cli::bench::{Backend, StoreBenchArgs, StoreOp};

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
    /// Backends, without duplicates, in the order given.
    pub backends: Vec<Backend>,
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
    /// Where the etcd backend connects.
    pub etcd: EtcdTarget,
}

/// One run: a fresh store of `backend`, `clients` clients doing `op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// The backend.
    pub backend: Backend,
    /// The operation.
    pub op: StoreOp,
    /// Concurrent clients (1 for watch).
    pub clients: u32,
}

impl Plan {
    /// The plan of a command line.
    pub fn from_args(args: &StoreBenchArgs) -> Self {
        let mut plan = Plan {
            backends: dedup(&args.backend),
            ops: dedup(&args.op),
            clients: dedup(&args.clients),
            duration: args.seconds,
            value_size: args.value_size,
            keys: args.keys,
            watchers: args.watchers,
            rate: args.rate,
            drain_timeout: MIN_DRAIN.max(args.seconds * 4),
            data_dir: args.data_dir.clone(),
            etcd: EtcdTarget {
                endpoints: args.etcd_endpoints.clone(),
                connections: usize::try_from(args.etcd_connections).unwrap_or(1),
            },
        };
        if args.smoke {
            plan.duration = plan.duration.min(SMOKE_DURATION);
            plan.watchers = plan.watchers.min(SMOKE_WATCHERS);
            plan.keys = plan.keys.min(SMOKE_KEYS);
            plan.drain_timeout = MIN_DRAIN;
        }
        plan
    }

    /// Does the invocation give client counts that a watch run ignores?
    pub fn ignores_clients(&self) -> bool {
        self.ops.contains(&StoreOp::Watch) && self.clients.iter().any(|&c| c != 1)
    }

    /// Every run, ordered by op, then clients, then backend (so backends sit side by side).
    pub fn runs(&self) -> Vec<Run> {
        let mut runs = Vec::new();
        for &op in &self.ops {
            let clients: &[u32] = if op == StoreOp::Watch {
                &[1]
            } else {
                &self.clients
            };
            for &clients in clients {
                for &backend in &self.backends {
                    runs.push(Run {
                        backend,
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
        Plan::from_args(&store_args(line).unwrap())
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
            .map(|r| (r.backend, r.op, r.clients))
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
