//! The embedded MVCC engine behind [`MemStore`](crate::MemStore) and
//! [`DiskStore`](crate::DiskStore).
//!
//! # Layout
//! - `keyspace`: the multi-version key index (reads at any revision, compaction).
//! - `leases`: TTLs, deadlines and attached keys.
//! - `hub`: the event log and the fan-out to watchers.
//! - `journal`: the records a durable store persists, and what it reads back.
//! - `engine`: the three behind one lock, with group commit over an optional journal.
//! - `hash`: etcd's `HashKV` (a CRC-32C over etcd's backend entries) from the index and log.

pub(crate) mod engine;
pub(crate) mod hash;
pub(crate) mod hub;
pub(crate) mod journal;
pub(crate) mod keyspace;
pub(crate) mod leases;

pub use engine::EngineOptions;
