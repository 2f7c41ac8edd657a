//! The etcd v3 API as Rust types: prost messages and tonic client and server stubs, generated
//! at build time from the protos under `proto/` (see the crate's `build.rs`).
//!
//! Only the part of the API that orchestra speaks is here: the KV, Watch and Lease services and
//! Maintenance.Status, under etcd's own package and service names, so that they interoperate
//! with etcd servers and clients (`etcdctl`) on the wire.

/// etcd's MVCC messages: `KeyValue` and `Event`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
}

/// etcd's `etcdserverpb` package: the request and response messages and the services'
/// clients (`kv_client::KvClient`, `watch_client::WatchClient`, ...) and servers
/// (`kv_server::KvServer`, ...).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}
