//! Checks of StatefulSets: replicas, selector and template (as the other workload kinds),
//! `serviceName` (a DNS label: it becomes each pod's subdomain), the pod management policy,
//! the update strategy, and `volumeClaimTemplates`, which orchestra does not support (it has no
//! PersistentVolumeClaims). On update only `replicas`, `template`, `updateStrategy`,
//! `revisionHistoryLimit` and `minReadySeconds` may change, as in Kubernetes.

use super::apps::{is_zero, non_negative, validate_int_or_percent, validate_selector_and_template};
use super::names::is_dns1123_label;
use super::{ErrorList, FieldError, FieldPath};
use crate::resources::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategyType};

/// Checks a StatefulSet's spec.
pub fn validate_stateful_set(sts: &StatefulSet) -> ErrorList {
    let spec = FieldPath::new("spec");
    let mut errors = ErrorList::new();
    non_negative(&mut errors, &spec.child("replicas"), sts.spec.replicas);
    non_negative(
        &mut errors,
        &spec.child("minReadySeconds"),
        sts.spec.min_ready_seconds,
    );
    non_negative(
        &mut errors,
        &spec.child("revisionHistoryLimit"),
        sts.spec.revision_history_limit,
    );
    errors.extend(validate_selector_and_template(
        &sts.spec.selector,
        &sts.spec.template,
        &spec,
        "statefulset",
    ));
    let service = spec.child("serviceName");
    if sts.spec.service_name.is_empty() {
        errors.push(FieldError::required(
            &service,
            "the headless Service that names the pods (POD.SERVICE)",
        ));
    } else {
        for message in is_dns1123_label(&sts.spec.service_name) {
            errors.push(FieldError::invalid(
                &service,
                sts.spec.service_name.as_str(),
                message,
            ));
        }
    }
    if !sts.spec.volume_claim_templates.is_empty() {
        errors.push(FieldError::forbidden(
            &spec.child("volumeClaimTemplates"),
            "not supported: orchestra has no PersistentVolumeClaims; \
             use a volume in the pod template instead",
        ));
    }
    let Some(strategy) = &sts.spec.update_strategy else {
        return errors;
    };
    let sp = spec.child("updateStrategy");
    match (strategy.type_, &strategy.rolling_update) {
        (Some(StatefulSetUpdateStrategyType::OnDelete), Some(_)) => {
            errors.push(FieldError::forbidden(
                &sp.child("rollingUpdate"),
                "only allowed for updateStrategy 'RollingUpdate'",
            ));
        }
        (_, Some(rolling)) => {
            let rp = sp.child("rollingUpdate");
            non_negative(&mut errors, &rp.child("partition"), rolling.partition);
            if let Some(value) = &rolling.max_unavailable {
                let path = rp.child("maxUnavailable");
                let value_errors = validate_int_or_percent(value, &path);
                if value_errors.is_empty() && is_zero(value) {
                    errors.push(FieldError::invalid(&path, 0, "must be greater than 0"));
                }
                errors.extend(value_errors);
            }
        }
        _ => {}
    }
    errors
}

/// Checks an update of a StatefulSet: only `replicas`, `template`, `updateStrategy`,
/// `revisionHistoryLimit` and `minReadySeconds` may change.
pub fn validate_stateful_set_update(new: &StatefulSet, old: &StatefulSet) -> ErrorList {
    fn fixed(spec: &StatefulSetSpec) -> StatefulSetSpec {
        StatefulSetSpec {
            replicas: None,
            template: Default::default(),
            update_strategy: None,
            revision_history_limit: None,
            min_ready_seconds: None,
            ..spec.clone()
        }
    }
    let mut errors = ErrorList::new();
    if fixed(&new.spec) != fixed(&old.spec) {
        errors.push(FieldError::forbidden(
            &FieldPath::new("spec"),
            "updates to statefulset spec for fields other than 'replicas', 'template', \
             'updateStrategy', 'revisionHistoryLimit' and 'minReadySeconds' are forbidden",
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{IntOrString, LabelSelector, ObjectMeta};
    use crate::resources::{
        Container, PodManagementPolicyType, RollingUpdateStatefulSetStrategy,
        StatefulSetUpdateStrategy,
    };

    fn valid() -> StatefulSet {
        let mut sts = StatefulSet {
            metadata: ObjectMeta::namespaced("ns", "db"),
            ..StatefulSet::default()
        };
        sts.spec.replicas = Some(3);
        sts.spec.service_name = "db".into();
        sts.spec.selector = LabelSelector::match_labels([("app", "db")]);
        sts.spec
            .template
            .metadata
            .labels
            .insert("app".into(), "db".into());
        sts.spec.template.spec.containers = vec![Container {
            name: "db".into(),
            image: "postgres:16".into(),
            ..Container::default()
        }];
        crate::defaulting::default_stateful_set(&mut sts);
        sts
    }

    fn messages(errors: &ErrorList) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_complete_stateful_set_is_valid() {
        assert!(validate_stateful_set(&valid()).is_empty());
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut sts = valid();
        sts.spec.replicas = Some(-1);
        sts.spec.service_name = "Not_A_Label".into();
        sts.spec
            .template
            .metadata
            .labels
            .insert("app".into(), "web".into());
        sts.spec.update_strategy = Some(StatefulSetUpdateStrategy {
            type_: Some(StatefulSetUpdateStrategyType::RollingUpdate),
            rolling_update: Some(RollingUpdateStatefulSetStrategy {
                partition: Some(-2),
                max_unavailable: Some(IntOrString::Int(0)),
            }),
        });
        let errors = messages(&validate_stateful_set(&sts));
        let fields: Vec<&str> = errors
            .iter()
            .map(|e| e.split(':').next().unwrap())
            .collect();
        assert_eq!(
            fields,
            [
                "spec.replicas",
                "spec.template.metadata.labels",
                "spec.serviceName",
                "spec.updateStrategy.rollingUpdate.partition",
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
            ],
            "{errors:?}"
        );
    }

    #[test]
    fn service_name_is_required() {
        let mut sts = valid();
        sts.spec.service_name.clear();
        let errors = messages(&validate_stateful_set(&sts));
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("spec.serviceName: Required value"),
            "{errors:?}"
        );
    }

    #[test]
    fn volume_claim_templates_are_refused_as_not_supported() {
        let mut sts = valid();
        sts.spec.volume_claim_templates = vec![serde_json::json!({"metadata": {"name": "data"}})];
        let errors = messages(&validate_stateful_set(&sts));
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with("spec.volumeClaimTemplates: Forbidden: not supported"),
            "{errors:?}"
        );
    }

    #[test]
    fn on_delete_takes_no_rolling_settings() {
        let mut sts = valid();
        sts.spec.update_strategy.as_mut().unwrap().type_ =
            Some(StatefulSetUpdateStrategyType::OnDelete);
        let errors = messages(&validate_stateful_set(&sts));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("spec.updateStrategy.rollingUpdate: Forbidden"));
    }

    #[test]
    fn only_some_fields_may_change() {
        let old = valid();
        let mut new = old.clone();
        new.spec.replicas = Some(5);
        new.spec.template.spec.containers[0].image = "postgres:17".into();
        new.spec.revision_history_limit = Some(2);
        assert!(validate_stateful_set_update(&new, &old).is_empty());
        new.spec.pod_management_policy = Some(PodManagementPolicyType::Parallel);
        let errors = messages(&validate_stateful_set_update(&new, &old));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("spec: Forbidden: updates to statefulset spec"));
    }
}
