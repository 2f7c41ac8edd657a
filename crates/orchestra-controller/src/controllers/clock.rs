//! [`Clock`]: wall-clock time that advances with tokio's clock.
//!
//! Controllers compare object timestamps (a job's `startTime`, a deployment condition's
//! `lastUpdateTime`) with "now". Reading the system clock directly would make those decisions
//! untestable in tokio's paused time, so the controllers read the wall clock once, when they are
//! built, and add tokio's elapsed time to it: in production the two agree (both follow the
//! machine's clock), in a paused test time moves only when the test advances it.

use std::time::Duration;

use tokio::time::Instant;

/// The wall clock as of its creation plus tokio's elapsed time. Cheap to copy.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    wall: jiff::Timestamp,
    at: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock starting at the system's time now.
    pub fn new() -> Self {
        Clock {
            wall: jiff::Timestamp::now(),
            at: Instant::now(),
        }
    }

    /// The current time on this clock.
    pub fn now(&self) -> jiff::Timestamp {
        add(self.wall, self.at.elapsed())
    }
}

/// `at + by`, saturating at the end of time.
pub(crate) fn add(at: jiff::Timestamp, by: Duration) -> jiff::Timestamp {
    jiff::SignedDuration::try_from(by)
        .ok()
        .and_then(|by| at.checked_add(by).ok())
        .unwrap_or(jiff::Timestamp::MAX)
}

/// How long from `from` until `to` (zero if `to` is not later).
pub(crate) fn until(from: jiff::Timestamp, to: jiff::Timestamp) -> Duration {
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn follows_tokio_time() {
        let clock = Clock::new();
        let start = clock.now();
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(until(start, clock.now()), Duration::from_secs(90));
        assert_eq!(until(clock.now(), start), Duration::ZERO);
    }
}
