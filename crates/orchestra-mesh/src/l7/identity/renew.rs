//! The sidecar's renewal task ([`spawn_renewal`]): it keeps [`MeshCredentials`] fresh by
//! asking a [`CertificateIssuer`] for a new certificate (with a new key) once a configurable
//! fraction of the current one's lifetime has passed (70% by default, see
//! [`renew_decision`]), and swaps it into the live TLS configuration: new handshakes present
//! the new certificate, established connections keep theirs and are never dropped.
//!
//! A failed renewal is retried with a doubling backoff; the current certificate stays in use
//! meanwhile (until it expires, there is nothing better to present), so a control plane that
//! is down for less than the remaining 30% of a lifetime (about 7 hours of 24) is never
//! noticed by the data path. The task's progress is published as [`RenewalStatus`].
//!
//! Time is read through a [`Clock`], so that tests drive the schedule with tokio's paused
//! time ([`tokio_clock`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::client::{CertificateIssuer, IssueError, request_certificate};
use super::rotation::{RENEW_AT_FRACTION, RenewDecision, renew_decision};
use super::tls::MeshCredentials;

/// The wall clock the task reads.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The system's wall clock.
pub fn system_clock() -> Clock {
    Arc::new(SystemTime::now)
}

/// A wall clock that starts at the system's time now and then advances with tokio's clock
/// (so that under paused time it jumps as tokio's timers do).
pub fn tokio_clock() -> Clock {
    let base = SystemTime::now();
    let start = tokio::time::Instant::now();
    Arc::new(move || base + start.elapsed())
}

/// The settings of the renewal task.
#[derive(Clone, Debug)]
pub struct RenewalConfig {
    /// The fraction of a certificate's lifetime after which it is renewed (0.7).
    pub renew_at: f64,
    /// The wait after a first failed attempt (1 s); it doubles at each failure.
    pub initial_backoff: Duration,
    /// The longest wait between attempts (1 minute).
    pub max_backoff: Duration,
}

impl Default for RenewalConfig {
    fn default() -> Self {
        RenewalConfig {
            renew_at: RENEW_AT_FRACTION,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        }
    }
}

/// What the task has done so far.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenewalStatus {
    /// Certificates obtained and swapped in.
    pub renewals: u64,
    /// Failed attempts (each retried).
    pub failures: u64,
    /// Failed attempts since the last success.
    pub consecutive_failures: u64,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// The expiry of the certificate presented now.
    pub not_after: SystemTime,
}

/// The running task: its status, and a way to stop it.
#[derive(Debug)]
pub struct RenewalHandle {
    status: watch::Receiver<RenewalStatus>,
    task: JoinHandle<()>,
}

impl RenewalHandle {
    /// The task's status, updated after every attempt.
    pub fn status(&self) -> watch::Receiver<RenewalStatus> {
        self.status.clone()
    }

    /// Stops the task.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for RenewalHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the renewal task for `credentials` (see the module docs). It runs until the
/// handle is stopped or dropped.
pub fn spawn_renewal(
    credentials: Arc<MeshCredentials>,
    issuer: Arc<dyn CertificateIssuer>,
    config: RenewalConfig,
    clock: Clock,
) -> RenewalHandle {
    let (tx, status) = watch::channel(RenewalStatus {
        renewals: 0,
        failures: 0,
        consecutive_failures: 0,
        last_error: None,
        not_after: credentials.issued().not_after,
    });
    let task = tokio::spawn(run(credentials, issuer, config, clock, tx));
    RenewalHandle { status, task }
}

async fn run(
    credentials: Arc<MeshCredentials>,
    issuer: Arc<dyn CertificateIssuer>,
    config: RenewalConfig,
    clock: Clock,
    status: watch::Sender<RenewalStatus>,
) {
    let mut backoff = config.initial_backoff;
    loop {
        let current = credentials.issued();
        let decision = renew_decision(
            current.not_before,
            current.not_after,
            clock(),
            config.renew_at,
        );
        if let RenewDecision::Keep { renew_in } = decision {
            tokio::time::sleep(renew_in).await;
            continue;
        }
        match renew_once(&credentials, &*issuer, &current.identity).await {
            Ok(not_after) => {
                info!(identity = %current.identity, ?not_after, "mesh certificate renewed");
                backoff = config.initial_backoff;
                status.send_modify(|s| {
                    s.renewals += 1;
                    s.consecutive_failures = 0;
                    s.not_after = not_after;
                });
            }
            Err(error) => {
                // The current certificate stays in use: a failed renewal changes nothing
                // on the data path until the certificate expires.
                warn!(identity = %current.identity, %error, retry_in = ?backoff, ?decision, "mesh certificate renewal failed");
                status.send_modify(|s| {
                    s.failures += 1;
                    s.consecutive_failures += 1;
                    s.last_error = Some(error.to_string());
                });
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}

/// One renewal: a new key and certificate, swapped in. Returns the new expiry.
async fn renew_once(
    credentials: &MeshCredentials,
    issuer: &dyn CertificateIssuer,
    identity: &super::SpiffeId,
) -> Result<SystemTime, IssueError> {
    let (key, certified) = request_certificate(issuer, identity).await?;
    let not_after = certified.issued.not_after;
    credentials
        .rotate(&key, certified.issued)
        .map_err(|e| IssueError::BadAnswer(format!("the certificate does not fit the key: {e}")))?;
    Ok(not_after)
}
