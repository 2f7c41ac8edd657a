//! A linearizability checker for key-value stores: record a concurrent history of gets, puts,
//! deletes and transactions against any [`Store`](crate::Store), then search for a
//! linearization (Wing & Gong's search with Lowe's just-in-time linearization and
//! memoization, as porcupine and knossos do).
//!
//! A history is linearizable when every operation can be placed at one instant between its
//! invocation and its response such that the sequence answers exactly what the store
//! answered. Operations whose answer was lost (a timeout, a server killed mid-call) may have
//! happened at any time after their invocation, or never; the checker allows both.
//!
//! ```
//! use orchestra_store::linearizability::{CheckOptions, Recorder, check};
//! use orchestra_store::{MemStore, StoreExt};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = Recorder::new(MemStore::new());
//! store.put("/k", "v1").await?;
//! assert_eq!(store.get("/k").await?.unwrap().value.as_ref(), b"v1");
//! let report = check(&store.history(), &CheckOptions::default()).unwrap();
//! assert!(report.is_linearizable(), "{report:?}");
//! # Ok::<(), orchestra_store::StoreError>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//! - [`history`]: [`Operation`]s with invocation and response times, and [`Recorder`], the
//!   `Store` decorator that records them.
//! - [`model`]: the [`Model`] trait (a sequential specification) and [`KvModel`], the store's.
//! - [`search`](mod@search): the search for one partition, for any [`Model`].
//! - [`check`](mod@check): [`check()`], partitioning by key and the global revision order.
//! - [`workload`] (feature `testing`): concurrent clients to record.

pub mod check;
pub mod history;
pub mod model;
pub mod search;
#[cfg(feature = "testing")]
pub mod workload;

pub use check::{CheckError, CheckOptions, Report, Verdict, Violation, check};
pub use history::{History, KvOperation, Operation, Recorder, Response};
pub use model::{
    KeyState, KvInput, KvModel, KvOutput, KvState, Model, Observed, TxnCompare, TxnOp, TxnOpResult,
    TxnTarget,
};
pub use search::{SearchOutcome, search};
