//! Admission: plug-ins that see every write after defaulting and validation and before the
//! store transaction, and may change the object (mutating) or refuse it (validating), as
//! Kubernetes' admission controllers do. An [`Admission`] chain belongs to a
//! [`Registry`](crate::Registry) ([`Registry::with_admission`](crate::Registry::with_admission)),
//! so the API server, and every [`LocalClient`](crate::LocalClient) over the same registry,
//! admit alike; an embedder adds its own [`AdmissionPlugin`]s next to the built-in ones.
//!
//! The registry runs every plug-in's [`AdmissionPlugin::mutate`] in order, then every
//! plug-in's [`AdmissionPlugin::validate`] in order (Kubernetes' order: mutating, then
//! validating), then writes. A plug-in may also tie store keys to an object
//! ([`AdmissionPlugin::claims`], e.g. an allocated cluster IP): the registry creates them in
//! the object's own transaction, only if no other object holds them, and deletes them with the
//! object, so two objects never hold one key, even when written concurrently or by several API
//! servers over one etcd.
//!
//! ```
//! use orchestra_api::admission::{Admission, AdmissionConfig, AdmissionPlugin, AdmissionRequest};
//! use orchestra_api::resources::{Pod, ServiceAccount};
//! use orchestra_api::{ApiError, ObjectMeta, Registry};
//!
//! /// Refuses pods without an `owner` label.
//! #[derive(Debug)]
//! struct RequireOwner;
//!
//! #[async_trait::async_trait]
//! impl AdmissionPlugin for RequireOwner {
//!     fn name(&self) -> &'static str {
//!         "RequireOwner"
//!     }
//!     async fn validate(&self, request: &AdmissionRequest<'_>) -> Result<(), ApiError> {
//!         match request.object() {
//!             Some(pod) if pod.is::<Pod>() && !pod.meta().labels.contains_key("owner") => Err(
//!                 ApiError::Forbidden(format!("pod {:?} has no owner label", pod.meta().name)),
//!             ),
//!             _ => Ok(()),
//!         }
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let admission = Admission::recommended(AdmissionConfig::default()).with(RequireOwner);
//! let registry = Registry::new(orchestra_store::MemStore::new()).with_admission(admission);
//! // Pods run as the namespace's `default` account (the controller manager makes it).
//! registry.create(ServiceAccount { metadata: ObjectMeta::namespaced("default", "default"), ..Default::default() }).await?;
//! let mut pod: Pod = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "web"},
//!     "spec": {"containers": [{"name": "web", "image": "nginx"}]}
//! })).unwrap();
//! assert_eq!(registry.create(pod.clone()).await.unwrap_err().code(), 403);
//! pod.metadata.labels.insert("owner".into(), "shop".into());
//! let created = registry.create(pod).await?;
//! // DefaultTolerationSeconds added the not-ready and unreachable tolerations, and
//! // ServiceAccount the account's token, mounted in every container.
//! assert_eq!(created.spec.tolerations.len(), 2);
//! assert_eq!(created.spec.service_account_name, "default");
//! assert!(created.spec.volumes[0].name.starts_with("kube-api-access-"));
//! # Ok::<(), ApiError>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//! - [`namespace_lifecycle`]: [`NamespaceLifecycle`]: no creates in a missing or terminating
//!   namespace; the system namespaces exist from the start and are never deleted.
//! - [`tolerations`]: [`DefaultTolerationSeconds`]: pods tolerate not-ready and unreachable
//!   nodes for 300 s.
//! - [`service_ip`]: [`ServiceAllocation`]: cluster IPs and node ports for Services, from
//!   configurable ranges ([`ServiceRanges`], [`Ipv4Cidr`]).
//! - [`service_account`]: [`ServiceAccountAdmission`]: pods run as `default` unless they name
//!   an account, which must exist, and mount its token, the CA and their namespace.
//! - [`sidecar_injection`]: [`SidecarInjection`]: the mesh proxy, and the init container that
//!   redirects the pod's TCP into it, added to pods that ask for them
//!   (`mesh.orchestra.dev/inject: enabled`), when configured.

pub mod namespace_lifecycle;
pub mod service_account;
pub mod service_ip;
pub mod sidecar_injection;
pub mod tolerations;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::registry::{ApiError, Registry};
use crate::resource::TypeInfo;
use crate::scheme::DynResource;

pub use namespace_lifecycle::NamespaceLifecycle;
pub use service_account::ServiceAccountAdmission;
pub use service_ip::{Ipv4Cidr, ServiceAllocation, ServiceRanges};
pub use sidecar_injection::{RedirectMode, SidecarInjection, SidecarInjectionConfig};
pub use tolerations::DefaultTolerationSeconds;

/// What a write does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// A new object.
    Create,
    /// A change to a stored object (update, patch, status, binding).
    Update,
    /// A deletion (before the object is marked or removed).
    Delete,
}

/// One write, as admission plug-ins see it.
pub struct AdmissionRequest<'a> {
    pub(crate) operation: Operation,
    pub(crate) subresource: &'static str,
    pub(crate) info: TypeInfo,
    pub(crate) namespace: &'a str,
    pub(crate) name: &'a str,
    pub(crate) object: Option<&'a mut dyn DynResource>,
    pub(crate) old: Option<&'a dyn DynResource>,
    pub(crate) registry: &'a Registry,
}

