//! Leader election on a [`Lease`] object (`coordination.k8s.io/v1`), with client-go's
//! semantics: one of several candidates leads; it renews the lease every retry period; one that
//! cannot renew within its renew deadline stops acting before its lease expires; a candidate
//! takes the lease when it is absent, released, or has not changed for its duration on the
//! candidate's own clock.
//!
//! ```
//! use std::time::Duration;
//! use orchestra_api::LocalClient;
//! use orchestra_controller::leader::{LeaderElectionConfig, LeaderElector};
//! use orchestra_store::MemStore;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
//! let client = LocalClient::new(MemStore::new());
//! let config = LeaderElectionConfig::new("kube-system", "my-manager", "host-a");
//! let elector = LeaderElector::new(client, config).expect("valid durations");
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(elector.run(async move { let _ = stopped.await; }, |leadership| async move {
//!     // Act while leading; stop when `lost` resolves.
//!     leadership.lost().await;
//! }));
//! tokio::time::sleep(Duration::from_secs(1)).await;
//! let _ = stop.send(()); // releases the lease on the way out
//! running.await.unwrap();
//! # });
//! ```
//!
//! Every write is conditional on the resourceVersion read just before it, so a leader whose
//! view is stale gets a conflict instead of overwriting its successor's record. On shutdown the
//! leader releases the lease (an empty holder), so that a successor takes over at once instead
//! of waiting for expiry.
//!
//! # Layout
//! - `decide`: [`ElectionState`] and [`Step`], the pure decision (what was seen, when, on the
//!   candidate's clock -> what to do), unit-tested with explicit times.
//! - this module: [`LeaderElector`], which reads and writes the lease through a
//!   [`Client`] and runs the leading future.

mod decide;

use std::future::Future;
use std::time::Duration;

use orchestra_api::meta::MicroTime;
use orchestra_api::resources::{Lease, LeaseSpec};
use orchestra_api::{ApiError, Client, ObjectMeta};
use tokio::sync::watch;
use tokio::time::Instant;

pub use decide::{ElectionState, Record, Step};

/// The lease's name, durations and this candidate's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderElectionConfig {
    /// The lease's namespace (`kube-system` for the controller manager).
    pub namespace: String,
    /// The lease's name.
    pub name: String,
    /// This candidate's identity, unique among the candidates (host name and a random suffix).
    pub identity: String,
    /// How long a lease lasts without renewal (default 15 s).
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it stops acting (default 10 s); shorter
    /// than the lease duration.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and leaders renew (default 2 s); shorter than the
    /// renew deadline.
    pub retry_period: Duration,
}

/// Why a configuration cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaderElectionError {
    /// The durations do not leave a leader time to stop before its lease expires.
    #[error(
        "leader election needs retry period ({retry:?}) < renew deadline ({renew:?}) < lease duration ({lease:?}), and a lease of at least 1 s"
    )]
    Durations {
        /// The configured retry period.
        retry: Duration,
        /// The configured renew deadline.
        renew: Duration,
        /// The configured lease duration.
        lease: Duration,
    },
    /// The lease's name, namespace or the identity is empty.
    #[error("leader election needs a lease namespace, a lease name and an identity (got {0:?})")]
    Missing(&'static str),
}

