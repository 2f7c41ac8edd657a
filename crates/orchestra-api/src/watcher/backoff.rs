//! [`Backoff`]: the watcher's delay between failed attempts, exponential with jitter, as a
//! pure policy (the caller supplies the random sample), so that tests assert exact delays.

use std::time::Duration;

/// Exponential backoff with jitter: the `n`-th consecutive failure (from 0) waits
/// `initial * factor^n`, capped at `max`, stretched by up to `jitter` (a fraction) and then
/// kept within `[initial, max]`. [`Backoff::reset`] after a success starts over.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    /// The first delay (default 800 ms).
    pub initial: Duration,
    /// The largest delay (default 30 s).
    pub max: Duration,
    /// The growth per failure (default 2).
    pub factor: f64,
    /// How much a delay is stretched at most, as a fraction of it (default 0.25: up to 25 %
    /// longer), so that many watchers failing together do not retry together.
    pub jitter: f64,
    /// Consecutive failures so far.
    attempt: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(800),
            max: Duration::from_secs(30),
            factor: 2.0,
            jitter: 0.25,
            attempt: 0,
        }
    }
}

impl Backoff {
    /// A policy from `initial` to `max`, doubling, with the default jitter.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            ..Backoff::default()
        }
    }

    /// This policy with another jitter fraction (0: exact delays).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The delay before retrying after `attempt` consecutive failures (0: the first), for a
    /// random `sample` in `[0, 1)` (values outside are clamped). Pure.
    pub fn delay(&self, attempt: u32, sample: f64) -> Duration {
        let initial = self.initial.as_secs_f64();
        let max = self.max.as_secs_f64().max(initial);
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let base = (initial * self.factor.max(1.0).powi(exponent)).min(max);
        let sample = if sample.is_nan() {
            0.0
        } else {
            sample.clamp(0.0, 1.0)
        };
        let stretch = 1.0 + self.jitter.max(0.0) * sample;
        let secs = (base * stretch).clamp(initial, max);
        if secs.is_finite() {
            Duration::from_secs_f64(secs)
        } else {
            self.max
        }
    }

    /// The delay before the next attempt (with `sample` as [`Backoff::delay`]'s), counting one
    /// more failure.
    pub fn next_delay(&mut self, sample: f64) -> Duration {
        let delay = self.delay(self.attempt, sample);
        self.attempt = self.attempt.saturating_add(1);
        delay
    }

    /// Consecutive failures counted since the last [`Backoff::reset`].
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Forgets the failures: the next delay is `initial` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grows_exponentially_from_800ms_and_caps_at_30s() {
        let mut backoff = Backoff::default();
        let delays: Vec<Duration> = (0..8).map(|_| backoff.next_delay(0.0)).collect();
        assert_eq!(
            delays,
            [
                ms(800),
                ms(1600),
                ms(3200),
                ms(6400),
                ms(12800),
                ms(25600),
                ms(30000),
                ms(30000)
            ]
        );
        assert_eq!(backoff.attempts(), 8);
        assert_eq!(backoff.delay(u32::MAX, 0.5), ms(30000));
    }

    #[test]
    fn jitter_stretches_within_bounds() {
        let backoff = Backoff::default();
        assert_eq!(backoff.delay(0, 1.0), ms(1000));
        assert_eq!(backoff.delay(1, 0.5), ms(1800));
        assert_eq!(backoff.delay(5, 1.0), ms(30000), "never over the cap");
        assert_eq!(backoff.delay(0, -3.0), ms(800), "samples are clamped");
        assert_eq!(backoff.delay(0, f64::NAN), ms(800));
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::default();
        for _ in 0..5 {
            backoff.next_delay(0.0);
        }
        backoff.reset();
        assert_eq!(backoff.next_delay(0.0), ms(800));
        assert_eq!(backoff.next_delay(0.0), ms(1600));
    }

    #[test]
    fn odd_settings_stay_sane() {
        let backoff = Backoff {
            initial: ms(100),
            max: ms(50),
            factor: 0.5,
            jitter: -1.0,
            ..Backoff::default()
        };
        assert_eq!(backoff.delay(3, 0.9), ms(100), "max below initial: initial");
    }
}
