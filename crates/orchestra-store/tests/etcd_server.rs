//! `orchestra_store::etcd::server`: any store served over etcd's v3 gRPC API.
//!
//! - The loop closes: `EtcdStore` (the client) against the server over a `MemStore` and over
//!   a `DiskStore` passes the whole conformance suite. The server runs in-process on a free
//!   loopback port, so these need no external tool.
//! - The real `etcdctl` (Debian's etcd-client, ETCDCTL_API=3) drives it: put/get, del, txn,
//!   watch, leases, compaction, endpoint status and health. Skipped (with a message) when
//!   etcdctl is not installed, unless `ORCHESTRA_SYSTEM_TESTS=1`.
//! - Bad input gets etcd's errors and the server keeps serving.

#![cfg(feature = "etcd")]

mod etcd_harness;

use etcd_harness::json_number;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use orchestra_store::etcd::proto::etcdserverpb as pb;
use orchestra_store::etcd::server::{ServerOptions, serve};
use orchestra_store::etcd::{EtcdOptions, EtcdStore};
use orchestra_store::{MemStore, Store};
use tokio::sync::oneshot;

/// A server on a free loopback port; dropping it shuts the server down.
pub struct Served {
    url: String,
    _shutdown: oneshot::Sender<()>,
    _dir: Option<tempfile::TempDir>,
}

impl Served {
    async fn start(store: Arc<dyn Store>, dir: Option<tempfile::TempDir>) -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let shutdown = async {
                let _ = rx.await;
            };
            if let Err(err) = serve(store, listener, ServerOptions::default(), shutdown).await {
                eprintln!("etcd server failed: {err}");
            }
        });
        Served {
            url: format!("http://{addr}"),
            _shutdown: tx,
            _dir: dir,
        }
    }

    async fn memory() -> Served {
        Served::start(Arc::new(MemStore::new()), None).await
    }

    async fn disk() -> Served {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let store = orchestra_store::DiskStore::open(dir.path())
            .await
            .expect("open a DiskStore");
        Served::start(Arc::new(store), Some(dir)).await
    }

    async fn client(&self) -> EtcdStore {
        EtcdStore::connect(EtcdOptions::new([self.url.clone()]))
            .await
            .expect("connect to the served store")
    }

    async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url.clone())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect")
    }
}

/// One test per conformance check and backend, each on a fresh store and server.
mod conformance_mem {
    use super::*;
    orchestra_store::store_conformance_tests! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        new_store = || async {
            etcd_harness::trace();
            let server = Served::memory().await;
            orchestra_store::testing::Guarded::new(server.client().await, server)
        },
    }
}

mod conformance_disk {
    use super::*;
    orchestra_store::store_conformance_tests! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        new_store = || async {
            etcd_harness::trace();
            let server = Served::disk().await;
            orchestra_store::testing::Guarded::new(server.client().await, server)
        },
    }
}

/// The install command named when etcdctl is missing.
const INSTALL_CLIENT: &str = "apt-get install etcd-client";

/// The etcdctl binary, or `None` after printing why the test is skipped (a failure under
/// `ORCHESTRA_SYSTEM_TESTS=1`).
fn etcdctl_or_skip(test: &str) -> Option<PathBuf> {
    etcd_harness::trace();
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("etcdctl"))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(binary) => Some(binary),
        None if etcd_harness::required() => panic!(
            "{test}: etcdctl is not on PATH and ORCHESTRA_SYSTEM_TESTS=1 requires it; install it with `{INSTALL_CLIENT}`"
        ),
        None => {
            eprintln!(
                "{test}: skipped: etcdctl is not on PATH; install it with `{INSTALL_CLIENT}` (or set ORCHESTRA_SYSTEM_TESTS=1 to make this a failure)"
            );
            None
        }
    }
}

/// What one etcdctl run printed.
#[derive(Debug)]
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Run etcdctl against `url` (on the blocking pool: the server shares this runtime).
async fn etcdctl(binary: &Path, url: &str, args: &[&str], stdin: Option<&str>) -> Ran {
    let binary = binary.to_path_buf();
    let url = url.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let stdin = stdin.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = Command::new(&binary)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={url}"))
            .arg("--command-timeout=10s")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn etcdctl");
        if let Some(mut input) = child.stdin.take()
            && let Some(text) = stdin
        {
            input
                .write_all(text.as_bytes())
                .expect("write etcdctl's stdin");
        }
        let out = child.wait_with_output().expect("wait for etcdctl");
        Ran {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("the etcdctl thread")
}

/// Run etcdctl, which must succeed; its stdout.
async fn ok(binary: &Path, url: &str, args: &[&str]) -> String {
    let ran = etcdctl(binary, url, args, None).await;
    assert!(ran.ok, "etcdctl {args:?} failed: {ran:?}");
    ran.stdout
}

/// Run a long-running etcdctl (a watch) for `run`, then kill it; its stdout.
async fn etcdctl_for(binary: &Path, url: &str, args: &[&str], run: Duration) -> String {
    let binary = binary.to_path_buf();
    let url = url.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(&binary)
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={url}"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn etcdctl");
        // The watch prints what it got from history at once; this bounds its run.
        std::thread::sleep(run);
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait for etcdctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .expect("the etcdctl thread")
}

