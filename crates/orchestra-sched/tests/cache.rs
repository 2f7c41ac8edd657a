//! The scheduler cache: assumed pods count at once, are confirmed by the watch or forgotten,
//! pods seen before their node wait for it, and relists reconcile.

mod common;

use std::sync::Arc;

use common::{bound, node, pod};
use orchestra_sched::PodInfo;
use orchestra_sched::cache::SchedulerCache;

fn requested_cpu(cache: &SchedulerCache, node: &str) -> i64 {
    cache
        .snapshot()
        .get(node)
        .expect("node")
        .requested()
        .milli_cpu
}

fn info(p: orchestra_api::resources::Pod) -> Arc<PodInfo> {
    Arc::new(PodInfo::new(p).expect("valid pod"))
}

#[test]
fn assumed_pods_count_until_forgotten() {
    let mut cache = SchedulerCache::new();
    cache.upsert_node(node("a", "4")).unwrap();
    cache.assume(info(pod("p", "1")), "a").unwrap();
    assert!(cache.is_assumed("default/p"));
    assert_eq!(requested_cpu(&cache, "a"), 1000);
    assert!(cache.forget("default/p"));
    assert!(!cache.forget("default/p"));
    assert_eq!(requested_cpu(&cache, "a"), 0);
    assert_eq!(cache.snapshot().num_pods(), 0);
}

#[test]
fn the_watch_confirms_an_assumption_on_the_bound_node() {
    let mut cache = SchedulerCache::new();
    cache.upsert_node(node("a", "4")).unwrap();
    cache.upsert_node(node("b", "4")).unwrap();
    cache.assume(info(pod("p", "1")), "a").unwrap();
    cache.add_or_update_pod(bound(pod("p", "1"), "a")).unwrap();
    assert!(!cache.is_assumed("default/p"));
    assert_eq!(requested_cpu(&cache, "a"), 1000);
    // Forgetting a confirmed pod does nothing.
    assert!(!cache.forget("default/p"));
    assert_eq!(cache.snapshot().num_pods(), 1);
    // Someone else bound another assumed pod elsewhere: it moves.
    cache.assume(info(pod("q", "2")), "a").unwrap();
    cache.add_or_update_pod(bound(pod("q", "2"), "b")).unwrap();
    assert_eq!(
        (requested_cpu(&cache, "a"), requested_cpu(&cache, "b")),
        (1000, 2000)
    );
    assert!(cache.remove_pod("default/q"));
    assert_eq!(requested_cpu(&cache, "b"), 0);
}

#[test]
fn pods_seen_before_their_node_join_it() {
    let mut cache = SchedulerCache::new();
    cache
        .add_or_update_pod(bound(pod("p", "1"), "late"))
        .unwrap();
    assert_eq!((cache.snapshot().num_pods(), cache.num_orphans()), (0, 1));
    assert!(cache.upsert_node(node("late", "2")).unwrap());
    assert!(!cache.upsert_node(node("late", "3")).unwrap());
    assert_eq!((cache.snapshot().num_pods(), cache.num_orphans()), (1, 0));
    assert_eq!(requested_cpu(&cache, "late"), 1000);
    // Removing the node sets its pods aside again; re-adding brings them back.
    cache.remove_node("late").unwrap();
    assert_eq!(cache.num_orphans(), 1);
    cache.upsert_node(node("late", "2")).unwrap();
    assert_eq!(requested_cpu(&cache, "late"), 1000);
}

#[test]
fn relists_reconcile_but_keep_assumptions() {
    let mut cache = SchedulerCache::new();
    cache
        .sync_nodes(vec![node("a", "4"), node("b", "4")])
        .unwrap();
    cache
        .add_or_update_pod(bound(pod("old", "1"), "a"))
        .unwrap();
    cache.assume(info(pod("mine", "1")), "b").unwrap();
    let errors = cache.sync_pods(vec![bound(pod("new", "2"), "a")]);
    assert!(errors.is_empty());
    assert_eq!(requested_cpu(&cache, "a"), 2000);
    assert!(cache.is_assumed("default/mine"));
    assert_eq!(requested_cpu(&cache, "b"), 1000);
    cache.sync_nodes(vec![node("a", "4")]).unwrap();
    assert!(cache.snapshot().get("b").is_none());
    assert!(
        !cache.is_assumed("default/mine"),
        "assumptions on a removed node are dropped"
    );
}

#[test]
fn an_unbound_pod_is_refused() {
    let mut cache = SchedulerCache::new();
    assert!(cache.add_or_update_pod(pod("p", "1")).is_err());
}
