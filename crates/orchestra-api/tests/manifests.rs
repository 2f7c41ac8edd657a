//! Manifests as people write them for Kubernetes: a real-world multi-document file read
//! unmodified, every object read back with its fields; and bad input of every kind, each a
//! clear error naming the document and the field, never a panic.

use std::collections::BTreeMap;

use orchestra_api::manifest::{self, DocumentErrorKind, Manifest, ManifestOptions};
use orchestra_api::resources::{ConfigMap, Deployment, Pod};
use orchestra_api::resources::{
    DeploymentStrategyType, EnvVar, KeySelector, Namespace, NodeSelectorOperator, Protocol,
    PullPolicy, RestartPolicy, Service, ServiceType, SessionAffinity, TaintEffect,
    TolerationOperator, UnsatisfiableConstraintAction,
};
use orchestra_api::{DecodeError, IntOrString, Quantity, Scheme};
use proptest::prelude::*;

const ONLINE_SHOP: &str = include_str!("data/online-shop.yaml");

fn scheme_with_config_map() -> Scheme {
    Scheme::new()
}

fn parse_shop() -> Manifest {
    manifest::parse(
        &scheme_with_config_map(),
        ONLINE_SHOP,
        &ManifestOptions::default(),
    )
    .unwrap_or_else(|e| panic!("the shop manifest should parse:\n{e}"))
}

fn q(s: &str) -> Quantity {
    s.parse().unwrap()
}

fn deployment<'a>(m: &'a Manifest, name: &str) -> &'a Deployment {
    m.objects_of::<Deployment>()
        .find(|d| d.metadata.name == name)
        .unwrap()
}

fn service<'a>(m: &'a Manifest, name: &str) -> &'a Service {
    m.objects_of::<Service>()
        .find(|s| s.metadata.name == name)
        .unwrap()
}

#[test]
fn an_unknown_kind_is_a_clear_error() {
    let shop = ONLINE_SHOP.replace("kind: ConfigMap", "kind: ConfigMapp");
    let err = manifest::parse(&Scheme::new(), &shop, &ManifestOptions::default()).unwrap_err();
    assert_eq!(err.errors.len(), 1, "{err}");
    assert_eq!(
        err.to_string(),
        "document 2 (ConfigMapp \"api-config\"): no kind \"ConfigMapp\" is registered for apiVersion \"v1\"; \
         the kinds of \"v1\" are: Namespace, Node, Pod, Service, Endpoints, Event, ConfigMap, Secret, ServiceAccount"
    );
    assert!(matches!(
        err.errors[0].kind,
        DocumentErrorKind::Decode(DecodeError::UnknownKind { .. })
    ));
}

#[test]
fn every_object_is_read_in_file_order() {
    let m = parse_shop();
    let order: Vec<String> = m.objects.iter().map(|o| o.location.to_string()).collect();
    assert_eq!(
        order,
        vec![
            "document 1 (Namespace \"shop\")",
            "document 2 (ConfigMap \"api-config\")",
            "document 3 (Deployment \"redis\")",
            "document 4 (Service \"redis\")",
            "document 5 (Deployment \"api\")",
            "document 6 (Service \"api\")",
            "document 7 (Deployment \"storefront\")",
            "document 8 (Service \"storefront\")",
        ]
    );
    let ns = m.objects_of::<Namespace>().next().unwrap();
    assert_eq!(ns.metadata.labels["team"], "commerce");
    let cm = m.objects_of::<ConfigMap>().next().unwrap();
    assert_eq!(cm.data["LOG_LEVEL"], "info");
    assert_eq!(cm.data["settings.toml"], "[cache]\nttl_seconds = 300\n");
}

