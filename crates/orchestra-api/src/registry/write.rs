//! create, update, update_status, patch and bind: every write but delete.
//!
//! All updates go through one guarded read-modify-write: read the object, check the caller's
//! resourceVersion, build the new object from the stored one, validate, and write in a
//! transaction that compares the key's mod_revision with the one read, so a concurrent writer
//! makes this one fail with [`ApiError::Conflict`] instead of being overwritten.

use bytes::Bytes;
use orchestra_store::{Compare, CompareOp, Op, StoreExt};
use rand::Rng;
use serde_json::Value;

use super::admit::Written;
use super::{
    ApiError, Registry, decode_kv, display_name, encode, merge_patch, object_key,
    parse_resource_version,
};
use crate::admission::Operation;
use crate::codec;
use crate::meta::Time;
use crate::resource::Resource;
use crate::resources::{Namespace, NamespaceSpec, Pod};
use crate::validation::{ErrorList, names};
use crate::watch_cache::stash::Stashed;

/// How many times a write that carried no resourceVersion of its own is retried on a conflict.
const RETRIES: usize = 5;

/// How many times a create is admitted again after another object took what admission had
/// allocated for it (a cluster IP picked by two concurrent creates).
const CLAIM_RETRIES: usize = 16;

/// Which validation a guarded update runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    /// `validate_update` against the stored object (main resource, status).
    Update,
    /// `validate` of the new object alone (subresources that may change what updates may not).
    Object,
}

impl Registry {
    /// Creates an object: defaults it, names it from `generateName` if it has no name, sets
    /// uid, creationTimestamp and generation 1, validates it, and stores it if no object has
    /// its name ([`ApiError::AlreadyExists`] otherwise). Returns the stored object with its
    /// resourceVersion. The status is stored as given.
    pub async fn create<R: Resource>(&self, mut object: R) -> Result<R, ApiError> {
        if !object.meta().resource_version.is_empty() {
            return Err(ApiError::BadRequest(format!(
                "resourceVersion must not be set on create (it is {:?}); clear it, or update the existing object",
                object.meta().resource_version
            )));
        }
        object.apply_defaults();
        let generated = object.meta().name.is_empty() && !object.meta().generate_name.is_empty();
        {
            let meta = object.meta_mut();
            meta.uid = new_uid();
            meta.creation_timestamp = Some(Time::now());
            meta.generation = Some(1);
            meta.deletion_timestamp = None;
            meta.deletion_grace_period_seconds = None;
        }
        object.prepare_for_create();
        let mut attempt = 0;
        loop {
            attempt += 1;
            if generated {
                let name = generate_name(&object.meta().generate_name);
                object.meta_mut().name = name;
            }
            invalid_if_any(&object, object.validate())?;
            // Admission may allocate (a cluster IP): a retry after a lost race starts over
            // from the object as given.
            let original = (!self.admission.is_empty()).then(|| object.clone());
            let (mut admitted, claims) = self.admit(Operation::Create, "", object, None).await?;
            let meta = admitted.meta();
            let key = object_key::<R>(&meta.namespace, &meta.name);
            let bytes = encode(&admitted)?;
            let guard = Compare::create_revision(key.clone(), CompareOp::Equal, 0);
            // Left for the kind's watch cache, which then need not decode it; withdrawn
            // when dropped unless written.
            let stashed = self.stash(&key, &bytes, &admitted);
            let (put, lease) = self.put_op::<R>(key.clone(), bytes).await?;
            let written = self.write_guarded(key, guard, put, &claims, &[]).await?;
            match written {
                Written::At(revision) => {
                    if let Some(stashed) = stashed {
                        stashed.written();
                    }
                    admitted.meta_mut().resource_version = revision.to_string();
                    return Ok(admitted);
                }
                Written::Guard if generated && attempt < RETRIES => {}
                Written::ClaimTaken if attempt < CLAIM_RETRIES => {}
                Written::LeaseGone if attempt < RETRIES => self.lease_gone::<R>(lease).await,
                Written::Guard => {
                    let meta = admitted.meta();
                    return Err(ApiError::AlreadyExists {
                        kind: R::KIND,
                        name: display_name::<R>(&meta.namespace, &meta.name),
                    });
                }
                Written::ClaimTaken => {
                    return Err(ApiError::Conflict(format!(
                        "{} {:?}: what admission allocated for it was taken by concurrent writes {attempt} times; retry",
                        R::KIND,
                        admitted.meta().name
                    )));
                }
                Written::LeaseGone => return Err(lease_gone::<R>(admitted.meta())),
            }
            object = original.unwrap_or(admitted);
        }
    }

