//! Checks of ReplicaSets and Deployments: replicas, selector (required, valid, matching the
//! template's labels, immutable), the pod template, and the rollout strategy.

use super::meta::{map_value, validate_label_selector};
use super::pod::validate_pod_template;
use super::{ErrorList, FieldError, FieldPath};
use crate::meta::{IntOrString, LabelSelector};
use crate::resources::pod::PodTemplateSpec;
use crate::resources::{
    CompletionMode, DaemonSet, DaemonSetUpdateStrategyType, Deployment, DeploymentStrategyType,
    Job, ReplicaSet, RestartPolicy,
};
use crate::selector::Selector;

pub(super) fn non_negative(errors: &mut ErrorList, path: &FieldPath, value: Option<i32>) {
    if let Some(v) = value.filter(|v| *v < 0) {
        errors.push(FieldError::invalid(
            path,
            v,
            "must be greater than or equal to 0",
        ));
    }
}

/// The checks ReplicaSet and Deployment share: selector and template.
pub(super) fn validate_selector_and_template(
    selector: &LabelSelector,
    template: &PodTemplateSpec,
    spec: &FieldPath,
    kind: &str,
) -> ErrorList {
    // Jobs run pods to completion; every other controller keeps them running.
    let require_always = kind != "job";
    let mut errors = ErrorList::new();
    let selector_path = spec.child("selector");
    if selector.is_empty() {
        errors.push(FieldError::required(
            &selector_path,
            format!("empty selector is invalid for {kind}"),
        ));
    } else {
        let selector_errors = validate_label_selector(selector, &selector_path);
        let selector_valid = selector_errors.is_empty();
        errors.extend(selector_errors);
        if selector_valid
            && let Ok(matcher) = Selector::try_from(selector)
            && !matcher.matches(&template.metadata.labels)
        {
            errors.push(FieldError::invalid(
                &spec.child("template").child("metadata").child("labels"),
                map_value(&template.metadata.labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    errors.extend(validate_pod_template(
        template,
        &spec.child("template"),
        require_always,
    ));
    errors
}

/// Checks a ReplicaSet's spec.
pub fn validate_replica_set(rs: &ReplicaSet) -> ErrorList {
    let spec = FieldPath::new("spec");
    let mut errors = ErrorList::new();
    non_negative(&mut errors, &spec.child("replicas"), rs.spec.replicas);
    non_negative(
        &mut errors,
        &spec.child("minReadySeconds"),
        rs.spec.min_ready_seconds,
    );
    errors.extend(validate_selector_and_template(
        &rs.spec.selector,
        &rs.spec.template,
        &spec,
        "replicaset",
    ));
    errors
}

/// Checks a DaemonSet's spec: selector, template (restartPolicy `Always`), and update
/// strategy (`maxUnavailable` and `maxSurge` not negative, not both zero).
pub fn validate_daemon_set(ds: &DaemonSet) -> ErrorList {
    let spec = FieldPath::new("spec");
    let mut errors = ErrorList::new();
    non_negative(
        &mut errors,
        &spec.child("minReadySeconds"),
        ds.spec.min_ready_seconds,
    );
    non_negative(
        &mut errors,
        &spec.child("revisionHistoryLimit"),
        ds.spec.revision_history_limit,
    );
    errors.extend(validate_selector_and_template(
        &ds.spec.selector,
        &ds.spec.template,
        &spec,
        "daemonset",
    ));
    let Some(strategy) = &ds.spec.update_strategy else {
        return errors;
    };
    let sp = spec.child("updateStrategy");
    match (strategy.type_, &strategy.rolling_update) {
        (Some(DaemonSetUpdateStrategyType::OnDelete), Some(_)) => {
            errors.push(FieldError::forbidden(
                &sp.child("rollingUpdate"),
                "may not be specified when strategy `type` is 'OnDelete'",
            ));
        }
        (_, Some(rolling)) => {
            let rp = sp.child("rollingUpdate");
            let unavailable = rolling.max_unavailable.as_ref();
            let surge = rolling.max_surge.as_ref();
            for (field, value) in [("maxUnavailable", unavailable), ("maxSurge", surge)] {
                if let Some(value) = value {
                    errors.extend(validate_int_or_percent(value, &rp.child(field)));
                }
            }
            if unavailable.is_some_and(is_zero) && surge.is_none_or(is_zero) {
                errors.push(FieldError::invalid(
                    &rp.child("maxUnavailable"),
                    0,
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
        }
        _ => {}
    }
    errors
}

pub(super) fn is_zero(value: &IntOrString) -> bool {
    match value {
        IntOrString::Int(n) => *n == 0,
        IntOrString::String(s) => s.trim_end_matches('%').parse::<i64>() == Ok(0),
    }
}

/// A count or a percentage, not negative (percentages at most 100%).
pub(super) fn validate_int_or_percent(value: &IntOrString, path: &FieldPath) -> ErrorList {
    let mut errors = ErrorList::new();
    match value {
        IntOrString::Int(n) if *n < 0 => errors.push(FieldError::invalid(
            path,
            *n,
            "must be greater than or equal to 0",
        )),
        IntOrString::Int(_) => {}
        IntOrString::String(s) => match s.strip_suffix('%').map(str::parse::<i64>) {
            Some(Ok(p)) if (0..=100).contains(&p) => {}
            Some(Ok(_)) => errors.push(FieldError::invalid(
                path,
                s.as_str(),
                "must not be greater than 100%",
            )),
            _ => errors.push(FieldError::invalid(
                path,
                s.as_str(),
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%')",
            )),
        },
    }
    errors
}

/// Checks a Job's spec: counts not negative, a positive deadline, `completions` set for the
/// Indexed completion mode, a selector matching the template, and a template whose restartPolicy is `OnFailure`
/// or `Never`.
pub fn validate_job(job: &Job) -> ErrorList {
    let spec = FieldPath::new("spec");
    let s = &job.spec;
    let mut errors = ErrorList::new();
    non_negative(&mut errors, &spec.child("parallelism"), s.parallelism);
    non_negative(&mut errors, &spec.child("completions"), s.completions);
    non_negative(&mut errors, &spec.child("backoffLimit"), s.backoff_limit);
    non_negative(
        &mut errors,
        &spec.child("ttlSecondsAfterFinished"),
        s.ttl_seconds_after_finished,
    );
    if let Some(deadline) = s.active_deadline_seconds.filter(|d| *d <= 0) {
        errors.push(FieldError::invalid(
            &spec.child("activeDeadlineSeconds"),
            deadline,
            "must be greater than 0",
        ));
    }
    if s.completion_mode == Some(CompletionMode::Indexed) && s.completions.is_none() {
        errors.push(FieldError::required(
            &spec.child("completions"),
            "when completionMode is Indexed",
        ));
    }
    match &s.selector {
        Some(selector) => errors.extend(validate_selector_and_template(
            selector,
            &s.template,
            &spec,
            "job",
        )),
        None => {
            // The registry generates it on create, unless the user asked to give their own.
            if s.manual_selector == Some(true) {
                errors.push(FieldError::required(
                    &spec.child("selector"),
                    "`manualSelector` is true",
                ));
            }
            errors.extend(validate_pod_template(
                &s.template,
                &spec.child("template"),
                false,
            ));
        }
    }
    let policy = s
        .template
        .spec
        .restart_policy
        .unwrap_or(RestartPolicy::Always);
    if !matches!(policy, RestartPolicy::OnFailure | RestartPolicy::Never) {
        errors.push(FieldError::not_supported(
            &spec.child("template").child("spec").child("restartPolicy"),
            policy.as_str(),
            &["OnFailure", "Never"],
        ));
    }
    errors
}

/// Checks a Job update: the selector, the template and the completion mode never change.
pub fn validate_job_update(new: &Job, old: &Job) -> ErrorList {
    let spec = FieldPath::new("spec");
    let mut errors = ErrorList::new();
    if new.spec.selector != old.spec.selector {
        errors.push(FieldError::invalid(
            &spec.child("selector"),
            serde_json::to_value(&new.spec.selector).unwrap_or_default(),
            "field is immutable",
        ));
    }
    if new.spec.template != old.spec.template {
        errors.push(FieldError::invalid(
            &spec.child("template"),
            "",
            "field is immutable",
        ));
    }
    if new.spec.completion_mode != old.spec.completion_mode {
        errors.push(FieldError::invalid(
            &spec.child("completionMode"),
            "",
            "field is immutable",
        ));
    }
    errors
}

/// Checks a Deployment's spec, strategy included.
pub fn validate_deployment(d: &Deployment) -> ErrorList {
    let spec = FieldPath::new("spec");
    let mut errors = ErrorList::new();
    non_negative(&mut errors, &spec.child("replicas"), d.spec.replicas);
    non_negative(
        &mut errors,
        &spec.child("minReadySeconds"),
        d.spec.min_ready_seconds,
    );
    non_negative(
        &mut errors,
        &spec.child("revisionHistoryLimit"),
        d.spec.revision_history_limit,
    );
    if let Some(deadline) = d.spec.progress_deadline_seconds {
        let p = spec.child("progressDeadlineSeconds");
        if deadline <= 0 {
            errors.push(FieldError::invalid(&p, deadline, "must be greater than 0"));
        } else if deadline <= d.spec.min_ready_seconds.unwrap_or(0) {
            errors.push(FieldError::invalid(
                &p,
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
    errors.extend(validate_selector_and_template(
        &d.spec.selector,
        &d.spec.template,
        &spec,
        "deployment",
    ));

    let Some(strategy) = &d.spec.strategy else {
        return errors;
    };
    let sp = spec.child("strategy");
    let rolling = strategy.rolling_update.as_ref();
    match strategy.type_ {
        Some(DeploymentStrategyType::Recreate) => {
            if rolling.is_some() {
                errors.push(FieldError::forbidden(
                    &sp.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        Some(DeploymentStrategyType::RollingUpdate) | None => {
            let Some(rolling) = rolling else {
                return errors;
            };
            let rp = sp.child("rollingUpdate");
            let surge = check_int_or_percent(
                &mut errors,
                rolling.max_surge.as_ref(),
                &rp.child("maxSurge"),
            );
            let unavailable = check_int_or_percent(
                &mut errors,
                rolling.max_unavailable.as_ref(),
                &rp.child("maxUnavailable"),
            );
            if let Some(IntOrString::String(s)) = &rolling.max_unavailable
                && unavailable.is_some_and(|v| v > 100)
            {
                errors.push(FieldError::invalid(
                    &rp.child("maxUnavailable"),
                    s.as_str(),
                    "must not be greater than 100%",
                ));
            }
            if surge == Some(0) && unavailable == Some(0) {
                errors.push(FieldError::invalid(
                    &rp.child("maxUnavailable"),
                    rolling
                        .max_unavailable
                        .as_ref()
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    "may not be 0 when `maxSurge` is 0",
                ));
            }
        }
    }
    errors
}

/// Checks a count or percentage; returns its number when valid.
fn check_int_or_percent(
    errors: &mut ErrorList,
    value: Option<&IntOrString>,
    path: &FieldPath,
) -> Option<i32> {
    let value = value?;
    let number = match value {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => {
            let pct = value.percent();
            if pct.is_none() {
                errors.push(FieldError::invalid(
                    path,
                    s.as_str(),
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                ));
            }
            pct
        }
    };
    if let Some(n) = number.filter(|n| *n < 0) {
        errors.push(FieldError::invalid(
            path,
            n,
            "must be greater than or equal to 0",
        ));
    }
    number
}

/// Checks that an update keeps `spec.selector` (immutable in `apps/v1`).
pub fn validate_selector_unchanged(new: &LabelSelector, old: &LabelSelector) -> ErrorList {
    let mut errors = ErrorList::new();
    if new != old {
        errors.push(FieldError::invalid(
            &FieldPath::new("spec").child("selector"),
            serde_json::to_value(new).unwrap_or_default(),
            "field is immutable",
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Resource;
    use crate::meta::ObjectMeta;
    use crate::resources::pod::{Container, PodSpec, RestartPolicy};
    use crate::resources::{DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};

    fn deployment() -> Deployment {
        Deployment {
            metadata: ObjectMeta::namespaced("default", "web"),
            spec: DeploymentSpec {
                selector: LabelSelector::match_labels([("app", "web")]),
                template: PodTemplateSpec {
                    metadata: ObjectMeta::default().with_label("app", "web"),
                    spec: PodSpec {
                        containers: vec![Container {
                            name: "web".into(),
                            image: "nginx".into(),
                            ..Container::default()
                        }],
                        ..PodSpec::default()
                    },
                },
                ..DeploymentSpec::default()
            },
            status: None,
        }
    }

    fn messages(errors: &ErrorList) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_defaulted_deployment_is_valid() {
        let mut d = deployment();
        d.apply_defaults();
        assert!(d.validate().is_empty(), "{}", d.validate());
    }

    #[test]
    fn selector_must_match_template() {
        let mut d = deployment();
        d.spec
            .template
            .metadata
            .labels
            .insert("app".into(), "api".into());
        assert_eq!(
            messages(&d.validate()),
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"api\"}: `selector` does not match template `labels`"
            ]
        );
        d.spec.selector = LabelSelector::default();
        assert_eq!(
            messages(&d.validate()),
            vec!["spec.selector: Required value: empty selector is invalid for deployment"]
        );
    }

    #[test]
    fn replicas_template_policy_and_strategy() {
        let mut d = deployment();
        d.spec.replicas = Some(-1);
        d.spec.template.spec.restart_policy = Some(RestartPolicy::Never);
        d.spec.strategy = Some(DeploymentStrategy {
            type_: Some(DeploymentStrategyType::RollingUpdate),
            rolling_update: Some(RollingUpdateDeployment {
                max_unavailable: Some(IntOrString::from("0%")),
                max_surge: Some(IntOrString::Int(0)),
            }),
        });
        assert_eq!(
            messages(&d.validate()),
            vec![
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": may not be 0 when `maxSurge` is 0",
            ]
        );
        d.spec.replicas = None;
        d.spec.template.spec.restart_policy = None;
        d.spec.strategy = Some(DeploymentStrategy {
            type_: Some(DeploymentStrategyType::Recreate),
            rolling_update: Some(RollingUpdateDeployment {
                max_unavailable: Some(IntOrString::from("150%")),
                max_surge: Some(IntOrString::from("x")),
            }),
        });
        assert_eq!(
            messages(&d.validate()),
            vec![
                "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"
            ]
        );
    }

    #[test]
    fn selector_is_immutable() {
        let old = deployment();
        let mut new = old.clone();
        new.spec.selector = LabelSelector::match_labels([("app", "other")]);
        assert_eq!(
            messages(&new.validate_update_fields(&old)),
            vec![
                "spec.selector: Invalid value: {\"matchLabels\":{\"app\":\"other\"}}: field is immutable"
            ]
        );
    }
}