#[test]
fn fields_orchestra_does_not_model_are_warnings_by_path() {
    let m = parse_shop();
    let mut warnings: Vec<String> = m.warnings().map(|w| w.to_string()).collect();
    warnings.sort();
    assert_eq!(
        warnings,
        vec!["document 5 (Deployment \"api\"): spec.template.spec.securityContext: unknown field"]
    );
    // Volumes are modelled: they parse, they are not warnings.
    let api = &deployment(&m, "api").spec.template.spec;
    assert_eq!(api.volumes[0].name, "config");
    assert_eq!(
        api.volumes[0].config_map.as_ref().map(|c| c.name.as_str()),
        Some("api-config")
    );
    assert_eq!(api.containers[0].volume_mounts[0].mount_path, "/etc/api");
    let strict = ManifestOptions {
        strict: true,
        ..ManifestOptions::default()
    };
    let err = manifest::parse(&scheme_with_config_map(), ONLINE_SHOP, &strict).unwrap_err();
    assert_eq!(err.errors.len(), 1);
    assert_eq!(err.errors[0].location.document, 5);
    let text = err.to_string();
    assert!(
        text.contains("spec.template.spec.securityContext: unknown field"),
        "{text}"
    );
}

#[test]
fn the_redis_deployment_and_service() {
    let m = parse_shop();
    let redis = deployment(&m, "redis");
    assert_eq!(redis.metadata.namespace, "shop");
    assert_eq!(redis.spec.replicas, Some(1));
    let strategy = redis.spec.strategy.as_ref().unwrap();
    assert_eq!(strategy.type_, Some(DeploymentStrategyType::Recreate));
    let c = &redis.spec.template.spec.containers[0];
    assert_eq!(c.image, "redis:7.2-alpine");
    assert_eq!(c.args, ["--save", "", "--appendonly", "no"]);
    assert_eq!(c.ports[0].name, "redis");
    assert_eq!(c.ports[0].container_port, 6379);
    assert_eq!(c.resources.requests["cpu"].milli_value(), 100);
    assert_eq!(c.resources.requests["memory"].value(), 128 << 20);
    assert_eq!(c.resources.limits["memory"], q("256Mi"));
    let readiness = c.readiness_probe.as_ref().unwrap();
    assert_eq!(
        readiness.exec.as_ref().unwrap().command,
        ["redis-cli", "ping"]
    );
    assert_eq!(readiness.period_seconds, Some(5));
    let liveness = c.liveness_probe.as_ref().unwrap();
    assert_eq!(
        liveness.tcp_socket.as_ref().unwrap().port,
        IntOrString::from("redis")
    );
    assert_eq!(liveness.initial_delay_seconds, Some(15));

    let svc = service(&m, "redis");
    assert_eq!(svc.spec.selector["app.kubernetes.io/name"], "redis");
    assert_eq!(svc.spec.ports[0].port, 6379);
    assert_eq!(svc.spec.ports[0].target_port, Some("redis".into()));
    assert_eq!(svc.spec.type_, None, "returned as written, not defaulted");
}

