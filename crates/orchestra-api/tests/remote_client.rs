//! `RemoteClient` against the API server on 127.0.0.1 (a free port), over `MemStore` and over
//! `DiskStore`: the same client conformance suite `LocalClient` passes, then what only a
//! network adds: exact errors for custom kinds, watches with bookmarks and 410 Expired, a
//! watch that ends when the server shuts down, and a server that is not there.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orchestra_api::registry::{DynRegistry, ListOptions, WatchEvent, WatchOptions};
use orchestra_api::resources::Pod;
use orchestra_api::server::{ApiServer, RunningServer};
use orchestra_api::{
    ApiError, Client, ErrorList, FieldError, FieldPath, ObjectMeta, Registry, RemoteClient,
    Resource, testing,
};
use orchestra_store::{DiskStore, MemStore, Store};
use serde::{Deserialize, Serialize};

/// A custom kind, registered on the server only through its `DynRegistry`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Database {
    metadata: ObjectMeta,
    spec: DatabaseSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct DatabaseSpec {
    engine: String,
}

impl Resource for Database {
    const API_VERSION: &'static str = "db.example.com/v1";
    const KIND: &'static str = "Database";
    const PLURAL: &'static str = "databases";
    const NAMESPACED: bool = true;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn validate_fields(&self) -> ErrorList {
        let mut errors = ErrorList::new();
        if !["postgres", "mysql"].contains(&self.spec.engine.as_str()) {
            errors.push(FieldError::not_supported(
                &FieldPath::new("spec").child("engine"),
                self.spec.engine.as_str(),
                &["postgres", "mysql"],
            ));
        }
        errors
    }
}

/// The server over `store` (with `Database` registered) and a client connected to it.
async fn serve(store: Arc<dyn Store>) -> (RemoteClient, RunningServer) {
    let mut registry = DynRegistry::new(Registry::from_arc(store));
    registry.register::<Database>();
    let server = ApiServer::new(registry)
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind 127.0.0.1:0");
    let client = RemoteClient::connect(&server.url())
        .await
        .expect("connect to the server");
    (client, server)
}

async fn mem() -> (RemoteClient, RunningServer) {
    serve(Arc::new(MemStore::new())).await
}

async fn disk() -> (RemoteClient, RunningServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = DiskStore::open(dir.path()).await.expect("open DiskStore");
    let (client, server) = serve(Arc::new(store)).await;
    (client, server, dir)
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        $(
            mod $check {
                #[tokio::test]
                async fn mem_store() {
                    let (client, server) = super::mem().await;
                    orchestra_api::testing::$check(&client).await;
                    server.shutdown().await.expect("shutdown");
                }

                #[tokio::test]
                async fn disk_store() {
                    let (client, server, _dir) = super::disk().await;
                    orchestra_api::testing::$check(&client).await;
                    server.shutdown().await.expect("shutdown");
                }
            }
        )*
    };
}

conformance!(
    create_get_and_already_exists,
    update_preconditions_and_generation,
    status_subresource,
    merge_patch,
    list_selectors_and_pages,
    delete_with_finalizers,
    bind_once,
    watch_events,
    bad_input,
);

