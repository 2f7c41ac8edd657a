//! [`Lru`]: an LRU cache bounded at `max` entries whose table grows with its contents.
//!
//! `LruCache::new(max)` allocates its hash table for `max` entries up front: 4,096 entries
//! (Kubernetes' figure for the correlator's and spam filter's caches) are about 140 KB per
//! cache, three per event sink, and every node agent has a sink, so a cluster of 5,000 nodes
//! reserved about 2 GB for events it had mostly not seen. This one starts small and doubles
//! its capacity when full, up to `max`, where it forgets the least recently used entry first.

use std::borrow::Borrow;
use std::hash::Hash;
use std::num::NonZeroUsize;

use lru::LruCache;

/// The capacity a cache starts with (or `max`, when smaller).
const INITIAL: usize = 16;

/// An LRU cache of at most `max` entries, allocated as it fills; see the [module docs](self).
#[derive(Clone, Debug)]
pub(super) struct Lru<K: Hash + Eq, V> {
    cache: LruCache<K, V>,
    max: NonZeroUsize,
}

impl<K: Hash + Eq, V> Lru<K, V> {
    /// A cache of at most `max` entries (at least one).
    pub(super) fn new(max: usize) -> Self {
        let max = NonZeroUsize::new(max).unwrap_or(NonZeroUsize::MIN);
        let initial = NonZeroUsize::new(INITIAL.min(max.get())).unwrap_or(NonZeroUsize::MIN);
        Lru {
            cache: LruCache::new(initial),
            max,
        }
    }

    /// The cache, for reads and removals (which never need more room).
    pub(super) fn cache(&mut self) -> &mut LruCache<K, V> {
        &mut self.cache
    }

    /// The cache, with room for `key` without forgetting another entry unless it holds `max`.
    pub(super) fn room_for<Q>(&mut self, key: &Q) -> &mut LruCache<K, V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let cap = self.cache.cap();
        if self.cache.len() >= cap.get() && cap < self.max && !self.cache.contains(key) {
            let doubled = cap.saturating_mul(NonZeroUsize::MIN.saturating_add(1));
            self.cache.resize(doubled.min(self.max));
        }
        &mut self.cache
    }

    /// The number of entries.
    pub(super) fn len(&self) -> usize {
        self.cache.len()
    }

    /// Whether it holds nothing.
    pub(super) fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Its capacity now (grows up to `max`).
    #[cfg(test)]
    fn cap(&self) -> usize {
        self.cache.cap().get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_starts_small_and_grows_as_it_fills() {
        let mut lru: Lru<u32, u32> = Lru::new(4096);
        assert_eq!(lru.cap(), INITIAL);
        for key in 0..100 {
            lru.room_for(&key).put(key, key);
        }
        assert_eq!(lru.len(), 100, "nothing is forgotten below the bound");
        assert_eq!(lru.cap(), 128);
        assert!((0..100).all(|key| lru.cache().get(&key) == Some(&key)));
    }

    #[test]
    fn at_its_bound_it_forgets_the_least_recently_used() {
        let mut lru: Lru<u32, u32> = Lru::new(40);
        for key in 0..40 {
            lru.room_for(&key).put(key, key);
        }
        assert_eq!((lru.len(), lru.cap()), (40, 40));
        // Key 0 used again: key 1 is now the least recently used.
        assert_eq!(lru.cache().get(&0), Some(&0));
        lru.room_for(&40).put(40, 40);
        assert_eq!((lru.len(), lru.cap()), (40, 40));
        assert_eq!(lru.cache().get(&1), None);
        assert_eq!(lru.cache().get(&0), Some(&0));
        assert_eq!(lru.cache().get(&40), Some(&40));
    }

    #[test]
    fn a_key_already_held_never_grows_the_cache() {
        let mut lru: Lru<u32, u32> = Lru::new(4096);
        for key in 0..INITIAL as u32 {
            lru.room_for(&key).put(key, key);
        }
        lru.room_for(&0).put(0, 1);
        assert_eq!((lru.len(), lru.cap()), (INITIAL, INITIAL));
        assert_eq!(lru.cache().get(&0), Some(&1));
    }

    #[test]
    fn a_bound_of_zero_keeps_one() {
        let mut lru: Lru<u32, u32> = Lru::new(0);
        lru.room_for(&1).put(1, 1);
        lru.room_for(&2).put(2, 2);
        assert_eq!(lru.len(), 1);
        assert_eq!(lru.cache().get(&2), Some(&2));
    }
}
