//! The [`Resource`] trait every kind implements, built-in or an embedder's own, and
//! [`TypeInfo`], a kind's identity.
//!
//! A kind is a Rust type with serde (Kubernetes' camelCase JSON) and a few constants; its
//! `metadata` is an [`ObjectMeta`]. Two hooks, [`Resource::default_fields`] and
//! [`Resource::validate_fields`], add the kind's own defaulting and validation; the provided
//! [`Resource::apply_defaults`] and [`Resource::validate`] run them together with the rules
//! every object follows (namespace `default`, name syntax, labels, annotations).
//!
//! ```
//! use orchestra_api::{ErrorList, FieldPath, FieldError, ObjectMeta, Resource, Scheme};
//! use serde::{Deserialize, Serialize};
//!
//! /// A database an embedding product manages, served like the built-in kinds.
//! #[derive(Clone, Debug, Default, Serialize, Deserialize)]
//! #[serde(rename_all = "camelCase", default)]
//! struct Database {
//!     metadata: ObjectMeta,
//!     spec: DatabaseSpec,
//! }
//!
//! #[derive(Clone, Debug, Default, Serialize, Deserialize)]
//! #[serde(rename_all = "camelCase", default)]
//! struct DatabaseSpec {
//!     engine: String,
//!     storage_gb: Option<u32>,
//! }
//!
//! impl Resource for Database {
//!     const API_VERSION: &'static str = "db.example.com/v1";
//!     const KIND: &'static str = "Database";
//!     const PLURAL: &'static str = "databases";
//!     const NAMESPACED: bool = true;
//!
//!     fn meta(&self) -> &ObjectMeta { &self.metadata }
//!     fn meta_mut(&mut self) -> &mut ObjectMeta { &mut self.metadata }
//!
//!     fn default_fields(&mut self) {
//!         self.spec.storage_gb.get_or_insert(10);
//!     }
//!
//!     fn validate_fields(&self) -> ErrorList {
//!         let mut errors = ErrorList::new();
//!         let engine = FieldPath::new("spec").child("engine");
//!         if !["postgres", "mysql"].contains(&self.spec.engine.as_str()) {
//!             errors.push(FieldError::not_supported(&engine, self.spec.engine.as_str(), &["postgres", "mysql"]));
//!         }
//!         errors
//!     }
//! }
//!
//! let mut scheme = Scheme::new();
//! scheme.register::<Database>()?;
//! let mut db = Database { metadata: ObjectMeta::named("orders"), ..Default::default() };
//! db.apply_defaults();
//! assert_eq!(db.metadata.namespace, "default");
//! assert_eq!(
//!     db.validate().to_string(),
//!     "spec.engine: Unsupported value: \"\": supported values: \"postgres\", \"mysql\""
//! );
//! # Ok::<(), orchestra_api::SchemeError>(())
//! ```

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::meta::{ObjectMeta, TypeMeta};
use crate::validation::ErrorList;

/// The syntax a kind's `metadata.name` must follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum NameRule {
    /// A lowercase RFC 1123 subdomain: `web-1`, `node-a.example.com` (most kinds).
    #[default]
    Dns1123Subdomain,
    /// A lowercase RFC 1123 label: `web-1` (Namespace).
    Dns1123Label,
    /// A DNS-1035 label, starting with a letter: `web` (Service).
    Dns1035Label,
    /// Anything usable as a URL path segment: no `/` or `%`, not `.` or `..` (Event).
    PathSegment,
}

/// A kind's identity: what a [`Resource`] implementation declares in its constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TypeInfo {
    /// `group/version`, or `version` for the core group.
    pub api_version: &'static str,
    /// The kind, CamelCase.
    pub kind: &'static str,
    /// The lowercase plural used in URLs and store keys: `pods`, `deployments`.
    pub plural: &'static str,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// How `metadata.name` is validated.
    pub name_rule: NameRule,
}

impl TypeInfo {
    /// The API group; empty for the core group (`v1`).
    pub fn group(&self) -> &'static str {
        self.api_version
            .rsplit_once('/')
            .map_or("", |(group, _)| group)
    }

    /// The version: `v1`.
    pub fn version(&self) -> &'static str {
        self.api_version
            .rsplit_once('/')
            .map_or(self.api_version, |(_, version)| version)
    }

    /// The `apiVersion` and `kind` as a [`TypeMeta`].
    pub fn type_meta(&self) -> TypeMeta {
        TypeMeta::new(self.api_version, self.kind)
    }
}

impl fmt::Display for TypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.api_version, self.kind)
    }
}

