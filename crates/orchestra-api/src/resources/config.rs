//! [`ConfigMap`] and [`Secret`] (`v1`): configuration and credentials for pods, as named
//! entries of text or bytes.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::meta::ObjectMeta;
use crate::resource::Resource;
use crate::validation::{self, ErrorList};

/// Bytes that travel as a base64 string in JSON and YAML, as Kubernetes' `[]byte` fields
/// (`binaryData`, a Secret's `data`).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct ByteString(pub Vec<u8>);

impl fmt::Debug for ByteString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ByteString({} bytes)", self.0.len())
    }
}

impl From<&str> for ByteString {
    fn from(text: &str) -> Self {
        ByteString(text.as_bytes().to_vec())
    }
}

impl Serialize for ByteString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for ByteString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD
            .decode(text.trim())
            .map(ByteString)
            .map_err(|err| serde::de::Error::custom(format!("invalid base64 data: {err}")))
    }
}

/// Configuration for pods (`v1`, `ConfigMap`, namespaced): text entries in `data`, bytes in
/// `binaryData`; a key is in at most one of them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ConfigMap {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// UTF-8 entries.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, String>,
    /// Binary entries (base64 in JSON).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub binary_data: BTreeMap<String, ByteString>,
    /// When true, the entries can no longer change (only metadata can).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

impl Resource for ConfigMap {
    const API_VERSION: &'static str = "v1";
    const KIND: &'static str = "ConfigMap";
    const PLURAL: &'static str = "configmaps";
    const NAMESPACED: bool = true;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_config_map(self)
    }

    fn validate_update_fields(&self, old: &Self) -> ErrorList {
        validation::validate_config_map_update(self, old)
    }
}

/// The type of an Opaque secret (arbitrary entries), the default.
pub const SECRET_TYPE_OPAQUE: &str = "Opaque";
/// The type of a TLS secret: entries `tls.crt` and `tls.key`.
pub const SECRET_TYPE_TLS: &str = "kubernetes.io/tls";
/// The type of registry credentials: entry `.dockerconfigjson`.
pub const SECRET_TYPE_DOCKER_CONFIG_JSON: &str = "kubernetes.io/dockerconfigjson";
/// The type of basic-auth credentials: entries `username` and/or `password`.
pub const SECRET_TYPE_BASIC_AUTH: &str = "kubernetes.io/basic-auth";

/// Credentials for pods (`v1`, `Secret`, namespaced): byte entries in `data` (base64 in JSON).
/// `stringData` is a write-only convenience: its text entries are merged into `data` (winning
/// over the same keys) when the secret is written, and it is never stored.
/// Its `Debug` shows entry names and sizes, never their contents, so that a secret formatted
/// into a log line or an error leaks nothing.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Secret {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The secret's type, `Opaque` by default; immutable.
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    pub type_: String,
    /// The entries (base64 in JSON).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub data: BTreeMap<String, ByteString>,
    /// Text entries merged into `data` on write.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub string_data: BTreeMap<String, String>,
    /// When true, the entries can no longer change (only metadata can).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// Entry names with their sizes: what a reader of a log may know of a secret.
        struct Sizes<'a, V>(&'a BTreeMap<String, V>, fn(&V) -> usize);
        struct Size(usize);
        impl fmt::Debug for Size {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "<{} bytes>", self.0)
            }
        }
        impl<V> fmt::Debug for Sizes<'_, V> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_map()
                    .entries(self.0.iter().map(|(k, v)| (k, Size((self.1)(v)))))
                    .finish()
            }
        }
        // `ctl apply` keeps the whole applied object, data included, in an annotation.
        let mut metadata = std::borrow::Cow::Borrowed(&self.metadata);
        let applied = crate::apply::LAST_APPLIED_ANNOTATION;
        if let Some(len) = self.metadata.annotations.get(applied).map(String::len) {
            let redacted = format!("<redacted: {len} bytes>");
            metadata
                .to_mut()
                .annotations
                .insert(applied.to_owned(), redacted);
        }
        f.debug_struct("Secret")
            .field("metadata", &metadata)
            .field("type_", &self.type_)
            .field("data", &Sizes(&self.data, |v: &ByteString| v.0.len()))
            .field(
                "string_data",
                &Sizes(&self.string_data, |v: &String| v.len()),
            )
            .field("immutable", &self.immutable)
            .finish()
    }
}

impl Resource for Secret {
    const API_VERSION: &'static str = "v1";
    const KIND: &'static str = "Secret";
    const PLURAL: &'static str = "secrets";
    const NAMESPACED: bool = true;
    const SELECTABLE_FIELDS: &'static [&'static str] = &["type"];

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn default_fields(&mut self) {
        crate::defaulting::default_secret(self);
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_secret(self)
    }

    fn validate_update_fields(&self, old: &Self) -> ErrorList {
        validation::validate_secret_update(self, old)
    }

    fn field_value(&self, field: &str) -> Option<String> {
        (field == "type").then(|| self.type_.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_shows_names_and_sizes_never_contents() {
        let mut secret = Secret::default();
        secret.metadata.name = "db".into();
        secret.data.insert("password".into(), "hunter2-data".into());
        secret
            .string_data
            .insert("token".into(), "hunter2-string".into());
        secret.metadata.annotations.insert(
            crate::apply::LAST_APPLIED_ANNOTATION.into(),
            r#"{"stringData":{"token":"hunter2-applied"}}"#.into(),
        );
        let debug = format!("{secret:?} {secret:#?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(
            debug.contains("password") && debug.contains("<12 bytes>"),
            "{debug}"
        );
        assert!(
            debug.contains("token") && debug.contains("<14 bytes>"),
            "{debug}"
        );
        assert!(debug.contains("<redacted: "), "{debug}");
        assert!(debug.contains("\"db\""), "{debug}");
    }
}
