//! Manifests: YAML or JSON files with many objects, as people write them for Kubernetes.
//!
//! [`parse`] splits the input into documents (`---` in YAML; one value after another in
//! JSON; the items of a `kind: List`), decodes each by its `apiVersion` and `kind` through a
//! [`Scheme`], and reports fields the kind does not know as warnings by path
//! (`spec.template.spec.containers[0].imagePullPolicyy: unknown field`), or as errors in
//! [`ManifestOptions::strict`] mode. By default it also checks each object as the API server
//! would (on a defaulted copy), so that mistakes show before anything is sent. Every problem
//! names its document (1-based) and, when known, the object's kind and name; all documents
//! are checked, so one run shows every error.
//!
//! YAML is read with [`serde_yaml_ng`]: `serde_yaml`, the crate the Rust ecosystem used, is
//! archived and deprecated; `serde_yaml_ng` is its maintained fork with the same API and
//! behaviour (YAML 1.2 scalars, anchors and aliases with an expansion limit, a nesting limit,
//! multi-document streams, errors with line and column), so nothing about how manifests read
//! changes, and it parses hostile input without panicking.
//!
//! ```
//! use orchestra_api::{Scheme, manifest::{self, ManifestOptions}, resources::Deployment};
//!
//! let yaml = r#"
//! apiVersion: apps/v1
//! kind: Deployment
//! metadata:
//!   name: web
//! spec:
//!   selector:
//!     matchLabels: {app: web}
//!   template:
//!     metadata:
//!       labels: {app: web}
//!     spec:
//!       containers:
//!       - name: web
//!         image: nginx:1.27
//!         imagePullPolicyy: Always   # a typo
//! "#;
//! let scheme = Scheme::new();
//! let parsed = manifest::parse(&scheme, yaml, &ManifestOptions::default())?;
//! let web: &Deployment = parsed.objects[0].object.downcast_ref().unwrap();
//! assert_eq!(web.spec.template.spec.containers[0].image, "nginx:1.27");
//! assert_eq!(
//!     parsed.warnings().map(|w| w.to_string()).collect::<Vec<_>>(),
//!     ["document 1 (Deployment \"web\"): spec.template.spec.containers[0].imagePullPolicyy: unknown field"]
//! );
//! let strict = ManifestOptions { strict: true, ..ManifestOptions::default() };
//! assert!(manifest::parse(&scheme, yaml, &strict).is_err());
//! # Ok::<(), orchestra_api::manifest::ManifestError>(())
//! ```

use std::fmt;

use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::codec::DecodeError;
use crate::resource::Resource;
use crate::scheme::{DynResource, Scheme};
use crate::validation::ErrorList;

/// How [`parse`] treats what it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ManifestOptions {
    /// Unknown fields are errors instead of warnings (`--strict`).
    pub strict: bool,
    /// Check each object as the API server would, on a defaulted copy (default: on).
    pub validate: bool,
    /// Return the objects with their defaults filled (default: off, as written).
    pub apply_defaults: bool,
}

impl Default for ManifestOptions {
    fn default() -> Self {
        ManifestOptions {
            strict: false,
            validate: true,
            apply_defaults: false,
        }
    }
}

/// The objects of a manifest, in file order.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    /// The objects.
    pub objects: Vec<ManifestObject>,
}

impl Manifest {
    /// Every unknown-field warning, in file order.
    pub fn warnings(&self) -> impl Iterator<Item = Warning> + '_ {
        self.objects.iter().flat_map(|o| {
            o.unknown_fields.iter().map(|path| Warning {
                location: o.location.clone(),
                path: path.clone(),
            })
        })
    }

    /// The objects of kind `R`.
    pub fn objects_of<R: Resource>(&self) -> impl Iterator<Item = &R> {
        self.objects.iter().filter_map(|o| o.object.downcast_ref())
    }

    /// The number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether there is no object.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

