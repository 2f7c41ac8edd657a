//! The [`Client`] trait every orchestra component talks to the cluster through, and
//! [`LocalClient`], its in-process implementation over a [`Registry`] (no network, no
//! serialization beyond the store's).
//!
//! The trait's methods are generic over the kind (`R: Resource`), so a call is typed end to end
//! (`client.get::<Pod>("default", "web")`) without downcasts. The price is that `Client` is not
//! object-safe: code that needs to choose a client at run time is generic over `C: Client`
//! (clients are cheap to clone), which is also what the conformance suite in
//! [`testing`](crate::testing) does. Type-erased access for kinds known only at run time belongs
//! to a separate, `DynResource`-based surface.
//!
//! ```
//! use orchestra_api::registry::DeleteOptions;
//! use orchestra_api::resources::{Container, Pod, PodSpec};
//! use orchestra_api::{Client, LocalClient, ObjectMeta};
//! use orchestra_store::MemStore;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let client = LocalClient::new(MemStore::new());
//! let pod = Pod {
//!     metadata: ObjectMeta::namespaced("default", "web"),
//!     spec: PodSpec {
//!         containers: vec![Container { name: "web".into(), image: "nginx".into(), ..Default::default() }],
//!         ..Default::default()
//!     },
//!     ..Default::default()
//! };
//! client.create(&pod).await?;
//! let bound = client.bind("default", "web", "node-1").await?;
//! assert_eq!(bound.spec.node_name, "node-1");
//! assert!(client.bind("default", "web", "node-2").await.unwrap_err().is_conflict());
//! client.delete::<Pod>("default", "web", &DeleteOptions::default()).await?;
//! # Ok::<(), orchestra_api::ApiError>(())
//! # }).unwrap();
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::auth::token::TokenIssuer;
use crate::logs::{LogStream, NodeConnector, PodLogOptions};
use crate::registry::{
    ApiError, DeleteOptions, DeleteOutcome, ListOptions, ObjectList, Registry, WatchEvents,
    WatchOptions,
};
use crate::resource::Resource;
use crate::resources::{Pod, TokenRequest};
use crate::watch_cache::LocalWatchCache;

/// Typed access to the cluster's objects, with the registry's contracts (see
/// [`Registry`]): resourceVersion preconditions, the status subresource, merge patches,
/// finalizers, pod binding and watches. `namespace` is ignored for cluster-scoped kinds.
#[async_trait]
pub trait Client: Clone + Send + Sync + 'static {
    /// Reads one object.
    async fn get<R: Resource>(&self, namespace: &str, name: &str) -> Result<R, ApiError>;

    /// Lists objects of one namespace (`None`: all), with selectors and pages.
    async fn list<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<R>, ApiError>;

    /// [`list`](Self::list) with each object behind an `Arc`, as watch events carry them:
    /// an in-process [`LocalClient`] hands out its watch cache's own decoded objects for a
    /// list of the latest state (no copy per lister; see
    /// [`LocalWatchCache`](crate::watch_cache::LocalWatchCache)), other clients wrap their
    /// copies. Informers list through it, so that their caches share the objects.
    async fn list_shared<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<Arc<R>>, ApiError> {
        let list = self.list::<R>(namespace, options).await?;
        Ok(ObjectList {
            items: list.items.into_iter().map(Arc::new).collect(),
            resource_version: list.resource_version,
            continue_token: list.continue_token,
        })
    }

    /// Creates an object; returns it as stored.
    async fn create<R: Resource>(&self, object: &R) -> Result<R, ApiError>;

    /// Updates spec and metadata (status is kept); a set resourceVersion is a precondition.
    async fn update<R: Resource>(&self, object: &R) -> Result<R, ApiError>;

    /// Updates the status only.
    async fn update_status<R: Resource>(&self, object: &R) -> Result<R, ApiError>;

    /// Applies a JSON merge patch (RFC 7386).
    async fn patch<R: Resource>(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<R, ApiError>;

    /// Deletes an object, or marks it for deletion when it has finalizers.
    async fn delete<R: Resource>(
        &self,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<DeleteOutcome<R>, ApiError>;

    /// Watches objects from a resourceVersion.
    async fn watch<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &WatchOptions,
    ) -> Result<WatchEvents<R>, ApiError>;

    /// Binds an unbound pod to a node (sets `spec.nodeName` once).
    async fn bind(&self, namespace: &str, pod: &str, node: &str) -> Result<Pod, ApiError>;

    /// Streams a container's log (the `pods/log` subresource; see [`crate::logs`]). Clients
    /// that cannot reach node agents answer with an error saying so (the default).
    async fn pod_logs(
        &self,
        namespace: &str,
        name: &str,
        options: &PodLogOptions,
    ) -> Result<LogStream, ApiError> {
        let _ = options;
        Err(ApiError::BadRequest(format!(
            "this client cannot read the logs of pod {namespace}/{name}: it has no way to reach node agents"
        )))
    }

    /// Has a token issued for service account `namespace/name` (the `serviceaccounts/token`
    /// subresource; see [`crate::auth::token`]), returning `request` with its status (the
    /// token) filled. Clients that cannot issue tokens answer with an error saying so (the
    /// default).
    async fn request_token(
        &self,
        namespace: &str,
        name: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, ApiError> {
        let _ = request;
        Err(ApiError::BadRequest(format!(
            "this client cannot have tokens issued for service account {namespace}/{name}: it has no token issuer"
        )))
    }
}

/// The in-process [`Client`]: calls the [`Registry`] directly. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LocalClient {
    registry: Registry,
    /// How [`Client::pod_logs`] reaches node agents (`None`: it cannot).
    nodes: Option<std::sync::Arc<dyn NodeConnector>>,
    /// Who issues [`Client::request_token`]'s tokens (`None`: nobody).
    tokens: Option<std::sync::Arc<dyn TokenIssuer>>,
}

