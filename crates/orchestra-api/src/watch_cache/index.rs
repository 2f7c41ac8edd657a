//! The watches of one kind, indexed by the `(field, value)` their selectors require (see
//! [`Filter::index_key`](super::filter::Filter::index_key)), as kube-apiserver's cacher
//! indexes pods by `spec.nodeName`: a change reaches the watches indexed under its old or
//! new value of each indexed field, and the unindexed ones, so that with thousands of
//! node agents each pod event goes to one or two of them instead of all.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::kind::Entry;

/// Watch ids are unique for the process, so that a watch that outlives a cache restart
/// never removes a newer watch with a reused id.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One watch's end of the fan-out.
pub(crate) struct Subscriber {
    pub(crate) sender: mpsc::Sender<Arc<Entry>>,
    /// Set when the cache cut the watch off for not keeping up.
    pub(crate) cut: Arc<AtomicBool>,
    /// Where the watch is indexed (`None`: it sees every change).
    pub(crate) key: Option<(String, String)>,
}

/// The watches of one kind. See the [module docs](self).
#[derive(Default)]
pub(crate) struct Subscribers {
    all: HashMap<u64, Subscriber>,
    unindexed: HashSet<u64>,
    /// field -> value -> watches.
    indexed: HashMap<String, HashMap<String, HashSet<u64>>>,
}

impl Subscribers {
    /// Adds a watch; returns its id.
    pub(crate) fn insert(&mut self, subscriber: Subscriber) -> u64 {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        match &subscriber.key {
            Some((field, value)) => {
                self.indexed
                    .entry(field.clone())
                    .or_default()
                    .entry(value.clone())
                    .or_default()
                    .insert(id);
            }
            None => {
                self.unindexed.insert(id);
            }
        }
        self.all.insert(id, subscriber);
        id
    }

    /// Removes a watch (nothing if it is gone already).
    pub(crate) fn remove(&mut self, id: u64) {
        let Some(subscriber) = self.all.remove(&id) else {
            return;
        };
        match subscriber.key {
            Some((field, value)) => {
                if let Some(values) = self.indexed.get_mut(&field) {
                    if let Some(ids) = values.get_mut(&value) {
                        ids.remove(&id);
                        if ids.is_empty() {
                            values.remove(&value);
                        }
                    }
                    if values.is_empty() {
                        self.indexed.remove(&field);
                    }
                }
            }
            None => {
                self.unindexed.remove(&id);
            }
        }
    }

    /// How many watches there are.
    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    /// The watches a change may concern: the unindexed ones, and those indexed under the
    /// old or the new state's value of their field. Each at most once.
    pub(crate) fn targets(&self, entry: &Entry) -> Vec<u64> {
        let mut ids: Vec<u64> = self.unindexed.iter().copied().collect();
        for (field, values) in &self.indexed {
            let new = entry.object.field(field);
            let old = entry.prev.as_ref().and_then(|p| p.field(field));
            if let Some(found) = new.as_ref().and_then(|v| values.get(v)) {
                ids.extend(found.iter().copied());
            }
            if old != new
                && let Some(found) = old.as_ref().and_then(|v| values.get(v))
            {
                ids.extend(found.iter().copied());
            }
        }
        ids
    }

