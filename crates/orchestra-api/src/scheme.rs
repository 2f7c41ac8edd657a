//! The [`Scheme`]: which kinds exist, by `(apiVersion, kind)` and by plural, each with a
//! type-erased [`KindCodec`] that decodes JSON into its Rust type, defaults, validates and
//! encodes, so that the API server, manifests and clients handle built-in and custom kinds
//! alike. Objects of any kind travel as `Box<dyn DynResource>`.
//!
//! The box holds its object behind an `Arc`, so that a cache can hand the same decoded object
//! to typed readers without copying it ([`erase_arc`], `downcast_arc`): copying a boxed object
//! ([`DynResource::clone_boxed`]) shares it, and changing one (`meta_mut`, `downcast_mut`)
//! copies it first if it is shared.
//!
//! ```
//! use orchestra_api::{Scheme, resources::Service};
//!
//! let scheme = Scheme::new();
//! let value = serde_json::json!({
//!     "apiVersion": "v1", "kind": "Service",
//!     "metadata": {"name": "web"},
//!     "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}
//! });
//! let mut decoded = scheme.decode(value)?;
//! decoded.object.apply_defaults();
//! assert!(decoded.object.validate().is_empty());
//! let service: &Service = decoded.object.downcast_ref().unwrap();
//! assert_eq!(service.spec.ports[0].target_port, Some(80.into()));
//! # Ok::<(), orchestra_api::DecodeError>(())
//! ```

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use crate::codec::{self, DecodeError, Decoded};
use crate::meta::ObjectMeta;
use crate::resource::{Resource, TypeInfo};
use crate::resources::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use crate::resources::{
    ConfigMap, ControllerRevision, DaemonSet, Deployment, Endpoints, Event, Job, Lease, Namespace,
    Node, Pod, PodGroup, ReplicaSet, Secret, Service, ServiceAccount, StatefulSet, TrafficSplit,
};
use crate::validation::{ErrorList, names};

/// An object of any registered kind, behind a trait object: what the [`Scheme`] decodes into.
/// [`Resource::into_dyn`] (or [`erase`]) makes one from a typed object;
/// `downcast_ref` gets the type back.
///
/// Its methods mirror [`Resource`]'s; they are implemented by a private wrapper rather than
/// by every kind, so that a typed object never has both traits' methods.
pub trait DynResource: Any + Send + Sync + fmt::Debug {
    /// The kind's identity.
    fn type_info(&self) -> TypeInfo;
    /// The object's metadata.
    fn meta(&self) -> &ObjectMeta;
    /// The object's metadata, mutably.
    fn meta_mut(&mut self) -> &mut ObjectMeta;
    /// [`Resource::apply_defaults`].
    fn apply_defaults(&mut self);
    /// [`Resource::validate`].
    fn validate(&self) -> ErrorList;
    /// [`Resource::validate_update`]; an `old` of another kind is an error on `kind`.
    fn validate_update(&self, old: &dyn DynResource) -> ErrorList;
    /// [`Resource::field`], for field selectors.
    fn field(&self, field: &str) -> Option<String>;
    /// The object as JSON with `apiVersion` and `kind`.
    fn to_json(&self) -> Result<Value, serde_json::Error>;
    /// A boxed copy.
    fn clone_boxed(&self) -> Box<dyn DynResource>;
    /// The typed object as [`Any`], for downcasting.
    fn as_any(&self) -> &dyn Any;
    /// The typed object as mutable [`Any`], for downcasting.
    fn as_any_mut(&mut self) -> &mut dyn Any;
    /// The typed object as boxed [`Any`], for downcasting by value.
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send + Sync>;
    /// The typed object as a shared [`Any`] (the same allocation, not a copy), for
    /// downcasting into an `Arc`.
    fn shared_any(&self) -> Arc<dyn Any + Send + Sync>;
}

/// Boxes a typed object as a [`DynResource`] (what [`Resource::into_dyn`] does).
pub fn erase<R: Resource>(object: R) -> Box<dyn DynResource> {
    erase_arc(Arc::new(object))
}

/// Boxes a shared typed object as a [`DynResource`] without copying it: `downcast_arc`
/// gives the same `Arc` back.
pub fn erase_arc<R: Resource>(object: Arc<R>) -> Box<dyn DynResource> {
    Box::new(Erased(object))
}

/// The wrapper that implements [`DynResource`] for a [`Resource`]. The object is shared
/// (see the [module docs](self)); the mutable accessors copy it first if it is shared.
#[derive(Clone)]
struct Erased<R>(Arc<R>);

