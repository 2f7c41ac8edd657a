//! The registry: typed objects over any [`Store`], with Kubernetes' contracts.
//!
//! Every object is JSON at `/registry/{plural}/{namespace}/{name}` (cluster-scoped kinds:
//! `/registry/{plural}/{name}`), and its `resourceVersion` is the key's `mod_revision` in
//! decimal. Writes are store transactions guarded by that revision (optimistic concurrency:
//! [`ApiError::Conflict`] when stale); lists read one revision across all their pages; watches
//! turn the store's events (with their previous values) into [`WatchEvent`]s.
//!
//! ```
//! use orchestra_api::registry::{ListOptions, Registry};
//! use orchestra_api::resources::{Namespace, Pod};
//! use orchestra_api::ObjectMeta;
//! use orchestra_store::MemStore;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let registry = Registry::new(MemStore::new());
//! let created = registry
//!     .create(Namespace { metadata: ObjectMeta::named("shop"), ..Default::default() })
//!     .await?;
//! assert_eq!(created.metadata.generation, Some(1));
//! let again = registry.get::<Namespace>("", "shop").await?;
//! assert_eq!(again.metadata.resource_version, created.metadata.resource_version);
//! let pods = registry.list::<Pod>(Some("shop"), &ListOptions::default()).await?;
//! assert!(pods.items.is_empty());
//! # Ok::<(), orchestra_api::registry::ApiError>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//! - `admit`: the admission stage of every write ([`crate::admission`]) and the transactions
//!   that write an object with the keys it claims.
//! - [`error`]: [`ApiError`], Kubernetes' status codes and reasons.
//! - `write`: create, update, update_status, patch and bind.
//! - `delete`: delete with finalizers, grace periods and propagation policies.
//! - `dynamic`: [`DynRegistry`], the same operations for kinds chosen at run time
//!   (`Box<dyn DynResource>`, built-in and registered custom kinds).
//! - `list`: get, and list with selectors and consistent pages.
//! - `watch`: [`WatchEvent`] streams with selector transitions and bookmarks.
//! - `patch`: [`merge_patch`] (RFC 7386).
//! - `token`: the `continue` token of paged lists.
//! - `ttl`: objects that expire (Events) through leases shared per time window.

mod admit;
mod delete;
mod dynamic;
pub mod error;
mod list;
mod options;
mod patch;
mod token;
mod ttl;
mod watch;
mod write;

pub(crate) use write::generate_name;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use orchestra_store::{KeyValue, Store};
use serde_json::Value;

use crate::admission::Admission;
use crate::codec;
use crate::resource::Resource;

pub use delete::DeleteOutcome;
pub use dynamic::{DynFuture, DynOps, DynRegistry};
pub use error::{ApiError, MAX_OBJECT_BYTES};
pub use list::ObjectList;
pub use options::{DeleteOptions, ListOptions, PropagationPolicy, WatchOptions};
pub use patch::merge_patch;
pub use ttl::{DEFAULT_EVENT_TTL, MAX_OBJECTS_PER_LEASE, reuse_window};
pub use watch::{WatchEvent, WatchEvents};

/// The annotation where [`Registry::delete`] records the caller's [`PropagationPolicy`] for the
/// garbage collector.
pub const PROPAGATION_POLICY_ANNOTATION: &str = "orchestra.io/propagation-policy";

/// Typed objects over a [`Store`]: the storage layer of the API server and of
/// [`LocalClient`](crate::client::LocalClient). Cheap to clone (the store is shared).
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn Store>,
    admission: Admission,
    expiry: Arc<ttl::Expiry>,
    /// The in-process watch caches of [`LocalClient`](crate::LocalClient), shared by clones.
    watch_cache: crate::watch_cache::LocalWatchCache,
    /// The encryption layer over `store`, if any (the same store, kept typed for rewrites).
    encryption: Option<crate::encryption::EncryptedStore>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("admission", &self.admission)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// A registry over `store`, without admission plug-ins
    /// ([`Registry::with_admission`] adds them).
    pub fn new(store: impl Store) -> Self {
        Self::from_arc(Arc::new(store))
    }

    /// A registry over a store shared with others.
    pub fn from_arc(store: Arc<dyn Store>) -> Self {
        Registry {
            store,
            admission: Admission::default(),
            expiry: Arc::new(ttl::Expiry::kubernetes_defaults()),
            watch_cache: crate::watch_cache::LocalWatchCache::default(),
            encryption: None,
        }
    }

    /// This registry with objects of kind `R` expiring `ttl` after their last write (`None`:
    /// never). Events expire after [`DEFAULT_EVENT_TTL`] unless changed here (Kubernetes'
    /// `--event-ttl`); nothing else expires by default. Expired objects are deleted by the
    /// store's lease expiry, which watchers see as DELETED events.
    pub fn with_ttl<R: Resource>(mut self, ttl: Option<Duration>) -> Self {
        self.expiry = Arc::new(self.expiry.with_ttl(R::PLURAL, ttl));
        self
    }

    /// How long objects of kind `R` live after their last write, if they expire.
    pub fn ttl<R: Resource>(&self) -> Option<Duration> {
        self.expiry.ttl(R::PLURAL)
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// This registry with the kinds of `config` encrypted at rest ([`crate::encryption`]):
    /// the store is wrapped in an [`EncryptedStore`](crate::encryption::EncryptedStore).
    /// Call it while building, before cloning: clones made earlier keep the plain store.
    pub fn with_encryption(mut self, config: crate::encryption::EncryptionConfig) -> Self {
        let encrypted = crate::encryption::EncryptedStore::new(self.store.clone(), config);
        self.store = Arc::new(encrypted.clone());
        self.encryption = Some(encrypted);
        self
    }

    /// The encryption layer, when [`Registry::with_encryption`] added one (to
    /// [`rewrite`](crate::encryption::EncryptedStore::rewrite) after a key rotation).
    pub fn encryption(&self) -> Option<&crate::encryption::EncryptedStore> {
        self.encryption.as_ref()
    }

    /// The in-process watch caches, shared by every clone of this registry.
    pub(crate) fn watch_cache(&self) -> &crate::watch_cache::LocalWatchCache {
        &self.watch_cache
    }
}

