//! [`ControlPlane`]: the API's registry with the recommended admission, and the scheduler and
//! the built-in controllers running over an in-process client on the same store. What
//! `orchestra server` and [`Cluster`](super::Cluster) both run. With
//! [`ControlPlane::authorize_components`] the scheduler and the controllers act as their own
//! users (`system:kube-scheduler`, `system:kube-controller-manager`) through the server's
//! authorizer, with only the rights of their built-in roles.

use std::future::Future;
use std::sync::Arc;

use orchestra_api::admission::{Admission, AdmissionConfig, ServiceRanges, SidecarInjectionConfig};
use orchestra_api::auth::bootstrap::{CONTROLLER_MANAGER_USER, SCHEDULER_USER};
use orchestra_api::auth::client::AuthorizedClient;
use orchestra_api::auth::{AuditSink, Authorizer, GROUP_AUTHENTICATED, UserInfo};
use orchestra_api::{Client, LocalClient, Registry};
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
    /// Compact the store's history this often, keeping one interval of it (kube-apiserver's
    /// `--etcd-compaction-interval`; `None`: never, and the store grows without bound).
    pub compaction_interval: Option<std::time::Duration>,
    /// Inject the mesh proxy into the pods that ask for it (`None`: never).
    pub sidecar_injection: Option<SidecarInjectionConfig>,
    /// The API server's CA bundle (PEM), published in every namespace's `kube-root-ca.crt`
    /// (`None`, as for a server without TLS: the root CA publisher does not run).
    pub root_ca: Option<String>,
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
            compaction_interval: Some(orchestra_store::compactor::DEFAULT_INTERVAL),
            sidecar_injection: None,
            root_ca: None,
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
    store: Arc<dyn Store>,
    registry: Registry,
    config: ControlPlaneConfig,
    authorization: Option<ComponentAuthorization>,
}

/// The authorizer (and audit sink) in-process components are checked against.
#[derive(Clone, Debug)]
pub struct ComponentAuthorization {
    /// Decides each call.
    pub authorizer: Arc<dyn Authorizer>,
    /// Records writes and denials.
    pub audit: Option<Arc<dyn AuditSink>>,
}

impl ComponentAuthorization {
    /// `client` acting as `user` (in `system:authenticated`, plus `groups`).
    pub fn client_as(
        &self,
        client: LocalClient,
        user: &str,
        groups: &[&str],
    ) -> AuthorizedClient<LocalClient> {
        let groups = groups.iter().copied().chain([GROUP_AUTHENTICATED]);
        self.client_for(client, UserInfo::new(user, groups))
    }

    /// `client` acting as `user`, groups as given.
    pub fn client_for(&self, client: LocalClient, user: UserInfo) -> AuthorizedClient<LocalClient> {
        AuthorizedClient::new(client, user, self.authorizer.clone(), self.audit.clone())
    }
}

impl ControlPlane {
    /// A control plane over `store`; nothing runs until [`ControlPlane::spawn`].
    pub fn new(store: Arc<dyn Store>, config: ControlPlaneConfig) -> Self {
        // Both `orchestra server` and `Cluster` issue service account tokens: pods mount
        // theirs.
        let admission = Admission::recommended(AdmissionConfig {
            service_ranges: config.service_ranges.clone(),
            mount_service_account_tokens: true,
            sidecar_injection: config.sidecar_injection.clone(),
        });
        ControlPlane {
            store: store.clone(),
            registry: Registry::from_arc(store)
                .with_admission(admission)
                .with_ttl::<orchestra_api::resources::Event>(Some(config.event_ttl)),
            config,
            authorization: None,
        }
    }

    /// Runs the scheduler and the controllers as their own users, checked by `authorization`
    /// (default: unchecked in-process clients).
    pub fn authorize_components(&mut self, authorization: ComponentAuthorization) {
        self.authorization = Some(authorization);
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
        match &self.authorization {
            None => self.spawn_as(tasks, shutdown, |_| self.client()),
            Some(authorization) => self.spawn_as(tasks, shutdown, |user| {
                authorization.client_as(self.client(), user, &[])
            }),
        }
    }

    /// [`spawn`](Self::spawn) with each component's client made by `client_for` its user.
    fn spawn_as<C, S, F>(
        &self,
        tasks: &mut JoinSet<()>,
        shutdown: S,
        client_for: impl Fn(&str) -> C,
    ) -> Result<(), ControlPlaneError>
    where
        C: Client,
        S: Fn() -> F,
        F: Future<Output = ()> + Send + 'static,
    {
        if let Some(interval) = self.config.compaction_interval {
            let store = self.store.clone();
            let shutdown = shutdown();
            tasks.spawn(async move {
                orchestra_store::compactor::run(&*store, interval, shutdown).await;
            });
        }
        if self.config.scheduler {
            let mut profiles = Profiles::new();
            profiles.insert(plugins::default_profile());
            let scheduler = SchedulerLoop::new(client_for(SCHEDULER_USER), profiles)
                .map_err(ControlPlaneError::Scheduler)?;
            tasks.spawn(scheduler.run(shutdown()));
        }
        if self.config.controllers {
            let mut manager = ControllerManager::new(client_for(CONTROLLER_MANAGER_USER))
                .node_lifecycle(self.config.node_lifecycle.clone())
                .root_ca(self.config.root_ca.clone());
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
