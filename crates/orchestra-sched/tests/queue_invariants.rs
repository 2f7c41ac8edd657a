//! The scheduling queue over random operation sequences: no pod is ever lost or duplicated,
//! the heap pops by priority, backoff delays are respected, and cluster events and the
//! 5-minute flush bring unschedulable pods back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use orchestra_api::meta::ObjectMeta;
use orchestra_api::resources::{Pod, PodSpec};
use orchestra_sched::queue::{
    LessFn, Place, SchedulingQueue, UNSCHEDULABLE_FLUSH, backoff_duration,
};
use orchestra_sched::{Framework, PodInfo, plugins};
use proptest::prelude::*;

fn pod(i: u8, priority: i32) -> Arc<PodInfo> {
    let pod = Pod {
        metadata: ObjectMeta::namespaced("default", format!("p{i}")),
        spec: PodSpec {
            priority: Some(priority),
            ..PodSpec::default()
        },
        status: None,
    };
    Arc::new(PodInfo::new(pod).expect("a valid pod"))
}

fn queue() -> SchedulingQueue {
    let framework = Arc::new(Framework::new(plugins::default_profile()));
    let less: LessFn = Arc::new(move |a, b| framework.less(a, b));
    SchedulingQueue::new(less)
}

#[derive(Clone, Debug)]
enum Op {
    Add(u8, i32),
    Update(u8, i32),
    Delete(u8),
    Pop,
    Done(usize),
    Unschedulable(usize),
    Backoff(usize),
    Event,
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..12, 0i32..4).prop_map(|(i, p)| Op::Add(i, p)),
        1 => (0u8..12, 0i32..4).prop_map(|(i, p)| Op::Update(i, p)),
        1 => (0u8..12).prop_map(Op::Delete),
        4 => Just(Op::Pop),
        1 => any::<usize>().prop_map(Op::Done),
        2 => any::<usize>().prop_map(Op::Unschedulable),
        2 => any::<usize>().prop_map(Op::Backoff),
        1 => Just(Op::Event),
        2 => (0u64..15_000).prop_map(Op::Advance),
    ]
}

