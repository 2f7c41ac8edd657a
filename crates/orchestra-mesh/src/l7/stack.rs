//! [`Outbound`]: one service's client stack, built from tower's layers.
//!
//! Outermost first: the route's timeout (`tower::timeout::Timeout`), retries under the budget
//! (`tower::retry::Retry` with [`RetryPolicy`]), a buffer so that every connection of the
//! proxy shares one balancer (`tower::buffer::Buffer`), and power of two choices over peak-EWMA
//! load (`tower::balance::p2c::Balance` over `tower::load::PeakEwmaDiscover`). The endpoints
//! come from a `Discover` stream of services (in the proxy: [`CircuitBreaker`](super::CircuitBreaker)
//! over [`Endpoint`](super::Endpoint)).

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use tower::balance::p2c::Balance;
use tower::buffer::Buffer;
use tower::discover::Discover;
use tower::load::{CompleteOnResponse, PeakEwmaDiscover};
use tower::retry::Retry;
use tower::timeout::Timeout;
use tower::util::BoxCloneService;
use tower::{BoxError, Service, ServiceExt};

use super::body::MeshBody;
use super::breaker::BreakerConfig;
use super::retry::{RetryConfig, RetryPolicy};
use super::route::RouteTimeouts;

/// The settings of one service's stack.
#[derive(Clone, Debug)]
pub struct StackConfig {
    /// The retry budget.
    pub retry: RetryConfig,
    /// The per-endpoint circuit breaker.
    pub breaker: BreakerConfig,
    /// The per-route timeouts.
    pub timeouts: RouteTimeouts,
    /// How long connecting to an endpoint may take (default 1 s).
    pub connect_timeout: Duration,
    /// The latency assumed for an endpoint with no measurement yet (default 30 ms).
    pub default_rtt: Duration,
    /// How fast peak-EWMA forgets a latency peak (default 10 s).
    pub ewma_decay: Duration,
    /// Requests that may wait for the balancer (default 1024).
    pub buffer: usize,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            retry: RetryConfig::default(),
            breaker: BreakerConfig::default(),
            timeouts: RouteTimeouts::default(),
            connect_timeout: Duration::from_secs(1),
            default_rtt: Duration::from_millis(30),
            ewma_decay: Duration::from_secs(10),
            buffer: 1024,
        }
    }
}

/// One service's outbound stack (see the module docs); cheap to clone, clones share the
/// balancer and the retry budget.
pub struct Outbound<B> {
    inner: BoxCloneService<Request<MeshBody>, Response<B>, BoxError>,
    timeouts: Arc<RouteTimeouts>,
}

impl<B> Clone for Outbound<B> {
    fn clone(&self) -> Self {
        Outbound {
            inner: self.inner.clone(),
            timeouts: self.timeouts.clone(),
        }
    }
}

impl<B> fmt::Debug for Outbound<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outbound")
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

impl<B: Send + 'static> Outbound<B> {
    /// The stack over the endpoints `discover` yields; `retries` counts retries. Must be
    /// called within a tokio runtime (the buffer's worker is spawned on it).
    pub fn new<D, S>(discover: D, config: &StackConfig, retries: Arc<AtomicU64>) -> Self
    where
        D: Discover<Key = SocketAddr, Service = S> + Unpin + Send + 'static,
        D::Error: Into<BoxError>,
        S: Service<Request<MeshBody>, Response = Response<B>> + Send + 'static,
        S::Error: Into<BoxError>,
        S::Future: Send + 'static,
    {
        let loaded = PeakEwmaDiscover::new::<Request<MeshBody>>(
            discover,
            config.default_rtt,
            config.ewma_decay,
            CompleteOnResponse::default(),
        );
        let balance = Balance::new(loaded);
        let buffer = Buffer::new(balance, config.buffer.max(1));
        let retry = Retry::new(RetryPolicy::new(&config.retry, retries), buffer);
        Outbound {
            inner: BoxCloneService::new(retry),
            timeouts: Arc::new(config.timeouts.clone()),
        }
    }
}

