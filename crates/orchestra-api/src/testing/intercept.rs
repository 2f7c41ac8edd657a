//! [`Intercepted`]: a [`Client`] that tells a hook about each call before passing it to the
//! client it wraps, so that a test can count calls, refuse them or act in between (another
//! writer's change before an update) without forwarding every method of [`Client`] by hand.
//! The hook sees the kind and the names of each call, not the objects' types: the [`Client`]
//! methods are generic, and a hook that needs an object reads it through the inner client.

use async_trait::async_trait;
use serde_json::Value;

use crate::client::Client;
use crate::meta::ObjectMeta;
use crate::registry::{
    ApiError, DeleteOptions, DeleteOutcome, ListOptions, ObjectList, WatchEvents, WatchOptions,
};
use crate::resource::Resource;
use crate::resources::Pod;

/// One call, as the hook sees it before it is passed on.
#[derive(Debug)]
pub enum Call<'a> {
    /// `get` of `kind` `namespace/name`.
    Get {
        /// The kind (`Pod`, `Lease`, ...).
        kind: &'static str,
        /// The namespace asked for.
        namespace: &'a str,
        /// The name asked for.
        name: &'a str,
    },
    /// `list` (and `list_shared`).
    List {
        /// The kind.
        kind: &'static str,
        /// The namespace (`None`: all).
        namespace: Option<&'a str>,
    },
    /// `create` of an object with this metadata.
    Create {
        /// The kind.
        kind: &'static str,
        /// The object's metadata.
        meta: &'a ObjectMeta,
    },
    /// `update`.
    Update {
        /// The kind.
        kind: &'static str,
        /// The object's metadata.
        meta: &'a ObjectMeta,
    },
    /// `update_status`.
    UpdateStatus {
        /// The kind.
        kind: &'static str,
        /// The object's metadata.
        meta: &'a ObjectMeta,
    },
    /// `patch`.
    Patch {
        /// The kind.
        kind: &'static str,
        /// The namespace.
        namespace: &'a str,
        /// The name.
        name: &'a str,
    },
    /// `delete`.
    Delete {
        /// The kind.
        kind: &'static str,
        /// The namespace.
        namespace: &'a str,
        /// The name.
        name: &'a str,
    },
    /// `watch`.
    Watch {
        /// The kind.
        kind: &'static str,
        /// The namespace (`None`: all).
        namespace: Option<&'a str>,
        /// The options, with the resourceVersion asked for.
        options: &'a WatchOptions,
    },
    /// `bind` of a pod to a node.
    Bind {
        /// The pod's namespace.
        namespace: &'a str,
        /// The pod's name.
        pod: &'a str,
        /// The node.
        node: &'a str,
    },
}

impl Call<'_> {
    /// The kind the call is about (`Pod` for a binding).
    pub fn kind(&self) -> &'static str {
        match self {
            Call::Get { kind, .. }
            | Call::List { kind, .. }
            | Call::Create { kind, .. }
            | Call::Update { kind, .. }
            | Call::UpdateStatus { kind, .. }
            | Call::Patch { kind, .. }
            | Call::Delete { kind, .. }
            | Call::Watch { kind, .. } => kind,
            Call::Bind { .. } => Pod::KIND,
        }
    }

    /// Whether the call writes (create, update, update_status, patch, delete, bind).
    pub fn is_write(&self) -> bool {
        !matches!(
            self,
            Call::Get { .. } | Call::List { .. } | Call::Watch { .. }
        )
    }
}

/// What a test does with each call before it reaches the inner client.
#[async_trait]
pub trait Intercept<C: Client>: Send + Sync + 'static {
    /// Called before `call` is passed to `inner`; an error fails the call with it, and the
    /// call is not passed on.
    async fn before(&self, inner: &C, call: Call<'_>) -> Result<(), ApiError>;
}

/// A client passing every call to `inner` after `hook` has seen it (see the module docs).
/// `pod_logs` and `request_token` go through unseen.
#[derive(Clone, Debug)]
pub struct Intercepted<C, H> {
    /// The client the calls go to.
    pub inner: C,
    /// What sees each call first; shared state belongs behind an `Arc` in it.
    pub hook: H,
}

impl<C, H> Intercepted<C, H> {
    /// Wraps `inner` with `hook`.
    pub fn new(inner: C, hook: H) -> Self {
        Intercepted { inner, hook }
    }
}

#[async_trait]
impl<C: Client, H: Intercept<C> + Clone> Client for Intercepted<C, H> {
    async fn get<R: Resource>(&self, namespace: &str, name: &str) -> Result<R, ApiError> {
        let call = Call::Get {
            kind: R::KIND,
            namespace,
            name,
        };
        self.hook.before(&self.inner, call).await?;
        self.inner.get(namespace, name).await
    }

    async fn list<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<R>, ApiError> {
        let call = Call::List {
            kind: R::KIND,
            namespace,
        };
        self.hook.before(&self.inner, call).await?;
        self.inner.list(namespace, options).await
    }

    async fn list_shared<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<std::sync::Arc<R>>, ApiError> {
        let call = Call::List {
            kind: R::KIND,
            namespace,
        };
        self.hook.before(&self.inner, call).await?;
        self.inner.list_shared(namespace, options).await
    }

    async fn create<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        let call = Call::Create {
            kind: R::KIND,
            meta: object.meta(),
        };
        self.hook.before(&self.inner, call).await?;
        self.inner.create(object).await
    }

    async fn update<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        let call = Call::Update {
            kind: R::KIND,
            meta: object.meta(),
        };
        self.hook.before(&self.inner, call).await?;
        self.inner.update(object).await
    }

    async fn update_status<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        let call = Call::UpdateStatus {
            kind: R::KIND,
            meta: object.meta(),
        };
        self.hook.before(&self.inner, call).await?;
        self.inner.update_status(object).await
    }

    async fn patch<R: Resource>(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<R, ApiError> {
        let call = Call::Patch {
            kind: R::KIND,
            namespace,
            name,
        };
        self.hook.before(&self.inner, call).await?;
        self.inner.patch(namespace, name, patch).await
    }

    async fn delete<R: Resource>(
        &self,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<DeleteOutcome<R>, ApiError> {
        let call = Call::Delete {
            kind: R::KIND,
            namespace,
            name,
        };
        self.hook.before(&self.inner, call).await?;
        self.inner.delete(namespace, name, options).await
    }

    async fn watch<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &WatchOptions,
    ) -> Result<WatchEvents<R>, ApiError> {
        let call = Call::Watch {
            kind: R::KIND,
            namespace,
            options,
        };
        self.hook.before(&self.inner, call).await?;
        self.inner.watch(namespace, options).await
    }

    async fn bind(&self, namespace: &str, pod: &str, node: &str) -> Result<Pod, ApiError> {
        let call = Call::Bind {
            namespace,
            pod,
            node,
        };
        self.hook.before(&self.inner, call).await?;
        self.inner.bind(namespace, pod, node).await
    }

    async fn pod_logs(
        &self,
        namespace: &str,
        name: &str,
        options: &crate::logs::PodLogOptions,
    ) -> Result<crate::logs::LogStream, ApiError> {
        self.inner.pod_logs(namespace, name, options).await
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