/// The real etcdctl drives the server: a scripted session over every command family.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_session() {
    let Some(ctl) = etcdctl_or_skip("etcdctl_session") else {
        return;
    };
    let server = Served::disk().await;
    let url = server.url.as_str();

    // put / get
    assert_eq!(ok(&ctl, url, &["put", "foo", "bar"]).await, "OK\n");
    let first = json_number(
        &ok(&ctl, url, &["get", "foo", "-w", "json"]).await,
        "revision",
    );
    assert_eq!(ok(&ctl, url, &["put", "foo2", "bar2"]).await, "OK\n");
    assert_eq!(ok(&ctl, url, &["put", "zoo", "z"]).await, "OK\n");
    assert_eq!(ok(&ctl, url, &["put", "foo", "baz"]).await, "OK\n");
    assert_eq!(
        ok(&ctl, url, &["get", "foo", "--prefix"]).await,
        "foo\nbaz\nfoo2\nbar2\n"
    );
    assert_eq!(
        ok(&ctl, url, &["get", "foo", "--rev", &first.to_string()]).await,
        "foo\nbar\n"
    );
    assert_eq!(
        ok(&ctl, url, &["get", "foo", "--prefix", "--limit", "1"]).await,
        "foo\nbaz\n"
    );
    let keys = ok(&ctl, url, &["get", "foo", "--prefix", "--keys-only"]).await;
    assert!(keys.contains("foo\n") && keys.contains("foo2\n") && !keys.contains("baz"));
    // etcdctl 3.4 has no --count-only (the KV tests below send count_only): the count of a
    // limited read is the whole range's.
    let count = ok(
        &ctl,
        url,
        &["get", "", "--prefix", "--limit", "1", "-w", "json"],
    )
    .await;
    assert_eq!(json_number(&count, "count"), 3, "{count}");
    assert!(count.contains("\"more\":true"), "{count}");
    assert_eq!(
        ok(
            &ctl,
            url,
            &["get", "", "--prefix", "--sort-by", "MODIFY", "--keys-only"]
        )
        .await,
        "foo2\n\nzoo\n\nfoo\n\n"
    );
    assert_eq!(
        ok(
            &ctl,
            url,
            &[
                "get",
                "foo",
                "--from-key",
                "--keys-only",
                "--order",
                "DESCEND"
            ]
        )
        .await,
        "zoo\n\nfoo2\n\nfoo\n\n"
    );

    // txn (from stdin: compares, blank line, success ops, blank line, failure ops)
    let txn = "value(\"foo2\") = \"bar2\"\n\nput res yes\n\nput res no\n\n";
    let ran = etcdctl(&ctl, url, &["txn"], Some(txn)).await;
    assert!(ran.ok, "{ran:?}");
    assert_eq!(ran.stdout, "SUCCESS\n\nOK\n");
    let txn = "mod(\"foo2\") = \"1\"\n\nput res yes\n\nget res\n\n";
    let ran = etcdctl(&ctl, url, &["txn"], Some(txn)).await;
    assert_eq!(ran.stdout, "FAILURE\n\nres\nyes\n", "{ran:?}");

    // del
    assert_eq!(
        ok(&ctl, url, &["del", "res", "--prev-kv"]).await,
        "1\nres\nyes\n"
    );
    assert_eq!(ok(&ctl, url, &["del", "nothing"]).await, "0\n");

    // watch from a past revision with prev-kv: the history arrives at once
    let watched = etcdctl_for(
        &ctl,
        url,
        &[
            "watch",
            "foo",
            "--prefix",
            "--prev-kv",
            "--rev",
            &first.to_string(),
        ],
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(
        watched, "PUT\nfoo\nbar\nPUT\nfoo2\nbar2\nPUT\nfoo\nbar\nfoo\nbaz\n",
        "watch output"
    );

    // leases
    let granted = ok(&ctl, url, &["lease", "grant", "60"]).await;
    let id = granted
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("lease id in {granted:?}"))
        .to_string();
    assert!(granted.ends_with("granted with TTL(60s)\n"), "{granted}");
    assert_eq!(
        ok(&ctl, url, &["put", "leased", "v", "--lease", &id]).await,
        "OK\n"
    );
    let listed = ok(&ctl, url, &["lease", "list"]).await;
    assert!(
        listed.starts_with("found 1 leases\n") && listed.contains(&id),
        "{listed}"
    );
    let kept = ok(&ctl, url, &["lease", "keep-alive", "--once", &id]).await;
    assert_eq!(kept, format!("lease {id} keepalived with TTL(60)\n"));
    let ttl = ok(&ctl, url, &["lease", "timetolive", "--keys", &id]).await;
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(60s), remaining("))
            && ttl.ends_with("attached keys([leased])\n"),
        "{ttl}"
    );
    assert_eq!(
        ok(&ctl, url, &["lease", "revoke", &id]).await,
        format!("lease {id} revoked\n")
    );
    assert_eq!(ok(&ctl, url, &["get", "leased"]).await, "");
    let gone = ok(&ctl, url, &["lease", "timetolive", &id]).await;
    assert_eq!(gone, format!("lease {id} already expired\n"));

    // compaction
    let now = json_number(
        &ok(&ctl, url, &["get", "foo", "-w", "json"]).await,
        "revision",
    );
    assert_eq!(
        ok(&ctl, url, &["compaction", &now.to_string()]).await,
        format!("compacted revision {now}\n")
    );
    let old = etcdctl(
        &ctl,
        url,
        &["get", "foo", "--rev", &first.to_string()],
        None,
    )
    .await;
    assert!(!old.ok, "{old:?}");
    assert!(
        old.stderr.contains("required revision has been compacted"),
        "{old:?}"
    );

    // endpoint status and health. etcdctl 3.4 dials each endpoint of these commands with the
    // URL as the HTTP/2 `:authority` ("http://host:port"), which the h2 library rejects as
    // malformed (PROTOCOL_ERROR) where Go's server tolerates it: name the endpoint without
    // its scheme here.
    let bare = url.trim_start_matches("http://");
    let status = ok(&ctl, bare, &["endpoint", "status"]).await;
    assert!(status.contains("3.4.0-orchestra"), "{status}");
    assert!(status.contains("true"), "the member leads: {status}");
    let health = etcdctl(&ctl, bare, &["endpoint", "health"], None).await;
    assert!(health.ok, "{health:?}");
    assert!(
        format!("{}{}", health.stdout, health.stderr).contains("is healthy"),
        "{health:?}"
    );
}