impl LocalClient {
    /// A client over its own registry on `store`.
    pub fn new(store: impl orchestra_store::Store) -> Self {
        LocalClient {
            registry: Registry::new(store),
            nodes: None,
            tokens: None,
        }
    }

    /// A client over an existing registry (sharing its store).
    pub fn from_registry(registry: Registry) -> Self {
        LocalClient {
            registry,
            nodes: None,
            tokens: None,
        }
    }

    /// This client, reading container logs from node agents through `connector` (for
    /// example [`HttpNodeConnector`](crate::logs::HttpNodeConnector), feature `server`).
    pub fn with_node_connector(mut self, connector: std::sync::Arc<dyn NodeConnector>) -> Self {
        self.nodes = Some(connector);
        self
    }

    /// This client, issuing service account tokens with `issuer` (for example
    /// [`ServiceAccountTokens`](crate::auth::token::ServiceAccountTokens), feature `tls`).
    pub fn with_token_issuer(mut self, issuer: std::sync::Arc<dyn TokenIssuer>) -> Self {
        self.tokens = Some(issuer);
        self
    }

    /// The registry underneath.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The watch caches this client's watches are served from (shared with every client
    /// on the same registry): start a kind's cache ahead of its watches with
    /// [`LocalWatchCache::start`].
    pub fn watch_cache(&self) -> &LocalWatchCache {
        self.registry.watch_cache()
    }
}

#[async_trait]
impl Client for LocalClient {
    async fn get<R: Resource>(&self, namespace: &str, name: &str) -> Result<R, ApiError> {
        self.registry.get(namespace, name).await
    }

    async fn list<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<R>, ApiError> {
        self.registry.list(namespace, options).await
    }

    async fn list_shared<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<Arc<R>>, ApiError> {
        self.registry
            .watch_cache()
            .list::<R>(&self.registry, namespace, options)
            .await
    }

    async fn create<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        self.registry.create(object.clone()).await
    }

    async fn update<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        self.registry.update(object.clone()).await
    }

    async fn update_status<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        self.registry.update_status(object.clone()).await
    }

    async fn patch<R: Resource>(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<R, ApiError> {
        self.registry.patch(namespace, name, patch).await
    }

    async fn delete<R: Resource>(
        &self,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<DeleteOutcome<R>, ApiError> {
        self.registry.delete(namespace, name, options).await
    }

    async fn watch<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &WatchOptions,
    ) -> Result<WatchEvents<R>, ApiError> {
        self.registry
            .watch_cache()
            .watch(&self.registry, namespace, options)
            .await
    }

    async fn pod_logs(
        &self,
        namespace: &str,
        name: &str,
        options: &PodLogOptions,
    ) -> Result<LogStream, ApiError> {
        let Some(connector) = &self.nodes else {
            return Err(ApiError::BadRequest(format!(
                "this LocalClient cannot read the logs of pod {namespace}/{name}: give it a node connector (LocalClient::with_node_connector)"
            )));
        };
        crate::logs::pod_logs(self, connector.as_ref(), namespace, name, options).await
    }

    async fn bind(&self, namespace: &str, pod: &str, node: &str) -> Result<Pod, ApiError> {
        self.registry.bind(namespace, pod, node).await
    }

    async fn request_token(
        &self,
        namespace: &str,
        name: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, ApiError> {
        let Some(issuer) = &self.tokens else {
            return Err(ApiError::BadRequest(format!(
                "this LocalClient cannot have tokens issued for service account {namespace}/{name}: give it a token issuer (LocalClient::with_token_issuer)"
            )));
        };
        issuer.issue(namespace, name, request).await
    }
}
