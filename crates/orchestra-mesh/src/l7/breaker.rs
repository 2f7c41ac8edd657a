//! [`CircuitBreaker`]: ejects an endpoint after consecutive failures and probes it again after
//! a backoff that doubles up to a limit.
//!
//! Written here because tower has no circuit breaker. It works with tower's balancer through
//! readiness: an ejected endpoint reports `Pending` from `poll_ready` (and wakes its task when
//! the backoff ends), so `tower::balance::p2c` moves it out of its ready set and picks among
//! the others. When the backoff has passed, the endpoint is ready for exactly one probe
//! request; its success closes the breaker, its failure ejects the endpoint again for twice as
//! long. The decisions are in the pure [`BreakerState`]; the service only applies them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Sleep};
use tower::{Layer, Service};

/// When an endpoint is ejected and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that eject an endpoint (default 7).
    pub failures: u32,
    /// The first ejection's length (default 1 s); each failed probe doubles it.
    pub base_backoff: Duration,
    /// The longest ejection (default 60 s).
    pub max_backoff: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures: 7,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// Whether one endpoint may take a request now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Yes (closed, or the probe of a half-open breaker).
    Ready,
    /// No: ejected until then.
    EjectedUntil(Instant),
    /// No: a probe is in flight; wait for its result.
    ProbeInFlight,
}

/// The breaker of one endpoint as a pure state machine (time is passed in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerState {
    config: BreakerConfig,
    phase: Phase,
    /// The next ejection's length.
    backoff: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Closed { consecutive: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

impl BreakerState {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        BreakerState {
            config,
            phase: Phase::Closed { consecutive: 0 },
            backoff: config.base_backoff,
        }
    }

    /// Whether a request may be sent at `now`; when a backoff has ended this turns the breaker
    /// half-open.
    pub fn admit(&mut self, now: Instant) -> Admit {
        match self.phase {
            Phase::Closed { .. } | Phase::HalfOpen { probing: false } => Admit::Ready,
            Phase::HalfOpen { probing: true } => Admit::ProbeInFlight,
            Phase::Open { until } if now >= until => {
                self.phase = Phase::HalfOpen { probing: false };
                Admit::Ready
            }
            Phase::Open { until } => Admit::EjectedUntil(until),
        }
    }

    /// Records that a request was sent (after [`admit`](Self::admit) said ready).
    pub fn on_send(&mut self) {
        if let Phase::HalfOpen { probing } = &mut self.phase {
            *probing = true;
        }
    }

    /// Records a request's outcome at `now`; returns whether this ejected the endpoint.
    pub fn on_result(&mut self, failed: bool, now: Instant) -> bool {
        match (self.phase, failed) {
            (_, false) => {
                self.phase = Phase::Closed { consecutive: 0 };
                self.backoff = self.config.base_backoff;
                false
            }
            (Phase::Closed { consecutive }, true) => {
                let consecutive = consecutive.saturating_add(1);
                if consecutive >= self.config.failures {
                    self.eject(now);
                    true
                } else {
                    self.phase = Phase::Closed { consecutive };
                    false
                }
            }
            (Phase::HalfOpen { .. }, true) => {
                self.eject(now);
                true
            }
            // A late failure of a request sent before the ejection: already counted.
            (Phase::Open { .. }, true) => false,
        }
    }

    fn eject(&mut self, now: Instant) {
        self.phase = Phase::Open {
            until: now + self.backoff,
        };
        self.backoff = (self.backoff * 2).min(self.config.max_backoff);
    }

    /// Whether the endpoint is ejected (open, or half-open waiting for its probe).
    pub fn is_ejected(&self) -> bool {
        !matches!(self.phase, Phase::Closed { .. })
    }
}

/// Decides whether an outcome counts as an endpoint failure.
pub trait Classify<Res, Err>: Clone {
    /// True when `result` is a failure of the endpoint.
    fn is_failure(&self, result: &Result<Res, Err>) -> bool;
}

/// Endpoint failures for HTTP: any error (no connection, a broken one) and 5xx responses.
#[derive(Clone, Copy, Debug, Default)]
pub struct HttpFailures;