    /// Replaces an object's spec and metadata. A non-empty `metadata.resourceVersion` must be
    /// the stored one ([`ApiError::Conflict`] otherwise); the status is kept as stored (use
    /// [`Registry::update_status`]); uid, creationTimestamp and deletionTimestamp stay; the
    /// generation grows by one when anything but metadata and status changed. An update that
    /// empties the finalizers of an object marked for deletion removes it.
    pub async fn update<R: Resource>(&self, mut object: R) -> Result<R, ApiError> {
        object.apply_defaults();
        let precondition = precondition(&object)?;
        let (namespace, name) = (object.meta().namespace.clone(), object.meta().name.clone());
        self.guarded_update(
            &namespace,
            &name,
            precondition,
            Check::Update,
            Some(""),
            move |old: R| {
                let mut new = with_section(&object, &old, "status")?;
                new.prepare_for_update(&old);
                let spec_changed = body(&new)? != body(&old)?;
                let (meta, old_meta) = (new.meta_mut(), old.meta());
                if meta.uid.is_empty() {
                    meta.uid.clone_from(&old_meta.uid);
                }
                if meta.creation_timestamp.is_none() {
                    meta.creation_timestamp = old_meta.creation_timestamp;
                }
                meta.deletion_timestamp = old_meta.deletion_timestamp;
                meta.deletion_grace_period_seconds = old_meta.deletion_grace_period_seconds;
                let generation = old_meta.generation.unwrap_or(1);
                meta.generation = Some(generation + i64::from(spec_changed));
                Ok(new)
            },
        )
        .await
    }

    /// Replaces an object's status only: everything else stays as stored. The
    /// resourceVersion precondition is the same as [`Registry::update`]'s.
    pub async fn update_status<R: Resource>(&self, object: R) -> Result<R, ApiError> {
        let precondition = precondition(&object)?;
        let meta = object.meta();
        let namespace = if R::NAMESPACED && meta.namespace.is_empty() {
            "default".to_owned()
        } else {
            meta.namespace.clone()
        };
        let name = meta.name.clone();
        self.guarded_update(
            &namespace,
            &name,
            precondition,
            Check::Update,
            Some("status"),
            move |old: R| with_section(&old, &object, "status"),
        )
        .await
    }

    /// Applies a JSON merge patch (RFC 7386) to the stored object and updates it as
    /// [`Registry::update`] does (so a patch of `status` is ignored). A
    /// `metadata.resourceVersion` in the patch is a precondition; without one, a concurrent
    /// write makes the patch re-apply to the newer object.
    pub async fn patch<R: Resource>(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<R, ApiError> {
        if !patch.is_object() {
            return Err(ApiError::BadRequest(format!(
                "a merge patch must be a JSON object, not {}",
                codec::json_type(patch)
            )));
        }
        let pinned = patch
            .pointer("/metadata/resourceVersion")
            .is_some_and(|rv| !rv.is_null());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current: R = self.get(namespace, name).await?;
            let mut value = codec::to_value(&current).map_err(|err| {
                ApiError::BadRequest(format!("the {} does not encode: {err}", R::KIND))
            })?;
            merge_patch(&mut value, patch);
            let patched = codec::decode::<R>(value)
                .and_then(|decoded| decoded.strict())
                .map_err(|err| ApiError::BadRequest(format!("the patch does not apply: {err}")))?;
            let meta = patched.meta();
            if meta.name != current.meta().name || meta.namespace != current.meta().namespace {
                return Err(ApiError::BadRequest(
                    "a patch may not change metadata.name or metadata.namespace".to_owned(),
                ));
            }
            match self.update(patched).await {
                Err(err) if err.is_conflict() && !pinned && attempt < RETRIES => continue,
                result => return result,
            }
        }
    }

    /// The namespace `finalize` subresource: replaces `spec.finalizers` of a namespace and
    /// nothing else (a non-empty `resourceVersion` is a precondition). Emptying them removes
    /// a namespace marked for deletion.
    pub async fn finalize_namespace(
        &self,
        name: &str,
        finalizers: Vec<String>,
        resource_version: &str,
    ) -> Result<Namespace, ApiError> {
        let precondition = if resource_version.is_empty() {
            None
        } else {
            Some(parse_resource_version(resource_version)?)
        };
        self.guarded_update(
            "",
            name,
            precondition,
            Check::Update,
            Some("finalize"),
            move |mut namespace: Namespace| {
                namespace
                    .spec
                    .get_or_insert_with(NamespaceSpec::default)
                    .finalizers = finalizers;
                Ok(namespace)
            },
        )
        .await
    }

