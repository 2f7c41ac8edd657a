//! The work queue: keys to reconcile, with client-go's semantics.
//!
//! - **Deduplication.** A key waits in the queue at most once (the *dirty* set). A key being
//!   processed (handed out by [`WorkQueue::get`], not yet [`WorkQueue::done`]) is never handed
//!   out again until it is done; if it was added meanwhile, `done` puts it back, so the change
//!   that came in during processing is not lost.
//! - **Delays.** [`WorkQueue::add_after`] adds a key once a delay has passed (the earliest of
//!   several pending delays wins); [`WorkQueue::add_rate_limited`] takes the delay from the
//!   [`RateLimiter`] (by default per-key backoff 5 ms doubling to 1000 s, combined with an
//!   overall 10 qps token bucket), and [`WorkQueue::forget`] resets a key's backoff.
//! - **Shutdown.** After [`WorkQueue::shut_down`], adds are ignored, delayed keys are dropped,
//!   and `get` hands out what is still queued and then returns `None`;
//!   [`WorkQueue::shut_down_with_drain`] also waits until every key handed out is done.
//!
//! Time is tokio's, so tests run the queue in paused time.
//!
//! ```
//! use std::time::Duration;
//! use orchestra_controller::queue::WorkQueue;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! let queue = WorkQueue::new();
//! queue.add("web");
//! queue.add("web"); // deduplicated
//! assert_eq!(queue.len(), 1);
//! let key = queue.get().await.unwrap();
//! queue.add("web"); // arrives while "web" is processed: held back...
//! assert_eq!(queue.try_get(), None);
//! queue.done(&key); // ...and queued again now
//! assert_eq!(queue.try_get(), Some("web"));
//! queue.add_after("db", Duration::from_secs(5));
//! assert_eq!(queue.get().await, Some("db")); // after 5 s of (paused) time
//! # });
//! ```
//!
//! # Layout
//! - [`rate_limiter`]: [`RateLimiter`] and its policies, pure over an explicit `now`.

pub mod rate_limiter;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

pub use rate_limiter::{
    ItemExponentialBackoff, MaxOf, RateLimiter, TokenBucket, default_controller_rate_limiter,
};

/// What a key needs to be queued: cloneable, hashable, sendable.
pub trait QueueKey: Clone + Eq + Hash + Send + Sync + 'static {}
impl<T: Clone + Eq + Hash + Send + Sync + 'static> QueueKey for T {}

/// The queue's bookkeeping, behind one lock.
struct State<K> {
    /// Keys ready to hand out, in order; each also in `dirty`.
    queue: VecDeque<K>,
    /// Keys added and not handed out since.
    dirty: HashSet<K>,
    /// Keys handed out and not done.
    processing: HashSet<K>,
    /// The earliest time each delayed key is due.
    waiting: HashMap<K, Instant>,
    /// Timers of delayed keys, earliest first; entries superseded by an earlier time for the
    /// same key are skipped when they come up.
    timers: BinaryHeap<Reverse<(Instant, u64)>>,
    /// The key of each timer.
    timer_keys: HashMap<u64, K>,
    next_timer: u64,
    limiter: Box<dyn RateLimiter<K>>,
    shutting_down: bool,
    adds: u64,
}

impl<K: QueueKey> State<K> {
    /// Whether the key became ready to hand out (a waiting `get` has something to take).
    fn add(&mut self, key: K) -> bool {
        if self.shutting_down {
            return false;
        }
        self.adds += 1;
        if !self.dirty.insert(key.clone()) {
            return false;
        }
        if self.processing.contains(&key) {
            return false;
        }
        self.queue.push_back(key);
        true
    }

