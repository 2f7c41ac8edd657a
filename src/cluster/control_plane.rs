//! [`ControlPlane`]: the API's registry with the recommended admission, and the scheduler and
//! the built-in controllers running over an in-process client on the same store. What
//! `orchestra server` and [`Cluster`](super::Cluster) both run.

use std::future::Future;
use std::sync::Arc;

use orchestra_api::admission::{Admission, AdmissionConfig, ServiceRanges};
use orchestra_api::{LocalClient, Registry};
use orchestra_controller::controllers::node_lifecycle::NodeLifecycleConfig;
use orchestra_controller::leader::{LeaderElectionConfig, LeaderElectionError};
use orchestra_controller::manager::ControllerManager;
use orchestra_sched::run::{LoopError, SchedulerLoop};
use orchestra_sched::{Profiles, plugins};
use orchestra_store::Store;
use tokio::task::JoinSet;

/// What the control plane runs, and with which settings.
#[derive(Clone, Debug)]
pub struct ControlPlaneConfig {
    /// Where Services' cluster IPs and node ports come from.
    pub service_ranges: ServiceRanges,
    /// Run the scheduling loop (default profile).
    pub scheduler: bool,
    /// Run the built-in controllers.
    pub controllers: bool,
    /// The NodeLifecycle controller's settings (how long a silent node stays Ready...).
    pub node_lifecycle: NodeLifecycleConfig,
    /// Run the controllers only while holding this lease (several servers on one store).
    pub leader_election: Option<LeaderElectionConfig>,
    /// How long Events live after their last write (Kubernetes' `--event-ttl`).
    pub event_ttl: std::time::Duration,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        ControlPlaneConfig {
            service_ranges: ServiceRanges::default(),
            scheduler: true,
            controllers: true,
            node_lifecycle: NodeLifecycleConfig::default(),
            leader_election: None,
            event_ttl: orchestra_api::registry::DEFAULT_EVENT_TTL,
        }
    }
}

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlPlaneError {
    /// The scheduler's profiles are not valid.
    #[error("starting the scheduler")]
    Scheduler(#[source] LoopError),
    /// The leader election settings are not valid.
    #[error("configuring leader election")]
    LeaderElection(#[source] LeaderElectionError),
}

/// The registry every component writes through, and the components running over it.
pub struct ControlPlane {
    registry: Registry,
    config: ControlPlaneConfig,
}

impl ControlPlane {
    /// A control plane over `store`; nothing runs until [`ControlPlane::spawn`].
    pub fn new(store: Arc<dyn Store>, config: ControlPlaneConfig) -> Self {
        let admission = Admission::recommended(AdmissionConfig {
            service_ranges: config.service_ranges.clone(),
        });
        ControlPlane {
            registry: Registry::from_arc(store)
                .with_admission(admission)
                .with_ttl::<orchestra_api::resources::Event>(Some(config.event_ttl)),
            config,
        }
    }

    /// The registry, with admission: serve it with the API server, or build clients on it.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// An in-process client on the registry: no network hop, the same rules as the API's.
    pub fn client(&self) -> LocalClient {
        LocalClient::from_registry(self.registry.clone())
    }

    /// Starts the scheduler and the controllers (as configured) in `tasks`; each stops when
    /// its copy of `shutdown` resolves.
    pub fn spawn<S, F>(&self, tasks: &mut JoinSet<()>, shutdown: S) -> Result<(), ControlPlaneError>
    where
        S: Fn() -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        if self.config.scheduler {
            let mut profiles = Profiles::new();
            profiles.insert(plugins::default_profile());
            let scheduler = SchedulerLoop::new(self.client(), profiles)
                .map_err(ControlPlaneError::Scheduler)?;
            tasks.spawn(scheduler.run(shutdown()));
        }
        if self.config.controllers {
            let mut manager = ControllerManager::new(self.client())
                .node_lifecycle(self.config.node_lifecycle.clone());
            if let Some(election) = self.config.leader_election.clone() {
                manager = manager
                    .leader_election(election)
                    .map_err(ControlPlaneError::LeaderElection)?;
            }
            tasks.spawn(manager.run(shutdown()));
        }
        Ok(())
    }
}