#[test]
fn the_api_deployment_with_env_probes_and_scheduling() {
    let m = parse_shop();
    let api = deployment(&m, "api");
    assert_eq!(
        api.metadata.annotations["deployment.kubernetes.io/revision"],
        "3"
    );
    assert_eq!(api.spec.replicas, Some(3));
    assert_eq!(api.spec.revision_history_limit, Some(5));
    assert_eq!(api.spec.min_ready_seconds, Some(10));
    let rolling = api
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .unwrap();
    assert_eq!(rolling.max_surge, Some(IntOrString::Int(1)));
    assert_eq!(rolling.max_unavailable, Some(IntOrString::Int(0)));

    let template = &api.spec.template;
    assert_eq!(template.metadata.labels["tier"], "backend");
    assert_eq!(
        template.metadata.annotations["prometheus.io/scrape"],
        "true"
    );
    let spec = &template.spec;
    assert_eq!(spec.termination_grace_period_seconds, Some(45));
    assert_eq!(spec.priority_class_name, "shop-critical");
    assert_eq!(spec.init_containers[0].name, "wait-for-redis");
    assert_eq!(
        spec.init_containers[0].command,
        ["sh", "-c", "until nc -z redis 6379; do sleep 1; done"]
    );

    let c = &spec.containers[0];
    assert_eq!(c.image, "registry.example.com/shop/api:2.14.1");
    assert_eq!(c.image_pull_policy, Some(PullPolicy::IfNotPresent));
    assert_eq!(c.command, ["/app/api"]);
    assert_eq!(c.args, ["--listen=:8080", "--metrics=:9090"]);
    assert_eq!(c.working_dir, "/app");
    assert_eq!(c.ports.len(), 2);
    assert_eq!(c.ports[0].protocol, Some(Protocol::Tcp));
    assert_eq!(
        (c.ports[1].name.as_str(), c.ports[1].container_port),
        ("metrics", 9090)
    );

    let env: BTreeMap<&str, &EnvVar> = c.env.iter().map(|e| (e.name.as_str(), e)).collect();
    assert_eq!(
        env["REDIS_URL"].value.as_deref(),
        Some("redis://redis.shop.svc:6379")
    );
    let field_path = |name: &str| {
        env[name]
            .value_from
            .as_ref()
            .and_then(|f| f.field_ref.as_ref())
            .map(|f| f.field_path.clone())
    };
    assert_eq!(field_path("POD_NAME").as_deref(), Some("metadata.name"));
    assert_eq!(field_path("POD_IP").as_deref(), Some("status.podIP"));
    let from = |name: &str| env[name].value_from.clone().unwrap();
    assert_eq!(
        from("LOG_LEVEL").config_map_key_ref,
        Some(KeySelector {
            name: "api-config".into(),
            key: "LOG_LEVEL".into(),
            optional: None
        })
    );
    assert_eq!(
        from("DATABASE_PASSWORD").secret_key_ref.unwrap().key,
        "password"
    );
    assert_eq!(
        from("GOMAXPROCS").resource_field_ref.unwrap().resource,
        "limits.cpu"
    );

    assert_eq!(c.resources.requests["cpu"], q("250m"));
    assert_eq!(c.resources.limits["cpu"].milli_value(), 1000);
    assert_eq!(c.resources.limits["memory"].to_string(), "512Mi");

    let readiness = c.readiness_probe.as_ref().unwrap();
    let get = readiness.http_get.as_ref().unwrap();
    assert_eq!(
        (get.path.as_str(), &get.port),
        ("/healthz/ready", &IntOrString::from("http"))
    );
    assert_eq!(
        (
            readiness.initial_delay_seconds,
            readiness.period_seconds,
            readiness.failure_threshold
        ),
        (Some(5), Some(10), Some(3))
    );
    let liveness = c.liveness_probe.as_ref().unwrap();
    let get = liveness.http_get.as_ref().unwrap();
    assert_eq!(get.port, IntOrString::Int(8080));
    assert_eq!(
        (
            get.http_headers[0].name.as_str(),
            get.http_headers[0].value.as_str()
        ),
        ("X-Probe", "liveness")
    );
    assert_eq!(liveness.timeout_seconds, Some(2));
    assert_eq!(
        c.startup_probe.as_ref().unwrap().failure_threshold,
        Some(30)
    );

    let affinity = spec.affinity.as_ref().unwrap();
    let node = affinity.node_affinity.as_ref().unwrap();
    let required = &node
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .unwrap()
        .node_selector_terms[0]
        .match_expressions[0];
    assert_eq!(
        (
            required.key.as_str(),
            required.operator,
            required.values.as_slice()
        ),
        (
            "kubernetes.io/os",
            NodeSelectorOperator::In,
            ["linux".to_owned()].as_slice()
        )
    );
    let preferred = &node.preferred_during_scheduling_ignored_during_execution[0];
    assert_eq!(preferred.weight, 50);
    assert_eq!(
        preferred.preference.match_expressions[0].operator,
        NodeSelectorOperator::Gt
    );
    let anti = &affinity
        .pod_anti_affinity
        .as_ref()
        .unwrap()
        .preferred_during_scheduling_ignored_during_execution[0];
    assert_eq!(anti.weight, 100);
    assert_eq!(
        anti.pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );

    assert_eq!(spec.tolerations.len(), 2);
    assert_eq!(spec.tolerations[0].effect, Some(TaintEffect::NoSchedule));
    assert_eq!(
        spec.tolerations[1].operator,
        Some(TolerationOperator::Exists)
    );
    assert_eq!(spec.tolerations[1].toleration_seconds, Some(60));
    let spread = &spec.topology_spread_constraints[0];
    assert_eq!(spread.max_skew, 1);
    assert_eq!(spread.topology_key, "topology.kubernetes.io/zone");
    assert_eq!(
        spread.when_unsatisfiable,
        UnsatisfiableConstraintAction::ScheduleAnyway
    );

    let svc = service(&m, "api");
    assert_eq!(svc.spec.type_, Some(ServiceType::ClusterIP));
    assert_eq!(svc.spec.ports[1].target_port, Some(IntOrString::Int(9090)));
}

