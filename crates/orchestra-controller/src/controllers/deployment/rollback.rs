//! Rolling a deployment back to an earlier revision, as `kubectl rollout undo` does: find the
//! replica set of that revision among the deployment's own, and put its template (without the
//! `pod-template-hash` label) back into the deployment. The controller then treats that replica
//! set as the new one and gives it the next revision. Pure functions; `orchestra ctl rollout
//! undo` makes the write.

use orchestra_api::resources::{Deployment, PodTemplateSpec, ReplicaSet};

use super::plan::{POD_TEMPLATE_HASH, REVISION_ANNOTATION};

/// Why a deployment cannot be rolled back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    /// No replica set of the deployment carries the revision asked for.
    #[error("unable to find specified revision {revision} in history")]
    NoSuchRevision {
        /// The revision asked for.
        revision: i64,
    },
    /// There is no revision before the current one.
    #[error("no rollout history found for deployment {name:?}")]
    NoHistory {
        /// The deployment.
        name: String,
    },
}

/// What rolling back decided.
#[derive(Clone, Debug, PartialEq)]
pub enum Rollback {
    /// Put this template into the deployment (it is revision `revision`'s).
    To {
        /// The revision rolled back to.
        revision: i64,
        /// Its template, without the pod-template-hash label (boxed: it is large).
        template: Box<PodTemplateSpec>,
    },
    /// The deployment already runs that revision's template.
    AlreadyThere {
        /// The revision asked for.
        revision: i64,
    },
}

fn revision(rs: &ReplicaSet) -> Option<i64> {
    rs.metadata
        .annotations
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse().ok())
}

/// Decides a rollback of `deployment` among the replica sets it controls (`owned`): to
/// `to_revision`, or (`None` or `Some(0)`) to the revision before the current one.
pub fn rollback(
    deployment: &Deployment,
    owned: &[ReplicaSet],
    to_revision: Option<i64>,
) -> Result<Rollback, RollbackError> {
    let current = deployment
        .metadata
        .annotations
        .get(REVISION_ANNOTATION)
        .and_then(|r| r.parse::<i64>().ok())
        .unwrap_or(0);
    let target = match to_revision.filter(|r| *r != 0) {
        Some(revision) => owned
            .iter()
            .find(|rs| revision_of_is(rs, revision))
            .ok_or(RollbackError::NoSuchRevision { revision })?,
        None => owned
            .iter()
            .filter(|rs| revision(rs).is_some_and(|r| r < current))
            .max_by_key(|rs| revision(rs))
            .ok_or_else(|| RollbackError::NoHistory {
                name: deployment.metadata.name.clone(),
            })?,
    };
    let revision = revision(target).unwrap_or(0);
    let mut template = target.spec.template.clone();
    template.metadata.labels.remove(POD_TEMPLATE_HASH);
    if template == deployment.spec.template {
        return Ok(Rollback::AlreadyThere { revision });
    }
    Ok(Rollback::To {
        revision,
        template: Box::new(template),
    })
}

fn revision_of_is(rs: &ReplicaSet, wanted: i64) -> bool {
    revision(rs) == Some(wanted)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use orchestra_api::resources::Container;
    use orchestra_api::{LabelSelector, ObjectMeta};

    use super::super::plan::new_replica_set;
    use super::*;

    fn deployment(image: &str, revision: i64) -> Deployment {
        let mut d = Deployment {
            metadata: ObjectMeta::namespaced("ns", "web"),
            ..Deployment::default()
        };
        d.metadata
            .annotations
            .insert(REVISION_ANNOTATION.into(), revision.to_string());
        d.spec.selector = LabelSelector::match_labels([("app", "web")]);
        d.spec.template.metadata.labels = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        d.spec.template.spec.containers = vec![Container {
            name: "web".into(),
            image: image.into(),
            ..Container::default()
        }];
        d
    }

    fn history() -> Vec<ReplicaSet> {
        vec![
            new_replica_set(&deployment("v1", 1), 0, 1),
            new_replica_set(&deployment("v2", 2), 0, 2),
            new_replica_set(&deployment("v3", 3), 3, 3),
        ]
    }

    #[test]
    fn undo_goes_to_the_previous_revision_or_the_one_named() {
        let current = deployment("v3", 3);
        let previous = rollback(&current, &history(), None).unwrap();
        assert_eq!(
            previous,
            Rollback::To {
                revision: 2,
                template: Box::new(deployment("v2", 2).spec.template),
            },
            "the hash label is dropped"
        );
        let Rollback::To { revision, template } = rollback(&current, &history(), Some(1)).unwrap()
        else {
            panic!("a rollback");
        };
        assert_eq!(revision, 1);
        assert_eq!(template.spec.containers[0].image, "v1");
    }

    #[test]
    fn unknown_revisions_and_no_history_are_errors() {
        let current = deployment("v3", 3);
        assert_eq!(
            rollback(&current, &history(), Some(7)),
            Err(RollbackError::NoSuchRevision { revision: 7 })
        );
        let first = deployment("v1", 1);
        let only = vec![new_replica_set(&first, 1, 1)];
        let err = rollback(&first, &only, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no rollout history found for deployment \"web\""
        );
        assert_eq!(
            rollback(&current, &history(), Some(3)),
            Ok(Rollback::AlreadyThere { revision: 3 })
        );
    }
}
