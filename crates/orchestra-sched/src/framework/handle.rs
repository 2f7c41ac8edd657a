//! [`ApiHandle`]: what the binding cycle's plugins (PreBind, Bind, PostBind) may ask of the
//! API server. [`Client`] is not object-safe (its methods are generic over the kind), so the
//! framework hands plugins this small object-safe view instead; every `Client` is one.

use async_trait::async_trait;
use orchestra_api::resources::Pod;
use orchestra_api::{ApiError, Client};

/// The API, as the binding cycle's plugins see it; see the [module docs](self).
#[async_trait]
pub trait ApiHandle: Send + Sync {
    /// Binds an unbound pod to a node (the binding subresource: `spec.nodeName` set once).
    async fn bind(&self, namespace: &str, name: &str, node: &str) -> Result<Pod, ApiError>;

    /// Reads a pod.
    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod, ApiError>;

    /// Updates a pod's spec and metadata (a set resourceVersion is a precondition).
    async fn update_pod(&self, pod: &Pod) -> Result<Pod, ApiError>;

    /// Updates a pod's status.
    async fn update_pod_status(&self, pod: &Pod) -> Result<Pod, ApiError>;
}

#[async_trait]
impl<C: Client> ApiHandle for C {
    async fn bind(&self, namespace: &str, name: &str, node: &str) -> Result<Pod, ApiError> {
        Client::bind(self, namespace, name, node).await
    }

    async fn get_pod(&self, namespace: &str, name: &str) -> Result<Pod, ApiError> {
        self.get::<Pod>(namespace, name).await
    }

    async fn update_pod(&self, pod: &Pod) -> Result<Pod, ApiError> {
        self.update(pod).await
    }

    async fn update_pod_status(&self, pod: &Pod) -> Result<Pod, ApiError> {
        self.update_status(pod).await
    }
}