    /// Whether the key's time is now the earliest of all delayed keys (a waiting `get` must
    /// look at its timer again).
    fn add_at(&mut self, key: K, at: Instant) -> bool {
        if self.shutting_down {
            return false;
        }
        if self.waiting.get(&key).is_some_and(|due| *due <= at) {
            return false;
        }
        let earliest = self.timers.peek().is_none_or(|Reverse((due, _))| at < *due);
        self.waiting.insert(key.clone(), at);
        let id = self.next_timer;
        self.next_timer += 1;
        self.timers.push(Reverse((at, id)));
        self.timer_keys.insert(id, key);
        earliest
    }

    /// Queues the delayed keys due at `now`; the time the next one is due.
    fn promote_due(&mut self, now: Instant) -> Option<Instant> {
        while let Some(Reverse((at, id))) = self.timers.peek().copied() {
            if at > now {
                return Some(at);
            }
            self.timers.pop();
            let Some(key) = self.timer_keys.remove(&id) else {
                continue;
            };
            if self.waiting.get(&key) == Some(&at) {
                self.waiting.remove(&key);
                self.add(key);
            }
        }
        None
    }

    fn take(&mut self) -> Option<K> {
        let key = self.queue.pop_front()?;
        self.dirty.remove(&key);
        self.processing.insert(key.clone());
        Some(key)
    }
}

struct Inner<K> {
    state: Mutex<State<K>>,
    changed: Notify,
}

/// A deduplicating, rate-limited, delaying work queue (see the [module docs](self)). Clones
/// share the queue.
pub struct WorkQueue<K> {
    inner: Arc<Inner<K>>,
}

impl<K> Clone for WorkQueue<K> {
    fn clone(&self) -> Self {
        WorkQueue {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<K: QueueKey> Default for WorkQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> std::fmt::Debug for WorkQueue<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkQueue").finish_non_exhaustive()
    }
}

impl<K: QueueKey> WorkQueue<K> {
    /// A queue with client-go's default controller rate limiter.
    pub fn new() -> Self {
        Self::with_rate_limiter(default_controller_rate_limiter())
    }

    /// A queue whose retries wait as `limiter` says.
    pub fn with_rate_limiter(limiter: impl RateLimiter<K>) -> Self {
        WorkQueue {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    dirty: HashSet::new(),
                    processing: HashSet::new(),
                    waiting: HashMap::new(),
                    timers: BinaryHeap::new(),
                    timer_keys: HashMap::new(),
                    next_timer: 0,
                    limiter: Box::new(limiter),
                    shutting_down: false,
                    adds: 0,
                }),
                changed: Notify::new(),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State<K>> {
        // Every update keeps the sets consistent before it can panic, so a poisoned lock still
        // guards a usable state.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.inner.changed.notify_waiters();
    }

    /// Adds `key` (ignored if it is queued already, or after shutdown).
    pub fn add(&self, key: K) {
        // Waiters are woken only when there is something new to take: an informer repeating
        // a key that is queued already (most of a bulk load's events) wakes nobody.
        let ready = self.state().add(key);
        if ready {
            self.changed();
        }
    }

    /// Adds `key` once `delay` has passed (at once for a zero delay). A key already waiting
    /// keeps the earlier of its two times.
    pub fn add_after(&self, key: K, delay: Duration) {
        if delay.is_zero() {
            return self.add(key);
        }
        let at = Instant::now() + delay;
        // Waiters sleep until the earliest timer: only an earlier one needs them to look again.
        let earliest = self.state().add_at(key, at);
        if earliest {
            self.changed();
        }
    }

    /// Adds `key` after the delay the rate limiter gives it (counting one more retry).
    pub fn add_rate_limited(&self, key: K) {
        let delay = self.next_backoff(&key);
        self.add_after(key, delay);
    }

    /// The delay the rate limiter gives `key` now, counting one more retry (what
    /// [`WorkQueue::add_rate_limited`] waits).
    pub fn next_backoff(&self, key: &K) -> Duration {
        self.state().limiter.when(key, Instant::now())
    }

    /// Resets `key`'s retries in the rate limiter (after a success).
    pub fn forget(&self, key: &K) {
        self.state().limiter.forget(key);
    }

