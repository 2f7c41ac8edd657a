//! The revision history of the controllers that keep one as ControllerRevisions (DaemonSet and
//! StatefulSet), as pure decisions.
//!
//! Kubernetes' rules: every template such a controller has run is kept as a
//! ControllerRevision named `NAME-HASH` (`HASH` being the template's hash, which a daemon pod
//! carries in `controller-revision-hash`; a stateful pod carries the revision's name there),
//! owned by the controller, holding the template in `data` as
//! `{"spec": {"template": ..., "$patch": "replace"}}`. The current template's revision has the
//! highest number; when a template comes back (a rollback, or an edit back to an older
//! template) its old revision is renumbered to the top rather than copied. Revisions that no
//! pod runs any more (and that the owner does not pin, as a stateful set pins its
//! `currentRevision`) are deleted, oldest first, beyond `revisionHistoryLimit` (10 by default).
//! `orchestra ctl rollout undo KIND/NAME` reads them back through [`rollback`].

use std::collections::BTreeSet;
use std::sync::Arc;

use orchestra_api::resources::{ControllerRevision, DaemonSet, Pod, PodTemplateSpec, StatefulSet};
use orchestra_api::{ObjectMeta, OwnerReference, Resource};
use serde_json::{Value, json};

use crate::controllers::deployment::plan::template_hash;

/// The label with the revision a pod (or a revision) belongs to.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// How many old revisions are kept when `revisionHistoryLimit` is unset.
const DEFAULT_HISTORY_LIMIT: i32 = 10;

/// A kind whose pod templates are kept as ControllerRevisions.
pub trait Revisioned: Resource {
    /// The pod template whose history is kept.
    fn template(&self) -> &PodTemplateSpec;
    /// `spec.revisionHistoryLimit`.
    fn revision_history_limit(&self) -> Option<i32>;
    /// `status.collisionCount`, which changes the template's hash.
    fn collision_count(&self) -> Option<i32>;
    /// Revisions (by name) kept whatever the limit, besides the current one and those that
    /// pods run.
    fn pinned_revisions(&self) -> Vec<&str> {
        Vec::new()
    }
}

impl Revisioned for DaemonSet {
    fn template(&self) -> &PodTemplateSpec {
        &self.spec.template
    }

    fn revision_history_limit(&self) -> Option<i32> {
        self.spec.revision_history_limit
    }

    fn collision_count(&self) -> Option<i32> {
        self.status.as_ref().and_then(|s| s.collision_count)
    }
}

impl Revisioned for StatefulSet {
    fn template(&self) -> &PodTemplateSpec {
        &self.spec.template
    }

    fn revision_history_limit(&self) -> Option<i32> {
        self.spec.revision_history_limit
    }

    fn collision_count(&self) -> Option<i32> {
        self.status.as_ref().and_then(|s| s.collision_count)
    }

    /// The revision pods below the partition are (re)created from.
    fn pinned_revisions(&self) -> Vec<&str> {
        self.status
            .as_ref()
            .map(|s| s.current_revision.as_str())
            .filter(|name| !name.is_empty())
            .into_iter()
            .collect()
    }
}

/// The history writes one sync makes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistoryPlan {
    /// The revision to create for the current template, when it has none.
    pub create: Option<ControllerRevision>,
    /// The current template's existing revision, renumbered to the top: (name, new number).
    pub renumber: Option<(String, i64)>,
    /// Old revisions to delete: no pod runs them and they are beyond the history limit.
    pub delete: Vec<String>,
}

