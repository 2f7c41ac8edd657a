//! [`RetryPolicy`]: when a [`RemoteClient`](super::RemoteClient) sends a throttled request
//! again. The server's rate and watch limiters refuse a request (429 `TooManyRequests`, gRPC
//! `RESOURCE_EXHAUSTED` with `retry-after`) before it is authorized or handled, so a refused
//! request did nothing and sending it again is safe whatever it is, a create included. No
//! other error is retried: any other failure may come after the request took effect.
//!
//! The wait is the server's `Retry-After` stretched by a random fraction of it (up to
//! [`jitter`](RetryPolicy::jitter), a half by default): clients throttled in the same second
//! would otherwise all come back in the same instant and be throttled together again.
//!
//! The decision ([`RetryPolicy::delay`]) is pure, the random sample passed in; the client
//! draws it and sleeps on tokio's clock, so that tests with paused time see exactly the
//! waits.

use std::time::Duration;

use crate::registry::ApiError;

/// How a [`RemoteClient`](super::RemoteClient) retries throttled requests: after the server's
/// `Retry-After` plus a random part of it ([`jitter`](Self::jitter)), at most
/// [`max_retries`](Self::max_retries) times, and only while the server asks for at most
/// [`max_delay`](Self::max_delay). The default retries 4 times, when the server asks for at
/// most 10 s, waiting 1 to 1.5 times what it asks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryPolicy {
    /// How many times one call is sent again (0: never).
    pub max_retries: u32,
    /// The longest `Retry-After` the client accepts: a server asking for more (a user far
    /// over its rate) gets the error back to the caller at once, rather than a client stuck
    /// waiting.
    pub max_delay: Duration,
    /// The most a wait is stretched beyond `Retry-After`, as a fraction of it (0.5: a
    /// `Retry-After` of 2 s waits 2 to 3 s); 0: exactly `Retry-After`. Negative values count
    /// as 0.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            max_delay: Duration::from_secs(10),
            jitter: 0.5,
        }
    }
}

impl RetryPolicy {
    /// Never retry: every 429 goes back to the caller.
    pub fn never() -> Self {
        RetryPolicy {
            max_retries: 0,
            max_delay: Duration::ZERO,
            jitter: 0.0,
        }
    }

    /// How long to wait before sending a call again that failed with `error` after `retries`
    /// earlier retries; `None`: do not send it again. `sample` is a random number in
    /// `[0, 1]` (clamped; not a number counts as 0) choosing where in the jitter the wait
    /// falls.
    pub fn delay(&self, error: &ApiError, retries: u32, sample: f64) -> Option<Duration> {
        let ApiError::TooManyRequests {
            retry_after_seconds,
            ..
        } = error
        else {
            return None;
        };
        // A server always asks for at least a second (`retry_after_seconds` rounds up).
        let wait = Duration::from_secs((*retry_after_seconds).max(1));
        if retries >= self.max_retries || wait > self.max_delay {
            return None;
        }
        let sample = if sample.is_nan() {
            0.0
        } else {
            sample.clamp(0.0, 1.0)
        };
        let stretch = self.jitter.max(0.0) * sample;
        // A stretch too large for a Duration (an absurd jitter) leaves the wait as asked.
        let extra = Duration::try_from_secs_f64(wait.as_secs_f64() * stretch).unwrap_or_default();
        Some(wait.saturating_add(extra))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttled(seconds: u64) -> ApiError {
        ApiError::TooManyRequests {
            message: "too many requests".into(),
            retry_after_seconds: seconds,
        }
    }

    #[test]
    fn a_429_is_retried_after_its_retry_after_a_bounded_number_of_times() {
        let policy = RetryPolicy {
            max_retries: 2,
            max_delay: Duration::from_secs(5),
            jitter: 0.0,
        };
        let delay = |error, retries| policy.delay(&error, retries, 0.7);
        assert_eq!(delay(throttled(3), 0), Some(Duration::from_secs(3)));
        assert_eq!(delay(throttled(3), 1), Some(Duration::from_secs(3)));
        assert_eq!(delay(throttled(3), 2), None, "two retries at most");
        assert_eq!(delay(throttled(5), 0), Some(Duration::from_secs(5)));
        assert_eq!(delay(throttled(6), 0), None, "longer than the client waits");
        assert_eq!(delay(throttled(0), 0), Some(Duration::from_secs(1)));
        assert_eq!(RetryPolicy::never().delay(&throttled(1), 0, 0.5), None);
    }

    #[test]
    fn the_wait_is_stretched_by_up_to_the_jitter() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.jitter, 0.5);
        let wait = |seconds, sample| policy.delay(&throttled(seconds), 0, sample).unwrap();
        assert_eq!(
            wait(2, 0.0),
            Duration::from_secs(2),
            "never sooner than asked"
        );
        assert_eq!(wait(2, 0.5), Duration::from_millis(2500));
        assert_eq!(
            wait(2, 1.0),
            Duration::from_secs(3),
            "at most half as long again"
        );
        assert_eq!(wait(1, 0.25), Duration::from_millis(1125));
        // Samples are clamped; not a number is 0.
        assert_eq!(wait(2, 7.0), Duration::from_secs(3));
        assert_eq!(wait(2, -1.0), Duration::from_secs(2));
        assert_eq!(wait(2, f64::NAN), Duration::from_secs(2));
        // max_delay bounds what the server asks, before the jitter: 10 s asked is accepted
        // and may wait 15 s; 11 s asked is refused whatever the sample.
        assert_eq!(wait(10, 1.0), Duration::from_secs(15));
        assert_eq!(policy.delay(&throttled(11), 0, 0.0), None);
        // A negative jitter is none; an absurd one leaves the wait as asked.
        let none = RetryPolicy {
            jitter: -1.0,
            ..policy
        };
        assert_eq!(
            none.delay(&throttled(2), 0, 1.0),
            Some(Duration::from_secs(2))
        );
        let absurd = RetryPolicy {
            jitter: f64::MAX,
            ..policy
        };
        assert_eq!(
            absurd.delay(&throttled(2), 0, 1.0),
            Some(Duration::from_secs(2))
        );
    }

    #[test]
    fn different_samples_spread_clients_throttled_together() {
        // Ten clients throttled in the same instant, each with its own sample: their waits
        // differ, all within [Retry-After, 1.5 x Retry-After].
        let policy = RetryPolicy::default();
        let waits: std::collections::BTreeSet<Duration> = (0..10)
            .map(|i| policy.delay(&throttled(1), 0, f64::from(i) / 9.0).unwrap())
            .collect();
        assert_eq!(waits.len(), 10);
        assert!(
            waits
                .iter()
                .all(|w| *w >= Duration::from_secs(1) && *w <= Duration::from_millis(1500))
        );
    }

    #[test]
    fn nothing_but_a_429_is_retried() {
        let policy = RetryPolicy::default();
        for error in [
            ApiError::Conflict("changed".into()),
            ApiError::Forbidden("no".into()),
            ApiError::TooLarge {
                kind: "ConfigMap",
                name: "big".into(),
                size: 10,
                limit: 5,
            },
            ApiError::Internal(orchestra_store::StoreError::Other("unavailable".into())),
        ] {
            assert_eq!(policy.delay(&error, 0, 0.5), None, "{error}");
        }
    }
}