type Kv = pb::kv_client::KvClient<tonic::transport::Channel>;

async fn put(kv: &mut Kv, key: &str, value: &str) -> i64 {
    let resp = kv
        .put(pb::PutRequest {
            key: Bytes::from(key.to_string()),
            value: Bytes::from(value.to_string()),
            ..Default::default()
        })
        .await
        .expect("put")
        .into_inner();
    resp.header.expect("header").revision
}

/// Range options applied by the server as etcd applies them: count-only, revision filters,
/// sorting then the limit; put with ignore_value and ignore_lease; headers carry the ids and the
/// revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_options() {
    let server = Served::memory().await;
    let mut kv = Kv::new(server.channel().await);
    let r1 = put(&mut kv, "/a", "3").await;
    let r2 = put(&mut kv, "/b", "1").await;
    let r3 = put(&mut kv, "/c", "2").await;
    let prefix = |mut req: pb::RangeRequest| {
        req.key = Bytes::from_static(b"/");
        req.range_end = Bytes::from_static(b"0");
        req
    };
    let resp = kv
        .range(prefix(pb::RangeRequest {
            count_only: true,
            ..Default::default()
        }))
        .await
        .expect("count only")
        .into_inner();
    assert_eq!((resp.count, resp.kvs.len()), (3, 0));
    let header = resp.header.expect("header");
    let defaults = ServerOptions::default();
    assert_eq!(header.revision, r3);
    assert_eq!(header.cluster_id, defaults.cluster_id);
    assert_eq!(header.member_id, defaults.member_id);
    assert_eq!(header.raft_term, defaults.raft_term);

    let resp = kv
        .range(prefix(pb::RangeRequest {
            min_mod_revision: r2,
            sort_target: pb::range_request::SortTarget::Value as i32,
            sort_order: pb::range_request::SortOrder::Descend as i32,
            limit: 1,
            ..Default::default()
        }))
        .await
        .expect("filtered")
        .into_inner();
    let keys: Vec<&[u8]> = resp.kvs.iter().map(|kv| kv.key.as_ref()).collect();
    assert_eq!(
        keys,
        [b"/c".as_ref()],
        "value 2 before value 1, limited to one"
    );
    assert!(resp.more);
    assert_eq!(resp.count, 3, "the count is the range's, before filtering");
    let resp = kv
        .range(prefix(pb::RangeRequest {
            max_create_revision: r1,
            ..Default::default()
        }))
        .await
        .expect("max create")
        .into_inner();
    assert_eq!(resp.kvs.len(), 1);
    assert_eq!(resp.kvs[0].key.as_ref(), b"/a");

    // ignore_value keeps the value, ignore_lease the lease.
    let resp = kv
        .put(pb::PutRequest {
            key: Bytes::from_static(b"/a"),
            ignore_value: true,
            prev_kv: true,
            ..Default::default()
        })
        .await
        .expect("ignore_value")
        .into_inner();
    assert_eq!(resp.prev_kv.expect("prev").value.as_ref(), b"3");
    let resp = kv
        .range(pb::RangeRequest {
            key: Bytes::from_static(b"/a"),
            ..Default::default()
        })
        .await
        .expect("get")
        .into_inner();
    assert_eq!(resp.kvs[0].value.as_ref(), b"3");
    assert_eq!(resp.kvs[0].version, 2);
    let err = kv
        .put(pb::PutRequest {
            key: Bytes::from_static(b"/absent"),
            ignore_value: true,
            ..Default::default()
        })
        .await
        .expect_err("ignore_value on an absent key");
    assert_eq!(err.message(), "etcdserver: key not found");
}