/// The controller reference an owner puts on its pods and revisions.
pub fn controller_ref<K: Resource>(owner: &K) -> OwnerReference {
    OwnerReference {
        api_version: K::API_VERSION.into(),
        kind: K::KIND.into(),
        name: owner.meta().name.clone(),
        uid: owner.meta().uid.clone(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The hash of the owner's current template.
pub fn current_hash<K: Revisioned>(owner: &K) -> String {
    template_hash(owner.template(), owner.collision_count())
}

/// The name of the revision of `owner` with template hash `hash`.
pub fn revision_name<K: Resource>(owner: &K, hash: &str) -> String {
    // Names are at most 253 characters; keep the hash, which tells revisions apart.
    let room = 253usize.saturating_sub(hash.len() + 1);
    let prefix: String = owner.meta().name.chars().take(room).collect();
    format!("{prefix}-{hash}")
}

/// What a revision of a template holds.
pub fn revision_data(template: &PodTemplateSpec) -> Value {
    let mut template = serde_json::to_value(template).unwrap_or(Value::Null);
    if let Value::Object(fields) = &mut template {
        fields.insert("$patch".into(), Value::String("replace".into()));
    }
    json!({ "spec": { "template": template } })
}

/// The template a revision holds, as [`revision_data`] wrote it; `None` when it holds none.
pub fn revision_template(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision.data.get("spec")?.get("template")?.clone();
    if let Value::Object(fields) = &mut template {
        fields.remove("$patch");
    }
    serde_json::from_value(template).ok()
}

/// The revision of `owner`'s current template, to create.
fn new_revision<K: Revisioned>(owner: &K, hash: &str, number: i64) -> ControllerRevision {
    let mut metadata =
        ObjectMeta::namespaced(owner.meta().namespace.clone(), revision_name(owner, hash));
    metadata
        .labels
        .clone_from(&owner.template().metadata.labels);
    metadata
        .labels
        .insert(REVISION_HASH_LABEL.into(), hash.to_owned());
    metadata.owner_references = vec![controller_ref(owner)];
    ControllerRevision {
        metadata,
        data: revision_data(owner.template()),
        revision: number,
    }
}

/// The revision among `revisions` that holds `owner`'s current template: the same hash and
/// the same template (a hash label alone could be a collision or an edit).
pub fn current_revision<'a, K: Revisioned>(
    owner: &K,
    revisions: &'a [Arc<ControllerRevision>],
) -> Option<&'a Arc<ControllerRevision>> {
    let hash = current_hash(owner);
    let data = revision_data(owner.template());
    revisions
        .iter()
        .find(|r| r.metadata.labels.get(REVISION_HASH_LABEL) == Some(&hash) && r.data == data)
}

/// Decides the history writes for `owner`, given the revisions it owns and the pods it
/// controls.
pub fn plan_history<K: Revisioned>(
    owner: &K,
    revisions: &[Arc<ControllerRevision>],
    pods: &[Arc<Pod>],
) -> HistoryPlan {
    let hash = current_hash(owner);
    let top = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    let current = current_revision(owner, revisions);
    let mut plan = HistoryPlan::default();
    match current {
        Some(current) if current.revision < top => {
            plan.renumber = Some((current.metadata.name.clone(), top + 1));
        }
        Some(_) => {}
        None => plan.create = Some(new_revision(owner, &hash, top + 1)),
    }
    // What pods run: a daemon pod's label is the hash, a stateful pod's the revision's name.
    let mut kept: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.labels.get(REVISION_HASH_LABEL))
        .map(String::as_str)
        .collect();
    kept.extend(owner.pinned_revisions());
    let mut unused: Vec<&ControllerRevision> = revisions
        .iter()
        .map(Arc::as_ref)
        .filter(|r| current.is_none_or(|c| c.metadata.uid != r.metadata.uid))
        .filter(|r| {
            !kept.contains(r.metadata.name.as_str())
                && r.metadata
                    .labels
                    .get(REVISION_HASH_LABEL)
                    .is_none_or(|h| !kept.contains(h.as_str()))
        })
        .collect();
    let limit = usize::try_from(
        owner
            .revision_history_limit()
            .unwrap_or(DEFAULT_HISTORY_LIMIT),
    )
    .unwrap_or(0);
    if unused.len() > limit {
        unused.sort_by_key(|r| r.revision);
        let excess = unused.len() - limit;
        plan.delete = unused[..excess]
            .iter()
            .map(|r| r.metadata.name.clone())
            .collect();
    }
    plan
}

/// Why a rollout cannot be undone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevisionRollbackError {
    /// No revision of the owner has that number.
    #[error("unable to find specified revision {revision} in history")]
    NoSuchRevision {
        /// The revision asked for.
        revision: i64,
    },
    /// There is no revision before the current one.
    #[error("no rollout history found for {kind} {name:?}")]
    NoHistory {
        /// The owner's kind, lowercase (`daemonset`, `statefulset`).
        kind: String,
        /// The owner's name.
        name: String,
    },
    /// The revision holds no template (written by something else).
    #[error("revision {revision} holds no pod template")]
    NoTemplate {
        /// The revision.
        revision: i64,
    },
}

/// What undoing a rollout decided.
#[derive(Clone, Debug, PartialEq)]
pub enum RevisionRollback {
    /// Put this template into the owner (it is revision `revision`'s).
    To {
        /// The revision rolled back to.
        revision: i64,
        /// Its template (boxed: it is large).
        template: Box<PodTemplateSpec>,
    },
    /// The owner already runs that revision's template.
    AlreadyThere {
        /// The revision asked for.
        revision: i64,
    },
}

/// Decides a rollback of `owner` among the revisions it owns: to `to_revision`, or (`None` or
/// `Some(0)`) to the newest revision before the current one, as `kubectl rollout undo` does.
pub fn rollback<K: Revisioned>(
    owner: &K,
    revisions: &[ControllerRevision],
    to_revision: Option<i64>,
) -> Result<RevisionRollback, RevisionRollbackError> {
    let data = revision_data(owner.template());
    let current = revisions
        .iter()
        .filter(|r| r.data == data)
        .map(|r| r.revision)
        .max();
    let target = match to_revision.filter(|r| *r != 0) {
        Some(revision) => revisions
            .iter()
            .find(|r| r.revision == revision)
            .ok_or(RevisionRollbackError::NoSuchRevision { revision })?,
        None => {
            let below = current.unwrap_or(i64::MAX);
            revisions
                .iter()
                .filter(|r| r.revision < below && r.data != data)
                .max_by_key(|r| r.revision)
                .ok_or_else(|| RevisionRollbackError::NoHistory {
                    kind: K::KIND.to_ascii_lowercase(),
                    name: owner.meta().name.clone(),
                })?
        }
    };
    if target.data == data {
        return Ok(RevisionRollback::AlreadyThere {
            revision: target.revision,
        });
    }
    let template = revision_template(target).ok_or(RevisionRollbackError::NoTemplate {
        revision: target.revision,
    })?;
    Ok(RevisionRollback::To {
        revision: target.revision,
        template: Box::new(template),
    })
}

/// The revisions among `all` that `owner` controls.
pub fn owned_by<'a, K: Resource>(
    owner: &'a K,
    all: impl IntoIterator<Item = &'a ControllerRevision>,
) -> impl Iterator<Item = &'a ControllerRevision> {
    all.into_iter().filter(|r| {
        r.metadata
            .controller_ref()
            .is_some_and(|o| o.uid == owner.meta().uid && o.kind == K::KIND)
    })
}

#[cfg(test)]
mod tests;
