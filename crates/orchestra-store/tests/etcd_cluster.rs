//! A three-member etcd cluster on loopback under `EtcdStore`: concurrent writers and a watcher
//! through one store that knows all three endpoints, while a follower and later the leader are
//! SIGKILLed and restarted. At the end every acknowledged write is in the store, and the
//! watcher saw every revision exactly once. Skipped (with a message) when etcd is not
//! installed, unless `ORCHESTRA_SYSTEM_TESTS=1`.

#![cfg(feature = "etcd")]

mod etcd_harness;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use orchestra_store::etcd::{EtcdOptions, EtcdStore};
use orchestra_store::testing::util::drain_until;
use orchestra_store::{Revision, Store, StoreExt, WatchRequest, WatchResponse};
use tokio::sync::watch as signal;
use tokio::time::Instant;

use etcd_harness::{Member, etcd_or_skip};

/// Elections in about half a second (etcd's defaults: 100 ms heartbeats, 1 s elections).
const FLAGS: &[&str] = &["--heartbeat-interval", "50", "--election-timeout", "500"];
/// The failure guard of every wait below (none of them relies on it elapsing).
const GUARD: Duration = Duration::from_secs(30);
/// Acknowledged writes between two steps of the scenario.
const STEP: usize = 150;

/// An acknowledged write: key, value, revision.
type Ack = (Bytes, Bytes, Revision);

/// Wait (polling, with a failure guard) until `acked` reaches `n`.
async fn until_acked(acked: &AtomicUsize, n: usize, what: &str) {
    let started = Instant::now();
    while acked.load(Ordering::Relaxed) < n {
        assert!(
            started.elapsed() < GUARD,
            "{what}: only {} of {n} writes acknowledged within {GUARD:?}",
            acked.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The index of the member that leads, as the running members see it.
async fn leader(store: &EtcdStore, members: &[Member]) -> usize {
    let started = Instant::now();
    loop {
        let statuses = store.member_statuses().await;
        let found = statuses
            .iter()
            .position(|(_, status)| status.as_ref().is_ok_and(|s| s.is_leader()));
        if let Some(index) = found
            && members[index].running()
        {
            return index;
        }
        assert!(
            started.elapsed() < GUARD,
            "no leader within {GUARD:?}: {statuses:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_watch_survive_killing_a_follower_then_the_leader() {
    let Some(binary) = etcd_or_skip("writes_and_watch_survive_killing_a_follower_then_the_leader")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let mut members = Member::start_cluster(&binary, dir.path(), 3, FLAGS).await;

    let urls: Vec<String> = members.iter().map(Member::url).collect();
    let store =
        EtcdStore::connect(EtcdOptions::new(urls).with_request_timeout(Duration::from_secs(10)))
            .await
            .expect("connect to the cluster");
    let start = store.status().await.expect("status").revision;

    // The watcher: everything under /c/ from the first revision of the run.
    let (stop_watch, mut final_revision) = signal::channel::<Option<Revision>>(None);
    let mut watch = store
        .watch(WatchRequest::prefix("/c/").from_revision(start + 1))
        .await
        .expect("watch");
    let watcher = tokio::spawn(async move {
        let mut responses: Vec<WatchResponse> = Vec::new();
        loop {
            tokio::select! {
                item = watch.next() => match item {
                    Some(Ok(resp)) => responses.push(resp),
                    Some(Err(err)) => panic!("the watch failed during the run: {err}"),
                    None => panic!("the watch ended during the run"),
                },
                _ = final_revision.wait_for(Option::is_some) => break,
            }
        }
        let until = final_revision.borrow().expect("the final revision");
        responses.extend(drain_until(&mut watch, until, "the watcher after the run").await);
        responses
    });

    // Three writers, each putting its own keys until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut writers = Vec::new();
    for w in 0..3 {
        let (store, stop, acked, failed) =
            (store.clone(), stop.clone(), acked.clone(), failed.clone());
        writers.push(tokio::spawn(async move {
            let mut acks: Vec<Ack> = Vec::new();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let key = Bytes::from(format!("/c/w{w}/{n:06}"));
                let value = Bytes::from(format!("w{w}-{n}"));
                n += 1;
                match store.put(key.clone(), value.clone()).await {
                    Ok(rev) => {
                        acks.push((key, value, rev));
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => {
                        // Not acknowledged: it may or may not have been applied. Pace the
                        // next attempt while the cluster recovers.
                        tracing::debug!(writer = w, %err, "write failed");
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            acks
        }));
    }

    until_acked(&acked, STEP, "before any failure").await;
    let lead = leader(&store, &members).await;
    let follower = (lead + 1) % members.len();
    members[follower].kill();
    until_acked(&acked, 2 * STEP, "with a follower down").await;
    members[follower].restart().await;
    until_acked(&acked, 3 * STEP, "after the follower came back").await;
    let lead = leader(&store, &members).await;
    members[lead].kill();
    until_acked(&acked, 4 * STEP, "with the old leader down").await;
    members[lead].restart().await;
    until_acked(&acked, 5 * STEP, "after the old leader came back").await;

    stop.store(true, Ordering::Relaxed);
    let mut acks: Vec<Ack> = Vec::new();
    for writer in writers {
        acks.extend(writer.await.expect("a writer panicked"));
    }
    let last = store.status().await.expect("status after the run").revision;
    stop_watch.send_replace(Some(last));
    let responses = watcher.await.expect("the watcher panicked");

    // Every acknowledged write is in the store, with its value and revision.
    let all = store
        .range(orchestra_store::RangeRequest::prefix("/c/"))
        .await
        .expect("range after the run");
    let stored: BTreeMap<Bytes, (Bytes, Revision)> = all
        .kvs
        .into_iter()
        .map(|kv| (kv.key, (kv.value, kv.mod_revision)))
        .collect();
    for (key, value, rev) in &acks {
        assert_eq!(
            stored.get(key),
            Some(&(value.clone(), *rev)),
            "acknowledged write {key:?} at revision {rev} must be in the store"
        );
    }

    // The watcher saw every revision of the run exactly once, in order, and each
    // acknowledged write at its revision.
    let events: Vec<_> = responses.iter().flat_map(|r| r.events.iter()).collect();
    let revisions: Vec<Revision> = events.iter().map(|e| e.kv.mod_revision).collect();
    let expected: Vec<Revision> = (start + 1..=last).collect();
    assert_eq!(
        revisions,
        expected,
        "the watcher must see every revision exactly once ({} acknowledged, {} failed writes)",
        acks.len(),
        failed.load(Ordering::Relaxed)
    );
    let by_revision: BTreeMap<Revision, (&Bytes, &Bytes)> = events
        .iter()
        .map(|e| (e.kv.mod_revision, (&e.kv.key, &e.kv.value)))
        .collect();
    for (key, value, rev) in &acks {
        assert_eq!(
            by_revision.get(rev),
            Some(&(key, value)),
            "the watcher's event at revision {rev}"
        );
    }
    eprintln!(
        "cluster run: revisions {}..={last}, {} acknowledged writes, {} failed (outcome unknown or refused)",
        start + 1,
        acks.len(),
        failed.load(Ordering::Relaxed)
    );
}
