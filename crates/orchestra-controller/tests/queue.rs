//! The work queue against a model: it never loses or duplicates a key and never hands the
//! same key to two workers, whatever the interleaving of adds, delayed adds, gets, dones and
//! time passing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use orchestra_controller::WorkQueue;
use proptest::prelude::*;
use tokio::time::Instant;

#[derive(Clone, Debug)]
enum Op {
    Add(u8),
    AddAfter(u8, u64),
    AddRateLimited(u8),
    Get,
    Done(usize),
    Forget(u8),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..6;
    prop_oneof![
        3 => key.clone().prop_map(Op::Add),
        2 => (key.clone(), 1u64..50).prop_map(|(k, ms)| Op::AddAfter(k, ms)),
        1 => key.clone().prop_map(Op::AddRateLimited),
        4 => Just(Op::Get),
        3 => (0usize..8).prop_map(Op::Done),
        1 => key.prop_map(Op::Forget),
        2 => (1u64..40).prop_map(Op::Advance),
    ]
}

/// What the queue must do, in the simplest terms: the keys owed a hand-out, the keys handed
/// out and not done, and the delayed keys with their earliest due time.
#[derive(Default)]
struct Model {
    owed: BTreeSet<u8>,
    processing: BTreeSet<u8>,
    delayed: BTreeMap<u8, Instant>,
}

impl Model {
    fn promote(&mut self, now: Instant) {
        let due: Vec<u8> = self
            .delayed
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| *k)
            .collect();
        for key in due {
            self.delayed.remove(&key);
            self.owed.insert(key);
        }
    }

    fn delay(&mut self, key: u8, at: Instant, now: Instant) {
        if at <= now {
            self.owed.insert(key);
            return;
        }
        let due = self.delayed.entry(key).or_insert(at);
        if at < *due {
            *due = at;
        }
    }
}

fn run_ops(ops: Vec<Op>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let queue = WorkQueue::<u8>::new();
        let mut model = Model::default();
        let mut held: Vec<u8> = Vec::new();
        for op in ops {
            let now = Instant::now();
            match op {
                Op::Add(k) => {
                    queue.add(k);
                    model.owed.insert(k);
                }
                Op::AddAfter(k, ms) => {
                    queue.add_after(k, Duration::from_millis(ms));
                    model.delay(k, now + Duration::from_millis(ms), now);
                }
                Op::AddRateLimited(k) => {
                    let before = queue.num_requeues(&k);
                    queue.add_rate_limited(k);
                    assert_eq!(queue.num_requeues(&k), before + 1);
                    // The delay is the limiter's business; the model only needs "later".
                    let expected = 5u64 << before.min(20);
                    let at = now + Duration::from_millis(expected).min(Duration::from_secs(1000));
                    model.delay(k, at, now);
                }
                Op::Get => {
                    model.promote(now);
                    let available: BTreeSet<u8> =
                        model.owed.difference(&model.processing).copied().collect();
                    match queue.try_get() {
                        Some(k) => {
                            assert!(
                                !model.processing.contains(&k),
                                "key {k} handed out while another worker holds it"
                            );
                            assert!(
                                model.owed.contains(&k),
                                "key {k} handed out but never added"
                            );
                            model.owed.remove(&k);
                            model.processing.insert(k);
                            held.push(k);
                        }
                        None => assert!(
                            available.is_empty(),
                            "keys {available:?} were owed but not handed out"
                        ),
                    }
                }
                Op::Done(i) => {
                    if !held.is_empty() {
                        let k = held.remove(i % held.len());
                        queue.done(&k);
                        model.processing.remove(&k);
                    }
                }
                Op::Forget(k) => {
                    queue.forget(&k);
                    assert_eq!(queue.num_requeues(&k), 0);
                }
                Op::Advance(ms) => tokio::time::advance(Duration::from_millis(ms)).await,
            }
            assert!(queue.len() <= 6, "a key is queued at most once");
        }
        // Finish everything, let every delay pass, and drain: exactly the owed keys come out,
        // once each.
        for k in held.drain(..) {
            queue.done(&k);
            model.processing.remove(&k);
        }
        tokio::time::advance(Duration::from_secs(2000)).await;
        model.promote(Instant::now());
        let mut drained = Vec::new();
        while let Some(k) = queue.try_get() {
            queue.done(&k);
            drained.push(k);
        }
        let unique: BTreeSet<u8> = drained.iter().copied().collect();
        assert_eq!(
            unique.len(),
            drained.len(),
            "a key came out twice: {drained:?}"
        );
        assert_eq!(unique, model.owed, "lost or invented keys");
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_loses_duplicates_or_shares_a_key(ops in proptest::collection::vec(op(), 1..80)) {
        run_ops(ops);
    }
}

/// Real workers on a multi-threaded runtime: each key is processed by one worker at a time,
/// and every add is followed by at least one processing of that key after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_workers_never_share_a_key_and_see_every_add() {
    let queue = WorkQueue::<u32>::new();
    let in_flight = Arc::new(Mutex::new(HashSet::new()));
    // For each key: the number of adds made, and the adds seen by a processing that started
    // after them.
    let added = Arc::new(Mutex::new(HashMap::<u32, u64>::new()));
    let seen = Arc::new(Mutex::new(HashMap::<u32, u64>::new()));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (queue, in_flight, added, seen) = (
            queue.clone(),
            Arc::clone(&in_flight),
            Arc::clone(&added),
            Arc::clone(&seen),
        );
        workers.push(tokio::spawn(async move {
            while let Some(key) = queue.get().await {
                assert!(
                    in_flight.lock().unwrap().insert(key),
                    "{key} processed twice at once"
                );
                let adds_so_far = added.lock().unwrap().get(&key).copied().unwrap_or(0);
                tokio::task::yield_now().await;
                seen.lock().unwrap().insert(key, adds_so_far);
                in_flight.lock().unwrap().remove(&key);
                queue.done(&key);
            }
        }));
    }
    for round in 0..2000u32 {
        let key = round % 17;
        *added.lock().unwrap().entry(key).or_default() += 1;
        queue.add(key);
        if round % 50 == 0 {
            tokio::task::yield_now().await;
        }
    }
    queue.shut_down_with_drain().await;
    // Keys still queued at shutdown are handed out before get returns None.
    for worker in workers {
        worker.await.expect("worker");
    }
    let added = added.lock().unwrap();
    let seen = seen.lock().unwrap();
    for (key, count) in added.iter() {
        assert_eq!(
            seen.get(key),
            Some(count),
            "key {key}: its last add was never processed"
        );
    }
}
