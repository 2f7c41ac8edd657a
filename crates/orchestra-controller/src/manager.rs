//! [`ControllerManager`]: every built-in controller over one client, optionally behind leader
//! election, as `orchestra controller-manager` and `orchestra server` run them.
//!
//! With leader election, each term of leadership starts fresh informers and controllers (a
//! cache from before a lost term may be stale) and stops them when leadership is lost; the
//! manager then campaigns again.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use orchestra_api::Client;

use crate::controller::MetricsHandle;
use crate::controllers::garbage_collector::add_garbage_collectors;
use crate::controllers::node_lifecycle::NodeLifecycleConfig;
use crate::controllers::{
    DaemonSetController, DeploymentController, EndpointsController, JobController,
    NamespaceController, NodeLifecycleController, ReplicaSetController, RootCaPublisher,
    ServiceAccountController, StatefulSetController, TtlAfterFinishedController,
};
use crate::informer::SharedInformers;
use crate::leader::{LeaderElectionConfig, LeaderElectionError, LeaderElector};
use crate::set::ControllerSet;

/// The names of the built-in controllers [`ControllerManager`] runs.
pub const CONTROLLERS: &[&str] = &[
    "replicaset",
    "deployment",
    "job",
    "daemonset",
    "statefulset",
    "endpoints",
    "nodelifecycle",
    "garbagecollector",
    "namespace",
    "serviceaccount",
    ROOT_CA_PUBLISHER,
    "ttl-after-finished",
];

/// The name of the root CA publisher, which runs only when the manager is given the CA
/// ([`ControllerManager::root_ca`]).
pub const ROOT_CA_PUBLISHER: &str = "root-ca-cert-publisher";

/// Every built-in controller over `informers`: ReplicaSet, Deployment, Job, DaemonSet,
/// StatefulSet, Endpoints, NodeLifecycle, the garbage collectors, Namespace, ServiceAccount and
/// TTL-after-finished.
pub fn built_in_controllers<C: Client>(
    informers: &SharedInformers<C>,
    node_lifecycle: NodeLifecycleConfig,
) -> ControllerSet {
    selected_controllers(informers, node_lifecycle, CONTROLLERS)
}

/// The built-in controllers named in `names` (see [`CONTROLLERS`]; other names are ignored,
/// [`parse_controllers`] refuses them first). The root CA publisher needs the CA: this leaves
/// it out, [`add_root_ca_publisher`] adds it.
pub fn selected_controllers<C: Client>(
    informers: &SharedInformers<C>,
    node_lifecycle: NodeLifecycleConfig,
    names: &[&str],
) -> ControllerSet {
    let on = |name: &str| names.contains(&name);
    let mut set = ControllerSet::new();
    if on("replicaset") {
        set.add(ReplicaSetController::controller(informers).concurrency(4));
    }
    if on("deployment") {
        set.add(DeploymentController::controller(informers).concurrency(2));
    }
    if on("job") {
        set.add(JobController::controller(informers).concurrency(2));
    }
    if on("daemonset") {
        set.add(DaemonSetController::controller(informers).concurrency(2));
    }
    if on("statefulset") {
        set.add(StatefulSetController::controller(informers).concurrency(2));
    }
    if on("endpoints") {
        set.add(EndpointsController::controller(informers).concurrency(2));
    }
    if on("nodelifecycle") {
        set.add(NodeLifecycleController::controller(
            informers,
            node_lifecycle,
        ));
    }
    if on("garbagecollector") {
        add_garbage_collectors(&mut set, informers);
    }
    if on("namespace") {
        set.add(NamespaceController::controller(informers));
    }
    if on("serviceaccount") {
        set.add(ServiceAccountController::controller(informers));
    }
    if on("ttl-after-finished") {
        set.add(TtlAfterFinishedController::controller(informers));
    }
    set
}

/// Adds the root CA publisher, publishing `ca` (PEM), to `set` when `names` has it.
pub fn add_root_ca_publisher<C: Client>(
    set: &mut ControllerSet,
    informers: &SharedInformers<C>,
    ca: &str,
    names: &[&str],
) {
    if names.contains(&ROOT_CA_PUBLISHER) {
        set.add(RootCaPublisher::controller(informers, ca));
    }
}

/// A `--controllers` value that names no built-in controller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown controller {name:?} in --controllers (known: *, {known})", known = CONTROLLERS.join(", "))]
pub struct UnknownController {
    /// The name given.
    pub name: String,
}

/// Parses a `--controllers` list as Kubernetes' controller manager does: comma-separated
/// names, `*` for every built-in controller, `-name` to leave one out. The result keeps the
/// order of [`CONTROLLERS`].
pub fn parse_controllers(list: &str) -> Result<Vec<&'static str>, UnknownController> {
    let mut enabled: Vec<&'static str> = Vec::new();
    let mut disabled: Vec<&'static str> = Vec::new();
    let known = |name: &str| {
        CONTROLLERS
            .iter()
            .copied()
            .find(|c| *c == name)
            .ok_or_else(|| UnknownController {
                name: name.to_owned(),
            })
    };
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if item == "*" {
            enabled.extend(CONTROLLERS);
        } else if let Some(name) = item.strip_prefix('-') {
            disabled.push(known(name)?);
        } else {
            enabled.push(known(item)?);
        }
    }
    Ok(CONTROLLERS
        .iter()
        .copied()
        .filter(|c| enabled.contains(c) && !disabled.contains(c))
        .collect())
}