impl fmt::Debug for AdmissionRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmissionRequest")
            .field("operation", &self.operation)
            .field("subresource", &self.subresource)
            .field("kind", &self.info.kind)
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<'a> AdmissionRequest<'a> {
    /// Create, update or delete.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// `""` for the object itself, or `status`, `binding`.
    pub fn subresource(&self) -> &'static str {
        self.subresource
    }

    /// The kind written.
    pub fn kind(&self) -> TypeInfo {
        self.info
    }

    /// The object's namespace (empty for cluster-scoped kinds).
    pub fn namespace(&self) -> &str {
        self.namespace
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.name
    }

    /// The object to be stored (none on delete).
    pub fn object(&self) -> Option<&dyn DynResource> {
        self.object.as_deref()
    }

    /// The object to be stored, for mutating plug-ins.
    pub fn object_mut(&mut self) -> Option<&mut dyn DynResource> {
        match &mut self.object {
            Some(object) => Some(&mut **object),
            None => None,
        }
    }

    /// The stored object (on update and delete).
    pub fn old(&self) -> Option<&dyn DynResource> {
        self.old
    }

    /// The registry, for reads (its writes would admit again).
    pub fn registry(&self) -> &'a Registry {
        self.registry
    }
}

/// A store key an object holds exclusively while it exists (see the [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Claim {
    /// The key, outside every kind's prefix: `/registry/ranges/serviceips/127.2.0.7`.
    pub key: String,
    /// What the key stores: who holds it, for messages (`Service shop/web`).
    pub owner: String,
}

/// One admission plug-in. Every method has a default that does nothing, so a plug-in
/// implements only its phases.
#[async_trait]
pub trait AdmissionPlugin: Send + Sync + fmt::Debug + 'static {
    /// The plug-in's name, as Kubernetes names its admission controllers.
    fn name(&self) -> &'static str;

    /// The mutating phase: may change [`AdmissionRequest::object_mut`], or refuse the write.
    async fn mutate(&self, request: &mut AdmissionRequest<'_>) -> Result<(), ApiError> {
        let _ = request;
        Ok(())
    }

    /// The validating phase, after every plug-in's mutation: may refuse the write.
    async fn validate(&self, request: &AdmissionRequest<'_>) -> Result<(), ApiError> {
        let _ = request;
        Ok(())
    }

    /// The store keys `object` holds exclusively (see [`Claim`]).
    fn claims(&self, object: &dyn DynResource) -> Vec<Claim> {
        let _ = object;
        Vec::new()
    }

    /// Runs once when a server starts over the registry (e.g. creates the system
    /// namespaces).
    async fn initialize(&self, registry: &Registry) -> Result<(), ApiError> {
        let _ = registry;
        Ok(())
    }
}

/// The built-in plug-ins' settings.
#[derive(Clone, Debug)]
pub struct AdmissionConfig {
    /// Where Services' cluster IPs and node ports come from.
    pub service_ranges: ServiceRanges,
    /// Whether new pods mount their service account's token (true by default; turn it off
    /// where the server issues no tokens).
    pub mount_service_account_tokens: bool,
    /// Inject the mesh proxy into the pods that ask for it, set up so (`None`: never).
    pub sidecar_injection: Option<SidecarInjectionConfig>,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            service_ranges: ServiceRanges::default(),
            mount_service_account_tokens: true,
            sidecar_injection: None,
        }
    }
}

/// An ordered list of [`AdmissionPlugin`]s; cheap to clone (shared). The default is empty:
/// nothing is admitted beyond validation.
#[derive(Clone, Default)]
pub struct Admission {
    plugins: Arc<Vec<Arc<dyn AdmissionPlugin>>>,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.plugins.iter().map(|p| p.name()))
            .finish()
    }
}

impl Admission {
    /// No plug-ins.
    pub fn new() -> Self {
        Admission::default()
    }

    /// What `orchestra server` runs: [`NamespaceLifecycle`], [`SidecarInjection`] (when
    /// configured; before the ServiceAccount plug-in, which then mounts the token in the
    /// proxy too), [`ServiceAccountAdmission`], [`DefaultTolerationSeconds`] and
    /// [`ServiceAllocation`] over `config`'s ranges.
    pub fn recommended(config: AdmissionConfig) -> Self {
        let mut admission = Admission::new().with(NamespaceLifecycle);
        if let Some(injection) = config.sidecar_injection {
            admission = admission.with(SidecarInjection { config: injection });
        }
        admission
            .with(ServiceAccountAdmission {
                mount_tokens: config.mount_service_account_tokens,
            })
            .with(DefaultTolerationSeconds::default())
            .with(ServiceAllocation::new(config.service_ranges))
    }

    /// This chain with `plugin` appended.
    pub fn with(mut self, plugin: impl AdmissionPlugin) -> Self {
        Arc::make_mut(&mut self.plugins).push(Arc::new(plugin));
        self
    }

    /// Whether the chain has no plug-ins (the registry then skips admission).
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// The plug-ins' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.plugins.iter().map(|p| p.name()).collect()
    }

    /// Runs the mutating phase of every plug-in, then the validating phase of every plug-in.
    pub async fn admit(&self, request: &mut AdmissionRequest<'_>) -> Result<(), ApiError> {
        for plugin in self.plugins.iter() {
            plugin.mutate(request).await?;
        }
        for plugin in self.plugins.iter() {
            plugin.validate(request).await?;
        }
        Ok(())
    }

    /// Every key `object` holds, sorted, without duplicates.
    pub fn claims(&self, object: &dyn DynResource) -> Vec<Claim> {
        let mut claims: Vec<Claim> = self.plugins.iter().flat_map(|p| p.claims(object)).collect();
        claims.sort();
        claims.dedup_by(|a, b| a.key == b.key);
        claims
    }

    /// Runs every plug-in's [`AdmissionPlugin::initialize`].
    pub async fn initialize(&self, registry: &Registry) -> Result<(), ApiError> {
        for plugin in self.plugins.iter() {
            plugin.initialize(registry).await?;
        }
        Ok(())
    }
}