impl<B: Send + 'static> Service<Request<MeshBody>> for Outbound<B> {
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Each call clones the stack and waits for readiness inside its own timeout.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<MeshBody>) -> Self::Future {
        let timeout = self.timeouts.timeout_for(request.uri().path());
        let service = Timeout::new(self.inner.clone(), timeout);
        Box::pin(service.oneshot(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l7::breaker::{CircuitBreaker, HttpFailures};
    use crate::l7::discover::EndpointDiscover;
    use crate::l7::endpoint::EndpointError;
    use crate::l7::route::Route;
    use std::collections::BTreeMap;
    use std::sync::Mutex;
    use std::sync::atomic::Ordering;
    use tokio::sync::watch;

    /// How a mock endpoint behaves.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Mode {
        Ok,
        Refuse,
        Hang,
    }

    /// Mock endpoints by address: their mode and the requests each served.
    #[derive(Clone, Default)]
    struct Mocks {
        modes: Arc<Mutex<BTreeMap<SocketAddr, Mode>>>,
        served: Arc<Mutex<BTreeMap<SocketAddr, u64>>>,
    }

    impl Mocks {
        fn set(&self, addr: SocketAddr, mode: Mode) {
            self.modes.lock().unwrap().insert(addr, mode);
        }
        fn served(&self, addr: SocketAddr) -> u64 {
            self.served.lock().unwrap().get(&addr).copied().unwrap_or(0)
        }
        fn endpoint(&self, addr: SocketAddr) -> MockEndpoint {
            MockEndpoint {
                addr,
                mocks: self.clone(),
            }
        }
    }

    struct MockEndpoint {
        addr: SocketAddr,
        mocks: Mocks,
    }

    impl Service<Request<MeshBody>> for MockEndpoint {
        type Response = Response<String>;
        type Error = EndpointError;
        type Future = Pin<Box<dyn Future<Output = Result<Response<String>, EndpointError>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), EndpointError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<MeshBody>) -> Self::Future {
            let addr = self.addr;
            let mode = self
                .mocks
                .modes
                .lock()
                .unwrap()
                .get(&addr)
                .copied()
                .unwrap_or(Mode::Ok);
            let served = self.mocks.served.clone();
            Box::pin(async move {
                match mode {
                    Mode::Ok => {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        *served.lock().unwrap().entry(addr).or_default() += 1;
                        Ok(Response::new(addr.to_string()))
                    }
                    Mode::Refuse => Err(EndpointError::Connect {
                        addr,
                        source: "connection refused".into(),
                    }),
                    Mode::Hang => std::future::pending().await,
                }
            })
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn get(path: &str) -> Request<MeshBody> {
        Request::builder()
            .uri(path)
            .body(MeshBody::empty())
            .unwrap()
    }

    fn stack(
        mocks: &Mocks,
        endpoints: watch::Receiver<Vec<SocketAddr>>,
        config: &StackConfig,
        ejections: Arc<AtomicU64>,
    ) -> (Outbound<String>, Arc<AtomicU64>) {
        let mocks = mocks.clone();
        let breaker = config.breaker;
        let discover = EndpointDiscover::new(endpoints, move |addr| {
            CircuitBreaker::new(
                mocks.endpoint(addr),
                breaker,
                HttpFailures,
                ejections.clone(),
            )
        });
        let retries = Arc::new(AtomicU64::new(0));
        (Outbound::new(discover, config, retries.clone()), retries)
    }

    #[tokio::test(start_paused = true)]
    async fn balances_over_every_endpoint() {
        let mocks = Mocks::default();
        let (_tx, rx) = watch::channel(vec![addr(1), addr(2), addr(3)]);
        let (outbound, _) = stack(&mocks, rx, &StackConfig::default(), Arc::default());
        for _ in 0..300 {
            outbound.clone().oneshot(get("/")).await.unwrap();
        }
        for port in 1..=3 {
            assert!(
                mocks.served(addr(port)) > 30,
                "port {port}: {}",
                mocks.served(addr(port))
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusing_endpoint_is_retried_around_then_ejected() {
        let mocks = Mocks::default();
        mocks.set(addr(2), Mode::Refuse);
        let (_tx, rx) = watch::channel(vec![addr(1), addr(2)]);
        let ejections = Arc::new(AtomicU64::new(0));
        let (outbound, retries) = stack(&mocks, rx, &StackConfig::default(), ejections.clone());
        for _ in 0..100 {
            let response = outbound.clone().oneshot(get("/")).await.unwrap();
            assert_eq!(response.body(), "127.0.0.1:1");
        }
        assert_eq!(
            mocks.served(addr(1)),
            100,
            "every request served, none lost"
        );
        assert_eq!(
            ejections.load(Ordering::Relaxed),
            1,
            "ejected once, not probed yet"
        );
        let retried = retries.load(Ordering::Relaxed);
        assert!(
            (7..=10).contains(&retried),
            "retries until the ejection: {retried}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn removed_endpoints_get_no_more_requests() {
        let mocks = Mocks::default();
        let (tx, rx) = watch::channel(vec![addr(1), addr(2)]);
        let (outbound, _) = stack(&mocks, rx, &StackConfig::default(), Arc::default());
        for _ in 0..20 {
            outbound.clone().oneshot(get("/")).await.unwrap();
        }
        tx.send_replace(vec![addr(1)]);
        let before = mocks.served(addr(2));
        for _ in 0..50 {
            outbound.clone().oneshot(get("/")).await.unwrap();
        }
        assert_eq!(mocks.served(addr(2)), before);
    }

    #[tokio::test(start_paused = true)]
    async fn route_timeouts_fire() {
        let mocks = Mocks::default();
        mocks.set(addr(1), Mode::Hang);
        let (_tx, rx) = watch::channel(vec![addr(1)]);
        let config = StackConfig {
            timeouts: RouteTimeouts {
                default: Duration::from_secs(10),
                routes: vec![Route {
                    path_prefix: "/fast".into(),
                    timeout: Duration::from_millis(250),
                }],
            },
            ..StackConfig::default()
        };
        let (outbound, _) = stack(&mocks, rx, &config, Arc::default());
        let start = tokio::time::Instant::now();
        let error = outbound.clone().oneshot(get("/fast/x")).await.unwrap_err();
        assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");
        assert_eq!(start.elapsed(), Duration::from_millis(250));
        let start = tokio::time::Instant::now();
        outbound.clone().oneshot(get("/other")).await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // No endpoint at all: the request waits for one, within its timeout.
        let (_tx, rx) = watch::channel(vec![]);
        let (empty, _) = stack(&mocks, rx, &config, Arc::default());
        let error = empty.oneshot(get("/fast")).await.unwrap_err();
        assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_cut_by_the_route_timeout_does_not_eject_the_endpoint_for_good() {
        // Issue #8: one endpoint, whose probe hangs past the route timeout.
        let mocks = Mocks::default();
        mocks.set(addr(1), Mode::Refuse);
        let (_tx, rx) = watch::channel(vec![addr(1)]);
        let config = StackConfig {
            breaker: BreakerConfig {
                failures: 1,
                ..BreakerConfig::default()
            },
            timeouts: RouteTimeouts {
                default: Duration::from_secs(10),
                routes: vec![Route {
                    path_prefix: "/fast".into(),
                    timeout: Duration::from_millis(250),
                }],
            },
            ..StackConfig::default()
        };
        let ejections = Arc::new(AtomicU64::new(0));
        let (outbound, _) = stack(&mocks, rx, &config, ejections.clone());
        // Refused: ejected for 1 s; the retry waits for it past its route's timeout.
        let error = outbound.clone().oneshot(get("/fast")).await.unwrap_err();
        assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");
        assert_eq!(ejections.load(Ordering::Relaxed), 1);
        // The next request is the probe once the backoff is over (at 1 s); it hangs until its
        // route timeout cuts it (at 10.25 s). A request sent meanwhile waits for the probe's
        // result in the balancer.
        mocks.set(addr(1), Mode::Hang);
        let start = tokio::time::Instant::now();
        let probe = tokio::spawn(outbound.clone().oneshot(get("/")));
        tokio::time::sleep(Duration::from_secs(2)).await;
        mocks.set(addr(1), Mode::Ok);
        let waiting = tokio::spawn(outbound.clone().oneshot(get("/")));
        let error = probe.await.unwrap().unwrap_err();
        assert!(error.is::<tower::timeout::error::Elapsed>(), "{error}");
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // The cut probe frees the slot and wakes the balancer: the waiting request probes the
        // endpoint, which has recovered, and is served at once (the mock's latency alone).
        let response = waiting.await.unwrap().unwrap();
        assert_eq!(response.body(), "127.0.0.1:1");
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(10) + Duration::from_millis(1)
        );
        assert_eq!(mocks.served(addr(1)), 1);
        assert_eq!(
            ejections.load(Ordering::Relaxed),
            1,
            "a cut probe is no failure"
        );
        outbound.oneshot(get("/fast")).await.unwrap();
    }
}
