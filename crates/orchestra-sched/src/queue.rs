//! [`SchedulingQueue`]: the pods waiting to be scheduled, as a pure structure with time passed
//! in (`now`, a monotonic [`Duration`] since any fixed start), so that tests drive the clock.
//!
//! Every pod (by `namespace/name`) is in exactly one place:
//! - **active**: a heap ordered by the profile's QueueSort (priority, then arrival);
//! - **backoff**: after a failed attempt, until `1 s * 2^(attempts-1)` (at most 10 s) passed;
//! - **unschedulable**: no node fitted; it waits for a cluster event that could help it
//!   (then goes to backoff or active), or for [`UNSCHEDULABLE_FLUSH`] to pass. Which events
//!   could help it is the caller's queueing hint ([`SchedulingQueue::on_event`]), asked with
//!   the plugins that rejected the pod ([`SchedulingQueue::requeue_unschedulable`]);
//! - **in flight**: popped, its cycle not finished; the caller ends it with
//!   [`SchedulingQueue::done`] (placed) or a requeue.
//!
//! Backoff holds two kinds of pods, as kube-scheduler's backoffQ does since its
//! `SchedulerPopFromBackoffQ` (beta, on by default, in 1.33):
//! - pods *moved* there because something may have changed for them (a cluster event while
//!   they were unschedulable or in flight, their own update, the flush): when the heap is
//!   empty, [`SchedulingQueue::pop`] takes them before their backoff ends (the earliest-ending
//!   first), so that an idle scheduler does not sit out a backoff a pod may no longer need
//!   (e.g. a preemptor whose victims were just deleted);
//! - pods whose attempt ended in an *error* (a failed binding, Reserve, a plugin error,
//!   [`SchedulingQueue::requeue_backoff`]): they always wait out their backoff in full.
//!
//! The heap is cleaned lazily: an entry whose pod has since moved, changed or been deleted
//! carries an old generation and is skipped when it surfaces. The ordered sets (backoff,
//! unschedulable) are kept exact: a pod leaving them is removed at once.

use std::cmp::Ordering;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::framework::{QueuedPodInfo, QueueingHint};
use crate::snapshot::PodInfo;

/// The first backoff after a failed attempt.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// An unschedulable pod goes back to be tried again after this long, even without an event.
pub const UNSCHEDULABLE_FLUSH: Duration = Duration::from_secs(5 * 60);

/// The QueueSort order: whether `a` is scheduled before `b`.
pub type LessFn = Arc<dyn Fn(&QueuedPodInfo, &QueuedPodInfo) -> bool + Send + Sync>;

/// Where a pod is in the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// In the active heap.
    Active,
    /// Waiting out its backoff, until the given time.
    Backoff(Duration),
    /// Unschedulable since the given time.
    Unschedulable(Duration),
    /// Popped, its cycle not yet finished.
    InFlight,
}

#[derive(Debug)]
struct Entry {
    info: QueuedPodInfo,
    place: Place,
    /// Changes whenever the pod enters the heap, so that older heap entries are skipped.
    generation: u64,
    /// When it was last popped (its backoff counts from there).
    last_attempt: Duration,
    /// A cluster event arrived while it was in flight: a failed cycle may have missed it.
    moved_in_flight: bool,
    /// Its last attempt ended in an error: its backoff is waited out in full.
    errored: bool,
    /// The plugins that rejected it, while unschedulable (for the queueing hints).
    rejected_by: Vec<&'static str>,
}

struct HeapItem {
    info: QueuedPodInfo,
    generation: u64,
    less: LessFn,
}

