//! Exact environments for the sources kubelet supports.

use std::collections::BTreeMap;

use orchestra_api::resources::{
    ByteString, ConfigMap, Container, EnvFromRef, EnvFromSource, EnvVar, EnvVarSource, KeySelector,
    ObjectFieldSelector, Pod, ResourceFieldSelector, Secret,
};
use orchestra_api::{ObjectMeta, Quantity};

use super::*;

fn pod() -> Pod {
    let mut pod = Pod {
        metadata: ObjectMeta::namespaced("shop", "web-1"),
        ..Pod::default()
    };
    pod.metadata.uid = "u-1".into();
    pod.metadata.labels = BTreeMap::from([("app".into(), "web".into())]);
    pod.metadata.annotations = BTreeMap::from([("note".into(), "a \"b\"".into())]);
    pod.spec.node_name = "node-a".into();
    pod.spec.service_account_name = "robot".into();
    pod
}

fn ctx(pod: &Pod) -> PodContext<'_> {
    PodContext {
        pod,
        pod_ip: "10.0.0.7",
        host_ip: "192.168.1.2",
        node_cpu: Quantity::from_value(4),
        node_memory: Quantity::from_bytes(8 << 30),
    }
}

fn sources() -> Sources {
    let config = ConfigMap {
        metadata: ObjectMeta::namespaced("shop", "settings"),
        data: BTreeMap::from([
            ("LOG_LEVEL".into(), "debug".into()),
            ("mode".into(), "fast".into()),
            ("bad key".into(), "skipped".into()),
            ("1ST".into(), "skipped too".into()),
        ]),
        ..ConfigMap::default()
    };
    let secret = Secret {
        metadata: ObjectMeta::namespaced("shop", "db"),
        data: BTreeMap::from([
            ("user".into(), ByteString::from("admin")),
            ("password".into(), ByteString::from("s3cret")),
        ]),
        ..Secret::default()
    };
    Sources {
        config_maps: BTreeMap::from([("settings".into(), Some(config)), ("absent".into(), None)]),
        secrets: BTreeMap::from([("db".into(), Some(secret)), ("gone".into(), None)]),
        tokens: BTreeMap::new(),
    }
}

fn from(source: EnvVarSource, name: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: None,
        value_from: Some(source),
    }
}

fn field(name: &str, path: &str) -> EnvVar {
    from(
        EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: "v1".into(),
                field_path: path.into(),
            }),
            ..EnvVarSource::default()
        },
        name,
    )
}

fn key(name: &str, object: &str, key: &str, optional: Option<bool>, secret: bool) -> EnvVar {
    let selector = Some(KeySelector {
        name: object.into(),
        key: key.into(),
        optional,
    });
    let source = if secret {
        EnvVarSource {
            secret_key_ref: selector,
            ..EnvVarSource::default()
        }
    } else {
        EnvVarSource {
            config_map_key_ref: selector,
            ..EnvVarSource::default()
        }
    };
    from(source, name)
}

fn resource(name: &str, resource: &str, divisor: Option<&str>) -> EnvVar {
    from(
        EnvVarSource {
            resource_field_ref: Some(ResourceFieldSelector {
                container_name: String::new(),
                resource: resource.into(),
                divisor: divisor.map(|d| Quantity::parse(d).unwrap()),
            }),
            ..EnvVarSource::default()
        },
        name,
    )
}

