//! A random concurrent workload for checking watch guarantees: several writer tasks make puts,
//! deletes, range deletes and multi-key transactions (some guarded by compares) over a small
//! key set, while watchers of every kind follow along — on prefixes, single keys, intervals
//! and open ranges, with filters and `prev_kv`, starting from past revisions or from now, some
//! eager, some slow, one that never reads until the end, one that repeatedly drops its stream
//! and resumes after the last revision it saw, and some started half way through. Afterwards
//! every watcher is checked with a [`WatchChecker`] against the history obtained by ranging the
//! store at every revision, the history is checked against what the writers wrote (one
//! revision per writing transaction, no revision without one), and watches started at mid
//! revisions after the fact are checked to be the tails of a full watch.
//!
//! ```no_run
//! # async fn example() {
//! use std::sync::Arc;
//! use orchestra_store::{MemStore, testing::{WatchWorkload, run_watch_workload}};
//! let report = run_watch_workload(Arc::new(MemStore::new()), WatchWorkload::default()).await;
//! assert!(report.events_checked > 0);
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tokio::sync::watch as signal;
use tokio::task::JoinHandle;

use crate::store::Store;
use crate::testing::checker::{ObservedWatch, WatchChecker, WatchStart};
use crate::testing::util::{drain_until, ok};
use crate::types::{
    Compare, CompareOp, DeleteRequest, Event, EventKind, KeyRange, Op, OpResponse, RangeRequest,
    Revision, Txn, WatchRequest, WatchResponse,
};

/// The shape of a [`run_watch_workload`] run.
#[derive(Clone, Copy, Debug)]
pub struct WatchWorkload {
    /// The seed of every random choice (print it with a failure to replay the choices; the
    /// interleaving of tasks still varies on a multi-threaded runtime).
    pub seed: u64,
    /// How many writer tasks.
    pub writers: usize,
    /// How many transactions each writer makes.
    pub txns_per_writer: usize,
    /// How many keys under the watched prefix `/w/` (a quarter as many more live outside it).
    pub keys: usize,
}

impl Default for WatchWorkload {
    fn default() -> Self {
        WatchWorkload {
            seed: 1,
            writers: 4,
            txns_per_writer: 100,
            keys: 12,
        }
    }
}

/// What a run checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkloadReport {
    /// The first revision of the run's history.
    pub first_revision: Revision,
    /// The last revision.
    pub last_revision: Revision,
    /// Watchers checked (a resuming watcher counts once).
    pub watchers: usize,
    /// Events delivered to them, all checked.
    pub events_checked: usize,
    /// Responses with events delivered to them.
    pub responses: usize,
}

/// How a watcher task reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pace {
    /// Reads every response as soon as it can.
    Eager,
    /// Yields to other tasks this many times after each response.
    Slow(u32),
    /// Does not read until the writers are done (it must be caught up from history).
    Never,
    /// Drops its stream after this many event responses and watches again from the revision
    /// after the last one it saw.
    Resuming(usize),
}

struct WatcherSpec {
    name: String,
    request: WatchRequest,
    start: WatchStart,
    pace: Pace,
}

/// A watcher and the task that follows it (returning every response it read).
type Follower = (WatcherSpec, JoinHandle<Vec<WatchResponse>>);

/// One writing transaction as its writer saw it.
#[derive(Debug)]
struct WriteRecord {
    writer: usize,
    revision: Revision,
    puts: BTreeMap<Bytes, Bytes>,
    deletes: BTreeSet<Bytes>,
}

