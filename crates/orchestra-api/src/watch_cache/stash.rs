//! The hand-off from the registry's writes to a kind's feeder: the typed object a write just
//! encoded, so that the feeder need not decode it again from the store's event.
//!
//! Decoding every Put event was the feeder's main cost (issues #6 and #4): in `orchestra
//! bench controller`, 15 % of all CPU went into the feed, two thirds of it serde_json
//! decoding pods that the same process had encoded a moment earlier from the typed object
//! it held. Now a write of a kind whose cache is running leaves a copy of that object here,
//! by store key (an entry per write), together with the exact bytes it puts ([`Stash::put`],
//! before the transaction); the feeder, on a Put event, takes an entry of the event's key
//! whose bytes are the event's value byte for byte ([`Stash::take`]) and sets what decoding
//! derives from the event (`metadata.resourceVersion`, from the mod_revision), else decodes
//! as before.
//!
//! Why this is exact: a stored object's decoding is a function of its bytes and its
//! mod_revision alone, and the registry's built-in kinds decode from their encoding into
//! the object that was encoded (debug builds check it on every hand-off: the feeder decodes
//! anyway and compares). So whichever write an entry came from (a concurrent writer of the
//! same key, a write whose transaction failed, one the feeder missed while relisting), an
//! entry whose bytes equal the event's value is what decoding the event would give. Kinds
//! registered by users ([`Resource`] implementations outside this crate) are not handed off:
//! their round trip is theirs and unchecked (floats, skipped fields), so they always decode;
//! nor are the built-in kinds no test hands off (see [`handed_off`]).
//!
//! Bounded: an entry leaves when the feeder takes it, when its write fails or is dropped
//! ([`Stashed`]'s `Drop`), when the feeder restarts (it relists, and the stash is cleared),
//! and in any case after at most `capacity` newer entries (two generations: when the young one is
//! full, it becomes the old one and the previous old one is dropped), so a feeder that lags
//! or has stopped costs at most `capacity` objects, and the feeder then decodes.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

use super::kind::Object;
use crate::resource::Resource;
use crate::resources::{
    ConfigMap, ControllerRevision, DaemonSet, Deployment, Endpoints, Job, Lease, Namespace, Node,
    Pod, ReplicaSet, Role, RoleBinding, Secret, Service, ServiceAccount, StatefulSet,
};
use crate::scheme::erase;

/// Entries kept at most per kind (the objects of writes the feeder has not reached yet).
pub(crate) const CAPACITY: usize = 8192;

/// Whether writes of `R` are handed off: the built-in kinds whose decoding of their own
/// encoding the test suites of orchestra-api and orchestra-controller check (debug builds
/// compare every hand-off with the decoding; each of these kinds is handed off in them).
/// Kinds defined elsewhere, and the built-in kinds those suites never hand off (Event,
/// ClusterRole, ClusterRoleBinding, PodGroup, TrafficSplit: unchecked, so not trusted),
/// always decode.
pub(crate) fn handed_off<R: Resource>() -> bool {
    let id = TypeId::of::<R>();
    [
        TypeId::of::<Pod>(),
        TypeId::of::<ReplicaSet>(),
        TypeId::of::<Deployment>(),
        TypeId::of::<DaemonSet>(),
        TypeId::of::<StatefulSet>(),
        TypeId::of::<ControllerRevision>(),
        TypeId::of::<Job>(),
        TypeId::of::<Node>(),
        TypeId::of::<Lease>(),
        TypeId::of::<Namespace>(),
        TypeId::of::<Service>(),
        TypeId::of::<Endpoints>(),
        TypeId::of::<ServiceAccount>(),
        TypeId::of::<ConfigMap>(),
        TypeId::of::<Secret>(),
        TypeId::of::<Role>(),
        TypeId::of::<RoleBinding>(),
    ]
    .contains(&id)
}

/// One write's object, not yet taken by the feeder.
struct Entry {
    /// What the write puts, exactly.
    bytes: Bytes,
    /// The object encoded into `bytes` (its resourceVersion is set when taken).
    object: Object,
}

/// The entries of one generation: by key, oldest first (a key written again before the
/// feeder reached the first write has an entry per write).
#[derive(Default)]
struct Generation {
    by_key: HashMap<Vec<u8>, Vec<Entry>>,
    len: usize,
}

