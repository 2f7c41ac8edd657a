//! The conformance suite of the [`Store`] trait, which every implementation runs
//! ([`MemStore`](crate::MemStore), [`DiskStore`](crate::DiskStore), an etcd client, yours),
//! after openraft's `testing::Suite`; and [`WatchChecker`], which validates watch streams
//! against a store's history.
//!
//! Each check is a public `async fn` taking a fresh store; [`run_conformance`] runs them all
//! from a factory, and [`store_conformance_tests!`](crate::store_conformance_tests) generates
//! one `#[test]` per check, so that a failure names the check:
//!
//! ```
//! mod mem_store {
//!     orchestra_store::store_conformance_tests! {
//!         #[tokio::test(start_paused = true)]
//!         new_store = || async { orchestra_store::MemStore::new() },
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! What the checks assume of the store:
//! - each store the factory returns is fresh, empty and written by nobody else: checks compare
//!   revisions the store returned, and rely on each write transaction taking exactly the next
//!   revision — never on absolute revision numbers (an empty store may start anywhere);
//! - the limits are [`SuiteConfig::limits`] (etcd's defaults unless configured);
//! - a watcher does not buffer thousands of events: one that does not read while
//!   [`SLOW_WATCHER_WRITES`](watch::SLOW_WATCHER_WRITES) writes happen must be caught up from
//!   history, and ends with `Compacted` if that history is compacted.
//!
//! Time: the lease checks sleep on tokio's clock. Under paused time (`start_paused`, right for
//! in-process stores) they take no real time and stay deterministic; a store that talks to a
//! server must run in real time (paused time would fire the suite's failure guards while it
//! waits for the network), where they take some seconds.
//!
//! # Layout
//! - `kv`: revisions, versions and every shape of range;
//! - `txn`: compares, branches, one revision per transaction, `prev_kv`, [`StoreExt`](crate::StoreExt);
//! - `put`: [`Store::put_one`], the single put, against the one-put transaction;
//! - `watch`: watch ranges, start revisions, atomicity, filters, progress, slow watchers;
//! - `lease`: grant (with a chosen id too), keep-alive, revoke, time-to-live, expiry;
//! - `compaction`: compaction and `status()`;
//! - `input`: bad input and request limits;
//! - [`checker`]: [`WatchChecker`]; [`workload`]: a random concurrent workload it checks;
//! - [`util`]: helpers (guarded waits on watch streams, snapshots); [`guard`]: [`Guarded`].

use std::future::Future;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::limits::Limits;
use crate::store::Store;

pub mod checker;
pub mod compaction;
pub mod guard;
pub mod input;
pub mod kv;
pub mod lease;
pub mod put;
pub mod txn;
pub mod util;
pub mod watch;
pub mod workload;

pub use checker::{ObservedWatch, Violation, WatchChecker, WatchStart, WatchStats, WatchViolation};
pub use compaction::{compact_errors, compaction};
pub use guard::Guarded;
pub use input::{bad_input, request_limits};
pub use kv::{
    empty_store, range_at_past_revision, range_limit_and_count, range_revision_errors,
    range_shapes, revisions_and_versions,
};
pub use lease::{
    lease_chosen_id, lease_detach, lease_expiry, lease_huge_ttl, lease_lifecycle,
    lease_revoke_deletes_keys, lease_unknown_put,
};
pub use put::put_one;
pub use txn::{ext_helpers, txn_branches, txn_compares, txn_one_revision, txn_prev_kv};
pub use watch::{
    watch_compacted_start, watch_filters, watch_from_now, watch_from_past_revision,
    watch_key_and_prefix, watch_prev_kv, watch_progress, watch_slow_catches_up,
    watch_slow_compacted, watch_txn_atomic,
};
pub use workload::{WatchWorkload, WorkloadReport, run_watch_workload};

/// What the suite needs to know about the store under test.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SuiteConfig {
    /// The store's request limits (etcd's defaults unless set).
    pub limits: Limits,
}

impl SuiteConfig {
    /// The configuration for a store with these limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// One check of the suite, runnable against a fresh store.
pub struct Check<S> {
    /// The check's name: the name of its function.
    pub name: &'static str,
    /// Run the check (it panics on failure).
    pub run: fn(S, SuiteConfig) -> BoxFuture<'static, ()>,
}

impl<S> std::fmt::Debug for Check<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The concurrent watch workload, at the size the suite runs it.
pub async fn watch_guarantees<S: Store>(store: S) {
    let report = run_watch_workload(std::sync::Arc::new(store), WatchWorkload::default()).await;
    assert!(
        report.events_checked > 0,
        "the workload must deliver events, report: {report:?}"
    );
}

/// Every check of the suite, in the order [`run_conformance`] runs them.
pub fn checks<S: Store>() -> Vec<Check<S>> {
    macro_rules! check {
        ($name:ident) => {
            Check {
                name: stringify!($name),
                run: |store, _| $name(store).boxed(),
            }
        };
    }
    vec![
        check!(empty_store),
        check!(revisions_and_versions),
        check!(range_shapes),
        check!(range_at_past_revision),
        check!(range_revision_errors),
        check!(range_limit_and_count),
        check!(txn_compares),
        check!(txn_branches),
        check!(txn_one_revision),
        check!(txn_prev_kv),
        check!(ext_helpers),
        Check {
            name: "put_one",
            run: |store, config| put_one(store, config.limits).boxed(),
        },
        check!(watch_key_and_prefix),
        check!(watch_from_past_revision),
        check!(watch_from_now),
        check!(watch_txn_atomic),
        check!(watch_prev_kv),
        check!(watch_filters),
        check!(watch_progress),
        check!(watch_compacted_start),
        check!(watch_slow_catches_up),
        check!(watch_slow_compacted),
        check!(watch_guarantees),
        check!(lease_lifecycle),
        check!(lease_revoke_deletes_keys),
        check!(lease_unknown_put),
        check!(lease_detach),
        check!(lease_expiry),
        check!(lease_huge_ttl),
        check!(lease_chosen_id),
        check!(compaction),
        check!(compact_errors),
        check!(bad_input),
        Check {
            name: "request_limits",
            run: |store, config| request_limits(store, config.limits).boxed(),
        },
    ]
}

/// The names of every check, in order.
pub fn check_names() -> Vec<&'static str> {
    checks::<crate::MemStore>().iter().map(|c| c.name).collect()
}