impl<R: Resource> fmt::Debug for Erased<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<R: Resource> DynResource for Erased<R> {
    fn type_info(&self) -> TypeInfo {
        R::type_info()
    }

    fn meta(&self) -> &ObjectMeta {
        self.0.meta()
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        Arc::make_mut(&mut self.0).meta_mut()
    }

    fn apply_defaults(&mut self) {
        Arc::make_mut(&mut self.0).apply_defaults();
    }

    fn validate(&self) -> ErrorList {
        self.0.validate()
    }

    fn validate_update(&self, old: &dyn DynResource) -> ErrorList {
        match old.as_any().downcast_ref::<R>() {
            Some(old) => self.0.validate_update(old),
            None => {
                let mut errors = ErrorList::new();
                errors.push(crate::validation::FieldError::invalid(
                    &crate::validation::FieldPath::new("kind"),
                    R::KIND,
                    format!(
                        "an update may not change the kind (the stored object is a {})",
                        old.type_info().kind
                    ),
                ));
                errors
            }
        }
    }

    fn field(&self, field: &str) -> Option<String> {
        self.0.field(field)
    }

    fn to_json(&self) -> Result<Value, serde_json::Error> {
        codec::to_value(self.0.as_ref())
    }

    fn clone_boxed(&self) -> Box<dyn DynResource> {
        Box::new(self.clone())
    }

    fn as_any(&self) -> &dyn Any {
        self.0.as_ref()
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        let object: &mut R = Arc::make_mut(&mut self.0);
        object
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any + Send + Sync> {
        Box::new(Arc::unwrap_or_clone(self.0))
    }

    fn shared_any(&self) -> Arc<dyn Any + Send + Sync> {
        self.0.clone()
    }
}

impl dyn DynResource {
    /// Whether the object is an `R`.
    pub fn is<R: Resource>(&self) -> bool {
        self.as_any().is::<R>()
    }

    /// The object as an `R`, if it is one.
    pub fn downcast_ref<R: Resource>(&self) -> Option<&R> {
        self.as_any().downcast_ref()
    }

    /// The object as a shared `R` (the same allocation the box holds, not a copy), if it is
    /// one.
    pub fn downcast_arc<R: Resource>(&self) -> Option<Arc<R>> {
        self.shared_any().downcast().ok()
    }

    /// The object as a mutable `R`, if it is one (copied first if it is shared).
    pub fn downcast_mut<R: Resource>(&mut self) -> Option<&mut R> {
        self.as_any_mut().downcast_mut()
    }

    /// The object as a boxed `R`, or itself back if it is not one.
    pub fn downcast<R: Resource>(self: Box<Self>) -> Result<Box<R>, Box<dyn DynResource>> {
        if self.is::<R>() {
            match self.into_any().downcast::<R>() {
                Ok(object) => Ok(object),
                Err(_) => unreachable!("the type was checked by is::<R>()"),
            }
        } else {
            Err(self)
        }
    }
}

impl Clone for Box<dyn DynResource> {
    fn clone(&self) -> Self {
        self.clone_boxed()
    }
}

/// A decoded object of any kind, with the paths of the fields its kind does not know.
pub type DecodedObject = Decoded<Box<dyn DynResource>>;

/// The type-erased codec of one kind.
#[derive(Clone, Copy)]
pub struct KindCodec {
    info: TypeInfo,
    type_id: TypeId,
    type_name: &'static str,
    decode: fn(Value) -> Result<DecodedObject, DecodeError>,
    decode_stored: fn(&[u8]) -> Option<Box<dyn DynResource>>,
    decode_known_fields: fn(&[u8]) -> Option<Box<dyn DynResource>>,
}

impl fmt::Debug for KindCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindCodec")
            .field("info", &self.info)
            .field("type", &self.type_name)
            .finish()
    }
}

fn decode_erased<R: Resource>(value: Value) -> Result<DecodedObject, DecodeError> {
    let decoded = codec::decode::<R>(value)?;
    Ok(Decoded {
        object: erase(decoded.object),
        unknown_fields: decoded.unknown_fields,
    })
}

fn decode_stored_erased<R: Resource>(bytes: &[u8]) -> Option<Box<dyn DynResource>> {
    codec::decode_stored::<R>(bytes).map(erase)
}

fn decode_known_fields_erased<R: Resource>(bytes: &[u8]) -> Option<Box<dyn DynResource>> {
    codec::decode_known_fields::<R>(bytes).map(erase)
}