impl LeaderElectionConfig {
    /// The lease `namespace/name` for `identity`, with the default durations (15 s, 10 s, 2 s).
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        identity: impl Into<String>,
    ) -> Self {
        LeaderElectionConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks that the durations leave a leader time to stop before its lease expires.
    pub fn validate(&self) -> Result<(), LeaderElectionError> {
        for (what, value) in [
            ("namespace", &self.namespace),
            ("name", &self.name),
            ("identity", &self.identity),
        ] {
            if value.is_empty() {
                return Err(LeaderElectionError::Missing(what));
            }
        }
        if self.retry_period.is_zero()
            || self.retry_period >= self.renew_deadline
            || self.renew_deadline >= self.lease_duration
            || self.lease_duration < Duration::from_secs(1)
        {
            return Err(LeaderElectionError::Durations {
                retry: self.retry_period,
                renew: self.renew_deadline,
                lease: self.lease_duration,
            });
        }
        Ok(())
    }

    fn lease_seconds(&self) -> i32 {
        i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// Handed to the leading future: says whether we still lead, and resolves [`Leadership::lost`]
/// when we stop (lost the lease, or shutting down). Cheap to clone.
#[derive(Clone, Debug)]
pub struct Leadership {
    leading: watch::Receiver<bool>,
}

impl Leadership {
    /// Whether we still lead.
    pub fn is_leading(&self) -> bool {
        *self.leading.borrow()
    }

    /// Resolves once we no longer lead: stop acting then.
    pub async fn lost(&self) {
        let mut leading = self.leading.clone();
        // A closed channel means the elector is gone: not leading either.
        let _ = leading.wait_for(|leading| !*leading).await;
    }
}

/// The outcome of one attempt to acquire or renew.
#[derive(Debug)]
enum Attempt {
    /// We hold the lease.
    Leading,
    /// Someone else holds it.
    Held,
    /// Our write lost a race (conflict or already exists): read again.
    Raced,
}

/// One candidate: campaigns for the lease, runs the leading future while it holds it.
#[derive(Debug)]
pub struct LeaderElector<C> {
    client: C,
    config: LeaderElectionConfig,
    state: ElectionState,
    /// The lease as we last wrote it (its resourceVersion guards the release).
    written: Option<Lease>,
}

/// Why [`LeaderElector::run`]'s leading future stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TermEnd {
    Shutdown,
    Lost,
    Finished,
}

impl<C: Client> LeaderElector<C> {
    /// A candidate with `config`, which must [validate](LeaderElectionConfig::validate).
    pub fn new(client: C, config: LeaderElectionConfig) -> Result<Self, LeaderElectionError> {
        config.validate()?;
        Ok(LeaderElector {
            client,
            config,
            state: ElectionState::new(),
            written: None,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &LeaderElectionConfig {
        &self.config
    }

    /// Campaigns, and while leading runs `lead(leadership)`; when leadership is lost the
    /// future is told through [`Leadership::lost`], dropped if it has not finished before the
    /// lease could expire, and the candidate campaigns again with a fresh `lead(..)`. Returns
    /// when `shutdown` resolves (after the leading future ended and the lease was released) or
    /// when a leading future finishes by itself (the lease is released then too).
    pub async fn run<F, Fut>(mut self, shutdown: impl Future<Output = ()>, mut lead: F)
    where
        F: FnMut(Leadership) -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = self.acquire() => {}
            }
            tracing::info!(identity = %self.config.identity, lease = %self.config.name, "became the leader");
            let (leading_tx, leading_rx) = watch::channel(true);
            let mut leading = std::pin::pin!(lead(Leadership {
                leading: leading_rx
            }));
            let end = tokio::select! {
                () = &mut shutdown => TermEnd::Shutdown,
                () = self.keep_renewing() => TermEnd::Lost,
                () = &mut leading => TermEnd::Finished,
            };
            let _ = leading_tx.send(false);
            if end != TermEnd::Finished {
                // Give the leading future until halfway between the renew deadline and the
                // lease's expiry to wind down, then drop it: nothing of ours acts once a
                // successor may have taken over.
                let hard_stop = self.hard_stop().unwrap_or_else(Instant::now);
                if tokio::time::timeout_at(hard_stop, &mut leading)
                    .await
                    .is_err()
                {
                    tracing::warn!(identity = %self.config.identity, "the leading task did not stop in time; dropped it");
                }
            }
            match end {
                TermEnd::Lost => {
                    tracing::warn!(identity = %self.config.identity, lease = %self.config.name, "lost the lease; stopped leading");
                    self.state.stepped_down();
                    self.written = None;
                }
                TermEnd::Shutdown | TermEnd::Finished => {
                    self.release().await;
                    return;
                }
            }
        }
    }

    /// The instant by which the leading future must be gone.
    fn hard_stop(&self) -> Option<Instant> {
        let deadline = self.state.renew_deadline(self.config.renew_deadline)?;
        let expiry = self.state.lease_expiry(self.config.lease_duration)?;
        Some(deadline + (expiry - deadline) / 2)
    }

    /// Tries every retry period until we lead.
    async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew(Instant::now()).await {
                Ok(Attempt::Leading) => return,
                Ok(Attempt::Held | Attempt::Raced) => {}
                Err(err) => {
                    tracing::warn!(identity = %self.config.identity, error = %err, "could not read or write the lease");
                }
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renews every retry period; returns once we cannot renew before the renew deadline, or
    /// someone else holds the lease.
    async fn keep_renewing(&mut self) {
        loop {
            tokio::time::sleep(self.config.retry_period).await;
            loop {
                let Some(deadline) = self.state.renew_deadline(self.config.renew_deadline) else {
                    return;
                };
                let started = Instant::now();
                if started >= deadline {
                    return;
                }
                match tokio::time::timeout_at(deadline, self.try_acquire_or_renew(started)).await {
                    Err(_) => return,
                    Ok(Ok(Attempt::Leading)) => break,
                    Ok(Ok(Attempt::Held)) => return,
                    Ok(Ok(Attempt::Raced)) => {}
                    Ok(Err(err)) => {
                        tracing::warn!(identity = %self.config.identity, error = %err, "could not renew the lease");
                    }
                }
                let retry_at = (Instant::now() + self.config.retry_period).min(deadline);
                tokio::time::sleep_until(retry_at).await;
            }
        }
    }

    /// One read of the lease and, as [`ElectionState::observe`] decides, one conditional
    /// write. `started` is when the attempt began (the leader's deadlines count from it).
    async fn try_acquire_or_renew(&mut self, started: Instant) -> Result<Attempt, ApiError> {
        let config = &self.config;
        let current = match self
            .client
            .get::<Lease>(&config.namespace, &config.name)
            .await
        {
            Ok(lease) => Some(lease),
            Err(err) if err.is_not_found() => None,
            Err(err) => return Err(err),
        };
        let step = self.state.observe(
            &config.identity,
            current.as_ref(),
            config.lease_duration,
            Instant::now(),
        );
        let now = MicroTime::now();
        let written = match (step, current) {
            (Step::Wait { .. }, _) => {
                self.state.stepped_down();
                return Ok(Attempt::Held);
            }
            (Step::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta::namespaced(&config.namespace, &config.name),
                    spec: LeaseSpec {
                        holder_identity: Some(config.identity.clone()),
                        lease_duration_seconds: Some(config.lease_seconds()),
                        acquire_time: Some(now),
                        renew_time: Some(now),
                        lease_transitions: Some(0),
                    },
                };
                self.client.create(&lease).await
            }
            (Step::Take { transitions }, Some(mut lease)) => {
                // `lease` carries the resourceVersion read: the update is conditional on it.
                lease.spec = LeaseSpec {
                    holder_identity: Some(config.identity.clone()),
                    lease_duration_seconds: Some(config.lease_seconds()),
                    acquire_time: Some(now),
                    renew_time: Some(now),
                    lease_transitions: Some(transitions),
                };
                self.client.update(&lease).await
            }
            (Step::Renew, Some(mut lease)) => {
                lease.spec.renew_time = Some(now);
                lease.spec.lease_duration_seconds = Some(config.lease_seconds());
                self.client.update(&lease).await
            }
        };
        match written {
            Ok(lease) => {
                self.state.written(&lease, started, Instant::now());
                self.written = Some(lease);
                Ok(Attempt::Leading)
            }
            Err(err) if err.is_conflict() || matches!(err, ApiError::AlreadyExists { .. }) => {
                Ok(Attempt::Raced)
            }
            Err(err) => Err(err),
        }
    }

    /// Gives the lease up (empty holder), conditional on it being as we last wrote it, so that
    /// a successor takes over at once. Best effort: a failure only delays the successor until
    /// the lease expires.
    async fn release(&mut self) {
        let still_ours = self
            .state
            .renew_deadline(self.config.renew_deadline)
            .is_some_and(|deadline| Instant::now() < deadline);
        self.state.stepped_down();
        let Some(mut lease) = self.written.take() else {
            return;
        };
        if !still_ours {
            return;
        }
        let now = MicroTime::now();
        lease.spec.holder_identity = None;
        lease.spec.lease_duration_seconds = Some(1);
        lease.spec.acquire_time = Some(now);
        lease.spec.renew_time = Some(now);
        match self.client.update(&lease).await {
            Ok(_) => {
                tracing::info!(identity = %self.config.identity, lease = %self.config.name, "released the lease")
            }
            Err(err) => {
                tracing::warn!(identity = %self.config.identity, error = %err, "could not release the lease; it expires by itself")
            }
        }
    }
}
