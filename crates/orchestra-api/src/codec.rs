//! JSON encoding and decoding of objects with their `apiVersion` and `kind`, reporting fields
//! the type does not know by their path instead of dropping them silently.
//!
//! Decoding tracks two things as serde walks the value: the path to a value of the wrong type
//! ([`serde_path_to_error`]: `spec.replicas: invalid type: string "three", expected i32`) and
//! every field the type ignored ([`serde_ignored`]:
//! `spec.template.spec.containers[0].imagePullPolicyy`). Fields set to `null` count as absent,
//! as in Kubernetes.

use serde::de::DeserializeOwned;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::resource::Resource;

/// Why a JSON value could not be decoded into an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The value is not a JSON object.
    #[error("expected an object with apiVersion, kind and metadata, found {found}")]
    NotAnObject {
        /// What was found instead: `an array`, `a string`, ...
        found: &'static str,
    },
    /// `apiVersion` or `kind` is missing or not a string.
    #[error("{field}: Required value: every object must set apiVersion and kind")]
    MissingTypeField {
        /// `apiVersion` or `kind`.
        field: &'static str,
    },
    /// The object's `apiVersion`/`kind` is not the type it was decoded as.
    #[error(
        "expected apiVersion {expected_api_version:?} and kind {expected_kind:?}, found {api_version:?} and {kind:?}"
    )]
    WrongType {
        /// The type's `apiVersion`.
        expected_api_version: String,
        /// The type's kind.
        expected_kind: String,
        /// The object's `apiVersion`.
        api_version: String,
        /// The object's kind.
        kind: String,
    },
    /// No kind of that `apiVersion` and name is registered in the scheme.
    #[error("no kind {kind:?} is registered for apiVersion {api_version:?}{hint}")]
    UnknownKind {
        /// The object's `apiVersion`.
        api_version: String,
        /// The object's kind.
        kind: String,
        /// A hint: the kinds registered for that apiVersion, or the apiVersions of that kind.
        hint: String,
    },
    /// A field has a value of the wrong type or an invalid value.
    #[error("{path}: {message}")]
    InvalidField {
        /// The field's path, e.g. `spec.replicas` or `spec.containers[0].ports[0].containerPort`.
        path: String,
        /// What is wrong, e.g. `invalid type: string "three", expected i32`.
        message: String,
    },
    /// Strict decoding found fields the type does not know.
    #[error("{}", unknown_fields_message(paths))]
    UnknownFields {
        /// The fields' paths.
        paths: Vec<String>,
    },
}

fn unknown_fields_message(paths: &[String]) -> String {
    paths
        .iter()
        .map(|p| format!("{p}: unknown field"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A decoded value and the paths of the fields its type ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<T> {
    /// The value.
    pub object: T,
    /// The paths of fields the type does not know, e.g. `spec.replicass`.
    pub unknown_fields: Vec<String>,
}

impl<T> Decoded<T> {
    /// The value, or [`DecodeError::UnknownFields`] if any field was unknown.
    pub fn strict(self) -> Result<T, DecodeError> {
        if self.unknown_fields.is_empty() {
            Ok(self.object)
        } else {
            Err(DecodeError::UnknownFields {
                paths: self.unknown_fields,
            })
        }
    }
}

/// Serializes an object with its `apiVersion` and `kind` (serde alone gives only the body).
#[derive(Debug, Clone, Copy)]
pub struct Typed<'a, R>(pub &'a R);

impl<R: Resource> Serialize for Typed<'_, R> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct WithType<'a, R> {
            #[serde(rename = "apiVersion")]
            api_version: &'static str,
            kind: &'static str,
            #[serde(flatten)]
            object: &'a R,
        }
        WithType {
            api_version: R::API_VERSION,
            kind: R::KIND,
            object: self.0,
        }
        .serialize(s)
    }
}

/// The object as a JSON value with its `apiVersion` and `kind`.
pub fn to_value<R: Resource>(object: &R) -> Result<Value, serde_json::Error> {
    serde_json::to_value(Typed(object))
}

