//! Checks of a pod's volumes, its containers' volume mounts and their `envFrom` sources.

use std::collections::HashSet;

use super::names;
use super::{ErrorList, FieldError, FieldPath};
use crate::auth::token::{MAX_EXPIRATION_SECONDS, MIN_EXPIRATION_SECONDS};
use crate::resources::pod::{
    DownwardApiVolumeFile, EnvFromSource, KeyToPath, ProjectedVolumeSource, Volume, VolumeMount,
};

/// Field paths a downward API volume file may select.
const DOWNWARD_FIELD_REFS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "metadata.labels",
    "metadata.annotations",
];

/// Checks `spec.volumes` (at `path`): names are unique DNS labels, each volume has exactly
/// one source, and every source is complete. Returns the errors and the volume names.
pub(super) fn validate_volumes<'a>(
    volumes: &'a [Volume],
    path: &FieldPath,
) -> (ErrorList, HashSet<&'a str>) {
    let mut errors = ErrorList::new();
    let mut seen = HashSet::new();
    for (i, volume) in volumes.iter().enumerate() {
        let p = path.index(i);
        let name_path = p.child("name");
        if volume.name.is_empty() {
            errors.push(FieldError::required(&name_path, ""));
        } else {
            for msg in names::is_dns1123_label(&volume.name) {
                errors.push(FieldError::invalid(&name_path, volume.name.as_str(), msg));
            }
            if !seen.insert(volume.name.as_str()) {
                errors.push(FieldError::duplicate(&name_path, volume.name.as_str()));
            }
        }
        match volume.source_count() {
            0 => errors.push(FieldError::required(
                &p,
                "must specify one of: `emptyDir`, `configMap`, `secret`, `hostPath`, `downwardAPI` or `projected`",
            )),
            1 => {}
            _ => errors.push(FieldError::forbidden(
                &p,
                "may not specify more than 1 volume type",
            )),
        }
        if let Some(source) = &volume.config_map {
            let sp = p.child("configMap");
            if source.name.is_empty() {
                errors.push(FieldError::required(&sp.child("name"), ""));
            }
            validate_mode(&mut errors, &sp.child("defaultMode"), source.default_mode);
            validate_items(&mut errors, &source.items, &sp.child("items"));
        }
        if let Some(source) = &volume.secret {
            let sp = p.child("secret");
            if source.secret_name.is_empty() {
                errors.push(FieldError::required(&sp.child("secretName"), ""));
            }
            validate_mode(&mut errors, &sp.child("defaultMode"), source.default_mode);
            validate_items(&mut errors, &source.items, &sp.child("items"));
        }
        if let Some(source) = &volume.host_path {
            let pp = p.child("hostPath").child("path");
            if source.path.is_empty() {
                errors.push(FieldError::required(&pp, ""));
            } else if has_backsteps(&source.path) {
                errors.push(FieldError::invalid(
                    &pp,
                    source.path.as_str(),
                    "must not contain '..'",
                ));
            }
        }
        if let Some(source) = &volume.downward_api {
            let sp = p.child("downwardAPI");
            validate_mode(&mut errors, &sp.child("defaultMode"), source.default_mode);
            let mut paths = HashSet::new();
            for (j, item) in source.items.iter().enumerate() {
                let ip = sp.child("items").index(j);
                validate_downward_file(&mut errors, item, &ip);
                if !item.path.is_empty() && !paths.insert(item.path.as_str()) {
                    errors.push(FieldError::duplicate(&ip.child("path"), item.path.as_str()));
                }
            }
        }
        if let Some(source) = &volume.projected {
            validate_projected(&mut errors, source, &p.child("projected"));
        }
    }
    (errors, seen)
}