    /// Queues a change for the watches it may concern. A watch whose queue is full is cut
    /// off (its sender dropped, so it ends with an error) rather than waited for; a closed
    /// one is forgotten.
    pub(crate) fn send(&mut self, entry: &Arc<Entry>) {
        for id in self.targets(entry) {
            let Some(subscriber) = self.all.get(&id) else {
                continue;
            };
            match subscriber.sender.try_send(entry.clone()) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    subscriber.cut.store(true, Ordering::Relaxed);
                    self.remove(id);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => self.remove(id),
            }
        }
    }

    /// Forgets the watches whose receivers are gone.
    pub(crate) fn prune(&mut self) {
        let closed: Vec<u64> = self
            .all
            .iter()
            .filter(|(_, s)| s.sender.is_closed())
            .map(|(id, _)| *id)
            .collect();
        for id in closed {
            self.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::OnceLock;

    use super::*;
    use crate::scheme::erase;

    fn pod(node: &str) -> Arc<super::super::kind::Object> {
        let mut pod = crate::testing::pod("default", "p", "web");
        pod.spec.node_name = node.into();
        Arc::new(erase(pod))
    }

    fn watch(subscribers: &mut Subscribers, key: Option<(&str, &str)>) -> u64 {
        // The receiver is dropped: `targets` does not send.
        let (sender, _) = mpsc::channel(1);
        subscribers.insert(Subscriber {
            sender,
            cut: Arc::default(),
            key: key.map(|(f, v)| (f.to_owned(), v.to_owned())),
        })
    }

    fn entry(prev: Option<&str>, node: &str) -> Entry {
        Entry {
            revision: 7,
            deleted: false,
            object: pod(node),
            prev: prev.map(pod),
            json: OnceLock::new(),
        }
    }

    #[test]
    fn a_change_reaches_the_watches_of_its_old_and_new_value_and_the_unindexed() {
        let mut subscribers = Subscribers::default();
        let a = watch(&mut subscribers, Some(("spec.nodeName", "node-a")));
        let b = watch(&mut subscribers, Some(("spec.nodeName", "node-b")));
        let c = watch(&mut subscribers, Some(("spec.nodeName", "node-c")));
        let everything = watch(&mut subscribers, None);
        let other_ns = watch(&mut subscribers, Some(("metadata.namespace", "other")));
        let default_ns = watch(&mut subscribers, Some(("metadata.namespace", "default")));
        let targets = |e: &Entry| subscribers.targets(e).into_iter().collect::<BTreeSet<_>>();

        let moved = targets(&entry(Some("node-a"), "node-b"));
        assert_eq!(moved, BTreeSet::from([a, b, everything, default_ns]));
        assert!(!moved.contains(&c) && !moved.contains(&other_ns));

        let bound = targets(&entry(Some(""), "node-c"));
        assert_eq!(bound, BTreeSet::from([c, everything, default_ns]));
        let created = targets(&entry(None, ""));
        assert_eq!(created, BTreeSet::from([everything, default_ns]));
        let same_node = subscribers.targets(&entry(Some("node-a"), "node-a"));
        assert_eq!(
            same_node.iter().filter(|id| **id == a).count(),
            1,
            "once each"
        );
    }

    #[test]
    fn removed_watches_leave_the_index() {
        let mut subscribers = Subscribers::default();
        let a = watch(&mut subscribers, Some(("spec.nodeName", "node-a")));
        let all = watch(&mut subscribers, None);
        subscribers.remove(a);
        subscribers.remove(a);
        assert_eq!(subscribers.targets(&entry(None, "node-a")), vec![all]);
        assert!(subscribers.indexed.is_empty(), "no empty buckets are kept");
        subscribers.remove(all);
        assert_eq!(subscribers.len(), 0);
    }

    #[test]
    fn a_full_queue_cuts_its_watch_off() {
        let mut subscribers = Subscribers::default();
        let (sender, mut receiver) = mpsc::channel(1);
        let cut = Arc::new(AtomicBool::new(false));
        subscribers.insert(Subscriber {
            sender,
            cut: cut.clone(),
            key: Some(("spec.nodeName".into(), "node-a".into())),
        });
        let first = Arc::new(entry(None, "node-a"));
        subscribers.send(&first);
        subscribers.send(&Arc::new(entry(None, "node-b")));
        assert_eq!(subscribers.len(), 1, "node-b's change never reached it");
        subscribers.send(&first);
        assert!(cut.load(Ordering::Relaxed));
        assert_eq!(subscribers.len(), 0);
        assert!(receiver.try_recv().is_ok());
        assert!(
            receiver.try_recv().is_err(),
            "then the end: the sender is gone"
        );
    }
}