/// One object of a manifest.
#[derive(Debug, Clone)]
pub struct ManifestObject {
    /// Where it is in the file.
    pub location: Location,
    /// The object.
    pub object: Box<dyn DynResource>,
    /// The paths of fields its kind does not know.
    pub unknown_fields: Vec<String>,
}

/// Where an object is in a manifest, for messages: `document 2 (Service "web")`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// The document's number, from 1.
    pub document: usize,
    /// The item's number in a `kind: List` document, from 0.
    pub item: Option<usize>,
    /// The object's kind, if it has one.
    pub kind: Option<String>,
    /// The object's name, if it has one.
    pub name: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "document {}", self.document)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        match (&self.kind, &self.name) {
            (Some(kind), Some(name)) => write!(f, " ({kind} {name:?})"),
            (Some(kind), None) => write!(f, " ({kind})"),
            (None, Some(name)) => write!(f, " ({name:?})"),
            (None, None) => Ok(()),
        }
    }
}

/// A field a kind does not know, found in a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// Where.
    pub location: Location,
    /// The field's path.
    pub path: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: unknown field", self.location, self.path)
    }
}

/// What went wrong with one document.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DocumentErrorKind {
    /// The input is not UTF-8.
    #[error("the input is not UTF-8 (invalid byte at offset {valid_up_to})")]
    InvalidUtf8 {
        /// Where the first invalid byte is.
        valid_up_to: usize,
    },
    /// Malformed YAML or JSON.
    #[error("{}", syntax_message(message, *line, *column))]
    Syntax {
        /// The parser's message.
        message: String,
        /// The line, from 1, if known.
        line: Option<usize>,
        /// The column, from 1, if known.
        column: Option<usize>,
    },
    /// The document is not an object of a registered kind, or a field is of the wrong type
    /// (or unknown, in strict mode).
    #[error(transparent)]
    Decode(DecodeError),
    /// The object is invalid.
    #[error("{0}")]
    Invalid(ErrorList),
}

fn syntax_message(message: &str, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) if !message.contains("line ") => {
            format!("malformed manifest at line {l} column {c}: {message}")
        }
        _ => format!("malformed manifest: {message}"),
    }
}

/// One document's error, with where it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{location}: {kind}")]
pub struct DocumentError {
    /// Where.
    pub location: Location,
    /// What went wrong.
    pub kind: DocumentErrorKind,
}

/// Every error of a manifest; nothing of it should be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ManifestError {
    /// The errors, in file order.
    pub errors: Vec<DocumentError>,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

/// One document of a manifest, as JSON, before decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct RawDocument {
    /// The document's number, from 1.
    pub document: usize,
    /// The item's number in a `kind: List` document, from 0.
    pub item: Option<usize>,
    /// The document.
    pub value: Value,
}

/// Parses a manifest of UTF-8 bytes; see [`parse`].
pub fn parse_bytes(
    scheme: &Scheme,
    input: &[u8],
    options: &ManifestOptions,
) -> Result<Manifest, ManifestError> {
    match std::str::from_utf8(input) {
        Ok(text) => parse(scheme, text, options),
        Err(e) => Err(ManifestError {
            errors: vec![DocumentError {
                location: Location {
                    document: 1,
                    ..Location::default()
                },
                kind: DocumentErrorKind::InvalidUtf8 {
                    valid_up_to: e.valid_up_to(),
                },
            }],
        }),
    }
}