/// Checks a projected volume: each source sets exactly one of `configMap`, `secret` and
/// `downwardAPI` and `serviceAccountToken` (a path, and a lifetime of 10 minutes to 2^32
/// seconds), completely, and no two files share a path.
fn validate_projected(errors: &mut ErrorList, source: &ProjectedVolumeSource, path: &FieldPath) {
    validate_mode(errors, &path.child("defaultMode"), source.default_mode);
    let mut paths = HashSet::new();
    let mut unique = |errors: &mut ErrorList, file: &str, at: &FieldPath| {
        if !file.is_empty() && !paths.insert(file.to_owned()) {
            errors.push(FieldError::invalid(at, file, "conflicting duplicate paths"));
        }
    };
    for (i, projection) in source.sources.iter().enumerate() {
        let sp = path.child("sources").index(i);
        match projection.source_count() {
            0 => errors.push(FieldError::required(
                &sp,
                "must specify exactly one of: `configMap`, `secret`, `downwardAPI` or `serviceAccountToken`",
            )),
            1 => {}
            _ => errors.push(FieldError::forbidden(
                &sp,
                "may not specify more than 1 volume type",
            )),
        }
        for (field, name, items) in [
            (
                "configMap",
                projection.config_map.as_ref().map(|c| &c.name),
                projection.config_map.as_ref().map(|c| &c.items),
            ),
            (
                "secret",
                projection.secret.as_ref().map(|s| &s.name),
                projection.secret.as_ref().map(|s| &s.items),
            ),
        ] {
            let (Some(name), Some(items)) = (name, items) else {
                continue;
            };
            let fp = sp.child(field);
            if name.is_empty() {
                errors.push(FieldError::required(&fp.child("name"), ""));
            }
            validate_items(errors, items, &fp.child("items"));
            for (j, item) in items.iter().enumerate() {
                unique(
                    errors,
                    &item.path,
                    &fp.child("items").index(j).child("path"),
                );
            }
        }
        if let Some(downward) = &projection.downward_api {
            let dp = sp.child("downwardAPI").child("items");
            for (j, item) in downward.items.iter().enumerate() {
                validate_downward_file(errors, item, &dp.index(j));
                unique(errors, &item.path, &dp.index(j).child("path"));
            }
        }
        if let Some(token) = &projection.service_account_token {
            let tp = sp.child("serviceAccountToken");
            if token.path.is_empty() {
                errors.push(FieldError::required(&tp.child("path"), ""));
            } else {
                validate_relative_path(errors, &token.path, &tp.child("path"));
                unique(errors, &token.path, &tp.child("path"));
            }
            if let Some(seconds) = token.expiration_seconds
                && !(MIN_EXPIRATION_SECONDS..=MAX_EXPIRATION_SECONDS).contains(&seconds)
            {
                errors.push(FieldError::invalid(
                    &tp.child("expirationSeconds"),
                    seconds,
                    "may not specify a duration less than 10 minutes or larger than 2^32 seconds",
                ));
            }
        }
    }
}

/// Checks a container's `volumeMounts` against the pod's volume names.
pub(super) fn validate_volume_mounts(
    mounts: &[VolumeMount],
    volumes: &HashSet<&str>,
    path: &FieldPath,
) -> ErrorList {
    let mut errors = ErrorList::new();
    let mut mount_paths = HashSet::new();
    for (i, mount) in mounts.iter().enumerate() {
        let p = path.index(i);
        if mount.name.is_empty() {
            errors.push(FieldError::required(&p.child("name"), ""));
        } else if !volumes.contains(mount.name.as_str()) {
            errors.push(FieldError::not_found(&p.child("name"), mount.name.as_str()));
        }
        let mp = p.child("mountPath");
        if mount.mount_path.is_empty() {
            errors.push(FieldError::required(&mp, ""));
        } else {
            if !mount.mount_path.starts_with('/') {
                errors.push(FieldError::invalid(
                    &mp,
                    mount.mount_path.as_str(),
                    "must be an absolute path",
                ));
            }
            let normal = mount.mount_path.trim_end_matches('/');
            if !mount_paths.insert(normal) {
                errors.push(FieldError::invalid(
                    &mp,
                    mount.mount_path.as_str(),
                    "must be unique",
                ));
            }
        }
        if !mount.sub_path.is_empty() {
            validate_relative_path(&mut errors, &mount.sub_path, &p.child("subPath"));
        }
        if !mount.sub_path_expr.is_empty() {
            let ep = p.child("subPathExpr");
            if !mount.sub_path.is_empty() {
                errors.push(FieldError::invalid(
                    &ep,
                    mount.sub_path_expr.as_str(),
                    "subPathExpr and subPath are mutually exclusive",
                ));
            }
            validate_relative_path(&mut errors, &mount.sub_path_expr, &ep);
        }
    }
    errors
}

