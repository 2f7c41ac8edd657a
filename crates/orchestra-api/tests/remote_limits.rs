//! `RemoteClient` against the server's limits: a call refused for the request rate (or the
//! open watches) is sent again after the server's `retry-after`, a bounded number of times and
//! only while the wait asked is short; and a gRPC message is held to the same size limit as a
//! REST body, with a 413 that names it.
//!
//! The retry tests run on tokio's paused clock, which the server's rate limiter reads too: a
//! token comes back exactly when the client's wait ends, and the waits are read off the
//! virtual clock. The server is plaintext with no authentication (every request acts as the
//! administrator), and the administrators' exemption is removed so that the limits apply.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use orchestra_api::registry::{DynRegistry, ListOptions, WatchOptions};
use orchestra_api::remote::RetryPolicy;
use orchestra_api::resources::{ConfigMap, Pod};
use orchestra_api::server::{ApiServer, Limits, Metrics, RunningServer, ServerOptions};
use orchestra_api::{ApiError, Client, ObjectMeta, Registry, RemoteClient, testing};
use orchestra_store::MemStore;
use tokio::time::Instant;

/// A server with `options`, its metrics, and a client of it.
async fn start(options: ServerOptions) -> (RunningServer, Arc<Metrics>, RemoteClient) {
    let server = ApiServer::with_options(DynRegistry::new(Registry::new(MemStore::new())), options);
    let metrics = server.metrics();
    let running = server.spawn("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = RemoteClient::connect(&running.url()).await.unwrap();
    (running, metrics, client)
}

/// `limits` applying to everybody, with no other timer that paused time could run into.
fn everybody(limits: Limits) -> ServerOptions {
    ServerOptions {
        limits: Limits {
            exempt_groups: vec![],
            header_read_timeout: Duration::from_secs(24 * 3600),
            http2_keep_alive: Duration::from_secs(24 * 3600),
            ..limits
        },
        ..ServerOptions::default()
    }
}

/// Everybody held to `rate` requests a second, one at once.
fn rate(rate: f64) -> ServerOptions {
    everybody(Limits {
        requests_per_second: Some(rate),
        burst: 1,
        ..Limits::default()
    })
}

#[tokio::test(start_paused = true)]
async fn a_throttled_call_is_sent_again_after_retry_after_and_succeeds() {
    // One request a second, one at once: the second request, sent at once, is refused with
    // `retry-after: 1`; a second later the bucket has a token again.
    let (server, metrics, client) = start(rate(1.0)).await;
    let start = Instant::now();
    client
        .create(&testing::pod("default", "web", "web"))
        .await
        .unwrap();
    assert_eq!(Instant::now() - start, Duration::ZERO, "not throttled");
    let pods = client
        .list::<Pod>(Some("default"), &ListOptions::default())
        .await
        .expect("the throttled list is retried and then served");
    assert_eq!(pods.items.len(), 1);
    // The default policy waits the server's retry-after stretched by up to a half of it.
    let waited = Instant::now() - start;
    assert!(
        waited >= Duration::from_secs(1) && waited <= Duration::from_millis(1500),
        "the client waited the server's retry-after plus its jitter, not {waited:?}"
    );
    assert_eq!(metrics.throttled_count("rate"), 1, "one refusal, one retry");
    // A write is retried too: the limiter refused it before it did anything.
    client
        .create(&testing::pod("default", "api", "api"))
        .await
        .expect("the throttled create is retried");
    assert_eq!(metrics.throttled_count("rate"), 2);
    assert_eq!(
        client
            .list::<Pod>(Some("default"), &ListOptions::default())
            .await
            .unwrap()
            .items
            .len(),
        2,
        "the create happened once"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn retries_stop_after_the_policys_count() {
    // One open watch per user, held: every further watch is refused with `retry-after: 1`.
    let (server, metrics, client) = start(everybody(Limits {
        max_watches_per_user: Some(1),
        ..Limits::default()
    }))
    .await;
    let client = client.with_retry(RetryPolicy {
        max_retries: 2,
        max_delay: Duration::from_secs(10),
        // Exact waits, for the elapsed-time assertion below (the jitter is unit-tested).
        jitter: 0.0,
    });
    let _held = client
        .watch::<Pod>(Some("default"), &WatchOptions::default())
        .await
        .unwrap();
    let start = Instant::now();
    let refused = client
        .watch::<Pod>(Some("default"), &WatchOptions::default())
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(
            refused,
            ApiError::TooManyRequests {
                retry_after_seconds: 1,
                ..
            }
        ),
        "{refused:?}"
    );
    assert_eq!(
        metrics.throttled_count("watches"),
        3,
        "the first try and two retries"
    );
    assert_eq!(Instant::now() - start, Duration::from_secs(2));
    // With retries off, the refusal comes back at once.
    let never = client.with_retry(RetryPolicy::never());
    let start = Instant::now();
    assert!(
        never
            .watch::<Pod>(Some("default"), &WatchOptions::default())
            .await
            .is_err()
    );
    assert_eq!(Instant::now() - start, Duration::ZERO);
    assert_eq!(metrics.throttled_count("watches"), 4);
    server.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_wait_longer_than_the_policys_bound_is_not_waited_for() {
    // One token per thousand seconds: the server asks for a wait far over the default 10 s.
    let (server, metrics, client) = start(rate(0.001)).await;
    client
        .list::<Pod>(Some("default"), &ListOptions::default())
        .await
        .unwrap();
    let start = Instant::now();
    let refused = client
        .list::<Pod>(Some("default"), &ListOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            ApiError::TooManyRequests {
                retry_after_seconds: 1000,
                ..
            }
        ),
        "{refused:?}"
    );
    assert_eq!(Instant::now() - start, Duration::ZERO, "no wait");
    assert_eq!(metrics.throttled_count("rate"), 1, "no retry");
    server.shutdown().await.unwrap();
}

fn config_map(name: &str, bytes: usize) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            namespace: "default".into(),
            ..ObjectMeta::named(name)
        },
        data: BTreeMap::from([("blob".to_owned(), "x".repeat(bytes))]),
        ..ConfigMap::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_message_is_held_to_the_rest_body_limit() {
    let (server, _, client) = start(ServerOptions::default()).await;
    let limit = ServerOptions::default().max_body_bytes;
    assert_eq!(limit, 3 * 1024 * 1024);
    // Over the body limit: refused before it is decoded, as REST refuses such a body.
    let refused = client
        .create(&config_map("huge", 4 * 1024 * 1024))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), 413, "{refused}");
    match &refused {
        ApiError::TooLarge { size, limit: l, .. } => {
            assert_eq!(*l, limit, "{refused}");
            assert!(*size > 4 * 1024 * 1024, "{refused}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(
        refused
            .to_string()
            .contains("over the limit of 3145728 bytes"),
        "{refused}"
    );
    // Under it, the message reaches the registry, whose validation refuses the data (a
    // ConfigMap holds 1 MiB at most): a different error, from further in.
    let refused = client
        .create(&config_map("big", 2 * 1024 * 1024))
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, ApiError::Invalid { name, .. } if name == "big"),
        "{refused:?}"
    );
    // And a small one is fine.
    client.create(&config_map("small", 1024)).await.unwrap();
    server.shutdown().await.unwrap();

    // The limit is `max_body_bytes`, for both protocols.
    let (server, _, client) = start(ServerOptions {
        max_body_bytes: 64 * 1024,
        ..ServerOptions::default()
    })
    .await;
    let refused = client
        .create(&config_map("medium", 100 * 1024))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ApiError::TooLarge { limit: 65536, .. }),
        "{refused:?}"
    );
    client.create(&config_map("small", 1024)).await.unwrap();
    server.shutdown().await.unwrap();
}
