//! The pure part of leader election: what a candidate does given what it has seen of the
//! lease and the time on its own clock.
//!
//! Expiry is judged as client-go judges it: not by comparing the holder's `renewTime` with the
//! local wall clock (clocks of two machines disagree), but by when *this* candidate last saw the
//! lease record change. A holder that keeps renewing changes the record every time; once it
//! stops, the record stays the same, and after `leaseDurationSeconds` of the candidate's own
//! (monotonic) time the lease is free to take.

use std::time::Duration;

use orchestra_api::resources::{Lease, LeaseSpec};
use tokio::time::Instant;

/// The holder-visible part of a lease record: what changes when its holder renews.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The holder (`None` or empty: free).
    pub holder: Option<String>,
    /// The holder's declared lease duration, in seconds.
    pub duration_seconds: Option<i32>,
    /// The spec as last seen (its renewTime changes on every renewal).
    pub spec: LeaseSpec,
}

impl Record {
    /// The record of a lease.
    pub fn of(lease: &Lease) -> Self {
        Record {
            holder: lease.spec.holder_identity.clone().filter(|h| !h.is_empty()),
            duration_seconds: lease.spec.lease_duration_seconds,
            spec: lease.spec.clone(),
        }
    }
}

/// What a candidate remembers between attempts.
#[derive(Clone, Debug, Default)]
pub struct ElectionState {
    /// The last lease record seen, and when (on our clock) it was first seen as it is.
    observed: Option<(Record, Instant)>,
    /// When the attempt that last acquired or renewed the lease started (`None`: not leading).
    /// Measured from the start of the request, so that our deadline runs ahead of what any
    /// observer can see.
    renewed_at: Option<Instant>,
}

/// What to do after reading the lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// The lease does not exist: create it with us as the holder.
    Create,
    /// The lease is free or expired: take it (a new holder: `acquireTime` now, transitions
    /// `+1`), conditional on the resourceVersion read.
    Take {
        /// `leaseTransitions` to write.
        transitions: i32,
    },
    /// We hold it: renew (`renewTime` now), keeping `acquireTime` and the transitions.
    Renew,
    /// Someone else holds it and, as far as we can tell, still renews it: try again later.
    /// `expires` is when it expires on our clock if its record stays as it is.
    Wait {
        /// The holder.
        holder: String,
        /// When the lease expires on our clock unless its record changes.
        expires: Instant,
    },
}

impl ElectionState {
    /// A candidate that has seen nothing yet.
    pub fn new() -> Self {
        ElectionState::default()
    }

    /// Whether we lead (acquired or renewed and not given up since).
    pub fn is_leading(&self) -> bool {
        self.renewed_at.is_some()
    }

    /// Notes what a read of the lease returned at `now` (`None`: it does not exist) and decides
    /// what to do. `identity` is ours; `default_duration` applies to records without one.
    pub fn observe(
        &mut self,
        identity: &str,
        lease: Option<&Lease>,
        default_duration: Duration,
        now: Instant,
    ) -> Step {
        let Some(lease) = lease else {
            self.observed = None;
            return Step::Create;
        };
        let record = Record::of(lease);
        // Only a change of the record restarts the clock: seeing the same record again says
        // nothing about whether its holder is alive.
        let seen_at = match &self.observed {
            Some((old, at)) if *old == record => *at,
            _ => now,
        };
        self.observed = Some((record.clone(), seen_at));
        let transitions = lease.spec.lease_transitions.unwrap_or(0);
        match record.holder.as_deref() {
            Some(holder) if holder == identity => Step::Renew,
            None => Step::Take {
                transitions: transitions.saturating_add(1),
            },
            Some(holder) => {
                let duration = record
                    .duration_seconds
                    .filter(|d| *d > 0)
                    .map_or(default_duration, |d| {
                        Duration::from_secs(d.unsigned_abs().into())
                    });
                let expires = seen_at + duration;
                if now >= expires {
                    Step::Take {
                        transitions: transitions.saturating_add(1),
                    }
                } else {
                    Step::Wait {
                        holder: holder.to_owned(),
                        expires,
                    }
                }
            }
        }
    }

    /// Notes that our write (create, take or renew) that started at `started` succeeded and
    /// left the lease as `written`, seen at `now`.
    pub fn written(&mut self, written: &Lease, started: Instant, now: Instant) {
        self.observed = Some((Record::of(written), now));
        self.renewed_at = Some(started);
    }

    /// Notes that we stopped leading (lost the lease, gave up or released it).
    pub fn stepped_down(&mut self) {
        self.renewed_at = None;
    }

    /// When a leader must have renewed by, or stop acting: `renew_deadline` after the start of
    /// its last successful renewal. `None` when not leading.
    pub fn renew_deadline(&self, renew_deadline: Duration) -> Option<Instant> {
        self.renewed_at.map(|at| at + renew_deadline)
    }

