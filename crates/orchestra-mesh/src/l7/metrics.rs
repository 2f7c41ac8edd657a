//! [`MeshMetrics`]: what the HTTP proxy counts, rendered in Prometheus' text format on its
//! admin address: requests by authority and status, a latency histogram, retries, ejections
//! and opaque TCP connections and bytes, and the servers refused for presenting another
//! identity than their endpoint's; on the inbound side also the calls refused by the
//! authorization policy and the failed mTLS handshakes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// The upper bounds (seconds) of the latency histogram's buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Reads one counter of a [`MeshMetrics`].
type Reading = fn(&MeshMetrics) -> u64;

/// The proxy's counters; shared (`Arc`) between its connections and its admin endpoint.
#[derive(Debug, Default)]
pub struct MeshMetrics {
    /// (authority, status) -> requests.
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
    /// Retries made by the retry policies (shared with them).
    pub(crate) retries: Arc<AtomicU64>,
    /// Endpoint ejections by the circuit breakers (shared with them).
    pub(crate) ejections: Arc<AtomicU64>,
    /// Outbound handshakes refused because the server's identity was not the one expected
    /// of the endpoint (shared with the proxy's `ClientConfigs`).
    pub(crate) identity_mismatches: Arc<AtomicU64>,
    opaque_connections: AtomicU64,
    opaque_bytes: AtomicU64,
    /// The inbound side's counters (the `direction` label says which side).
    inbound: bool,
    denied_http: AtomicU64,
    denied_tcp: AtomicU64,
    tls_failures: AtomicU64,
}

impl MeshMetrics {
    /// Counters of an inbound proxy (labelled `direction="inbound"`).
    pub fn inbound() -> Self {
        MeshMetrics {
            inbound: true,
            ..MeshMetrics::default()
        }
    }