#[test]
fn the_storefront_flow_style_and_numeric_quantities() {
    let m = parse_shop();
    let web = deployment(&m, "storefront");
    assert_eq!(
        web.spec.selector.match_expressions[0].values,
        ["storefront"]
    );
    let spec = &web.spec.template.spec;
    assert_eq!(spec.node_selector["kubernetes.io/os"], "linux");
    let c = &spec.containers[0];
    assert_eq!(c.env[0].value.as_deref(), Some("http://api.shop.svc"));
    assert_eq!(c.env[1].value.as_deref(), Some("300"));
    assert_eq!(c.resources.requests["cpu"].to_string(), "100m");
    assert_eq!(c.resources.limits["memory"].to_string(), "256Mi");
    assert_eq!(c.resources.limits["memory"].value(), 256 << 20);

    let svc = service(&m, "storefront");
    assert_eq!(svc.spec.type_, Some(ServiceType::NodePort));
    assert_eq!(svc.spec.session_affinity, Some(SessionAffinity::ClientIP));
    let timeout = svc
        .spec
        .session_affinity_config
        .as_ref()
        .and_then(|c| c.client_ip.as_ref())
        .and_then(|c| c.timeout_seconds);
    assert_eq!(timeout, Some(1800));
    assert_eq!(svc.spec.ports[0].node_port, Some(30080));
}

#[test]
fn defaults_fill_what_the_file_leaves_out() {
    let options = ManifestOptions {
        apply_defaults: true,
        ..ManifestOptions::default()
    };
    let m = manifest::parse(&scheme_with_config_map(), ONLINE_SHOP, &options).unwrap();
    let web = deployment(&m, "storefront");
    let rolling = web
        .spec
        .strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .unwrap();
    assert_eq!(rolling.max_surge, Some("25%".into()));
    assert_eq!(web.spec.revision_history_limit, Some(10));
    assert_eq!(web.spec.progress_deadline_seconds, Some(600));
    let spec = &web.spec.template.spec;
    assert_eq!(spec.restart_policy, Some(RestartPolicy::Always));
    assert_eq!(spec.termination_grace_period_seconds, Some(30));
    assert_eq!(spec.scheduler_name, "default-scheduler");
    assert_eq!(
        spec.containers[0].image_pull_policy,
        Some(PullPolicy::IfNotPresent)
    );
    let redis = deployment(&m, "redis");
    assert!(
        redis
            .spec
            .strategy
            .as_ref()
            .unwrap()
            .rolling_update
            .is_none()
    );
    let api = deployment(&m, "api");
    let api_spec = &api.spec.template.spec;
    assert_eq!(
        api_spec.termination_grace_period_seconds,
        Some(45),
        "kept as written"
    );
    assert_eq!(
        api_spec.init_containers[0].image_pull_policy,
        Some(PullPolicy::IfNotPresent)
    );
    let svc = service(&m, "redis");
    assert_eq!(svc.spec.type_, Some(ServiceType::ClusterIP));
    assert_eq!(svc.spec.ports[0].protocol, Some(Protocol::Tcp));
    assert_eq!(svc.spec.session_affinity, Some(SessionAffinity::None));
    for object in &m.objects {
        assert!(object.object.validate().is_empty(), "{}", object.location);
    }
}

#[test]
fn every_object_round_trips_through_json() {
    let scheme = scheme_with_config_map();
    let m = parse_shop();
    for object in &m.objects {
        let json = object.object.to_json().unwrap();
        assert_eq!(json["kind"], object.object.type_info().kind);
        let back = scheme.decode(json.clone()).unwrap();
        assert!(
            back.unknown_fields.is_empty(),
            "{}: {:?}",
            object.location,
            back.unknown_fields
        );
        assert_eq!(back.object.to_json().unwrap(), json, "{}", object.location);
    }
}

