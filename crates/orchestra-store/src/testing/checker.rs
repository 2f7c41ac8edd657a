//! [`WatchChecker`]: validates what a watcher received against the store's complete history,
//! for etcd's five watch guarantees:
//!
//! - **ordered**: event revisions never go down inside a response and strictly increase from
//!   one response to the next; a progress notification bounds everything before it;
//! - **unique**: no event is delivered twice;
//! - **atomic**: the events of one revision (one transaction) arrive in one response;
//! - **reliable**: no gaps: from its start revision to the revision it was drained to, the
//!   watcher got exactly the events of the history that its range and filters select, with
//!   `prev_kv` exactly when it asked for it;
//! - **resumable**: a watch started at revision `r` delivers exactly the tail, from `r`, of
//!   what a watch from further back delivered ([`WatchChecker::check_resumed`]).
//!
//! The reference history comes from ranging the store at every revision
//! ([`WatchChecker::from_store`]) — independent of the watch machinery under test — or from
//! the events of a watch over every key with `prev_kv` ([`WatchChecker::from_responses`]).

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;

use crate::error::StoreError;
use crate::store::Store;
use crate::testing::util::range_all;
use crate::types::{Event, EventKind, KeyValue, Revision, WatchRequest, WatchResponse};

/// Where a watch started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WatchStart {
    /// At this revision exactly (an explicit `start_revision`).
    At(Revision),
    /// Somewhere in `[lo, hi]`: a watch from "now" (start revision 0) created while others were
    /// writing, between a status read of `lo - 1` and one of `hi - 1`.
    Between(Revision, Revision),
}

/// What one watcher received, ready to be checked.
#[derive(Clone, Debug)]
pub struct ObservedWatch {
    /// A name for messages.
    pub name: String,
    /// The request the watch was made with (its range, filters and `prev_kv` are checked).
    pub request: WatchRequest,
    /// Where it started.
    pub start: WatchStart,
    /// Every response, in the order received (events and progress notifications).
    pub responses: Vec<WatchResponse>,
    /// The revision the watch was drained to: every event up to here must have arrived.
    pub until: Revision,
}

/// Which guarantee a watch broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Revisions went backwards, or did not increase from one response to the next.
    Unordered,
    /// An event arrived twice.
    Duplicate,
    /// The events of one revision were split over several responses.
    Split,
    /// A revision the watch selects is missing (a gap).
    Gap,
    /// An event arrived that the history does not have, or the watch should not see.
    Unexpected,
    /// The events of a revision differ from the history's (values, metadata, `prev_kv`).
    Mismatch,
    /// A response's header revision is below the revision of its own events.
    Header,
    /// A progress notification claimed a revision that events then contradicted.
    Progress,
    /// A resumed watch differs from the tail of the full stream.
    Resume,
}

/// A broken watch guarantee, with what was expected and what was seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchViolation {
    /// The watch's name.
    pub watch: String,
    /// The guarantee.
    pub kind: Violation,
    /// Expected versus seen.
    pub detail: String,
}

impl fmt::Display for WatchViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "watch {:?} broke a watch guarantee ({:?}): {}",
            self.watch, self.kind, self.detail
        )
    }
}

impl std::error::Error for WatchViolation {}

/// Counts from a successful check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Responses with events.
    pub event_responses: usize,
    /// Progress notifications.
    pub progress_notifications: usize,
    /// Events.
    pub events: usize,
}

/// The reference history of revisions `first ..= last`, and the checks of watchers against it.
#[derive(Clone, Debug)]
pub struct WatchChecker {
    first: Revision,
    last: Revision,
    /// Every revision's complete events (with `prev_kv`), sorted by key.
    history: BTreeMap<Revision, Vec<Event>>,
}

impl WatchChecker {
    /// Build the history of revisions `first ..= last` by ranging every key at `first - 1` and
    /// at each revision, and diffing: a key whose `mod_revision` is the revision was put, a key
    /// that disappeared was deleted. Fails if a revision cannot be read (compacted).
    pub async fn from_store<S: Store + ?Sized>(
        store: &S,
        first: Revision,
        last: Revision,
    ) -> Result<Self, StoreError> {
        let mut before: BTreeMap<Bytes, KeyValue> = if first > 1 {
            range_all(store, first - 1)
                .await?
                .into_iter()
                .map(|kv| (kv.key.clone(), kv))
                .collect()
        } else {
            BTreeMap::new()
        };
        let mut history = BTreeMap::new();
        for revision in first..=last {
            let now: BTreeMap<Bytes, KeyValue> = range_all(store, revision)
                .await?
                .into_iter()
                .map(|kv| (kv.key.clone(), kv))
                .collect();
            let mut events = Vec::new();
            for (key, kv) in &now {
                if kv.mod_revision == revision {
                    let prev_kv = before.get(key).cloned();
                    events.push(Event {
                        kind: EventKind::Put,
                        kv: kv.clone(),
                        prev_kv,
                    });
                }
            }
            for (key, prev) in &before {
                if !now.contains_key(key) {
                    events.push(Event {
                        kind: EventKind::Delete,
                        kv: KeyValue {
                            key: key.clone(),
                            mod_revision: revision,
                            ..Default::default()
                        },
                        prev_kv: Some(prev.clone()),
                    });
                }
            }
            events.sort_by(|a, b| a.kv.key.cmp(&b.kv.key));
            history.insert(revision, events);
            before = now;
        }
        Ok(WatchChecker {
            first,
            last,
            history,
        })
    }

