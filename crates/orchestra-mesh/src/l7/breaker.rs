//! [`CircuitBreaker`]: ejects an endpoint after consecutive failures and probes it again after
//! a backoff that doubles up to a limit.
//!
//! Written here because tower has no circuit breaker. It works with tower's balancer through
//! readiness: an ejected endpoint reports `Pending` from `poll_ready` (and wakes its task when
//! the backoff ends), so `tower::balance::p2c` moves it out of its ready set and picks among
//! the others. When the backoff has passed, the endpoint is ready for exactly one probe
//! request; its success closes the breaker, its failure ejects the endpoint again for twice as
//! long. The decisions are in the pure [`BreakerState`]; the service only applies them.
//!
//! A cancelled probe (its response future dropped before it completed: the route timeout
//! fired, the client went away, or the future was never polled) says nothing about the
//! endpoint's health, so it counts as neither success nor failure, as in Linkerd and Envoy:
//! the endpoint stays ejected, its backoff is neither doubled nor reset, and the next request
//! may probe at once. The probe's future owns a guard that does this when it is dropped and
//! wakes the task waiting in `poll_ready` for the probe's result; without it, a dropped probe
//! would hold the probe slot forever and keep the endpoint ejected until discovery replaced
//! it (issue #8).

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

/// The probe slot taken by one request of a half-open breaker (see [`BreakerState::on_send`]);
/// each probe has its own, so a stale probe cannot release a later one's slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Probe(u64);

/// The breaker of one endpoint as a pure state machine (time is passed in).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerState {
    config: BreakerConfig,
    phase: Phase,
    /// The next ejection's length.
    backoff: Duration,
    /// The number of probes sent so far (the next probe's id).
    probes: u64,
}

/// `HalfOpen`: ejected, the backoff over; `probe` is the one probe in flight, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Closed { consecutive: u32 },
    Open { until: Instant },
    HalfOpen { probe: Option<Probe> },
}