impl KindCodec {
    /// The codec of `R`.
    pub fn of<R: Resource>() -> Self {
        KindCodec {
            info: R::type_info(),
            type_id: TypeId::of::<R>(),
            type_name: std::any::type_name::<R>(),
            decode: decode_erased::<R>,
            decode_stored: decode_stored_erased::<R>,
            decode_known_fields: decode_known_fields_erased::<R>,
        }
    }

    /// The kind's identity.
    pub fn info(&self) -> TypeInfo {
        self.info
    }

    /// The Rust type's name, for messages.
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }

    /// Whether this is the codec of `R`.
    pub fn is<R: Resource>(&self) -> bool {
        self.type_id == TypeId::of::<R>()
    }

    /// Decodes a JSON object into the kind's type; `apiVersion` and `kind`, if present, must
    /// be this kind's. Unknown fields are returned by path.
    pub fn decode(&self, value: Value) -> Result<DecodedObject, DecodeError> {
        (self.decode)(value)
    }

    /// [`codec::decode_stored`] for this kind: the fast path for stored bytes, `None` when
    /// the caller must take [`KindCodec::decode`].
    pub fn decode_stored(&self, bytes: &[u8]) -> Option<Box<dyn DynResource>> {
        (self.decode_stored)(bytes)
    }

    /// [`codec::decode_known_fields`] for this kind: the fast path for a client's object
    /// when unknown fields are refused, `None` when the caller must take
    /// [`KindCodec::decode`].
    pub fn decode_known_fields(&self, bytes: &[u8]) -> Option<Box<dyn DynResource>> {
        (self.decode_known_fields)(bytes)
    }

    /// Fills the object's defaults.
    pub fn default(&self, object: &mut dyn DynResource) {
        object.apply_defaults();
    }

    /// Validates the object.
    pub fn validate(&self, object: &dyn DynResource) -> ErrorList {
        object.validate()
    }

    /// Encodes the object as JSON with `apiVersion` and `kind`; the object must be of this
    /// codec's kind.
    pub fn encode(&self, object: &dyn DynResource) -> Result<Value, EncodeError> {
        if object.as_any().type_id() != self.type_id {
            return Err(EncodeError::WrongKind {
                expected: self.info.to_string(),
                found: object.type_info().to_string(),
            });
        }
        object
            .to_json()
            .map_err(|e| EncodeError::Json(e.to_string()))
    }
}

/// Why an object could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The object is of another kind than the codec's.
    #[error("cannot encode a {found} with the codec of {expected}")]
    WrongKind {
        /// The codec's kind.
        expected: String,
        /// The object's kind.
        found: String,
    },
    /// Serialization failed (a map with non-string keys, a custom Serialize error).
    #[error("encoding to JSON failed: {0}")]
    Json(String),
}

/// Why a kind could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemeError {
    /// The `(apiVersion, kind)` is taken.
    #[error("kind {kind:?} of apiVersion {api_version:?} is already registered (by {existing})")]
    AlreadyRegistered {
        /// The apiVersion.
        api_version: String,
        /// The kind.
        kind: String,
        /// The Rust type registered for it.
        existing: &'static str,
    },
    /// The plural is taken in that apiVersion.
    #[error("plural {plural:?} of apiVersion {api_version:?} is already used by kind {existing:?}")]
    PluralTaken {
        /// The apiVersion.
        api_version: String,
        /// The plural.
        plural: String,
        /// The kind using it.
        existing: String,
    },
    /// The kind's constants are malformed.
    #[error("kind {kind:?} of apiVersion {api_version:?} cannot be registered: {reason}")]
    InvalidTypeInfo {
        /// The apiVersion.
        api_version: String,
        /// The kind.
        kind: String,
        /// What is wrong with them.
        reason: String,
    },
}

/// The registry of kinds: see the [module docs](self).
///
/// Lookups scan a short list (a scheme holds tens of kinds), which is as fast as hashing here.
#[derive(Clone, Debug, Default)]
pub struct Scheme {
    kinds: Vec<KindCodec>,
}

