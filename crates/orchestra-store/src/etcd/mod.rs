//! [`EtcdStore`]: the [`Store`](crate::Store) trait over etcd's v3 gRPC API (feature `etcd`),
//! for clusters that outgrow one machine; and the generated etcd API ([`proto`]) that orchestra's
//! own etcd-compatible server builds on.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use orchestra_store::etcd::{EtcdOptions, EtcdStore};
//! use orchestra_store::{Store, StoreExt, WatchRequest};
//! use futures::StreamExt;
//!
//! let store = EtcdStore::connect(EtcdOptions::new([
//!     "http://10.0.0.1:2379",
//!     "http://10.0.0.2:2379",
//!     "http://10.0.0.3:2379",
//! ]))
//! .await?;
//! let mut pods = store.watch(WatchRequest::prefix("/pods/")).await?;
//! let rev = store.put("/pods/web-1", "running").await?;
//! let batch = pods.next().await.expect("the watch is open")?;
//! assert_eq!(batch.events[0].kv.mod_revision, rev);
//! # Ok(()) }
//! ```
//!
//! # How etcd's semantics map
//! The store's types are etcd's shapes, so most of the mapping is one to one: a
//! [`KeyRange`](crate::KeyRange) is etcd's `key`/`range_end`, a [`Txn`](crate::Txn)'s compares
//! and operations are etcd's, a transaction that writes nothing uses no revision in etcd
//! either, and response headers carry etcd's revision. Beyond that:
//! - Requests are checked against [`EtcdOptions::limits`] before they are sent, so that bad
//!   input fails with the same precise errors as on the embedded stores (etcd's own errors do
//!   not name the offending key or lease, and etcd reads an inverted range as empty rather
//!   than refusing it). etcd's refusals are mapped too: compacted, future revision, unknown
//!   lease, request too large, too many operations, duplicate key, empty key.
//! - etcd 3.4 does not report its compact revision, which [`StoreStatus`](crate::StoreStatus)
//!   and [`StoreError::Compacted`](crate::StoreError::Compacted) carry: it is found by reading
//!   at revisions (usually one extra read).
//! - Lease TTLs are whole seconds in etcd: a TTL is rounded up, and etcd raises TTLs below its
//!   minimum (about 1.5 times the election timeout) to that minimum.
//! - Watches: see [`watch`](self#watches) below.
//!
//! # Connections and failure
//! Requests go to one endpoint until it cannot be reached or has no leader, then to the next
//! (the store sends etcd's `hasleader` metadata, so a member cut off from its leader says so at
//! once). Reads are retried after any failure; writes only when etcd certainly did not process
//! them — after a connection broke mid-request a write fails with [`StoreError::Io`]
//! saying that it may or may not have been applied. Every operation is bounded by
//! [`EtcdOptions::request_timeout`].
//!
//! # Watches
//! A watch survives a lost connection: it reconnects (to the next endpoint when there are
//! several) and resumes from the revision after the last one it has seen, with no gap and no
//! duplicate; if that revision was compacted in the meantime, the stream yields
//! [`StoreError::Compacted`](crate::StoreError::Compacted) and ends.
//! [`request_progress`](crate::WatchStream::request_progress) sends etcd's
//! `WatchProgressRequest`, and `progress_notify` etcd's periodic notifications (at the
//! server's `--experimental-watch-progress-notify-interval`). Each watch follows the whole
//! keyspace and filters on the client, which is what makes progress notifications and
//! resumption exact on etcd 3.4; the module `watch` explains why and what it costs.
//!
//! # Layout
//! - [`store`]: [`EtcdStore`] and the [`Store`](crate::Store) implementation.
//! - [`options`]: [`EtcdOptions`] and [`EtcdTls`].
//! - [`error`]: [`EtcdError`], and how etcd's gRPC errors are read.
//! - `connection`: the channels to the endpoints, failover and the retry policy.
//! - `watch`: the task behind each watch stream (reconnection, progress).
//! - `convert`: conversions between the store's types and etcd's messages.
//! - [`proto`]: etcd's v3 API, generated from `proto/` by the build script.
//! - [`server`]: any [`Store`](crate::Store) served over etcd's v3 gRPC API (`orchestra etcd`).

mod connection;
mod convert;
pub mod error;
pub mod options;
pub mod proto;
pub mod server;
pub mod store;
mod watch;

pub use error::EtcdError;
pub use options::{EtcdOptions, EtcdTls};
pub use store::{EtcdStore, MemberStatus};