/// The object as JSON text with its `apiVersion` and `kind`.
pub fn to_string<R: Resource>(object: &R) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Typed(object))
}

/// Decodes a full object of type `R` from JSON. `apiVersion` and `kind` may be absent; when
/// present they must be `R`'s. Unknown fields are returned, not dropped.
pub fn decode<R: Resource>(value: Value) -> Result<Decoded<R>, DecodeError> {
    let mut map = match value {
        Value::Object(map) => map,
        other => {
            return Err(DecodeError::NotAnObject {
                found: json_type(&other),
            });
        }
    };
    let api_version = map.remove("apiVersion");
    let kind = map.remove("kind");
    let as_str = |v: &Option<Value>| match v {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    let (api_version, kind) = (as_str(&api_version), as_str(&kind));
    if api_version.as_deref().is_some_and(|v| v != R::API_VERSION)
        || kind.as_deref().is_some_and(|k| k != R::KIND)
    {
        return Err(DecodeError::WrongType {
            expected_api_version: R::API_VERSION.to_owned(),
            expected_kind: R::KIND.to_owned(),
            api_version: api_version.unwrap_or_default(),
            kind: kind.unwrap_or_default(),
        });
    }
    decode_body(Value::Object(map))
}

/// The fast path for objects the registry stored itself: straight from the bytes into the
/// type, without the intermediate `Value`, the path tracking and the unknown-field recording
/// that manifests need. Half the CPU of a 30,000-pod `orchestra bench cluster` run went into
/// the full path on every store read and watch event.
///
/// `None` when that fails (a `null` where the type takes none, a value written by something
/// else, corruption): the caller then takes [`decode`], whose error names the field. The
/// kind is not checked here; the store key's prefix already says which kind it is.
pub fn decode_stored<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    serde_json::from_slice(bytes).ok()
}

/// The fast path for a client's object where unknown fields are refused (the gRPC API):
/// straight from the bytes into the type, `serde_ignored` watching for unknown fields, with
/// neither the intermediate `Value` nor the path tracking of [`decode`], which were 7 % of
/// the CPU of a remote create in `orchestra bench api`.
///
/// `None` whenever the full path might answer otherwise: not an object, another
/// `apiVersion` or `kind`, a field the type does not know, a `null` where the type takes
/// none, a bad value. The caller then takes [`decode`], whose result or error is the answer.
pub fn decode_known_fields<R: Resource>(bytes: &[u8]) -> Option<R> {
    // A struct also deserializes from a JSON array; the full path refuses anything but an
    // object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct TypeMeta<'a> {
        #[serde(rename = "apiVersion", borrow, default)]
        api_version: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default)]
        kind: Option<std::borrow::Cow<'a, str>>,
    }
    let meta: TypeMeta<'_> = serde_json::from_slice(bytes).ok()?;
    if meta.api_version.is_some_and(|v| v != R::API_VERSION)
        || meta.kind.is_some_and(|k| k != R::KIND)
    {
        return None;
    }
    let mut unknown = false;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let object = serde_ignored::deserialize(&mut deserializer, |path| {
        // The type's identity, checked above, is not one of its fields.
        let type_meta = matches!(
            path,
            serde_ignored::Path::Map { parent: serde_ignored::Path::Root, key }
                if key == "apiVersion" || key == "kind"
        );
        unknown |= !type_meta;
    })
    .ok()?;
    deserializer.end().ok()?;
    (!unknown).then_some(object)
}

/// Decodes any deserializable type from JSON, tracking the path of a bad value and the
/// fields the type ignored. `null` fields count as absent.
pub fn decode_body<T: DeserializeOwned>(mut value: Value) -> Result<Decoded<T>, DecodeError> {
    strip_nulls(&mut value);
    let mut unknown_fields = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| {
        unknown_fields.push(format_ignored_path(&path));
    };
    let ignored = serde_ignored::Deserializer::new(value, &mut record);
    let result = serde_path_to_error::deserialize::<_, T>(ignored);
    match result {
        Ok(object) => Ok(Decoded {
            object,
            unknown_fields,
        }),
        Err(err) => {
            let path = err.path().to_string();
            Err(DecodeError::InvalidField {
                path: if path == "." {
                    "<root>".to_owned()
                } else {
                    path
                },
                message: err.into_inner().to_string(),
            })
        }
    }
}