/// Nested transactions run as etcd runs them: every compare of the tree sees the state before
/// the transaction (an inner compare does not see the outer branch's earlier writes), the
/// chosen path's operations make one revision, and the responses nest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_transactions() {
    let server = Served::memory().await;
    check_nested_transactions(Kv::new(server.channel().await)).await;
}

/// The same nested transactions against the real etcd: the checks hold there too, so the
/// semantics checked are etcd's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_transactions_behave_the_same_on_real_etcd() {
    let Some(etcd) = etcd_harness::etcd_or_skip("nested_transactions_behave_the_same_on_real_etcd")
    else {
        return;
    };
    let member = etcd_harness::Member::single(&etcd).await;
    let channel = tonic::transport::Endpoint::from_shared(member.url())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to etcd");
    check_nested_transactions(Kv::new(channel)).await;
}

async fn check_nested_transactions(mut kv: Kv) {
    use pb::compare::{CompareResult, CompareTarget, TargetUnion};
    use pb::request_op::Request;
    use pb::response_op::Response as R;

    let r1 = put(&mut kv, "/n/a", "1").await;
    let op = |request| pb::RequestOp {
        request: Some(request),
    };
    let put_op = |key: &'static str, value: &'static str| {
        op(Request::RequestPut(pb::PutRequest {
            key: Bytes::from_static(key.as_bytes()),
            value: Bytes::from_static(value.as_bytes()),
            ..Default::default()
        }))
    };
    let version_is = |key: &'static str, version: i64| pb::Compare {
        key: Bytes::from_static(key.as_bytes()),
        target: CompareTarget::Version as i32,
        result: CompareResult::Equal as i32,
        target_union: Some(TargetUnion::Version(version)),
        ..Default::default()
    };
    // /n/b is absent before the transaction, though the outer branch puts it first.
    let sees_the_state_before = pb::TxnRequest {
        compare: vec![version_is("/n/b", 0)],
        success: vec![put_op("/n/c", "absent-before")],
        failure: vec![put_op("/n/c", "present-before")],
    };
    let fails = pb::TxnRequest {
        compare: vec![version_is("/n/a", 5)],
        success: vec![put_op("/n/x", "never")],
        failure: vec![op(Request::RequestRange(pb::RangeRequest {
            key: Bytes::from_static(b"/n/a"),
            ..Default::default()
        }))],
    };
    let outer = pb::TxnRequest {
        compare: vec![version_is("/n/a", 1)],
        success: vec![
            put_op("/n/b", "2"),
            op(Request::RequestTxn(sees_the_state_before)),
            op(Request::RequestTxn(fails)),
        ],
        failure: vec![put_op("/n/z", "never")],
    };
    let resp = kv.txn(outer).await.expect("nested txn").into_inner();
    assert!(resp.succeeded);
    let revision = resp.header.expect("header").revision;
    assert_eq!(revision, r1 + 1, "one revision for the whole path");
    let responses: Vec<R> = resp
        .responses
        .into_iter()
        .map(|r| r.response.expect("a response"))
        .collect();
    assert!(matches!(responses[0], R::ResponsePut(_)), "{responses:?}");
    match &responses[1] {
        R::ResponseTxn(inner) => {
            assert!(inner.succeeded);
            assert!(matches!(
                inner.responses[0].response,
                Some(R::ResponsePut(_))
            ));
        }
        other => panic!("expected a nested txn response, got {other:?}"),
    }
    match &responses[2] {
        R::ResponseTxn(inner) => {
            assert!(!inner.succeeded);
            match &inner.responses[0].response {
                Some(R::ResponseRange(range)) => {
                    assert_eq!(range.kvs[0].value.as_ref(), b"1");
                }
                other => panic!("expected a range response, got {other:?}"),
            }
        }
        other => panic!("expected a nested txn response, got {other:?}"),
    }
    assert_eq!(responses.len(), 3);

    let get = |key: &'static str| pb::RangeRequest {
        key: Bytes::from_static(key.as_bytes()),
        ..Default::default()
    };
    let c = kv.range(get("/n/c")).await.expect("get").into_inner();
    assert_eq!(c.kvs[0].value.as_ref(), b"absent-before");
    assert_eq!(c.kvs[0].mod_revision, revision);
    for never in ["/n/x", "/n/z"] {
        let resp = kv.range(get(never)).await.expect("get").into_inner();
        assert!(resp.kvs.is_empty(), "{never} was written");
    }

    // A write conflict inside the chosen path is etcd's duplicate-key error, and nothing is
    // written.
    let duplicate = pb::TxnRequest {
        success: vec![
            put_op("/n/d", "1"),
            op(Request::RequestTxn(pb::TxnRequest {
                success: vec![put_op("/n/d", "2")],
                ..Default::default()
            })),
        ],
        ..Default::default()
    };
    let err = kv.txn(duplicate).await.expect_err("a key put twice");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    let d = kv.range(get("/n/d")).await.expect("get").into_inner();
    assert!(d.kvs.is_empty());
}

