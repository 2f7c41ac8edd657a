//! Probes: startup, liveness and readiness, each an exec (through
//! [`RuntimeDriver::exec_sync`]), an HTTP or HTTPS GET to the pod IP or a TCP connect, with
//! Kubernetes' defaults (initial delay 0 s, period 10 s, timeout 1 s, failure threshold 3, success
//! threshold 1).
//!
//! A [`Prober`] runs one container's probes as one task on tokio's clock and publishes its
//! verdicts as a [`ProbeState`] (the state machine's input): the startup probe first (the
//! others wait for it; failing it fails the container), then liveness (failing it fails the
//! container, which the state machine kills and restarts) and readiness (which sets `ready`).
//! A probe that cannot run (a port name the container does not declare, no pod IP) fails with
//! that message, like any failed attempt. Every failed attempt, and every passed one with a
//! warning, is told to the prober's [`ProbeReport`] (the node agent's `Unhealthy` and
//! `ProbeWarning` events).
//!
//! # Layout
//! - [`threshold`]: [`Threshold`], consecutive-outcome counting.
//! - [`handler`]: [`ProbeConfig`] (defaults applied) and one attempt, [`run_once`].
//! - [`http`]: the httpGet client (HTTP and HTTPS, kubelet's redirect rules).
//! - [`tls`]: the HTTPS client configuration, which accepts any server certificate.

pub mod handler;
pub mod http;
pub mod threshold;
pub mod tls;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use orchestra_api::resources::Container;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

pub use handler::{Handler, Outcome, ProbeConfig, run_once};
pub use threshold::Threshold;

use crate::pod::ProbeState;
use crate::runtime::{ContainerId, RuntimeDriver};

/// Probe verdicts of a pod's containers, by container name, shared with the pod worker.
pub type ProbeResults = Arc<Mutex<BTreeMap<String, ProbeState>>>;

/// Something a probe attempt has to tell, with kubelet's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeEvent {
    /// The attempt failed ("Readiness probe failed: WHY"): an `Unhealthy` event.
    Failed(String),
    /// The attempt passed with a warning ("Readiness probe warning: WHY"): a `ProbeWarning`
    /// event.
    Warning(String),
}

/// Told of every failed attempt and every warning: the node agent records them as events.
pub type ProbeReport = Arc<dyn Fn(ProbeEvent) + Send + Sync>;

