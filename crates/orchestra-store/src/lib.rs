//! orchestra's store: an MVCC key-value store with etcd v3's semantics (revisions, ranges at
//! past revisions, transactions, watch, leases, compaction), the ground every other orchestra
//! component stands on.
//!
//! [`Store`] is the trait; [`MemStore`] keeps everything in memory, [`DiskStore`] (feature
//! `disk`, on by default) is the durable embedded default, built on [redb](https://docs.rs/redb).
//! [`testing`] holds the conformance suite every implementation runs.
//!
//! ```
//! use orchestra_store::{MemStore, Store, StoreExt, WatchRequest};
//! use futures::StreamExt;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = MemStore::new();
//! let mut watch = store.watch(WatchRequest::prefix("/pods/")).await?;
//! let rev = store.put("/pods/web-1", "running").await?;
//! let batch = watch.next().await.unwrap()?;
//! assert_eq!(batch.events[0].kv.mod_revision, rev);
//! assert_eq!(store.get("/pods/web-1").await?.unwrap().value.as_ref(), b"running");
//! # Ok::<(), orchestra_store::StoreError>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//! - [`types`]: keys, values, revisions, requests and responses (etcd's shapes).
//! - [`store`]: the [`Store`] trait; [`ext`]: [`StoreExt`], get/put/compare-and-swap helpers.
//! - [`watch`][]: [`WatchStream`].
//! - [`limits`]: request limits and the checks that reject bad requests before any change.
//! - [`error`][]: [`StoreError`].
//! - [`compactor`]: periodic compaction of the history, once per interval across servers.
//! - [`linearizability`]: record concurrent histories against any store and check them.
//! - `mvcc`: the embedded engine (key index, leases, watch hub, group commit).
//! - [`mem`]: [`MemStore`]; [`disk`]: [`DiskStore`] (and restoring one from a snapshot).
//! - [`snapshot`]: backups, the whole store at one revision in a checksummed file.
//! - `etcd` (feature `etcd`): `EtcdStore`, the store over etcd's v3 gRPC API, and the generated
//!   etcd API.
//! - [`testing`]: the conformance suite, and checkers for watch streams.

pub mod compactor;
pub mod error;
pub mod ext;
pub mod limits;
pub mod linearizability;
pub mod mem;
mod mvcc;
pub mod snapshot;
pub mod store;
pub mod types;
pub mod watch;

#[cfg(feature = "disk")]
pub mod disk;
#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "testing")]
pub mod testing;

#[cfg(feature = "disk")]
pub use disk::{DiskStore, DiskStoreOptions};
pub use error::StoreError;
#[cfg(feature = "etcd")]
pub use etcd::{EtcdOptions, EtcdStore};
pub use ext::{CasOutcome, StoreExt};
pub use limits::Limits;
pub use mem::MemStore;
pub use mvcc::EngineOptions;
pub use store::Store;
pub use types::*;
pub use watch::{WatchControl, WatchStream};
