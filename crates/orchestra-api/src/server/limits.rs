//! Limits against abuse, per identity: a token bucket of requests per user ([`RateLimiter`])
//! and a cap on each user's open watches ([`WatchLimiter`]), with the settings the server
//! takes them from ([`Limits`]).
//!
//! Both limiters are pure bookkeeping: the caller passes the time in ([`RateLimiter::check`]
//! takes an `Instant`), so that tests decide exactly what a clock reads, and nothing here
//! sleeps or spawns. One user over a limit changes nothing for another: each has its own
//! bucket and its own watch count, which is what keeps a flooding client from starving the
//! others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::auth::{GROUP_MASTERS, UserInfo};
use crate::registry::ApiError;

/// The server's limits against abuse (`ServerOptions::limits`). The default limits nothing
/// per user (in-process tests, embedders); `orchestra server` turns them on.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Each user's sustained requests per second (`None`: unlimited). A watch counts as one
    /// request when it opens.
    pub requests_per_second: Option<f64>,
    /// How many requests a user may send at once above the sustained rate (the bucket's size,
    /// at least 1).
    pub burst: u32,
    /// How many watches one user may hold open at once (`None`: unlimited).
    pub max_watches_per_user: Option<usize>,
    /// Users in these groups are not rate- or watch-limited (administrators, as Kubernetes'
    /// `exempt` priority level).
    pub exempt_groups: Vec<String>,
    /// The largest page a list returns: a list asking for a larger `limit` gets this many
    /// items and a continue token (an unpaged list, `limit` 0, is served whole).
    pub max_list_page: usize,
    /// How long a client may take to send a request's headers (HTTP/1; and, on a new
    /// connection, its first bytes, HTTP/2 included) before the connection is closed.
    pub header_read_timeout: Duration,
    /// HTTP/2: how often an idle connection is pinged; a peer that does not answer within
    /// the same time is disconnected.
    pub http2_keep_alive: Duration,
    /// HTTP/2: the most requests (watches included) open at once on one connection.
    pub http2_max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            requests_per_second: None,
            burst: 1,
            max_watches_per_user: None,
            exempt_groups: vec![GROUP_MASTERS.to_owned()],
            max_list_page: 10_000,
            header_read_timeout: Duration::from_secs(30),
            http2_keep_alive: Duration::from_secs(30),
            http2_max_concurrent_streams: 1000,
        }
    }
}

impl Limits {
    /// Whether `user` is exempt from the per-user limits.
    pub fn is_exempt(&self, user: &UserInfo) -> bool {
        self.exempt_groups.iter().any(|group| user.in_group(group))
    }
}

/// Why limits are not valid.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LimitsError {
    /// The request rate is zero, negative or not a number.
    #[error("the request rate per user must be a positive number of requests per second, not {0}")]
    Rate(f64),
    /// The burst is zero.
    #[error("the request burst per user must be at least 1")]
    Burst,
    /// The watch limit is zero.
    #[error("the watch limit per user must be at least 1")]
    Watches,
    /// The list page limit is zero.
    #[error("the largest list page must be at least 1 item")]
    ListPage,
}

impl Limits {
    /// Checks the settings (the server refuses to start on invalid ones).
    pub fn validate(&self) -> Result<(), LimitsError> {
        if let Some(rate) = self.requests_per_second
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(LimitsError::Rate(rate));
        }
        if self.burst == 0 {
            return Err(LimitsError::Burst);
        }
        if self.max_watches_per_user == Some(0) {
            return Err(LimitsError::Watches);
        }
        if self.max_list_page == 0 {
            return Err(LimitsError::ListPage);
        }
        Ok(())
    }
}

/// One user's bucket: `tokens` at `updated`, refilled at the limiter's rate up to its burst.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// The tokens at `now` (a clock read earlier than `updated` refills nothing).
    fn refilled(&self, now: Instant, rate: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        (self.tokens + elapsed * rate).min(burst)
    }
}

/// How many idle users' buckets are kept before full ones are dropped (a full bucket is the
/// same as none, so dropping it changes no decision; this only bounds the memory).
const PRUNE_ABOVE: usize = 4096;

