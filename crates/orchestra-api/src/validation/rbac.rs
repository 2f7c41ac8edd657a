//! Checks of the RBAC kinds: rules with verbs and resources, role references and subjects.

use super::{ErrorList, FieldError, FieldPath, names};
use crate::resources::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RBAC_GROUP, Role, RoleBinding, RoleRef,
    SUBJECT_GROUP, SUBJECT_SERVICE_ACCOUNT, SUBJECT_USER, Subject,
};

/// Checks a Role: every rule has verbs, API groups and resources, and none names URLs.
pub fn validate_role(role: &Role) -> ErrorList {
    let mut errors = ErrorList::new();
    let path = FieldPath::new("rules");
    for (i, rule) in role.rules.iter().enumerate() {
        validate_rule(rule, true, &path.index(i), &mut errors);
    }
    errors
}

/// Checks a ClusterRole: every rule has verbs, and API groups and resources or
/// non-resource URLs.
pub fn validate_cluster_role(role: &ClusterRole) -> ErrorList {
    let mut errors = ErrorList::new();
    let path = FieldPath::new("rules");
    for (i, rule) in role.rules.iter().enumerate() {
        validate_rule(rule, false, &path.index(i), &mut errors);
    }
    errors
}

fn validate_rule(rule: &PolicyRule, namespaced: bool, path: &FieldPath, errors: &mut ErrorList) {
    if rule.verbs.is_empty() {
        errors.push(FieldError::required(
            &path.child("verbs"),
            "verbs must contain at least one value",
        ));
    }
    for (i, verb) in rule.verbs.iter().enumerate() {
        if verb.is_empty() {
            errors.push(FieldError::invalid(
                &path.child("verbs").index(i),
                verb.as_str(),
                "a verb may not be empty",
            ));
        }
    }
    if !rule.non_resource_urls.is_empty() {
        if namespaced {
            errors.push(FieldError::invalid(
                &path.child("nonResourceURLs"),
                rule.non_resource_urls.join(","),
                "namespaced rules cannot apply to non-resource URLs",
            ));
        }
        if !rule.api_groups.is_empty() || !rule.resources.is_empty() {
            errors.push(FieldError::invalid(
                &path.child("nonResourceURLs"),
                rule.non_resource_urls.join(","),
                "rules cannot apply to both regular resources and non-resource URLs",
            ));
        }
        return;
    }
    if rule.api_groups.is_empty() {
        errors.push(FieldError::required(
            &path.child("apiGroups"),
            "resource rules must supply at least one api group",
        ));
    }
    if rule.resources.is_empty() {
        errors.push(FieldError::required(
            &path.child("resources"),
            "resource rules must supply at least one resource",
        ));
    }
    for (i, resource) in rule.resources.iter().enumerate() {
        let valid = match resource.split_once('/') {
            None => !resource.is_empty(),
            Some((res, sub)) => !res.is_empty() && !sub.is_empty() && !sub.contains('/'),
        };
        if !valid {
            errors.push(FieldError::invalid(
                &path.child("resources").index(i),
                resource.as_str(),
                "must be a resource (`pods`), a subresource (`pods/status`, `*/status`) or `*`",
            ));
        }
    }
}

/// Checks a RoleBinding: a reference to a Role or ClusterRole, and valid subjects.
pub fn validate_role_binding(binding: &RoleBinding) -> ErrorList {
    let mut errors = ErrorList::new();
    validate_role_ref(&binding.role_ref, true, &mut errors);
    validate_subjects(&binding.subjects, true, &mut errors);
    errors
}

/// Checks a ClusterRoleBinding: a reference to a ClusterRole, and valid subjects (service
/// accounts with their namespace).
pub fn validate_cluster_role_binding(binding: &ClusterRoleBinding) -> ErrorList {
    let mut errors = ErrorList::new();
    validate_role_ref(&binding.role_ref, false, &mut errors);
    validate_subjects(&binding.subjects, false, &mut errors);
    errors
}

/// Checks that an update keeps the binding's roleRef (Kubernetes: delete and recreate the
/// binding to grant another role).
pub fn validate_role_ref_unchanged(new: &RoleRef, old: &RoleRef) -> ErrorList {
    let mut errors = ErrorList::new();
    if new != old {
        errors.push(FieldError::invalid(
            &FieldPath::new("roleRef"),
            new.name.as_str(),
            "cannot change roleRef",
        ));
    }
    errors
}

