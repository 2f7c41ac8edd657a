//! Fuzz target (proptest; see docs/fuzzing.md): etcd v3 KV requests, decoded by prost from
//! arbitrary or mutated bytes and from arbitrary field values (invalid enum numbers, negative
//! revisions and limits, odd ranges, nested transactions), handled by orchestra's etcd server
//! over a MemStore. The server must answer each with a response or a gRPC error, and keep
//! serving.
//!
//! Bounded for CI to 128 cases per target (a second or two; `PROPTEST_CASES` overrides): a
//! longer run is `PROPTEST_CASES=20000 cargo test -p orchestra-store --features etcd --test
//! fuzz_etcd_requests`.

#![cfg(feature = "etcd")]

use std::sync::Arc;

use bytes::Bytes;
use orchestra_store::MemStore;
use orchestra_store::etcd::proto::etcdserverpb as pb;
use orchestra_store::etcd::server::{ServerOptions, serve};
use pb::kv_client::KvClient;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use prost::Message;
use tonic::transport::Channel;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(128)
}

/// One server over a MemStore for the whole run, and a client of it.
fn server(rt: &tokio::runtime::Runtime) -> KvClient<Channel> {
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move {
            let store = Arc::new(MemStore::new());
            let _ = serve(
                store,
                listener,
                ServerOptions::default(),
                std::future::pending(),
            )
            .await;
        });
        let channel = tonic::transport::Endpoint::from_shared(url)
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        KvClient::new(channel)
    })
}

fn key() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        Just(Bytes::new()),
        Just(Bytes::from_static(b"\0")),
        Just(Bytes::from_static(b"\xff")),
        "[a-c/]{1,4}".prop_map(Bytes::from),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Bytes::from),
    ]
}

fn number() -> impl Strategy<Value = i64> {
    prop_oneof![-3i64..12, any::<i64>(), Just(i64::MAX), Just(i64::MIN)]
}

fn range() -> impl Strategy<Value = pb::RangeRequest> {
    (
        key(),
        key(),
        number(),
        number(),
        -1i32..5,
        -1i32..7,
        any::<[bool; 3]>(),
        number(),
        number(),
    )
        .prop_map(
            |(key, range_end, limit, revision, order, target, flags, min, max)| pb::RangeRequest {
                key,
                range_end,
                limit,
                revision,
                sort_order: order,
                sort_target: target,
                serializable: flags[0],
                keys_only: flags[1],
                count_only: flags[2],
                min_mod_revision: min,
                max_mod_revision: max,
                min_create_revision: max,
                max_create_revision: min,
            },
        )
}

fn put() -> impl Strategy<Value = pb::PutRequest> {
    (key(), key(), number(), any::<[bool; 3]>()).prop_map(|(key, value, lease, flags)| {
        pb::PutRequest {
            key,
            value,
            lease,
            prev_kv: flags[0],
            ignore_value: flags[1],
            ignore_lease: flags[2],
        }
    })
}

fn delete() -> impl Strategy<Value = pb::DeleteRangeRequest> {
    (key(), key(), any::<bool>()).prop_map(|(key, range_end, prev_kv)| pb::DeleteRangeRequest {
        key,
        range_end,
        prev_kv,
    })
}

fn compare() -> impl Strategy<Value = pb::Compare> {
    use pb::compare::TargetUnion as U;
    let union = prop_oneof![
        Just(None),
        number().prop_map(|n| Some(U::Version(n))),
        number().prop_map(|n| Some(U::CreateRevision(n))),
        number().prop_map(|n| Some(U::ModRevision(n))),
        key().prop_map(|v| Some(U::Value(v))),
        number().prop_map(|n| Some(U::Lease(n))),
    ];
    (-1i32..6, -1i32..7, key(), key(), union).prop_map(|(result, target, key, range_end, u)| {
        pb::Compare {
            result,
            target,
            key,
            range_end,
            target_union: u,
        }
    })
}

fn request_op(depth: u32) -> BoxedStrategy<pb::RequestOp> {
    use pb::request_op::Request as R;
    let leaf = prop_oneof![
        Just(None),
        range().prop_map(|r| Some(R::RequestRange(r))),
        put().prop_map(|r| Some(R::RequestPut(r))),
        delete().prop_map(|r| Some(R::RequestDeleteRange(r))),
    ];
    if depth == 0 {
        leaf.prop_map(|request| pb::RequestOp { request }).boxed()
    } else {
        prop_oneof![
            4 => leaf,
            1 => txn(depth - 1).prop_map(|t| Some(R::RequestTxn(t))),
        ]
        .prop_map(|request| pb::RequestOp { request })
        .boxed()
    }
}

