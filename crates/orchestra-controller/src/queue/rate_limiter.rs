//! Rate limiters: how long a key waits before it is handed out again after a failure.
//!
//! Pure policies over an explicit `now`, so that tests assert exact delays:
//! [`ItemExponentialBackoff`] (per key, doubling, reset by `forget`), [`TokenBucket`] (overall,
//! `qps` with a `burst`), and [`MaxOf`], which waits as long as the slowest of its parts.
//! [`default_controller_rate_limiter`] is client-go's default: per-key 5 ms doubling to 1000 s,
//! and 10 qps with a burst of 100 over all keys.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// Decides how long a key waits before it is retried.
pub trait RateLimiter<K>: Send + 'static {
    /// The delay before `key` is retried, at `now`; counts one more retry of `key`.
    fn when(&mut self, key: &K, now: Instant) -> Duration;
    /// Forgets `key`'s retries (after a success): its next delay starts over.
    fn forget(&mut self, key: &K);
    /// How many times `key` was retried since it was last forgotten.
    fn num_requeues(&self, key: &K) -> u32;
}

/// Per-key exponential backoff: the `n`-th retry of a key (from 0) waits `base * 2^n`, capped
/// at `max`. Keys are independent; [`RateLimiter::forget`] resets one.
#[derive(Clone, Debug)]
pub struct ItemExponentialBackoff<K> {
    base: Duration,
    max: Duration,
    failures: HashMap<K, u32>,
}

impl<K: Eq + Hash> ItemExponentialBackoff<K> {
    /// Backoff from `base` doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        ItemExponentialBackoff {
            base,
            max,
            failures: HashMap::new(),
        }
    }

    /// The delay of the `n`-th retry (from 0), without counting it. Pure.
    pub fn delay(&self, n: u32) -> Duration {
        // 2^n overflows any Duration long before n reaches 64; the cap applies first.
        let factor = 2u32.checked_pow(n).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .map_or(self.max, |d| d.min(self.max))
    }
}

impl<K: Eq + Hash + Clone + Send + 'static> RateLimiter<K> for ItemExponentialBackoff<K> {
    fn when(&mut self, key: &K, _now: Instant) -> Duration {
        let n = self.failures.entry(key.clone()).or_insert(0);
        let attempt = *n;
        *n = n.saturating_add(1);
        self.delay(attempt)
    }

    fn forget(&mut self, key: &K) {
        self.failures.remove(key);
    }

    fn num_requeues(&self, key: &K) -> u32 {
        self.failures.get(key).copied().unwrap_or(0)
    }
}

/// An overall token bucket: `burst` retries at once, then `qps` per second, whatever the key
/// (Go's `rate.Limiter` with reservations: a retry beyond the tokens waits for its token).
#[derive(Clone, Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A bucket of `burst` tokens refilled at `qps` per second (a `qps` of 0 or less never
    /// refills: every retry past the burst would wait forever, so it is clamped to a tiny rate).
    pub fn new(qps: f64, burst: u32) -> Self {
        TokenBucket {
            qps: if qps > 0.0 { qps } else { 1e-9 },
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: None,
        }
    }

    /// Takes one token at `now`; the wait until that token exists (zero when one was left).
    pub fn reserve(&mut self, now: Instant) -> Duration {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        }
        if self.last.is_none_or(|last| now > last) {
            self.last = Some(now);
        }
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.qps)
        }
    }
}

impl<K: Send + 'static> RateLimiter<K> for TokenBucket {
    fn when(&mut self, _key: &K, now: Instant) -> Duration {
        self.reserve(now)
    }

    fn forget(&mut self, _key: &K) {}

    fn num_requeues(&self, _key: &K) -> u32 {
        0
    }
}

/// Several limiters at once: a key waits the longest of their delays; retries count as the
/// largest count any of them keeps.
pub struct MaxOf<K> {
    limiters: Vec<Box<dyn RateLimiter<K>>>,
}

impl<K> std::fmt::Debug for MaxOf<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaxOf")
            .field("limiters", &self.limiters.len())
            .finish()
    }
}

impl<K: 'static> MaxOf<K> {
    /// The combination of `limiters`.
    pub fn new(limiters: Vec<Box<dyn RateLimiter<K>>>) -> Self {
        MaxOf { limiters }
    }
}