    /// The pod binding subresource: sets `spec.nodeName` of an unbound pod. A pod bound
    /// already, or being deleted, is a [`ApiError::Conflict`]; so is a concurrent binding.
    pub async fn bind(&self, namespace: &str, pod: &str, node: &str) -> Result<Pod, ApiError> {
        let problems = names::is_dns1123_subdomain(node);
        if !problems.is_empty() {
            return Err(ApiError::BadRequest(format!(
                "invalid node name {node:?} in the binding of pod {namespace}/{pod}: {}",
                problems.join(", ")
            )));
        }
        let (ns, name, node) = (namespace.to_owned(), pod.to_owned(), node.to_owned());
        let admit = Some("binding");
        self.guarded_update(
            namespace,
            pod,
            None,
            Check::Object,
            admit,
            move |mut pod: Pod| {
                if !pod.spec.node_name.is_empty() {
                    return Err(ApiError::Conflict(format!(
                        "pod {ns}/{name} is already assigned to node {:?}",
                        pod.spec.node_name
                    )));
                }
                if pod.metadata.deletion_timestamp.is_some() {
                    return Err(ApiError::Conflict(format!(
                        "pod {ns}/{name} is being deleted and cannot be bound"
                    )));
                }
                pod.spec.node_name = node;
                Ok(pod)
            },
        )
        .await
    }

    /// Leaves `object`, about to be put at `key` as `bytes`, for the feeder of its kind's
    /// in-process watch cache (see [`crate::watch_cache::stash`]), when the kind has a
    /// running cache that takes them.
    fn stash<R: Resource>(&self, key: &str, bytes: &Bytes, object: &R) -> Option<Stashed> {
        let stash = self.watch_cache.stash::<R>()?;
        Some(stash.put(key, bytes, object))
    }

    /// Reads the object, checks `precondition`, builds the new object with `mutate`, validates
    /// it, admits it (as an update of `subresource`, unless `None`), and writes it if the key
    /// has not changed since the read. No change, no write.
    pub(crate) async fn guarded_update<R, F>(
        &self,
        namespace: &str,
        name: &str,
        precondition: Option<i64>,
        check: Check,
        subresource: Option<&'static str>,
        mutate: F,
    ) -> Result<R, ApiError>
    where
        R: Resource,
        F: FnOnce(R) -> Result<R, ApiError> + Send,
    {
        let key = object_key::<R>(namespace, name);
        let kv = self
            .store
            .get(key.clone())
            .await?
            .ok_or_else(|| ApiError::NotFound {
                kind: R::KIND,
                name: display_name::<R>(namespace, name),
            })?;
        let conflict = || {
            ApiError::Conflict(format!(
                "Operation cannot be fulfilled on {} {:?}: the object has been modified; please apply your changes to the latest version and try again",
                R::PLURAL,
                display_name::<R>(namespace, name)
            ))
        };
        if precondition.is_some_and(|rv| rv != kv.mod_revision) {
            return Err(conflict());
        }
        let old: R = decode_kv(&kv)?;
        let new = mutate(old.clone())?;
        let errors = match check {
            Check::Update => new.validate_update(&old),
            Check::Object => new.validate(),
        };
        invalid_if_any(&new, errors)?;
        let (mut new, claims) = match subresource {
            Some(subresource) => {
                self.admit(Operation::Update, subresource, new, Some(&old))
                    .await?
            }
            None => {
                let claims = self.claims_of(&new);
                (new, claims)
            }
        };
        let held = self.claims_of(&old);
        let guard = Compare::mod_revision(key.clone(), CompareOp::Equal, kv.mod_revision);
        let meta = new.meta();
        let removed = meta.deletion_timestamp.is_some()
            && meta.finalizers.is_empty()
            && !new.holds_deletion();
        let bytes = if removed {
            None
        } else {
            let bytes = encode(&new)?;
            if bytes == kv.value {
                return Ok(old);
            }
            Some(bytes)
        };
        let stashed = bytes
            .as_ref()
            .and_then(|bytes| self.stash(&key, bytes, &new));
        let mut attempt = 0;
        let written = loop {
            attempt += 1;
            let (op, hold, lease) = match &bytes {
                None => (Op::delete(key.clone()), &[][..], 0),
                Some(bytes) => {
                    let (put, lease) = self.put_op::<R>(key.clone(), bytes.clone()).await?;
                    (put, &claims[..], lease)
                }
            };
            match self
                .write_guarded(key.clone(), guard.clone(), op, hold, &held)
                .await?
            {
                Written::LeaseGone if attempt < RETRIES => self.lease_gone::<R>(lease).await,
                written => break written,
            }
        };
        match written {
            Written::At(revision) => {
                if let Some(stashed) = stashed {
                    stashed.written();
                }
                new.meta_mut().resource_version = revision.to_string();
                Ok(new)
            }
            Written::Guard => Err(conflict()),
            Written::LeaseGone => Err(lease_gone::<R>(new.meta())),
            Written::ClaimTaken => Err(ApiError::Conflict(format!(
                "Operation cannot be fulfilled on {} {:?}: a value admission allocated for it was taken concurrently; try again",
                R::PLURAL,
                display_name::<R>(namespace, name)
            ))),
        }
    }
}

