//! orchestra's store served over etcd's v3 gRPC API (feature `etcd`): any
//! [`Store`](crate::Store) — a [`MemStore`](crate::MemStore) or a `DiskStore` — answers
//! `etcdctl` and etcd clients (including [`EtcdStore`](crate::etcd::EtcdStore)) as a single
//! etcd member would.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use orchestra_store::MemStore;
//! use orchestra_store::etcd::server::{self, ServerOptions};
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:2379").await?;
//! let shutdown = async { let _ = tokio::signal::ctrl_c().await; };
//! server::serve(Arc::new(MemStore::new()), listener, ServerOptions::default(), shutdown).await?;
//! # Ok(()) }
//! ```
//!
//! # What is served, and what is not
//! - KV: Range (single key, prefix, `[key, end)`, from-key, revision, limit, count-only,
//!   keys-only, sorting, min/max mod and create revision filters applied here), Put (prev_kv,
//!   lease, ignore_value and ignore_lease through a read and a compare-and-swap), DeleteRange
//!   (prev_kv), Txn (every compare target and result, nested transactions), Compact. Nested
//!   transactions run as etcd runs them (every compare sees the state before the transaction);
//!   the store's transactions are flat, so the compared keys are read, the path is chosen
//!   here, and the flattened path runs guarded by those keys' mod revisions (again if one
//!   changed in between). Not supported (`Unimplemented`, with a message saying so): compares
//!   over a key range (`range_end` in a compare), and ignore_value/ignore_lease inside a
//!   transaction — the [`Store`](crate::Store) trait cannot express them atomically.
//! - Watch: many watchers on one stream; create (start revision, prev_kv, progress_notify,
//!   NOPUT/NODELETE filters, a watch id chosen by the client or the server), cancel, progress
//!   requests, and etcd's compacted response (compact revision set, canceled). `fragment` is
//!   ignored: responses are never split. A cancel of an unknown watch id is ignored, as etcd
//!   does.
//! - Lease: Grant (the server picks the id: a client-chosen id is `Unimplemented`; TTLs below
//!   [`ServerOptions::min_lease_ttl`] are raised to it, as etcd does), Revoke, KeepAlive,
//!   TimeToLive (with keys). Leases (listing) is `Unimplemented`: the trait cannot list leases.
//! - Maintenance: Status (version, db size, this member as leader, fixed raft term);
//!   Snapshot, a [`Snapshot`](crate::snapshot::Snapshot) of the store at one revision streamed
//!   as etcd streams its backend (chunks, then the SHA-256), so `etcdctl snapshot save` works;
//!   restore it with `orchestra etcd snapshot restore` (`DiskStore::restore`), not with etcdctl,
//!   whose restore reads etcd's own backend format; Hash (a CRC32 of that snapshot) and
//!   HashKV (etcd's own value, computed by [`Store::hash_kv`](crate::Store::hash_kv): equal to
//!   an etcd member's after the same writes); Defragment (nothing to do).
//! - TLS (feature `etcd-tls`): [`ServerOptions::tls`] serves HTTPS with a certificate and key,
//!   and with a trusted CA requires clients to present certificates it signed (etcd's
//!   `--cert-file`, `--key-file`, `--trusted-ca-file` with `--client-cert-auth`).
//!
//! Errors carry etcd's gRPC codes and messages (see `status`), so clients react as they do to
//! etcd. Revisions are the store's: the store's compact revision is etcd's compact revision.
//!
//! # Layout
//! - `kv`: the KV service and the range post-processing (filters, sorting).
//! - `watch`: the Watch service, one task per stream and one per watcher.
//! - `lease`: the Lease service.
//! - `maintenance`: the Maintenance service (Status, Snapshot, Hash, HashKV, Defragment).
//! - `router`: routes each gRPC call to its service by path.
//! - `status`: store errors as etcd's gRPC statuses.

mod kv;
mod lease;
mod maintenance;
mod router;
mod status;
mod watch;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::etcd::proto::etcdserverpb as pb;
use crate::limits::Limits;
use crate::store::Store;
use crate::types::Revision;