fn env_from(prefix: &str, config_map: Option<&str>, secret: Option<&str>) -> EnvFromSource {
    let reference = |name: &str| EnvFromRef {
        name: name.into(),
        optional: None,
    };
    EnvFromSource {
        prefix: prefix.into(),
        config_map_ref: config_map.map(reference),
        secret_ref: secret.map(reference),
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn fields_keys_and_env_from_resolve_in_kubelet_order() {
    let pod = pod();
    let container = Container {
        name: "web".into(),
        env_from: vec![
            env_from("", Some("settings"), None),
            env_from("DB_", None, Some("db")),
        ],
        env: vec![
            field("POD", "metadata.name"),
            field("NS", "metadata.namespace"),
            field("UID", "metadata.uid"),
            field("APP", "metadata.labels['app']"),
            field("NOTE", "metadata.annotations['note']"),
            field("NO_LABEL", "metadata.labels['nope']"),
            field("NODE", "spec.nodeName"),
            field("SA", "spec.serviceAccountName"),
            field("IP", "status.podIP"),
            field("HOST_IP", "status.hostIP"),
            key("PASSWORD", "db", "password", None, true),
            key("LEVEL", "settings", "LOG_LEVEL", None, false),
            // Redefining an envFrom variable replaces it in place.
            EnvVar::new("mode", "slow"),
            EnvVar::new(
                "URL",
                "pg://$(DB_user):$(PASSWORD)@$(HOST_IP)/$(UNSET)$$(POD)",
            ),
        ],
        ..Container::default()
    };
    let injected = pairs(&[("WEB_SERVICE_HOST", "10.96.0.9"), ("LOG_LEVEL", "info")]);
    let env = resolve_env(&ctx(&pod), &container, &sources(), injected).unwrap();
    assert_eq!(
        env,
        pairs(&[
            ("WEB_SERVICE_HOST", "10.96.0.9"),
            ("LOG_LEVEL", "debug"),
            ("mode", "slow"),
            ("DB_password", "s3cret"),
            ("DB_user", "admin"),
            ("POD", "web-1"),
            ("NS", "shop"),
            ("UID", "u-1"),
            ("APP", "web"),
            ("NOTE", "a \"b\""),
            ("NO_LABEL", ""),
            ("NODE", "node-a"),
            ("SA", "robot"),
            ("IP", "10.0.0.7"),
            ("HOST_IP", "192.168.1.2"),
            ("PASSWORD", "s3cret"),
            ("LEVEL", "debug"),
            ("URL", "pg://admin:s3cret@192.168.1.2/$(UNSET)$(POD)"),
        ])
    );
}

#[test]
fn value_from_results_are_not_expanded_but_later_values_see_them() {
    let pod = pod();
    let mut settings = sources();
    if let Some(Some(map)) = settings.config_maps.get_mut("settings") {
        map.data.insert("TEMPLATE".into(), "$(POD)".into());
    }
    let container = Container {
        env: vec![
            field("POD", "metadata.name"),
            key("RAW", "settings", "TEMPLATE", None, false),
            EnvVar::new("BOTH", "$(RAW)+$(POD)"),
            EnvVar::new("FORWARD", "$(LATER)"),
            EnvVar::new("LATER", "x"),
        ],
        ..Container::default()
    };
    let env = resolve_env(&ctx(&pod), &container, &settings, Vec::new()).unwrap();
    assert_eq!(
        env,
        pairs(&[
            ("POD", "web-1"),
            ("RAW", "$(POD)"),
            ("BOTH", "$(POD)+web-1"),
            ("FORWARD", "$(LATER)"),
            ("LATER", "x"),
        ])
    );
}

#[test]
fn missing_required_objects_and_keys_are_errors_in_kubelets_words() {
    let pod = pod();
    let case = |var: EnvVar| {
        let container = Container {
            env: vec![var],
            ..Container::default()
        };
        resolve_env(&ctx(&pod), &container, &sources(), Vec::new())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        case(key("P", "gone", "password", None, true)),
        "secret \"gone\" not found"
    );
    assert_eq!(
        case(key("P", "db", "pin", Some(false), true)),
        "couldn't find key pin in Secret shop/db"
    );
    assert_eq!(
        case(key("P", "absent", "k", None, false)),
        "configmap \"absent\" not found"
    );
    assert_eq!(
        case(key("P", "settings", "k", None, false)),
        "couldn't find key k in ConfigMap shop/settings"
    );
    let container = Container {
        env_from: vec![env_from("", None, Some("gone"))],
        ..Container::default()
    };
    let err = resolve_env(&ctx(&pod), &container, &sources(), Vec::new()).unwrap_err();
    assert_eq!(err.to_string(), "secret \"gone\" not found");
}

#[test]
fn optional_references_to_missing_things_leave_the_variable_unset() {
    let pod = pod();
    let mut optional_from = env_from("", Some("absent"), None);
    if let Some(r) = optional_from.config_map_ref.as_mut() {
        r.optional = Some(true);
    }
    let container = Container {
        env_from: vec![optional_from],
        env: vec![
            key("A", "gone", "x", Some(true), true),
            key("B", "db", "missing", Some(true), true),
            key("C", "settings", "missing", Some(true), false),
            EnvVar::new("D", "$(A)"),
        ],
        ..Container::default()
    };
    let env = resolve_env(&ctx(&pod), &container, &sources(), Vec::new()).unwrap();
    assert_eq!(env, pairs(&[("D", "$(A)")]));
}

#[test]
fn resource_references_divide_and_round_up_with_node_capacity_for_unset_limits() {
    let pod = pod();
    let mut container = Container::default();
    container.resources.limits = BTreeMap::from([
        ("cpu".into(), Quantity::parse("250m").unwrap()),
        ("memory".into(), Quantity::parse("129Mi").unwrap()),
    ]);
    container.resources.requests =
        BTreeMap::from([("cpu".into(), Quantity::parse("100m").unwrap())]);
    container.env = vec![
        resource("CPU", "limits.cpu", None),
        resource("CPU_M", "limits.cpu", Some("1m")),
        resource("MEM_MI", "limits.memory", Some("1Mi")),
        resource("MEM_GI", "limits.memory", Some("1Gi")),
        resource("REQ_CPU_M", "requests.cpu", Some("1m")),
        resource("REQ_MEM", "requests.memory", None),
    ];
    let env = resolve_env(&ctx(&pod), &container, &sources(), Vec::new()).unwrap();
    assert_eq!(
        env,
        pairs(&[
            ("CPU", "1"),
            ("CPU_M", "250"),
            ("MEM_MI", "129"),
            ("MEM_GI", "1"),
            ("REQ_CPU_M", "100"),
            ("REQ_MEM", "0"),
        ])
    );
    let unlimited = Container {
        env: vec![
            resource("CPU", "limits.cpu", None),
            resource("MEM", "limits.memory", Some("1Gi")),
        ],
        ..Container::default()
    };
    let env = resolve_env(&ctx(&pod), &unlimited, &sources(), Vec::new()).unwrap();
    assert_eq!(env, pairs(&[("CPU", "4"), ("MEM", "8")]));
}

#[test]
fn commands_and_args_expand_against_the_final_environment() {
    let container = Container {
        command: vec!["/bin/$(SHELL)".into(), "-c".into()],
        args: vec!["echo $(GREETING) $$(GREETING) $(NOPE)".into()],
        ..Container::default()
    };
    let env = pairs(&[("SHELL", "sh"), ("GREETING", "hi")]);
    let (command, args) = expand_command(&container, &env);
    assert_eq!(command, ["/bin/sh", "-c"]);
    assert_eq!(args, ["echo hi $(GREETING) $(NOPE)"]);
}

#[test]
fn whole_label_maps_use_the_downward_api_format() {
    let pod = pod();
    assert_eq!(
        field_value(&ctx(&pod), "metadata.annotations").as_deref(),
        Some("note=\"a \\\"b\\\"\"")
    );
    assert_eq!(
        field_value(&ctx(&pod), "metadata.labels").as_deref(),
        Some("app=\"web\"")
    );
    assert_eq!(field_value(&ctx(&pod), "spec.hostname"), None);
}
