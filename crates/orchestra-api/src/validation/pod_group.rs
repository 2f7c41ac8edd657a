//! Checks of PodGroups: a positive minimum, a positive timeout, non-negative counts.

use super::{ErrorList, FieldError, FieldPath};
use crate::resources::PodGroup;

/// Checks a PodGroup: `spec.minMember` at least 1, `spec.scheduleTimeoutSeconds` (when set)
/// at least 1, and the status counts not negative.
pub fn validate_pod_group(group: &PodGroup) -> ErrorList {
    let mut errors = ErrorList::new();
    let spec = FieldPath::new("spec");
    if group.spec.min_member < 1 {
        errors.push(FieldError::invalid(
            &spec.child("minMember"),
            group.spec.min_member,
            "must be greater than or equal to 1",
        ));
    }
    if let Some(t) = group.spec.schedule_timeout_seconds.filter(|t| *t < 1) {
        errors.push(FieldError::invalid(
            &spec.child("scheduleTimeoutSeconds"),
            t,
            "must be greater than or equal to 1",
        ));
    }
    if let Some(status) = &group.status {
        let path = FieldPath::new("status");
        for (field, value) in [
            ("scheduled", status.scheduled),
            ("running", status.running),
            ("failed", status.failed),
        ] {
            if value < 0 {
                errors.push(FieldError::invalid(
                    &path.child(field),
                    value,
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Resource;
    use crate::meta::ObjectMeta;
    use crate::resources::{PodGroupSpec, PodGroupStatus};

    fn group(min_member: i32, timeout: Option<i32>) -> PodGroup {
        PodGroup {
            metadata: ObjectMeta::namespaced("default", "training"),
            spec: PodGroupSpec {
                min_member,
                schedule_timeout_seconds: timeout,
            },
            status: None,
        }
    }

    #[test]
    fn a_valid_group_passes() {
        assert!(group(1, None).validate().is_empty());
        assert!(group(8, Some(30)).validate().is_empty());
    }

    #[test]
    fn the_minimum_and_the_timeout_are_checked_by_path() {
        assert_eq!(
            group(0, None).validate().to_string(),
            "spec.minMember: Invalid value: 0: must be greater than or equal to 1"
        );
        assert_eq!(
            group(3, Some(0)).validate().to_string(),
            "spec.scheduleTimeoutSeconds: Invalid value: 0: must be greater than or equal to 1"
        );
        // Both wrong: both reported.
        assert_eq!(group(-2, Some(-1)).validate().len(), 2);
        // An unset minimum (a manifest without it) is zero: refused.
        let decoded: PodGroup = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "g", "namespace": "default"}, "spec": {}}),
        )
        .expect("decodes");
        assert_eq!(
            decoded.validate().to_string(),
            "spec.minMember: Invalid value: 0: must be greater than or equal to 1"
        );
    }

    #[test]
    fn negative_status_counts_are_refused() {
        let mut g = group(2, None);
        g.status = Some(PodGroupStatus {
            running: -1,
            ..PodGroupStatus::default()
        });
        assert_eq!(
            g.validate().to_string(),
            "status.running: Invalid value: -1: must be greater than or equal to 0"
        );
    }
}
