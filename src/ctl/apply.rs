//! `orchestra ctl apply -f FILE|DIR|-`: create each object of the manifests, or update it when
//! it exists and differs (kubectl's "created", "configured", "unchanged").
//!
//! As `kubectl apply`, it records each manifest on its object (the
//! [`LAST_APPLIED_ANNOTATION`] annotation) and updates with a three-way merge
//! ([`three_way_merge`]) of that last-applied manifest, the new manifest and the live object:
//! fields removed from the manifest are removed from the object, fields set by others (the
//! server, controllers, `ctl scale`) are kept, and lists such as containers, env, ports and
//! volumes merge item by item. The update is made at the resourceVersion just read, so a
//! concurrent writer makes it fail with a conflict rather than be overwritten.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use orchestra::api::apply::{LAST_APPLIED_ANNOTATION, three_way_merge};
use orchestra::api::manifest::{self, ManifestOptions, RawDocument};
use orchestra::api::{Client, DynResource, Resource, Scheme, decode, to_value};
use serde_json::Value;

use super::kind::{Kind, with_kind};
use super::{CtlError, Scope};

/// What apply did to one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// It did not exist.
    Created,
    /// It existed and differed.
    Configured,
    /// It existed as the manifest says.
    Unchanged,
}

impl Applied {
    fn as_str(self) -> &'static str {
        match self {
            Applied::Created => "created",
            Applied::Configured => "configured",
            Applied::Unchanged => "unchanged",
        }
    }
}

/// Apply every object of `sources` (files, directories of `.yaml`/`.yml`/`.json` files, or `-`
/// for standard input), in order. Every file is read and checked before anything is written.
/// Prints `kind/name created|configured|unchanged` per object to `out` and unknown-field
/// warnings to `err`.
pub async fn apply<C: Client>(
    client: &C,
    sources: &[PathBuf],
    scope: &Scope,
    strict: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), CtlError> {
    let scheme = Scheme::new();
    let options = ManifestOptions {
        strict,
        ..ManifestOptions::default()
    };
    let mut parsed = Vec::new();
    for path in expand(sources)? {
        let text = read(&path)?;
        let manifest = manifest::parse_bytes(&scheme, &text, &options).map_err(|source| {
            CtlError::Manifest {
                path: path.clone(),
                source,
            }
        })?;
        for warning in manifest.warnings() {
            writeln!(err, "Warning: {}: {warning}", path.display())?;
        }
        // The documents as written: what the last-applied annotation records.
        let raw = std::str::from_utf8(&text)
            .map(|text| manifest::split_documents(text).0)
            .unwrap_or_default();
        parsed.push((path, manifest, raw));
    }
    if parsed.iter().all(|(_, m, _)| m.is_empty()) {
        return Err(CtlError::NothingToApply);
    }
    for (path, manifest, raw) in parsed {
        for item in &manifest.objects {
            let object = item.object.as_ref();
            let written = raw
                .iter()
                .find(|doc| {
                    doc.document == item.location.document && doc.item == item.location.item
                })
                .map(|doc: &RawDocument| &doc.value);
            let Some(kind) = kind_of(object) else {
                return Err(CtlError::UnsupportedKind {
                    path,
                    what: item.location.to_string(),
                });
            };
            let (name, applied) = with_kind!(kind, R => {
                let typed = object.downcast_ref::<R>().ok_or_else(|| CtlError::UnsupportedKind {
                    path: path.clone(),
                    what: item.location.to_string(),
                })?;
                let written = match written {
                    Some(value) => value.clone(),
                    None => encode(typed)?,
                };
                let applied = apply_one(client, typed, &written, scope.namespace()).await?;
                (typed.meta().name.clone(), applied)
            });
            writeln!(out, "{}/{name} {}", kind.singular(), applied.as_str())?;
        }
    }
    Ok(())
}

/// The built-in kind of an object read from a manifest.
fn kind_of(object: &dyn DynResource) -> Option<Kind> {
    Kind::ALL
        .into_iter()
        .find(|kind| with_kind!(*kind, R => object.is::<R>()))
}

