//! [`RetryPolicy`]: which failed requests the outbound stack sends again, under a budget.
//!
//! A `tower::retry::Policy` over `tower::retry::budget::TpsBudget` (by default 20% of the
//! recent requests plus 10 retries a second, over a 10 s window): every request that ends
//! deposits into the budget, every retry withdraws, and a retry the budget cannot pay for is
//! not made, so that a failing service never sees a retry storm.
//!
//! Retryable are only failures where sending again is safe: the endpoint could not be
//! connected to (the request never left, whatever its method); and, for idempotent methods
//! (GET, HEAD, OPTIONS, TRACE, PUT, DELETE), 502/503 answers and connections that broke
//! under the request (an endpoint killed mid-request: the proxy would otherwise answer 502
//! itself). Requests whose body streams (not held in memory) are never retried.

use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use tower::BoxError;
use tower::retry::Policy;
use tower::retry::budget::{Budget, TpsBudget};

use super::body::MeshBody;
use super::endpoint::EndpointError;

/// The retry budget's shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryConfig {
    /// Retries allowed as a fraction of recent requests (default 0.2).
    pub ratio: f32,
    /// Retries allowed per second regardless of traffic (default 10).
    pub min_per_sec: u32,
    /// How long a request counts as recent (default 10 s; between 1 and 60 s).
    pub window: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            ratio: 0.2,
            min_per_sec: 10,
            window: Duration::from_secs(10),
        }
    }
}

impl RetryConfig {
    /// The budget this configuration describes, with its values clamped to what
    /// `TpsBudget` accepts (a window of 1 to 60 s, a ratio of 0 to 1000).
    pub fn budget(&self) -> TpsBudget {
        let window = self
            .window
            .clamp(Duration::from_secs(1), Duration::from_secs(60));
        let ratio = if self.ratio.is_finite() {
            self.ratio.clamp(0.0, 1000.0)
        } else {
            0.0
        };
        TpsBudget::new(window, self.min_per_sec.min(i32::MAX as u32 - 1), ratio)
    }
}

/// Whether the method may be sent twice without changing the outcome (RFC 9110, 9.2.2).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// Whether an outcome of `method` may be retried (ignoring the budget): the pure decision.
pub fn is_retryable<B>(method: &Method, result: &Result<Response<B>, BoxError>) -> bool {
    match result {
        Ok(response) => {
            matches!(
                response.status(),
                StatusCode::BAD_GATEWAY | StatusCode::SERVICE_UNAVAILABLE
            ) && is_idempotent(method)
        }
        Err(error) => match error.downcast_ref::<EndpointError>() {
            Some(EndpointError::Connect { .. }) => true,
            // A TLS failure once connected (the peer sidecar refused this sidecar's
            // certificate): every endpoint would refuse it the same way.
            Some(EndpointError::Request { source, .. }) => {
                is_idempotent(method) && !is_tls_failure(source.as_ref())
            }
            None => false,
        },
    }
}

/// Whether `error`, or an error under it, is a TLS error (rustls' errors travel inside
/// `io::Error`s, whose `source` skips them, hence the explicit look inside).
fn is_tls_failure(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return true;
        }
        next = error.source();
    }
    false
}

/// The outbound stack's retry policy (see the module docs). Clones share one budget.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    budget: Arc<TpsBudget>,
    retries: Arc<AtomicU64>,
    exhausted: Arc<AtomicU64>,
}

impl RetryPolicy {
    /// A policy with the budget of `config`; `retries` counts the retries made.
    pub fn new(config: &RetryConfig, retries: Arc<AtomicU64>) -> Self {
        RetryPolicy {
            budget: Arc::new(config.budget()),
            retries,
            exhausted: Arc::default(),
        }
    }

    /// Retries that were due but refused by the budget.
    pub fn budget_exhausted(&self) -> u64 {
        self.exhausted.load(Ordering::Relaxed)
    }
}

impl<B> Policy<Request<MeshBody>, Response<B>, BoxError> for RetryPolicy {
    type Future = Ready<()>;

