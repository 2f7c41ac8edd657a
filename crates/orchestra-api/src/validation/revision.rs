//! Checks of ControllerRevisions: a non-negative revision, and data that never changes.

use super::{ErrorList, FieldError, FieldPath};
use crate::resources::ControllerRevision;

/// Checks a ControllerRevision: `revision` is not negative.
pub fn validate_controller_revision(revision: &ControllerRevision) -> ErrorList {
    let mut errors = ErrorList::new();
    if revision.revision < 0 {
        errors.push(FieldError::invalid(
            &FieldPath::new("revision"),
            revision.revision,
            "must be greater than or equal to 0",
        ));
    }
    errors
}

/// Checks a ControllerRevision update: `data` is immutable (a revision is a snapshot).
pub fn validate_controller_revision_update(
    new: &ControllerRevision,
    old: &ControllerRevision,
) -> ErrorList {
    let mut errors = ErrorList::new();
    if new.data != old.data {
        errors.push(FieldError::invalid(
            &FieldPath::new("data"),
            "",
            "field is immutable",
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Resource;
    use crate::meta::ObjectMeta;

    fn revision(number: i64, data: serde_json::Value) -> ControllerRevision {
        ControllerRevision {
            metadata: ObjectMeta::namespaced("default", "agent-5f7c9"),
            data,
            revision: number,
        }
    }

    #[test]
    fn a_negative_revision_is_refused_by_path() {
        assert!(revision(1, json!({})).validate().is_empty());
        assert_eq!(
            revision(-1, json!({})).validate().to_string(),
            "revision: Invalid value: -1: must be greater than or equal to 0"
        );
    }

    #[test]
    fn data_is_immutable_but_the_revision_may_rise() {
        let old = revision(1, json!({"spec": {"template": {"a": 1}}}));
        assert!(
            revision(3, old.data.clone())
                .validate_update(&old)
                .is_empty()
        );
        let changed = revision(1, json!({"spec": {"template": {"a": 2}}}));
        assert_eq!(
            changed.validate_update(&old).to_string(),
            "data: Invalid value: \"\": field is immutable"
        );
    }
}
