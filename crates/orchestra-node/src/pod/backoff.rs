//! Restart backoff, as kubelet's CrashLoopBackOff: the first restart is immediate, then each
//! restart waits 10 s, 20 s, 40 s ... up to 5 minutes after the exit; a container that ran
//! 10 minutes before exiting starts over.

use std::time::{Duration, SystemTime};

/// The first backoff delay.
pub const INITIAL: Duration = Duration::from_secs(10);
/// The longest backoff delay.
pub const MAX: Duration = Duration::from_secs(300);
/// A run this long resets the backoff.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// One container's restart backoff: the delay the next exit waits before a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The delay between the next exit and the restart after it.
    pub delay: Duration,
}

/// What to do about a container that exited and may restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart now, and keep this backoff for the next exit.
    Now(Backoff),
    /// Wait until this time; the current delay is given for the message.
    Wait {
        /// When the restart may happen.
        until: SystemTime,
        /// The delay being waited.
        delay: Duration,
    },
}

/// Decides a restart of a container that ran from `started` (if it started) to `finished`,
/// with its backoff record `previous`, at `now`.
pub fn decide(
    previous: Option<Backoff>,
    started: Option<SystemTime>,
    finished: SystemTime,
    now: SystemTime,
) -> RestartDecision {
    let ran = started
        .and_then(|s| finished.duration_since(s).ok())
        .unwrap_or_default();
    match previous {
        Some(Backoff { delay }) if ran < RESET_AFTER => {
            let until = finished + delay;
            if now < until {
                RestartDecision::Wait { until, delay }
            } else {
                RestartDecision::Now(Backoff {
                    delay: (delay * 2).min(MAX),
                })
            }
        }
        _ => RestartDecision::Now(Backoff { delay: INITIAL }),
    }
}

/// The delay before retrying a container start that failed `failures` times in a row.
pub fn start_retry_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(5);
    (INITIAL * 2u32.pow(exp)).min(MAX)
}

/// A duration as Go prints it (`10s`, `1m20s`, `5m0s`), as kubelet's messages show it.
pub fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        return format!("{secs}s");
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;
    fn at(secs: u64) -> SystemTime {
        T0 + Duration::from_secs(secs)
    }

    #[test]
    fn first_restart_is_immediate_then_doubling_to_five_minutes() {
        assert_eq!(
            decide(None, Some(at(0)), at(1), at(1)),
            RestartDecision::Now(Backoff { delay: INITIAL })
        );
        let mut backoff = Backoff { delay: INITIAL };
        let mut delays = vec![];
        for _ in 0..7 {
            let RestartDecision::Wait { until, delay } =
                decide(Some(backoff), None, at(100), at(100))
            else {
                panic!("restarted during backoff");
            };
            assert_eq!(until, at(100) + delay);
            delays.push(delay.as_secs());
            let RestartDecision::Now(next) = decide(Some(backoff), None, at(100), until) else {
                panic!("did not restart after backoff");
            };
            backoff = next;
        }
        assert_eq!(delays, [10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn ten_minutes_of_running_well_resets() {
        let long = Backoff { delay: MAX };
        assert_eq!(
            decide(Some(long), Some(at(0)), at(600), at(600)),
            RestartDecision::Now(Backoff { delay: INITIAL })
        );
        assert!(matches!(
            decide(Some(long), Some(at(0)), at(599), at(599)),
            RestartDecision::Wait { .. }
        ));
    }

    #[test]
    fn start_retries_and_go_durations() {
        assert_eq!(start_retry_delay(1), Duration::from_secs(10));
        assert_eq!(start_retry_delay(3), Duration::from_secs(40));
        assert_eq!(start_retry_delay(30), MAX);
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
    }
}
