//! [`Connection`]: the channels to etcd's endpoints, failover between them, and the retry
//! policy every call follows.
//!
//! Calls go to one endpoint (the current one) until it fails to connect or answers that it has
//! no leader; then the next endpoint becomes current. A call is sent again only when that is
//! safe: always when it never reached etcd or etcd did not process it, and after an unknown
//! outcome (a broken connection, a server-side timeout) only when it is a read. Every call is
//! bounded by [`EtcdOptions::request_timeout`], retries included.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use crate::etcd::error::{EtcdError, Failure, classify, describe};
use crate::etcd::options::EtcdOptions;
use crate::etcd::proto::etcdserverpb::StatusRequest;
use crate::etcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;

/// The largest gRPC message accepted from etcd (range responses can be large).
const MAX_RESPONSE_BYTES: usize = i32::MAX as usize;
/// The HTTP/2 stream window of watch streams: it bounds what a watcher that does not read can
/// hold in flight, so that etcd, not the client, notices that it fell behind.
const WATCH_STREAM_WINDOW: u32 = 64 * 1024;
/// The HTTP/2 connection window of the watch connection: room for many stalled watchers
/// before they hold up the others.
const WATCH_CONNECTION_WINDOW: u32 = 64 * 1024 * 1024;
/// The first and the longest pause between two attempts of a call.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_millis(500);

/// Whether a call may be sent again after an error that leaves its outcome unknown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads: sending them twice changes nothing.
    Idempotent,
    /// Writes: sent again only when etcd certainly did not process them.
    Once,
}

/// How a call failed.
#[derive(Debug)]
pub(crate) enum RpcError {
    /// etcd refused the request.
    Refused(Status),
    /// No answer (every endpoint down, or the outcome of a write is unknown).
    Unavailable(String),
}

/// One endpoint's channels: [`EtcdOptions::connections`] for unary calls and one for watch
/// streams (whose small stream windows would slow large reads down).
#[derive(Debug)]
pub(crate) struct Slot {
    /// The URL, for messages.
    pub(crate) url: String,
    /// At least one.
    unary: Vec<Channel>,
    /// The unary channel the next call takes (round-robin).
    next: AtomicUsize,
    watch: Channel,
}

impl Slot {
    /// The next unary channel, round-robin.
    fn next_unary(&self) -> Channel {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.unary[turn % self.unary.len()].clone()
    }
}

/// The channels to every endpoint, and which one is current.
#[derive(Debug)]
pub(crate) struct Connection {
    slots: Vec<Slot>,
    current: AtomicUsize,
    options: EtcdOptions,
}

impl Connection {
    /// Prepare channels to every endpoint (connecting lazily) and find one that answers.
    pub(crate) async fn connect(options: EtcdOptions) -> Result<Connection, EtcdError> {
        if options.endpoints.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        let mut slots = Vec::with_capacity(options.endpoints.len());
        for endpoint in &options.endpoints {
            slots.push(slot(endpoint, &options)?);
        }
        let connection = Connection {
            slots,
            current: AtomicUsize::new(0),
            options,
        };
        let mut failures = Vec::new();
        for (index, slot) in connection.slots.iter().enumerate() {
            let mut client = MaintenanceClient::new(slot.next_unary());
            let call = client.status(request(StatusRequest {}));
            match tokio::time::timeout(connection.options.connect_timeout, call).await {
                Ok(Ok(_)) => {
                    connection.current.store(index, Ordering::Relaxed);
                    return Ok(connection);
                }
                Ok(Err(status)) => failures.push(format!("{}: {}", slot.url, describe(&status))),
                Err(_) => failures.push(format!(
                    "{}: no answer within {:?}",
                    slot.url, connection.options.connect_timeout
                )),
            }
        }
        Err(EtcdError::Unreachable {
            detail: failures.join("; "),
        })
    }

    /// The options the connection was made with.
    pub(crate) fn options(&self) -> &EtcdOptions {
        &self.options
    }

    /// Every endpoint.
    pub(crate) fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The current endpoint's index and unary channel.
    pub(crate) fn unary(&self) -> (usize, Channel) {
        let index = self.current.load(Ordering::Relaxed) % self.slots.len();
        (index, self.slots[index].next_unary())
    }

    /// The unary channel of endpoint `index`.
    pub(crate) fn unary_at(&self, index: usize) -> Channel {
        self.slots[index].next_unary()
    }

    /// The current endpoint's index and watch channel.
    pub(crate) fn watch(&self) -> (usize, Channel) {
        let index = self.current.load(Ordering::Relaxed) % self.slots.len();
        (index, self.slots[index].watch.clone())
    }

    /// The watch channel of endpoint `index`.
    pub(crate) fn watch_at(&self, index: usize) -> Channel {
        self.slots[index % self.slots.len()].watch.clone()
    }

    /// The URL of endpoint `index`.
    pub(crate) fn url(&self, index: usize) -> &str {
        &self.slots[index % self.slots.len()].url
    }

    /// Move on from endpoint `index` to the next one (unless another call already did).
    pub(crate) fn fail_over(&self, index: usize) {
        let next = (index + 1) % self.slots.len();
        if next != index {
            let moved =
                self.current
                    .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
            if moved.is_ok() {
                tracing::debug!(from = %self.slots[index].url, to = %self.slots[next].url, "etcd: failing over");
            }
        }
    }

