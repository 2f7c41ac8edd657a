//! [`FaultyClient`]: a [`Client`] wrapper that fails lists and watches and cuts watch streams
//! on demand, to test watchers, reflectors and controllers against disconnects and errors
//! deterministically.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use futures::StreamExt;
use serde_json::Value;

use crate::client::Client;
use crate::registry::{
    ApiError, DeleteOptions, DeleteOutcome, ListOptions, ObjectList, WatchEvents, WatchOptions,
};
use crate::resource::Resource;
use crate::resources::Pod;

/// The faults planned, and the calls seen.
#[derive(Debug, Default)]
struct Plan {
    list_errors: VecDeque<ApiError>,
    watch_errors: VecDeque<ApiError>,
    cuts: VecDeque<usize>,
    cut_every: Option<usize>,
    lists: usize,
    watch_versions: Vec<Option<String>>,
}

/// Wraps a client; every call goes through unchanged unless a fault was planned. Clones share
/// the plan.
#[derive(Clone, Debug)]
pub struct FaultyClient<C> {
    inner: C,
    plan: Arc<Mutex<Plan>>,
}

impl<C: Client> FaultyClient<C> {
    /// Wraps `inner`, with no faults planned.
    pub fn new(inner: C) -> Self {
        FaultyClient {
            inner,
            plan: Arc::default(),
        }
    }

    /// The wrapped client.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    fn plan(&self) -> MutexGuard<'_, Plan> {
        self.plan.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next list call (one page) fails with `err` (queued after earlier ones).
    pub fn fail_next_list(&self, err: ApiError) {
        self.plan().list_errors.push_back(err);
    }

    /// The next watch call fails with `err` (queued after earlier ones).
    pub fn fail_next_watch(&self, err: ApiError) {
        self.plan().watch_errors.push_back(err);
    }

    /// The next watch opened ends (a disconnect) after `events` events (queued).
    pub fn cut_next_watch_after(&self, events: usize) {
        self.plan().cuts.push_back(events);
    }

    /// Every watch without a queued cut ends after `events` events (`None`: runs on).
    pub fn cut_every_watch_after(&self, events: Option<usize>) {
        self.plan().cut_every = events;
    }

    /// How many list calls (pages) were made.
    pub fn list_calls(&self) -> usize {
        self.plan().lists
    }

    /// The resourceVersion each watch call asked for, in order.
    pub fn watch_versions(&self) -> Vec<Option<String>> {
        self.plan().watch_versions.clone()
    }
}

#[async_trait]
impl<C: Client> Client for FaultyClient<C> {
    async fn get<R: Resource>(&self, namespace: &str, name: &str) -> Result<R, ApiError> {
        self.inner.get(namespace, name).await
    }

    async fn list<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<R>, ApiError> {
        let planned = {
            let mut plan = self.plan();
            plan.lists += 1;
            plan.list_errors.pop_front()
        };
        match planned {
            Some(err) => Err(err),
            None => self.inner.list(namespace, options).await,
        }
    }

    async fn create<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        self.inner.create(object).await
    }

    async fn update<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        self.inner.update(object).await
    }

    async fn update_status<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        self.inner.update_status(object).await
    }

    async fn patch<R: Resource>(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<R, ApiError> {
        self.inner.patch(namespace, name, patch).await
    }

    async fn delete<R: Resource>(
        &self,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<DeleteOutcome<R>, ApiError> {
        self.inner.delete(namespace, name, options).await
    }

    async fn watch<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &WatchOptions,
    ) -> Result<WatchEvents<R>, ApiError> {
        let (planned, cut) = {
            let mut plan = self.plan();
            plan.watch_versions.push(options.resource_version.clone());
            let planned = plan.watch_errors.pop_front();
            let cut = plan.cuts.pop_front().or(plan.cut_every);
            (planned, cut)
        };
        if let Some(err) = planned {
            return Err(err);
        }
        let events = self.inner.watch(namespace, options).await?;
        Ok(match cut {
            Some(n) => Box::pin(events.take(n)),
            None => events,
        })
    }

    async fn bind(&self, namespace: &str, pod: &str, node: &str) -> Result<Pod, ApiError> {
        self.inner.bind(namespace, pod, node).await
    }

    async fn request_token(
        &self,
        namespace: &str,
        name: &str,
        request: &crate::resources::TokenRequest,
    ) -> Result<crate::resources::TokenRequest, ApiError> {
        self.inner.request_token(namespace, name, request).await
    }
}
