//! A daemon set's revision history, as ControllerRevisions (pure decisions).
//!
//! Kubernetes' rules: every template a daemon set has run is kept as a ControllerRevision named
//! `NAME-HASH` (the hash its pods carry in `controller-revision-hash`), owned by the daemon set,
//! holding the template in `data` as `{"spec": {"template": ..., "$patch": "replace"}}`. The
//! current template's revision has the highest number; when a template comes back (a rollback,
//! or an edit back to an older template) its old revision is renumbered to the top rather than
//! copied. Revisions that no pod runs any more are deleted, oldest first, beyond
//! `revisionHistoryLimit` (10 by default). `orchestra ctl rollout undo daemonset/NAME` reads
//! them back through [`rollback`].

use std::collections::BTreeSet;
use std::sync::Arc;

use orchestra_api::resources::{ControllerRevision, DaemonSet, Pod, PodTemplateSpec};
use orchestra_api::{ObjectMeta, Resource};
use serde_json::{Value, json};

use super::plan::{REVISION_HASH_LABEL, controller_ref, current_hash};

/// How many old revisions are kept when `revisionHistoryLimit` is unset.
const DEFAULT_HISTORY_LIMIT: i32 = 10;

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

/// The name of the revision of `ds` with template hash `hash`.
pub fn revision_name(ds: &DaemonSet, hash: &str) -> String {
    // Names are at most 253 characters; keep the hash, which tells revisions apart.
    let room = 253usize.saturating_sub(hash.len() + 1);
    let prefix: String = ds.metadata.name.chars().take(room).collect();
    format!("{prefix}-{hash}")
}

/// What a revision of `ds`'s current template holds.
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

/// The revision of `ds`'s current template, to create.
fn new_revision(ds: &DaemonSet, hash: &str, number: i64) -> ControllerRevision {
    let mut metadata =
        ObjectMeta::namespaced(ds.metadata.namespace.clone(), revision_name(ds, hash));
    metadata
        .labels
        .clone_from(&ds.spec.template.metadata.labels);
    metadata
        .labels
        .insert(REVISION_HASH_LABEL.into(), hash.to_owned());
    metadata.owner_references = vec![controller_ref(ds)];
    ControllerRevision {
        metadata,
        data: revision_data(&ds.spec.template),
        revision: number,
    }
}

/// Decides the history writes for `ds`, given the revisions it owns and the pods it controls.
pub fn plan_history(
    ds: &DaemonSet,
    revisions: &[Arc<ControllerRevision>],
    pods: &[Arc<Pod>],
) -> HistoryPlan {
    let hash = current_hash(ds);
    let data = revision_data(&ds.spec.template);
    let top = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    // The current template's revision: same hash and the same template (a hash label alone
    // could be a collision or an edit).
    let current = revisions
        .iter()
        .find(|r| r.metadata.labels.get(REVISION_HASH_LABEL) == Some(&hash) && r.data == data);
    let mut plan = HistoryPlan::default();
    match current {
        Some(current) if current.revision < top => {
            plan.renumber = Some((current.metadata.name.clone(), top + 1));
        }
        Some(_) => {}
        None => plan.create = Some(new_revision(ds, &hash, top + 1)),
    }
    let running: BTreeSet<&str> = pods
        .iter()
        .filter_map(|p| p.metadata.labels.get(REVISION_HASH_LABEL))
        .map(String::as_str)
        .collect();
    let mut unused: Vec<&ControllerRevision> = revisions
        .iter()
        .map(Arc::as_ref)
        .filter(|r| current.is_none_or(|c| c.metadata.uid != r.metadata.uid))
        .filter(|r| {
            r.metadata
                .labels
                .get(REVISION_HASH_LABEL)
                .is_none_or(|h| !running.contains(h.as_str()))
        })
        .collect();
    let limit = usize::try_from(
        ds.spec
            .revision_history_limit
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

/// Why a daemon set cannot be rolled back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaemonSetRollbackError {
    /// No revision of the daemon set has that number.
    #[error("unable to find specified revision {revision} in history")]
    NoSuchRevision {
        /// The revision asked for.
        revision: i64,
    },
    /// There is no revision before the current one.
    #[error("no rollout history found for daemon set {name:?}")]
    NoHistory {
        /// The daemon set.
        name: String,
    },
    /// The revision holds no template (written by something else).
    #[error("revision {revision} holds no pod template")]
    NoTemplate {
        /// The revision.
        revision: i64,
    },
}

/// What rolling a daemon set back decided.
#[derive(Clone, Debug, PartialEq)]
pub enum DaemonSetRollback {
    /// Put this template into the daemon set (it is revision `revision`'s).
    To {
        /// The revision rolled back to.
        revision: i64,
        /// Its template (boxed: it is large).
        template: Box<PodTemplateSpec>,
    },
    /// The daemon set already runs that revision's template.
    AlreadyThere {
        /// The revision asked for.
        revision: i64,
    },
}

/// Decides a rollback of `ds` among the revisions it owns: to `to_revision`, or (`None` or
/// `Some(0)`) to the newest revision before the current one, as `kubectl rollout undo` does.
pub fn rollback(
    ds: &DaemonSet,
    revisions: &[ControllerRevision],
    to_revision: Option<i64>,
) -> Result<DaemonSetRollback, DaemonSetRollbackError> {
    let data = revision_data(&ds.spec.template);
    let current = revisions
        .iter()
        .filter(|r| r.data == data)
        .map(|r| r.revision)
        .max();
    let target = match to_revision.filter(|r| *r != 0) {
        Some(revision) => revisions
            .iter()
            .find(|r| r.revision == revision)
            .ok_or(DaemonSetRollbackError::NoSuchRevision { revision })?,
        None => {
            let below = current.unwrap_or(i64::MAX);
            revisions
                .iter()
                .filter(|r| r.revision < below && r.data != data)
                .max_by_key(|r| r.revision)
                .ok_or_else(|| DaemonSetRollbackError::NoHistory {
                    name: ds.metadata.name.clone(),
                })?
        }
    };
    if target.data == data {
        return Ok(DaemonSetRollback::AlreadyThere {
            revision: target.revision,
        });
    }
    let template = revision_template(target).ok_or(DaemonSetRollbackError::NoTemplate {
        revision: target.revision,
    })?;
    Ok(DaemonSetRollback::To {
        revision: target.revision,
        template: Box::new(template),
    })
}

/// The revisions among `all` that `ds` controls.
pub fn owned_by<'a>(
    ds: &'a DaemonSet,
    all: impl IntoIterator<Item = &'a ControllerRevision>,
) -> impl Iterator<Item = &'a ControllerRevision> {
    all.into_iter().filter(|r| {
        r.metadata
            .controller_ref()
            .is_some_and(|o| o.uid == ds.metadata.uid && o.kind == DaemonSet::KIND)
    })
}

#[cfg(test)]
mod tests;
