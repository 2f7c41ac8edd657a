//! `orchestra ctl apply -f FILE|DIR|-`: create each object of the manifests, or update it when
//! it exists and differs (kubectl's "created", "configured", "unchanged").
//!
//! The update replaces what the manifest says (labels, annotations, spec and the other
//! non-status fields) at the resourceVersion just read, so a concurrent writer makes it fail
//! with a conflict rather than be overwritten. Unlike kubectl there is no three-way merge:
//! fields set by others and absent from the manifest are reset.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use orchestra::api::manifest::{self, ManifestOptions};
use orchestra::api::{Client, DynResource, Resource, Scheme, to_value};
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
        parsed.push((path, manifest));
    }
    if parsed.iter().all(|(_, m)| m.is_empty()) {
        return Err(CtlError::NothingToApply);
    }
    for (path, manifest) in parsed {
        for item in &manifest.objects {
            let object = item.object.as_ref();
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
                let applied = apply_one(client, typed, scope.namespace()).await?;
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

/// Create `desired`, or update the stored object if it differs.
pub async fn apply_one<C: Client, R: Resource>(
    client: &C,
    desired: &R,
    default_namespace: &str,
) -> Result<Applied, CtlError> {
    let mut desired = desired.clone();
    if R::NAMESPACED && desired.meta().namespace.is_empty() {
        desired.meta_mut().namespace = default_namespace.to_string();
    }
    let namespace = desired.meta().namespace.clone();
    let name = desired.meta().name.clone();
    let what = || format!("{} {namespace}/{name}", R::KIND);
    let existing = match client.get::<R>(&namespace, &name).await {
        Ok(existing) => existing,
        Err(e) if e.is_not_found() => {
            client
                .create(&desired)
                .await
                .map_err(|e| CtlError::api(format!("creating {}", what()), e))?;
            return Ok(Applied::Created);
        }
        Err(e) => return Err(CtlError::api(format!("reading {}", what()), e)),
    };
    if covers_manifest(
        &applied_state(&existing, false)?,
        &applied_state(&desired, true)?,
    ) {
        return Ok(Applied::Unchanged);
    }
    let meta = desired.meta_mut();
    meta.resource_version = existing.meta().resource_version.clone();
    if meta.finalizers.is_empty() {
        meta.finalizers = existing.meta().finalizers.clone();
    }
    if meta.owner_references.is_empty() {
        meta.owner_references = existing.meta().owner_references.clone();
    }
    client
        .update(&desired)
        .await
        .map_err(|e| CtlError::api(format!("updating {}", what()), e))?;
    Ok(Applied::Configured)
}

/// What a manifest controls of an object: its labels, annotations and every field but
/// metadata and status, as JSON (after defaulting, for the manifest's side, so that a
/// manifest that leaves a defaulted field out still reads as unchanged).
fn applied_state<R: Resource>(object: &R, default: bool) -> Result<Value, CtlError> {
    let mut object = object.clone();
    if default {
        object.apply_defaults();
    }
    let mut value = to_value(&object).map_err(|e| CtlError::Encode {
        what: format!("{} {}", R::KIND, object.meta().name),
        message: e.to_string(),
    })?;
    if let Value::Object(map) = &mut value {
        map.remove("status");
        let meta = map.remove("metadata");
        let keep = |field: &str| meta.as_ref().and_then(|m| m.get(field)).cloned();
        map.insert("labels".into(), keep("labels").unwrap_or(Value::Null));
        map.insert(
            "annotations".into(),
            keep("annotations").unwrap_or(Value::Null),
        );
    }
    Ok(value)
}

/// Whether the stored object already holds everything the manifest says: labels exactly,
/// every other field the manifest sets with the same value. Fields the manifest leaves out may
/// have been filled by the server (an allocated `clusterIP`, a namespace's finalizers, a pod's
/// default tolerations) and do not make it differ.
fn covers_manifest(existing: &Value, desired: &Value) -> bool {
    match (existing, desired) {
        (Value::Object(stored), Value::Object(wanted)) => wanted.iter().all(|(key, value)| {
            let current = stored.get(key).unwrap_or(&Value::Null);
            if key == "labels" {
                current == value
            } else {
                covers(current, value)
            }
        }),
        _ => existing == desired,
    }
}

/// Whether `stored` has every field of `wanted` with its value (arrays element by element).
fn covers(stored: &Value, wanted: &Value) -> bool {
    match (stored, wanted) {
        (_, Value::Null) => true,
        (Value::Object(stored), Value::Object(wanted)) => wanted
            .iter()
            .all(|(key, value)| covers(stored.get(key).unwrap_or(&Value::Null), value)),
        (Value::Array(stored), Value::Array(wanted)) => {
            stored.len() == wanted.len() && stored.iter().zip(wanted).all(|(s, w)| covers(s, w))
        }
        _ => stored == wanted,
    }
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