impl PartialEq for HeapItem {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for HeapItem {}
impl PartialOrd for HeapItem {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for HeapItem {
    // BinaryHeap pops the greatest: the pod that goes first is the greatest.
    fn cmp(&self, other: &Self) -> Ordering {
        if (self.less)(&self.info, &other.info) {
            Ordering::Greater
        } else if (self.less)(&other.info, &self.info) {
            Ordering::Less
        } else {
            other.info.sequence.cmp(&self.info.sequence)
        }
    }
}

/// The scheduling queue; see the [module docs](self).
pub struct SchedulingQueue {
    less: LessFn,
    pods: HashMap<String, Entry>,
    active: BinaryHeap<HeapItem>,
    /// Pods moved to backoff (by when it ends): popped early when the heap is empty.
    backoff: BTreeSet<(Duration, String)>,
    /// Pods backing off after an error (by when it ends): never popped early.
    error_backoff: BTreeSet<(Duration, String)>,
    unschedulable: BTreeSet<(Duration, String)>,
    /// The pods in flight (popped, cycle not over): a cluster event asks about these and the
    /// unschedulable ones only, never walking every pod held.
    in_flight: BTreeSet<String>,
    next_sequence: u64,
    next_generation: u64,
}

impl std::fmt::Debug for SchedulingQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulingQueue")
            .field("pods", &self.pods.len())
            .field("backoff", &self.backoff.len())
            .field("error_backoff", &self.error_backoff.len())
            .field("unschedulable", &self.unschedulable.len())
            .finish()
    }
}

/// The backoff after `attempts` failed attempts: 1 s doubling, at most 10 s.
pub fn backoff_duration(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(8);
    (INITIAL_BACKOFF * (1u32 << doublings)).min(MAX_BACKOFF)
}

impl SchedulingQueue {
    /// An empty queue ordered by `less` (e.g. `Framework::less` of the default profile).
    pub fn new(less: LessFn) -> Self {
        SchedulingQueue {
            less,
            pods: HashMap::new(),
            active: BinaryHeap::new(),
            backoff: BTreeSet::new(),
            error_backoff: BTreeSet::new(),
            unschedulable: BTreeSet::new(),
            in_flight: BTreeSet::new(),
            next_sequence: 0,
            next_generation: 0,
        }
    }

    /// The number of pods, in every place (in flight included).
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether the queue holds no pod.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// Where a pod (`namespace/name`) is.
    pub fn place(&self, key: &str) -> Option<Place> {
        self.pods.get(key).map(|e| e.place)
    }