/// Run the check called `name` against `store`; panics if there is no such check.
pub async fn run_check<S: Store>(name: &str, store: S, config: SuiteConfig) {
    let Some(check) = checks::<S>().into_iter().find(|c| c.name == name) else {
        panic!(
            "there is no conformance check called {name:?}; the checks are {:?}",
            check_names()
        );
    };
    (check.run)(store, config).await;
}

/// Panic unless `names` lists every check exactly once (the test that
/// [`store_conformance_tests!`](crate::store_conformance_tests) adds, so that a new check
/// cannot be forgotten).
pub fn assert_covers_every_check(names: &[&str]) {
    let mut listed: Vec<&str> = names.to_vec();
    listed.sort_unstable();
    let mut all = check_names();
    all.sort_unstable();
    assert_eq!(
        listed, all,
        "the generated tests must cover every check of the suite exactly once"
    );
}

/// Run every check, each against a fresh store from `new_store`, with etcd's default limits.
pub async fn run_conformance<S, F, Fut>(new_store: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    run_conformance_with(new_store, SuiteConfig::default()).await;
}

/// Run every check, each against a fresh store from `new_store`, for a store configured as
/// `config` says.
pub async fn run_conformance_with<S, F, Fut>(new_store: F, config: SuiteConfig)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    for check in checks::<S>() {
        tracing::info!(check = check.name, "running store conformance check");
        let store = new_store().await;
        if let Err(panic) = std::panic::AssertUnwindSafe((check.run)(store, config))
            .catch_unwind()
            .await
        {
            eprintln!("store conformance check {:?} failed", check.name);
            std::panic::resume_unwind(panic);
        }
    }
}

/// Generate one test per conformance check (plus one that proves the list complete).
///
/// Give the test attribute (paused time for an in-process store; a plain `#[tokio::test]` for
/// a store behind a network), a factory returning a future of a fresh store, and optionally a
/// [`SuiteConfig`]. The calling crate needs `tokio` (with `macros`, `rt`, and `test-util` for
/// paused time).
///
/// ```
/// mod small_limits {
///     use orchestra_store::{EngineOptions, Limits, MemStore, testing::SuiteConfig};
///     const LIMITS: Limits = Limits { max_request_bytes: 4096, max_txn_ops: 8 };
///     orchestra_store::store_conformance_tests! {
///         #[tokio::test(start_paused = true)]
///         new_store = || async {
///             MemStore::with_options(EngineOptions { limits: LIMITS, ..Default::default() })
///         },
///         config = SuiteConfig::default().with_limits(LIMITS),
///     }
/// }
/// # fn main() {}
/// ```
///
/// A store that may be unavailable (a system test whose server is not installed) gives
/// `maybe_store = ...` instead: a factory of `Option<store>`, where `None` skips the check
/// (the factory says why).
#[macro_export]
macro_rules! store_conformance_tests {
    (
        $(#[$attr:meta])*
        new_store = $new_store:expr
        $(, config = $config:expr)?
        $(,)?
    ) => {
        $crate::store_conformance_tests! {
            $(#[$attr])*
            maybe_store = || {
                let store = ($new_store)();
                async move { Some(store.await) }
            }
            $(, config = $config)?
        }
    };
    (
        $(#[$attr:meta])*
        maybe_store = $new_store:expr
        $(, config = $config:expr)?
        $(,)?
    ) => {
        $crate::store_conformance_tests!(@all [$(#[$attr])*] ($new_store) ($($config)?);
            empty_store, revisions_and_versions, range_shapes, range_at_past_revision,
            range_revision_errors, range_limit_and_count, txn_compares, txn_branches,
            txn_one_revision, txn_prev_kv, ext_helpers, put_one, watch_key_and_prefix,
            watch_from_past_revision, watch_from_now, watch_txn_atomic, watch_prev_kv,
            watch_filters, watch_progress, watch_compacted_start, watch_slow_catches_up,
            watch_slow_compacted, watch_guarantees, lease_lifecycle, lease_revoke_deletes_keys,
            lease_unknown_put, lease_detach, lease_expiry, lease_huge_ttl, lease_chosen_id, compaction,
            compact_errors, bad_input, request_limits
        );
    };
    (@all $attrs:tt $new_store:tt $config:tt; $($name:ident),+ $(,)?) => {
        $( $crate::store_conformance_tests!(@one $attrs $new_store $config $name); )+

        #[test]
        fn conformance_tests_cover_every_check() {
            $crate::testing::assert_covers_every_check(&[$(stringify!($name)),+]);
        }
    };
    (@one [$(#[$attr:meta])*] ($new_store:expr) ($($config:expr)?) $name:ident) => {
        $(#[$attr])*
        async fn $name() {
            #[allow(unused_mut, unused_assignments)]
            let mut config = $crate::testing::SuiteConfig::default();
            $( config = $config; )?
            let Some(store) = ($new_store)().await else {
                return;
            };
            $crate::testing::run_check(stringify!($name), store, config).await;
        }
    };
}