/// How the server presents itself and what it accepts.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// The cluster id in every response header.
    pub cluster_id: u64,
    /// The member id in every response header (and the leader in Status).
    pub member_id: u64,
    /// The raft term in every response header (there is no raft: a constant).
    pub raft_term: u64,
    /// The version Status reports (etcdctl prints it).
    pub version: String,
    /// The request limits; requests over them get etcd's errors. They should match the
    /// store's own limits.
    pub limits: Limits,
    /// The smallest lease TTL in seconds; shorter TTLs are raised to it (etcd's default
    /// minimum, with its default election timeout, is 2 seconds).
    pub min_lease_ttl: i64,
    /// Serve over TLS (needs the `etcd-tls` feature); `None`: plain HTTP/2.
    pub tls: Option<ServerTls>,
}

/// The server's TLS identity, and the CA its clients' certificates must be signed by.
#[derive(Clone)]
pub struct ServerTls {
    /// The server's PEM certificate chain (etcd's `--cert-file`).
    pub cert_pem: Vec<u8>,
    /// The server's PEM private key (etcd's `--key-file`).
    pub key_pem: Vec<u8>,
    /// PEM certificates of the CA that signs client certificates (etcd's `--trusted-ca-file`):
    /// when set, every client must present a certificate it signed; `None`: any client.
    pub client_ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("ServerTls")
            .field("cert_pem", &self.cert_pem.len())
            .field("client_ca_pem", &self.client_ca_pem.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            cluster_id: 0x6f72_6368_6573_7472,
            member_id: 0x6f72_6368_0000_0001,
            raft_term: 1,
            version: "3.4.0-orchestra".to_string(),
            limits: Limits::default(),
            min_lease_ttl: 2,
            tls: None,
        }
    }
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}; choose another --listen address")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] crate::error::StoreError),
    /// The gRPC server failed.
    #[error("the etcd gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A TLS file could not be read.
    #[error("cannot read the {what} {path}")]
    TlsFile {
        /// Which file (`--cert-file`, ...).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate, key or CA is not usable.
    #[error(
        "the TLS settings are not usable (check that --cert-file and --key-file are a PEM certificate and its PEM private key): {0}"
    )]
    Tls(tonic::transport::Error),
    /// TLS was asked for in a build without it.
    #[error("this build has no TLS: rebuild with the `etcd-tls` feature to serve HTTPS")]
    TlsUnsupported,
}

/// What every service shares: the store and how to build response headers.
#[derive(Clone)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) options: Arc<ServerOptions>,
}

impl Shared {
    /// A response header at `revision`.
    pub(crate) fn header(&self, revision: Revision) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: self.options.cluster_id,
            member_id: self.options.member_id,
            revision,
            raft_term: self.options.raft_term,
        })
    }

    /// A response header at the store's current revision.
    pub(crate) async fn current_header(&self) -> Result<Option<pb::ResponseHeader>, tonic::Status> {
        let status = self.store.status().await.map_err(status::to_status)?;
        Ok(self.header(status.revision))
    }
}

/// The gRPC message size limit: etcd accepts messages up to the request limit plus 512 KiB of
/// overhead, so that requests a little over the limit get "request is too large" rather than a
/// transport error.
fn max_message_bytes(limits: &Limits) -> usize {
    limits.max_request_bytes.saturating_add(512 * 1024)
}

/// Serve `store` over etcd's v3 gRPC API on `listener` until `shutdown` completes.
pub async fn serve<F>(
    store: Arc<dyn Store>,
    listener: tokio::net::TcpListener,
    options: ServerOptions,
    shutdown: F,
) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send,
{
    use pb::kv_server::KvServer;
    use pb::lease_server::LeaseServer;
    use pb::maintenance_server::MaintenanceServer;
    use pb::watch_server::WatchServer;

    let max = max_message_bytes(&options.limits);
    let builder = with_tls(tonic::transport::Server::builder(), options.tls.as_ref())?;
    let shared = Shared {
        store,
        options: Arc::new(options),
    };
    let router = router::Router {
        kv: KvServer::new(kv::KvService::new(shared.clone())).max_decoding_message_size(max),
        watch: WatchServer::new(watch::WatchService::new(shared.clone()))
            .max_decoding_message_size(max),
        lease: LeaseServer::new(lease::LeaseService::new(shared.clone()))
            .max_decoding_message_size(max),
        maintenance: MaintenanceServer::new(maintenance::MaintenanceService::new(shared)),
    };
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    builder
        .serve_with_incoming_shutdown(router, incoming, shutdown)
        .await?;
    Ok(())
}

