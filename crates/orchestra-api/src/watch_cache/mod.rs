//! The watch cache shared by every watch of one process: per kind, one store watch feeds the
//! current objects and a bounded window of recent changes, each change decoded once into an
//! `Arc`-shared object and queued only for the watches it may concern.
//!
//! Watches are indexed by the `(field, value)` their selectors require (a node agent's
//! `spec.nodeName=NODE`, a namespace), as kube-apiserver's cacher does with its indexed
//! triggers: a pod's change reaches the watches of its old and new node and the unindexed
//! watches, not every node agent. Each watch then applies its own selectors with the
//! registry's transitions (starts matching: ADDED; stops matching: DELETED with its last
//! matching state).
//!
//! Two front ends share this core: [`LocalClient`](crate::LocalClient)'s watches (typed
//! `Arc`s: every in-process watcher gets the cache's own decoded object, not a copy, see
//! [`DynResource::downcast_arc`](crate::DynResource::downcast_arc); caches start lazily per
//! kind), and the API server's `server::watch_cache` (JSON encoded once per change for all
//! remote watches).
//!
//! Contracts are the registry's: a watch from a resourceVersion inside the window is served
//! from memory; an older one, or one the store has compacted, goes to the registry (which
//! answers 410 for a compacted one); a watch without resourceVersion starts with one
//! consistent list as ADDED events. A watch that does not keep up (its queue is full) is
//! cut off with an [`ApiError::Expired`](crate::ApiError::Expired) saying so, instead of
//! slowing the others; it watches again from its last resourceVersion.
//!
//! # Layout
//! - `kind`: the cache of one kind and its feeder.
//! - `index`: the watches of a kind, indexed by required field values.
//! - `filter`: what one watch selects, and the transitions of selector matching.
//! - `subscription`: one watch's stream of changes and bookmarks.
//! - `local`: the per-kind caches behind [`LocalClient`](crate::LocalClient).
//! - `stash`: the objects the registry's writes hand to the feeders, so that a change this
//!   process wrote is not decoded again (decoding was the feeders' main cost).

pub(crate) mod filter;
pub(crate) mod index;
pub(crate) mod kind;
pub(crate) mod local;
pub(crate) mod stash;
pub(crate) mod subscription;

use std::time::Duration;

pub use local::LocalWatchCache;

/// How much a watch cache keeps.
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// Changes kept per kind: watches from a resourceVersion older than this window go to
    /// the store.
    pub history: usize,
    /// Changes queued per watch before it is cut off as too slow.
    pub client_buffer: usize,
    /// How often the cache asks the store for progress, so that an idle kind's
    /// resourceVersion (and the bookmarks it sends) keep up with the store.
    pub progress_interval: Duration,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            history: 4096,
            client_buffer: 4096,
            progress_interval: Duration::from_secs(1),
        }
    }
}

impl CacheOptions {
    /// The in-process default: in-process watchers (controllers' reflectors during a bulk
    /// load) see every pod change, so they get deeper queues and a longer window to resume
    /// from than remote clients, which cost a relist of everything when cut off.
    ///
    /// The queue is deeper still than the window: a queued change is an `Arc` shared with
    /// the cache (the queue grows only while its watcher is behind), while a watcher cut off
    /// relists every object. With 16,384, the scheduler's pod watch was cut off during the
    /// bulk load of a 30,000-pod `orchestra bench cluster`, and the pods created while it
    /// relisted waited more than ten seconds to be scheduled.
    pub fn in_process() -> Self {
        CacheOptions {
            history: 16384,
            client_buffer: 1 << 17,
            ..CacheOptions::default()
        }
    }
}