    /// How often `key` was retried since it was last forgotten.
    pub fn num_requeues(&self, key: &K) -> u32 {
        self.state().limiter.num_requeues(key)
    }

    /// Waits for a key and hands it out; the caller must call [`WorkQueue::done`] with it.
    /// `None` once the queue is shut down and empty. Cancel-safe: dropping the future takes
    /// nothing out of the queue.
    pub async fn get(&self) -> Option<K> {
        loop {
            // Registered before looking, so that a change made after the look wakes us.
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_due = {
                let mut state = self.state();
                let next_due = state.promote_due(Instant::now());
                if let Some(key) = state.take() {
                    return Some(key);
                }
                if state.shutting_down {
                    return None;
                }
                next_due
            };
            match next_due {
                Some(at) => {
                    tokio::select! {
                        () = &mut notified => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Hands out a key if one is ready now (delayed keys that are due count), without waiting.
    pub fn try_get(&self) -> Option<K> {
        let mut state = self.state();
        state.promote_due(Instant::now());
        state.take()
    }

    /// Marks `key` as processed: if it was added while processed, it is queued again.
    pub fn done(&self, key: &K) {
        let wake = {
            let mut state = self.state();
            state.processing.remove(key);
            let requeued = state.dirty.contains(key);
            if requeued {
                state.queue.push_back(key.clone());
            }
            // `get` waits for a requeued key; `shut_down_with_drain` for nothing processing.
            requeued || state.processing.is_empty()
        };
        if wake {
            self.changed();
        }
    }

    /// Keys ready to hand out now (the queue depth; delayed keys not yet due do not count).
    pub fn len(&self) -> usize {
        self.state().queue.len()
    }

    /// Whether no key is ready now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys handed out and not done yet.
    pub fn processing(&self) -> usize {
        self.state().processing.len()
    }

    /// Keys waiting for their delay.
    pub fn delayed(&self) -> usize {
        self.state().waiting.len()
    }

    /// How many adds were accepted since the queue was made (deduplicated ones included).
    pub fn adds(&self) -> u64 {
        self.state().adds
    }

    /// Stops the queue: later adds are ignored, delayed keys dropped; `get` hands out what is
    /// queued, then returns `None`.
    pub fn shut_down(&self) {
        {
            let mut state = self.state();
            state.shutting_down = true;
            state.waiting.clear();
            state.timers.clear();
            state.timer_keys.clear();
        }
        self.changed();
    }

    /// Whether [`WorkQueue::shut_down`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.state().shutting_down
    }

    /// Shuts down, then waits until every key handed out is done.
    pub async fn shut_down_with_drain(&self) {
        self.shut_down();
        loop {
            let notified = self.inner.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.state().processing.is_empty() {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[tokio::test(start_paused = true)]
    async fn dedups_and_requeues_keys_added_while_processing() {
        let queue = WorkQueue::new();
        queue.add(1);
        queue.add(2);
        queue.add(1);
        assert_eq!(queue.len(), 2);
        assert_eq!(queue.get().await, Some(1));
        queue.add(1);
        queue.add(1);
        assert_eq!(queue.try_get(), Some(2), "1 is processed: not handed out");
        assert_eq!(queue.try_get(), None);
        queue.done(&2);
        assert_eq!(queue.try_get(), None);
        queue.done(&1);
        assert_eq!(queue.try_get(), Some(1), "re-queued once by done");
        queue.done(&1);
        assert_eq!(queue.try_get(), None);
        assert_eq!(queue.adds(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn delayed_keys_come_at_their_time_and_the_earliest_wins() {
        let queue = WorkQueue::new();
        let start = Instant::now();
        queue.add_after("a", ms(100));
        queue.add_after("a", ms(300));
        queue.add_after("b", ms(200));
        queue.add_after("b", ms(50));
        assert_eq!(queue.try_get(), None);
        assert_eq!(queue.delayed(), 2);
        assert_eq!(queue.get().await, Some("b"));
        assert_eq!(Instant::now() - start, ms(50));
        assert_eq!(queue.get().await, Some("a"));
        assert_eq!(Instant::now() - start, ms(100));
        queue.done(&"a");
        queue.done(&"b");
        tokio::time::advance(ms(500)).await;
        assert_eq!(queue.try_get(), None, "superseded timers add nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_adds_back_off_per_key_until_forgotten() {
        let queue = WorkQueue::new();
        for expected in [5, 10, 20] {
            let before = Instant::now();
            queue.add_rate_limited("k");
            assert_eq!(queue.get().await, Some("k"));
            assert_eq!(Instant::now() - before, ms(expected));
            queue.done(&"k");
        }
        assert_eq!(queue.num_requeues(&"k"), 3);
        queue.forget(&"k");
        assert_eq!(queue.num_requeues(&"k"), 0);
        assert_eq!(queue.next_backoff(&"k"), ms(5));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_hands_out_what_is_queued_then_none_and_drains() {
        let queue = WorkQueue::new();
        queue.add(1);
        queue.add(2);
        queue.add_after(3, ms(10));
        assert_eq!(queue.get().await, Some(1));
        queue.shut_down();
        queue.add(4);
        assert_eq!(queue.get().await, Some(2));
        assert_eq!(queue.get().await, None, "4 was ignored, delayed 3 dropped");
        let drained = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.shut_down_with_drain().await })
        };
        tokio::time::sleep(ms(100)).await;
        assert!(!drained.is_finished(), "1 and 2 are still processed");
        queue.done(&1);
        queue.done(&2);
        drained.await.expect("drain returns once all are done");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_get_wakes_on_add_and_on_shutdown() {
        let queue = WorkQueue::<u32>::new();
        let getter = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.get().await })
        };
        tokio::task::yield_now().await;
        queue.add(9);
        assert_eq!(getter.await.expect("join"), Some(9));
        let getter = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.get().await })
        };
        tokio::task::yield_now().await;
        queue.shut_down();
        assert_eq!(getter.await.expect("join"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn only_adds_that_give_get_something_new_wake_the_waiters() {
        let queue = WorkQueue::new();
        let now = Instant::now();
        {
            let mut state = queue.state();
            assert!(state.add("a"));
            assert!(!state.add("a"), "queued already");
            assert!(state.add_at("b", now + ms(100)), "the first timer");
            assert!(
                !state.add_at("b", now + ms(200)),
                "a later time for a waiting key"
            );
            assert!(
                !state.add_at("c", now + ms(150)),
                "after the earliest timer"
            );
            assert!(state.add_at("d", now + ms(50)), "a new earliest timer");
        }
        let a = queue.try_get().expect("a is queued");
        assert!(
            !queue.state().add("a"),
            "processing: `done` queues it again"
        );
        queue.done(&a);
        assert_eq!(queue.try_get(), Some("a"));
        // A get that waits for the timers still gets each key at its time.
        assert_eq!(queue.get().await, Some("d"));
        assert_eq!(queue.get().await, Some("b"));
        assert_eq!(queue.get().await, Some("c"));
        assert_eq!(Instant::now(), now + ms(150));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_get_wakes_for_an_earlier_timer_and_a_requeue() {
        let queue = WorkQueue::<u32>::new();
        queue.add_after(1, ms(1000));
        let getter = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.get().await })
        };
        tokio::task::yield_now().await;
        let began = Instant::now();
        queue.add_after(2, ms(10));
        assert_eq!(getter.await.expect("join"), Some(2));
        assert_eq!(began.elapsed(), ms(10));
        queue.add(3);
        let three = queue.try_get().expect("3 is queued");
        queue.add(3);
        let getter = {
            let queue = queue.clone();
            tokio::spawn(async move { queue.get().await })
        };
        tokio::task::yield_now().await;
        queue.done(&three);
        assert_eq!(getter.await.expect("join"), Some(3));
    }
}
