//! The sidecar's admin listener: `/live` (the process serves), `/ready` (200 once it has its
//! certificate and a service table, else 503 and why: see
//! [`SidecarStatus::readiness`]), `/metrics` (both proxies' counters and the sidecar's own,
//! in Prometheus' text format) and `POST /shutdown`, which drains and stops the sidecar
//! (for the last container of a Job, as Linkerd's admin offers it), accepted from loopback
//! only since anyone reaching it could stop the pod's traffic.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info};

use super::ShutdownHandle;
use super::status::SidecarStatus;
use crate::l7::drain::{Drain, serve_draining};
use crate::l7::http_proxy::text_response;
use crate::l7::{HttpProxy, InboundProxy, MeshMetrics};

/// The proxies, once the certificate has arrived and they exist.
pub(super) type Proxies = Arc<OnceLock<(Arc<HttpProxy>, Arc<InboundProxy>)>>;

/// What the admin endpoints read and do.
pub(super) struct Admin {
    pub(super) status: watch::Receiver<SidecarStatus>,
    pub(super) shutdown: ShutdownHandle,
    pub(super) proxies: Proxies,
}

impl Admin {
    /// Serves the admin endpoints on `listener` until `drain` starts.
    pub(super) async fn serve(self: Arc<Self>, listener: TcpListener, drain: Drain) {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = drain.draining() => return,
            };
            let Ok((stream, peer)) = accepted else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let admin = self.clone();
            let drain = drain.clone();
            tokio::spawn(async move {
                let _guard = drain.track();
                let service = service_fn(move |request: Request<Incoming>| {
                    let (status, text) = admin.answer(request.method(), request.uri().path(), peer);
                    async move { Ok::<_, Infallible>(text_response(status, text)) }
                });
                let connection = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10))
                    .serve_connection(TokioIo::new(stream), service);
                if let Err(error) =
                    serve_draining(connection, &drain, |c| c.graceful_shutdown()).await
                {
                    debug!(%error, "admin connection ended with an error");
                }
            });
        }
    }

    /// The answer to `method path` from `peer`.
    fn answer(&self, method: &Method, path: &str, peer: SocketAddr) -> (StatusCode, String) {
        match path {
            "/live" => (StatusCode::OK, "live\n".to_owned()),
            "/ready" => match self.status.borrow().readiness(SystemTime::now()) {
                Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
                Err(reason) => (
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {reason}\n"),
                ),
            },
            "/metrics" => (StatusCode::OK, self.metrics()),
            "/shutdown" if *method != Method::POST => (
                StatusCode::METHOD_NOT_ALLOWED,
                "/shutdown takes POST\n".to_owned(),
            ),
            "/shutdown" if !peer.ip().is_loopback() => (
                StatusCode::FORBIDDEN,
                format!("/shutdown is accepted from loopback only, not from {peer}\n"),
            ),
            "/shutdown" => {
                info!(%peer, "shutdown requested on the admin endpoint");
                self.shutdown.shutdown();
                (StatusCode::OK, "shutting down\n".to_owned())
            }
            _ => (
                StatusCode::NOT_FOUND,
                "not found: try /ready, /live, /metrics or POST /shutdown\n".to_owned(),
            ),
        }
    }

    /// The proxies' counters and the sidecar's own gauges.
    fn metrics(&self) -> String {
        let mut out = match self.proxies.get() {
            Some((outbound, inbound)) => {
                MeshMetrics::render_all(&[outbound.metrics(), inbound.metrics()])
            }
            None => String::new(),
        };
        let status = self.status.borrow().clone();
        let ready = u8::from(status.readiness(SystemTime::now()).is_ok());
        let expiry = status
            .certificate_expiry
            .and_then(|at| at.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |since| since.as_secs());
        let gauges = [
            (
                "orchestra_sidecar_ready",
                "gauge",
                "1 when the sidecar has its certificate and a service table.",
                u64::from(ready),
            ),
            (
                "orchestra_sidecar_certificate_expiry_seconds",
                "gauge",
                "When the mesh certificate presented now expires (Unix time; 0: none yet).",
                expiry,
            ),
            (
                "orchestra_sidecar_certificates_issued_total",
                "counter",
                "Mesh certificates obtained (the first one and the renewals).",
                status.certificates_issued,
            ),
            (
                "orchestra_sidecar_service_ports",
                "gauge",
                "Service ports in the last table from the API server.",
                status.service_ports.unwrap_or(0) as u64,
            ),
        ];
        for (name, kind, help, value) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> (Admin, watch::Sender<SidecarStatus>) {
        let (tx, status) = watch::channel(SidecarStatus::default());
        let admin = Admin {
            status,
            shutdown: ShutdownHandle::new(),
            proxies: Arc::default(),
        };
        (admin, tx)
    }

    #[test]
    fn readiness_and_shutdown_answers() {
        let (admin, status) = admin();
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let (code, text) = admin.answer(&Method::GET, "/ready", local);
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(text, "not ready: no mesh certificate yet\n");
        assert_eq!(admin.answer(&Method::GET, "/live", local).0, StatusCode::OK);
        status.send_modify(|s| {
            s.certificate_expiry = Some(SystemTime::now() + Duration::from_secs(3600));
            s.service_ports = Some(2);
        });
        assert_eq!(
            admin.answer(&Method::GET, "/ready", remote).0,
            StatusCode::OK
        );
        let metrics = admin.answer(&Method::GET, "/metrics", local).1;
        assert!(metrics.contains("orchestra_sidecar_ready 1\n"), "{metrics}");
        assert!(
            metrics.contains("orchestra_sidecar_service_ports 2\n"),
            "{metrics}"
        );

        assert_eq!(
            admin.answer(&Method::GET, "/shutdown", local).0,
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(
            admin.answer(&Method::POST, "/shutdown", remote).0,
            StatusCode::FORBIDDEN
        );
        assert!(!admin.shutdown.is_requested());
        assert_eq!(
            admin.answer(&Method::POST, "/shutdown", local).0,
            StatusCode::OK
        );
        assert!(admin.shutdown.is_requested());
        assert_eq!(
            admin.answer(&Method::GET, "/nope", local).0,
            StatusCode::NOT_FOUND
        );
    }
}
