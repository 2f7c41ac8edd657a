//! The scheduling queue over random operation sequences: no pod is ever lost or duplicated,
//! the heap pops by priority, backoff delays are respected, and cluster events and the
//! 5-minute flush bring unschedulable pods back.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use orchestra_api::meta::ObjectMeta;
use orchestra_api::resources::{Pod, PodSpec};
use orchestra_sched::queue::{
    ClusterEvent, LessFn, Place, SchedulingQueue, UNSCHEDULABLE_FLUSH, backoff_duration,
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
                            if m.failed {
                                prop_assert!(now >= m.last_pop + backoff_duration(m.attempts),
                                    "{} popped before its backoff ended", key);
                            }
                            for (other, p) in waiting {
                                prop_assert!(p <= m.priority, "{} (priority {}) waits behind {}", other, p, key);
                            }
                            m.in_flight = true;
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
                            prop_assert!(q.requeue_unschedulable(key, now));
                            let m = model.get_mut(key).expect("in flight");
                            m.in_flight = false;
                            m.failed = true;
                        }
                        _ => {
                            prop_assert!(q.requeue_backoff(key, now));
                            let m = model.get_mut(key).expect("in flight");
                            m.in_flight = false;
                            m.failed = true;
                        }
                    }
                }
                Op::Event => {
                    q.on_event(ClusterEvent::NodeAdded, now);
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
    q.requeue_unschedulable("default/p1", t0);
    // No event: it stays, until the 5-minute flush.
    assert!(q.pop(t0 + Duration::from_secs(60)).is_none());
    assert_eq!(q.next_wakeup(), Some(t0 + UNSCHEDULABLE_FLUSH));
    let again = q.pop(t0 + UNSCHEDULABLE_FLUSH).expect("flushed");
    assert_eq!(again.attempts, 2);
    // A node event moves it, after its backoff (2 s after the second attempt).
    let t1 = t0 + UNSCHEDULABLE_FLUSH;
    q.requeue_unschedulable("default/p1", t1);
    q.on_event(ClusterEvent::NodeAdded, t1 + Duration::from_millis(500));
    assert_eq!(
        q.place("default/p1"),
        Some(Place::Backoff(t1 + Duration::from_secs(2)))
    );
    assert!(q.pop(t1 + Duration::from_millis(1999)).is_none());
    assert!(q.pop(t1 + Duration::from_secs(2)).is_some());
    // An event during the cycle sends a failed pod to backoff rather than waiting.
    q.on_event(
        ClusterEvent::AssignedPodDeleted,
        t1 + Duration::from_secs(2),
    );
    q.requeue_unschedulable("default/p1", t1 + Duration::from_secs(2));
    assert!(matches!(q.place("default/p1"), Some(Place::Backoff(_))));
}