/// What the test knows about a pod.
#[derive(Clone, Debug)]
struct Model {
    priority: i32,
    in_flight: bool,
    attempts: u32,
    last_pop: Duration,
    /// Whether it failed an attempt (so its next pop waits out a backoff).
    failed: bool,
    /// Whether that attempt ended in an error (its backoff is never cut short).
    errored: bool,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_pod_is_lost_or_duplicated(ops in proptest::collection::vec(op(), 1..120)) {
        let mut q = queue();
        let mut model: HashMap<String, Model> = HashMap::new();
        let mut now = Duration::ZERO;
        let in_flight = |model: &HashMap<String, Model>| {
            let mut keys: Vec<String> =
                model.iter().filter(|(_, m)| m.in_flight).map(|(k, _)| k.clone()).collect();
            keys.sort();
            keys
        };
        for op in ops {
            match op {
                Op::Add(i, p) | Op::Update(i, p) => {
                    let info = pod(i, p);
                    let key = info.key().to_owned();
                    if matches!(op, Op::Add(..)) { q.add(info, now) } else { q.update(info, now) }
                    model.entry(key).and_modify(|m| m.priority = p).or_insert(Model {
                        priority: p, in_flight: false, attempts: 0, last_pop: now, failed: false,
                        errored: false,
                    });
                }
                Op::Delete(i) => {
                    let key = format!("default/p{i}");
                    prop_assert_eq!(q.delete(&key), model.remove(&key).is_some());
                }
                Op::Pop => {
                    let popped = q.pop(now);
                    let waiting: Vec<(String, i32)> = model
                        .iter()
                        .filter(|(k, _)| q.place(k) == Some(Place::Active))
                        .map(|(k, m)| (k.clone(), m.priority))
                        .collect();
                    match popped {
                        Some(info) => {
                            let key = info.pod.key().to_owned();
                            let m = model.get_mut(&key).expect("popped a pod it holds");
                            prop_assert!(!m.in_flight, "popped {} twice", key);
                            prop_assert_eq!(info.pod.priority, m.priority, "stale object");
                            // A backoff is cut short only for a pod moved there (not one that
                            // errored), and only when no pod waits in the heap.
                            if m.failed && now < m.last_pop + backoff_duration(m.attempts) {
                                prop_assert!(!m.errored,
                                    "{} popped before its error backoff ended", key);
                                prop_assert!(waiting.is_empty(),
                                    "{} popped before its backoff ended, pods were active", key);
                            }
                            for (other, p) in waiting {
                                prop_assert!(p <= m.priority, "{} (priority {}) waits behind {}", other, p, key);
                            }
                            m.in_flight = true;
                            m.errored = false;
                            m.attempts += 1;
                            m.last_pop = now;
                            prop_assert_eq!(info.attempts, m.attempts);
                        }
                        None => prop_assert!(waiting.is_empty()),
                    }
                }
                Op::Done(n) | Op::Unschedulable(n) | Op::Backoff(n) => {
                    let keys = in_flight(&model);
                    if keys.is_empty() {
                        prop_assert!(!q.done("default/none"));
                        continue;
                    }
                    let key = &keys[n % keys.len()];
                    match op {
                        Op::Done(_) => { prop_assert!(q.done(key)); model.remove(key); }
                        Op::Unschedulable(_) => {
                            prop_assert!(q.requeue_unschedulable(key, now, vec![]));
                            let m = model.get_mut(key).expect("in flight");
                            m.in_flight = false;
                            m.failed = true;
                            m.errored = false;
                        }
                        _ => {
                            prop_assert!(q.requeue_backoff(key, now));
                            let m = model.get_mut(key).expect("in flight");
                            m.in_flight = false;
                            m.failed = true;
                            m.errored = true;
                        }
                    }
                }
                Op::Event => {
                    q.move_all(now);
                    prop_assert_eq!(q.count(|p| matches!(p, Place::Unschedulable(_))), 0);
                }
                Op::Advance(ms) => now += Duration::from_millis(ms),
            }
            // Every pod the test knows is in exactly one place, the queue holds no other.
            prop_assert_eq!(q.len(), model.len());
            for (key, m) in &model {
                let place = q.place(key);
                prop_assert!(place.is_some(), "{} lost", key);
                prop_assert_eq!(place == Some(Place::InFlight), m.in_flight, "{} in {:?}", key, place);
            }
        }
        // After the flush period every waiting pod pops exactly once.
        now += UNSCHEDULABLE_FLUSH + Duration::from_secs(11);
        let mut popped = HashSet::new();
        while let Some(info) = q.pop(now) {
            prop_assert!(popped.insert(info.pod.key().to_owned()), "duplicate {}", info.pod.key());
        }
        let waiting: HashSet<String> =
            model.iter().filter(|(_, m)| !m.in_flight).map(|(k, _)| k.clone()).collect();
        prop_assert_eq!(popped, waiting);
        prop_assert_eq!(q.next_wakeup(), None);
    }
}

#[test]
fn backoff_doubles_from_one_second_to_ten() {
    let secs: Vec<u64> = (1..=6).map(|a| backoff_duration(a).as_secs()).collect();
    assert_eq!(secs, [1, 2, 4, 8, 10, 10]);
    assert_eq!(backoff_duration(u32::MAX), Duration::from_secs(10));
}

#[test]
fn higher_priority_first_then_arrival() {
    let mut q = queue();
    let now = Duration::ZERO;
    q.add(pod(1, 0), now);
    q.add(pod(2, 5), now);
    q.add(pod(3, 0), now);
    q.add(pod(4, 5), now);
    let order: Vec<String> = std::iter::from_fn(|| q.pop(now))
        .map(|i| i.pod.key().to_owned())
        .collect();
    assert_eq!(
        order,
        ["default/p2", "default/p4", "default/p1", "default/p3"]
    );
}