    /// Build the history of revisions `first ..= last` from the responses of a watch over
    /// every key, with `prev_kv`, started at `first` (check that watch against a history from
    /// [`from_store`](Self::from_store) first if it is in doubt).
    pub fn from_responses(first: Revision, last: Revision, responses: &[WatchResponse]) -> Self {
        let mut history: BTreeMap<Revision, Vec<Event>> =
            (first..=last).map(|r| (r, Vec::new())).collect();
        for event in responses.iter().flat_map(|r| r.events.iter()) {
            if let Some(events) = history.get_mut(&event.kv.mod_revision) {
                events.push(event.clone());
            }
        }
        for events in history.values_mut() {
            events.sort_by(|a, b| a.kv.key.cmp(&b.kv.key));
        }
        WatchChecker {
            first,
            last,
            history,
        }
    }

    /// The first revision of the history.
    pub fn first(&self) -> Revision {
        self.first
    }

    /// The last revision of the history.
    pub fn last(&self) -> Revision {
        self.last
    }

    /// The complete events of each revision (with `prev_kv`), sorted by key.
    pub fn history(&self) -> &BTreeMap<Revision, Vec<Event>> {
        &self.history
    }

    /// Revisions without any change: a store only creates a revision for a write, so a correct
    /// history has none.
    pub fn empty_revisions(&self) -> Vec<Revision> {
        self.history
            .iter()
            .filter(|(_, events)| events.is_empty())
            .map(|(r, _)| *r)
            .collect()
    }

    /// The events a watch with `request` must deliver for revision `revision`, sorted by key
    /// (empty when it selects none).
    pub fn expected_at(&self, request: &WatchRequest, revision: Revision) -> Vec<Event> {
        self.history
            .get(&revision)
            .into_iter()
            .flatten()
            .filter(|event| request.matches(event))
            .map(|event| {
                let mut event = event.clone();
                if !request.prev_kv {
                    event.prev_kv = None;
                }
                event
            })
            .collect()
    }