    /// Counts one HTTP request refused (403) by the authorization policy.
    pub fn record_denied_http(&self) {
        self.denied_http.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one opaque TCP connection refused (closed) by the authorization policy.
    pub fn record_denied_tcp(&self) {
        self.denied_tcp.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one failed mTLS handshake (no, expired or untrusted certificate, garbage).
    pub fn record_tls_failure(&self) {
        self.tls_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls refused by the authorization policy: (HTTP requests, TCP connections).
    pub fn denied(&self) -> (u64, u64) {
        (
            self.denied_http.load(Ordering::Relaxed),
            self.denied_tcp.load(Ordering::Relaxed),
        )
    }

    /// Failed mTLS handshakes.
    pub fn tls_failures(&self) -> u64 {
        self.tls_failures.load(Ordering::Relaxed)
    }

    /// Counts one HTTP request for `authority` answered with `status` after `took`.
    pub fn record_request(&self, authority: &str, status: u16, took: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((authority.to_owned(), status))
            .or_default() += 1;
        let secs = took.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(LATENCY_BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// Counts one opaque (non-HTTP) TCP connection that moved `bytes` in both directions.
    pub fn record_opaque(&self, bytes: u64) {
        self.opaque_connections.fetch_add(1, Ordering::Relaxed);
        self.opaque_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Requests counted for `authority` with `status`.
    pub fn requests(&self, authority: &str, status: u16) -> u64 {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(authority.to_owned(), status))
            .copied()
            .unwrap_or(0)
    }

    /// Retries made.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Endpoint ejections.
    pub fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Outbound mTLS handshakes refused because the server presented another identity than
    /// the one expected of the endpoint (a connection failure for that endpoint).
    pub fn identity_mismatches(&self) -> u64 {
        self.identity_mismatches.load(Ordering::Relaxed)
    }

    /// Opaque TCP connections forwarded.
    pub fn opaque_connections(&self) -> u64 {
        self.opaque_connections.load(Ordering::Relaxed)
    }

    /// Everything in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        MeshMetrics::render_all(&[self])
    }

    fn direction(&self) -> &'static str {
        if self.inbound { "inbound" } else { "outbound" }
    }

    /// The counters of several proxies (a sidecar's outbound and inbound sides) in one
    /// exposition: each metric family once, its samples labelled by `direction`.
    pub fn render_all(sources: &[&MeshMetrics]) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP orchestra_mesh_requests_total HTTP requests by authority and status.\n",
        );
        out.push_str("# TYPE orchestra_mesh_requests_total counter\n");
        for metrics in sources {
            let direction = metrics.direction();
            for ((authority, status), count) in metrics
                .requests
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
            {
                let authority = authority.replace(['\\', '"', '\n'], "_");
                let _ = writeln!(
                    out,
                    "orchestra_mesh_requests_total{{direction=\"{direction}\",authority=\"{authority}\",status=\"{status}\"}} {count}"
                );
            }
        }
        out.push_str(
            "# HELP orchestra_mesh_response_latency_seconds Time to the response headers.\n",
        );
        out.push_str("# TYPE orchestra_mesh_response_latency_seconds histogram\n");
        for metrics in sources {
            let direction = metrics.direction();
            for (bucket, bound) in metrics.buckets.iter().zip(LATENCY_BUCKETS) {
                let _ = writeln!(
                    out,
                    "orchestra_mesh_response_latency_seconds_bucket{{direction=\"{direction}\",le=\"{bound}\"}} {}",
                    bucket.load(Ordering::Relaxed)
                );
            }
            let count = metrics.latency_count.load(Ordering::Relaxed);
            let sum = metrics.latency_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(
                out,
                "orchestra_mesh_response_latency_seconds_bucket{{direction=\"{direction}\",le=\"+Inf\"}} {count}"
            );
            let _ = writeln!(
                out,
                "orchestra_mesh_response_latency_seconds_sum{{direction=\"{direction}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "orchestra_mesh_response_latency_seconds_count{{direction=\"{direction}\"}} {count}"
            );
        }
        out.push_str("# HELP orchestra_mesh_authz_denied_total Calls refused by the authorization policy.\n# TYPE orchestra_mesh_authz_denied_total counter\n");
        for metrics in sources {
            let direction = metrics.direction();
            let (denied_http, denied_tcp) = metrics.denied();
            for (protocol, value) in [("http", denied_http), ("tcp", denied_tcp)] {
                let _ = writeln!(
                    out,
                    "orchestra_mesh_authz_denied_total{{direction=\"{direction}\",protocol=\"{protocol}\"}} {value}"
                );
            }
        }
        out.push_str("# HELP orchestra_mesh_tls_handshake_failures_total Failed mTLS handshakes.\n# TYPE orchestra_mesh_tls_handshake_failures_total counter\n");
        for metrics in sources {
            let _ = writeln!(
                out,
                "orchestra_mesh_tls_handshake_failures_total{{direction=\"{}\"}} {}",
                metrics.direction(),
                metrics.tls_failures()
            );
        }
        let counters: [(&str, &str, Reading); 5] = [
            (
                "orchestra_mesh_retries_total",
                "Requests sent again after a retryable failure.",
                MeshMetrics::retries,
            ),
            (
                "orchestra_mesh_ejections_total",
                "Endpoints ejected by their circuit breaker.",
                MeshMetrics::ejections,
            ),
            (
                "orchestra_mesh_identity_mismatches_total",
                "mTLS handshakes refused because the server was not the identity expected of its endpoint.",
                MeshMetrics::identity_mismatches,
            ),
            (
                "orchestra_mesh_tcp_connections_total",
                "Opaque TCP connections forwarded.",
                MeshMetrics::opaque_connections,
            ),
            (
                "orchestra_mesh_tcp_bytes_total",
                "Bytes moved by opaque TCP connections.",
                |m| m.opaque_bytes.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for metrics in sources {
                let _ = writeln!(
                    out,
                    "{name}{{direction=\"{}\"}} {}",
                    metrics.direction(),
                    value(metrics)
                );
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let metrics = MeshMetrics::default();
        metrics.record_request("web.shop", 200, Duration::from_millis(3));
        metrics.record_request("web.shop", 200, Duration::from_millis(30));
        metrics.record_request("web\"x", 503, Duration::from_secs(20));
        metrics.retries.fetch_add(2, Ordering::Relaxed);
        metrics.identity_mismatches.fetch_add(1, Ordering::Relaxed);
        let text = metrics.render();
        assert!(
            text.contains("orchestra_mesh_identity_mismatches_total{direction=\"outbound\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("orchestra_mesh_requests_total{direction=\"outbound\",authority=\"web.shop\",status=\"200\"} 2\n"), "{text}");
        assert!(
            text.contains("authority=\"web_x\",status=\"503\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("orchestra_mesh_response_latency_seconds_bucket{direction=\"outbound\",le=\"0.005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("orchestra_mesh_response_latency_seconds_bucket{direction=\"outbound\",le=\"0.05\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("orchestra_mesh_response_latency_seconds_bucket{direction=\"outbound\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("orchestra_mesh_retries_total{direction=\"outbound\"} 2\n"),
            "{text}"
        );
        assert_eq!(metrics.requests("web.shop", 200), 2);
    }
}
