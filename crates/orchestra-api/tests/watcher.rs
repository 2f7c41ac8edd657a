//! The watcher against `LocalClient` over `MemStore`, with disconnects, 410s and failures
//! injected by `FaultyClient`, in paused time (every delay is exact, nothing sleeps for real).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orchestra_api::registry::{DeleteOptions, ListOptions};
use orchestra_api::resources::Pod;
use orchestra_api::watcher::faults::FaultyClient;
use orchestra_api::watcher::{self, Backoff, Event, WatcherConfig, WatcherStream};
use orchestra_api::{ApiError, Client, LocalClient, testing};
use orchestra_store::{MemStore, Store, StoreError};
use tokio::time::Instant;

fn setup() -> (MemStore, FaultyClient<LocalClient>) {
    let store = MemStore::new();
    (store.clone(), FaultyClient::new(LocalClient::new(store)))
}

fn no_bookmarks() -> WatcherConfig {
    WatcherConfig {
        bookmark_interval: None,
        ..WatcherConfig::default()
    }
}

fn exact_backoff() -> WatcherConfig {
    WatcherConfig {
        backoff: Backoff::default().with_jitter(0.0),
        ..no_bookmarks()
    }
}

async fn next(events: &mut WatcherStream<Pod>) -> Result<Event<Pod>, ApiError> {
    tokio::time::timeout(Duration::from_secs(300), events.next())
        .await
        .expect("the watcher stalled")
        .expect("the watcher never ends")
}

fn names(pods: &[Arc<Pod>]) -> Vec<&str> {
    pods.iter().map(|p| p.metadata.name.as_str()).collect()
}

fn describe(event: &Event<Pod>) -> String {
    match event {
        Event::Restarted(pods) => format!("restarted {:?}", names(pods)),
        Event::Applied(pod) => format!("applied {}", pod.metadata.name),
        Event::Deleted(pod) => format!("deleted {}", pod.metadata.name),
    }
}

async fn create(client: &impl Client, name: &str) -> Pod {
    client
        .create(&testing::pod("w", name, "web"))
        .await
        .expect("create")
}

async fn current_revision(client: &impl Client) -> i64 {
    let list = client
        .list::<Pod>(None, &ListOptions::default())
        .await
        .expect("list");
    list.resource_version
        .parse()
        .expect("numeric resourceVersion")
}

#[tokio::test(start_paused = true)]
async fn resumes_after_disconnects_without_duplicates_or_gaps() {
    let (_store, client) = setup();
    for name in ["a", "b", "c"] {
        create(&client, name).await;
    }
    client.cut_next_watch_after(2);
    client.cut_next_watch_after(1);
    let mut events = watcher::watcher::<Pod, _>(client.clone(), no_bookmarks());
    let listed = next(&mut events).await.expect("list");
    assert_eq!(describe(&listed), r#"restarted ["a", "b", "c"]"#);

    let d = create(&client, "d").await;
    let e = create(&client, "e").await;
    client
        .patch::<Pod>(
            "w",
            "a",
            &serde_json::json!({"metadata": {"labels": {"x": "1"}}}),
        )
        .await
        .expect("patch");
    client
        .delete::<Pod>("w", "b", &DeleteOptions::default())
        .await
        .expect("delete");
    create(&client, "f").await;
    let started = Instant::now();
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(describe(&next(&mut events).await.expect("event")));
    }
    assert_eq!(
        seen,
        [
            "applied d",
            "applied e",
            "applied a",
            "deleted b",
            "applied f"
        ]
    );
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "a disconnect is no failure"
    );
    let first = current_revision(client.inner()).await - 5;
    assert_eq!(
        client.watch_versions(),
        [
            Some(first.to_string()),
            Some(e.metadata.resource_version.clone()),
            Some((first + 3).to_string()),
        ],
        "each watch resumes from the last event seen (d was at {})",
        d.metadata.resource_version
    );
    let quiet = tokio::time::timeout(Duration::from_secs(600), events.next()).await;
    assert!(quiet.is_err(), "nothing more: {quiet:?}");
}