    /// Run one call with the retry policy: `call` gets the current endpoint's unary channel
    /// and makes one attempt; `what` names the call in errors.
    pub(crate) async fn call<T, F, Fut>(
        &self,
        what: &str,
        retry: Retry,
        mut call: F,
    ) -> Result<T, RpcError>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let timeout = self.options.request_timeout;
        let deadline = Instant::now() + timeout;
        let mut backoff = BACKOFF_MIN;
        loop {
            let (index, channel) = self.unary();
            let remaining = deadline.saturating_duration_since(Instant::now());
            let status = match tokio::time::timeout(remaining, call(channel)).await {
                Ok(Ok(response)) => return Ok(response.into_inner()),
                Ok(Err(status)) => status,
                Err(_) => {
                    let outcome = match retry {
                        Retry::Idempotent => "",
                        Retry::Once => "; it may or may not have been applied",
                    };
                    return Err(RpcError::Unavailable(format!(
                        "etcd {what}: no answer within the request timeout of {timeout:?} (last tried {}){outcome}",
                        self.url(index)
                    )));
                }
            };
            match classify(&status) {
                Failure::Refused(_) => return Err(RpcError::Refused(status)),
                Failure::NotSent | Failure::NotProcessed => self.fail_over(index),
                Failure::Unknown if retry == Retry::Idempotent => self.fail_over(index),
                Failure::Unknown => {
                    return Err(RpcError::Unavailable(format!(
                        "etcd {what} at {}: {}; the connection failed while the request was in flight, so it may or may not have been applied",
                        self.url(index),
                        describe(&status)
                    )));
                }
            }
            if Instant::now() + backoff >= deadline {
                return Err(RpcError::Unavailable(format!(
                    "etcd {what}: gave up after {timeout:?}; last error from {}: {}",
                    self.url(index),
                    describe(&status)
                )));
            }
            tracing::debug!(what, endpoint = %self.url(index), error = %describe(&status), "etcd call failed, retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }
}

/// A request with the metadata orchestra sends with every call: `hasleader`, so that a member
/// without a leader answers at once ("no leader", safe to retry elsewhere) instead of letting
/// the request wait for an election.
pub(crate) fn request<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("hasleader", MetadataValue::from_static("true"));
    request
}

/// The channels of one endpoint.
fn slot(endpoint: &str, options: &EtcdOptions) -> Result<Slot, EtcdError> {
    let url = if endpoint.contains("://") {
        endpoint.to_string()
    } else if options.tls.is_some() {
        format!("https://{endpoint}")
    } else {
        format!("http://{endpoint}")
    };
    let invalid = |source| EtcdError::InvalidEndpoint {
        endpoint: endpoint.to_string(),
        source,
    };
    let base = Endpoint::from_shared(url.clone())
        .map_err(invalid)?
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(options.keep_alive_interval)
        .keep_alive_timeout(options.keep_alive_interval)
        .keep_alive_while_idle(true);
    let base = with_tls(base, &url, options)?;
    let watch = base
        .clone()
        .initial_stream_window_size(WATCH_STREAM_WINDOW)
        .initial_connection_window_size(WATCH_CONNECTION_WINDOW);
    // Each `connect_lazy` is a connection of its own.
    let unary = (0..options.connections.max(1))
        .map(|_| base.clone().connect_lazy())
        .collect();
    Ok(Slot {
        url,
        unary,
        next: AtomicUsize::new(0),
        watch: watch.connect_lazy(),
    })
}

#[cfg(feature = "etcd-tls")]
fn with_tls(endpoint: Endpoint, url: &str, options: &EtcdOptions) -> Result<Endpoint, EtcdError> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let Some(tls) = &options.tls else {
        return Ok(endpoint);
    };
    let mut config = ClientTlsConfig::new();
    if let Some(ca) = &tls.ca_pem {
        config = config.ca_certificate(Certificate::from_pem(ca));
    }
    if let Some((cert, key)) = &tls.identity {
        config = config.identity(Identity::from_pem(cert, key));
    }
    if let Some(domain) = &tls.domain {
        config = config.domain_name(domain.clone());
    }
    endpoint
        .tls_config(config)
        .map_err(|source| EtcdError::Tls {
            endpoint: url.to_string(),
            source,
        })
}

#[cfg(not(feature = "etcd-tls"))]
fn with_tls(endpoint: Endpoint, _url: &str, options: &EtcdOptions) -> Result<Endpoint, EtcdError> {
    match options.tls {
        Some(_) => Err(EtcdError::TlsUnsupported),
        None => Ok(endpoint),
    }
}

/// Decoding limits for a client of the generated stubs.
pub(crate) const fn max_response_bytes() -> usize {
    MAX_RESPONSE_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_endpoint_gets_the_asked_connections_and_calls_take_them_in_turn() {
        let options = EtcdOptions::new(["127.0.0.1:1"]).with_connections(3);
        let three = slot("127.0.0.1:1", &options).expect("a valid endpoint");
        assert_eq!(three.url, "http://127.0.0.1:1");
        assert_eq!(three.unary.len(), 3);
        for turn in 0..7 {
            assert_eq!(three.next.load(Ordering::Relaxed), turn);
            let _channel = three.next_unary();
        }
        let one = slot(
            "127.0.0.1:1",
            &EtcdOptions::new(["127.0.0.1:1"]).with_connections(0),
        )
        .expect("a valid endpoint");
        assert_eq!(one.unary.len(), 1, "0 connections means 1");
    }
}
