//! The sidecar's renewal task ([`spawn_renewal`]): it keeps a [`MeshTls`]'s credentials
//! fresh by asking a [`CertificateIssuer`] for a new certificate (with a new key) once a
//! configurable fraction of the current one's lifetime has passed (70% by default, see
//! [`renew_decision`]), and swaps it into the live TLS configuration: new handshakes present
//! the new certificate, established connections keep theirs and are never dropped.
//!
//! It also follows trust-anchor rotations: the trust roots that come with each certificate
//! refresh the bundle ([`TrustBundle::refreshed`](super::TrustBundle::refreshed)): a new root
//! is trusted from then on, and a root the identity service no longer hands out is kept until
//! it expires (the task wakes then to drop it), since peers that have not renewed yet may
//! still present certificates it signed.
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
use super::tls::{MeshCredentials, MeshTls};

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
    /// How many roots the trust bundle holds now (two during a trust-anchor rotation).
    pub trust_roots: usize,
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

/// Starts the renewal task for `tls`'s credentials and trust bundle (see the module docs).
/// The roots in the bundle now count as the ones the identity service hands out. It runs
/// until the handle is stopped or dropped.
pub fn spawn_renewal(
    tls: MeshTls,
    issuer: Arc<dyn CertificateIssuer>,
    config: RenewalConfig,
    clock: Clock,
) -> RenewalHandle {
    let (tx, status) = watch::channel(RenewalStatus {
        renewals: 0,
        failures: 0,
        consecutive_failures: 0,
        last_error: None,
        not_after: tls.credentials().issued().not_after,
        trust_roots: tls.bundle().roots().len(),
    });
    let task = tokio::spawn(run(tls, issuer, config, clock, tx));
    RenewalHandle { status, task }
}

async fn run(
    tls: MeshTls,
    issuer: Arc<dyn CertificateIssuer>,
    config: RenewalConfig,
    clock: Clock,
    status: watch::Sender<RenewalStatus>,
) {
    let mut backoff = config.initial_backoff;
    // The roots of the identity service's last answer: the others in the bundle are kept
    // only until they expire.
    let mut handed_out = tls.bundle().roots().to_vec();
    loop {
        let now = clock();
        drop_expired_roots(&tls, &handed_out, now, &status);
        let current = tls.credentials().issued();
        let decision = renew_decision(current.not_before, current.not_after, now, config.renew_at);
        if let RenewDecision::Keep { renew_in } = decision {
            // Wake for the renewal, or earlier when a retired root expires.
            let expiry = tls
                .bundle()
                .next_expiry_outside(&handed_out)
                .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO));
            tokio::time::sleep(expiry.map_or(renew_in, |e| e.min(renew_in))).await;
            continue;
        }
        match renew_once(&tls, &*issuer, &current.identity, &clock).await {
            Ok((not_after, roots)) => {
                info!(identity = %current.identity, ?not_after, trust_roots = tls.bundle().roots().len(), "mesh certificate renewed");
                handed_out = roots;
                backoff = config.initial_backoff;
                status.send_modify(|s| {
                    s.renewals += 1;
                    s.consecutive_failures = 0;
                    s.not_after = not_after;
                    s.trust_roots = tls.bundle().roots().len();
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

/// Drops the roots of `tls`'s bundle that are not in `handed_out` and have expired at `now`.
fn drop_expired_roots(
    tls: &MeshTls,
    handed_out: &[rustls::pki_types::CertificateDer<'static>],
    now: SystemTime,
    status: &watch::Sender<RenewalStatus>,
) {
    let bundle = tls.bundle();
    if bundle
        .next_expiry_outside(handed_out)
        .is_none_or(|at| now < at)
    {
        return;
    }
    match bundle.refreshed(handed_out, now) {
        Ok(pruned) => {
            info!(
                trust_roots = pruned.roots().len(),
                "an expired mesh trust root was dropped"
            );
            let roots = pruned.roots().len();
            tls.set_bundle(pruned);
            status.send_modify(|s| s.trust_roots = roots);
        }
        // The handed-out roots were checked when they arrived; keep the bundle as it is.
        Err(error) => warn!(%error, "the mesh trust bundle could not be pruned"),
    }
}

/// One renewal: a new key and certificate swapped in, and the trust bundle refreshed with
/// the roots that came with it. Returns the new expiry and those roots. Nothing changes
/// unless both the certificate and the roots are usable.
async fn renew_once(
    tls: &MeshTls,
    issuer: &dyn CertificateIssuer,
    identity: &super::SpiffeId,
    clock: &Clock,
) -> Result<(SystemTime, Vec<rustls::pki_types::CertificateDer<'static>>), IssueError> {
    let (key, certified) = request_certificate(issuer, identity).await?;
    let not_after = certified.issued.not_after;
    let bundle = tls
        .bundle()
        .refreshed(&certified.trust_roots, clock())
        .map_err(|e| IssueError::BadAnswer(e.to_string()))?;
    let credentials: &MeshCredentials = tls.credentials();
    credentials
        .rotate(&key, certified.issued)
        .map_err(|e| IssueError::BadAnswer(format!("the certificate does not fit the key: {e}")))?;
    tls.set_bundle(bundle);
    Ok((not_after, certified.trust_roots))
}