/// A running container's probes; dropping it stops them.
#[derive(Debug)]
pub struct Prober {
    container: ContainerId,
    task: JoinHandle<()>,
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Prober {
    /// Starts probing container `id` (the running instance of `spec`), writing verdicts into
    /// `results` under its name and waking `notify` on every change. `None` when `spec` has
    /// no probes.
    pub fn start(
        runtime: Arc<dyn RuntimeDriver>,
        spec: &Container,
        id: ContainerId,
        pod_ip: Option<IpAddr>,
        results: ProbeResults,
        notify: Arc<Notify>,
    ) -> Option<Prober> {
        Self::start_reporting(runtime, spec, id, pod_ip, results, notify, Arc::new(|_| {}))
    }

    /// [`Prober::start`], telling `report` of every failed attempt and every warning.
    pub fn start_reporting(
        runtime: Arc<dyn RuntimeDriver>,
        spec: &Container,
        id: ContainerId,
        pod_ip: Option<IpAddr>,
        results: ProbeResults,
        notify: Arc<Notify>,
        report: ProbeReport,
    ) -> Option<Prober> {
        let probe = |p: &Option<orchestra_api::resources::Probe>| {
            p.as_ref().map(|p| ProbeConfig::new(p, spec))
        };
        let (startup, liveness, readiness) = (
            probe(&spec.startup_probe),
            probe(&spec.liveness_probe),
            probe(&spec.readiness_probe),
        );
        if startup.is_none() && liveness.is_none() && readiness.is_none() {
            return None;
        }
        let sink = Sink {
            name: spec.name.clone(),
            container: id.clone(),
            results,
            notify,
        };
        // A new container replaces whatever an earlier attempt left.
        sink.results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                spec.name.clone(),
                ProbeState {
                    container: id.clone(),
                    started: startup.is_none(),
                    ready: false,
                    failed: None,
                },
            );
        let run = Run {
            runtime,
            container: id.clone(),
            pod_ip,
            report,
        };
        let task = tokio::spawn(async move {
            if let Some(config) = startup {
                match run.until_verdict(&config, STARTUP, None, |_| {}).await {
                    true => sink.update(|s| s.started = true),
                    false => {
                        let why = run.last_failure(&config).await;
                        sink.update(|s| s.failed = Some(format!("Startup probe failed: {why}")));
                        return;
                    }
                }
            }
            let live = async {
                match &liveness {
                    Some(config) => {
                        run.until_verdict(config, LIVENESS, Some(true), |_| {})
                            .await;
                        Some(run.last_failure(config).await)
                    }
                    None => None,
                }
            };
            let ready = async {
                if let Some(config) = &readiness {
                    run.follow(config, READINESS, |ready| sink.update(|s| s.ready = ready))
                        .await;
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                Some(why) = live => {
                    sink.update(|s| s.failed = Some(format!("Liveness probe failed: {why}")));
                }
                () = ready => {}
            }
        });
        Some(Prober {
            container: id,
            task,
        })
    }

    /// The container probed.
    pub fn container(&self) -> &ContainerId {
        &self.container
    }
}

struct Sink {
    name: String,
    container: ContainerId,
    results: ProbeResults,
    notify: Arc<Notify>,
}

impl Sink {
    fn update(&self, change: impl FnOnce(&mut ProbeState)) {
        {
            let mut results = self.results.lock().unwrap_or_else(|e| e.into_inner());
            let entry = results
                .entry(self.name.clone())
                .or_insert_with(|| ProbeState {
                    container: self.container.clone(),
                    started: false,
                    ready: false,
                    failed: None,
                });
            if entry.container != self.container {
                return;
            }
            change(entry);
        }
        self.notify.notify_one();
    }
}

/// The probes' names in kubelet's messages.
const STARTUP: &str = "Startup";
const LIVENESS: &str = "Liveness";
const READINESS: &str = "Readiness";

struct Run {
    runtime: Arc<dyn RuntimeDriver>,
    container: ContainerId,
    pod_ip: Option<IpAddr>,
    report: ProbeReport,
}

impl Run {
    async fn attempt(&self, config: &ProbeConfig) -> Outcome {
        run_once(&*self.runtime, &self.container, self.pod_ip, config).await
    }

    /// One attempt of the `kind` probe; a failure or a warning is reported. A warning passes,
    /// as in kubelet.
    async fn reported_attempt(&self, config: &ProbeConfig, kind: &str) -> bool {
        match self.attempt(config).await {
            Outcome::Success => true,
            Outcome::Warning(why) => {
                (self.report)(ProbeEvent::Warning(format!("{kind} probe warning: {why}")));
                true
            }
            Outcome::Failure(why) => {
                (self.report)(ProbeEvent::Failed(format!("{kind} probe failed: {why}")));
                false
            }
        }
    }

    fn ticker(config: &ProbeConfig) -> tokio::time::Interval {
        let mut ticker =
            tokio::time::interval_at(Instant::now() + config.initial_delay, config.period);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker
    }

    /// Probes until the verdict differs from `initial` (or is reached from unknown); returns it.
    async fn until_verdict(
        &self,
        config: &ProbeConfig,
        kind: &str,
        initial: Option<bool>,
        mut on_change: impl FnMut(bool),
    ) -> bool {
        let mut threshold =
            Threshold::new(config.success_threshold, config.failure_threshold, initial);
        let mut ticker = Self::ticker(config);
        loop {
            ticker.tick().await;
            let ok = self.reported_attempt(config, kind).await;
            if let Some(verdict) = threshold.record(ok) {
                on_change(verdict);
                return verdict;
            }
        }
    }

    /// Probes forever, reporting every change of verdict (starting from failed).
    async fn follow(&self, config: &ProbeConfig, kind: &str, mut on_change: impl FnMut(bool)) {
        let mut threshold = Threshold::new(
            config.success_threshold,
            config.failure_threshold,
            Some(false),
        );
        let mut ticker = Self::ticker(config);
        loop {
            ticker.tick().await;
            let ok = self.reported_attempt(config, kind).await;
            if let Some(verdict) = threshold.record(ok) {
                on_change(verdict);
            }
        }
    }

    /// The message of one more attempt, for the failure's reason.
    async fn last_failure(&self, config: &ProbeConfig) -> String {
        match self.attempt(config).await {
            Outcome::Failure(why) => why,
            Outcome::Success | Outcome::Warning(_) => "failed the threshold".into(),
        }
    }
}

#[cfg(test)]
mod tests;