/// The next response of a watch stream, within a guard.
async fn next(responses: &mut tonic::Streaming<pb::WatchResponse>) -> pb::WatchResponse {
    tokio::time::timeout(Duration::from_secs(10), responses.message())
        .await
        .expect("a watch response in time")
        .expect("a good stream")
        .expect("an open stream")
}

/// `result` is etcd's refusal with `code` and `message`.
fn refused<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    what: &str,
    code: tonic::Code,
    message: &str,
) {
    match result {
        Ok(resp) => panic!("{what} succeeded: {resp:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{what}: {status:?}");
            assert_eq!(status.message(), message, "{what}: {status:?}");
        }
    }
}

/// Bad input gets etcd's errors, and the server keeps serving: oversized requests, unknown
/// leases, empty keys, too many operations, duplicate keys, compacted and future revisions,
/// the cancel of an unknown watch id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_etcds_errors() {
    use tonic::Code;
    let server = Served::memory().await;
    let channel = server.channel().await;
    let mut kv = Kv::new(channel.clone());
    let mut lease = pb::lease_client::LeaseClient::new(channel.clone());
    let mut watch = pb::watch_client::WatchClient::new(channel.clone());
    let r1 = put(&mut kv, "/k", "v").await;

    let too_big = kv
        .put(pb::PutRequest {
            key: Bytes::from_static(b"/big"),
            value: Bytes::from(vec![b'x'; 1600 * 1024]),
            ..Default::default()
        })
        .await;
    refused(
        too_big,
        "oversized put",
        Code::InvalidArgument,
        "etcdserver: request is too large",
    );
    let unknown_lease = kv
        .put(pb::PutRequest {
            key: Bytes::from_static(b"/l"),
            lease: 12345,
            ..Default::default()
        })
        .await;
    refused(
        unknown_lease,
        "put with an unknown lease",
        Code::NotFound,
        "etcdserver: requested lease not found",
    );
    let revoke = lease
        .lease_revoke(pb::LeaseRevokeRequest { id: 12345 })
        .await;
    refused(
        revoke,
        "revoke of an unknown lease",
        Code::NotFound,
        "etcdserver: requested lease not found",
    );
    let ttl = lease
        .lease_time_to_live(pb::LeaseTimeToLiveRequest {
            id: 12345,
            keys: true,
        })
        .await
        .expect("time to live of an unknown lease")
        .into_inner();
    assert_eq!(ttl.ttl, -1, "etcd's answer for an unknown lease");
    let empty = kv.put(pb::PutRequest::default()).await;
    refused(
        empty,
        "put of the empty key",
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );
    let put_op = |key: &'static [u8]| pb::RequestOp {
        request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
            key: Bytes::from_static(key),
            ..Default::default()
        })),
    };
    let many = kv
        .txn(pb::TxnRequest {
            success: (0..129).map(|_| put_op(b"/m")).collect(),
            ..Default::default()
        })
        .await;
    refused(
        many,
        "txn of 129 ops",
        Code::InvalidArgument,
        "etcdserver: too many operations in txn request",
    );
    let duplicate = kv
        .txn(pb::TxnRequest {
            success: vec![put_op(b"/d"), put_op(b"/d")],
            ..Default::default()
        })
        .await;
    refused(
        duplicate,
        "txn writing a key twice",
        Code::InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    );
    let r2 = put(&mut kv, "/k", "v2").await;
    kv.compact(pb::CompactionRequest {
        revision: r2,
        physical: true,
    })
    .await
    .expect("compact");
    let old = kv
        .range(pb::RangeRequest {
            key: Bytes::from_static(b"/k"),
            revision: r1,
            ..Default::default()
        })
        .await;
    refused(
        old,
        "read below the compaction",
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    let future = kv
        .range(pb::RangeRequest {
            key: Bytes::from_static(b"/k"),
            revision: r2 + 100,
            ..Default::default()
        })
        .await;
    refused(
        future,
        "read of a future revision",
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );

    // Watch: the cancel of an unknown id is ignored (as etcd does); a watch from a compacted
    // revision gets the compacted response; a good watch on the same stream still works.
    let (requests, outbound) = tokio::sync::mpsc::unbounded_channel();
    let outbound = futures::stream::unfold(outbound, |mut rx| async move {
        rx.recv().await.map(|m| (m, rx))
    });
    let mut responses = watch
        .watch(outbound)
        .await
        .expect("watch stream")
        .into_inner();
    let send = |union| {
        requests
            .send(pb::WatchRequest {
                request_union: Some(union),
            })
            .expect("send a watch request");
    };
    use pb::watch_request::RequestUnion;
    send(RequestUnion::CancelRequest(pb::WatchCancelRequest {
        watch_id: 77,
    }));
    send(RequestUnion::CreateRequest(pb::WatchCreateRequest {
        key: Bytes::from_static(b"/k"),
        start_revision: r1,
        watch_id: 5,
        ..Default::default()
    }));
    let created = next(&mut responses).await;
    assert!(created.created && created.watch_id == 5, "{created:?}");
    let compacted = next(&mut responses).await;
    assert!(compacted.canceled, "{compacted:?}");
    assert_eq!(compacted.compact_revision, r2);
    send(RequestUnion::CreateRequest(pb::WatchCreateRequest {
        key: Bytes::from_static(b"/k"),
        prev_kv: true,
        ..Default::default()
    }));
    let created = next(&mut responses).await;
    assert!(created.created && !created.canceled, "{created:?}");
    let id = created.watch_id;
    let r3 = put(&mut kv, "/k", "v3").await;
    let event = next(&mut responses).await;
    assert_eq!(event.watch_id, id);
    assert_eq!(event.events.len(), 1);
    assert_eq!(event.events[0].kv.as_ref().expect("kv").mod_revision, r3);
    assert_eq!(
        event.events[0]
            .prev_kv
            .as_ref()
            .expect("prev kv")
            .value
            .as_ref(),
        b"v2"
    );
    send(RequestUnion::ProgressRequest(pb::WatchProgressRequest {}));
    let progress = next(&mut responses).await;
    assert_eq!(progress.watch_id, -1);
    assert_eq!(progress.header.expect("header").revision, r3);
    send(RequestUnion::CancelRequest(pb::WatchCancelRequest {
        watch_id: id,
    }));
    let canceled = next(&mut responses).await;
    assert!(canceled.canceled && canceled.watch_id == id, "{canceled:?}");

    // And the server still serves everyone.
    let r4 = put(&mut kv, "/k", "v4").await;
    assert_eq!(r4, r3 + 1);
}

