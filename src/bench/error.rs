//! [`BenchError`]: why a benchmark stopped.

use std::path::PathBuf;

use orchestra::store::StoreError;

/// Why a benchmark stopped. Any error ends the whole invocation with a non-zero exit code:
/// a benchmark whose operations fail measures nothing.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The data directory for the disk backend could not be created.
    #[error("cannot create a data directory in {path}: {source}; pass a writable --data-dir")]
    DataDir {
        /// The parent directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("opening the {backend} store in {path} failed")]
    Open {
        /// The backend's name.
        backend: &'static str,
        /// Its data directory.
        path: PathBuf,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// An operation the benchmark relies on failed.
    #[error("{what} failed on the {backend} store")]
    Store {
        /// What the benchmark was doing.
        what: &'static str,
        /// The backend's name.
        backend: &'static str,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The store answered, but not what its contract promises (a pre-populated key missing, a
    /// watch event lost or out of order).
    #[error("the {backend} store broke its contract: {detail}")]
    Contract {
        /// The backend's name.
        backend: &'static str,
        /// What was observed.
        detail: String,
    },
    /// The scheduler benchmark's cluster could not be built or a pod not assumed (a bug in
    /// the benchmark or the snapshot).
    #[error("scheduler benchmark: {0}")]
    Sched(String),
    /// `--backend etcd` without `--etcd-endpoints`.
    #[error(
        "the etcd backend needs the endpoints of a running etcd (or `orchestra etcd`): pass --etcd-endpoints http://HOST:PORT[,...]"
    )]
    NoEtcdEndpoints,
    /// `--backend etcd` in a build without the `etcd` feature.
    #[error("this build has no etcd support: rebuild orchestra with the `etcd` feature")]
    EtcdUnsupported,
    /// `bench node --runtime cri` in a build without the `cri` feature.
    #[cfg(not(feature = "cri"))]
    #[error("this build has no CRI support: rebuild orchestra with the `cri` feature")]
    CriUnsupported,
    /// The etcd endpoints did not answer.
    #[cfg(feature = "etcd")]
    #[error("connecting to etcd at {endpoints} failed")]
    EtcdConnect {
        /// The endpoints, comma-separated.
        endpoints: String,
        /// Why.
        #[source]
        source: orchestra::store::etcd::EtcdError,
    },
    /// The proxy benchmark could not set up or drive a path (a socket, the proxy, nginx).
    #[error("proxy benchmark: {what}")]
    Proxy {
        /// What it was doing.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The mesh benchmark could not set up or drive a path (a socket, a sidecar, the mesh CA,
    /// nginx), or a response was not the backend's.
    #[error("mesh benchmark: {what}")]
    Mesh {
        /// What it was doing.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The node benchmark could not set up or drive a runtime, the agent or the API.
    #[error("node benchmark: {what}")]
    Node {
        /// What it was doing.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The node benchmark waited too long for pods to become ready or to go away.
    #[error("node benchmark: {0}")]
    NodeTimeout(String),
    /// The cluster benchmark could not start the cluster or drive the API.
    #[error("cluster benchmark: {what}")]
    Cluster {
        /// What it was doing.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An API call of the API benchmark failed.
    #[error("API benchmark: {what}")]
    Api {
        /// What it was doing.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The cluster benchmark waited too long for nodes or pods.
    #[error("cluster benchmark: {0}")]
    ClusterTimeout(String),
    /// The controller benchmark could not build or drive its objects.
    #[error("controller benchmark: {what}")]
    Controller {
        /// What it was doing.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The controller benchmark waited too long, or its controllers went wrong.
    #[error("controller benchmark: {0}")]
    ControllerTimeout(String),
    /// A latency histogram could not be created or merged (a bug in the benchmark).
    #[error("latency histogram: {0}")]
    Histogram(String),
    /// A benchmark task panicked.
    #[error("a benchmark task failed")]
    Task(#[source] tokio::task::JoinError),
    /// The result could not be written to stdout.
    #[error("writing the result to stdout failed")]
    Output(#[source] std::io::Error),
}