/// Create `desired` (the manifest `written`, decoded), or update the stored object with the
/// three-way merge of its last-applied manifest, `written` and itself, if that changes it.
pub async fn apply_one<C: Client, R: Resource>(
    client: &C,
    desired: &R,
    written: &Value,
    default_namespace: &str,
) -> Result<Applied, CtlError> {
    let mut desired = desired.clone();
    if R::NAMESPACED && desired.meta().namespace.is_empty() {
        desired.meta_mut().namespace = default_namespace.to_string();
    }
    let namespace = desired.meta().namespace.clone();
    let name = desired.meta().name.clone();
    let what = || format!("{} {namespace}/{name}", R::KIND);
    let encode_error = |e: serde_json::Error| CtlError::Encode {
        what: what(),
        message: e.to_string(),
    };
    let last_applied = last_applied(written).map_err(encode_error)?;
    let existing = match client.get::<R>(&namespace, &name).await {
        Ok(existing) => existing,
        Err(e) if e.is_not_found() => {
            desired
                .meta_mut()
                .annotations
                .insert(LAST_APPLIED_ANNOTATION.to_owned(), last_applied);
            client
                .create(&desired)
                .await
                .map_err(|e| CtlError::api(format!("creating {}", what()), e))?;
            return Ok(Applied::Created);
        }
        Err(e) => return Err(CtlError::api(format!("reading {}", what()), e)),
    };
    let original: Option<Value> = existing
        .meta()
        .annotations
        .get(LAST_APPLIED_ANNOTATION)
        .and_then(|text| serde_json::from_str(text).ok());
    let mut modified = written.clone();
    set_annotation(&mut modified, &namespace, last_applied);
    let live = to_value(&existing).map_err(encode_error)?;
    let merged = three_way_merge(original.as_ref(), &modified, &live);
    // Unknown fields of the manifest were reported as warnings already.
    let mut merged: R = decode(merged)
        .map_err(|e| CtlError::Encode {
            what: what(),
            message: format!("the merged object does not decode: {e}"),
        })?
        .object;
    merged.meta_mut().resource_version = existing.meta().resource_version.clone();
    // As the server will store it (a Secret's stringData folded into data, ...).
    let mut normalized = merged.clone();
    normalized.apply_defaults();
    if to_value(&normalized).map_err(encode_error)? == live {
        return Ok(Applied::Unchanged);
    }
    client
        .update(&merged)
        .await
        .map_err(|e| CtlError::api(format!("updating {}", what()), e))?;
    Ok(Applied::Configured)
}

/// The last-applied annotation's value: the manifest as written, without that annotation.
fn last_applied(written: &Value) -> Result<String, serde_json::Error> {
    let mut value = written.clone();
    if let Some(annotations) = value
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.remove(LAST_APPLIED_ANNOTATION);
    }
    serde_json::to_string(&value)
}

/// `written` with the last-applied annotation set, and the namespace `-n` gave it.
fn set_annotation(written: &mut Value, namespace: &str, last_applied: String) {
    let Some(object) = written.as_object_mut() else {
        return;
    };
    let meta = object
        .entry("metadata")
        .or_insert_with(|| Value::Object(Default::default()));
    if let Some(meta) = meta.as_object_mut() {
        if !namespace.is_empty() {
            meta.entry("namespace")
                .or_insert_with(|| Value::String(namespace.to_owned()));
        }
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(annotations) = annotations.as_object_mut() {
            annotations.insert(
                LAST_APPLIED_ANNOTATION.to_owned(),
                Value::String(last_applied),
            );
        }
    }
}

/// An object as JSON, when its manifest text is not at hand.
fn encode<R: Resource>(object: &R) -> Result<Value, CtlError> {
    to_value(object).map_err(|e| CtlError::Encode {
        what: format!("{} {}", R::KIND, object.meta().name),
        message: e.to_string(),
    })
}

/// The files `-f` names: files as given, the manifest files of directories (sorted, not
/// recursive, as kubectl without `-R`), and `-` for standard input.
fn expand(sources: &[PathBuf]) -> Result<Vec<PathBuf>, CtlError> {
    let mut files = Vec::new();
    for source in sources {
        if source.as_os_str() == "-" || !source.is_dir() {
            files.push(source.clone());
            continue;
        }
        let entries = std::fs::read_dir(source).map_err(|e| CtlError::Read {
            path: source.clone(),
            source: e,
        })?;
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.is_file() && is_manifest(path))
            .collect();
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn read(path: &Path) -> Result<Vec<u8>, CtlError> {
    let error = |source| CtlError::Read {
        path: path.to_path_buf(),
        source,
    };
    if path.as_os_str() == "-" {
        let mut text = Vec::new();
        std::io::stdin().read_to_end(&mut text).map_err(error)?;
        return Ok(text);
    }
    std::fs::read(path).map_err(error)
}