fn validate_role_ref(role_ref: &RoleRef, namespaced: bool, errors: &mut ErrorList) {
    let path = FieldPath::new("roleRef");
    if role_ref.api_group != RBAC_GROUP {
        errors.push(FieldError::not_supported(
            &path.child("apiGroup"),
            role_ref.api_group.as_str(),
            &[RBAC_GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&role_ref.kind.as_str()) {
        errors.push(FieldError::not_supported(
            &path.child("kind"),
            role_ref.kind.as_str(),
            kinds,
        ));
    }
    if role_ref.name.is_empty() {
        errors.push(FieldError::required(&path.child("name"), ""));
    } else {
        for message in names::is_path_segment_name(&role_ref.name) {
            errors.push(FieldError::invalid(
                &path.child("name"),
                role_ref.name.as_str(),
                message,
            ));
        }
    }
}

fn validate_subjects(subjects: &[Subject], namespaced: bool, errors: &mut ErrorList) {
    let path = FieldPath::new("subjects");
    for (i, subject) in subjects.iter().enumerate() {
        let path = path.index(i);
        if subject.name.is_empty() {
            errors.push(FieldError::required(&path.child("name"), ""));
        }
        match subject.kind.as_str() {
            SUBJECT_USER | SUBJECT_GROUP => {
                if subject.api_group != RBAC_GROUP {
                    errors.push(FieldError::not_supported(
                        &path.child("apiGroup"),
                        subject.api_group.as_str(),
                        &[RBAC_GROUP],
                    ));
                }
            }
            SUBJECT_SERVICE_ACCOUNT => {
                if !subject.api_group.is_empty() {
                    errors.push(FieldError::not_supported(
                        &path.child("apiGroup"),
                        subject.api_group.as_str(),
                        &[""],
                    ));
                }
                if !subject.name.is_empty() {
                    for message in names::is_dns1123_subdomain(&subject.name) {
                        errors.push(FieldError::invalid(
                            &path.child("name"),
                            subject.name.as_str(),
                            message,
                        ));
                    }
                }
                if subject.namespace.is_empty() && !namespaced {
                    errors.push(FieldError::required(&path.child("namespace"), ""));
                }
            }
            other => errors.push(FieldError::not_supported(
                &path.child("kind"),
                other,
                &[SUBJECT_SERVICE_ACCOUNT, SUBJECT_USER, SUBJECT_GROUP],
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Resource;
    use crate::meta::ObjectMeta;

    #[test]
    fn rules_need_verbs_groups_and_resources() {
        let mut role = Role {
            metadata: ObjectMeta::namespaced("shop", "reader"),
            rules: vec![PolicyRule::new(&[""], &["pods", "pods/status"], &["get"])],
        };
        assert!(role.validate().is_empty(), "{}", role.validate());
        role.rules.push(PolicyRule::default());
        let text = role.validate().to_string();
        assert!(text.contains("rules[1].verbs: Required value"), "{text}");
        assert!(
            text.contains("rules[1].apiGroups: Required value"),
            "{text}"
        );
        assert!(
            text.contains("rules[1].resources: Required value"),
            "{text}"
        );
        role.rules = vec![PolicyRule::new(&[""], &["pods/"], &["get"])];
        assert!(
            role.validate()
                .to_string()
                .starts_with("rules[0].resources[0]: Invalid value: \"pods/\""),
            "{}",
            role.validate()
        );
    }

    #[test]
    fn only_cluster_roles_name_urls() {
        let rule = PolicyRule {
            verbs: vec!["get".into()],
            non_resource_urls: vec!["/healthz".into()],
            ..PolicyRule::default()
        };
        let cluster = ClusterRole {
            metadata: ObjectMeta::named("health"),
            rules: vec![rule.clone()],
        };
        assert!(cluster.validate().is_empty(), "{}", cluster.validate());
        let role = Role {
            metadata: ObjectMeta::namespaced("shop", "health"),
            rules: vec![rule],
        };
        assert!(
            role.validate()
                .to_string()
                .contains("namespaced rules cannot apply to non-resource URLs")
        );
    }

    #[test]
    fn bindings_check_the_role_ref_and_subjects() {
        let mut binding = ClusterRoleBinding {
            metadata: ObjectMeta::named("system:kube-scheduler"),
            subjects: vec![Subject::user("system:kube-scheduler")],
            role_ref: RoleRef::cluster_role("system:kube-scheduler"),
        };
        assert!(binding.validate().is_empty(), "{}", binding.validate());
        binding.role_ref = RoleRef::role("reader");
        binding.subjects.push(Subject {
            kind: "ServiceAccount".into(),
            name: "builder".into(),
            ..Subject::default()
        });
        binding.subjects.push(Subject {
            kind: "Robot".into(),
            name: "r2".into(),
            ..Subject::default()
        });
        let text = binding.validate().to_string();
        assert!(
            text.contains("roleRef.kind: Unsupported value: \"Role\""),
            "{text}"
        );
        assert!(
            text.contains("subjects[1].namespace: Required value"),
            "{text}"
        );
        assert!(
            text.contains("subjects[2].kind: Unsupported value: \"Robot\""),
            "{text}"
        );
        // In a RoleBinding a service account defaults to the binding's namespace.
        let namespaced = RoleBinding {
            metadata: ObjectMeta::namespaced("shop", "builders"),
            subjects: vec![Subject {
                kind: "ServiceAccount".into(),
                name: "builder".into(),
                ..Subject::default()
            }],
            role_ref: RoleRef::role("reader"),
        };
        assert!(
            namespaced.validate().is_empty(),
            "{}",
            namespaced.validate()
        );
    }

    #[test]
    fn the_role_ref_is_immutable_and_subjects_get_their_group() {
        let mut binding: RoleBinding = crate::decode::<RoleBinding>(serde_json::json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "devs", "namespace": "shop"},
            "subjects": [{"kind": "Group", "name": "devs"}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}
        }))
        .expect("decode")
        .strict()
        .expect("known fields");
        binding.apply_defaults();
        assert_eq!(binding.subjects[0].api_group, RBAC_GROUP);
        assert!(binding.validate().is_empty(), "{}", binding.validate());
        let mut changed = binding.clone();
        changed.role_ref.name = "admin".into();
        assert_eq!(
            changed.validate_update(&binding).to_string(),
            "roleRef: Invalid value: \"admin\": cannot change roleRef"
        );
    }
}
