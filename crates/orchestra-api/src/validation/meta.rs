//! Checks of [`ObjectMeta`], labels, annotations and [`LabelSelector`]s.

use std::collections::BTreeMap;

use serde_json::Value;

use super::names;
use super::{ErrorList, FieldError, FieldPath};
use crate::meta::{LabelSelector, LabelSelectorOperator, ObjectMeta};
use crate::resource::{NameRule, TypeInfo};

/// The most bytes all annotations of an object may take (keys and values).
pub const TOTAL_ANNOTATION_SIZE_LIMIT: usize = 256 * 1024;

fn name_errors(rule: NameRule, name: &str) -> Vec<String> {
    match rule {
        NameRule::Dns1123Subdomain => names::is_dns1123_subdomain(name),
        NameRule::Dns1123Label => names::is_dns1123_label(name),
        NameRule::Dns1035Label => names::is_dns1035_label(name),
        NameRule::PathSegment => names::is_path_segment_name(name),
    }
}

/// Checks an object's metadata: name (or generateName) syntax by the kind's [`NameRule`],
/// namespace presence and syntax (forbidden on cluster-scoped kinds), labels, annotations,
/// owner references, finalizers and the numeric fields.
pub fn validate_object_meta(meta: &ObjectMeta, info: &TypeInfo) -> ErrorList {
    let path = FieldPath::new("metadata");
    let mut errors = ErrorList::new();
    if meta.name.is_empty() {
        if meta.generate_name.is_empty() {
            errors.push(FieldError::required(
                &path.child("name"),
                "name or generateName is required",
            ));
        } else {
            // A generated name is the prefix and a random suffix; a trailing '-' is fine.
            let prefix = meta
                .generate_name
                .strip_suffix('-')
                .unwrap_or(&meta.generate_name);
            let prefix = if prefix.is_empty() { "a" } else { prefix };
            for msg in name_errors(info.name_rule, prefix) {
                errors.push(FieldError::invalid(
                    &path.child("generateName"),
                    meta.generate_name.as_str(),
                    msg,
                ));
            }
        }
    } else {
        for msg in name_errors(info.name_rule, &meta.name) {
            errors.push(FieldError::invalid(
                &path.child("name"),
                meta.name.as_str(),
                msg,
            ));
        }
    }

    let ns_path = path.child("namespace");
    if info.namespaced {
        if meta.namespace.is_empty() {
            errors.push(FieldError::required(&ns_path, ""));
        } else {
            for msg in names::is_dns1123_label(&meta.namespace) {
                errors.push(FieldError::invalid(&ns_path, meta.namespace.as_str(), msg));
            }
        }
    } else if !meta.namespace.is_empty() {
        errors.push(FieldError::forbidden(&ns_path, "not allowed on this type"));
    }

    errors.extend(validate_labels(&meta.labels, &path.child("labels")));
    errors.extend(validate_annotations(
        &meta.annotations,
        &path.child("annotations"),
    ));

    let owners = path.child("ownerReferences");
    for (i, owner) in meta.owner_references.iter().enumerate() {
        let p = owners.index(i);
        for (field, value) in [
            ("apiVersion", &owner.api_version),
            ("kind", &owner.kind),
            ("name", &owner.name),
            ("uid", &owner.uid),
        ] {
            if value.is_empty() {
                errors.push(FieldError::required(&p.child(field), ""));
            }
        }
    }
    let controllers = meta
        .owner_references
        .iter()
        .filter(|r| r.controller == Some(true))
        .count();
    if controllers > 1 {
        errors.push(FieldError::invalid(
            &owners,
            controllers,
            "Only one reference can have Controller set to true",
        ));
    }

    let finalizers = path.child("finalizers");
    for (i, finalizer) in meta.finalizers.iter().enumerate() {
        for msg in names::is_qualified_name(finalizer) {
            errors.push(FieldError::invalid(
                &finalizers.index(i),
                finalizer.as_str(),
                msg,
            ));
        }
    }
    if let Some(generation) = meta.generation.filter(|g| *g < 0) {
        errors.push(FieldError::invalid(
            &path.child("generation"),
            generation,
            "must be greater than or equal to 0",
        ));
    }
    if let Some(grace) = meta.deletion_grace_period_seconds.filter(|g| *g < 0) {
        errors.push(FieldError::invalid(
            &path.child("deletionGracePeriodSeconds"),
            grace,
            "must be greater than or equal to 0",
        ));
    }
    errors
}

/// Checks that an update keeps the metadata that never changes: name, namespace, uid and
/// creationTimestamp (empty values in the new object are filled by the server, not checked).
pub fn validate_object_meta_update(new: &ObjectMeta, old: &ObjectMeta) -> ErrorList {
    let path = FieldPath::new("metadata");
    let mut errors = ErrorList::new();
    let immutable = |field: &str, new: &str, old: &str, errors: &mut ErrorList| {
        if new != old && !(new.is_empty() && field != "name") {
            errors.push(FieldError::invalid(
                &path.child(field),
                new,
                "field is immutable",
            ));
        }
    };
    immutable("name", &new.name, &old.name, &mut errors);
    immutable("namespace", &new.namespace, &old.namespace, &mut errors);
    immutable("uid", &new.uid, &old.uid, &mut errors);
    if new.creation_timestamp.is_some() && new.creation_timestamp != old.creation_timestamp {
        errors.push(FieldError::invalid(
            &path.child("creationTimestamp"),
            new.creation_timestamp
                .map(|t| t.to_string())
                .unwrap_or_default(),
            "field is immutable",
        ));
    }
    errors
}