/// Parses a YAML or JSON manifest into objects of the scheme's kinds. Fails with every
/// document's error if any document is malformed, of an unknown kind, of the wrong shape,
/// invalid (with [`ManifestOptions::validate`]) or has unknown fields (with
/// [`ManifestOptions::strict`]).
pub fn parse(
    scheme: &Scheme,
    input: &str,
    options: &ManifestOptions,
) -> Result<Manifest, ManifestError> {
    let (documents, mut errors) = split_documents(input);
    let mut manifest = Manifest::default();
    for raw in documents {
        let mut location = Location {
            document: raw.document,
            item: raw.item,
            kind: raw
                .value
                .get("kind")
                .and_then(Value::as_str)
                .map(str::to_owned),
            name: raw
                .value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        let decoded = match scheme.decode(raw.value) {
            Ok(decoded) => decoded,
            Err(e) => {
                errors.push(DocumentError {
                    location,
                    kind: DocumentErrorKind::Decode(e),
                });
                continue;
            }
        };
        location.kind = Some(decoded.object.type_info().kind.to_owned());
        if options.strict && !decoded.unknown_fields.is_empty() {
            errors.push(DocumentError {
                location,
                kind: DocumentErrorKind::Decode(DecodeError::UnknownFields {
                    paths: decoded.unknown_fields,
                }),
            });
            continue;
        }
        let mut object = decoded.object;
        if options.validate || options.apply_defaults {
            let mut defaulted = object.clone();
            defaulted.apply_defaults();
            if options.validate {
                let invalid = defaulted.validate();
                if !invalid.is_empty() {
                    errors.push(DocumentError {
                        location,
                        kind: DocumentErrorKind::Invalid(invalid),
                    });
                    continue;
                }
            }
            if options.apply_defaults {
                object = defaulted;
            }
        }
        manifest.objects.push(ManifestObject {
            location,
            object,
            unknown_fields: decoded.unknown_fields,
        });
    }
    if errors.is_empty() {
        Ok(manifest)
    } else {
        Err(ManifestError { errors })
    }
}

/// Splits a manifest into JSON documents (the items of `kind: List` documents each count as
/// one), skipping empty documents, and returns them with the syntax errors met. A syntax
/// error ends the input: nothing after it can be read reliably.
pub fn split_documents(input: &str) -> (Vec<RawDocument>, Vec<DocumentError>) {
    let input = input.strip_prefix('\u{feff}').unwrap_or(input);
    let looks_like_json = input.trim_start().starts_with(['{', '[']);
    let mut documents = Vec::new();
    let mut errors = Vec::new();
    let mut push = |document: usize, value: Value| {
        if value.is_null() {
            return;
        }
        if value.get("kind").and_then(Value::as_str) == Some("List")
            && let Some(Value::Array(items)) = value.get("items")
        {
            for (i, item) in items.iter().enumerate() {
                documents.push(RawDocument {
                    document,
                    item: Some(i),
                    value: item.clone(),
                });
            }
            return;
        }
        documents.push(RawDocument {
            document,
            item: None,
            value,
        });
    };
    let syntax_error = |document: usize, message: String, line, column| DocumentError {
        location: Location {
            document,
            ..Location::default()
        },
        kind: DocumentErrorKind::Syntax {
            message,
            line,
            column,
        },
    };

    if looks_like_json {
        let stream = serde_json::Deserializer::from_str(input).into_iter::<Value>();
        for (i, result) in stream.enumerate() {
            match result {
                Ok(value) => push(i + 1, value),
                Err(e) => {
                    errors.push(syntax_error(
                        i + 1,
                        e.to_string(),
                        Some(e.line()),
                        Some(e.column()),
                    ));
                    break;
                }
            }
        }
        return (documents, errors);
    }

    for (i, document) in serde_yaml_ng::Deserializer::from_str(input).enumerate() {
        let number = i + 1;
        let parsed = serde_yaml_ng::Value::deserialize(document).and_then(|mut v| {
            v.apply_merge()?;
            Ok(v)
        });
        match parsed {
            Ok(yaml) => match yaml_to_json(yaml, "") {
                Ok(value) => push(number, value),
                Err(message) => errors.push(syntax_error(number, message, None, None)),
            },
            Err(e) => {
                let location = e.location();
                errors.push(syntax_error(
                    number,
                    e.to_string(),
                    location.as_ref().map(|l| l.line()),
                    location.as_ref().map(|l| l.column()),
                ));
                break;
            }
        }
    }
    (documents, errors)
}

/// Converts a YAML value to JSON: scalar keys become strings (as Kubernetes' YAML reader
/// does); tags, non-scalar keys and non-finite floats are errors naming the path.
fn yaml_to_json(value: serde_yaml_ng::Value, path: &str) -> Result<Value, String> {
    use serde_yaml_ng::Value as Y;
    let at = |path: &str| {
        if path.is_empty() {
            "the document".to_owned()
        } else {
            path.to_owned()
        }
    };
    Ok(match value {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                Value::Number(
                    Number::from_f64(f).ok_or_else(|| {
                        format!("{}: {f} is not a number JSON can hold", at(path))
                    })?,
                )
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| yaml_to_json(v, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(mapping) => {
            let mut map = Map::new();
            for (k, v) in mapping {
                let key = match k {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    Y::Null => "null".to_owned(),
                    _ => {
                        return Err(format!(
                            "{}: a mapping key must be a string, not a list or a mapping",
                            at(path)
                        ));
                    }
                };
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let v = yaml_to_json(v, &child)?;
                map.insert(key, v);
            }
            Value::Object(map)
        }
        Y::Tagged(tagged) => {
            return Err(format!(
                "{}: YAML tag {} is not supported; remove it",
                at(path),
                tagged.tag
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::{Pod, Service};

    fn parse_default(input: &str) -> Result<Manifest, ManifestError> {
        parse(&Scheme::new(), input, &ManifestOptions::default())
    }

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\nspec:\n  containers:\n  - name: a\n    image: busybox\n";

    #[test]
    fn yaml_streams_skip_empty_documents_and_count_them() {
        let input = format!("---\n# only a comment\n---\n{POD}---\n---\n{POD}...\n");
        let manifest = parse_default(&input).unwrap();
        let docs: Vec<usize> = manifest
            .objects
            .iter()
            .map(|o| o.location.document)
            .collect();
        assert_eq!(docs, vec![2, 4]);
        assert_eq!(manifest.objects_of::<Pod>().count(), 2);
    }

    #[test]
    fn json_streams_and_lists() {
        let input = r#"{"apiVersion": "v1", "kind": "List", "items": [
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}, "spec": {"containers": [{"name": "a", "image": "x"}]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b"}, "spec": {"ports": [{"port": 80}]}}
        ]}
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "c"}}"#;
        let manifest = parse_default(input).unwrap();
        let locations: Vec<String> = manifest
            .objects
            .iter()
            .map(|o| o.location.to_string())
            .collect();
        assert_eq!(
            locations,
            vec![
                "document 1, item 0 (Pod \"a\")",
                "document 1, item 1 (Service \"b\")",
                "document 2 (Namespace \"c\")"
            ]
        );
        assert_eq!(manifest.objects_of::<Service>().count(), 1);
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse_default("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [a\n").unwrap_err();
        assert_eq!(err.errors.len(), 1);
        let text = err.to_string();
        assert!(text.starts_with("document 1: malformed manifest"), "{text}");
        assert!(text.contains("line"), "{text}");
        let err = parse_default("{\"apiVersion\": \"v1\",, }").unwrap_err();
        assert!(err.to_string().contains("line 1 column 21"), "{err}");
        let err = parse_default("a: 1\na: 2\n").unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
    }

    #[test]
    fn anchors_merge_keys_and_tags() {
        let input = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels: &l {app: web}\n  annotations:\n    <<: *l\nspec:\n  containers:\n  - {name: a, image: x}\n";
        let manifest = parse_default(input).unwrap();
        let pod: &Pod = manifest.objects[0].object.downcast_ref().unwrap();
        assert_eq!(pod.metadata.annotations["app"], "web");
        let err =
            parse_default("apiVersion: v1\nkind: Pod\nmetadata: !custom {name: a}\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("metadata: YAML tag !custom is not supported"),
            "{err}"
        );
    }

    #[test]
    fn invalid_utf8() {
        let err =
            parse_bytes(&Scheme::new(), b"kind: \xff", &ManifestOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 1: the input is not UTF-8 (invalid byte at offset 6)"
        );
    }
}
