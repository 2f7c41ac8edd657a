//! Checks of TrafficSplits: an apex service and backends that are valid service names,
//! each backend once, weights that are not negative and do not all vanish.

use std::collections::HashSet;

use super::names;
use super::{ErrorList, FieldError, FieldPath};
use crate::resources::TrafficSplit;

/// Checks a TrafficSplit: `spec.service` is a DNS-1035 label (a service name); `spec.backends`
/// is not empty, names each backend once by a valid service name, with a weight of 0 or
/// more; and the weights add up to more than 0.
pub fn validate_traffic_split(split: &TrafficSplit) -> ErrorList {
    let spec = FieldPath::new("spec");
    let mut errors = ErrorList::new();
    check_service_name(&mut errors, &spec.child("service"), &split.spec.service);

    let backends = spec.child("backends");
    if split.spec.backends.is_empty() {
        errors.push(FieldError::required(
            &backends,
            "a traffic split needs at least one backend",
        ));
        return errors;
    }
    let mut seen = HashSet::new();
    let mut total: i64 = 0;
    for (i, backend) in split.spec.backends.iter().enumerate() {
        let path = backends.index(i);
        let service = path.child("service");
        check_service_name(&mut errors, &service, &backend.service);
        if !backend.service.is_empty() && !seen.insert(backend.service.as_str()) {
            errors.push(FieldError::duplicate(&service, backend.service.as_str()));
        }
        if backend.weight < 0 {
            errors.push(FieldError::invalid(
                &path.child("weight"),
                backend.weight,
                "must be greater than or equal to 0",
            ));
        } else {
            total += i64::from(backend.weight);
        }
    }
    if total == 0 {
        errors.push(FieldError::invalid(
            &backends,
            "",
            "the weights must add up to more than 0 (at least one backend must take requests)",
        ));
    }
    errors
}

/// A service name: required, and a DNS-1035 label (what Services are named by).
fn check_service_name(errors: &mut ErrorList, path: &FieldPath, name: &str) {
    if name.is_empty() {
        errors.push(FieldError::required(path, "a service name is required"));
        return;
    }
    for message in names::is_dns1035_label(name) {
        errors.push(FieldError::invalid(path, name, message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Resource;
    use crate::meta::ObjectMeta;
    use crate::resources::{TrafficSplitBackend, TrafficSplitSpec};

    fn split(service: &str, backends: &[(&str, i32)]) -> TrafficSplit {
        TrafficSplit {
            metadata: ObjectMeta {
                name: "canary".into(),
                namespace: "shop".into(),
                ..ObjectMeta::default()
            },
            spec: TrafficSplitSpec {
                service: service.into(),
                backends: backends
                    .iter()
                    .map(|(service, weight)| TrafficSplitBackend {
                        service: (*service).into(),
                        weight: *weight,
                    })
                    .collect(),
            },
        }
    }

    fn fields(split: &TrafficSplit) -> Vec<String> {
        split
            .validate()
            .iter()
            .map(|e| {
                // `field: What value`, without the value and the detail.
                let text = e.to_string();
                text.splitn(3, ": ").take(2).collect::<Vec<_>>().join(": ")
            })
            .collect()
    }

    #[test]
    fn a_canary_is_valid() {
        assert!(
            split("web", &[("web-v1", 90), ("web-v2", 10)])
                .validate()
                .is_empty()
        );
        // A weight of 0 is allowed (a backend kept ready but idle), and so is the apex
        // as its own backend.
        assert!(
            split("web", &[("web", 1), ("web-v2", 0)])
                .validate()
                .is_empty()
        );
    }

    #[test]
    fn the_apex_service_is_required_and_a_dns1035_label() {
        assert_eq!(
            fields(&split("", &[("a", 1)])),
            ["spec.service: Required value"]
        );
        let errors = split("1web", &[("a", 1)]).validate();
        assert_eq!(errors.len(), 1, "{errors}");
        let error = errors.to_string();
        assert!(
            error.starts_with("spec.service: Invalid value: \"1web\": a DNS-1035 label"),
            "{error}"
        );
        assert_eq!(
            fields(&split("Web", &[("a", 1)])),
            ["spec.service: Invalid value"]
        );
    }

    #[test]
    fn backends_are_required_named_and_listed_once() {
        assert_eq!(
            fields(&split("web", &[])),
            ["spec.backends: Required value"]
        );
        assert_eq!(
            fields(&split("web", &[("v1", 1), ("", 1), ("web_v3", 1)])),
            [
                "spec.backends[1].service: Required value",
                "spec.backends[2].service: Invalid value"
            ]
        );
        let errors = split("web", &[("v1", 1), ("v2", 1), ("v1", 2)]).validate();
        assert_eq!(
            errors.to_string(),
            "spec.backends[2].service: Duplicate value: \"v1\""
        );
    }

    #[test]
    fn weights_are_not_negative_and_not_all_zero() {
        let errors = split("web", &[("v1", -5), ("v2", 10)]).validate();
        assert_eq!(
            errors.to_string(),
            "spec.backends[0].weight: Invalid value: -5: must be greater than or equal to 0"
        );
        assert_eq!(
            fields(&split("web", &[("v1", 0), ("v2", 0)])),
            ["spec.backends: Invalid value"]
        );
        // A negative weight does not cancel a positive one out of the total.
        assert_eq!(
            fields(&split("web", &[("v1", -1), ("v2", 1)])),
            ["spec.backends[0].weight: Invalid value"]
        );
        // Large weights add up without overflowing.
        assert!(
            split("web", &[("v1", i32::MAX), ("v2", i32::MAX)])
                .validate()
                .is_empty()
        );
    }
}
