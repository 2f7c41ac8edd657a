//! Volume contents (pure) and their files on disk.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;

use orchestra_api::resources::{
    ByteString, ConfigMap, ConfigMapProjection, ConfigMapVolumeSource, DownwardApiProjection,
    DownwardApiVolumeFile, DownwardApiVolumeSource, EmptyDirVolumeSource, ObjectFieldSelector, Pod,
    ProjectedVolumeSource, Secret, SecretProjection, SecretVolumeSource, VolumeMount,
    VolumeProjection,
};
use orchestra_api::{ObjectMeta, Quantity};

use super::*;

fn pod() -> Pod {
    let mut pod = Pod {
        metadata: ObjectMeta::namespaced("shop", "web-1"),
        ..Pod::default()
    };
    pod.metadata.labels =
        BTreeMap::from([("app".into(), "web".into()), ("tier".into(), "1".into())]);
    pod
}

fn ctx(pod: &Pod) -> PodContext<'_> {
    PodContext {
        pod,
        pod_ip: "",
        host_ip: "",
        node_cpu: Quantity::from_value(1),
        node_memory: Quantity::from_bytes(1 << 30),
    }
}

fn sources() -> Sources {
    let secret = Secret {
        metadata: ObjectMeta::namespaced("shop", "db"),
        data: BTreeMap::from([
            ("password".into(), ByteString::from("s3cret")),
            ("user".into(), ByteString::from("admin")),
        ]),
        ..Secret::default()
    };
    let config = ConfigMap {
        metadata: ObjectMeta::namespaced("shop", "settings"),
        data: BTreeMap::from([("app.conf".into(), "level=debug\n".into())]),
        binary_data: BTreeMap::from([("logo".into(), ByteString(vec![0, 159, 255]))]),
        ..ConfigMap::default()
    };
    Sources {
        config_maps: BTreeMap::from([("settings".into(), Some(config))]),
        secrets: BTreeMap::from([("db".into(), Some(secret)), ("gone".into(), None)]),
        tokens: BTreeMap::new(),
    }
}

fn secret_volume(secret: &str, items: Vec<KeyToPath>, optional: Option<bool>) -> Volume {
    Volume {
        name: "creds".into(),
        secret: Some(SecretVolumeSource {
            secret_name: secret.into(),
            items,
            default_mode: Some(0o400),
            optional,
        }),
        ..Volume::default()
    }
}

fn file(path: &str, data: &[u8], mode: u32) -> ProjectedFile {
    ProjectedFile {
        path: path.into(),
        data: data.to_vec(),
        mode,
    }
}

#[test]
fn secret_and_config_map_volumes_project_every_key_or_the_items() {
    let pod = pod();
    let all = volume_content(&ctx(&pod), &secret_volume("db", vec![], None), &sources());
    assert_eq!(
        all,
        Ok(VolumeContent::Projected(vec![
            file("password", b"s3cret", 0o400),
            file("user", b"admin", 0o400),
        ]))
    );
    let items = vec![KeyToPath {
        key: "password".into(),
        path: "db/pass".into(),
        mode: Some(0o600),
    }];
    let some = volume_content(&ctx(&pod), &secret_volume("db", items, None), &sources());
    assert_eq!(
        some,
        Ok(VolumeContent::Projected(vec![file(
            "db/pass", b"s3cret", 0o600
        )]))
    );
    let config = Volume {
        name: "conf".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: "settings".into(),
            default_mode: None,
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    };
    assert_eq!(
        volume_content(&ctx(&pod), &config, &sources()),
        Ok(VolumeContent::Projected(vec![
            file("app.conf", b"level=debug\n", 0o644),
            file("logo", &[0, 159, 255], 0o644),
        ]))
    );
}

#[test]
fn missing_objects_and_keys_fail_unless_optional() {
    let pod = pod();
    let err =
        volume_content(&ctx(&pod), &secret_volume("gone", vec![], None), &sources()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "MountVolume.SetUp failed for volume \"creds\" : secret \"gone\" not found"
    );
    let items = vec![KeyToPath {
        key: "pin".into(),
        path: "pin".into(),
        mode: None,
    }];
    let err = volume_content(
        &ctx(&pod),
        &secret_volume("db", items.clone(), None),
        &sources(),
    )
    .unwrap_err();
    assert_eq!(err.message, "references non-existent secret key: pin");
    for volume in [
        secret_volume("gone", vec![], Some(true)),
        secret_volume("db", items, Some(true)),
    ] {
        assert_eq!(
            volume_content(&ctx(&pod), &volume, &sources()),
            Ok(VolumeContent::Projected(vec![]))
        );
    }
}