/// Run the workload against `store` (which must be empty of other writers for the duration)
/// and check every watch guarantee; panics with a [`WatchViolation`](crate::testing::WatchViolation)
/// or an explicit message on failure. Spawns tasks: call it inside a tokio runtime (paused time
/// is fine; a multi-threaded runtime makes the interleavings more varied).
pub async fn run_watch_workload<S: Store>(store: Arc<S>, config: WatchWorkload) -> WorkloadReport {
    let seed = config.seed;
    assert!(
        config.keys >= 5,
        "the workload needs at least 5 keys for its multi-key transactions"
    );
    let mut rng = StdRng::seed_from_u64(seed);
    let inside: Vec<Bytes> = (0..config.keys)
        .map(|i| Bytes::from(format!("/w/k{i:02}")))
        .collect();
    let outside: Vec<Bytes> = (0..config.keys.div_ceil(4))
        .map(|i| Bytes::from(format!("/x/k{i:02}")))
        .collect();
    let all_keys: Vec<Bytes> = inside.iter().chain(&outside).cloned().collect();

    let initial = ok(store.status().await, "status before the workload").revision;
    let first = initial + 1;
    let mut records = Vec::new();
    // Seed some history so that watchers can start in the past.
    for (i, key) in all_keys.iter().enumerate() {
        let rev = ok(
            crate::ext::StoreExt::put(&*store, key.clone(), format!("seed-{i}")).await,
            "seed put",
        );
        records.push(WriteRecord {
            writer: usize::MAX,
            revision: rev,
            puts: BTreeMap::from([(key.clone(), Bytes::from(format!("seed-{i}")))]),
            deletes: BTreeSet::new(),
        });
    }
    let seeded = ok(store.status().await, "status after seeding").revision;
    let mid_seed = first + (seeded - first) / 2;

    let (stop_tx, stop_rx) = signal::channel::<Option<Revision>>(None);
    let mut watchers: Vec<Follower> = Vec::new();
    let k = |i: usize| inside[i % inside.len()].clone();
    let specs = vec![
        WatcherSpec {
            name: "everything from the start, prev_kv".into(),
            request: WatchRequest::range(KeyRange::prefix(""))
                .from_revision(first)
                .with_prev_kv(),
            start: WatchStart::At(first),
            pace: Pace::Eager,
        },
        WatcherSpec {
            name: "/w/ from the start".into(),
            request: WatchRequest::prefix("/w/").from_revision(first),
            start: WatchStart::At(first),
            pace: Pace::Eager,
        },
        WatcherSpec {
            name: "/w/ from the start, resuming".into(),
            request: WatchRequest::prefix("/w/").from_revision(first),
            start: WatchStart::At(first),
            pace: Pace::Resuming(7),
        },
        WatcherSpec {
            name: "interval from a seed revision, slow".into(),
            request: WatchRequest::range(KeyRange::interval(k(2), k(8))).from_revision(mid_seed),
            start: WatchStart::At(mid_seed),
            pace: Pace::Slow(20),
        },
        WatcherSpec {
            name: "/w/ deletes only, prev_kv, from the start".into(),
            request: WatchRequest {
                filter_puts: true,
                ..WatchRequest::prefix("/w/")
                    .from_revision(first)
                    .with_prev_kv()
            },
            start: WatchStart::At(first),
            pace: Pace::Eager,
        },
    ];
    for (name, request, pace) in [
        ("one key from now", WatchRequest::key(k(3)), Pace::Eager),
        (
            "/w/ from now, never reading until the end",
            WatchRequest::prefix("/w/"),
            Pace::Never,
        ),
        (
            "from a key on, puts only, from now",
            WatchRequest {
                filter_deletes: true,
                ..WatchRequest::range(KeyRange::from_key(k(5)))
            },
            Pace::Slow(3),
        ),
    ] {
        let lo = ok(store.status().await, "status").revision + 1;
        let stream = ok(store.watch(request.clone()).await, "watch");
        let hi = ok(store.status().await, "status").revision + 1;
        let spec = WatcherSpec {
            name: name.to_string(),
            request,
            start: WatchStart::Between(lo, hi),
            pace,
        };
        let task = tokio::spawn(follow(
            store.clone(),
            stream,
            spec.request.clone(),
            spec.pace,
            stop_rx.clone(),
            spec.name.clone(),
        ));
        watchers.push((spec, task));
    }
    for spec in specs {
        let stream = ok(store.watch(spec.request.clone()).await, "watch");
        let task = tokio::spawn(follow(
            store.clone(),
            stream,
            spec.request.clone(),
            spec.pace,
            stop_rx.clone(),
            spec.name.clone(),
        ));
        watchers.push((spec, task));
    }

    let mut writers = Vec::new();
    for writer in 0..config.writers {
        let store = store.clone();
        let keys = all_keys.clone();
        let writer_seed = rng.random::<u64>();
        let stop_rx = stop_rx.clone();
        let n = config.txns_per_writer;
        writers.push(tokio::spawn(async move {
            write(store, writer, n, keys, writer_seed, first, stop_rx).await
        }));
    }
    for task in writers {
        let (written, spawned) = match task.await {
            Ok(done) => done,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        records.extend(written);
        watchers.extend(spawned);
    }
    let last = ok(store.status().await, "status after the workload").revision;
    stop_tx.send_replace(Some(last));

    let checker = ok(
        WatchChecker::from_store(&*store, first, last).await,
        "the history, by ranging every revision",
    );
    let empty = checker.empty_revisions();
    assert!(
        empty.is_empty(),
        "seed {seed}: revisions without any change: {empty:?}"
    );
    check_records(&checker, &mut records, first, last, seed);

    let mut report = WorkloadReport {
        first_revision: first,
        last_revision: last,
        ..Default::default()
    };
    let mut observed = Vec::new();
    for (spec, task) in watchers {
        let responses = match task.await {
            Ok(responses) => responses,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        let watch = ObservedWatch {
            name: spec.name,
            request: spec.request,
            start: spec.start,
            responses,
            until: last,
        };
        let stats = checker
            .check(&watch)
            .unwrap_or_else(|v| panic!("seed {seed}: {v}"));
        report.watchers += 1;
        report.events_checked += stats.events;
        report.responses += stats.event_responses;
        observed.push(watch);
    }

    // Resumability after the fact: watches of /w/ from mid revisions are tails of the full one.
    let full = observed
        .iter()
        .find(|w| w.name == "/w/ from the start")
        .expect("the /w/ watcher");
    for _ in 0..3 {
        let from = rng.random_range(first..=last);
        let request = WatchRequest::prefix("/w/").from_revision(from);
        let mut stream = ok(
            store.watch(request.clone()).await,
            "watch from a mid revision",
        );
        let responses = drain_until(&mut stream, last, "watch from a mid revision").await;
        let resumed = ObservedWatch {
            name: format!("/w/ from mid revision {from}"),
            request,
            start: WatchStart::At(from),
            responses,
            until: last,
        };
        let stats = checker
            .check(&resumed)
            .unwrap_or_else(|v| panic!("seed {seed}: {v}"));
        WatchChecker::check_resumed(full, &resumed).unwrap_or_else(|v| panic!("seed {seed}: {v}"));
        report.watchers += 1;
        report.events_checked += stats.events;
        report.responses += stats.event_responses;
    }
    report
}

/// Every revision of the run belongs to exactly one writing transaction, each writer's
/// revisions increase, and each transaction's writes are exactly its revision's events.
fn check_records(
    checker: &WatchChecker,
    records: &mut [WriteRecord],
    first: Revision,
    last: Revision,
    seed: u64,
) {
    records.sort_by_key(|r| r.revision);
    let revisions: Vec<Revision> = records.iter().map(|r| r.revision).collect();
    let expected: Vec<Revision> = (first..=last).collect();
    assert_eq!(
        revisions, expected,
        "seed {seed}: every writing transaction takes its own revision and every revision belongs to one"
    );
    let mut last_of_writer: BTreeMap<usize, Revision> = BTreeMap::new();
    for record in records.iter() {
        if let Some(previous) = last_of_writer.insert(record.writer, record.revision) {
            assert!(
                previous < record.revision,
                "seed {seed}: writer {} got revision {} after {previous}",
                record.writer,
                record.revision
            );
        }
        let events = &checker.history()[&record.revision];
        let puts: BTreeMap<Bytes, Bytes> = events
            .iter()
            .filter(|e| e.kind == EventKind::Put)
            .map(|e| (e.kv.key.clone(), e.kv.value.clone()))
            .collect();
        let deletes: BTreeSet<Bytes> = events
            .iter()
            .filter(|e| e.kind == EventKind::Delete)
            .map(|e| e.kv.key.clone())
            .collect();
        assert_eq!(
            (&puts, &deletes),
            (&record.puts, &record.deletes),
            "seed {seed}: revision {} must hold exactly the writes of its transaction",
            record.revision
        );
    }
}

/// Follow a watch until the writers are done, then drain it up to the final revision.
async fn follow<S: Store>(
    store: Arc<S>,
    mut stream: crate::watch::WatchStream,
    request: WatchRequest,
    pace: Pace,
    mut stop: signal::Receiver<Option<Revision>>,
    name: String,
) -> Vec<WatchResponse> {
    let mut responses = Vec::new();
    let mut since_resume = 0;
    if pace == Pace::Never {
        let _ = stop.wait_for(Option::is_some).await;
    } else {
        loop {
            tokio::select! {
                item = stream.next() => {
                    let resp = match item {
                        Some(Ok(resp)) => resp,
                        Some(Err(e)) => panic!("watch {name:?} failed during the workload: {e}"),
                        None => panic!("watch {name:?} ended during the workload"),
                    };
                    let last_event = resp.events.last().map(|e: &Event| e.kv.mod_revision);
                    responses.push(resp);
                    match pace {
                        Pace::Slow(yields) => {
                            for _ in 0..yields {
                                tokio::task::yield_now().await;
                            }
                        }
                        Pace::Resuming(every) => {
                            if let Some(revision) = last_event {
                                since_resume += 1;
                                if since_resume >= every {
                                    since_resume = 0;
                                    let again = request.clone().from_revision(revision + 1);
                                    stream = ok(store.watch(again).await, "resume a watch");
                                }
                            }
                        }
                        Pace::Eager | Pace::Never => {}
                    }
                }
                // Map the output to (): a borrow of the channel must not live in the handlers.
                () = async { let _ = stop.wait_for(Option::is_some).await; } => break,
            }
        }
    }
    let until = stop.borrow().expect("the final revision was sent");
    responses.extend(drain_until(&mut stream, until, &name).await);
    responses
}

/// One writer: random transactions over `keys`; returns what it wrote, and the watchers it
/// started half way.
async fn write<S: Store>(
    store: Arc<S>,
    writer: usize,
    txns: usize,
    keys: Vec<Bytes>,
    seed: u64,
    first: Revision,
    stop: signal::Receiver<Option<Revision>>,
) -> (Vec<WriteRecord>, Vec<Follower>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut records = Vec::new();
    let mut spawned = Vec::new();
    let mut value_id = 0usize;
    let mut value = |rng: &mut StdRng| {
        value_id += 1;
        Bytes::from(format!(
            "w{writer}-{value_id}-{}",
            rng.random_range(0..1000)
        ))
    };
    for i in 0..txns {
        if writer == 0 && i > 0 && i % (txns / 3).max(1) == 0 {
            spawned.push(spawn_mid_watcher(&store, &mut rng, &keys, &stop, first, i).await);
        }
        let choice = rng.random_range(0..100);
        let txn = if choice < 35 {
            let key = keys[rng.random_range(0..keys.len())].clone();
            Txn::new().and_then([Op::put(key, value(&mut rng))])
        } else if choice < 50 {
            let key = keys[rng.random_range(0..keys.len())].clone();
            Txn::new().and_then([Op::delete(key)])
        } else if choice < 60 {
            let a = rng.random_range(0..keys.len());
            let b = rng.random_range(0..keys.len());
            let (lo, hi) = (keys[a.min(b)].clone(), keys[a.max(b)].clone());
            let range = if lo == hi {
                KeyRange::single(lo)
            } else {
                KeyRange::interval(lo, hi)
            };
            Txn::new().and_then([Op::Delete(DeleteRequest {
                range,
                prev_kv: true,
            })])
        } else if choice < 92 {
            let mut picked = keys.clone();
            picked.shuffle(&mut rng);
            let n = rng.random_range(2..=4);
            let branch = |rng: &mut StdRng,
                          value: &mut dyn FnMut(&mut StdRng) -> Bytes,
                          keys: &[Bytes]|
             -> Vec<Op> {
                keys.iter()
                    .map(|key| {
                        if rng.random_bool(0.7) {
                            Op::put(key.clone(), value(rng))
                        } else {
                            Op::delete(key.clone())
                        }
                    })
                    .collect()
            };
            let success = branch(&mut rng, &mut value, &picked[..n]);
            let failure = branch(&mut rng, &mut value, &picked[n..n + 2]);
            let compares = match rng.random_range(0..3) {
                0 => vec![],
                1 => vec![Compare::version(picked[0].clone(), CompareOp::Greater, 0)],
                _ => vec![Compare::value(
                    picked[1].clone(),
                    CompareOp::Less,
                    format!("w{}", rng.random_range(0..4)),
                )],
            };
            Txn::new().when(compares).and_then(success).or_else(failure)
        } else {
            let key = keys[rng.random_range(0..keys.len())].clone();
            Txn::new().and_then([Op::get(key), Op::Range(RangeRequest::prefix("/w/"))])
        };
        let branch = txn.clone();
        let resp = ok(store.txn(txn).await, "workload txn");
        let ops = if resp.succeeded {
            branch.success
        } else {
            branch.failure
        };
        let mut record = WriteRecord {
            writer,
            revision: resp.header_revision,
            puts: BTreeMap::new(),
            deletes: BTreeSet::new(),
        };
        for (op, response) in ops.iter().zip(&resp.responses) {
            match (op, response) {
                (Op::Put(put), OpResponse::Put { .. }) => {
                    record.puts.insert(put.key.clone(), put.value.clone());
                }
                (Op::Delete(_), OpResponse::Delete { prev_kvs, deleted }) => {
                    assert_eq!(
                        *deleted,
                        prev_kvs.len(),
                        "a delete with prev_kv returns every deleted key"
                    );
                    record
                        .deletes
                        .extend(prev_kvs.iter().map(|kv| kv.key.clone()));
                }
                (Op::Range(_), OpResponse::Range(_)) => {}
                (op, response) => {
                    panic!("writer {writer}: response {response:?} does not match operation {op:?}")
                }
            }
        }
        if !record.puts.is_empty() || !record.deletes.is_empty() {
            records.push(record);
        }
        if rng.random_bool(0.3) {
            tokio::task::yield_now().await;
        }
    }
    (records, spawned)
}

/// A watcher started while the writers write: from a past revision or from now.
async fn spawn_mid_watcher<S: Store>(
    store: &Arc<S>,
    rng: &mut StdRng,
    keys: &[Bytes],
    stop: &signal::Receiver<Option<Revision>>,
    first: Revision,
    step: usize,
) -> Follower {
    let lo = ok(store.status().await, "status").revision + 1;
    let range = if rng.random_bool(0.5) {
        KeyRange::prefix("/w/")
    } else {
        KeyRange::single(keys[rng.random_range(0..keys.len())].clone())
    };
    let (request, start) = if rng.random_bool(0.5) {
        let from = rng.random_range((lo - 20).max(first)..lo);
        (
            WatchRequest::range(range)
                .from_revision(from)
                .with_prev_kv(),
            WatchStart::At(from),
        )
    } else {
        (WatchRequest::range(range), WatchStart::Between(lo, lo))
    };
    let stream = ok(store.watch(request.clone()).await, "watch started half way");
    let start = match start {
        WatchStart::Between(lo, _) => {
            WatchStart::Between(lo, ok(store.status().await, "status").revision + 1)
        }
        at => at,
    };
    let pace = if step.is_multiple_of(2) {
        Pace::Eager
    } else {
        Pace::Slow(5)
    };
    let name = format!(
        "started half way (step {step}), {start:?}, {:?}",
        request.range
    );
    let task = tokio::spawn(follow(
        store.clone(),
        stream,
        request.clone(),
        pace,
        stop.clone(),
        name.clone(),
    ));
    (
        WatcherSpec {
            name,
            request,
            start,
            pace,
        },
        task,
    )
}