impl<B, Err> Classify<http::Response<B>, Err> for HttpFailures {
    fn is_failure(&self, result: &Result<http::Response<B>, Err>) -> bool {
        match result {
            Ok(response) => response.status().is_server_error(),
            Err(_) => true,
        }
    }
}

struct Shared {
    state: BreakerState,
    /// The task waiting for a probe's result.
    waiter: Option<Waker>,
}

/// Wraps an endpoint's service with a circuit breaker (see the module docs).
pub struct CircuitBreaker<S, C = HttpFailures> {
    inner: S,
    classify: C,
    shared: Arc<Mutex<Shared>>,
    sleep: Option<Pin<Box<Sleep>>>,
    ejections: Arc<AtomicU64>,
}

impl<S: fmt::Debug, C> fmt::Debug for CircuitBreaker<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // Every critical section leaves the state whole; a poisoned lock still holds a valid one.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<S, C> CircuitBreaker<S, C> {
    /// A breaker in front of `inner`; `ejections` counts ejections (shared with metrics).
    pub fn new(inner: S, config: BreakerConfig, classify: C, ejections: Arc<AtomicU64>) -> Self {
        CircuitBreaker {
            inner,
            classify,
            shared: Arc::new(Mutex::new(Shared {
                state: BreakerState::new(config),
                waiter: None,
            })),
            sleep: None,
            ejections,
        }
    }

    /// Whether the endpoint is ejected now.
    pub fn is_ejected(&self) -> bool {
        lock(&self.shared).state.is_ejected()
    }
}

impl<S, C, Req> Service<Req> for CircuitBreaker<S, C>
where
    S: Service<Req>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
    C: Classify<S::Response, S::Error> + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        loop {
            let admit = {
                let mut shared = lock(&self.shared);
                let admit = shared.state.admit(Instant::now());
                if admit == Admit::ProbeInFlight {
                    shared.waiter = Some(cx.waker().clone());
                }
                admit
            };
            match admit {
                Admit::Ready => {
                    self.sleep = None;
                    return self.inner.poll_ready(cx);
                }
                Admit::ProbeInFlight => return Poll::Pending,
                Admit::EjectedUntil(until) => {
                    let sleep = self
                        .sleep
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
                    if sleep.deadline() != until {
                        sleep.as_mut().reset(until);
                    }
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    // The backoff is over: admit again (half-open now).
                }
            }
        }
    }

    fn call(&mut self, request: Req) -> Self::Future {
        lock(&self.shared).state.on_send();
        let response = self.inner.call(request);
        let shared = self.shared.clone();
        let classify = self.classify.clone();
        let ejections = self.ejections.clone();
        Box::pin(async move {
            let result = response.await;
            let failed = classify.is_failure(&result);
            let waiter = {
                let mut shared = lock(&shared);
                if shared.state.on_result(failed, Instant::now()) {
                    ejections.fetch_add(1, Ordering::Relaxed);
                }
                shared.waiter.take()
            };
            if let Some(waiter) = waiter {
                waiter.wake();
            }
            result
        })
    }
}

/// A [`Layer`] adding a [`CircuitBreaker`] with one configuration and one ejection counter.
#[derive(Clone, Debug)]
pub struct CircuitBreakerLayer<C = HttpFailures> {
    config: BreakerConfig,
    classify: C,
    ejections: Arc<AtomicU64>,
}

impl<C> CircuitBreakerLayer<C> {
    /// The layer; `ejections` counts the ejections of every endpoint it wraps.
    pub fn new(config: BreakerConfig, classify: C, ejections: Arc<AtomicU64>) -> Self {
        CircuitBreakerLayer {
            config,
            classify,
            ejections,
        }
    }
}

impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C> {
    type Service = CircuitBreaker<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(
            inner,
            self.config,
            self.classify.clone(),
            self.ejections.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use tower::ServiceExt;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn state_ejects_after_consecutive_failures_and_doubles_the_backoff() {
        let t0 = Instant::now();
        let mut state = BreakerState::new(BreakerConfig::default());
        for _ in 0..6 {
            assert!(!state.on_result(true, t0));
        }
        // A success in between resets the count.
        assert!(!state.on_result(false, t0));
        for _ in 0..6 {
            assert!(!state.on_result(true, t0));
        }
        assert_eq!(state.admit(t0), Admit::Ready);
        assert!(
            state.on_result(true, t0),
            "the 7th consecutive failure ejects"
        );
        assert_eq!(state.admit(t0), Admit::EjectedUntil(t0 + secs(1)));
        // Backoffs 1, 2, 4, ..., capped at 60 s, while the probes fail.
        let mut now = t0;
        for expected in [1, 2, 4, 8, 16, 32, 60, 60] {
            assert_eq!(state.admit(now), Admit::EjectedUntil(now + secs(expected)));
            now += secs(expected);
            assert_eq!(state.admit(now), Admit::Ready, "half-open: one probe");
            state.on_send();
            assert_eq!(state.admit(now), Admit::ProbeInFlight);
            assert!(state.on_result(true, now));
        }
        now += secs(60);
        assert_eq!(state.admit(now), Admit::Ready);
        state.on_send();
        assert!(!state.on_result(false, now), "a good probe closes");
        assert!(!state.is_ejected());
        // ... and resets the backoff.
        for _ in 0..7 {
            state.on_result(true, now);
        }
        assert_eq!(state.admit(now), Admit::EjectedUntil(now + secs(1)));
    }

    /// A mock endpoint that fails while `failing` is set, counting calls.
    #[derive(Clone)]
    struct Mock {
        failing: Arc<AtomicBool>,
        calls: Arc<AtomicU64>,
    }

    impl Service<()> for Mock {
        type Response = http::Response<()>;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<http::Response<()>, std::io::Error>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, (): ()) -> Self::Future {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let status = if self.failing.load(Ordering::Relaxed) {
                503
            } else {
                200
            };
            let mut response = http::Response::new(());
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            std::future::ready(Ok(response))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_service_ejects_then_probes_after_the_backoff() {
        let mock = Mock {
            failing: Arc::new(AtomicBool::new(true)),
            calls: Arc::default(),
        };
        let ejections = Arc::new(AtomicU64::new(0));
        let mut breaker = CircuitBreaker::new(
            mock.clone(),
            BreakerConfig::default(),
            HttpFailures,
            ejections.clone(),
        );
        for _ in 0..7 {
            let response = breaker.ready().await.unwrap().call(()).await.unwrap();
            assert_eq!(response.status(), 503);
        }
        assert!(breaker.is_ejected());
        assert_eq!(ejections.load(Ordering::Relaxed), 1);
        // Not ready during the backoff: readiness waits exactly until it ends.
        let start = Instant::now();
        let ready = tokio::time::timeout(secs(1) - Duration::from_millis(1), breaker.ready()).await;
        assert!(ready.is_err(), "ejected endpoints are not ready");
        breaker.ready().await.unwrap();
        assert_eq!(Instant::now() - start, secs(1));
        // The probe fails: ejected for 2 s.
        breaker.call(()).await.unwrap();
        assert_eq!(ejections.load(Ordering::Relaxed), 2);
        let start = Instant::now();
        mock.failing.store(false, Ordering::Relaxed);
        breaker.ready().await.unwrap();
        assert_eq!(Instant::now() - start, secs(2));
        let response = breaker.call(()).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(!breaker.is_ejected(), "a good probe closes the breaker");
        assert_eq!(
            mock.calls.load(Ordering::Relaxed),
            9,
            "no request while ejected"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_request_waits_for_the_probe() {
        let mock = Mock {
            failing: Arc::new(AtomicBool::new(true)),
            calls: Arc::default(),
        };
        let config = BreakerConfig {
            failures: 1,
            ..BreakerConfig::default()
        };
        let mut breaker = CircuitBreaker::new(mock.clone(), config, HttpFailures, Arc::default());
        breaker.ready().await.unwrap().call(()).await.unwrap();
        tokio::time::sleep(secs(1)).await;
        mock.failing.store(false, Ordering::Relaxed);
        let probe = breaker.ready().await.unwrap().call(());
        let waited = tokio::time::timeout(secs(3600), breaker.ready()).await;
        assert!(waited.is_err(), "only one probe at a time");
        probe.await.unwrap();
        breaker.ready().await.unwrap();
    }
}