impl BreakerState {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        BreakerState {
            config,
            phase: Phase::Closed { consecutive: 0 },
            backoff: config.base_backoff,
            probes: 0,
        }
    }

    /// Whether a request may be sent at `now`; when a backoff has ended this turns the breaker
    /// half-open.
    pub fn admit(&mut self, now: Instant) -> Admit {
        match self.phase {
            Phase::Closed { .. } | Phase::HalfOpen { probe: None } => Admit::Ready,
            Phase::HalfOpen { probe: Some(_) } => Admit::ProbeInFlight,
            Phase::Open { until } if now >= until => {
                self.phase = Phase::HalfOpen { probe: None };
                Admit::Ready
            }
            Phase::Open { until } => Admit::EjectedUntil(until),
        }
    }

    /// Records that a request was sent (after [`admit`](Self::admit) said ready); returns its
    /// probe when it is the probe of a half-open breaker. Until [`on_result`](Self::on_result)
    /// or [`on_cancel`](Self::on_cancel), no other request is admitted.
    #[must_use = "a probe that is dropped unfinished must be passed to `on_cancel`"]
    pub fn on_send(&mut self) -> Option<Probe> {
        match &mut self.phase {
            Phase::HalfOpen { probe: slot @ None } => {
                let probe = Probe(self.probes);
                self.probes = self.probes.wrapping_add(1);
                *slot = Some(probe);
                Some(probe)
            }
            _ => None,
        }
    }

    /// Records that `probe` was cancelled (its request dropped before its outcome was known);
    /// returns whether this freed the probe slot. A cancelled probe says nothing about the
    /// endpoint: it is neither a success nor a failure, so the endpoint stays ejected with the
    /// same backoff and the next request may probe at once. A probe whose slot is no longer
    /// its own (another request's outcome moved the breaker on) changes nothing.
    pub fn on_cancel(&mut self, probe: Probe) -> bool {
        match self.phase {
            Phase::HalfOpen {
                probe: Some(current),
            } if current == probe => {
                self.phase = Phase::HalfOpen { probe: None };
                true
            }
            _ => false,
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

/// Owned by the future of one `call()`: records the request's outcome once it is known, or,
/// when the future is dropped first and the request was the probe, cancels the probe (see
/// the module docs) so that the slot is freed and the task waiting for it woken.
struct InFlight {
    shared: Arc<Mutex<Shared>>,
    /// The probe this request is, until its outcome is recorded.
    probe: Option<Probe>,
}

impl InFlight {
    fn finish(mut self, failed: bool, ejections: &AtomicU64) {
        // The outcome is known: nothing is left to cancel on drop.
        self.probe = None;
        let waiter = {
            let mut shared = lock(&self.shared);
            if shared.state.on_result(failed, Instant::now()) {
                ejections.fetch_add(1, Ordering::Relaxed);
            }
            shared.waiter.take()
        };
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(probe) = self.probe.take() else {
            return;
        };
        let waiter = {
            let mut shared = lock(&self.shared);
            if shared.state.on_cancel(probe) {
                shared.waiter.take()
            } else {
                // Someone else's outcome settled the slot, and woke the waiter then.
                None
            }
        };
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }
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
        // The guard exists before the inner call and is moved into the future, so the probe
        // slot is freed however the request ends: a panic in `inner.call`, the future dropped
        // unpolled (a buffer whose caller left) or mid-flight (a timeout), or its outcome.
        let in_flight = InFlight {
            shared: self.shared.clone(),
            probe: lock(&self.shared).state.on_send(),
        };
        let response = self.inner.call(request);
        let classify = self.classify.clone();
        let ejections = self.ejections.clone();
        Box::pin(async move {
            let result = response.await;
            in_flight.finish(classify.is_failure(&result), &ejections);
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
    use futures::FutureExt;
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
            assert!(state.on_send().is_some(), "the probe");
            assert_eq!(state.admit(now), Admit::ProbeInFlight);
            assert!(state.on_result(true, now));
        }
        now += secs(60);
        assert_eq!(state.admit(now), Admit::Ready);
        assert!(state.on_send().is_some());
        assert!(!state.on_result(false, now), "a good probe closes");
        assert_eq!(
            state.on_send(),
            None,
            "requests of a closed breaker are no probes"
        );
        assert!(!state.is_ejected());
        // ... and resets the backoff.
        for _ in 0..7 {
            state.on_result(true, now);
        }
        assert_eq!(state.admit(now), Admit::EjectedUntil(now + secs(1)));
    }

    /// A breaker that ejects at the first failure, ejected once, and the moment its first
    /// backoff (1 s) has passed, so that the next request may probe.
    fn ejected_once_and_probeable() -> (BreakerState, Instant) {
        let t0 = Instant::now();
        let config = BreakerConfig {
            failures: 1,
            ..BreakerConfig::default()
        };
        let mut state = BreakerState::new(config);
        assert!(state.on_result(true, t0));
        let now = t0 + secs(1);
        assert_eq!(state.admit(now), Admit::Ready);
        (state, now)
    }

    #[test]
    fn state_a_cancelled_probe_counts_as_neither_success_nor_failure() {
        let (mut state, now) = ejected_once_and_probeable();
        let probe = state.on_send().expect("the probe");
        assert_eq!(state.admit(now), Admit::ProbeInFlight);
        assert!(state.on_cancel(probe), "the cancel frees the slot");
        assert!(state.is_ejected(), "not a success: still ejected");
        assert_eq!(state.admit(now), Admit::Ready, "the next request may probe");
        assert!(!state.on_cancel(probe), "a second cancel changes nothing");
        let next = state.on_send().expect("the next probe");
        assert_ne!(next, probe);
        assert!(state.on_result(true, now));
        assert_eq!(
            state.admit(now),
            Admit::EjectedUntil(now + secs(2)),
            "not a failure: the backoff doubled once (by the failed probe), not twice"
        );
        let now = now + secs(2);
        assert_eq!(state.admit(now), Admit::Ready);
        let probe = state.on_send().expect("the probe");
        assert!(state.on_cancel(probe));
        assert!(state.on_send().is_some());
        assert!(!state.on_result(false, now), "a good probe still closes");
        assert!(!state.is_ejected());
    }

    #[test]
    fn state_a_stale_probe_cannot_free_a_later_probes_slot() {
        let (mut state, now) = ejected_once_and_probeable();
        let first = state.on_send().expect("the probe");
        // A request sent before the ejection fails late: ejected again, `first` still out.
        assert!(state.on_result(true, now));
        let now = now + secs(2);
        assert_eq!(state.admit(now), Admit::Ready);
        let second = state.on_send().expect("a new probe");
        assert!(!state.on_cancel(first), "not its slot any more");
        assert_eq!(
            state.admit(now),
            Admit::ProbeInFlight,
            "one probe at a time"
        );
        assert!(state.on_cancel(second));
        assert_eq!(state.admit(now), Admit::Ready);
    }

    /// A mock endpoint that fails while `failing` is set and never answers while `hanging` is
    /// (both read when a request is sent), counting calls.
    #[derive(Clone)]
    struct Mock {
        failing: Arc<AtomicBool>,
        hanging: Arc<AtomicBool>,
        calls: Arc<AtomicU64>,
    }

    impl Mock {
        fn new(failing: bool) -> Self {
            Mock {
                failing: Arc::new(AtomicBool::new(failing)),
                hanging: Arc::default(),
                calls: Arc::default(),
            }
        }
    }

    type MockFuture =
        Pin<Box<dyn Future<Output = Result<http::Response<()>, std::io::Error>> + Send>>;

    impl Service<()> for Mock {
        type Response = http::Response<()>;
        type Error = std::io::Error;
        type Future = MockFuture;

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
            if self.hanging.load(Ordering::Relaxed) {
                Box::pin(std::future::pending())
            } else {
                Box::pin(std::future::ready(Ok(response)))
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_service_ejects_then_probes_after_the_backoff() {
        let mock = Mock::new(true);
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
        let mock = Mock::new(true);
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

    /// A breaker over `mock` that one failure ejects (for 1 s, then 2 s), ejected once, its
    /// backoff over: its next request is a probe.
    async fn half_open(mock: &Mock, ejections: &Arc<AtomicU64>) -> CircuitBreaker<Mock> {
        let config = BreakerConfig {
            failures: 1,
            ..BreakerConfig::default()
        };
        let mut breaker =
            CircuitBreaker::new(mock.clone(), config, HttpFailures, ejections.clone());
        mock.failing.store(true, Ordering::Relaxed);
        let response = breaker.ready().await.unwrap().call(()).await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(ejections.load(Ordering::Relaxed), 1);
        tokio::time::advance(secs(1)).await;
        breaker
    }

    /// Whether `breaker` is ready at once (polled once, no time passing).
    fn ready_now(breaker: &mut CircuitBreaker<Mock>) -> bool {
        breaker.ready().now_or_never().is_some()
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_cut_by_a_timeout_frees_the_slot_for_the_next_request() {
        let mock = Mock::new(false);
        let ejections = Arc::new(AtomicU64::new(0));
        let config = BreakerConfig {
            failures: 1,
            ..BreakerConfig::default()
        };
        let mut breaker =
            CircuitBreaker::new(mock.clone(), config, HttpFailures, ejections.clone());
        // A request of the closed breaker, still in flight when the endpoint is ejected.
        mock.hanging.store(true, Ordering::Relaxed);
        let ordinary = breaker.ready().await.unwrap().call(());
        mock.hanging.store(false, Ordering::Relaxed);
        mock.failing.store(true, Ordering::Relaxed);
        breaker.ready().await.unwrap().call(()).await.unwrap();
        assert!(breaker.is_ejected());
        tokio::time::advance(secs(1)).await;
        // The probe hangs until its route timeout drops it.
        mock.hanging.store(true, Ordering::Relaxed);
        assert!(ready_now(&mut breaker), "the backoff is over");
        let probe = breaker.call(());
        assert!(!ready_now(&mut breaker), "one probe at a time");
        drop(ordinary);
        assert!(
            !ready_now(&mut breaker),
            "dropping a request that is not the probe frees nothing"
        );
        let start = Instant::now();
        let timed_out = tokio::time::timeout(secs(10), probe).await;
        assert!(timed_out.is_err());
        assert_eq!(Instant::now() - start, secs(10));
        // Neither success nor failure: still ejected, no new ejection, and the next request
        // probes at once.
        assert!(breaker.is_ejected(), "a cancelled probe does not close");
        assert_eq!(ejections.load(Ordering::Relaxed), 1);
        mock.hanging.store(false, Ordering::Relaxed);
        mock.failing.store(false, Ordering::Relaxed);
        assert!(ready_now(&mut breaker), "the slot is free again");
        let response = breaker.call(()).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(!breaker.is_ejected(), "a good probe closes the breaker");
        assert_eq!(mock.calls.load(Ordering::Relaxed), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_dropped_before_it_is_polled_frees_the_slot() {
        // As when `tower::buffer` hands a response future to a caller that has left.
        let mock = Mock::new(true);
        let ejections = Arc::new(AtomicU64::new(0));
        let mut breaker = half_open(&mock, &ejections).await;
        assert!(ready_now(&mut breaker));
        drop(breaker.call(()));
        assert!(breaker.is_ejected());
        mock.failing.store(false, Ordering::Relaxed);
        assert!(ready_now(&mut breaker), "the slot is free again");
        breaker.call(()).await.unwrap();
        assert!(!breaker.is_ejected());
        assert_eq!(ejections.load(Ordering::Relaxed), 1);
    }

    /// A waker that records being woken.
    #[derive(Default)]
    struct Woken(AtomicBool);

    impl std::task::Wake for Woken {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_wakes_the_task_waiting_for_readiness() {
        let mock = Mock::new(true);
        let ejections = Arc::new(AtomicU64::new(0));
        let mut breaker = half_open(&mock, &ejections).await;
        mock.hanging.store(true, Ordering::Relaxed);
        assert!(ready_now(&mut breaker));
        let probe = breaker.call(());
        // The balancer's task polls the endpoint's readiness and waits for the probe's result.
        let woken = Arc::new(Woken::default());
        let waker = Waker::from(woken.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(breaker.poll_ready(&mut cx).is_pending());
        assert!(!woken.0.load(Ordering::Relaxed));
        drop(probe);
        assert!(
            woken.0.load(Ordering::Relaxed),
            "the waiting task is woken when the probe is dropped"
        );
        assert!(breaker.poll_ready(&mut cx).is_ready(), "and may probe");
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_probe_neither_doubles_nor_resets_the_backoff() {
        let mock = Mock::new(true);
        let ejections = Arc::new(AtomicU64::new(0));
        let mut breaker = half_open(&mock, &ejections).await;
        mock.hanging.store(true, Ordering::Relaxed);
        assert!(ready_now(&mut breaker));
        drop(breaker.call(()));
        // The next probe fails: ejected for 2 s, as if the cancelled probe had never been sent
        // (4 s if it had counted as a failure, 1 s if as a success).
        mock.hanging.store(false, Ordering::Relaxed);
        assert!(ready_now(&mut breaker));
        let response = breaker.call(()).await.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(ejections.load(Ordering::Relaxed), 2);
        let start = Instant::now();
        breaker.ready().await.unwrap();
        assert_eq!(Instant::now() - start, secs(2));
    }
}