// ---- bad input -------------------------------------------------------------------------

fn parse_err(input: &str) -> String {
    match manifest::parse(&Scheme::new(), input, &ManifestOptions::default()) {
        Ok(m) => panic!("expected an error, parsed {} objects", m.len()),
        Err(e) => e.to_string(),
    }
}

const GOOD_POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: ok\nspec:\n  containers:\n  - name: c\n    image: busybox\n";

#[test]
fn malformed_yaml_names_the_document_and_line() {
    let input = format!(
        "{GOOD_POD}---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n   labels: {{}}\n"
    );
    let err = parse_err(&input);
    assert!(err.starts_with("document 2: malformed manifest"), "{err}");
    assert!(err.ends_with("at line 14 column 10"), "{err}");
    let err = parse_err("apiVersion: v1\nkind: Pod\nspec:\n  containers: [ {name: a\n");
    assert!(err.starts_with("document 1: malformed manifest"), "{err}");
    let err = parse_err("{\"apiVersion\": \"v1\", \"kind\": \"Pod\"");
    assert!(err.starts_with("document 1: malformed manifest"), "{err}");
}

#[test]
fn wrong_types_name_the_field() {
    let err = parse_err(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: three\n",
    );
    assert_eq!(
        err,
        "document 1 (Deployment \"web\"): spec.replicas: invalid type: string \"three\", expected i32"
    );
    let err = parse_err(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations:\n    enabled: true\nspec:\n  containers: []\n",
    );
    assert_eq!(
        err,
        "document 1 (Pod \"web\"): metadata.annotations.enabled: invalid type: boolean `true`, expected a string"
    );
    let err = parse_err(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: a\n    image: x\n    resources:\n      limits: {memory: 1GB}\n",
    );
    assert!(
        err.starts_with("document 1 (Pod \"web\"): spec.containers[0].resources.limits.memory: invalid quantity \"1GB\": unknown suffix \"GB\""),
        "{err}"
    );
    let err = parse_err(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  restartPolicy: Sometimes\n",
    );
    assert!(
        err.starts_with("document 1 (Pod \"web\"): spec.restartPolicy: unknown variant `Sometimes`, expected one of `Always`, `OnFailure`, `Never`"),
        "{err}"
    );
}

#[test]
fn invalid_names_and_fields_are_validation_errors() {
    let err = parse_err(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Foo_Bar\nspec:\n  containers:\n  - name: web\n",
    );
    assert_eq!(
        err,
        "document 1 (Pod \"Foo_Bar\"): [metadata.name: Invalid value: \"Foo_Bar\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*'), spec.containers[0].image: Required value]"
    );
    let options = ManifestOptions {
        validate: false,
        ..ManifestOptions::default()
    };
    let m = manifest::parse(
        &Scheme::new(),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Foo_Bar\n",
        &options,
    )
    .unwrap();
    assert_eq!(
        m.objects_of::<Pod>().next().unwrap().metadata.name,
        "Foo_Bar"
    );
}

/// A pod as Kubernetes users write it with a projected volume (modes 0440 and 0600, in
/// YAML 1.1 octal as Kubernetes reads them) and a `subPathExpr`.
const PROJECTED_POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  volumes:
  - name: all
    projected:
      defaultMode: 0440
      sources:
      - configMap:
          name: app
          items: [{key: app.conf, path: conf/app.conf, mode: 0600}]
      - secret: {name: db, optional: true}
      - downwardAPI:
          items:
          - path: labels
            fieldRef: {fieldPath: metadata.labels}
  - name: logs
    emptyDir: {}
  containers:
  - name: web
    image: busybox
    env:
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    volumeMounts:
    - {name: all, mountPath: /etc/all}
    - {name: logs, mountPath: /logs, subPathExpr: $(POD_NAME)}
";

