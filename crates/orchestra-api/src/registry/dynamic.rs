//! Type-erased access to the registry for kinds known only at run time (by `apiVersion` and
//! `kind`, e.g. from a manifest or an HTTP path): [`DynRegistry`] maps each registered kind to
//! its monomorphic operations ([`DynOps`]), so built-in and custom kinds are stored exactly as
//! the typed [`Registry`] stores them.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use futures::StreamExt;

use super::{
    ApiError, DeleteOptions, DeleteOutcome, ListOptions, ObjectList, Registry, WatchEvent,
    WatchEvents, WatchOptions,
};
use crate::codec::DecodeError;
use crate::resource::{Resource, TypeInfo};
use crate::resources::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use crate::resources::{
    ConfigMap, ControllerRevision, DaemonSet, Deployment, Endpoints, Event, Job, Lease, Namespace,
    Node, Pod, PodGroup, ReplicaSet, Secret, Service, ServiceAccount, StatefulSet, TrafficSplit,
};
use crate::scheme::{DecodedObject, DynResource, KindCodec, erase, erase_arc};
use crate::selector::{FieldSelector, SelectorError};

/// A boxed future of the type-erased operations.
pub type DynFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, ApiError>> + Send + 'a>>;

type Object = Box<dyn DynResource>;
type WriteFn = for<'a> fn(&'a Registry, Object) -> DynFuture<'a, Object>;
type GetFn = for<'a> fn(&'a Registry, &'a str, &'a str) -> DynFuture<'a, Object>;
type ListFn =
    for<'a> fn(&'a Registry, Option<&'a str>, &'a ListOptions) -> DynFuture<'a, ObjectList<Object>>;
type PatchFn = for<'a> fn(&'a Registry, &'a str, &'a str, &'a Value) -> DynFuture<'a, Object>;
type DeleteFn = for<'a> fn(
    &'a Registry,
    &'a str,
    &'a str,
    &'a DeleteOptions,
) -> DynFuture<'a, DeleteOutcome<Object>>;
type WatchFn = for<'a> fn(
    &'a Registry,
    Option<&'a str>,
    &'a WatchOptions,
) -> DynFuture<'a, WatchEvents<Object>>;

/// The registry operations of one kind, with the kind erased.
#[derive(Clone, Copy)]
pub struct DynOps {
    info: TypeInfo,
    create: WriteFn,
    update: WriteFn,
    update_status: WriteFn,
    get: GetFn,
    list: ListFn,
    patch: PatchFn,
    delete: DeleteFn,
    watch: WatchFn,
    codec: KindCodec,
    check_fields: fn(&FieldSelector) -> Result<(), SelectorError>,
}

impl std::fmt::Debug for DynOps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynOps").field("info", &self.info).finish()
    }
}

impl DynOps {
    /// The operations of kind `R`.
    pub fn of<R: Resource>() -> Self {
        DynOps {
            info: R::type_info(),
            create: |registry, object| {
                Box::pin(async move { registry.create(typed::<R>(object)?).await.map(erase) })
            },
            update: |registry, object| {
                Box::pin(async move { registry.update(typed::<R>(object)?).await.map(erase) })
            },
            update_status: |registry, object| {
                Box::pin(
                    async move { registry.update_status(typed::<R>(object)?).await.map(erase) },
                )
            },
            get: |registry, namespace, name| {
                Box::pin(async move { registry.get::<R>(namespace, name).await.map(erase) })
            },
            list: |registry, namespace, options| {
                Box::pin(async move {
                    let list = registry.list::<R>(namespace, options).await?;
                    Ok(ObjectList {
                        items: list.items.into_iter().map(erase).collect(),
                        resource_version: list.resource_version,
                        continue_token: list.continue_token,
                    })
                })
            },
            patch: |registry, namespace, name, patch| {
                Box::pin(
                    async move { registry.patch::<R>(namespace, name, patch).await.map(erase) },
                )
            },
            delete: |registry, namespace, name, options| {
                Box::pin(async move {
                    Ok(
                        match registry.delete::<R>(namespace, name, options).await? {
                            DeleteOutcome::Deleted(object) => DeleteOutcome::Deleted(erase(object)),
                            DeleteOutcome::Pending(object) => DeleteOutcome::Pending(erase(object)),
                        },
                    )
                })
            },
            watch: |registry, namespace, options| {
                Box::pin(async move {
                    let events = registry.watch::<R>(namespace, options).await?;
                    let erased: WatchEvents<Object> =
                        Box::pin(events.map(|event| event.map(erase_event)));
                    Ok(erased)
                })
            },
            codec: KindCodec::of::<R>(),
            check_fields: |selector| selector.check::<R>(),
        }
    }

    /// The kind these operations serve.
    pub fn info(&self) -> TypeInfo {
        self.info
    }

    /// Checks that a field selector uses only fields this kind supports.
    pub fn check_field_selector(&self, selector: &FieldSelector) -> Result<(), ApiError> {
        (self.check_fields)(selector).map_err(|err| ApiError::BadRequest(err.to_string()))
    }

    /// Decodes a JSON object of this kind (`apiVersion` and `kind`, when present, must be
    /// this kind's); unknown fields are returned by path.
    pub fn decode(&self, value: Value) -> Result<DecodedObject, DecodeError> {
        self.codec.decode(value)
    }

    /// The fast path for a client's object when unknown fields are refused (see
    /// [`crate::codec::decode_known_fields`]); `None` when the caller must take
    /// [`DynOps::decode`].
    pub fn decode_known_fields(&self, bytes: &[u8]) -> Option<Box<dyn DynResource>> {
        self.codec.decode_known_fields(bytes)
    }

