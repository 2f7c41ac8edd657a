//! [`Reconciler`]: what a controller author writes, and the [`Action`] and [`Context`] it works
//! with.
//!
//! A reconciler looks at one object (from the shared cache) and the world, makes the world match
//! the object's desired state, and says when to look again. It must be idempotent: it may run
//! any number of times for the same state (after a restart, a resync, a lost race), and the
//! runtime guarantees only that one key is never reconciled twice at once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use orchestra_api::Resource;
use orchestra_api::reflector::ObjectKey;

/// What to do with a key after reconciling it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Reconcile it again after this delay, whatever happens meanwhile (a change still
    /// triggers one earlier).
    Requeue(Duration),
    /// Reconcile it again only when it, or an object mapped to it, changes.
    AwaitChange,
}

impl Action {
    /// [`Action::Requeue`] after `delay`.
    pub fn requeue(delay: Duration) -> Self {
        Action::Requeue(delay)
    }

    /// [`Action::AwaitChange`].
    pub fn await_change() -> Self {
        Action::AwaitChange
    }
}

/// What the runtime tells a reconciler about the call.
#[derive(Clone, Debug)]
pub struct Context {
    controller: Arc<str>,
    key: ObjectKey,
    retries: u32,
    backoff: Duration,
}

impl Context {
    /// A context for `key` in the controller named `controller` (for tests of a reconciler
    /// without a runtime).
    pub fn new(controller: &str, key: ObjectKey) -> Self {
        Context {
            controller: Arc::from(controller),
            key,
            retries: 0,
            backoff: Duration::ZERO,
        }
    }

    /// This context with `retries` failures counted, and the backoff the queue chose after the
    /// latest.
    pub fn with_retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// The controller's name (for logs and metrics).
    pub fn controller(&self) -> &str {
        &self.controller
    }

    /// The key reconciled: namespace (empty for cluster-scoped kinds) and name.
    pub fn key(&self) -> &ObjectKey {
        &self.key
    }

    /// How many reconciles of this key failed in a row (reset by a success).
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// In [`Reconciler::error_policy`]: the delay the work queue's rate limiter gave this
    /// failure (per-key exponential backoff, 5 ms doubling to 1000 s, within the overall token
    /// bucket). Zero in [`Reconciler::reconcile`].
    pub fn backoff(&self) -> Duration {
        self.backoff
    }
}

/// Reconciles one kind of object: desired state (the object) against actual state (the world).
/// See the [module docs](self) and the crate's example.
#[async_trait]
pub trait Reconciler: Send + Sync + 'static {
    /// The primary kind: each of its objects is reconciled under its key.
    type Object: Resource;
    /// What a reconcile can fail with.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Makes the world match `obj`; says when to look again. Errors go to
    /// [`Reconciler::error_policy`].
    async fn reconcile(&self, obj: Arc<Self::Object>, ctx: &Context)
    -> Result<Action, Self::Error>;

    /// What to do after `reconcile` failed with `err`. The default retries after
    /// [`Context::backoff`]: per-key exponential backoff that a success resets.
    fn error_policy(&self, obj: &Self::Object, err: &Self::Error, ctx: &Context) -> Action {
        let _ = (obj, err);
        Action::requeue(ctx.backoff())
    }

    /// Called for a key whose object is no longer in the cache (it was deleted): clean up what
    /// no owner reference or finalizer takes care of. The default does nothing. A failure is
    /// retried after the key's backoff.
    async fn deleted(&self, key: &ObjectKey, ctx: &Context) -> Result<Action, Self::Error> {
        let _ = (key, ctx);
        Ok(Action::AwaitChange)
    }
}
