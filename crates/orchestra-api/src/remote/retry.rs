//! [`RetryPolicy`]: when a [`RemoteClient`](super::RemoteClient) sends a throttled request
//! again. The server's rate and watch limiters refuse a request (429 `TooManyRequests`, gRPC
//! `RESOURCE_EXHAUSTED` with `retry-after`) before it is authorized or handled, so a refused
//! request did nothing and sending it again is safe whatever it is, a create included. No
//! other error is retried: any other failure may come after the request took effect.
//!
//! The decision ([`RetryPolicy::delay`]) is pure; the client sleeps on tokio's clock, so that
//! tests with paused time see exactly the waits.

use std::time::Duration;

use crate::registry::ApiError;

/// How a [`RemoteClient`](super::RemoteClient) retries throttled requests: after the server's
/// `Retry-After`, at most [`max_retries`](Self::max_retries) times, and only while the server
/// asks for at most [`max_delay`](Self::max_delay). The default retries 4 times, waiting up
/// to 10 s each time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How many times one call is sent again (0: never).
    pub max_retries: u32,
    /// The longest wait the client accepts: a server asking for more (a user far over its
    /// rate) gets the error back to the caller at once, rather than a client stuck waiting.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// Never retry: every 429 goes back to the caller.
    pub fn never() -> Self {
        RetryPolicy {
            max_retries: 0,
            max_delay: Duration::ZERO,
        }
    }

    /// How long to wait before sending a call again that failed with `error` after `retries`
    /// earlier retries; `None`: do not send it again.
    pub fn delay(&self, error: &ApiError, retries: u32) -> Option<Duration> {
        let ApiError::TooManyRequests {
            retry_after_seconds,
            ..
        } = error
        else {
            return None;
        };
        // A server always asks for at least a second (`retry_after_seconds` rounds up).
        let wait = Duration::from_secs((*retry_after_seconds).max(1));
        (retries < self.max_retries && wait <= self.max_delay).then_some(wait)
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
        };
        assert_eq!(policy.delay(&throttled(3), 0), Some(Duration::from_secs(3)));
        assert_eq!(policy.delay(&throttled(3), 1), Some(Duration::from_secs(3)));
        assert_eq!(policy.delay(&throttled(3), 2), None, "two retries at most");
        assert_eq!(policy.delay(&throttled(5), 0), Some(Duration::from_secs(5)));
        assert_eq!(
            policy.delay(&throttled(6), 0),
            None,
            "longer than the client waits"
        );
        assert_eq!(policy.delay(&throttled(0), 0), Some(Duration::from_secs(1)));
        assert_eq!(RetryPolicy::never().delay(&throttled(1), 0), None);
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
            assert_eq!(policy.delay(&error, 0), None, "{error}");
        }
    }
}