    fn retry(
        &mut self,
        request: &mut Request<MeshBody>,
        result: &mut Result<Response<B>, BoxError>,
    ) -> Option<Self::Future> {
        if !is_retryable(request.method(), result) {
            self.budget.deposit();
            return None;
        }
        if !self.budget.withdraw() {
            self.exhausted.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        self.retries.fetch_add(1, Ordering::Relaxed);
        Some(ready(()))
    }

    fn clone_request(&mut self, request: &Request<MeshBody>) -> Option<Request<MeshBody>> {
        let body = request.body().try_clone()?;
        let mut clone = Request::new(body);
        *clone.method_mut() = request.method().clone();
        *clone.uri_mut() = request.uri().clone();
        *clone.version_mut() = request.version();
        *clone.headers_mut() = request.headers().clone();
        Some(clone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body as _;
    use std::collections::VecDeque;
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use std::task::{Context, Poll};
    use tower::retry::Retry;
    use tower::{Service, ServiceExt};

    /// A mock endpoint that answers from a script (then 200s), counting calls.
    #[derive(Clone, Default)]
    struct Scripted {
        script: Arc<Mutex<VecDeque<Result<u16, ()>>>>,
        calls: Arc<AtomicU64>,
    }

    impl Scripted {
        fn new(script: impl IntoIterator<Item = Result<u16, ()>>) -> Self {
            Scripted {
                script: Arc::new(Mutex::new(script.into_iter().collect())),
                calls: Arc::default(),
            }
        }
    }

    impl Service<Request<MeshBody>> for Scripted {
        type Response = Response<()>;
        type Error = BoxError;
        type Future = Ready<Result<Response<()>, BoxError>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<MeshBody>) -> Self::Future {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let next = self.script.lock().unwrap().pop_front().unwrap_or(Ok(200));
            ready(match next {
                Ok(status) => {
                    let mut response = Response::new(());
                    *response.status_mut() = StatusCode::from_u16(status).unwrap();
                    Ok(response)
                }
                Err(()) => Err(EndpointError::Connect {
                    addr: SocketAddr::from(([127, 0, 0, 1], 1)),
                    source: "connection refused".into(),
                }
                .into()),
            })
        }
    }

    fn request(method: Method) -> Request<MeshBody> {
        let mut request = Request::new(MeshBody::from(bytes::Bytes::from_static(b"x")));
        *request.method_mut() = method;
        request
    }

    #[test]
    fn only_safe_failures_are_retryable() {
        let status = |s: u16| -> Result<Response<()>, BoxError> {
            let mut response = Response::new(());
            *response.status_mut() = StatusCode::from_u16(s).unwrap();
            Ok(response)
        };
        assert!(is_retryable(&Method::GET, &status(503)));
        assert!(is_retryable(&Method::PUT, &status(502)));
        assert!(
            !is_retryable(&Method::POST, &status(503)),
            "POST may have had effects"
        );
        assert!(!is_retryable(&Method::GET, &status(500)));
        assert!(!is_retryable(&Method::GET, &status(504)));
        assert!(!is_retryable(&Method::GET, &status(200)));
        let refused: Result<Response<()>, BoxError> = Err(EndpointError::Connect {
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            source: "refused".into(),
        }
        .into());
        assert!(
            is_retryable(&Method::POST, &refused),
            "never sent: any method"
        );
        let broken: Result<Response<()>, BoxError> = Err(EndpointError::Request {
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            source: "connection reset".into(),
        }
        .into());
        assert!(is_retryable(&Method::GET, &broken));
        assert!(
            !is_retryable(&Method::POST, &broken),
            "a POST may have been processed"
        );
        let other: Result<Response<()>, BoxError> = Err("timed out".into());
        assert!(!is_retryable(&Method::GET, &other));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_connect_errors_and_idempotent_503s() {
        let mock = Scripted::new([Err(()), Ok(503), Ok(200)]);
        let retries = Arc::new(AtomicU64::new(0));
        let policy = RetryPolicy::new(&RetryConfig::default(), retries.clone());
        let mut service = Retry::new(policy, mock.clone());
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request(Method::GET))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(mock.calls.load(Ordering::Relaxed), 3);
        assert_eq!(retries.load(Ordering::Relaxed), 2);

        // A POST's 503 is returned as is.
        let mock = Scripted::new([Ok(503)]);
        let mut service = Retry::new(
            RetryPolicy::new(&RetryConfig::default(), Arc::default()),
            mock.clone(),
        );
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request(Method::POST))
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(mock.calls.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn clone_request_copies_method_uri_headers_and_body() {
        let mut policy = RetryPolicy::new(&RetryConfig::default(), Arc::default());
        let mut original = request(Method::PUT);
        *original.uri_mut() = "http://web.shop/a?b=c".parse().unwrap();
        original.headers_mut().insert("x-a", "1".parse().unwrap());
        let clone = Policy::<Request<MeshBody>, Response<()>, BoxError>::clone_request(
            &mut policy,
            &original,
        )
        .unwrap();
        assert_eq!(clone.method(), Method::PUT);
        assert_eq!(clone.uri(), "http://web.shop/a?b=c");
        assert_eq!(clone.headers()["x-a"], "1");
        assert_eq!(clone.body().size_hint().exact(), Some(1));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_stop_at_the_budget() {
        // No reserve, 20%: after 10 good requests, exactly 2 retries are allowed.
        let config = RetryConfig {
            ratio: 0.2,
            min_per_sec: 0,
            window: Duration::from_secs(10),
        };
        let retries = Arc::new(AtomicU64::new(0));
        let policy = RetryPolicy::new(&config, retries.clone());
        let mock = Scripted::new(
            std::iter::repeat_n(Ok(200), 10).chain(std::iter::repeat_n(Ok(503), 100)),
        );
        let mut service = Retry::new(policy.clone(), mock.clone());
        for _ in 0..10 {
            service
                .ready()
                .await
                .unwrap()
                .call(request(Method::GET))
                .await
                .unwrap();
        }
        let response = service
            .ready()
            .await
            .unwrap()
            .call(request(Method::GET))
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            503,
            "the failure is returned once the budget is spent"
        );
        assert_eq!(retries.load(Ordering::Relaxed), 2);
        assert_eq!(mock.calls.load(Ordering::Relaxed), 13);
        assert_eq!(policy.budget_exhausted(), 1);

        // The default reserve allows 10 retries a second even without traffic.
        let retries = Arc::new(AtomicU64::new(0));
        let mock = Scripted::new(std::iter::repeat_n(Ok(503), 1000));
        let mut service = Retry::new(
            RetryPolicy::new(&RetryConfig::default(), retries.clone()),
            mock,
        );
        service
            .ready()
            .await
            .unwrap()
            .call(request(Method::GET))
            .await
            .unwrap();
        assert_eq!(
            retries.load(Ordering::Relaxed),
            100,
            "10 a second over the 10 s window"
        );
    }
}