    /// Check one watcher against the history; see the module docs for the guarantees.
    pub fn check(&self, watch: &ObservedWatch) -> Result<WatchStats, WatchViolation> {
        let fail = |kind: Violation, detail: String| WatchViolation {
            watch: watch.name.clone(),
            kind,
            detail,
        };
        let mut stats = WatchStats::default();
        // The highest event revision of earlier responses, and the highest progress claim.
        let mut last_event: Option<Revision> = None;
        let mut progress_floor: Revision = 0;
        // revision -> (index of its response, its events)
        let mut delivered: BTreeMap<Revision, (usize, Vec<Event>)> = BTreeMap::new();
        for (index, resp) in watch.responses.iter().enumerate() {
            if resp.events.is_empty() {
                stats.progress_notifications += 1;
                if let Some(last) = last_event
                    && resp.header_revision < last
                {
                    return Err(fail(
                        Violation::Progress,
                        format!(
                            "response #{index}: progress notification at revision {} after an event at revision {last}",
                            resp.header_revision
                        ),
                    ));
                }
                progress_floor = progress_floor.max(resp.header_revision);
                continue;
            }
            stats.event_responses += 1;
            let mut previous_in_response: Option<Revision> = None;
            for event in resp.events.iter() {
                let revision = event.kv.mod_revision;
                stats.events += 1;
                if let Some(previous) = previous_in_response {
                    if revision < previous {
                        return Err(fail(
                            Violation::Unordered,
                            format!(
                                "response #{index}: event at revision {revision} after one at {previous}"
                            ),
                        ));
                    }
                } else if let Some(last) = last_event {
                    if revision == last {
                        return Err(fail(
                            Violation::Split,
                            format!(
                                "revision {revision} arrived in response #{index} and in an earlier one"
                            ),
                        ));
                    }
                    if revision < last {
                        return Err(fail(
                            Violation::Unordered,
                            format!(
                                "response #{index} starts at revision {revision}, an earlier response reached {last}"
                            ),
                        ));
                    }
                }
                if revision <= progress_floor {
                    return Err(fail(
                        Violation::Progress,
                        format!(
                            "response #{index}: event at revision {revision} after a progress notification at {progress_floor} claimed everything up to it was delivered"
                        ),
                    ));
                }
                previous_in_response = Some(revision);
                let (at, events) = delivered.entry(revision).or_insert((index, Vec::new()));
                if *at != index {
                    return Err(fail(
                        Violation::Split,
                        format!("revision {revision} arrived in responses #{at} and #{index}"),
                    ));
                }
                if events.iter().any(|e| e.kv.key == event.kv.key) {
                    return Err(fail(
                        Violation::Duplicate,
                        format!(
                            "key {:?} at revision {revision} arrived twice",
                            event.kv.key
                        ),
                    ));
                }
                events.push(event.clone());
            }
            let top = previous_in_response.unwrap_or_default();
            if resp.header_revision < top {
                return Err(fail(
                    Violation::Header,
                    format!(
                        "response #{index}: header revision {} below its last event's revision {top}",
                        resp.header_revision
                    ),
                ));
            }
            last_event = Some(top);
        }

        let first_delivered = delivered.keys().next().copied();
        let start = match watch.start {
            WatchStart::At(start) => start,
            WatchStart::Between(lo, hi) => first_delivered.map_or(hi, |f| f.clamp(lo, hi)),
        };
        if start < self.first || watch.until > self.last {
            return Err(fail(
                Violation::Unexpected,
                format!(
                    "the watch covers revisions {start}..={} but the history only {}..={}",
                    watch.until, self.first, self.last
                ),
            ));
        }
        if let Some((&revision, _)) = delivered
            .iter()
            .find(|(r, _)| **r < start || **r > watch.until)
        {
            return Err(fail(
                Violation::Unexpected,
                format!(
                    "event at revision {revision} outside the watched revisions {start}..={}",
                    watch.until
                ),
            ));
        }
        for revision in start..=watch.until {
            let expected = self.expected_at(&watch.request, revision);
            let mut got = delivered
                .remove(&revision)
                .map(|(_, events)| events)
                .unwrap_or_default();
            got.sort_by(|a, b| a.kv.key.cmp(&b.kv.key));
            if expected == got {
                continue;
            }
            let kind = if got.is_empty() {
                Violation::Gap
            } else if expected.is_empty() {
                Violation::Unexpected
            } else {
                Violation::Mismatch
            };
            return Err(fail(
                kind,
                format!("revision {revision}: expected {expected:?}, got {got:?}"),
            ));
        }
        Ok(stats)
    }

    /// [`check`](Self::check), panicking with the violation.
    #[track_caller]
    pub fn assert_ok(&self, watch: &ObservedWatch) -> WatchStats {
        match self.check(watch) {
            Ok(stats) => stats,
            Err(violation) => panic!("{violation}"),
        }
    }

    /// Resumability: `resumed` (a watch with the same range and filters, started at an
    /// explicit revision `r`) delivered exactly the events that `full` delivered from `r` on,
    /// up to the revision both were drained to. Check each against the history first.
    pub fn check_resumed(
        full: &ObservedWatch,
        resumed: &ObservedWatch,
    ) -> Result<(), WatchViolation> {
        let fail = |detail: String| WatchViolation {
            watch: resumed.name.clone(),
            kind: Violation::Resume,
            detail,
        };
        let WatchStart::At(from) = resumed.start else {
            return Err(fail(
                "a resumed watch must start at an explicit revision".into(),
            ));
        };
        fn same_selection(r: &WatchRequest) -> (&crate::types::KeyRange, bool, bool, bool) {
            (&r.range, r.prev_kv, r.filter_puts, r.filter_deletes)
        }
        if same_selection(&full.request) != same_selection(&resumed.request) {
            return Err(fail(format!(
                "it selects other events than {:?}: {:?} versus {:?}",
                full.name, resumed.request, full.request
            )));
        }
        let until = full.until.min(resumed.until);
        let events = |w: &ObservedWatch, from: Revision| -> Vec<Event> {
            let mut events: Vec<Event> = w
                .responses
                .iter()
                .flat_map(|r| r.events.iter())
                .filter(|e| e.kv.mod_revision >= from && e.kv.mod_revision <= until)
                .cloned()
                .collect();
            events.sort_by(|a, b| {
                (a.kv.mod_revision, &a.kv.key).cmp(&(b.kv.mod_revision, &b.kv.key))
            });
            events
        };
        let tail = events(full, from);
        let got = events(resumed, from);
        if tail != got {
            let diverge = tail
                .iter()
                .zip(&got)
                .position(|(a, b)| a != b)
                .unwrap_or(tail.len().min(got.len()));
            return Err(fail(format!(
                "from revision {from} it delivered {} events, the tail of {:?} has {}; first difference at event #{diverge}: expected {:?}, got {:?}",
                got.len(),
                full.name,
                tail.len(),
                tail.get(diverge),
                got.get(diverge)
            )));
        }
        Ok(())
    }
}