#[test]
fn unschedulable_pods_wait_for_an_event_or_the_flush() {
    let mut q = queue();
    let t0 = Duration::from_secs(100);
    q.add(pod(1, 0), t0);
    q.pop(t0).expect("active");
    q.requeue_unschedulable("default/p1", t0, vec![]);
    // No event: it stays, until the 5-minute flush.
    assert!(q.pop(t0 + Duration::from_secs(60)).is_none());
    assert_eq!(q.next_wakeup(), Some(t0 + UNSCHEDULABLE_FLUSH));
    let again = q.pop(t0 + UNSCHEDULABLE_FLUSH).expect("flushed");
    assert_eq!(again.attempts, 2);
    // A node event moves it, after its backoff (2 s after the second attempt).
    let t1 = t0 + UNSCHEDULABLE_FLUSH;
    q.requeue_unschedulable("default/p1", t1, vec![]);
    q.move_all(t1 + Duration::from_millis(500));
    assert_eq!(
        q.place("default/p1"),
        Some(Place::Backoff(t1 + Duration::from_secs(2)))
    );
    // Nothing else waits: it is taken before its backoff ends.
    assert!(q.has_ready(t1 + Duration::from_millis(600)));
    assert!(q.pop(t1 + Duration::from_millis(600)).is_some());
    // An event during the cycle sends a failed pod to backoff rather than waiting.
    q.move_all(t1 + Duration::from_secs(2));
    q.requeue_unschedulable("default/p1", t1 + Duration::from_secs(2), vec![]);
    assert!(matches!(q.place("default/p1"), Some(Place::Backoff(_))));
}

#[test]
fn a_preemptor_is_retried_as_soon_as_its_victim_is_deleted() {
    let mut q = queue();
    let t0 = Duration::from_secs(10);
    q.add(pod(1, 100), t0);
    q.pop(t0).expect("active");
    // No node fits: it nominates a node, its victim is deleted, it waits as unschedulable.
    q.requeue_unschedulable("default/p1", t0, vec![]);
    assert!(!q.has_ready(t0 + Duration::from_millis(5)));
    // The victim's deletion reaches the loop 20 ms later: the preemptor is taken at once,
    // not after its 1 s backoff.
    let deleted = t0 + Duration::from_millis(20);
    q.move_all(deleted);
    assert_eq!(
        q.place("default/p1"),
        Some(Place::Backoff(t0 + Duration::from_secs(1)))
    );
    let again = q.pop(deleted).expect("retried on the deletion");
    assert_eq!(again.pod.key(), "default/p1");
    assert_eq!(again.attempts, 2);
}

#[test]
fn a_moved_pod_cuts_its_backoff_short_only_when_the_heap_is_empty() {
    let mut q = queue();
    let t0 = Duration::from_secs(10);
    q.add(pod(1, 100), t0);
    q.pop(t0).expect("active");
    q.requeue_unschedulable("default/p1", t0, vec![]);
    q.move_all(t0);
    // A pod in the heap goes first, whatever the priorities: p1 is still backing off.
    q.add(pod(2, 0), t0);
    let first = q.pop(t0).expect("p2 is active");
    assert_eq!(first.pod.key(), "default/p2");
    let second = q.pop(t0).expect("p1, early");
    assert_eq!(second.pod.key(), "default/p1");
    assert!(q.pop(t0).is_none());
}

#[test]
fn a_pod_whose_attempt_errored_waits_out_its_backoff_in_full() {
    let mut q = queue();
    let t0 = Duration::from_secs(10);
    q.add(pod(1, 0), t0);
    q.pop(t0).expect("active");
    q.requeue_backoff("default/p1", t0);
    // Events do not move it, and an empty heap does not cut its backoff short.
    q.move_all(t0);
    let almost = t0 + Duration::from_millis(999);
    assert!(!q.has_ready(almost));
    assert!(q.pop(almost).is_none());
    assert_eq!(q.next_wakeup(), Some(t0 + Duration::from_secs(1)));
    assert!(q.pop(t0 + Duration::from_secs(1)).is_some());
}