/// Checks label keys (qualified names) and values (label values), at `path`.
pub fn validate_labels(labels: &BTreeMap<String, String>, path: &FieldPath) -> ErrorList {
    let mut errors = ErrorList::new();
    for (key, value) in labels {
        for msg in names::is_qualified_name(key) {
            errors.push(FieldError::invalid(path, key.as_str(), msg));
        }
        for msg in names::is_valid_label_value(value) {
            errors.push(FieldError::invalid(path, value.as_str(), msg));
        }
    }
    errors
}

/// Checks annotation keys (qualified names, case-insensitively) and their total size.
pub fn validate_annotations(annotations: &BTreeMap<String, String>, path: &FieldPath) -> ErrorList {
    let mut errors = ErrorList::new();
    let mut total = 0usize;
    for (key, value) in annotations {
        for msg in names::is_qualified_name(&key.to_ascii_lowercase()) {
            errors.push(FieldError::invalid(path, key.as_str(), msg));
        }
        total = total.saturating_add(key.len()).saturating_add(value.len());
    }
    if total > TOTAL_ANNOTATION_SIZE_LIMIT {
        errors.push(FieldError::too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT));
    }
    errors
}

/// Checks a [`LabelSelector`]: label syntax of `matchLabels`, and each expression's key and
/// its values for the operator.
pub fn validate_label_selector(selector: &LabelSelector, path: &FieldPath) -> ErrorList {
    let mut errors = validate_labels(&selector.match_labels, &path.child("matchLabels"));
    let exprs = path.child("matchExpressions");
    for (i, expr) in selector.match_expressions.iter().enumerate() {
        let p = exprs.index(i);
        for msg in names::is_qualified_name(&expr.key) {
            errors.push(FieldError::invalid(&p.child("key"), expr.key.as_str(), msg));
        }
        match expr.operator {
            LabelSelectorOperator::In | LabelSelectorOperator::NotIn => {
                if expr.values.is_empty() {
                    errors.push(FieldError::required(
                        &p.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            LabelSelectorOperator::Exists | LabelSelectorOperator::DoesNotExist => {
                if !expr.values.is_empty() {
                    errors.push(FieldError::forbidden(
                        &p.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
        }
        for (j, value) in expr.values.iter().enumerate() {
            for msg in names::is_valid_label_value(value) {
                errors.push(FieldError::invalid(
                    &p.child("values").index(j),
                    value.as_str(),
                    msg,
                ));
            }
        }
    }
    errors
}

/// A string map as a JSON value, for error messages.
pub(crate) fn map_value(map: &BTreeMap<String, String>) -> Value {
    Value::Object(
        map.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Resource;
    use crate::resources::{Namespace, Node, Pod};

    #[test]
    fn names_follow_the_kind_rule() {
        let meta = ObjectMeta::namespaced("default", "Foo_Bar");
        let errors = validate_object_meta(&meta, &Pod::type_info());
        assert_eq!(errors.len(), 1);
        assert!(
            errors.to_string().starts_with(
                "metadata.name: Invalid value: \"Foo_Bar\": a lowercase RFC 1123 subdomain must consist of"
            ),
            "{errors}"
        );
        let errors = validate_object_meta(&ObjectMeta::named("a.b"), &Namespace::type_info());
        assert!(errors.to_string().contains("RFC 1123 label"), "{errors}");
        let errors = validate_object_meta(&ObjectMeta::default(), &Node::type_info());
        assert_eq!(
            errors.to_string(),
            "metadata.name: Required value: name or generateName is required"
        );
        let generated = ObjectMeta {
            generate_name: "web-".into(),
            namespace: "default".into(),
            ..ObjectMeta::default()
        };
        assert!(validate_object_meta(&generated, &Pod::type_info()).is_empty());
    }

    #[test]
    fn namespaces_and_labels() {
        let errors = validate_object_meta(&ObjectMeta::named("web"), &Pod::type_info());
        assert_eq!(errors.to_string(), "metadata.namespace: Required value");
        let errors =
            validate_object_meta(&ObjectMeta::namespaced("default", "n1"), &Node::type_info());
        assert_eq!(
            errors.to_string(),
            "metadata.namespace: Forbidden: not allowed on this type"
        );
        let meta = ObjectMeta::namespaced("default", "web")
            .with_label("bad key", "ok")
            .with_label("app", "bad value");
        let errors = validate_object_meta(&meta, &Pod::type_info());
        assert_eq!(errors.len(), 2, "{errors}");
        assert!(
            errors
                .to_string()
                .contains("metadata.labels: Invalid value: \"bad key\"")
        );
        assert!(
            errors
                .to_string()
                .contains("metadata.labels: Invalid value: \"bad value\"")
        );
    }

    #[test]
    fn huge_annotations_are_too_long() {
        let mut meta = ObjectMeta::namespaced("default", "web");
        meta.annotations
            .insert("big".into(), "x".repeat(300 * 1024));
        let errors = validate_object_meta(&meta, &Pod::type_info());
        assert_eq!(
            errors.to_string(),
            "metadata.annotations: Too long: may not be more than 262144 bytes"
        );
    }

    #[test]
    fn immutable_metadata() {
        let old = ObjectMeta {
            uid: "u1".into(),
            ..ObjectMeta::namespaced("default", "web")
        };
        let mut new = old.clone();
        assert!(validate_object_meta_update(&new, &old).is_empty());
        new.name = "other".into();
        new.uid = "u2".into();
        let errors = validate_object_meta_update(&new, &old);
        assert_eq!(
            errors.to_string(),
            "[metadata.name: Invalid value: \"other\": field is immutable, metadata.uid: Invalid value: \"u2\": field is immutable]"
        );
    }
}
