//! Checks of Leases.

use super::{ErrorList, FieldError, FieldPath};
use crate::resources::Lease;

/// Checks a Lease: a positive duration and a non-negative transition count.
pub fn validate_lease(lease: &Lease) -> ErrorList {
    let mut errors = ErrorList::new();
    let spec = FieldPath::new("spec");
    if let Some(d) = lease.spec.lease_duration_seconds.filter(|d| *d <= 0) {
        errors.push(FieldError::invalid(
            &spec.child("leaseDurationSeconds"),
            d,
            "must be greater than 0",
        ));
    }
    if let Some(t) = lease.spec.lease_transitions.filter(|t| *t < 0) {
        errors.push(FieldError::invalid(
            &spec.child("leaseTransitions"),
            t,
            "must be greater than or equal to 0",
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Resource;
    use crate::meta::ObjectMeta;
    use crate::resources::LeaseSpec;

    #[test]
    fn durations() {
        let mut lease = Lease {
            metadata: ObjectMeta::namespaced("kube-node-lease", "node-1"),
            spec: LeaseSpec {
                holder_identity: Some("node-1".into()),
                lease_duration_seconds: Some(40),
                ..LeaseSpec::default()
            },
        };
        assert!(lease.validate().is_empty());
        lease.spec.lease_duration_seconds = Some(0);
        assert_eq!(
            lease.validate().to_string(),
            "spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"
        );
    }
}