/// A kind of object the API serves: its identity, its metadata, and its defaulting and
/// validation hooks. See the [module docs](self) for a custom kind.
///
/// Serializing the type with serde gives the object's body without `apiVersion` and `kind`;
/// [`crate::to_value`] and [`crate::Typed`] add them, and [`crate::decode`] checks and strips
/// them.
pub trait Resource:
    Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static
{
    /// `group/version` (`apps/v1`), or `version` for the core group (`v1`).
    const API_VERSION: &'static str;
    /// The kind, CamelCase: `Deployment`.
    const KIND: &'static str;
    /// The lowercase plural used in URLs and store keys: `deployments`.
    const PLURAL: &'static str;
    /// Whether objects live in a namespace.
    const NAMESPACED: bool;
    /// How `metadata.name` is validated.
    const NAME_RULE: NameRule = NameRule::Dns1123Subdomain;
    /// The fields besides `metadata.name` and `metadata.namespace` that field selectors may
    /// use; [`Resource::field_value`] reads them.
    const SELECTABLE_FIELDS: &'static [&'static str] = &[];

    /// The object's metadata.
    fn meta(&self) -> &ObjectMeta;

    /// The object's metadata, mutably.
    fn meta_mut(&mut self) -> &mut ObjectMeta;

    /// Hook: fills the kind's own defaults (the metadata's are [`Resource::apply_defaults`]'s).
    fn default_fields(&mut self) {}

    /// Hook: checks the kind's own fields (the metadata is checked by [`Resource::validate`]).
    fn validate_fields(&self) -> ErrorList {
        ErrorList::new()
    }

    /// Hook: checks what an update may not change, beyond the metadata rules (e.g. an
    /// immutable selector). `self` is the new object, both are defaulted.
    fn validate_update_fields(&self, old: &Self) -> ErrorList {
        let _ = old;
        ErrorList::new()
    }

    /// Hook: what the registry sets on a new object before validating it, after defaulting
    /// (Kubernetes' `PrepareForCreate`; a Namespace gets its `kubernetes` finalizer).
    fn prepare_for_create(&mut self) {}

    /// Hook: what an update keeps from the stored object before validating (Kubernetes'
    /// `PrepareForUpdate`; a Namespace update without `spec` keeps the stored finalizers).
    /// `self` is the new object.
    fn prepare_for_update(&mut self, old: &Self) {
        let _ = old;
    }

    /// Hook: what changes when the object is marked for deletion, besides its
    /// deletionTimestamp (a Namespace turns `Terminating`).
    fn prepare_for_delete(&mut self) {}

    /// Hook: whether the kind's own finalizers (beyond `metadata.finalizers`) still hold the
    /// object after its deletion was asked for (a Namespace's `spec.finalizers`).
    fn holds_deletion(&self) -> bool {
        false
    }

    /// Hook: the value of a field in [`Resource::SELECTABLE_FIELDS`] as a field selector sees
    /// it (`""` when unset); `None` for other fields.
    fn field_value(&self, field: &str) -> Option<String> {
        let _ = field;
        None
    }

    /// The kind's identity.
    fn type_info() -> TypeInfo {
        TypeInfo {
            api_version: Self::API_VERSION,
            kind: Self::KIND,
            plural: Self::PLURAL,
            namespaced: Self::NAMESPACED,
            name_rule: Self::NAME_RULE,
        }
    }

    /// Fills defaults: `metadata.namespace` = `default` for namespaced kinds, then
    /// [`Resource::default_fields`]. The API server calls it on every write before validating.
    fn apply_defaults(&mut self) {
        crate::defaulting::default_object_meta(self.meta_mut(), Self::NAMESPACED);
        self.default_fields();
    }

    /// Checks the whole object: metadata (name, namespace, labels, annotations, owner
    /// references) and [`Resource::validate_fields`]. Empty when valid.
    fn validate(&self) -> ErrorList {
        let mut errors = crate::validation::validate_object_meta(self.meta(), &Self::type_info());
        errors.extend(self.validate_fields());
        errors
    }

    /// Checks an update of `old` to `self`: [`Resource::validate`], the metadata fields that
    /// never change (name, namespace, uid, creationTimestamp), and
    /// [`Resource::validate_update_fields`].
    fn validate_update(&self, old: &Self) -> ErrorList {
        let mut errors = self.validate();
        errors.extend(crate::validation::validate_object_meta_update(
            self.meta(),
            old.meta(),
        ));
        errors.extend(self.validate_update_fields(old));
        errors
    }

    /// The object behind a trait object, as the [`Scheme`](crate::Scheme) hands them out.
    fn into_dyn(self) -> Box<dyn crate::DynResource> {
        crate::scheme::erase(self)
    }

    /// A field's value for field selectors: `metadata.name`, `metadata.namespace`, or one of
    /// [`Resource::SELECTABLE_FIELDS`]; `None` for a field the kind does not support.
    fn field(&self, field: &str) -> Option<String> {
        match field {
            "metadata.name" => Some(self.meta().name.clone()),
            "metadata.namespace" => Some(self.meta().namespace.clone()),
            _ if Self::SELECTABLE_FIELDS.contains(&field) => {
                Some(self.field_value(field).unwrap_or_default())
            }
            _ => None,
        }
    }
}