    /// The keys of every pod held, in no order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.pods.keys().map(String::as_str)
    }

    /// The pods in a place, for inspection.
    pub fn count(&self, place: fn(&Place) -> bool) -> usize {
        self.pods.values().filter(|e| place(&e.place)).count()
    }

    /// Adds a new pending pod to the active heap, or updates a known one (see
    /// [`SchedulingQueue::update`]).
    pub fn add(&mut self, pod: Arc<PodInfo>, now: Duration) {
        if self.pods.contains_key(pod.key()) {
            return self.update(pod, now);
        }
        let key = pod.key().to_owned();
        let info = QueuedPodInfo {
            pod,
            sequence: 0,
            attempts: 0,
        };
        self.pods.insert(
            key.clone(),
            Entry {
                info,
                place: Place::InFlight,
                generation: 0,
                last_attempt: now,
                moved_in_flight: false,
                errored: false,
                rejected_by: Vec::new(),
            },
        );
        self.push_active(&key);
    }

    /// Updates a pod's object. A pod waiting in the heap is re-ordered; an unschedulable pod
    /// is tried again (its change may help it), after its backoff; a pod in flight keeps the
    /// new object for its next attempt.
    pub fn update(&mut self, pod: Arc<PodInfo>, now: Duration) {
        let key = pod.key().to_owned();
        let Some(entry) = self.pods.get_mut(&key) else {
            return self.add(pod, now);
        };
        entry.info.pod = pod;
        match entry.place {
            Place::Active => self.push_active(&key),
            Place::Backoff(_) | Place::InFlight => {}
            Place::Unschedulable(_) => self.retry(&key, now),
        }
    }

    /// Removes a pod (deleted, or assigned to a node by someone); `false` if it was not here.
    pub fn delete(&mut self, key: &str) -> bool {
        let Some(entry) = self.pods.remove(key) else {
            return false;
        };
        match entry.place {
            Place::Backoff(until) => {
                let item = (until, key.to_owned());
                self.backoff.remove(&item);
                self.error_backoff.remove(&item);
            }
            Place::Unschedulable(since) => {
                self.unschedulable.remove(&(since, key.to_owned()));
            }
            Place::InFlight => {
                self.in_flight.remove(key);
            }
            // A heap entry is skipped when it surfaces.
            Place::Active => {}
        }
        true
    }

    /// Moves pods whose backoff is over to the heap, and flushes pods unschedulable for
    /// [`UNSCHEDULABLE_FLUSH`].
    pub fn tick(&mut self, now: Duration) {
        for errored in [false, true] {
            loop {
                let set = if errored {
                    &mut self.error_backoff
                } else {
                    &mut self.backoff
                };
                match set.first() {
                    Some((until, _)) if *until <= now => {}
                    _ => break,
                }
                let (_, key) = set.pop_first().expect("first exists");
                self.push_active(&key);
            }
        }
        while let Some((since, _)) = self.unschedulable.first() {
            if *since + UNSCHEDULABLE_FLUSH > now {
                break;
            }
            let (_, key) = self.unschedulable.first().cloned().expect("first exists");
            self.retry(&key, now);
        }
    }

    /// The next pod to schedule (after [`SchedulingQueue::tick`]), now in flight; its attempt
    /// count includes this attempt. With the heap empty, a pod moved to backoff is taken
    /// before its backoff ends (see the [module docs](self)).
    pub fn pop(&mut self, now: Duration) -> Option<QueuedPodInfo> {
        self.tick(now);
        loop {
            if let Some(info) = self.pop_active(now) {
                return Some(info);
            }
            // The backoff sets are kept exact (never stale), so the key is held.
            let (_, key) = self.backoff.pop_first()?;
            self.push_active(&key);
        }
    }

    /// The first fresh pod of the heap, now in flight.
    fn pop_active(&mut self, now: Duration) -> Option<QueuedPodInfo> {
        while let Some(item) = self.active.pop() {
            let key = item.info.pod.key();
            let Some(entry) = self.pods.get_mut(key) else {
                continue;
            };
            if entry.place != Place::Active || entry.generation != item.generation {
                continue;
            }
            entry.place = Place::InFlight;
            self.in_flight.insert(key.to_owned());
            entry.info.attempts += 1;
            entry.last_attempt = now;
            entry.moved_in_flight = false;
            entry.errored = false;
            return Some(entry.info.clone());
        }
        None
    }

    /// Whether [`SchedulingQueue::pop`] at `now` would return a pod.
    pub fn has_ready(&mut self, now: Duration) -> bool {
        self.tick(now);
        while let Some(item) = self.active.peek() {
            let fresh = self
                .pods
                .get(item.info.pod.key())
                .is_some_and(|e| e.place == Place::Active && e.generation == item.generation);
            if fresh {
                return true;
            }
            self.active.pop();
        }
        !self.backoff.is_empty()
    }

    /// When the next backoff ends or the next unschedulable flush is due, if any.
    pub fn next_wakeup(&self) -> Option<Duration> {
        let backoff = [&self.backoff, &self.error_backoff]
            .into_iter()
            .filter_map(|set| set.first().map(|(t, _)| *t))
            .min();
        let flush = self
            .unschedulable
            .first()
            .map(|(t, _)| *t + UNSCHEDULABLE_FLUSH);
        match (backoff, flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Ends a pod's cycle: it was placed (or is no longer to be scheduled); it leaves the
    /// queue. `false` if it was not in flight (deleted meanwhile).
    pub fn done(&mut self, key: &str) -> bool {
        if self.place(key) == Some(Place::InFlight) {
            self.pods.remove(key);
            self.in_flight.remove(key);
            true
        } else {
            false
        }
    }

    /// Ends a pod's cycle: no node fitted, or a plugin rejected it; `rejected_by` names the
    /// plugins that did ([`crate::Unschedulable::rejected_by`]; empty: any event may help).
    /// It waits in the unschedulable set, unless a cluster event that may help it arrived
    /// during its cycle (then it goes to backoff).
    pub fn requeue_unschedulable(
        &mut self,
        key: &str,
        now: Duration,
        rejected_by: Vec<&'static str>,
    ) -> bool {
        let Some(entry) = self.pods.get_mut(key) else {
            return false;
        };
        if entry.place != Place::InFlight {
            return false;
        }
        if entry.moved_in_flight {
            self.retry(key, now);
        } else {
            entry.rejected_by = rejected_by;
            entry.place = Place::Unschedulable(now);
            self.unschedulable.insert((now, key.to_owned()));
            self.in_flight.remove(key);
        }
        true
    }

    /// Ends a pod's cycle with an error (or a failed binding): it goes to backoff, and waits
    /// it out in full.
    pub fn requeue_backoff(&mut self, key: &str, now: Duration) -> bool {
        let Some(entry) = self.pods.get_mut(key) else {
            return false;
        };
        if entry.place != Place::InFlight {
            return false;
        }
        entry.errored = true;
        self.retry(key, now);
        true
    }

    /// A cluster event. `hint` says whether it may help a pod: asked with the plugins that
    /// rejected an unschedulable pod (`Some`), which then goes to backoff or active if so;
    /// and with `None` for a pod in flight, which then remembers that its cycle may have
    /// missed a change (a failure sends it to backoff, not to the unschedulable set).
    pub fn on_event(
        &mut self,
        now: Duration,
        mut hint: impl FnMut(&PodInfo, Option<&[&'static str]>) -> QueueingHint,
    ) {
        let moved: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|(_, key)| {
                self.pods
                    .get(key)
                    .is_none_or(|e| hint(&e.info.pod, Some(&e.rejected_by)) == QueueingHint::Queue)
            })
            .map(|(_, key)| key.clone())
            .collect();
        for key in moved {
            self.retry(&key, now);
        }
        for key in &self.in_flight {
            let Some(entry) = self.pods.get_mut(key) else {
                continue;
            };
            if entry.place == Place::InFlight
                && !entry.moved_in_flight
                && hint(&entry.info.pod, None) == QueueingHint::Queue
            {
                entry.moved_in_flight = true;
            }
        }
    }

    /// A change that may help every pod (a relist): every unschedulable pod goes to backoff
    /// or active, and pods in flight remember it.
    pub fn move_all(&mut self, now: Duration) {
        self.on_event(now, |_, _| QueueingHint::Queue);
    }

    /// Moves a pod (not in the heap) to backoff if its backoff since its last attempt is not
    /// over, else to the heap. It goes to the error backoff if its last attempt errored.
    fn retry(&mut self, key: &str, now: Duration) {
        let Some(entry) = self.pods.get_mut(key) else {
            return;
        };
        match entry.place {
            Place::Unschedulable(since) => {
                self.unschedulable.remove(&(since, key.to_owned()));
            }
            Place::Backoff(until) => {
                let item = (until, key.to_owned());
                self.backoff.remove(&item);
                self.error_backoff.remove(&item);
            }
            Place::InFlight => {
                self.in_flight.remove(key);
            }
            Place::Active => {}
        }
        entry.rejected_by.clear();
        let until = entry.last_attempt + backoff_duration(entry.info.attempts);
        if entry.info.attempts > 0 && until > now {
            entry.place = Place::Backoff(until);
            let set = if entry.errored {
                &mut self.error_backoff
            } else {
                &mut self.backoff
            };
            set.insert((until, key.to_owned()));
        } else {
            self.push_active(key);
        }
    }

    /// Pushes a pod onto the heap with a fresh generation (and a fresh arrival sequence unless
    /// it was already active).
    fn push_active(&mut self, key: &str) {
        let generation = self.next_generation;
        self.next_generation += 1;
        let sequence = self.next_sequence;
        let Some(entry) = self.pods.get_mut(key) else {
            return;
        };
        if entry.place != Place::Active {
            entry.info.sequence = sequence;
            self.next_sequence += 1;
        }
        if entry.place == Place::InFlight {
            self.in_flight.remove(key);
        }
        entry.place = Place::Active;
        entry.generation = generation;
        self.active.push(HeapItem {
            info: entry.info.clone(),
            generation,
            less: self.less.clone(),
        });
    }
}