/// The key of one object: `/registry/{plural}/{namespace}/{name}` or, cluster-scoped,
/// `/registry/{plural}/{name}`.
pub fn object_key<R: Resource>(namespace: &str, name: &str) -> String {
    if R::NAMESPACED {
        format!("/registry/{}/{namespace}/{name}", R::PLURAL)
    } else {
        format!("/registry/{}/{name}", R::PLURAL)
    }
}

/// The key prefix of a list or watch: one namespace's objects, or all of the kind.
pub fn list_prefix<R: Resource>(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if R::NAMESPACED && !ns.is_empty() => format!("/registry/{}/{ns}/", R::PLURAL),
        _ => format!("/registry/{}/", R::PLURAL),
    }
}

/// `namespace/name`, or the name alone, for messages.
pub(crate) fn display_name<R: Resource>(namespace: &str, name: &str) -> String {
    if R::NAMESPACED {
        format!("{namespace}/{name}")
    } else {
        name.to_owned()
    }
}

/// Encodes an object for the store (without its resourceVersion), refusing oversize ones.
pub(crate) fn encode<R: Resource>(object: &R) -> Result<Bytes, ApiError> {
    // Only a copy may lose its resourceVersion; a create's object has none, and copying a
    // whole pod for nothing was a visible share of a bulk load's pod creations.
    let cleared;
    let object = if object.meta().resource_version.is_empty() {
        object
    } else {
        let mut copy = object.clone();
        copy.meta_mut().resource_version.clear();
        cleared = copy;
        &cleared
    };
    let bytes = codec::to_string(object).map_err(|err| {
        ApiError::BadRequest(format!("the {} does not encode as JSON: {err}", R::KIND))
    })?;
    if bytes.len() > MAX_OBJECT_BYTES {
        return Err(ApiError::TooLarge {
            kind: R::KIND,
            name: object.meta().name.clone(),
            size: bytes.len(),
            limit: MAX_OBJECT_BYTES,
        });
    }
    // A copy of exactly the text's length: `Bytes::from` would keep the whole buffer
    // serde_json grew by doubling (up to twice the text), and the store keeps every value
    // (each revision of each object, until compaction) for as long as it lives.
    Ok(Bytes::copy_from_slice(bytes.as_bytes()))
}

/// Decodes a stored object and sets its resourceVersion to `revision`.
pub(crate) fn decode_at<R: Resource>(
    key: &[u8],
    value: &[u8],
    revision: i64,
) -> Result<R, ApiError> {
    let mut object = match codec::decode_stored::<R>(value) {
        Some(object) => object,
        None => {
            let json = parse_stored(key, value)?;
            codec::decode::<R>(json)
                .map_err(|err| ApiError::corrupt(key, err))?
                .object
        }
    };
    object.meta_mut().resource_version = revision.to_string();
    Ok(object)
}

/// Parses a stored value as JSON; a value still encrypted (no configured key opens it) gets an
/// error naming its key rather than a JSON syntax error.
pub(crate) fn parse_stored(key: &[u8], value: &[u8]) -> Result<Value, ApiError> {
    if let Some(reason) = crate::encryption::undecryptable(value) {
        return Err(ApiError::corrupt_raw(key, reason));
    }
    serde_json::from_slice(value).map_err(|err| ApiError::corrupt(key, err))
}

/// Decodes a stored key-value at its own mod_revision.
pub(crate) fn decode_kv<R: Resource>(kv: &KeyValue) -> Result<R, ApiError> {
    decode_at(&kv.key, &kv.value, kv.mod_revision)
}

/// Parses a resourceVersion given by a caller.
pub(crate) fn parse_resource_version(rv: &str) -> Result<i64, ApiError> {
    match rv.parse::<i64>() {
        Ok(rev) if rev >= 0 => Ok(rev),
        _ => Err(ApiError::BadRequest(format!(
            "invalid resourceVersion {rv:?}: it must be the decimal resourceVersion of an object or list read earlier"
        ))),
    }
}