    /// When the lease we last wrote expires for the others at the earliest
    /// (`lease_duration` after the start of our last successful write). `None` when not
    /// leading.
    pub fn lease_expiry(&self, lease_duration: Duration) -> Option<Instant> {
        self.renewed_at.map(|at| at + lease_duration)
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::ObjectMeta;
    use orchestra_api::meta::MicroTime;

    use super::*;

    const LEASE: Duration = Duration::from_secs(15);

    fn lease(holder: Option<&str>, renew: i64, transitions: i32) -> Lease {
        Lease {
            metadata: ObjectMeta::namespaced("kube-system", "controller-manager"),
            spec: LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(15),
                acquire_time: None,
                renew_time: jiff::Timestamp::from_second(renew).ok().map(MicroTime::new),
                lease_transitions: Some(transitions),
            },
        }
    }

    #[test]
    fn an_absent_lease_is_created() {
        let mut state = ElectionState::new();
        assert_eq!(
            state.observe("a", None, LEASE, Instant::now()),
            Step::Create
        );
    }

    #[test]
    fn a_free_lease_is_taken_at_once_with_one_more_transition() {
        let mut state = ElectionState::new();
        let released = lease(None, 100, 3);
        assert_eq!(
            state.observe("a", Some(&released), LEASE, Instant::now()),
            Step::Take { transitions: 4 }
        );
        let mut empty = released.clone();
        empty.spec.holder_identity = Some(String::new());
        assert_eq!(
            state.observe("a", Some(&empty), LEASE, Instant::now()),
            Step::Take { transitions: 4 }
        );
    }

    #[test]
    fn our_own_lease_is_renewed() {
        let mut state = ElectionState::new();
        assert_eq!(
            state.observe("a", Some(&lease(Some("a"), 100, 0)), LEASE, Instant::now()),
            Step::Renew
        );
    }

    #[test]
    fn a_held_lease_expires_lease_duration_after_its_record_last_changed_on_our_clock() {
        let t0 = Instant::now();
        let mut state = ElectionState::new();
        let held = lease(Some("b"), 100, 0);
        assert_eq!(
            state.observe("a", Some(&held), LEASE, t0),
            Step::Wait {
                holder: "b".into(),
                expires: t0 + LEASE
            }
        );
        // The same record seen again does not move the expiry.
        assert_eq!(
            state.observe("a", Some(&held), LEASE, t0 + Duration::from_secs(10)),
            Step::Wait {
                holder: "b".into(),
                expires: t0 + LEASE
            }
        );
        assert_eq!(
            state.observe("a", Some(&held), LEASE, t0 + LEASE),
            Step::Take { transitions: 1 }
        );
    }

    #[test]
    fn a_renewal_restarts_the_clock_whatever_the_renew_time_says() {
        let t0 = Instant::now();
        let mut state = ElectionState::new();
        state.observe("a", Some(&lease(Some("b"), 100, 0)), LEASE, t0);
        // The holder's clock is far behind ours: its renewTime is in the past by our wall
        // clock, yet the record changed, so it is alive.
        let t1 = t0 + Duration::from_secs(14);
        let renewed = lease(Some("b"), 1, 0);
        assert_eq!(
            state.observe("a", Some(&renewed), LEASE, t1),
            Step::Wait {
                holder: "b".into(),
                expires: t1 + LEASE
            }
        );
        assert_eq!(
            state.observe("a", Some(&renewed), LEASE, t0 + Duration::from_secs(20)),
            Step::Wait {
                holder: "b".into(),
                expires: t1 + LEASE
            }
        );
    }

    #[test]
    fn the_holders_declared_duration_is_used() {
        let t0 = Instant::now();
        let mut state = ElectionState::new();
        let mut short = lease(Some("b"), 100, 2);
        short.spec.lease_duration_seconds = Some(3);
        state.observe("a", Some(&short), LEASE, t0);
        assert_eq!(
            state.observe("a", Some(&short), LEASE, t0 + Duration::from_secs(3)),
            Step::Take { transitions: 3 }
        );
    }

    #[test]
    fn a_leader_must_renew_within_its_deadline_which_ends_before_the_lease() {
        let t0 = Instant::now();
        let mut state = ElectionState::new();
        assert!(!state.is_leading());
        assert_eq!(state.renew_deadline(Duration::from_secs(10)), None);
        state.written(&lease(Some("a"), 100, 0), t0, t0 + Duration::from_millis(5));
        assert!(state.is_leading());
        assert_eq!(
            state.renew_deadline(Duration::from_secs(10)),
            Some(t0 + Duration::from_secs(10))
        );
        assert_eq!(state.lease_expiry(LEASE), Some(t0 + LEASE));
        state.stepped_down();
        assert!(!state.is_leading());
    }
}