/// Blank the number after each `"name":` (ids and terms that differ between servers).
fn blank_numbers(text: &str, names: &[&str]) -> String {
    let mut out = text.to_string();
    for name in names {
        let pattern = format!("\"{name}\":");
        let mut from = 0;
        while let Some(found) = out[from..].find(&pattern) {
            let start = from + found + pattern.len();
            let end = out[start..]
                .find(|c: char| !(c.is_ascii_digit() || c == '-'))
                .map_or(out.len(), |n| start + n);
            out.replace_range(start..end, "N");
            from = start;
        }
    }
    out
}

/// Replace what differs between two servers by nature: the lease id, the remaining TTL.
fn normalize(text: &str, lease: Option<&str>) -> String {
    let mut out = blank_numbers(text, &["cluster_id", "member_id", "raft_term"]);
    if let Some(id) = lease {
        out = out.replace(id, "<lease>");
    }
    if let Some(start) = out.find("remaining(")
        && let Some(len) = out[start..].find(')')
    {
        out.replace_range(start..start + len + 1, "remaining(<ttl>)");
    }
    out
}

/// One scripted etcdctl session; each step's outcome and normalized output.
async fn scripted_session(ctl: &Path, url: &str) -> Vec<String> {
    let steps: &[(&[&str], Option<&str>)] = &[
        (&["put", "foo", "bar"], None),
        (&["put", "foo2", "bar2"], None),
        (&["put", "zoo", "z", "--prev-kv"], None),
        (&["put", "foo", "baz", "--prev-kv"], None),
        (&["get", "foo", "--prefix"], None),
        (&["get", "foo", "--prefix", "-w", "json"], None),
        (&["get", "foo", "--rev", "2"], None),
        (&["get", "", "--prefix", "--limit", "2", "-w", "json"], None),
        (
            &[
                "get",
                "foo",
                "--from-key",
                "--keys-only",
                "--order",
                "DESCEND",
            ],
            None,
        ),
        (&["get", "", "--prefix", "--sort-by", "MODIFY"], None),
        (
            &[
                "get",
                "a",
                "--from-key",
                "--sort-by",
                "VALUE",
                "--order",
                "DESCEND",
            ],
            None,
        ),
        (
            &["txn", "-w", "json"],
            Some("value(\"foo2\") = \"bar2\"\n\nput res yes\n\nput res no\n\n"),
        ),
        (
            &["txn"],
            Some(
                "mod(\"foo2\") > \"100\"\nversion(\"foo\") = \"2\"\n\nput res yes\n\nget res\ndel zoo\n\n",
            ),
        ),
        (&["del", "res", "--prev-kv"], None),
        (&["del", "f", "--prefix"], None),
        (&["get", "", "--prefix", "--rev", "5"], None),
        (&["get", "foo", "--rev", "100"], None),
        (&["compaction", "4"], None),
        (&["get", "foo", "--rev", "3"], None),
        (&["get", "foo", "--rev", "4"], None),
        (&["compaction", "2"], None),
        (&["lease", "grant", "60"], None),
        (&["put", "leased", "v", "--lease", "{lease}"], None),
        (&["lease", "keep-alive", "--once", "{lease}"], None),
        (&["lease", "timetolive", "--keys", "{lease}"], None),
        (&["lease", "revoke", "{lease}"], None),
        (&["lease", "timetolive", "{lease}"], None),
        (&["lease", "revoke", "{lease}"], None),
        (&["put", "bad", "v", "--lease", "1234"], None),
        (&["get", "leased"], None),
    ];
    let mut lease: Option<String> = None;
    let mut outcomes = Vec::new();
    for (args, stdin) in steps {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace("{lease}", lease.as_deref().unwrap_or("0")))
            .collect();
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let ran = etcdctl(ctl, url, &refs, *stdin).await;
        if args.starts_with(&["lease".to_string(), "grant".to_string()]) {
            lease = ran.stdout.split_whitespace().nth(1).map(str::to_string);
        }
        // Errors: etcdctl prints the server's message on its last stderr line.
        let error = if ran.ok {
            String::new()
        } else {
            ran.stderr
                .lines()
                .filter(|l| l.starts_with("Error:"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        outcomes.push(format!(
            "$ etcdctl {}\nok={}\n{}{}",
            normalize(&args.join(" "), lease.as_deref()),
            ran.ok,
            normalize(&ran.stdout, lease.as_deref()),
            normalize(&error, lease.as_deref()),
        ));
    }
    let watched = etcdctl_for(
        ctl,
        url,
        &["watch", "", "--prefix", "--prev-kv", "--rev", "4"],
        Duration::from_secs(2),
    )
    .await;
    outcomes.push(format!("$ etcdctl watch --rev 4\n{watched}"));
    outcomes
}

/// The same scripted etcdctl session against real etcd and against the server prints the
/// same, step by step (cluster and member ids, raft terms and lease ids aside).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_against_real_etcd() {
    let Some(ctl) = etcdctl_or_skip("differential_against_real_etcd") else {
        return;
    };
    let Some(etcd) = etcd_harness::etcd_or_skip("differential_against_real_etcd") else {
        return;
    };
    let member = etcd_harness::Member::single_with(
        &etcd,
        &["--heartbeat-interval", "25", "--election-timeout", "250"],
    )
    .await;
    let server = Served::disk().await;
    let want = scripted_session(&ctl, &member.url()).await;
    let got = scripted_session(&ctl, &server.url).await;
    assert_eq!(want.len(), got.len());
    for (want, got) in want.iter().zip(&got) {
        assert_eq!(got, want, "orchestra (left) differs from etcd (right)");
    }
}

/// One HashKV answer, or the error's code and message.
type HashAnswer = Result<(u32, i64, i64), (tonic::Code, String)>;

/// The same writes, compactions and lease revocation against one server, with etcd's
/// HashKV asked at every revision after each step.
async fn hash_kv_session(channel: tonic::transport::Channel) -> Vec<(String, i64, HashAnswer)> {
    use pb::request_op::Request;
    let mut kv = Kv::new(channel.clone());
    let mut lease = pb::lease_client::LeaseClient::new(channel.clone());
    let mut maintenance = pb::maintenance_client::MaintenanceClient::new(channel);
    let mut answers = Vec::new();
    let mut record =
        async |kv: &mut Kv, step: &str, answers: &mut Vec<(String, i64, HashAnswer)>| {
            let current = put_revision(kv).await;
            for revision in 0..=current + 1 {
                let answer = match maintenance.hash_kv(pb::HashKvRequest { revision }).await {
                    Ok(resp) => {
                        let resp = resp.into_inner();
                        Ok((
                            resp.hash,
                            resp.compact_revision,
                            resp.header.expect("a header").revision,
                        ))
                    }
                    Err(status) => Err((status.code(), status.message().to_string())),
                };
                answers.push((step.to_string(), revision, answer));
            }
        };
    let op_put = |key: &str, value: &str| pb::RequestOp {
        request: Some(Request::RequestPut(pb::PutRequest {
            key: Bytes::from(key.to_string()),
            value: Bytes::from(value.to_string()),
            ..Default::default()
        })),
    };
    let op_delete = |key: &str, range_end: &str| pb::RequestOp {
        request: Some(Request::RequestDeleteRange(pb::DeleteRangeRequest {
            key: Bytes::from(key.to_string()),
            range_end: Bytes::from(range_end.to_string()),
            ..Default::default()
        })),
    };
    let compact = async |kv: &mut Kv, revision: i64| {
        kv.compact(pb::CompactionRequest {
            revision,
            physical: true,
        })
        .await
        .expect("compact");
    };

    record(&mut kv, "empty", &mut answers).await;
    put(&mut kv, "/h/a", "1").await;
    put(&mut kv, "/h/b", "2").await;
    put(&mut kv, "/h/a", "3").await;
    record(&mut kv, "puts", &mut answers).await;

    // One transaction of several changes: each has its own sub revision.
    kv.txn(pb::TxnRequest {
        success: vec![
            op_put("/h/c", "4"),
            op_delete("/h/b", ""),
            op_put("/h/d", "5"),
        ],
        ..Default::default()
    })
    .await
    .expect("txn");
    let granted = lease
        .lease_grant(pb::LeaseGrantRequest {
            ttl: 600,
            id: 0x1234,
        })
        .await
        .expect("lease grant")
        .into_inner();
    assert_eq!(granted.id, 0x1234);
    kv.put(pb::PutRequest {
        key: Bytes::from("/h/e"),
        value: Bytes::from("6"),
        lease: 0x1234,
        ..Default::default()
    })
    .await
    .expect("put with a lease");
    put(&mut kv, "/h/f", "").await;
    record(&mut kv, "txn and lease", &mut answers).await;

    // A range delete (two tombstones in one revision), then a key's new life.
    kv.delete_range(pb::DeleteRangeRequest {
        key: Bytes::from("/h/c"),
        range_end: Bytes::from("/h/e"),
        ..Default::default()
    })
    .await
    .expect("delete range");
    put(&mut kv, "/h/b", "7").await;
    record(&mut kv, "range delete", &mut answers).await;

    // Compaction in the middle of the history: the kept values count, the rest is gone.
    let middle = put_revision(&mut kv).await - 3;
    compact(&mut kv, middle).await;
    record(&mut kv, "compacted", &mut answers).await;

    kv.txn(pb::TxnRequest {
        success: vec![op_delete("/h/a", ""), op_put("/h/g", "8")],
        ..Default::default()
    })
    .await
    .expect("txn after compaction");
    lease
        .lease_revoke(pb::LeaseRevokeRequest { id: 0x1234 })
        .await
        .expect("lease revoke");
    record(&mut kv, "revoked", &mut answers).await;

    let current = put_revision(&mut kv).await;
    compact(&mut kv, current).await;
    record(&mut kv, "compacted at the head", &mut answers).await;

    // No key alive at all: etcd then counts every entry compaction left.
    kv.delete_range(pb::DeleteRangeRequest {
        key: Bytes::from("\0"),
        range_end: Bytes::from("\0"),
        ..Default::default()
    })
    .await
    .expect("delete everything");
    record(&mut kv, "all deleted", &mut answers).await;
    put(&mut kv, "/h/z", "9").await;
    kv.delete_range(pb::DeleteRangeRequest {
        key: Bytes::from("/h/z"),
        ..Default::default()
    })
    .await
    .expect("delete /h/z");
    // /h/z is alive at the compact point and nothing at the head.
    let current = put_revision(&mut kv).await;
    compact(&mut kv, current - 1).await;
    record(&mut kv, "all deleted, compacted", &mut answers).await;
    answers
}

/// The current revision (a range's header).
async fn put_revision(kv: &mut Kv) -> i64 {
    kv.range(pb::RangeRequest {
        key: Bytes::from("/"),
        count_only: true,
        ..Default::default()
    })
    .await
    .expect("range")
    .into_inner()
    .header
    .expect("header")
    .revision
}

/// HashKV is etcd's own value: the same writes, compactions and lease revocation give the same
/// hash at every revision on etcd 3.4 and on `orchestra etcd` over a MemStore and a DiskStore,
/// and the same errors at compacted and future revisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_kv_equals_etcds() {
    let Some(etcd) = etcd_harness::etcd_or_skip("hash_kv_equals_etcds") else {
        return;
    };
    let member = etcd_harness::Member::single(&etcd).await;
    let channel = tonic::transport::Endpoint::from_shared(member.url())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to etcd");
    let want = hash_kv_session(channel).await;
    assert!(
        want.iter().filter(|(_, _, answer)| answer.is_ok()).count() > 20,
        "the session hashes many revisions: {want:?}"
    );
    for server in [Served::memory().await, Served::disk().await] {
        let got = hash_kv_session(server.channel().await).await;
        assert_eq!(got.len(), want.len());
        for (got, want) in got.iter().zip(&want) {
            assert_eq!(got, want, "orchestra (left) differs from etcd (right)");
        }
        // Through the Store trait: EtcdStore asks either server for it.
        let ours = server.client().await;
        let theirs = member.store().await;
        assert_eq!(
            ours.hash_kv(0).await.expect("hash_kv through EtcdStore"),
            theirs
                .hash_kv(0)
                .await
                .expect("hash_kv of etcd through EtcdStore")
        );
        for store in [&ours, &theirs] {
            let err = store.hash_kv(2).await.expect_err("revision 2 is compacted");
            assert!(
                matches!(err, orchestra_store::StoreError::Compacted { .. }),
                "{err:?}"
            );
        }
    }
}
