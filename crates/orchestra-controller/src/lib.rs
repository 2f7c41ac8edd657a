//! orchestra's controller runtime and built-in controllers.
//!
//! A controller makes the world match what objects ask for. You write a [`Reconciler`] (one
//! object in, the writes it needs, and when to look again); the runtime does the rest:
//! [`SharedInformers`] keep one watch and one cache per kind for every controller of the
//! process, a [`Controller`] maps changes of the primary, owned and watched kinds to keys in a
//! [`WorkQueue`] with client-go's semantics (deduplication, per-key backoff within an overall
//! rate limit, delayed requeues), and N workers reconcile, never the same key twice at once.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use async_trait::async_trait;
//! use orchestra_api::resources::Pod;
//! use orchestra_api::{ApiError, Client, LocalClient, testing};
//! use orchestra_controller::{Action, Context, Controller, Reconciler, SharedInformers};
//! use orchestra_store::MemStore;
//!
//! /// Labels every pod `seen=true`.
//! struct Labeler<C> {
//!     client: C,
//! }
//!
//! #[async_trait]
//! impl<C: Client> Reconciler for Labeler<C> {
//!     type Object = Pod;
//!     type Error = ApiError;
//!
//!     async fn reconcile(&self, pod: Arc<Pod>, _ctx: &Context) -> Result<Action, ApiError> {
//!         if !pod.metadata.labels.contains_key("seen") {
//!             let mut pod = (*pod).clone();
//!             pod.metadata.labels.insert("seen".into(), "true".into());
//!             self.client.update(&pod).await?; // conditional on the cached resourceVersion
//!         }
//!         Ok(Action::await_change())
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
//! let client = LocalClient::new(MemStore::new());
//! client.create(&testing::pod("default", "web", "web")).await?;
//!
//! let informers = SharedInformers::new(client.clone());
//! let controller = Controller::new(Labeler { client: client.clone() }, &informers).concurrency(4);
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let running = tokio::spawn(controller.run(async move { let _ = stopped.await; }));
//!
//! let pods = informers.store::<Pod>();
//! while pods.get("default", "web").is_none_or(|p| !p.metadata.labels.contains_key("seen")) {
//!     tokio::time::sleep(Duration::from_millis(10)).await; // paused time: no real wait
//! }
//! let _ = stop.send(());
//! running.await.expect("the controller stops cleanly");
//! # Ok::<(), ApiError>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//! - [`queue`]: [`WorkQueue`] and its [`queue::RateLimiter`]s.
//! - [`reconciler`]: [`Reconciler`], [`Action`], [`Context`].
//! - [`informer`]: [`SharedInformers`], [`Informer`] and their [`informer::Notification`]s.
//! - [`controller`]: [`Controller`], the builder and runner.
//! - [`metrics`]: per-controller counters in Prometheus' text format.
//! - [`finalizer`]: [`finalizer::finalizer`], cleanup before deletion.
//! - [`controllers`]: the built-in ReplicaSet, Deployment, Job, DaemonSet, StatefulSet, Endpoints,
//!   NodeLifecycle, GarbageCollector and Namespace controllers.
//! - [`set`]: [`ControllerSet`], several controllers run and stopped together.
//! - [`manager`]: [`manager::ControllerManager`], every built-in controller, behind leader
//!   election.
//! - [`leader`]: [`leader::LeaderElector`], leader election on a Lease.

pub mod controller;
pub mod controllers;
pub mod finalizer;
pub mod informer;
pub mod leader;
pub mod manager;
pub mod metrics;
pub mod queue;
pub mod reconciler;
pub mod set;

pub use controller::Controller;
pub use informer::{Informer, SharedInformers};
pub use queue::WorkQueue;
pub use reconciler::{Action, Context, Reconciler};
pub use set::ControllerSet;