#[test]
fn downward_api_files_hold_pod_fields() {
    let pod = pod();
    let volume = Volume {
        name: "info".into(),
        downward_api: Some(DownwardApiVolumeSource {
            items: vec![
                DownwardApiVolumeFile {
                    path: "labels".into(),
                    field_ref: Some(ObjectFieldSelector {
                        api_version: "v1".into(),
                        field_path: "metadata.labels".into(),
                    }),
                    ..DownwardApiVolumeFile::default()
                },
                DownwardApiVolumeFile {
                    path: "name".into(),
                    field_ref: Some(ObjectFieldSelector {
                        api_version: "v1".into(),
                        field_path: "metadata.name".into(),
                    }),
                    mode: Some(0o440),
                    ..DownwardApiVolumeFile::default()
                },
            ],
            default_mode: Some(0o644),
        }),
        ..Volume::default()
    };
    assert_eq!(
        volume_content(&ctx(&pod), &volume, &sources()),
        Ok(VolumeContent::Projected(vec![
            file("labels", b"app=\"web\"\ntier=\"1\"", 0o644),
            file("name", b"web-1", 0o440),
        ]))
    );
}

fn projected(sources: Vec<VolumeProjection>) -> Volume {
    Volume {
        name: "all".into(),
        projected: Some(ProjectedVolumeSource {
            sources,
            default_mode: Some(0o440),
        }),
        ..Volume::default()
    }
}

fn project_secret(name: &str, optional: Option<bool>) -> VolumeProjection {
    VolumeProjection {
        secret: Some(SecretProjection {
            name: name.into(),
            items: vec![],
            optional,
        }),
        ..VolumeProjection::default()
    }
}

#[test]
fn projected_volumes_put_several_sources_in_one_directory() {
    let pod = pod();
    let volume = projected(vec![
        VolumeProjection {
            config_map: Some(ConfigMapProjection {
                name: "settings".into(),
                items: vec![KeyToPath {
                    key: "app.conf".into(),
                    path: "conf/app.conf".into(),
                    mode: Some(0o600),
                }],
                optional: None,
            }),
            ..VolumeProjection::default()
        },
        project_secret("db", None),
        VolumeProjection {
            downward_api: Some(DownwardApiProjection {
                items: vec![DownwardApiVolumeFile {
                    path: "labels".into(),
                    field_ref: Some(ObjectFieldSelector {
                        api_version: "v1".into(),
                        field_path: "metadata.labels".into(),
                    }),
                    ..DownwardApiVolumeFile::default()
                }],
            }),
            ..VolumeProjection::default()
        },
        project_secret("gone", Some(true)),
    ]);
    assert_eq!(
        volume_content(&ctx(&pod), &volume, &sources()),
        Ok(VolumeContent::Projected(vec![
            file("conf/app.conf", b"level=debug\n", 0o600),
            file("labels", b"app=\"web\"\ntier=\"1\"", 0o440),
            file("password", b"s3cret", 0o440),
            file("user", b"admin", 0o440),
        ]))
    );

    // A required source that is missing fails the volume, naming it.
    let missing = projected(vec![
        project_secret("db", None),
        project_secret("gone", None),
    ]);
    let err = volume_content(&ctx(&pod), &missing, &sources()).unwrap_err();
    assert_eq!(err.volume, "all");
    assert_eq!(err.message, "secret \"gone\" not found");
    assert!(is_atomic(&missing));
}

