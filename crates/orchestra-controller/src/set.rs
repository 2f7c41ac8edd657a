//! [`ControllerSet`]: several controllers of different kinds run as one, stopped by one
//! signal (what a controller manager runs).

use std::future::Future;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use orchestra_api::Client;

use crate::controller::{Controller, MetricsHandle};
use crate::reconciler::Reconciler;

/// The shutdown signal every controller of a set shares.
type Signal = Shared<BoxFuture<'static, ()>>;

/// Starts one controller with the shared signal.
type Runner = Box<dyn FnOnce(Signal) -> BoxFuture<'static, ()> + Send>;

/// Controllers to run together. Build it with [`ControllerSet::add`], then
/// [`ControllerSet::run`].
#[derive(Default)]
pub struct ControllerSet {
    runners: Vec<(String, Runner)>,
    metrics: Vec<MetricsHandle>,
}

impl std::fmt::Debug for ControllerSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerSet")
            .field("controllers", &self.names())
            .finish()
    }
}

impl ControllerSet {
    /// An empty set.
    pub fn new() -> Self {
        ControllerSet::default()
    }

    /// Adds a controller (name it first: its metrics carry the name).
    pub fn add<R: Reconciler, C: Client>(&mut self, controller: Controller<R, C>) {
        let metrics = controller.metrics();
        let name = metrics.name().to_owned();
        self.metrics.push(metrics);
        self.runners.push((
            name,
            Box::new(move |signal: Signal| controller.run(signal).boxed()),
        ));
    }

    /// The names of the controllers, in the order added.
    pub fn names(&self) -> Vec<&str> {
        self.runners.iter().map(|(name, _)| name.as_str()).collect()
    }

    /// Every controller's metrics handle.
    pub fn metrics(&self) -> Vec<MetricsHandle> {
        self.metrics.clone()
    }

    /// Runs every controller until `shutdown` resolves; returns once all have stopped.
    /// Dropping the returned future stops them all at once (each runs in a task of a
    /// `JoinSet`, aborted on drop), which is what a leader that must stop acting relies on.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let signal = shutdown.boxed().shared();
        let mut tasks = tokio::task::JoinSet::new();
        for (_, runner) in self.runners {
            tasks.spawn(runner(signal.clone()));
        }
        while tasks.join_next().await.is_some() {}
    }
}