impl Scheme {
    /// A scheme with the built-in kinds: Namespace, Node, Pod, Service, Endpoints, Event,
    /// ConfigMap, Secret (`v1`), ReplicaSet, Deployment, DaemonSet, StatefulSet,
    /// ControllerRevision (`apps/v1`), Job (`batch/v1`), Lease (`coordination.k8s.io/v1`), Role,
    /// ClusterRole, RoleBinding, ClusterRoleBinding (`rbac.authorization.k8s.io/v1`),
    /// ServiceAccount (`v1`), PodGroup (`scheduling.x-k8s.io/v1alpha1`) and TrafficSplit
    /// (`mesh.orchestra.dev/v1alpha1`).
    pub fn new() -> Self {
        let mut scheme = Scheme::empty();
        scheme.kinds = vec![
            KindCodec::of::<Namespace>(),
            KindCodec::of::<Node>(),
            KindCodec::of::<Pod>(),
            KindCodec::of::<Service>(),
            KindCodec::of::<Endpoints>(),
            KindCodec::of::<Event>(),
            KindCodec::of::<ReplicaSet>(),
            KindCodec::of::<Deployment>(),
            KindCodec::of::<Lease>(),
            KindCodec::of::<ConfigMap>(),
            KindCodec::of::<Secret>(),
            KindCodec::of::<DaemonSet>(),
            KindCodec::of::<StatefulSet>(),
            KindCodec::of::<ControllerRevision>(),
            KindCodec::of::<Job>(),
            KindCodec::of::<Role>(),
            KindCodec::of::<ClusterRole>(),
            KindCodec::of::<RoleBinding>(),
            KindCodec::of::<ClusterRoleBinding>(),
            KindCodec::of::<ServiceAccount>(),
            KindCodec::of::<PodGroup>(),
            KindCodec::of::<TrafficSplit>(),
        ];
        scheme
    }

    /// A scheme without any kind.
    pub fn empty() -> Self {
        Scheme { kinds: Vec::new() }
    }

    /// Registers `R`: after this, its objects decode, default, validate and encode through the
    /// scheme like the built-in kinds.
    pub fn register<R: Resource>(&mut self) -> Result<&mut Self, SchemeError> {
        let info = R::type_info();
        check_type_info(&info)?;
        if let Some(existing) = self.get(info.api_version, info.kind) {
            return Err(SchemeError::AlreadyRegistered {
                api_version: info.api_version.to_owned(),
                kind: info.kind.to_owned(),
                existing: existing.type_name,
            });
        }
        if let Some(existing) = self.get_by_plural(info.api_version, info.plural) {
            return Err(SchemeError::PluralTaken {
                api_version: info.api_version.to_owned(),
                plural: info.plural.to_owned(),
                existing: existing.info.kind.to_owned(),
            });
        }
        self.kinds.push(KindCodec::of::<R>());
        Ok(self)
    }

    /// The codec of `(apiVersion, kind)`.
    pub fn get(&self, api_version: &str, kind: &str) -> Option<&KindCodec> {
        self.kinds
            .iter()
            .find(|c| c.info.api_version == api_version && c.info.kind == kind)
    }

    /// The codec of a plural in an apiVersion (`("apps/v1", "deployments")`), as in URLs.
    pub fn get_by_plural(&self, api_version: &str, plural: &str) -> Option<&KindCodec> {
        self.kinds
            .iter()
            .find(|c| c.info.api_version == api_version && c.info.plural == plural)
    }

    /// The codec of `R`, if registered.
    pub fn get_type<R: Resource>(&self) -> Option<&KindCodec> {
        self.kinds.iter().find(|c| c.is::<R>())
    }

    /// Every registered kind's codec, in registration order.
    pub fn kinds(&self) -> impl Iterator<Item = &KindCodec> {
        self.kinds.iter()
    }

    /// Decodes a JSON object of any registered kind, dispatching on its `apiVersion` and
    /// `kind`. Unknown fields are returned by path.
    pub fn decode(&self, value: Value) -> Result<DecodedObject, DecodeError> {
        let map = match &value {
            Value::Object(map) => map,
            other => {
                return Err(DecodeError::NotAnObject {
                    found: codec::json_type(other),
                });
            }
        };
        let (api_version, kind) = codec::type_fields(map)?;
        match self.get(api_version, kind) {
            Some(codec) => codec.decode(value),
            None => Err(self.unknown_kind(api_version, kind)),
        }
    }

    fn unknown_kind(&self, api_version: &str, kind: &str) -> DecodeError {
        let same_kind: Vec<_> = self
            .kinds
            .iter()
            .filter(|c| c.info.kind.eq_ignore_ascii_case(kind))
            .map(|c| format!("{} {}", c.info.api_version, c.info.kind))
            .collect();
        let same_version: Vec<_> = self
            .kinds
            .iter()
            .filter(|c| c.info.api_version == api_version)
            .map(|c| c.info.kind)
            .collect();
        let hint = if !same_kind.is_empty() {
            format!("; did you mean {}?", same_kind.join(" or "))
        } else if !same_version.is_empty() {
            format!(
                "; the kinds of {api_version:?} are: {}",
                same_version.join(", ")
            )
        } else {
            "; register the kind in the Scheme, or check the apiVersion".to_owned()
        };
        DecodeError::UnknownKind {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            hint,
        }
    }
}