/// A token bucket per user: `burst` requests at once, `rate` a second sustained. See the
/// [module docs](self).
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter of `rate` requests a second per user, `burst` at once (`rate` positive and
    /// `burst` at least 1: [`Limits::validate`] checks them).
    pub fn new(rate: f64, burst: u32) -> Self {
        RateLimiter {
            rate,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::default(),
        }
    }

    /// Takes one token from `user`'s bucket at time `now`: `Ok` if there was one, else `Err`
    /// with how long until there is.
    pub fn check(&self, user: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > PRUNE_ABOVE {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, bucket| bucket.refilled(now, rate, burst) < burst);
        }
        let bucket = buckets.entry(user.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let tokens = bucket.refilled(now, self.rate, self.burst);
        // The clock never runs backwards for the bucket: a late caller's earlier reading
        // refills nothing and does not rewind `updated`.
        bucket.updated = bucket.updated.max(now);
        if tokens >= 1.0 {
            bucket.tokens = tokens - 1.0;
            Ok(())
        } else {
            bucket.tokens = tokens;
            Err(Duration::from_secs_f64((1.0 - tokens) / self.rate))
        }
    }

    /// How many users have a bucket now (for tests of the memory bound).
    pub fn tracked_users(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The whole seconds a client is told to wait (`Retry-After`): rounded up, at least 1.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    let whole = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    whole.max(1)
}

/// Open watches counted per user, at most `max` each. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct WatchLimiter {
    max: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl WatchLimiter {
    /// At most `max` open watches per user.
    pub fn new(max: usize) -> Self {
        WatchLimiter {
            max,
            open: Arc::default(),
        }
    }

    /// Counts a watch of `user` as open until the permit is dropped; `Err` with the limit
    /// when the user holds `max` already.
    pub fn try_open(&self, user: &str) -> Result<WatchPermit, usize> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(user.to_owned()).or_default();
        if *count >= self.max {
            return Err(self.max);
        }
        *count += 1;
        Ok(WatchPermit {
            open: self.open.clone(),
            user: user.to_owned(),
        })
    }

    /// How many watches `user` holds open.
    pub fn open(&self, user: &str) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(user)
            .copied()
            .unwrap_or(0)
    }
}

/// One open watch, counted against its user until dropped.
#[derive(Debug)]
pub struct WatchPermit {
    open: Arc<Mutex<HashMap<String, usize>>>,
    user: String,
}

impl Drop for WatchPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.user);
            }
        }
    }
}

/// What a running server enforces: its [`Limits`] and the limiters built from them.
#[derive(Debug)]
pub(crate) struct Limiters {
    pub(crate) limits: Limits,
    rate: Option<RateLimiter>,
    watches: Option<WatchLimiter>,
}

impl Limiters {
    pub(crate) fn new(limits: Limits) -> Self {
        Limiters {
            rate: limits
                .requests_per_second
                .map(|rate| RateLimiter::new(rate, limits.burst)),
            watches: limits.max_watches_per_user.map(WatchLimiter::new),
            limits,
        }
    }