#[test]
fn projected_volumes_and_sub_path_expr_parse_and_a_token_source_is_refused_by_path() {
    let m = manifest::parse(&Scheme::new(), PROJECTED_POD, &ManifestOptions::default())
        .unwrap_or_else(|e| panic!("the pod should parse:\n{e}"));
    assert_eq!(m.warnings().count(), 0, "every field is modelled");
    let pod = m.objects_of::<Pod>().next().unwrap();
    let projected = pod.spec.volumes[0].projected.as_ref().unwrap();
    assert_eq!(projected.default_mode, Some(0o440));
    assert_eq!(projected.sources.len(), 3);
    let items = &projected.sources[0].config_map.as_ref().unwrap().items;
    assert_eq!(
        (items[0].path.as_str(), items[0].mode),
        ("conf/app.conf", Some(0o600))
    );
    let mounts = &pod.spec.containers[0].volume_mounts;
    assert_eq!(mounts[1].sub_path_expr, "$(POD_NAME)");

    // A service account token source: a lifetime of at least 10 minutes.
    let token = PROJECTED_POD.replace(
        "      - secret: {name: db, optional: true}",
        "      - serviceAccountToken: {path: token, expirationSeconds: 3600, audience: vault}",
    );
    manifest::parse(&Scheme::new(), &token, &ManifestOptions::default()).unwrap();
    let short = token.replace("expirationSeconds: 3600", "expirationSeconds: 60");
    let err = parse_err(&short);
    assert!(
        err.contains("spec.volumes[0].projected.sources[1].serviceAccountToken.expirationSeconds: Invalid value: 60"),
        "{err}"
    );
    let both = PROJECTED_POD.replace(
        "subPathExpr: $(POD_NAME)}",
        "subPath: x, subPathExpr: $(POD_NAME)}",
    );
    let err = parse_err(&both);
    assert!(
        err.contains("spec.containers[0].volumeMounts[1].subPathExpr: Invalid value: \"$(POD_NAME)\": subPathExpr and subPath are mutually exclusive"),
        "{err}"
    );
}

#[test]
fn file_modes_read_as_kubernetes_writes_them_and_bad_ones_are_refused_by_path() {
    let mode_of = |default_mode: &str| {
        let yaml =
            PROJECTED_POD.replace("defaultMode: 0440", &format!("defaultMode: {default_mode}"));
        manifest::parse(&Scheme::new(), &yaml, &ManifestOptions::default())
            .map(|m| {
                m.objects_of::<Pod>().next().unwrap().spec.volumes[0]
                    .projected
                    .as_ref()
                    .unwrap()
                    .default_mode
            })
            .map_err(|e| e.to_string())
    };
    assert_eq!(mode_of("0o440"), Ok(Some(0o440)), "YAML 1.2 octal");
    assert_eq!(mode_of("288"), Ok(Some(0o440)), "decimal");
    assert_eq!(mode_of("0777"), Ok(Some(0o777)));
    assert_eq!(mode_of("0"), Ok(Some(0)));

    let err = mode_of("0999").unwrap_err();
    assert!(
        err.starts_with("document 1 (Pod \"web\"): spec.volumes[0].projected.defaultMode: \"0999\" is not a file mode"),
        "{err}"
    );
    assert!(err.contains("octal digits are 0 to 7"), "{err}");
    let err = mode_of("abc").unwrap_err();
    assert!(
        err.contains("spec.volumes[0].projected.defaultMode: \"abc\" is not a file mode"),
        "{err}"
    );
    // Well-formed but too large: validation refuses it by path, as Kubernetes does.
    let err = mode_of("01000").unwrap_err();
    assert!(
        err.contains("spec.volumes[0].projected.defaultMode: Invalid value: 512: must be a number between 0 and 0777 (octal), both inclusive"),
        "{err}"
    );
    // An item's mode is read the same way, and named by its own path.
    let item = PROJECTED_POD.replace("mode: 0600}", "mode: 0680}");
    let err = parse_err(&item);
    assert!(
        err.contains("spec.volumes[0].projected.sources[0].configMap.items[0].mode: \"0680\" is not a file mode"),
        "{err}"
    );

    // JSON has no octal: numbers are decimal.
    let json = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
      "spec": {"containers": [{"name": "web", "image": "busybox"}],
        "volumes": [{"name": "s", "secret": {"secretName": "db", "defaultMode": 256}}]}}"#;
    let m = manifest::parse(&Scheme::new(), json, &ManifestOptions::default()).unwrap();
    let pod = m.objects_of::<Pod>().next().unwrap();
    assert_eq!(
        pod.spec.volumes[0].secret.as_ref().unwrap().default_mode,
        Some(0o400)
    );
}