/// Checks one `envFrom` entry: exactly one of `configMapRef` and `secretRef`, with a name,
/// and a prefix that is a valid variable name.
pub(super) fn validate_env_from(source: &EnvFromSource, path: &FieldPath) -> ErrorList {
    let mut errors = ErrorList::new();
    if !source.prefix.is_empty() {
        for msg in names::is_env_var_name(&source.prefix) {
            errors.push(FieldError::invalid(
                &path.child("prefix"),
                source.prefix.as_str(),
                msg,
            ));
        }
    }
    match (&source.config_map_ref, &source.secret_ref) {
        (None, None) => errors.push(FieldError::required(
            path,
            "must specify one of: `configMapRef` or `secretRef`",
        )),
        (Some(_), Some(_)) => errors.push(FieldError::invalid(
            path,
            "",
            "may not have more than one field specified at a time",
        )),
        _ => {}
    }
    for (field, reference) in [
        ("configMapRef", &source.config_map_ref),
        ("secretRef", &source.secret_ref),
    ] {
        if let Some(reference) = reference
            && reference.name.is_empty()
        {
            errors.push(FieldError::required(&path.child(field).child("name"), ""));
        }
    }
    errors
}

fn validate_items(errors: &mut ErrorList, items: &[KeyToPath], path: &FieldPath) {
    for (i, item) in items.iter().enumerate() {
        let p = path.index(i);
        if item.key.is_empty() {
            errors.push(FieldError::required(&p.child("key"), ""));
        }
        if item.path.is_empty() {
            errors.push(FieldError::required(&p.child("path"), ""));
        } else {
            validate_relative_path(errors, &item.path, &p.child("path"));
        }
        validate_mode(errors, &p.child("mode"), item.mode);
    }
}

fn validate_downward_file(errors: &mut ErrorList, item: &DownwardApiVolumeFile, path: &FieldPath) {
    if item.path.is_empty() {
        errors.push(FieldError::required(&path.child("path"), ""));
    } else {
        validate_relative_path(errors, &item.path, &path.child("path"));
    }
    validate_mode(errors, &path.child("mode"), item.mode);
    match (&item.field_ref, &item.resource_field_ref) {
        (None, None) => errors.push(FieldError::required(
            path,
            "must specify one of: `fieldRef` or `resourceFieldRef`",
        )),
        (Some(_), Some(_)) => errors.push(FieldError::invalid(
            path,
            "",
            "fieldRef and resourceFieldRef can not be specified simultaneously",
        )),
        _ => {}
    }
    if let Some(field_ref) = &item.field_ref {
        let fp = path.child("fieldRef").child("fieldPath");
        let field = field_ref.field_path.as_str();
        let one_key = ["metadata.labels['", "metadata.annotations['"]
            .iter()
            .any(|prefix| field.starts_with(prefix) && field.ends_with("']"));
        if field.is_empty() {
            errors.push(FieldError::required(&fp, ""));
        } else if !one_key && !DOWNWARD_FIELD_REFS.contains(&field) {
            errors.push(FieldError::not_supported(&fp, field, DOWNWARD_FIELD_REFS));
        }
    }
    if let Some(resource_ref) = &item.resource_field_ref {
        let rp = path.child("resourceFieldRef");
        if resource_ref.container_name.is_empty() {
            errors.push(FieldError::required(&rp.child("containerName"), ""));
        }
        if resource_ref.resource.is_empty() {
            errors.push(FieldError::required(&rp.child("resource"), ""));
        }
    }
}

/// A file mode must fit in `0777`.
fn validate_mode(errors: &mut ErrorList, path: &FieldPath, mode: Option<i32>) {
    if let Some(mode) = mode.filter(|m| !(0..=0o777).contains(m)) {
        errors.push(FieldError::invalid(
            path,
            mode,
            "must be a number between 0 and 0777 (octal), both inclusive",
        ));
    }
}