/// Runs the built-in controllers, behind leader election when configured.
#[derive(Debug)]
pub struct ControllerManager<C> {
    client: C,
    leader_election: Option<LeaderElectionConfig>,
    node_lifecycle: NodeLifecycleConfig,
    controllers: Vec<&'static str>,
    root_ca: Option<Arc<str>>,
    metrics: Arc<Mutex<Vec<MetricsHandle>>>,
}

impl<C: Client> ControllerManager<C> {
    /// A manager over `client`, without leader election, with default settings.
    pub fn new(client: C) -> Self {
        ControllerManager {
            client,
            leader_election: None,
            node_lifecycle: NodeLifecycleConfig::default(),
            controllers: CONTROLLERS.to_vec(),
            root_ca: None,
            metrics: Arc::default(),
        }
    }

    /// Runs only these controllers (from [`parse_controllers`]); all by default.
    pub fn controllers(mut self, names: Vec<&'static str>) -> Self {
        self.controllers = names;
        self
    }

    /// The API server's CA bundle (PEM), which the root CA publisher puts in every namespace's
    /// `kube-root-ca.crt`. Without it (a server without TLS has no CA) that controller does
    /// not run.
    pub fn root_ca(mut self, ca: Option<String>) -> Self {
        self.root_ca = ca.map(Arc::from);
        self
    }

    /// Runs the controllers only while holding the lease `config` names.
    pub fn leader_election(
        mut self,
        config: LeaderElectionConfig,
    ) -> Result<Self, LeaderElectionError> {
        config.validate()?;
        self.leader_election = Some(config);
        Ok(self)
    }

    /// The NodeLifecycle controller's settings.
    pub fn node_lifecycle(mut self, config: NodeLifecycleConfig) -> Self {
        self.node_lifecycle = config;
        self
    }

    /// A handle rendering the running controllers' metrics (empty while not leading).
    pub fn metrics(&self) -> ManagerMetrics {
        ManagerMetrics {
            handles: Arc::clone(&self.metrics),
        }
    }

    /// Runs until `shutdown` resolves; the running reconciles finish and the lease is released.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let ControllerManager {
            client,
            leader_election,
            node_lifecycle,
            controllers,
            root_ca,
            metrics,
        } = self;
        if root_ca.is_none() && controllers.contains(&ROOT_CA_PUBLISHER) {
            tracing::info!(
                "no CA given: the root CA publisher does not run (pods get no ca.crt from kube-root-ca.crt)"
            );
        }
        let elector_client = client.clone();
        let term = move |stop: futures::future::BoxFuture<'static, ()>| {
            let informers = SharedInformers::new(client.clone());
            let mut set = selected_controllers(&informers, node_lifecycle.clone(), &controllers);
            if let Some(ca) = &root_ca {
                add_root_ca_publisher(&mut set, &informers, ca, &controllers);
            }
            *metrics.lock().unwrap_or_else(PoisonError::into_inner) = set.metrics();
            let metrics = Arc::clone(&metrics);
            async move {
                set.run(stop).await;
                informers.shut_down();
                metrics
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
            }
        };
        match leader_election {
            None => {
                use futures::FutureExt;
                term(shutdown.boxed()).await;
            }
            Some(config) => {
                let elector = match LeaderElector::new(elector_client, config) {
                    Ok(elector) => elector,
                    // Validated by `leader_election` already.
                    Err(err) => {
                        tracing::error!(error = %err, "invalid leader election settings");
                        return;
                    }
                };
                elector
                    .run(shutdown, |leadership| {
                        use futures::FutureExt;
                        term(async move { leadership.lost().await }.boxed())
                    })
                    .await;
            }
        }
    }
}

/// Renders the metrics of the controllers running now. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct ManagerMetrics {
    handles: Arc<Mutex<Vec<MetricsHandle>>>,
}

impl ManagerMetrics {
    /// Every running controller's metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        let handles = self
            .handles
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // Each controller's text repeats the HELP and TYPE lines; a family is described once.
        let mut described = std::collections::HashSet::new();
        let mut out = String::new();
        for text in handles.iter().map(MetricsHandle::render) {
            for line in text.lines() {
                if line.starts_with('#') && !described.insert(line.to_owned()) {
                    continue;
                }
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controller_lists_parse_like_kubernetes() {
        assert_eq!(parse_controllers("*").unwrap(), CONTROLLERS);
        assert_eq!(
            parse_controllers("*,-nodelifecycle,-job").unwrap(),
            [
                "replicaset",
                "deployment",
                "daemonset",
                "statefulset",
                "endpoints",
                "garbagecollector",
                "namespace",
                "serviceaccount",
                "root-ca-cert-publisher",
                "ttl-after-finished"
            ]
        );
        assert_eq!(
            parse_controllers("job, replicaset").unwrap(),
            ["replicaset", "job"]
        );
        let err = parse_controllers("replicaset,cronjob").unwrap_err();
        assert_eq!(err.name, "cronjob");
        assert!(err.to_string().contains("known: *, replicaset"), "{err}");
    }
}