/// Removes every `null` member of every object (Kubernetes reads `null` as absent).
fn strip_nulls(value: &mut Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                map.retain(|_, v| !v.is_null());
                stack.extend(map.values_mut());
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}

/// Formats a path as Kubernetes does: `spec.containers[0].image`.
fn format_ignored_path(path: &serde_ignored::Path<'_>) -> String {
    let mut segments = Vec::new();
    let mut current = path;
    loop {
        match current {
            serde_ignored::Path::Root => break,
            serde_ignored::Path::Seq { parent, index } => {
                segments.push(format!("[{index}]"));
                current = parent;
            }
            serde_ignored::Path::Map { parent, key } => {
                segments.push(format!(".{key}"));
                current = parent;
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => current = parent,
        }
    }
    let joined: String = segments.into_iter().rev().collect();
    joined.strip_prefix('.').unwrap_or(&joined).to_owned()
}

/// A JSON value's type, for messages.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Reads `apiVersion` and `kind` from an object (for dispatch).
pub(crate) fn type_fields(map: &Map<String, Value>) -> Result<(&str, &str), DecodeError> {
    let field = |name: &'static str| match map.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.as_str()),
        _ => Err(DecodeError::MissingTypeField { field: name }),
    };
    Ok((field("apiVersion")?, field("kind")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{Deployment, Pod};
    use serde_json::json;

    #[test]
    fn the_stored_fast_path_reads_what_the_full_path_reads() {
        let manifest = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "name": "web-1", "uid": "u1", "controller": true}]},
            "spec": {"nodeName": "n1", "containers": [{
                "name": "web", "image": "nginx",
                "ports": [{"containerPort": 80, "name": "http"}],
                "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}},
                "env": [{"name": "A", "value": "1"}]
            }]},
            "status": {"phase": "Running", "podIP": "10.0.0.7",
                       "conditions": [{"type": "Ready", "status": "True"}]}
        });
        let full = decode::<Pod>(manifest).expect("decodes").object;
        let stored = to_string(&full).expect("encodes");
        let fast = decode_stored::<Pod>(stored.as_bytes()).expect("the fast path takes it");
        assert_eq!(fast, full);
    }

    #[test]
    fn the_stored_fast_path_declines_what_only_the_full_path_reads() {
        // Kubernetes reads `null` as absent; serde does not for a field that is not an Option.
        let with_null =
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a","labels":null}}"#;
        assert!(decode_stored::<Pod>(with_null).is_none());
        let value: Value = serde_json::from_slice(with_null).expect("json");
        assert_eq!(
            decode::<Pod>(value)
                .expect("full path")
                .object
                .metadata
                .name,
            "a"
        );
        assert!(decode_stored::<Pod>(b"{not json").is_none());
    }

    /// The full path's strict answer for `bytes`, as the gRPC API takes it.
    fn strict_full<R: Resource>(bytes: &[u8]) -> Result<R, DecodeError> {
        let value: Value = serde_json::from_slice(bytes).expect("json");
        decode::<R>(value).and_then(Decoded::strict)
    }

    #[test]
    fn the_known_fields_fast_path_reads_what_the_strict_full_path_reads() {
        let manifest = br#"{"apiVersion":"v1","kind":"Pod",
            "metadata":{"name":"web","namespace":"shop","labels":{"app":"web"}},
            "spec":{"containers":[{"name":"web","image":"nginx",
                "ports":[{"containerPort":80}],"resources":{"requests":{"cpu":"250m"}}}]}}"#;
        let fast = decode_known_fields::<Pod>(manifest).expect("the fast path takes it");
        assert_eq!(fast, strict_full::<Pod>(manifest).unwrap());
        // apiVersion and kind may be absent, as for the full path.
        let bare = br#"{"metadata":{"name":"web"}}"#;
        assert_eq!(
            decode_known_fields::<Pod>(bare),
            Some(strict_full::<Pod>(bare).unwrap())
        );
    }

    #[test]
    fn the_known_fields_fast_path_declines_whatever_the_full_path_must_answer() {
        let declined: [&[u8]; 7] = [
            // Unknown fields, at the top and deep down: the full path names them.
            br#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"extra":1}"#,
            br#"{"kind":"Pod","spec":{"containers":[{"name":"a","image":"b","imagez":"c"}]}}"#,
            // Another kind or version.
            br#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"a"}}"#,
            br#"{"apiVersion":"v2","kind":"Pod","metadata":{"name":"a"}}"#,
            // Not an object (serde would read a struct from an array).
            br#"[{"name":"a"}]"#,
            // A null the type takes as absent only through the full path.
            br#"{"kind":"Pod","metadata":{"name":"a","labels":null}}"#,
            // Broken, or trailing bytes.
            br#"{"kind":"Pod"} {}"#,
        ];
        for bytes in declined {
            let text = String::from_utf8_lossy(bytes);
            assert!(decode_known_fields::<Pod>(bytes).is_none(), "{text}");
        }
        // The full path then answers: an error naming the field, or the object.
        let err = strict_full::<Pod>(declined[1]).unwrap_err().to_string();
        assert!(err.contains("spec.containers[0].imagez"), "{err}");
        assert_eq!(strict_full::<Pod>(declined[5]).unwrap().metadata.name, "a");
    }

    #[test]
    fn unknown_fields_are_reported_by_path() {
        let decoded = decode::<Deployment>(json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labelz": {}},
            "spec": {"template": {"spec": {"containers": [
                {"name": "web", "image": "nginx"},
                {"name": "side", "image": "envoy", "imagePullPolicyy": "Always"}
            ]}}}
        }))
        .unwrap();
        assert_eq!(
            decoded.unknown_fields,
            vec![
                "metadata.labelz",
                "spec.template.spec.containers[1].imagePullPolicyy"
            ]
        );
        let err = decoded.strict().unwrap_err();
        assert_eq!(
            err.to_string(),
            "metadata.labelz: unknown field, spec.template.spec.containers[1].imagePullPolicyy: unknown field"
        );
    }

    #[test]
    fn wrong_types_name_the_path() {
        let err = decode::<Deployment>(json!({
            "spec": {"replicas": "three"}
        }))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "spec.replicas: invalid type: string \"three\", expected i32"
        );
        let err = decode::<Pod>(json!({
            "spec": {"containers": [{"name": "a", "ports": [{"containerPort": "http"}]}]}
        }))
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.containers[0].ports[0].containerPort: invalid type"),
            "{err}"
        );
        let err = decode::<Pod>(json!({
            "spec": {"containers": [{"resources": {"limits": {"cpu": "lots"}}}]}
        }))
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("spec.containers[0].resources.limits.cpu: invalid quantity \"lots\""),
            "{err}"
        );
    }

    #[test]
    fn type_fields_are_checked_and_added() {
        let err = decode::<Pod>(json!({"apiVersion": "apps/v1", "kind": "Pod"})).unwrap_err();
        assert!(matches!(err, DecodeError::WrongType { .. }), "{err}");
        let pod = decode::<Pod>(json!({"metadata": {"name": "a"}}))
            .unwrap()
            .object;
        let value = to_value(&pod).unwrap();
        assert_eq!(value["apiVersion"], "v1");
        assert_eq!(value["kind"], "Pod");
        assert_eq!(value["metadata"]["name"], "a");
        assert_eq!(decode::<Pod>(value).unwrap().object, pod);
    }

    #[test]
    fn nulls_are_absent_and_non_objects_are_rejected() {
        let pod = decode::<Pod>(json!({"metadata": {"name": "a", "labels": null}, "spec": null}))
            .unwrap();
        assert!(pod.unknown_fields.is_empty());
        assert!(matches!(
            decode::<Pod>(json!([1, 2])),
            Err(DecodeError::NotAnObject { found: "a list" })
        ));
    }
}
