//! Checks of ConfigMaps and Secrets: entry keys, size, and immutability.

use std::collections::BTreeMap;

use super::{ErrorList, FieldError, FieldPath};
use crate::resources::{
    ByteString, ConfigMap, SECRET_TYPE_BASIC_AUTH, SECRET_TYPE_DOCKER_CONFIG_JSON, SECRET_TYPE_TLS,
    Secret,
};

/// The most data a ConfigMap or a Secret holds, as Kubernetes: 1 MiB.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// Kubernetes' config key rule: `[-._a-zA-Z0-9]+`, at most 253 characters, not `.` or `..`.
fn check_key(errors: &mut ErrorList, path: &FieldPath, key: &str) {
    let bad = |detail: &str| FieldError::invalid(path, key, detail.to_owned());
    if key.is_empty() {
        errors.push(bad("a valid config key must not be empty"));
    } else if key.len() > 253 {
        errors.push(bad("must be no more than 253 characters"));
    } else if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        errors.push(bad(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
        ));
    } else if key == "." || key == ".." {
        errors.push(bad("must not be '.' or '..'"));
    }
}

fn check_size(errors: &mut ErrorList, path: &FieldPath, total: usize) {
    if total > MAX_DATA_BYTES {
        errors.push(FieldError::too_long(path, MAX_DATA_BYTES));
    }
}

fn immutable(errors: &mut ErrorList, field: &str) {
    errors.push(FieldError::forbidden(
        &FieldPath::new(field),
        "field is immutable when `immutable` is set",
    ));
}

/// Checks a ConfigMap: keys valid and in `data` or `binaryData`, not both; at most 1 MiB.
pub fn validate_config_map(cm: &ConfigMap) -> ErrorList {
    let mut errors = ErrorList::new();
    let mut total = 0;
    for (key, value) in &cm.data {
        check_key(&mut errors, &FieldPath::new("data").key(key), key);
        total += key.len() + value.len();
    }
    for (key, value) in &cm.binary_data {
        let path = FieldPath::new("binaryData").key(key);
        check_key(&mut errors, &path, key);
        if cm.data.contains_key(key) {
            errors.push(FieldError::invalid(
                &path,
                key.as_str(),
                "duplicate of key present in data",
            ));
        }
        total += key.len() + value.0.len();
    }
    check_size(&mut errors, &FieldPath::new("data"), total);
    errors
}

/// Checks a ConfigMap update: an immutable one keeps its entries, and stays immutable.
pub fn validate_config_map_update(new: &ConfigMap, old: &ConfigMap) -> ErrorList {
    let mut errors = ErrorList::new();
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            immutable(&mut errors, "immutable");
        }
        if new.data != old.data {
            immutable(&mut errors, "data");
        }
        if new.binary_data != old.binary_data {
            immutable(&mut errors, "binaryData");
        }
    }
    errors
}

fn require_keys(
    errors: &mut ErrorList,
    data: &BTreeMap<String, ByteString>,
    type_: &str,
    keys: &[&str],
) {
    for key in keys {
        if !data.contains_key(*key) {
            errors.push(FieldError::required(
                &FieldPath::new("data").key(key),
                format!("a {type_} secret needs it"),
            ));
        }
    }
}

/// Checks a Secret: keys valid, at most 1 MiB, and the entries its type needs (`tls.crt`
/// and `tls.key` for `kubernetes.io/tls`, `.dockerconfigjson` for
/// `kubernetes.io/dockerconfigjson`, `username` or `password` for basic auth).
pub fn validate_secret(secret: &Secret) -> ErrorList {
    let mut errors = ErrorList::new();
    let mut total = 0;
    for (key, value) in &secret.data {
        check_key(&mut errors, &FieldPath::new("data").key(key), key);
        total += key.len() + value.0.len();
    }
    for key in secret.string_data.keys() {
        check_key(&mut errors, &FieldPath::new("stringData").key(key), key);
    }
    check_size(&mut errors, &FieldPath::new("data"), total);
    match secret.type_.as_str() {
        SECRET_TYPE_TLS => require_keys(
            &mut errors,
            &secret.data,
            SECRET_TYPE_TLS,
            &["tls.crt", "tls.key"],
        ),
        SECRET_TYPE_DOCKER_CONFIG_JSON => require_keys(
            &mut errors,
            &secret.data,
            SECRET_TYPE_DOCKER_CONFIG_JSON,
            &[".dockerconfigjson"],
        ),
        SECRET_TYPE_BASIC_AUTH
            if !secret.data.contains_key("username") && !secret.data.contains_key("password") =>
        {
            errors.push(FieldError::required(
                &FieldPath::new("data"),
                "a kubernetes.io/basic-auth secret needs `username` or `password`",
            ));
        }
        _ => {}
    }
    errors
}

/// Checks a Secret update: the type never changes; an immutable one keeps its entries.
pub fn validate_secret_update(new: &Secret, old: &Secret) -> ErrorList {
    let mut errors = ErrorList::new();
    if new.type_ != old.type_ {
        errors.push(FieldError::invalid(
            &FieldPath::new("type"),
            new.type_.as_str(),
            "field is immutable",
        ));
    }
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            immutable(&mut errors, "immutable");
        }
        if new.data != old.data {
            immutable(&mut errors, "data");
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_map_keys_and_duplicates() {
        let mut cm = ConfigMap::default();
        cm.data.insert("app.conf".into(), "x".into());
        cm.data.insert("bad key".into(), "x".into());
        cm.binary_data
            .insert("app.conf".into(), ByteString::from("y"));
        let errors = validate_config_map(&cm).to_string();
        assert!(errors.contains("data[bad key]: Invalid value"), "{errors}");
        assert!(errors.contains("binaryData[app.conf]: Invalid value: \"app.conf\": duplicate of key present in data"), "{errors}");
    }

    #[test]
    fn tls_secrets_need_their_keys() {
        let secret = Secret {
            type_: SECRET_TYPE_TLS.into(),
            ..Secret::default()
        };
        let errors = validate_secret(&secret).to_string();
        assert!(errors.contains("data[tls.crt]: Required value"), "{errors}");
        assert!(errors.contains("data[tls.key]: Required value"), "{errors}");
    }
}