impl Generation {
    fn insert(&mut self, key: &str, entry: Entry) {
        match self.by_key.get_mut(key.as_bytes()) {
            Some(entries) => entries.push(entry),
            None => {
                self.by_key.insert(key.as_bytes().to_vec(), vec![entry]);
            }
        }
        self.len += 1;
    }

    /// Removes and returns the first entry of `key` that `matches`.
    fn remove(&mut self, key: &[u8], matches: impl Fn(&Entry) -> bool) -> Option<Entry> {
        let entries = self.by_key.get_mut(key)?;
        let at = entries.iter().position(matches)?;
        let entry = entries.remove(at);
        if entries.is_empty() {
            self.by_key.remove(key);
        }
        self.len -= 1;
        Some(entry)
    }
}

#[derive(Default)]
struct Generations {
    young: Generation,
    old: Generation,
}

impl Generations {
    fn remove(&mut self, key: &[u8], matches: impl Fn(&Entry) -> bool) -> Option<Entry> {
        let Generations { young, old } = self;
        old.remove(key, &matches)
            .or_else(|| young.remove(key, &matches))
    }
}

/// The objects of one kind's recent writes, by store key. See the [module docs](self).
pub(crate) struct Stash {
    entries: Mutex<Generations>,
    /// Entries per generation.
    generation: usize,
    hits: AtomicU64,
}

impl std::fmt::Debug for Stash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stash")
            .field("len", &self.len())
            .field("hits", &self.hits())
            .finish()
    }
}

impl Stash {
    /// A stash of at most `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Stash {
            entries: Mutex::new(Generations::default()),
            generation: (capacity / 2).max(1),
            hits: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Generations> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leaves a copy of `object`, which a write is about to put at `key` as `bytes` (its
    /// exact encoding). The entry is withdrawn when the returned [`Stashed`] is dropped,
    /// unless [`Stashed::written`] says the write succeeded.
    pub(crate) fn put<R: Resource>(
        self: &Arc<Self>,
        key: &str,
        bytes: &Bytes,
        object: &R,
    ) -> Stashed {
        let entry = Entry {
            bytes: bytes.clone(),
            object: erase(object.clone()),
        };
        let dropped = {
            let mut entries = self.lock();
            let dropped = if entries.young.len >= self.generation {
                let young = std::mem::take(&mut entries.young);
                Some(std::mem::replace(&mut entries.old, young))
            } else {
                None
            };
            entries.young.insert(key, entry);
            dropped
        };
        // The objects of a full old generation are freed outside the lock.
        drop(dropped);
        Stashed {
            stash: self.clone(),
            key: key.to_owned(),
            bytes: bytes.clone(),
            armed: true,
        }
    }

    /// The object a write put at `key` as exactly `value`, if one is here (removed: each
    /// entry is used once). The caller sets its resourceVersion.
    pub(crate) fn take(&self, key: &[u8], value: &[u8]) -> Option<Object> {
        let taken = self
            .lock()
            .remove(key, |entry| entry.bytes.as_ref() == value);
        let object = taken?.object;
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(object)
    }

    /// Removes the entry of a write that did not happen (the very bytes it stashed: an entry
    /// another write left at the same key stays).
    fn withdraw(&self, key: &str, bytes: &Bytes) {
        let same = |entry: &Entry| {
            entry.bytes.as_ptr() == bytes.as_ptr() && entry.bytes.len() == bytes.len()
        };
        let removed = self.lock().remove(key.as_bytes(), same);
        drop(removed);
    }

    /// Drops every entry (the feeder restarts).
    pub(crate) fn clear(&self) {
        let dropped = std::mem::take(&mut *self.lock());
        drop(dropped);
    }

    /// How many entries the feeder has taken instead of decoding.
    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// The entries held now.
    pub(crate) fn len(&self) -> usize {
        let entries = self.lock();
        entries.young.len + entries.old.len
    }
}

/// A write's entry in the [`Stash`]: withdrawn when dropped, unless the write succeeded (an
/// error, a failed comparison, a retry, the write's future dropped).
#[must_use = "dropping it withdraws the entry"]
pub(crate) struct Stashed {
    stash: Arc<Stash>,
    key: String,
    bytes: Bytes,
    armed: bool,
}

impl Stashed {
    /// The write succeeded: the entry stays for the feeder.
    pub(crate) fn written(mut self) {
        self.armed = false;
    }
}

impl Drop for Stashed {
    fn drop(&mut self) {
        if self.armed {
            self.stash.withdraw(&self.key, &self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::ObjectMeta;

    fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: "default".into(),
                ..ObjectMeta::named(name)
            },
            ..Default::default()
        }
    }