#[cfg(feature = "etcd-tls")]
fn with_tls(
    mut builder: tonic::transport::Server,
    tls: Option<&ServerTls>,
) -> Result<tonic::transport::Server, ServeError> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let Some(tls) = tls else {
        return Ok(builder);
    };
    let mut config =
        ServerTlsConfig::new().identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem));
    if let Some(ca) = &tls.client_ca_pem {
        config = config.client_ca_root(Certificate::from_pem(ca));
    }
    builder = builder.tls_config(config).map_err(ServeError::Tls)?;
    Ok(builder)
}

#[cfg(not(feature = "etcd-tls"))]
fn with_tls(
    builder: tonic::transport::Server,
    tls: Option<&ServerTls>,
) -> Result<tonic::transport::Server, ServeError> {
    match tls {
        Some(_) => Err(ServeError::TlsUnsupported),
        None => Ok(builder),
    }
}

/// What `orchestra etcd` needs to run: where to listen and which store to serve.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The address to listen on (etcd's default client port is 2379).
    pub listen: SocketAddr,
    /// The DiskStore's data directory (ignored with `memory`).
    pub data_dir: PathBuf,
    /// Serve a MemStore instead (nothing survives a restart).
    pub memory: bool,
    /// The server's options.
    pub server: ServerOptions,
    /// TLS files to read into [`ServerOptions::tls`] at start.
    pub tls_files: Option<TlsFiles>,
}

/// Where the TLS certificate, key and client CA are (etcd's flags of the same names).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// `--cert-file`: the server's PEM certificate chain.
    pub cert_file: PathBuf,
    /// `--key-file`: its PEM private key.
    pub key_file: PathBuf,
    /// `--trusted-ca-file`: the CA that client certificates must be signed by.
    pub trusted_ca_file: Option<PathBuf>,
}

impl TlsFiles {
    /// Read the files.
    pub fn read(&self) -> Result<ServerTls, ServeError> {
        let read = |what, path: &PathBuf| {
            std::fs::read(path).map_err(|source| ServeError::TlsFile {
                what,
                path: path.clone(),
                source,
            })
        };
        Ok(ServerTls {
            cert_pem: read("--cert-file", &self.cert_file)?,
            key_pem: read("--key-file", &self.key_file)?,
            client_ca_pem: match &self.trusted_ca_file {
                Some(path) => Some(read("--trusted-ca-file", path)?),
                None => None,
            },
        })
    }
}

/// Open the store that `options` names, listen, and serve until Ctrl-C or SIGTERM.
pub async fn run_etcd_server(mut options: RunOptions) -> Result<(), ServeError> {
    let wants_tls = options.tls_files.is_some() || options.server.tls.is_some();
    if wants_tls && !cfg!(feature = "etcd-tls") {
        return Err(ServeError::TlsUnsupported);
    }
    if let Some(files) = &options.tls_files {
        options.server.tls = Some(files.read()?);
    }
    let store: Arc<dyn Store> = if options.memory {
        Arc::new(crate::MemStore::new())
    } else {
        open_disk(&options.data_dir).await?
    };
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: options.listen,
            source,
        })?;
    tracing::info!(listen = %options.listen, memory = options.memory, tls = options.server.tls.is_some(), "serving the etcd v3 API");
    serve(store, listener, options.server, shutdown_signal()).await
}

#[cfg(feature = "disk")]
async fn open_disk(dir: &std::path::Path) -> Result<Arc<dyn Store>, ServeError> {
    Ok(Arc::new(crate::DiskStore::open(dir).await?))
}

#[cfg(not(feature = "disk"))]
async fn open_disk(_dir: &std::path::Path) -> Result<Arc<dyn Store>, ServeError> {
    Err(ServeError::Store(crate::error::StoreError::Other(
        "this build has no DiskStore (feature `disk`); serve a MemStore with --memory".to_string(),
    )))
}

/// Completes on Ctrl-C, or on SIGTERM on Unix.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