fn txn(depth: u32) -> BoxedStrategy<pb::TxnRequest> {
    (
        prop::collection::vec(compare(), 0..4),
        prop::collection::vec(request_op(depth), 0..4),
        prop::collection::vec(request_op(depth), 0..4),
    )
        .prop_map(|(compare, success, failure)| pb::TxnRequest {
            compare,
            success,
            failure,
        })
        .boxed()
}

/// A request of any KV kind, as the bytes a client would send.
#[derive(Debug, Clone)]
enum Request {
    Range(pb::RangeRequest),
    Put(pb::PutRequest),
    Delete(pb::DeleteRangeRequest),
    Txn(pb::TxnRequest),
    Compact(pb::CompactionRequest),
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        range().prop_map(Request::Range),
        put().prop_map(Request::Put),
        delete().prop_map(Request::Delete),
        txn(2).prop_map(Request::Txn),
        (number(), any::<bool>()).prop_map(|(revision, physical)| {
            Request::Compact(pb::CompactionRequest { revision, physical })
        }),
    ]
}

/// Send one request; any answer is fine (a response or a status), hanging or a dropped
/// connection is not.
async fn send(client: &mut KvClient<Channel>, request: Request) -> Result<(), String> {
    let result = match request {
        Request::Range(r) => client.range(r).await.map(drop),
        Request::Put(r) => client.put(r).await.map(drop),
        Request::Delete(r) => client.delete_range(r).await.map(drop),
        Request::Txn(r) => client.txn(r).await.map(drop),
        Request::Compact(r) => client.compact(r).await.map(drop),
    };
    match result {
        Err(status) if status.code() == tonic::Code::Unavailable => {
            Err(format!("the server stopped answering: {status}"))
        }
        _ => Ok(()),
    }
}

/// Decode `bytes` as each request type the KV service takes, as the server's prost codec does.
fn decode_all(bytes: &[u8]) -> Vec<Request> {
    let mut out = Vec::new();
    if let Ok(r) = pb::RangeRequest::decode(bytes) {
        out.push(Request::Range(r));
    }
    if let Ok(r) = pb::PutRequest::decode(bytes) {
        out.push(Request::Put(r));
    }
    if let Ok(r) = pb::DeleteRangeRequest::decode(bytes) {
        out.push(Request::Delete(r));
    }
    if let Ok(r) = pb::TxnRequest::decode(bytes) {
        out.push(Request::Txn(r));
    }
    if let Ok(r) = pb::CompactionRequest::decode(bytes) {
        out.push(Request::Compact(r));
    }
    out
}

fn encode(request: &Request) -> Vec<u8> {
    match request {
        Request::Range(r) => r.encode_to_vec(),
        Request::Put(r) => r.encode_to_vec(),
        Request::Delete(r) => r.encode_to_vec(),
        Request::Txn(r) => r.encode_to_vec(),
        Request::Compact(r) => r.encode_to_vec(),
    }
}

fn run(strategy: impl Strategy<Value = Vec<u8>>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let client = server(&rt);
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |bytes| {
            let mut client = client.clone();
            let requests = decode_all(&bytes);
            rt.block_on(async {
                for request in requests {
                    send(&mut client, request).await?;
                }
                // Still serving.
                send(&mut client, Request::Range(pb::RangeRequest::default())).await
            })
            .map_err(TestCaseError::fail)
        })
        .expect("the etcd server survives every request");
}

#[test]
fn fuzz_etcd_requests_from_fields() {
    run(request().prop_map(|r| encode(&r)));
}

#[test]
fn fuzz_etcd_requests_from_mutated_bytes() {
    // A valid request's bytes with some bytes overwritten and the tail cut.
    run((
        request(),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(r, edits, cut)| {
            let mut bytes = encode(&r);
            if !bytes.is_empty() {
                for (at, byte) in edits {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                let keep = cut.index(bytes.len() + 1);
                if keep * 4 > bytes.len() * 3 {
                    bytes.truncate(keep);
                }
            }
            bytes
        }));
}

#[test]
fn fuzz_etcd_requests_from_random_bytes() {
    run(prop::collection::vec(any::<u8>(), 0..128));
}