impl<K: Send + 'static> RateLimiter<K> for MaxOf<K> {
    fn when(&mut self, key: &K, now: Instant) -> Duration {
        // Every limiter must count the retry (the bucket spends a token), so no short cut.
        self.limiters
            .iter_mut()
            .map(|l| l.when(key, now))
            .max()
            .unwrap_or(Duration::ZERO)
    }

    fn forget(&mut self, key: &K) {
        for limiter in &mut self.limiters {
            limiter.forget(key);
        }
    }

    fn num_requeues(&self, key: &K) -> u32 {
        self.limiters
            .iter()
            .map(|l| l.num_requeues(key))
            .max()
            .unwrap_or(0)
    }
}

/// The per-key backoff of the default limiter: starts at 5 ms.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(5);
/// The per-key backoff of the default limiter: at most 1000 s.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(1000);
/// The overall rate of the default limiter: 10 retries per second...
pub const DEFAULT_QPS: f64 = 10.0;
/// ... after a burst of 100.
pub const DEFAULT_BURST: u32 = 100;

/// client-go's `DefaultControllerRateLimiter`: the longer of per-key exponential backoff (5 ms
/// doubling to 1000 s) and an overall token bucket (10 qps, burst 100).
pub fn default_controller_rate_limiter<K>() -> MaxOf<K>
where
    K: Eq + Hash + Clone + Send + 'static,
{
    MaxOf::new(vec![
        Box::new(ItemExponentialBackoff::<K>::new(
            DEFAULT_BACKOFF_BASE,
            DEFAULT_BACKOFF_MAX,
        )),
        Box::new(TokenBucket::new(DEFAULT_QPS, DEFAULT_BURST)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn item_backoff_doubles_per_key_caps_and_resets() {
        let now = Instant::now();
        let mut backoff = ItemExponentialBackoff::new(ms(5), Duration::from_secs(1000));
        let delays: Vec<Duration> = (0..5).map(|_| backoff.when(&"a", now)).collect();
        assert_eq!(delays, [ms(5), ms(10), ms(20), ms(40), ms(80)]);
        assert_eq!(backoff.when(&"b", now), ms(5), "keys are independent");
        assert_eq!(backoff.num_requeues(&"a"), 5);
        for _ in 0..30 {
            backoff.when(&"a", now);
        }
        assert_eq!(backoff.when(&"a", now), Duration::from_secs(1000), "capped");
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(1000));
        backoff.forget(&"a");
        assert_eq!(backoff.num_requeues(&"a"), 0);
        assert_eq!(backoff.when(&"a", now), ms(5), "forget starts over");
    }

    #[test]
    fn token_bucket_allows_a_burst_then_paces() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 3);
        let burst: Vec<Duration> = (0..3).map(|_| bucket.reserve(start)).collect();
        assert_eq!(burst, [Duration::ZERO; 3]);
        assert_eq!(bucket.reserve(start), ms(100));
        assert_eq!(bucket.reserve(start), ms(200), "reservations queue up");
        // 250 ms later the two owed tokens have accrued, and half of the next one.
        assert_eq!(bucket.reserve(start + ms(250)), ms(50));
        // After a long pause the bucket is full again, but no fuller than the burst.
        let later = start + Duration::from_secs(60);
        let refilled: Vec<Duration> = (0..4).map(|_| bucket.reserve(later)).collect();
        assert_eq!(
            refilled,
            [Duration::ZERO, Duration::ZERO, Duration::ZERO, ms(100)]
        );
    }

    #[test]
    fn default_limiter_is_the_max_of_both() {
        let now = Instant::now();
        let mut limiter = default_controller_rate_limiter::<u32>();
        // The first 100 retries of distinct keys fit in the burst: per-key backoff rules.
        for key in 0..100 {
            assert_eq!(limiter.when(&key, now), ms(5));
        }
        // The 101st must wait for a token (100 ms at 10 qps), longer than its 5 ms backoff.
        assert_eq!(limiter.when(&100, now), ms(100));
        assert_eq!(limiter.num_requeues(&100), 1);
        // Far later the bucket is full again and the per-key backoff dominates.
        let later = now + Duration::from_secs(3600);
        for _ in 0..11 {
            limiter.when(&7, later);
        }
        assert_eq!(limiter.when(&7, later), ms(5 << 12));
        limiter.forget(&7);
        assert_eq!(limiter.when(&7, later), ms(5));
    }
}