    /// The fast path for bytes the registry stored (see [`crate::codec::decode_stored`]);
    /// `None` when the caller must take [`DynOps::decode`].
    pub fn decode_stored(&self, bytes: &[u8]) -> Option<Box<dyn DynResource>> {
        self.codec.decode_stored(bytes)
    }
}

/// A typed watch event with its object erased (shared, not copied).
fn erase_event<R: Resource>(event: WatchEvent<R>) -> WatchEvent<Object> {
    let erase = |object| Arc::new(erase_arc(object));
    match event {
        WatchEvent::Added(object) => WatchEvent::Added(erase(object)),
        WatchEvent::Modified(object) => WatchEvent::Modified(erase(object)),
        WatchEvent::Deleted(object) => WatchEvent::Deleted(erase(object)),
        WatchEvent::Bookmark(rv) => WatchEvent::Bookmark(rv),
    }
}

/// The object as `R`, or a bad request naming both kinds.
fn typed<R: Resource>(object: Object) -> Result<R, ApiError> {
    let kind = object.type_info();
    object.downcast::<R>().map(|boxed| *boxed).map_err(|_| {
        ApiError::BadRequest(format!(
            "expected a {} {}, got a {kind}",
            R::API_VERSION,
            R::KIND
        ))
    })
}

/// The map key of a kind.
fn kind_key(api_version: &str, kind: &str) -> String {
    format!("{api_version} {kind}")
}

/// A [`Registry`] addressed by `(apiVersion, kind)`, for the built-in kinds and every kind
/// [`DynRegistry::register`]ed.
#[derive(Clone, Debug)]
pub struct DynRegistry {
    registry: Registry,
    kinds: BTreeMap<String, DynOps>,
}

impl DynRegistry {
    /// The built-in kinds over `registry`.
    pub fn new(registry: Registry) -> Self {
        let mut this = DynRegistry {
            registry,
            kinds: BTreeMap::new(),
        };
        this.register::<Namespace>()
            .register::<Node>()
            .register::<Pod>()
            .register::<Service>()
            .register::<Endpoints>()
            .register::<Event>()
            .register::<ReplicaSet>()
            .register::<Deployment>()
            .register::<Lease>()
            .register::<ConfigMap>()
            .register::<Secret>()
            .register::<DaemonSet>()
            .register::<StatefulSet>()
            .register::<ControllerRevision>()
            .register::<Job>()
            .register::<Role>()
            .register::<ClusterRole>()
            .register::<RoleBinding>()
            .register::<ClusterRoleBinding>()
            .register::<ServiceAccount>()
            .register::<PodGroup>()
            .register::<TrafficSplit>();
        this
    }

    /// Adds (or replaces) kind `R`.
    pub fn register<R: Resource>(&mut self) -> &mut Self {
        self.kinds
            .insert(kind_key(R::API_VERSION, R::KIND), DynOps::of::<R>());
        self
    }

    /// The operations of a kind, or a bad request naming it.
    pub fn ops(&self, api_version: &str, kind: &str) -> Result<&DynOps, ApiError> {
        self.kinds.get(&kind_key(api_version, kind)).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "no kind {kind:?} is registered for apiVersion {api_version:?}"
            ))
        })
    }

    /// The operations of the kind with this plural in `api_version` (`("apps/v1",
    /// "deployments")`), as HTTP paths name kinds.
    pub fn ops_by_plural(&self, api_version: &str, plural: &str) -> Option<&DynOps> {
        self.kinds
            .values()
            .find(|ops| ops.info.api_version == api_version && ops.info.plural == plural)
    }

    /// Every registered kind's operations.
    pub fn kinds(&self) -> impl Iterator<Item = &DynOps> {
        self.kinds.values()
    }

    /// The typed registry underneath (for operations of one kind, like pod binding).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// [`Registry::watch`] for any registered kind.
    pub async fn watch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        options: &WatchOptions,
    ) -> Result<WatchEvents<Object>, ApiError> {
        (self.ops(api_version, kind)?.watch)(&self.registry, namespace, options).await
    }

    fn ops_of(&self, object: &dyn DynResource) -> Result<&DynOps, ApiError> {
        let info = object.type_info();
        self.ops(info.api_version, info.kind)
    }

    /// [`Registry::create`] for any registered kind.
    pub async fn create(&self, object: Object) -> Result<Object, ApiError> {
        (self.ops_of(object.as_ref())?.create)(&self.registry, object).await
    }

    /// [`Registry::update`] for any registered kind.
    pub async fn update(&self, object: Object) -> Result<Object, ApiError> {
        (self.ops_of(object.as_ref())?.update)(&self.registry, object).await
    }

    /// [`Registry::update_status`] for any registered kind.
    pub async fn update_status(&self, object: Object) -> Result<Object, ApiError> {
        (self.ops_of(object.as_ref())?.update_status)(&self.registry, object).await
    }

    /// [`Registry::get`] for any registered kind.
    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Object, ApiError> {
        (self.ops(api_version, kind)?.get)(&self.registry, namespace, name).await
    }

    /// [`Registry::list`] for any registered kind.
    pub async fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<Object>, ApiError> {
        (self.ops(api_version, kind)?.list)(&self.registry, namespace, options).await
    }

    /// [`Registry::patch`] for any registered kind.
    pub async fn patch(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Object, ApiError> {
        (self.ops(api_version, kind)?.patch)(&self.registry, namespace, name, patch).await
    }

    /// [`Registry::delete`] for any registered kind.
    pub async fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<DeleteOutcome<Object>, ApiError> {
        (self.ops(api_version, kind)?.delete)(&self.registry, namespace, name, options).await
    }
}
