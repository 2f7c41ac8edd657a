//! The server's Prometheus metrics: requests counted by protocol, verb, kind and status code,
//! and the watches open now, rendered in Prometheus' text format on `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// One counter's labels: protocol (`grpc`, `http`), verb, kind, status code.
type Labels = (&'static str, &'static str, String, u16);

/// The counters (a mutex around a small map: requests hold it for one increment).
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<Labels, u64>>,
    watches: AtomicI64,
    /// Denied requests by protocol, verb and resource.
    denied: Mutex<BTreeMap<(&'static str, &'static str, String), u64>>,
    unauthenticated: AtomicI64,
    /// Requests refused by a per-user limit, by protocol and limit (`rate`, `watches`).
    throttled: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Metrics {
    /// Counts one request.
    pub fn record(&self, protocol: &'static str, verb: &'static str, kind: &str, code: u16) {
        let mut requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *requests
            .entry((protocol, verb, kind.to_owned(), code))
            .or_default() += 1;
    }

    /// Counts one request that authorization denied.
    pub fn denied(&self, protocol: &'static str, verb: &'static str, resource: &str) {
        let mut denied = self
            .denied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *denied
            .entry((protocol, verb, resource.to_owned()))
            .or_default() += 1;
    }

    /// Counts one request refused for want of valid credentials.
    pub fn unauthenticated(&self) {
        self.unauthenticated.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one request refused by a per-user limit (`limit`: `rate` or `watches`).
    pub fn throttled(&self, protocol: &'static str, limit: &'static str) {
        let mut throttled = self
            .throttled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *throttled.entry((protocol, limit)).or_default() += 1;
    }

    /// The number of requests refused by `limit` so far (both protocols).
    pub fn throttled_count(&self, limit: &str) -> u64 {
        let throttled = self
            .throttled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        throttled
            .iter()
            .filter(|((_, l), _)| *l == limit)
            .map(|(_, n)| *n)
            .sum()
    }

    /// The number of denials of `verb` on `resource` so far (both protocols).
    pub fn denied_count(&self, verb: &str, resource: &str) -> u64 {
        let denied = self
            .denied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        denied
            .iter()
            .filter(|((_, v, r), _)| *v == verb && r == resource)
            .map(|(_, n)| *n)
            .sum()
    }

    /// A watch opened; the guard counts it closed when dropped.
    pub fn watch_opened(self: &std::sync::Arc<Self>) -> WatchGuard {
        self.watches.fetch_add(1, Ordering::Relaxed);
        WatchGuard(self.clone())
    }

    /// The number of requests with these labels so far.
    pub fn count(&self, protocol: &str, verb: &str, kind: &str, code: u16) -> u64 {
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        requests
            .iter()
            .filter(|((p, v, k, c), _)| *p == protocol && *v == verb && k == kind && *c == code)
            .map(|(_, n)| *n)
            .sum()
    }

    /// The metrics in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP orchestra_apiserver_requests_total API requests by protocol, verb, kind and HTTP status code.\n",
        );
        out.push_str("# TYPE orchestra_apiserver_requests_total counter\n");
        let requests = self
            .requests
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((protocol, verb, kind, code), n) in requests.iter() {
            let _ = writeln!(
                out,
                "orchestra_apiserver_requests_total{{protocol=\"{protocol}\",verb=\"{verb}\",kind=\"{}\",code=\"{code}\"}} {n}",
                escape(kind)
            );
        }
        drop(requests);
        out.push_str("# HELP orchestra_apiserver_watches Watches open now.\n");
        out.push_str("# TYPE orchestra_apiserver_watches gauge\n");
        let _ = writeln!(
            out,
            "orchestra_apiserver_watches {}",
            self.watches.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP orchestra_apiserver_denied_requests_total Requests authorization refused, by protocol, verb and resource.\n",
        );
        out.push_str("# TYPE orchestra_apiserver_denied_requests_total counter\n");
        let denied = self
            .denied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((protocol, verb, resource), n) in denied.iter() {
            let _ = writeln!(
                out,
                "orchestra_apiserver_denied_requests_total{{protocol=\"{protocol}\",verb=\"{verb}\",resource=\"{}\"}} {n}",
                escape(resource)
            );
        }
        drop(denied);
        out.push_str(
            "# HELP orchestra_apiserver_unauthenticated_requests_total Requests refused for want of valid credentials.\n",
        );
        out.push_str("# TYPE orchestra_apiserver_unauthenticated_requests_total counter\n");
        let _ = writeln!(
            out,
            "orchestra_apiserver_unauthenticated_requests_total {}",
            self.unauthenticated.load(Ordering::Relaxed)
        );
        out.push_str(
            "# HELP orchestra_apiserver_throttled_requests_total Requests refused with 429 by a per-user limit, by protocol and limit (rate, watches).\n",
        );
        out.push_str("# TYPE orchestra_apiserver_throttled_requests_total counter\n");
        let throttled = self
            .throttled
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ((protocol, limit), n) in throttled.iter() {
            let _ = writeln!(
                out,
                "orchestra_apiserver_throttled_requests_total{{protocol=\"{protocol}\",limit=\"{limit}\"}} {n}"
            );
        }
        out
    }
}

/// Counts a watch as open while it lives.
#[derive(Debug)]
pub struct WatchGuard(std::sync::Arc<Metrics>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.watches.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A label value with `\`, `"` and newlines escaped, as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_the_watch_gauge() {
        let metrics = std::sync::Arc::new(Metrics::default());
        metrics.record("http", "get", "Pod", 200);
        metrics.record("http", "get", "Pod", 200);
        metrics.record("grpc", "create", "Weird\"Kind", 409);
        let guard = metrics.watch_opened();
        let text = metrics.render();
        assert!(text.contains(
            "orchestra_apiserver_requests_total{protocol=\"http\",verb=\"get\",kind=\"Pod\",code=\"200\"} 2\n"
        ));
        assert!(text.contains("kind=\"Weird\\\"Kind\",code=\"409\"} 1\n"));
        assert!(text.contains("orchestra_apiserver_watches 1\n"));
        drop(guard);
        assert!(metrics.render().contains("orchestra_apiserver_watches 0\n"));
        assert_eq!(metrics.count("http", "get", "Pod", 200), 2);
        metrics.denied("grpc", "delete", "pods");
        metrics.unauthenticated();
        let text = metrics.render();
        assert!(text.contains(
            "orchestra_apiserver_denied_requests_total{protocol=\"grpc\",verb=\"delete\",resource=\"pods\"} 1\n"
        ));
        assert!(text.contains("orchestra_apiserver_unauthenticated_requests_total 1\n"));
        assert_eq!(metrics.denied_count("delete", "pods"), 1);
        metrics.throttled("http", "rate");
        metrics.throttled("grpc", "rate");
        metrics.throttled("http", "watches");
        assert!(metrics.render().contains(
            "orchestra_apiserver_throttled_requests_total{protocol=\"http\",limit=\"rate\"} 1\n"
        ));
        assert_eq!(metrics.throttled_count("rate"), 2);
    }
}