/// A path inside a volume: relative, and without a `..` element.
fn validate_relative_path(errors: &mut ErrorList, value: &str, path: &FieldPath) {
    if value.starts_with('/') {
        errors.push(FieldError::invalid(path, value, "must be a relative path"));
    }
    if has_backsteps(value) {
        errors.push(FieldError::invalid(path, value, "must not contain '..'"));
    }
}

fn has_backsteps(path: &str) -> bool {
    path.split('/').any(|element| element == "..")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::pod::{
        ConfigMapVolumeSource, EmptyDirVolumeSource, EnvFromRef, HostPathVolumeSource,
        SecretVolumeSource,
    };

    fn messages(errors: &ErrorList) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    fn secret(name: &str, secret_name: &str, items: Vec<KeyToPath>) -> Volume {
        Volume {
            name: name.into(),
            secret: Some(SecretVolumeSource {
                secret_name: secret_name.into(),
                items,
                default_mode: Some(0o644),
                optional: None,
            }),
            ..Volume::default()
        }
    }

    #[test]
    fn volumes_need_unique_names_one_source_and_safe_item_paths() {
        let volumes = vec![
            secret(
                "creds",
                "db",
                vec![KeyToPath {
                    key: "password".into(),
                    path: "../password".into(),
                    mode: Some(0o1777),
                }],
            ),
            secret("creds", "", vec![]),
            Volume {
                name: "both".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                config_map: Some(ConfigMapVolumeSource {
                    name: "x".into(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
            Volume {
                name: "none".into(),
                ..Volume::default()
            },
            Volume {
                name: "host".into(),
                host_path: Some(HostPathVolumeSource {
                    path: "/var/../etc".into(),
                    type_: None,
                }),
                ..Volume::default()
            },
        ];
        let (errors, names) = validate_volumes(&volumes, &FieldPath::new("spec.volumes"));
        assert_eq!(
            messages(&errors),
            [
                "spec.volumes[0].secret.items[0].path: Invalid value: \"../password\": must not contain '..'",
                "spec.volumes[0].secret.items[0].mode: Invalid value: 1023: must be a number between 0 and 0777 (octal), both inclusive",
                "spec.volumes[1].name: Duplicate value: \"creds\"",
                "spec.volumes[1].secret.secretName: Required value",
                "spec.volumes[2]: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[3]: Required value: must specify one of: `emptyDir`, `configMap`, `secret`, `hostPath`, `downwardAPI` or `projected`",
                "spec.volumes[4].hostPath.path: Invalid value: \"/var/../etc\": must not contain '..'",
            ]
        );
        assert_eq!(names.len(), 4);
    }

    #[test]
    fn mounts_name_a_volume_at_a_unique_absolute_path_with_a_relative_sub_path() {
        let volumes = HashSet::from(["creds"]);
        let mount = |name: &str, path: &str, sub: &str| VolumeMount {
            name: name.into(),
            mount_path: path.into(),
            read_only: false,
            sub_path: sub.into(),
            sub_path_expr: String::new(),
        };
        let expr = |path: &str, sub: &str, expr: &str| VolumeMount {
            sub_path_expr: expr.into(),
            ..mount("creds", path, sub)
        };
        let mounts = vec![
            mount("creds", "/etc/creds", ""),
            mount("missing", "etc/other", "/abs"),
            mount("creds", "/etc/creds/", "a/../../b"),
            expr("/logs", "", "pods/$(POD_NAME)"),
            expr("/both", "x", "$(POD_NAME)"),
            expr("/escape", "", "../$(POD_NAME)"),
        ];
        let errors = validate_volume_mounts(&mounts, &volumes, &FieldPath::new("c.volumeMounts"));
        assert_eq!(
            messages(&errors),
            [
                "c.volumeMounts[1].name: Not found: \"missing\"",
                "c.volumeMounts[1].mountPath: Invalid value: \"etc/other\": must be an absolute path",
                "c.volumeMounts[1].subPath: Invalid value: \"/abs\": must be a relative path",
                "c.volumeMounts[2].mountPath: Invalid value: \"/etc/creds/\": must be unique",
                "c.volumeMounts[2].subPath: Invalid value: \"a/../../b\": must not contain '..'",
                "c.volumeMounts[4].subPathExpr: Invalid value: \"$(POD_NAME)\": subPathExpr and subPath are mutually exclusive",
                "c.volumeMounts[5].subPathExpr: Invalid value: \"../$(POD_NAME)\": must not contain '..'",
            ]
        );
    }

    #[test]
    fn projected_sources_set_one_complete_source_with_distinct_paths_and_a_valid_token() {
        use crate::resources::pod::{
            ConfigMapProjection, DownwardApiProjection, ObjectFieldSelector, SecretProjection,
            ServiceAccountTokenProjection, VolumeProjection,
        };
        let item = |key: &str, path: &str| KeyToPath {
            key: key.into(),
            path: path.into(),
            mode: None,
        };
        let volume = Volume {
            name: "all".into(),
            projected: Some(ProjectedVolumeSource {
                default_mode: Some(0o1000),
                sources: vec![
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "app".into(),
                            items: vec![item("conf", "app/conf")],
                            optional: None,
                        }),
                        ..VolumeProjection::default()
                    },
                    VolumeProjection {
                        secret: Some(SecretProjection {
                            name: String::new(),
                            items: vec![item("key", "app/conf"), item("", "/abs")],
                            optional: None,
                        }),
                        ..VolumeProjection::default()
                    },
                    VolumeProjection {
                        downward_api: Some(DownwardApiProjection {
                            items: vec![DownwardApiVolumeFile {
                                path: "labels".into(),
                                field_ref: Some(ObjectFieldSelector {
                                    api_version: String::new(),
                                    field_path: "metadata.labels".into(),
                                }),
                                ..DownwardApiVolumeFile::default()
                            }],
                        }),
                        service_account_token: Some(ServiceAccountTokenProjection {
                            path: "labels".into(),
                            expiration_seconds: Some(599),
                            ..ServiceAccountTokenProjection::default()
                        }),
                        ..VolumeProjection::default()
                    },
                    VolumeProjection::default(),
                ],
            }),
            ..Volume::default()
        };
        let (errors, _) = validate_volumes(&[volume], &FieldPath::new("spec.volumes"));
        assert_eq!(
            messages(&errors),
            [
                "spec.volumes[0].projected.defaultMode: Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive",
                "spec.volumes[0].projected.sources[1].secret.name: Required value",
                "spec.volumes[0].projected.sources[1].secret.items[1].key: Required value",
                "spec.volumes[0].projected.sources[1].secret.items[1].path: Invalid value: \"/abs\": must be a relative path",
                "spec.volumes[0].projected.sources[1].secret.items[0].path: Invalid value: \"app/conf\": conflicting duplicate paths",
                "spec.volumes[0].projected.sources[2]: Forbidden: may not specify more than 1 volume type",
                "spec.volumes[0].projected.sources[2].serviceAccountToken.path: Invalid value: \"labels\": conflicting duplicate paths",
                "spec.volumes[0].projected.sources[2].serviceAccountToken.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes or larger than 2^32 seconds",
                "spec.volumes[0].projected.sources[3]: Required value: must specify exactly one of: `configMap`, `secret`, `downwardAPI` or `serviceAccountToken`",
            ]
        );
    }

    #[test]
    fn env_from_needs_exactly_one_named_source_and_a_valid_prefix() {
        let ok = EnvFromSource {
            prefix: "DB_".into(),
            secret_ref: Some(EnvFromRef {
                name: "db".into(),
                optional: None,
            }),
            config_map_ref: None,
        };
        assert!(validate_env_from(&ok, &FieldPath::new("e")).is_empty());
        let bad = EnvFromSource {
            prefix: "1=".into(),
            config_map_ref: Some(EnvFromRef::default()),
            secret_ref: Some(EnvFromRef {
                name: "db".into(),
                optional: None,
            }),
        };
        let errors = messages(&validate_env_from(&bad, &FieldPath::new("e")));
        assert!(
            errors[0].starts_with("e.prefix: Invalid value: \"1=\""),
            "{errors:?}"
        );
        assert_eq!(
            errors[1..],
            [
                "e: Invalid value: \"\": may not have more than one field specified at a time",
                "e.configMapRef.name: Required value",
            ]
        );
    }
}