    /// Admits one request of `user` at `now`, or refuses it with 429 and when to retry.
    pub(crate) fn admit(&self, user: &UserInfo, now: Instant) -> Result<(), ApiError> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        if self.limits.is_exempt(user) {
            return Ok(());
        }
        rate.check(&user.name, now).map_err(|wait| {
            let seconds = retry_after_seconds(wait);
            ApiError::TooManyRequests {
                message: format!(
                    "too many requests from user \"{}\": over {} requests per second (burst {}); retry in {seconds} s",
                    user.name, rate.rate, self.limits.burst
                ),
                retry_after_seconds: seconds,
            }
        })
    }

    /// Counts a watch of `user` as open while the permit lives (`None`: not counted), or
    /// refuses it with 429 when the user holds the most watches allowed.
    pub(crate) fn open_watch(&self, user: &UserInfo) -> Result<Option<WatchPermit>, ApiError> {
        match &self.watches {
            Some(watches) if !self.limits.is_exempt(user) => watches
                .try_open(&user.name)
                .map(Some)
                .map_err(|max| ApiError::TooManyRequests {
                    message: format!(
                        "user \"{}\" has {max} watches open, the most allowed per user: close one first",
                        user.name
                    ),
                    retry_after_seconds: 1,
                }),
            _ => Ok(None),
        }
    }

    /// The page size a list asking for `limit` items gets (0, no paging, stays 0).
    pub(crate) fn page(&self, limit: usize) -> usize {
        limit.min(self.limits.max_list_page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, millis: u64) -> Instant {
        start + Duration::from_millis(millis)
    }

    #[test]
    fn a_bucket_allows_the_burst_then_the_rate() {
        let limiter = RateLimiter::new(2.0, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check("alice", t0), Ok(()));
        }
        // Empty: the next token comes in half a second at 2/s.
        assert_eq!(limiter.check("alice", t0), Err(Duration::from_millis(500)));
        assert_eq!(
            limiter.check("alice", at(t0, 250)),
            Err(Duration::from_millis(250))
        );
        assert_eq!(limiter.check("alice", at(t0, 500)), Ok(()));
        assert!(limiter.check("alice", at(t0, 500)).is_err());
        // Ten idle seconds refill to the burst, never beyond.
        let later = at(t0, 10_500);
        for _ in 0..3 {
            assert_eq!(limiter.check("alice", later), Ok(()));
        }
        assert!(limiter.check("alice", later).is_err());
    }

    #[test]
    fn one_user_over_the_limit_leaves_the_others_alone() {
        let limiter = RateLimiter::new(1.0, 2);
        let t0 = Instant::now();
        let flood: Vec<_> = (0..100).map(|_| limiter.check("flooder", t0)).collect();
        assert_eq!(flood.iter().filter(|r| r.is_ok()).count(), 2);
        assert_eq!(limiter.check("bob", t0), Ok(()));
        assert_eq!(limiter.check("bob", t0), Ok(()));
        assert!(limiter.check("bob", t0).is_err());
    }

    #[test]
    fn an_earlier_clock_reading_neither_refills_nor_rewinds() {
        let limiter = RateLimiter::new(1.0, 1);
        let t0 = Instant::now();
        assert_eq!(limiter.check("alice", at(t0, 1000)), Ok(()));
        // A request that read the clock before the last one: nothing refilled.
        assert_eq!(limiter.check("alice", t0), Err(Duration::from_secs(1)));
        assert_eq!(limiter.check("alice", at(t0, 2000)), Ok(()));
    }

    #[test]
    fn idle_full_buckets_are_dropped_to_bound_memory() {
        let limiter = RateLimiter::new(1.0, 5);
        let t0 = Instant::now();
        for i in 0..=PRUNE_ABOVE {
            limiter.check(&format!("user-{i}"), t0).unwrap();
        }
        assert_eq!(limiter.tracked_users(), PRUNE_ABOVE + 1);
        // Ten seconds on, every bucket but the newest user's is full again: dropped.
        limiter.check("late", at(t0, 10_000)).unwrap();
        assert_eq!(limiter.tracked_users(), 1);
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_millis(2000)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn watches_are_counted_per_user_until_their_permits_drop() {
        let limiter = WatchLimiter::new(2);
        let a = limiter.try_open("alice").unwrap();
        let b = limiter.try_open("alice").unwrap();
        assert_eq!(limiter.try_open("alice").unwrap_err(), 2);
        let bob = limiter.try_open("bob").unwrap();
        assert_eq!((limiter.open("alice"), limiter.open("bob")), (2, 1));
        drop(a);
        let c = limiter.try_open("alice").unwrap();
        drop((b, c, bob));
        assert_eq!((limiter.open("alice"), limiter.open("bob")), (0, 0));
        assert!(limiter.open.lock().unwrap().is_empty());
    }

    #[test]
    fn invalid_settings_are_named() {
        let ok = Limits {
            requests_per_second: Some(10.0),
            burst: 20,
            max_watches_per_user: Some(100),
            ..Limits::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        let bad = |limits: Limits| limits.validate().unwrap_err().to_string();
        assert!(
            bad(Limits {
                requests_per_second: Some(0.0),
                ..ok.clone()
            })
            .contains("positive number")
        );
        assert!(
            bad(Limits {
                requests_per_second: Some(f64::NAN),
                ..ok.clone()
            })
            .contains("positive number")
        );
        assert!(
            bad(Limits {
                burst: 0,
                ..ok.clone()
            })
            .contains("burst")
        );
        assert!(
            bad(Limits {
                max_watches_per_user: Some(0),
                ..ok.clone()
            })
            .contains("watch limit")
        );
        assert!(
            bad(Limits {
                max_list_page: 0,
                ..ok
            })
            .contains("list page")
        );
    }

    #[test]
    fn the_server_limiters_refuse_with_429_naming_the_user_and_exempt_admins() {
        let limiters = Limiters::new(Limits {
            requests_per_second: Some(0.5),
            burst: 1,
            max_watches_per_user: Some(1),
            max_list_page: 500,
            ..Limits::default()
        });
        let bob = UserInfo::new("bob", ["system:authenticated"]);
        let admin = UserInfo::new("admin", [GROUP_MASTERS]);
        let t0 = Instant::now();
        limiters.admit(&bob, t0).unwrap();
        let err = limiters.admit(&bob, t0).unwrap_err();
        assert_eq!(err.code(), 429);
        assert!(err.to_string().contains("user \"bob\""), "{err}");
        assert!(matches!(
            err,
            ApiError::TooManyRequests {
                retry_after_seconds: 2,
                ..
            }
        ));
        for _ in 0..10 {
            limiters.admit(&admin, t0).unwrap();
        }
        let watch = limiters.open_watch(&bob).unwrap();
        assert!(watch.is_some());
        assert_eq!(limiters.open_watch(&bob).unwrap_err().code(), 429);
        assert!(limiters.open_watch(&admin).unwrap().is_none());
        drop(watch);
        assert!(limiters.open_watch(&bob).unwrap().is_some());
        assert_eq!(
            (limiters.page(0), limiters.page(10), limiters.page(9000)),
            (0, 10, 500)
        );
    }

    #[test]
    fn administrators_are_exempt_by_default() {
        let limits = Limits::default();
        assert!(limits.is_exempt(&UserInfo::new("admin", [GROUP_MASTERS])));
        assert!(!limits.is_exempt(&UserInfo::new("bob", ["system:authenticated"])));
    }
}