#[test]
fn sub_path_expr_expands_the_containers_variables() {
    let mount = |sub_path: &str, expr: &str| VolumeMount {
        name: "logs".into(),
        mount_path: "/logs".into(),
        sub_path: sub_path.into(),
        sub_path_expr: expr.into(),
        ..VolumeMount::default()
    };
    let container = |mounts| Container {
        name: "main".into(),
        volume_mounts: mounts,
        ..Container::default()
    };
    let env = vec![
        ("POD_NAME".to_owned(), "web-1".to_owned()),
        ("EMPTY".to_owned(), String::new()),
        ("UP".to_owned(), "..".to_owned()),
    ];
    let ok = container(vec![
        mount("plain", ""),
        mount("", "pods/$(POD_NAME)/$$x"),
        mount("", ""),
    ]);
    assert_eq!(
        sub_paths(&ok, &env).unwrap(),
        ["plain", "pods/web-1/$x", ""]
    );
    let missing = container(vec![mount("", "$(NOPE)/$(EMPTY)/$(POD_NAME)")]);
    assert_eq!(
        sub_paths(&missing, &env).unwrap_err(),
        "subPathExpr \"$(NOPE)/$(EMPTY)/$(POD_NAME)\" of volumeMount \"logs\" of container \"main\": missing value for EMPTY, NOPE"
    );
    let escapes = container(vec![mount("", "$(UP)/etc")]);
    let err = sub_paths(&escapes, &env).unwrap_err();
    assert!(
        err.ends_with("expands to \"../etc\", which must be a relative path without '..'"),
        "{err}"
    );
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn projected_files_are_swapped_atomically_with_their_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let pod_dir = pod_dir(tmp.path(), "uid-1").unwrap();
    let first = VolumeContent::Projected(vec![
        file("password", b"one", 0o400),
        file("nested/user", b"admin", 0o640),
    ]);
    let dir = materialize(&pod_dir, "creds", &first).unwrap();
    assert_eq!(dir, pod_dir.join("creds"));
    assert_eq!(mode(&pod_dir), 0o700);
    assert_eq!(fs::read(dir.join("password")).unwrap(), b"one");
    assert_eq!(mode(&dir.join("password")), 0o400);
    assert_eq!(fs::read(dir.join("nested/user")).unwrap(), b"admin");
    assert_eq!(mode(&dir.join("nested/user")), 0o640);
    assert!(
        fs::symlink_metadata(dir.join("password"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let generation = fs::read_link(dir.join(DATA_LINK)).unwrap();

    // The same content again: nothing is rewritten.
    materialize(&pod_dir, "creds", &first).unwrap();
    assert_eq!(fs::read_link(dir.join(DATA_LINK)).unwrap(), generation);

    // New content replaces the old generation; a dropped key disappears.
    let second = VolumeContent::Projected(vec![file("password", b"two", 0o400)]);
    materialize(&pod_dir, "creds", &second).unwrap();
    assert_eq!(fs::read(dir.join("password")).unwrap(), b"two");
    assert!(fs::symlink_metadata(dir.join("nested")).is_err());
    assert!(!dir.join(&generation).exists());
    let hidden: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".."))
        .collect();
    assert_eq!(hidden.len(), 2, "..data and one generation: {hidden:?}");

    remove_pod_dir(&pod_dir).unwrap();
    assert!(!pod_dir.exists());
    remove_pod_dir(&pod_dir).unwrap();
}

#[test]
fn empty_dirs_host_paths_and_mounts() {
    let tmp = tempfile::tempdir().unwrap();
    let pod_dir = pod_dir(tmp.path(), "uid-2").unwrap();
    let scratch = materialize(&pod_dir, "scratch", &VolumeContent::EmptyDir).unwrap();
    assert!(scratch.is_dir());
    assert_eq!(mode(&scratch), 0o777);

    let host = tmp.path().join("host/logs");
    let created = VolumeContent::HostPath {
        path: host.clone(),
        type_: HostPathType::DirectoryOrCreate,
    };
    assert_eq!(materialize(&pod_dir, "logs", &created).unwrap(), host);
    assert!(host.is_dir());
    let wrong = VolumeContent::HostPath {
        path: host.clone(),
        type_: HostPathType::File,
    };
    let err = materialize(&pod_dir, "logs", &wrong).unwrap_err();
    assert!(err.message.contains("is not a file"), "{err}");

    let volumes = vec![
        Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
        secret_volume("db", vec![], None),
    ];
    let container = Container {
        volume_mounts: vec![
            VolumeMount {
                name: "scratch".into(),
                mount_path: "/scratch".into(),
                read_only: false,
                sub_path: "web/cache".into(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "creds".into(),
                mount_path: "/etc/creds".into(),
                read_only: false,
                sub_path: String::new(),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "creds".into(),
                mount_path: "/etc/password".into(),
                read_only: false,
                sub_path: "password".into(),
                ..VolumeMount::default()
            },
        ],
        name: "main".into(),
        ..Container::default()
    };
    let creds = materialize(
        &pod_dir,
        "creds",
        &VolumeContent::Projected(vec![file("password", b"one", 0o400)]),
    )
    .unwrap();
    let paths = BTreeMap::from([
        ("scratch".to_owned(), scratch.clone()),
        ("creds".to_owned(), creds.clone()),
    ]);
    let subs = sub_paths(&container, &[]).unwrap();
    let mounts = container_mounts(&container, &volumes, &paths, &pod_dir, &subs).unwrap();
    let snapshot = subpath::snapshot_path(&pod_dir, "main", 2);
    assert_eq!(
        mounts,
        vec![
            Mount {
                container_path: "/scratch".into(),
                host_path: scratch.join("web/cache"),
                read_only: false,
            },
            Mount {
                container_path: "/etc/creds".into(),
                host_path: pod_dir.join("creds"),
                read_only: true,
            },
            Mount {
                container_path: "/etc/password".into(),
                host_path: snapshot.clone(),
                read_only: true,
            },
        ]
    );
    assert!(scratch.join("web/cache").is_dir());
    // The subPath of the secret volume is a copy: an update of the volume does not reach it.
    materialize(
        &pod_dir,
        "creds",
        &VolumeContent::Projected(vec![file("password", b"two", 0o400)]),
    )
    .unwrap();
    assert_eq!(fs::read(creds.join("password")).unwrap(), b"two");
    assert_eq!(fs::read(&snapshot).unwrap(), b"one");
}

#[test]
fn a_uid_that_is_not_a_plain_name_is_refused() {
    let root = Path::new("/var/lib/agent");
    assert_eq!(pod_dir(root, "abc").unwrap(), root.join("abc"));
    for bad in ["", "..", "a/b", "/etc"] {
        assert!(pod_dir(root, bad).is_err(), "{bad}");
    }
}