#[tokio::test]
async fn the_whole_suite_over_one_connection() {
    let (client, server) = mem().await;
    testing::run_all(&client).await;
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn custom_kinds_are_served_and_their_errors_are_exact() {
    let (client, server) = mem().await;
    let db = Database {
        metadata: ObjectMeta::namespaced("shop", "orders"),
        spec: DatabaseSpec {
            engine: "postgres".into(),
        },
    };
    let created = client.create(&db).await.expect("create a Database");
    assert_eq!(created.spec, db.spec);
    assert_eq!(created.metadata.generation, Some(1));
    let read: Database = client.get("shop", "orders").await.expect("get");
    assert_eq!(read, created);
    let list = client
        .list::<Database>(None, &ListOptions::default())
        .await
        .expect("list across namespaces");
    assert_eq!(list.items, std::slice::from_ref(&created));

    match client.get::<Database>("shop", "missing").await {
        Err(ApiError::NotFound { kind, name }) => {
            assert_eq!((kind, name.as_str()), ("Database", "shop/missing"));
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
    match client.create(&db).await {
        Err(err @ ApiError::AlreadyExists { .. }) => {
            assert_eq!(
                err.to_string(),
                "Database \"shop/orders\" already exists; update it, or delete it first"
            );
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    let mut bad = db.clone();
    bad.metadata.name = "other".into();
    bad.spec.engine = "oracle".into();
    match client.create(&bad).await {
        Err(ApiError::Invalid { kind, errors, .. }) => {
            assert_eq!(kind, "Database");
            assert_eq!(
                errors.to_string(),
                "spec.engine: Unsupported value: \"oracle\": supported values: \"postgres\", \"mysql\""
            );
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    server.shutdown().await.expect("shutdown");
}

/// A kind the server does not serve is a 400 naming it.
#[tokio::test]
async fn a_kind_the_server_does_not_know_is_a_bad_request() {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let server = ApiServer::new(DynRegistry::new(Registry::from_arc(store)))
        .spawn("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let client = RemoteClient::connect(&server.url()).await.expect("connect");
    let err = client.get::<Database>("shop", "orders").await.unwrap_err();
    assert_eq!(err.code(), 400, "{err}");
    assert!(err.to_string().contains("\"Database\""), "{err}");
    server.shutdown().await.expect("shutdown");
}

/// Waits for the next event, failing (not hanging) if none comes in 10 s.
async fn next(events: &mut orchestra_api::registry::WatchEvents<Pod>) -> WatchEvent<Pod> {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("no watch event within 10 s")
        .expect("the watch ended")
        .expect("watch error")
}

#[tokio::test]
async fn watches_carry_bookmarks_and_expire_after_compaction() {
    let store: Arc<dyn Store> = Arc::new(MemStore::new());
    let (client, server) = serve(store.clone()).await;
    let first = client
        .create(&testing::pod("w", "a", "web"))
        .await
        .expect("create");
    let second = client
        .create(&testing::pod("w", "b", "web"))
        .await
        .expect("create");

    // Without a resourceVersion: the current objects as ADDED, then the changes.
    let mut from_now = client
        .watch::<Pod>(Some("w"), &WatchOptions::default())
        .await
        .expect("watch");
    assert_eq!(
        next(&mut from_now).await,
        WatchEvent::Added(Arc::new(first.clone()))
    );
    assert_eq!(
        next(&mut from_now).await,
        WatchEvent::Added(Arc::new(second.clone()))
    );

    // Bookmarks: nothing selected changes, yet the watch learns a newer resourceVersion.
    let options = WatchOptions {
        bookmark_interval: Some(Duration::from_millis(20)),
        ..WatchOptions::from_version(second.metadata.resource_version.clone())
    };
    let mut quiet = client
        .watch::<Pod>(Some("elsewhere"), &options)
        .await
        .expect("watch");
    let other = client
        .create(&testing::pod("w", "c", "web"))
        .await
        .expect("create");
    let want: i64 = other.metadata.resource_version.parse().expect("rv");
    loop {
        match next(&mut quiet).await {
            WatchEvent::Bookmark(rv) if rv.parse::<i64>().expect("rv") >= want => break,
            WatchEvent::Bookmark(_) => {}
            event => panic!("expected only bookmarks, got {event:?}"),
        }
    }
    assert_eq!(
        next(&mut from_now).await,
        WatchEvent::Added(Arc::new(other.clone()))
    );

    // 410 Expired from a compacted resourceVersion, exactly as over LocalClient.
    let current: i64 = other.metadata.resource_version.parse().expect("rv");
    store.compact(current).await.expect("compact");
    let old = WatchOptions::from_version(first.metadata.resource_version.clone());
    let remote = match client.watch::<Pod>(Some("w"), &old).await {
        Err(err) => err,
        Ok(_) => panic!("a watch from a compacted resourceVersion must fail"),
    };
    let local = match orchestra_api::LocalClient::from_registry(Registry::from_arc(store.clone()))
        .watch::<Pod>(Some("w"), &old)
        .await
    {
        Err(err) => err,
        Ok(_) => panic!("a watch from a compacted resourceVersion must fail"),
    };
    assert!(matches!(remote, ApiError::Expired(_)), "{remote:?}");
    assert_eq!(
        (remote.code(), remote.reason(), remote.to_string()),
        (local.code(), local.reason(), local.to_string())
    );
    assert_eq!(remote.code(), 410);

    // The server shutting down ends open watches instead of hanging them.
    server.shutdown().await.expect("shutdown");
    let end = tokio::time::timeout(Duration::from_secs(10), from_now.next())
        .await
        .expect("the watch did not end within 10 s of the shutdown");
    assert!(
        !matches!(end, Some(Ok(_))),
        "no event after shutdown: {end:?}"
    );
}

/// Regression (issue #4, the watch fan-out benchmark's starved writer): watches share their
/// client's HTTP/2 connection with its writes, and HTTP/2 flow control has a window per
/// connection as well as per stream. With hyper's default windows (5 MB per connection,
/// 2 MB per stream) three watches whose caller has not read 2 MB yet used up the whole
/// connection's window, and the server could send nothing else on that connection, not even
/// the answer to a create, until some watcher read: a slow watcher stalled every request of
/// its process. Unread watch data must fill only its own stream's window.
#[tokio::test]
async fn a_create_completes_while_watchers_on_its_connection_do_not_read() {
    const WATCHERS: usize = 8;
    const WRITES: usize = 64;
    let (client, server) = mem().await;
    // Watches on the writer's own connection (one `RemoteClient` is one connection), none of
    // them read while the writes go on.
    let mut watches = Vec::new();
    for _ in 0..WATCHERS {
        let events = client
            .watch::<Pod>(Some("fan"), &WatchOptions::default())
            .await
            .expect("watch");
        watches.push(events);
    }
    // 64 KiB per event: 8 watchers x 64 writes is 32 MiB of watch data nobody reads, far more
    // than a connection's default window, while each watch's own share (4 MiB) is bounded by
    // its stream's window and the server's per-watch buffer.
    let padding = "x".repeat(64 * 1024);
    let mut created = Vec::new();
    for i in 0..WRITES {
        let mut pod = testing::pod("fan", &format!("p{i:03}"), "web");
        pod.metadata
            .annotations
            .insert("padding".into(), padding.clone());
        // A hang detector, not a timing assertion: before the fix this create never
        // completed (nothing read the watches, so the connection's window never reopened).
        let pod = tokio::time::timeout(Duration::from_secs(60), client.create(&pod))
            .await
            .unwrap_or_else(|_| {
                panic!("create {i} hung behind {WATCHERS} unread watches on its connection")
            })
            .expect("create");
        created.push(pod.metadata.resource_version);
    }
    // Every watcher still gets every event once, in order, once it reads.
    for events in &mut watches {
        for want in &created {
            match next(events).await {
                WatchEvent::Added(pod) => assert_eq!(&pod.metadata.resource_version, want),
                other => panic!("expected ADDED at {want}, got {other:?}"),
            }
        }
    }
    drop(watches);
    server.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_server_that_is_not_there_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let err = RemoteClient::connect(&format!("127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("cannot connect"), "{err}");
    let lazy = RemoteClient::connect_lazy(&format!("http://127.0.0.1:{port}")).expect("lazy");
    let err = lazy.get::<Pod>("default", "web").await.unwrap_err();
    assert_eq!(err.code(), 500, "{err}");
    assert!(
        err.to_string().contains("the API server call failed"),
        "{err}"
    );
}