#[test]
fn unknown_kinds_missing_types_and_non_objects() {
    assert_eq!(
        parse_err("apiVersion: apps/v1\nkind: ReplicationController\nmetadata: {name: db}\n"),
        "document 1 (ReplicationController \"db\"): no kind \"ReplicationController\" is registered for apiVersion \"apps/v1\"; the kinds of \"apps/v1\" are: ReplicaSet, Deployment, DaemonSet, StatefulSet, ControllerRevision"
    );
    assert_eq!(
        parse_err("apiVersion: v1\nkind: deployment\nmetadata: {name: db}\n"),
        "document 1 (deployment \"db\"): no kind \"deployment\" is registered for apiVersion \"v1\"; did you mean apps/v1 Deployment?"
    );
    assert_eq!(
        parse_err("kind: Pod\nmetadata: {name: a}\n"),
        "document 1 (Pod \"a\"): apiVersion: Required value: every object must set apiVersion and kind"
    );
    assert_eq!(
        parse_err("- a\n- b\n"),
        "document 1: expected an object with apiVersion, kind and metadata, found a list"
    );
    assert_eq!(
        parse_err("just a string\n"),
        "document 1: expected an object with apiVersion, kind and metadata, found a string"
    );
}

#[test]
fn every_bad_document_is_reported() {
    let input = format!(
        "{GOOD_POD}---\nkind: Pod\n---\n{GOOD_POD}---\napiVersion: v1\nkind: Service\nmetadata: {{name: s}}\nspec: {{ports: [{{port: 0}}]}}\n"
    );
    let err = manifest::parse(&Scheme::new(), &input, &ManifestOptions::default()).unwrap_err();
    let docs: Vec<usize> = err.errors.iter().map(|e| e.location.document).collect();
    assert_eq!(docs, vec![2, 4]);
    assert!(matches!(err.errors[1].kind, DocumentErrorKind::Invalid(_)));
    let text = err.errors[1].to_string();
    assert!(text.starts_with("document 4 (Service \"s\"): "), "{text}");
    assert!(
        text.contains(
            "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive"
        ),
        "{text}"
    );
}

#[test]
fn hostile_yaml_is_an_error_not_a_hang_or_a_crash() {
    // A billion laughs: aliases that expand exponentially.
    let mut laughs = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        let refs = vec![format!("*{prev}"); 9].join(",");
        laughs.push_str(&format!("{name}: &{name} [{refs}]\n"));
    }
    let err = parse_err(&laughs);
    assert!(err.contains("repetition limit exceeded"), "{err}");
    // Deep nesting.
    let deep = format!("a: {}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let err = parse_err(&deep);
    assert!(err.contains("recursion limit exceeded"), "{err}");
    let deep_json = format!(" {{\"a\": {}1{}}}", "[".repeat(10_000), "]".repeat(10_000));
    let err = parse_err(&deep_json);
    assert!(err.contains("recursion limit exceeded"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = manifest::parse_bytes(&Scheme::new(), &bytes, &ManifestOptions::default());
    }

    #[test]
    fn random_yaml_like_text_never_panics(text in "[a-zA-Z0-9:{}\\[\\],&*!|>\\-# \n'\"]{0,300}") {
        let _ = manifest::parse(&Scheme::new(), &text, &ManifestOptions::default());
    }

    #[test]
    fn mangled_real_manifests_never_panic(
        cut in 0usize..ONLINE_SHOP.len(),
        edits in prop::collection::vec((0usize..ONLINE_SHOP.len(), any::<u8>()), 0..8),
    ) {
        let mut bytes = ONLINE_SHOP.as_bytes()[..cut].to_vec();
        for (at, byte) in edits {
            if at < bytes.len() {
                bytes[at] = byte;
            }
        }
        let strict = ManifestOptions { strict: true, ..ManifestOptions::default() };
        let _ = manifest::parse_bytes(&scheme_with_config_map(), &bytes, &strict);
    }
}

const WORKLOADS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data:
  LOG_LEVEL: info
binaryData:
  logo.png: iVBORw0KGgo=
---
apiVersion: v1
kind: Secret
metadata: {name: db, namespace: shop}
data:
  username: YWRtaW4=        # admin
stringData:
  password: s3cret
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: shop}
spec:
  completions: 3
  parallelism: 2
  backoffLimit: 2
  activeDeadlineSeconds: 600
  template:
    spec:
      restartPolicy: OnFailure
      containers: [{name: migrate, image: "shop/migrate:1.0", args: ["--all"]}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: log-agent, namespace: shop}