#[tokio::test(start_paused = true)]
async fn relists_on_expired_with_the_current_state() {
    let (store, client) = setup();
    create(&client, "a").await;
    client.cut_next_watch_after(1);
    let mut events = watcher::watcher::<Pod, _>(client.clone(), no_bookmarks());
    assert_eq!(
        describe(&next(&mut events).await.expect("list")),
        r#"restarted ["a"]"#
    );
    create(&client, "b").await;
    create(&client, "c").await;
    client
        .delete::<Pod>("w", "a", &DeleteOptions::default())
        .await
        .expect("delete");
    assert_eq!(
        describe(&next(&mut events).await.expect("event")),
        "applied b"
    );
    // The watch was cut after b; compacting now makes b's resourceVersion too old.
    store
        .compact(current_revision(client.inner()).await)
        .await
        .expect("compact");
    let started = Instant::now();
    let gone = next(&mut events).await;
    assert!(matches!(gone, Err(ApiError::Expired(_))), "{gone:?}");
    let relisted = next(&mut events).await.expect("relist");
    assert_eq!(describe(&relisted), r#"restarted ["b", "c"]"#);
    assert_eq!(started.elapsed(), Duration::ZERO, "410 relists at once");
    assert_eq!(client.list_calls(), 2);
    create(&client, "d").await;
    assert_eq!(
        describe(&next(&mut events).await.expect("event")),
        "applied d"
    );
}

#[tokio::test(start_paused = true)]
async fn an_injected_410_on_watch_also_relists() {
    let (_store, client) = setup();
    create(&client, "a").await;
    client.fail_next_watch(ApiError::Expired("too old".into()));
    let mut events = watcher::watcher::<Pod, _>(client.clone(), no_bookmarks());
    assert!(matches!(next(&mut events).await, Ok(Event::Restarted(_))));
    assert!(matches!(next(&mut events).await, Err(ApiError::Expired(_))));
    create(&client, "b").await;
    let relisted = next(&mut events).await.expect("relist");
    assert_eq!(describe(&relisted), r#"restarted ["a", "b"]"#);
}

/// The milliseconds between successive ticks (the first from its creation).
struct Gaps {
    last: Instant,
    gaps: Vec<u128>,
}

impl Default for Gaps {
    fn default() -> Self {
        Gaps {
            last: Instant::now(),
            gaps: Vec::new(),
        }
    }
}

impl Gaps {
    fn tick(&mut self) {
        let now = Instant::now();
        self.gaps.push(now.duration_since(self.last).as_millis());
        self.last = now;
    }

    fn take(&mut self) -> Vec<u128> {
        std::mem::take(&mut self.gaps)
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_grows_caps_and_resets_after_a_success() {
    let (_store, client) = setup();
    for _ in 0..8 {
        client.fail_next_list(ApiError::Internal(StoreError::Closed));
    }
    let mut events = watcher::watcher::<Pod, _>(client.clone(), exact_backoff());
    let mut gaps = Gaps::default();
    for _ in 0..8 {
        assert!(next(&mut events).await.is_err());
        gaps.tick();
    }
    assert!(matches!(next(&mut events).await, Ok(Event::Restarted(_))));
    gaps.tick();
    assert_eq!(
        gaps.take(),
        [0, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000],
        "800 ms doubling to the 30 s cap"
    );

    client.fail_next_watch(ApiError::Internal(StoreError::Closed));
    client.fail_next_watch(ApiError::Internal(StoreError::Closed));
    create(&client, "a").await;
    assert!(next(&mut events).await.is_err());
    gaps.tick();
    assert!(next(&mut events).await.is_err());
    gaps.tick();
    assert_eq!(
        describe(&next(&mut events).await.expect("event")),
        "applied a"
    );
    gaps.tick();
    assert_eq!(
        gaps.take(),
        [0, 800, 1600],
        "the list's success reset the backoff"
    );
}

#[tokio::test(start_paused = true)]
async fn jittered_delays_stay_within_bounds() {
    let (_store, client) = setup();
    for _ in 0..4 {
        client.fail_next_list(ApiError::Internal(StoreError::Closed));
    }
    let mut events = watcher::watcher::<Pod, _>(client.clone(), no_bookmarks());
    assert!(next(&mut events).await.is_err());
    let mut last = Instant::now();
    for base in [800u128, 1600, 3200] {
        assert!(next(&mut events).await.is_err());
        let now = Instant::now();
        let waited = now.duration_since(last).as_millis();
        assert!(
            (base..=base * 5 / 4).contains(&waited),
            "{waited} ms for base {base}"
        );
        last = now;
    }
}

#[tokio::test(start_paused = true)]
async fn follows_one_namespace_and_resumes_from_bookmarks() {
    let (_store, client) = setup();
    client
        .create(&testing::pod("other", "x", "web"))
        .await
        .expect("create");
    create(&client, "a").await;
    let config = WatcherConfig {
        bookmark_interval: Some(Duration::from_secs(1)),
        ..WatcherConfig::default().namespace("w")
    };
    // Each watch is cut after one item: with nothing selected changing, that is a bookmark.
    client.cut_every_watch_after(Some(1));
    let mut events = watcher::watcher::<Pod, _>(client.clone(), config);
    assert_eq!(
        describe(&next(&mut events).await.expect("list")),
        r#"restarted ["a"]"#
    );
    let writer = client.clone();
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(5500)).await;
        writer
            .create(&testing::pod("other", "y", "web"))
            .await
            .expect("create");
        create(&writer, "b").await
    });
    assert_eq!(
        describe(&next(&mut events).await.expect("event")),
        "applied b"
    );
    let b = later.await.expect("task");
    let versions = client.watch_versions();
    assert!(versions.len() >= 5, "a watch per bookmark: {versions:?}");
    let last = versions.last().cloned().flatten().expect("a version");
    let last: i64 = last.parse().expect("numeric");
    let b_rv: i64 = b.metadata.resource_version.parse().expect("numeric");
    assert!(last < b_rv, "resumed before b: {last} < {b_rv}");
}

#[tokio::test(start_paused = true)]
async fn lists_in_pages_and_applies_label_selectors() {
    let (_store, client) = setup();
    for name in ["a", "b", "c", "d", "e"] {
        create(&client, name).await;
    }
    client
        .create(&testing::pod("w", "other", "db"))
        .await
        .expect("create");
    let config = WatcherConfig {
        page_size: 2,
        ..no_bookmarks().labels("app=web".parse().expect("selector"))
    };
    let mut events = watcher::watcher::<Pod, _>(client.clone(), config);
    assert_eq!(
        describe(&next(&mut events).await.expect("list")),
        r#"restarted ["a", "b", "c", "d", "e"]"#
    );
    assert_eq!(client.list_calls(), 3, "three pages of two");
    client
        .patch::<Pod>(
            "w",
            "a",
            &serde_json::json!({"metadata": {"labels": {"app": "db"}}}),
        )
        .await
        .expect("patch");
    client
        .patch::<Pod>(
            "w",
            "other",
            &serde_json::json!({"metadata": {"labels": {"app": "web"}}}),
        )
        .await
        .expect("patch");
    assert_eq!(
        describe(&next(&mut events).await.expect("event")),
        "deleted a",
        "stopped matching"
    );
    assert_eq!(
        describe(&next(&mut events).await.expect("event")),
        "applied other",
        "started matching"
    );
}

#[tokio::test(start_paused = true)]
async fn a_410_right_after_a_list_backs_off_instead_of_spinning() {
    let (_store, client) = setup();
    client.fail_next_watch(ApiError::Expired("too old".into()));
    client.fail_next_watch(ApiError::Expired("too old".into()));
    let mut events = watcher::watcher::<Pod, _>(client.clone(), exact_backoff());
    let mut gaps = Gaps::default();
    for _ in 0..2 {
        assert!(matches!(next(&mut events).await, Ok(Event::Restarted(_))));
        gaps.tick();
        assert!(matches!(next(&mut events).await, Err(ApiError::Expired(_))));
        gaps.tick();
    }
    assert!(matches!(next(&mut events).await, Ok(Event::Restarted(_))));
    gaps.tick();
    assert_eq!(gaps.take(), [0, 0, 800, 0, 800]);
    assert_eq!(client.list_calls(), 3);
}