fn check_type_info(info: &TypeInfo) -> Result<(), SchemeError> {
    let fail = |reason: String| SchemeError::InvalidTypeInfo {
        api_version: info.api_version.to_owned(),
        kind: info.kind.to_owned(),
        reason,
    };
    let version = info.version();
    if !names::is_dns1035_label(version).is_empty() {
        return Err(fail(format!(
            "the version {version:?} must be a DNS-1035 label such as v1 or v1beta1"
        )));
    }
    let group = info.group();
    if info.api_version.contains('/') && !names::is_dns1123_subdomain(group).is_empty() {
        return Err(fail(format!(
            "the group {group:?} must be a DNS subdomain such as example.com"
        )));
    }
    let mut chars = info.kind.chars();
    if !chars.next().is_some_and(|c| c.is_ascii_uppercase())
        || !chars.all(|c| c.is_ascii_alphanumeric())
    {
        return Err(fail(
            "the kind must be CamelCase ASCII letters and digits, e.g. Database".to_owned(),
        ));
    }
    if !names::is_dns1035_label(info.plural).is_empty() {
        return Err(fail(format!(
            "the plural {:?} must be a lowercase DNS-1035 label, e.g. databases",
            info.plural
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtins_are_registered_by_kind_and_plural() {
        let scheme = Scheme::new();
        assert_eq!(scheme.kinds().count(), 22);
        assert!(
            scheme
                .get_by_plural("scheduling.x-k8s.io/v1alpha1", "podgroups")
                .unwrap()
                .is::<PodGroup>()
        );
        assert!(
            scheme
                .get_by_plural("mesh.orchestra.dev/v1alpha1", "trafficsplits")
                .unwrap()
                .is::<TrafficSplit>()
        );
        assert!(
            scheme
                .get_by_plural("v1", "serviceaccounts")
                .unwrap()
                .is::<ServiceAccount>()
        );
        assert!(
            scheme
                .get_by_plural("rbac.authorization.k8s.io/v1", "clusterrolebindings")
                .unwrap()
                .is::<ClusterRoleBinding>()
        );
        assert!(
            scheme
                .get_by_plural("batch/v1", "jobs")
                .unwrap()
                .is::<Job>()
        );
        assert!(
            scheme
                .get_by_plural("v1", "secrets")
                .unwrap()
                .is::<Secret>()
        );
        assert!(
            scheme
                .get("apps/v1", "Deployment")
                .unwrap()
                .is::<Deployment>()
        );
        assert!(scheme.get_by_plural("v1", "pods").unwrap().is::<Pod>());
        assert!(scheme.get_type::<Lease>().is_some());
        assert!(scheme.get("v1", "Deployment").is_none());
    }

    #[test]
    fn unknown_kinds_get_a_hint() {
        let scheme = Scheme::new();
        let err = scheme
            .decode(json!({"apiVersion": "v1", "kind": "Deployment"}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "no kind \"Deployment\" is registered for apiVersion \"v1\"; did you mean apps/v1 Deployment?"
        );
        let err = scheme
            .decode(json!({"apiVersion": "v1", "kind": "PersistentVolume"}))
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("the kinds of \"v1\" are: Namespace, Node, Pod"),
            "{err}"
        );
        let err = scheme.decode(json!({"kind": "Pod"})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "apiVersion: Required value: every object must set apiVersion and kind"
        );
    }

    #[test]
    fn duplicate_registration_is_refused() {
        let mut scheme = Scheme::new();
        let err = scheme.register::<Pod>().unwrap_err();
        assert!(
            matches!(err, SchemeError::AlreadyRegistered { .. }),
            "{err}"
        );
    }

    #[test]
    fn dyn_objects_downcast_and_encode() {
        let scheme = Scheme::new();
        let decoded = scheme
            .decode(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}))
            .unwrap();
        let object = decoded.object;
        assert!(object.is::<Pod>());
        assert_eq!(object.type_info().plural, "pods");
        let codec = scheme.get_type::<Pod>().unwrap();
        assert_eq!(codec.encode(object.as_ref()).unwrap()["kind"], "Pod");
        let wrong = scheme.get_type::<Node>().unwrap();
        assert!(matches!(
            wrong.encode(object.as_ref()),
            Err(EncodeError::WrongKind { .. })
        ));
        let copy = object.clone();
        let pod = copy.downcast::<Pod>().unwrap();
        assert_eq!(pod.metadata.name, "a");
        assert!(object.downcast::<Node>().is_err());
    }
}