spec:
  selector: {matchLabels: {app: log-agent}}
  updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 2}}
  template:
    metadata: {labels: {app: log-agent}}
    spec:
      containers: [{name: agent, image: "fluent-bit:3.0"}]
"#;

#[test]
fn config_maps_secrets_jobs_and_daemon_sets_round_trip() {
    use orchestra_api::resources::{DaemonSet, DaemonSetUpdateStrategyType, Job, Secret};
    let options = ManifestOptions {
        apply_defaults: true,
        strict: true,
        ..ManifestOptions::default()
    };
    let m = manifest::parse(&Scheme::new(), WORKLOADS, &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(m.len(), 4);
    for object in &m.objects {
        assert!(object.object.validate().is_empty(), "{:?}", object.location);
        // Encoded and decoded again, every object is the same.
        let json = object.object.to_json().unwrap();
        let again = Scheme::new().decode(json).unwrap();
        assert!(again.unknown_fields.is_empty());
        assert_eq!(
            again.object.to_json().unwrap(),
            object.object.to_json().unwrap()
        );
    }
    let cm = m.objects_of::<ConfigMap>().next().unwrap();
    assert_eq!(cm.data["LOG_LEVEL"], "info");
    assert_eq!(&cm.binary_data["logo.png"].0[..4], b"\x89PNG");
    let secret = m.objects_of::<Secret>().next().unwrap();
    assert_eq!(secret.type_, "Opaque");
    assert!(
        secret.string_data.is_empty(),
        "stringData is merged into data"
    );
    assert_eq!(secret.data["username"].0, b"admin");
    assert_eq!(secret.data["password"].0, b"s3cret");
    let json = serde_json::to_value(secret).unwrap();
    assert_eq!(json["data"]["password"], "czNjcmV0");
    let job = m.objects_of::<Job>().next().unwrap();
    assert_eq!(
        (
            job.spec.completions,
            job.spec.parallelism,
            job.spec.backoff_limit
        ),
        (Some(3), Some(2), Some(2))
    );
    assert_eq!(
        job.spec.template.spec.restart_policy,
        Some(RestartPolicy::OnFailure)
    );
    let ds = m.objects_of::<DaemonSet>().next().unwrap();
    let strategy = ds.spec.update_strategy.as_ref().unwrap();
    assert_eq!(
        strategy.type_,
        Some(DaemonSetUpdateStrategyType::RollingUpdate)
    );
    assert_eq!(
        strategy.rolling_update.as_ref().unwrap().max_unavailable,
        Some(IntOrString::Int(2))
    );
}

#[test]
fn bad_workloads_name_the_field() {
    let job = WORKLOADS
        .split("---")
        .nth(2)
        .unwrap()
        .replace("restartPolicy: OnFailure", "restartPolicy: Always");
    let options = ManifestOptions {
        apply_defaults: true,
        ..ManifestOptions::default()
    };
    let errors = manifest::parse(&Scheme::new(), &job, &options)
        .unwrap_err()
        .to_string();
    assert!(
        errors.contains("spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""),
        "{errors}"
    );
    let bad_base64 =
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {key: \"not base64!\"}\n";
    let err = parse_err(bad_base64);
    assert!(
        err.contains("data.key") && err.contains("invalid base64"),
        "{err}"
    );
}