    #[test]
    fn an_entry_is_taken_once_and_only_with_the_same_bytes() {
        let stash = Arc::new(Stash::new(16));
        let bytes = Bytes::from_static(b"{\"a\":1}");
        stash
            .put("/registry/pods/default/a", &bytes, &pod("a"))
            .written();
        assert!(
            stash
                .take(b"/registry/pods/default/a", b"{\"a\":2}")
                .is_none()
        );
        assert!(
            stash
                .take(b"/registry/pods/default/b", b"{\"a\":1}")
                .is_none()
        );
        let object = stash
            .take(b"/registry/pods/default/a", b"{\"a\":1}")
            .unwrap();
        assert_eq!(object.meta().name, "a");
        assert!(
            stash
                .take(b"/registry/pods/default/a", b"{\"a\":1}")
                .is_none()
        );
        assert_eq!((stash.hits(), stash.len()), (1, 0));
    }

    #[test]
    fn a_failed_write_withdraws_its_entry_only() {
        let stash = Arc::new(Stash::new(16));
        let key = "/registry/pods/default/a";
        let failed = stash.put(key, &Bytes::from_static(b"1"), &pod("a"));
        drop(failed);
        assert_eq!(stash.len(), 0);
        // Two writers of the key with the same bytes: the first's failure withdraws its own
        // entry, not the second's.
        let first = stash.put(key, &Bytes::from(b"x".to_vec()), &pod("a"));
        stash
            .put(key, &Bytes::from(b"x".to_vec()), &pod("a"))
            .written();
        drop(first);
        assert_eq!(stash.len(), 1);
        assert!(stash.take(key.as_bytes(), b"x").is_some());
        assert_eq!(stash.len(), 0);
    }

    #[test]
    fn each_write_of_a_key_has_its_entry() {
        // The feeder behind a create and an update of the same pod: both are handed off.
        let stash = Arc::new(Stash::new(16));
        let key = "/registry/pods/default/a";
        stash
            .put(key, &Bytes::from_static(b"1"), &pod("a"))
            .written();
        stash
            .put(key, &Bytes::from_static(b"2"), &pod("a"))
            .written();
        assert!(stash.take(key.as_bytes(), b"1").is_some());
        assert!(stash.take(key.as_bytes(), b"2").is_some());
        assert_eq!((stash.hits(), stash.len()), (2, 0));
    }

    #[test]
    fn the_stash_stays_bounded() {
        let stash = Arc::new(Stash::new(8));
        for i in 0..100 {
            let key = format!("/registry/pods/default/p{i}");
            stash
                .put(&key, &Bytes::from(i.to_string()), &pod(&format!("p{i}")))
                .written();
            assert!(stash.len() <= 8, "{}", stash.len());
        }
        // The newest are still there, the oldest are gone.
        assert!(stash.take(b"/registry/pods/default/p99", b"99").is_some());
        assert!(stash.take(b"/registry/pods/default/p0", b"0").is_none());
        stash.clear();
        assert_eq!(stash.len(), 0);
    }

    #[test]
    fn only_built_in_kinds_are_handed_off() {
        #[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
        struct Custom {
            metadata: ObjectMeta,
        }
        impl Resource for Custom {
            const API_VERSION: &'static str = "example.com/v1";
            const KIND: &'static str = "Custom";
            const PLURAL: &'static str = "customs";
            const NAMESPACED: bool = true;
            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
        assert!(handed_off::<Pod>() && handed_off::<ReplicaSet>() && handed_off::<Node>());
        assert!(!handed_off::<Custom>());
        assert!(!handed_off::<crate::resources::Event>());
    }
}