/// The caller's resourceVersion as a precondition (none when empty).
fn precondition<R: Resource>(object: &R) -> Result<Option<i64>, ApiError> {
    let rv = &object.meta().resource_version;
    if rv.is_empty() {
        Ok(None)
    } else {
        parse_resource_version(rv).map(Some)
    }
}

/// The error of a write whose expiry lease the store kept losing.
fn lease_gone<R: Resource>(meta: &crate::meta::ObjectMeta) -> ApiError {
    ApiError::Conflict(format!(
        "{} {:?}: the store lease it expires with was revoked {RETRIES} times while it was written; retry",
        R::KIND,
        meta.name
    ))
}

/// `Invalid` if `errors` is not empty.
fn invalid_if_any<R: Resource>(object: &R, errors: ErrorList) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid {
            kind: R::KIND,
            name: object.meta().name.clone(),
            errors,
        })
    }
}

/// `base` with its top-level `section` (e.g. `status`) taken from `from`.
fn with_section<R: Resource>(base: &R, from: &R, section: &str) -> Result<R, ApiError> {
    // Both objects are typed already, so the merged value decodes with plain serde; only if
    // that fails is it built again for the full decoder, whose error names the field. (The
    // full decoder's path and unknown-field tracking cost as much as the rest of a status
    // update: every pod's status and every node heartbeat come through here.)
    if let Ok(object) = serde_json::from_value(merged_value(base, from, section)?) {
        return Ok(object);
    }
    codec::decode::<R>(merged_value(base, from, section)?)
        .map(|decoded| decoded.object)
        .map_err(|err| ApiError::BadRequest(format!("the {} does not decode: {err}", R::KIND)))
}

/// `base` as a JSON value, with its top-level `section` taken from `from`.
fn merged_value<R: Resource>(base: &R, from: &R, section: &str) -> Result<Value, ApiError> {
    let encode_err = |err: serde_json::Error| {
        ApiError::BadRequest(format!("the {} does not encode: {err}", R::KIND))
    };
    let mut value = codec::to_value(base).map_err(encode_err)?;
    let mut source = codec::to_value(from).map_err(encode_err)?;
    if let Value::Object(map) = &mut value {
        match source.get_mut(section).map(Value::take) {
            Some(part) => {
                map.insert(section.to_owned(), part);
            }
            None => {
                map.remove(section);
            }
        }
    }
    Ok(value)
}

/// Everything but type, metadata and status: what bumps the generation when it changes.
fn body<R: Resource>(object: &R) -> Result<Value, ApiError> {
    let mut value = codec::to_value(object)
        .map_err(|err| ApiError::BadRequest(format!("the {} does not encode: {err}", R::KIND)))?;
    if let Value::Object(map) = &mut value {
        for field in ["apiVersion", "kind", "metadata", "status"] {
            map.remove(field);
        }
    }
    Ok(value)
}

/// A random (version 4) UUID, as Kubernetes' uids.
pub(crate) fn new_uid() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    // Written digit by digit into one string: every create makes a uid, and formatting
    // each byte on its own cost 18 allocations per object.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut uid = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            uid.push('-');
        }
        uid.push(char::from(HEX[usize::from(byte >> 4)]));
        uid.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    uid
}

/// `prefix` (cut to 58 bytes) and five random characters, as Kubernetes' `generateName`.
pub(crate) fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut cut = prefix.len().min(58);
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut rng = rand::rng();
    let mut name = prefix[..cut].to_owned();
    for _ in 0..5 {
        name.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_version_4() {
        let uid = new_uid();
        assert_eq!(uid.len(), 36);
        assert_eq!(&uid[14..15], "4");
        assert!(matches!(&uid[19..20], "8" | "9" | "a" | "b"));
        for (i, c) in uid.char_indices() {
            if matches!(i, 8 | 13 | 18 | 23) {
                assert_eq!(c, '-', "{uid}");
            } else {
                assert!(c.is_ascii_hexdigit() && !c.is_ascii_uppercase(), "{uid}");
            }
        }
        assert_ne!(uid, new_uid());
    }

    #[test]
    fn generated_names_keep_the_prefix() {
        let name = generate_name("web-");
        assert!(name.starts_with("web-") && name.len() == 9, "{name}");
        assert_eq!(generate_name(&"a".repeat(70)).len(), 63);
    }
}
