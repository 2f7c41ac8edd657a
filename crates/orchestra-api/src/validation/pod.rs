//! Checks of pods: the spec (containers, ports, env, resources, probes, scheduling
//! constraints), pod templates, and what a pod update may change.

use std::collections::{BTreeSet, HashSet};

use super::meta::validate_label_selector;
use super::names;
use super::volume;
use super::{ErrorList, FieldError, FieldPath, validate_labels};
use crate::meta::IntOrString;
use crate::resources::pod::{
    Affinity, Container, EnvVar, NodeSelectorOperator, NodeSelectorRequirement, NodeSelectorTerm,
    Pod, PodAffinityTerm, PodSpec, PodTemplateSpec, Probe, RestartPolicy, Toleration,
    TolerationOperator, TopologySpreadConstraint, UnsatisfiableConstraintAction,
    WeightedPodAffinityTerm,
};
use crate::resources::{ResourceList, TaintEffect};

/// Field paths an env var's `fieldRef` may select.
const SUPPORTED_FIELD_REFS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.uid",
    "spec.nodeName",
    "spec.serviceAccountName",
    "status.hostIP",
    "status.podIP",
];

/// Resources an env var's `resourceFieldRef` may select.
const SUPPORTED_RESOURCE_REFS: &[&str] = &[
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
];

fn push_msgs(errors: &mut ErrorList, path: &FieldPath, value: &str, msgs: Vec<String>) {
    for msg in msgs {
        errors.push(FieldError::invalid(path, value, msg));
    }
}

fn non_negative(errors: &mut ErrorList, path: &FieldPath, value: Option<i64>) {
    if let Some(v) = value.filter(|v| *v < 0) {
        errors.push(FieldError::invalid(
            path,
            v,
            "must be greater than or equal to 0",
        ));
    }
}

fn positive(errors: &mut ErrorList, path: &FieldPath, value: Option<i64>) {
    if let Some(v) = value.filter(|v| *v < 1) {
        errors.push(FieldError::invalid(path, v, "must be greater than 0"));
    }
}

/// Checks a pod spec at `path` (`spec`, or `spec.template.spec` in a controller).
pub fn validate_pod_spec(spec: &PodSpec, path: &FieldPath) -> ErrorList {
    let mut errors = ErrorList::new();
    let mut names_seen = HashSet::new();
    let (volume_errors, volumes) = volume::validate_volumes(&spec.volumes, &path.child("volumes"));
    errors.extend(volume_errors);
    if spec.containers.is_empty() {
        errors.push(FieldError::required(&path.child("containers"), ""));
    }
    for (field, containers) in [
        ("initContainers", &spec.init_containers),
        ("containers", &spec.containers),
    ] {
        for (i, container) in containers.iter().enumerate() {
            let p = path.child(field).index(i);
            errors.extend(validate_container(
                container,
                &p,
                &mut names_seen,
                spec.host_network,
                field == "initContainers",
            ));
            errors.extend(volume::validate_volume_mounts(
                &container.volume_mounts,
                &volumes,
                &p.child("volumeMounts"),
            ));
            for (i, source) in container.env_from.iter().enumerate() {
                errors.extend(volume::validate_env_from(
                    source,
                    &p.child("envFrom").index(i),
                ));
            }
        }
    }

    non_negative(
        &mut errors,
        &path.child("terminationGracePeriodSeconds"),
        spec.termination_grace_period_seconds,
    );
    positive(
        &mut errors,
        &path.child("activeDeadlineSeconds"),
        spec.active_deadline_seconds,
    );
    errors.extend(validate_labels(
        &spec.node_selector,
        &path.child("nodeSelector"),
    ));
    for (field, value, check) in [
        (
            "nodeName",
            &spec.node_name,
            names::is_dns1123_subdomain as fn(&str) -> Vec<String>,
        ),
        (
            "schedulerName",
            &spec.scheduler_name,
            names::is_dns1123_subdomain,
        ),
        (
            "priorityClassName",
            &spec.priority_class_name,
            names::is_dns1123_subdomain,
        ),
        (
            "serviceAccountName",
            &spec.service_account_name,
            names::is_dns1123_subdomain,
        ),
        ("hostname", &spec.hostname, names::is_dns1123_label),
        ("subdomain", &spec.subdomain, names::is_dns1123_label),
    ] {
        if !value.is_empty() {
            push_msgs(&mut errors, &path.child(field), value, check(value));
        }
    }
    if let Some(affinity) = &spec.affinity {
        errors.extend(validate_affinity(affinity, &path.child("affinity")));
    }
    for (i, toleration) in spec.tolerations.iter().enumerate() {
        errors.extend(validate_toleration(
            toleration,
            &path.child("tolerations").index(i),
        ));
    }
    errors.extend(validate_topology_spread(
        &spec.topology_spread_constraints,
        &path.child("topologySpreadConstraints"),
    ));
    for (i, gate) in spec.readiness_gates.iter().enumerate() {
        let p = path.child("readinessGates").index(i).child("conditionType");
        push_msgs(
            &mut errors,
            &p,
            &gate.condition_type,
            names::is_qualified_name(&gate.condition_type),
        );
    }
    errors
}

fn validate_container(
    c: &Container,
    path: &FieldPath,
    names_seen: &mut HashSet<String>,
    host_network: bool,
    init: bool,
) -> ErrorList {
    let mut errors = ErrorList::new();
    let name_path = path.child("name");
    if c.name.is_empty() {
        errors.push(FieldError::required(&name_path, ""));
    } else {
        push_msgs(
            &mut errors,
            &name_path,
            &c.name,
            names::is_dns1123_label(&c.name),
        );
        if !names_seen.insert(c.name.clone()) {
            errors.push(FieldError::duplicate(&name_path, c.name.as_str()));
        }
    }
    if c.image.trim().is_empty() {
        errors.push(FieldError::required(&path.child("image"), ""));
    }

    let mut port_names = HashSet::new();
    for (i, port) in c.ports.iter().enumerate() {
        let p = path.child("ports").index(i);
        if !port.name.is_empty() {
            push_msgs(
                &mut errors,
                &p.child("name"),
                &port.name,
                names::is_valid_port_name(&port.name),
            );
            if !port_names.insert(port.name.as_str()) {
                errors.push(FieldError::duplicate(&p.child("name"), port.name.as_str()));
            }
        }
        if port.container_port == 0 {
            errors.push(FieldError::required(&p.child("containerPort"), ""));
        } else {
            for msg in names::is_valid_port_num(port.container_port) {
                errors.push(FieldError::invalid(
                    &p.child("containerPort"),
                    port.container_port,
                    msg,
                ));
            }
        }
        if let Some(host_port) = port.host_port.filter(|p| *p != 0) {
            for msg in names::is_valid_port_num(host_port) {
                errors.push(FieldError::invalid(&p.child("hostPort"), host_port, msg));
            }
            if host_network && host_port != port.container_port {
                errors.push(FieldError::invalid(
                    &p.child("hostPort"),
                    host_port,
                    "must match `containerPort` when `hostNetwork` is true",
                ));
            }
        }
        if !port.host_ip.is_empty() {
            push_msgs(
                &mut errors,
                &p.child("hostIP"),
                &port.host_ip,
                names::is_valid_ip(&port.host_ip),
            );
        }
    }

    for (i, env) in c.env.iter().enumerate() {
        errors.extend(validate_env(env, &path.child("env").index(i)));
    }
    errors.extend(validate_resources(
        &c.resources.requests,
        &c.resources.limits,
        &path.child("resources"),
    ));

    for (field, probe) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        let Some(probe) = probe else { continue };
        let p = path.child(field);
        if init && !c.is_sidecar() {
            errors.push(FieldError::forbidden(
                &p,
                "may not be set for init containers without restartPolicy=Always",
            ));
            continue;
        }
        errors.extend(validate_probe(probe, &p, field));
    }
    errors.extend(validate_container_restart_policy(c, path, init));
    if let Some(context) = &c.security_context {
        errors.extend(super::security::validate_security_context(
            context,
            &path.child("securityContext"),
        ));
    }
    errors
}

/// A container's `restartPolicy`: only init containers may have one, and only `Always` (which
/// makes them sidecars).
fn validate_container_restart_policy(c: &Container, path: &FieldPath, init: bool) -> ErrorList {
    let mut errors = ErrorList::new();
    let Some(policy) = c.restart_policy else {
        return errors;
    };
    let p = path.child("restartPolicy");
    if !init {
        errors.push(FieldError::forbidden(
            &p,
            "may not be set for non-init containers",
        ));
    } else if policy != RestartPolicy::Always {
        errors.push(FieldError::not_supported(&p, policy.as_str(), &["Always"]));
    }
    errors
}

fn validate_env(env: &EnvVar, path: &FieldPath) -> ErrorList {
    let mut errors = ErrorList::new();
    if env.name.is_empty() {
        errors.push(FieldError::required(&path.child("name"), ""));
    } else {
        push_msgs(
            &mut errors,
            &path.child("name"),
            &env.name,
            names::is_env_var_name(&env.name),
        );
    }
    let Some(from) = &env.value_from else {
        return errors;
    };
    let p = path.child("valueFrom");
    if env.value.as_deref().is_some_and(|v| !v.is_empty()) {
        errors.push(FieldError::invalid(
            &p,
            "",
            "may not be specified when `value` is not empty",
        ));
    }
    match from.count() {
        0 => errors.push(FieldError::required(
            &p,
            "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
        )),
        1 => {}
        _ => errors.push(FieldError::invalid(
            &p,
            "",
            "may not have more than one field specified at a time",
        )),
    }
    if let Some(field_ref) = &from.field_ref {
        let fp = p.child("fieldRef").child("fieldPath");
        let path_str = field_ref.field_path.as_str();
        let is_label_ref = ["metadata.labels['", "metadata.annotations['"]
            .iter()
            .any(|prefix| path_str.starts_with(prefix) && path_str.ends_with("']"));
        if path_str.is_empty() {
            errors.push(FieldError::required(&fp, ""));
        } else if !is_label_ref && !SUPPORTED_FIELD_REFS.contains(&path_str) {
            errors.push(FieldError::not_supported(
                &fp,
                path_str,
                SUPPORTED_FIELD_REFS,
            ));
        }
    }
    if let Some(resource_ref) = &from.resource_field_ref {
        let rp = p.child("resourceFieldRef").child("resource");
        if resource_ref.resource.is_empty() {
            errors.push(FieldError::required(&rp, ""));
        } else if !SUPPORTED_RESOURCE_REFS.contains(&resource_ref.resource.as_str()) {
            errors.push(FieldError::not_supported(
                &rp,
                resource_ref.resource.as_str(),
                SUPPORTED_RESOURCE_REFS,
            ));
        }
        if let Some(divisor) = resource_ref.divisor.filter(|d| d.nanos() <= 0) {
            errors.push(FieldError::invalid(
                &p.child("resourceFieldRef").child("divisor"),
                divisor.to_string(),
                "must be greater than 0",
            ));
        }
    }
    for (field, key_ref) in [
        ("configMapKeyRef", &from.config_map_key_ref),
        ("secretKeyRef", &from.secret_key_ref),
    ] {
        let Some(key_ref) = key_ref else { continue };
        let kp = p.child(field);
        if key_ref.name.is_empty() {
            errors.push(FieldError::required(&kp.child("name"), ""));
        }
        if key_ref.key.is_empty() {
            errors.push(FieldError::required(&kp.child("key"), ""));
        }
    }
    errors
}

/// Checks requests and limits: qualified resource names, no negative amounts, and no request
/// above its limit.
pub(crate) fn validate_resources(
    requests: &ResourceList,
    limits: &ResourceList,
    path: &FieldPath,
) -> ErrorList {
    let mut errors = ErrorList::new();
    for (field, list) in [("limits", limits), ("requests", requests)] {
        for (name, quantity) in list {
            let p = path.child(field).key(name);
            push_msgs(&mut errors, &p, name, names::is_qualified_name(name));
            if quantity.is_negative() {
                errors.push(FieldError::invalid(
                    &p,
                    quantity.to_string(),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
    for (name, request) in requests {
        if let Some(limit) = limits.get(name).filter(|limit| request > *limit) {
            errors.push(FieldError::invalid(
                &path.child("requests").key(name),
                request.to_string(),
                format!("must be less than or equal to {name} limit of {limit}"),
            ));
        }
    }
    errors
}

fn validate_probe(probe: &Probe, path: &FieldPath, kind: &str) -> ErrorList {
    let mut errors = ErrorList::new();
    match probe.handler_count() {
        0 => errors.push(FieldError::required(path, "must specify a handler type")),
        1 => {}
        _ => errors.push(FieldError::forbidden(
            path,
            "may not specify more than 1 handler type",
        )),
    }
    if let Some(exec) = &probe.exec
        && exec.command.is_empty()
    {
        errors.push(FieldError::required(
            &path.child("exec").child("command"),
            "",
        ));
    }
    if let Some(http) = &probe.http_get {
        errors.extend(validate_probe_port(
            &http.port,
            &path.child("httpGet").child("port"),
        ));
    }
    if let Some(tcp) = &probe.tcp_socket {
        errors.extend(validate_probe_port(
            &tcp.port,
            &path.child("tcpSocket").child("port"),
        ));
    }
    non_negative(
        &mut errors,
        &path.child("initialDelaySeconds"),
        probe.initial_delay_seconds.map(i64::from),
    );
    for (field, value) in [
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        positive(&mut errors, &path.child(field), value.map(i64::from));
    }
    if kind != "readinessProbe" {
        if let Some(threshold) = probe.success_threshold.filter(|t| *t != 1) {
            errors.push(FieldError::invalid(
                &path.child("successThreshold"),
                threshold,
                "must be 1",
            ));
        }
        positive(
            &mut errors,
            &path.child("terminationGracePeriodSeconds"),
            probe.termination_grace_period_seconds,
        );
    } else if probe.termination_grace_period_seconds.is_some() {
        errors.push(FieldError::invalid(
            &path.child("terminationGracePeriodSeconds"),
            probe.termination_grace_period_seconds.unwrap_or_default(),
            "must not be set for readinessProbes",
        ));
    }
    errors
}

fn validate_probe_port(port: &IntOrString, path: &FieldPath) -> ErrorList {
    let mut errors = ErrorList::new();
    match port {
        IntOrString::Int(n) => {
            for msg in names::is_valid_port_num(*n) {
                errors.push(FieldError::invalid(path, *n, msg));
            }
        }
        IntOrString::String(s) => push_msgs(&mut errors, path, s, names::is_valid_port_name(s)),
    }
    errors
}

fn validate_affinity(affinity: &Affinity, path: &FieldPath) -> ErrorList {
    let mut errors = ErrorList::new();
    if let Some(node) = &affinity.node_affinity {
        let p = path.child("nodeAffinity");
        if let Some(required) = &node.required_during_scheduling_ignored_during_execution {
            let rp = p
                .child("requiredDuringSchedulingIgnoredDuringExecution")
                .child("nodeSelectorTerms");
            if required.node_selector_terms.is_empty() {
                errors.push(FieldError::required(
                    &rp,
                    "must have at least one node selector term",
                ));
            }
            for (i, term) in required.node_selector_terms.iter().enumerate() {
                errors.extend(validate_node_selector_term(term, &rp.index(i)));
            }
        }
        let pp = p.child("preferredDuringSchedulingIgnoredDuringExecution");
        for (i, preferred) in node
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            let ip = pp.index(i);
            errors.extend(validate_weight(preferred.weight, &ip.child("weight")));
            errors.extend(validate_node_selector_term(
                &preferred.preference,
                &ip.child("preference"),
            ));
        }
    }
    for (field, terms) in [
        (
            "podAffinity",
            affinity.pod_affinity.as_ref().map(|a| {
                (
                    &a.required_during_scheduling_ignored_during_execution,
                    &a.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
        (
            "podAntiAffinity",
            affinity.pod_anti_affinity.as_ref().map(|a| {
                (
                    &a.required_during_scheduling_ignored_during_execution,
                    &a.preferred_during_scheduling_ignored_during_execution,
                )
            }),
        ),
    ] {
        let Some((required, preferred)) = terms else {
            continue;
        };
        let p = path.child(field);
        errors.extend(validate_pod_affinity_terms(required, preferred, &p));
    }
    errors
}

fn validate_pod_affinity_terms(
    required: &[PodAffinityTerm],
    preferred: &[WeightedPodAffinityTerm],
    path: &FieldPath,
) -> ErrorList {
    let mut errors = ErrorList::new();
    let rp = path.child("requiredDuringSchedulingIgnoredDuringExecution");
    for (i, term) in required.iter().enumerate() {
        errors.extend(validate_pod_affinity_term(term, &rp.index(i)));
    }
    let pp = path.child("preferredDuringSchedulingIgnoredDuringExecution");
    for (i, weighted) in preferred.iter().enumerate() {
        let ip = pp.index(i);
        errors.extend(validate_weight(weighted.weight, &ip.child("weight")));
        errors.extend(validate_pod_affinity_term(
            &weighted.pod_affinity_term,
            &ip.child("podAffinityTerm"),
        ));
    }
    errors
}

fn validate_pod_affinity_term(term: &PodAffinityTerm, path: &FieldPath) -> ErrorList {
    let mut errors = ErrorList::new();
    let tp = path.child("topologyKey");
    if term.topology_key.is_empty() {
        errors.push(FieldError::required(&tp, "can not be empty"));
    } else {
        push_msgs(
            &mut errors,
            &tp,
            &term.topology_key,
            names::is_qualified_name(&term.topology_key),
        );
    }
    if let Some(selector) = &term.label_selector {
        errors.extend(validate_label_selector(
            selector,
            &path.child("labelSelector"),
        ));
    }
    if let Some(selector) = &term.namespace_selector {
        errors.extend(validate_label_selector(
            selector,
            &path.child("namespaceSelector"),
        ));
    }
    for (i, ns) in term.namespaces.iter().enumerate() {
        push_msgs(
            &mut errors,
            &path.child("namespaces").index(i),
            ns,
            names::is_dns1123_label(ns),
        );
    }
    errors
}

fn validate_weight(weight: i32, path: &FieldPath) -> ErrorList {
    let mut errors = ErrorList::new();
    if !(1..=100).contains(&weight) {
        errors.push(FieldError::invalid(
            path,
            weight,
            "must be in the range 1-100",
        ));
    }
    errors
}

fn validate_node_selector_term(term: &NodeSelectorTerm, path: &FieldPath) -> ErrorList {
    let mut errors = ErrorList::new();
    for (i, req) in term.match_expressions.iter().enumerate() {
        errors.extend(validate_node_selector_requirement(
            req,
            &path.child("matchExpressions").index(i),
        ));
    }
    for (i, req) in term.match_fields.iter().enumerate() {
        let p = path.child("matchFields").index(i);
        if req.key != "metadata.name" {
            errors.push(FieldError::not_supported(
                &p.child("key"),
                req.key.as_str(),
                &["metadata.name"],
            ));
        }
        match req.operator {
            NodeSelectorOperator::In | NodeSelectorOperator::NotIn => {
                if req.values.len() != 1 {
                    errors.push(FieldError::required(
                        &p.child("values"),
                        "must be only one value when `operator` is 'In' or 'NotIn' for node field selector",
                    ));
                }
            }
            other => errors.push(FieldError::invalid(
                &p.child("operator"),
                format!("{other:?}"),
                "not a valid selector operator",
            )),
        }
    }
    errors
}

fn validate_node_selector_requirement(
    req: &NodeSelectorRequirement,
    path: &FieldPath,
) -> ErrorList {
    let mut errors = ErrorList::new();
    push_msgs(
        &mut errors,
        &path.child("key"),
        &req.key,
        names::is_qualified_name(&req.key),
    );
    let values = path.child("values");
    match req.operator {
        NodeSelectorOperator::In | NodeSelectorOperator::NotIn => {
            if req.values.is_empty() {
                errors.push(FieldError::required(
                    &values,
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ));
            }
        }
        NodeSelectorOperator::Exists | NodeSelectorOperator::DoesNotExist => {
            if !req.values.is_empty() {
                errors.push(FieldError::forbidden(
                    &values,
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                ));
            }
        }
        NodeSelectorOperator::Gt | NodeSelectorOperator::Lt => {
            if req.values.len() != 1 {
                errors.push(FieldError::required(
                    &values,
                    "must be specified single value when `operator` is 'Lt' or 'Gt'",
                ));
            } else if req.values[0].parse::<i64>().is_err() {
                errors.push(FieldError::invalid(
                    &values.index(0),
                    req.values[0].as_str(),
                    "must be an integer when `operator` is 'Lt' or 'Gt'",
                ));
            }
        }
    }
    for (i, value) in req.values.iter().enumerate() {
        push_msgs(
            &mut errors,
            &values.index(i),
            value,
            names::is_valid_label_value(value),
        );
    }
    errors
}

fn validate_toleration(t: &Toleration, path: &FieldPath) -> ErrorList {
    let mut errors = ErrorList::new();
    if !t.key.is_empty() {
        push_msgs(
            &mut errors,
            &path.child("key"),
            &t.key,
            names::is_qualified_name(&t.key),
        );
    }
    match t.operator.unwrap_or_default() {
        TolerationOperator::Exists => {
            if !t.value.is_empty() {
                errors.push(FieldError::invalid(
                    &path.child("operator"),
                    t.value.as_str(),
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
        }
        TolerationOperator::Equal => {
            if t.key.is_empty() {
                errors.push(FieldError::invalid(
                    &path.child("operator"),
                    "Equal",
                    "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
                ));
            }
            push_msgs(
                &mut errors,
                &path.child("value"),
                &t.value,
                names::is_valid_label_value(&t.value),
            );
        }
    }
    if t.toleration_seconds.is_some() && t.effect != Some(TaintEffect::NoExecute) {
        errors.push(FieldError::invalid(
            &path.child("effect"),
            t.effect.map(|e| format!("{e:?}")).unwrap_or_default(),
            "effect must be 'NoExecute' when `tolerationSeconds` is set",
        ));
    }
    errors
}

fn validate_topology_spread(
    constraints: &[TopologySpreadConstraint],
    path: &FieldPath,
) -> ErrorList {
    let mut errors = ErrorList::new();
    let mut seen = BTreeSet::new();
    for (i, c) in constraints.iter().enumerate() {
        let p = path.index(i);
        if c.max_skew <= 0 {
            errors.push(FieldError::invalid(
                &p.child("maxSkew"),
                c.max_skew,
                "must be greater than zero",
            ));
        }
        if c.topology_key.is_empty() {
            errors.push(FieldError::required(
                &p.child("topologyKey"),
                "can not be empty",
            ));
        } else {
            push_msgs(
                &mut errors,
                &p.child("topologyKey"),
                &c.topology_key,
                names::is_qualified_name(&c.topology_key),
            );
        }
        if let Some(min_domains) = c.min_domains {
            if min_domains <= 0 {
                errors.push(FieldError::invalid(
                    &p.child("minDomains"),
                    min_domains,
                    "must be greater than 0",
                ));
            }
            if c.when_unsatisfiable != UnsatisfiableConstraintAction::DoNotSchedule {
                errors.push(FieldError::invalid(
                    &p.child("minDomains"),
                    min_domains,
                    "can only use minDomains if whenUnsatisfiable=DoNotSchedule",
                ));
            }
        }
        if let Some(selector) = &c.label_selector {
            errors.extend(validate_label_selector(selector, &p.child("labelSelector")));
        }
        if !seen.insert((
            c.topology_key.clone(),
            format!("{:?}", c.when_unsatisfiable),
        )) {
            errors.push(FieldError::duplicate(
                &p.child("{topologyKey, whenUnsatisfiable}"),
                format!("{}, {:?}", c.topology_key, c.when_unsatisfiable),
            ));
        }
    }
    errors
}

/// Checks a pod template at `path` (`spec.template`): its labels and its spec, whose
/// restartPolicy must be `Always` when `require_always` (controllers that keep pods running).
pub fn validate_pod_template(
    template: &PodTemplateSpec,
    path: &FieldPath,
    require_always: bool,
) -> ErrorList {
    let mut errors = validate_labels(
        &template.metadata.labels,
        &path.child("metadata").child("labels"),
    );
    let spec_path = path.child("spec");
    errors.extend(validate_pod_spec(&template.spec, &spec_path));
    if require_always
        && let Some(policy) = template
            .spec
            .restart_policy
            .filter(|p| *p != RestartPolicy::Always)
    {
        errors.push(FieldError::not_supported(
            &spec_path.child("restartPolicy"),
            policy.as_str(),
            &["Always"],
        ));
    }
    errors
}

/// Checks what a pod update changes: the spec may change only in container images,
/// `activeDeadlineSeconds`, `terminationGracePeriodSeconds` and `tolerations`; the node
/// binding is set once, through the binding subresource.
pub fn validate_pod_update(new: &Pod, old: &Pod) -> ErrorList {
    let mut errors = ErrorList::new();
    let mut comparable = new.spec.clone();
    for (mine, theirs) in comparable
        .containers
        .iter_mut()
        .zip(&old.spec.containers)
        .chain(
            comparable
                .init_containers
                .iter_mut()
                .zip(&old.spec.init_containers),
        )
    {
        mine.image.clone_from(&theirs.image);
    }
    comparable.active_deadline_seconds = old.spec.active_deadline_seconds;
    comparable.termination_grace_period_seconds = old.spec.termination_grace_period_seconds;
    comparable.tolerations.clone_from(&old.spec.tolerations);
    if comparable != old.spec {
        errors.push(FieldError::forbidden(
            &FieldPath::new("spec"),
            "pod updates may not change fields other than `spec.containers[*].image`, `spec.initContainers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` or `spec.terminationGracePeriodSeconds`",
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Resource;
    use crate::meta::ObjectMeta;
    use crate::resources::pod::{
        ContainerPort, EnvVarSource, HttpGetAction, ObjectFieldSelector, PodReadinessGate,
    };

    fn pod(containers: Vec<Container>) -> Pod {
        Pod {
            metadata: ObjectMeta::namespaced("default", "web"),
            spec: PodSpec {
                containers,
                ..PodSpec::default()
            },
            status: None,
        }
    }

    fn container(name: &str, image: &str) -> Container {
        Container {
            name: name.into(),
            image: image.into(),
            ..Container::default()
        }
    }

    fn messages(errors: &ErrorList) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_minimal_pod_is_valid() {
        let mut p = pod(vec![container("web", "nginx")]);
        p.apply_defaults();
        assert!(p.validate().is_empty(), "{}", p.validate());
    }

    #[test]
    fn security_contexts_are_checked_in_every_container_and_immutable() {
        use crate::resources::pod::{Capabilities, SecurityContext};
        let mut p = pod(vec![container("web", "nginx")]);
        p.spec.init_containers = vec![container("init", "busybox")];
        p.spec.init_containers[0].security_context = Some(SecurityContext {
            run_as_user: Some(0),
            capabilities: Some(Capabilities {
                add: vec!["NET_ADMIN".into(), "NET_ADMN".into()],
                drop: vec!["ALL".into()],
            }),
        });
        p.spec.containers[0].security_context = Some(SecurityContext {
            run_as_user: Some(-5),
            capabilities: None,
        });
        let msgs = messages(&p.validate());
        assert_eq!(msgs.len(), 2, "{msgs:#?}");
        assert!(
            msgs[0].starts_with("spec.initContainers[0].securityContext.capabilities.add[1]: Invalid value: \"NET_ADMN\""),
            "{msgs:#?}"
        );
        assert!(
            msgs[1].starts_with("spec.containers[0].securityContext.runAsUser: Invalid value: -5"),
            "{msgs:#?}"
        );

        // Like every container field but the image, it may not change on a pod update.
        let mut old = pod(vec![container("web", "nginx")]);
        old.spec.containers[0].security_context = Some(SecurityContext {
            run_as_user: Some(2102),
            capabilities: None,
        });
        let mut new = old.clone();
        new.spec.containers[0].security_context = None;
        assert_eq!(validate_pod_update(&new, &old).len(), 1);
    }

    #[test]
    fn readiness_gates_are_qualified_names_and_immutable() {
        let mut p = pod(vec![container("web", "nginx")]);
        p.spec.readiness_gates = ["example.com/feature-1", "Bad Gate", "/x", "ok", ""]
            .into_iter()
            .map(|t| PodReadinessGate {
                condition_type: t.into(),
            })
            .collect();
        let msgs = messages(&p.validate());
        assert_eq!(msgs.len(), 3, "{msgs:#?}");
        assert!(
            msgs[0].starts_with(
                "spec.readinessGates[1].conditionType: Invalid value: \"Bad Gate\": name part must consist of alphanumeric characters"
            ),
            "{msgs:#?}"
        );
        assert_eq!(
            msgs[1],
            "spec.readinessGates[2].conditionType: Invalid value: \"/x\": prefix part must be non-empty"
        );
        assert_eq!(
            msgs[2],
            "spec.readinessGates[4].conditionType: Invalid value: \"\": name part must be non-empty"
        );
        let mut old = pod(vec![container("web", "nginx")]);
        old.spec.readiness_gates.push(PodReadinessGate {
            condition_type: "example.com/a".into(),
        });
        let mut new = old.clone();
        new.spec.readiness_gates[0].condition_type = "example.com/b".into();
        assert_eq!(validate_pod_update(&new, &old).len(), 1);
    }

    #[test]
    fn containers_are_required_named_unique_and_have_images() {
        assert_eq!(
            messages(&pod(vec![]).validate()),
            vec!["spec.containers: Required value"]
        );
        let errors = pod(vec![
            container("web", ""),
            container("web", "nginx"),
            container("Bad", "x"),
        ])
        .validate();
        let msgs = messages(&errors);
        assert_eq!(msgs[0], "spec.containers[0].image: Required value");
        assert_eq!(msgs[1], "spec.containers[1].name: Duplicate value: \"web\"");
        assert!(msgs[2].starts_with(
            "spec.containers[2].name: Invalid value: \"Bad\": a lowercase RFC 1123 label"
        ));
    }

    #[test]
    fn ports_env_resources_and_probes() {
        let mut c = container("web", "nginx");
        c.ports = vec![
            ContainerPort {
                container_port: 70000,
                ..ContainerPort::default()
            },
            ContainerPort {
                name: "8080".into(),
                container_port: 80,
                ..ContainerPort::default()
            },
        ];
        c.env = vec![
            EnvVar::new("1BAD", "x"),
            EnvVar {
                name: "POD_IP".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: String::new(),
                        field_path: "status.nope".into(),
                    }),
                    ..EnvVarSource::default()
                }),
            },
        ];
        c.resources
            .requests
            .insert("cpu".into(), "2".parse().unwrap());
        c.resources
            .limits
            .insert("cpu".into(), "1".parse().unwrap());
        c.liveness_probe = Some(Probe::default());
        c.readiness_probe = Some(Probe {
            http_get: Some(HttpGetAction {
                port: 0.into(),
                ..HttpGetAction::default()
            }),
            period_seconds: Some(0),
            ..Probe::default()
        });
        let msgs = messages(&pod(vec![c]).validate());
        let expected = [
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
            "spec.containers[0].ports[1].name: Invalid value: \"8080\": must contain at least one letter (a-z)",
            "spec.containers[0].env[0].name: Invalid value: \"1BAD\": a valid environment variable name",
            "spec.containers[0].env[1].valueFrom.fieldRef.fieldPath: Unsupported value: \"status.nope\"",
            "spec.containers[0].resources.requests[cpu]: Invalid value: \"2\": must be less than or equal to cpu limit of 1",
            "spec.containers[0].livenessProbe: Required value: must specify a handler type",
            "spec.containers[0].readinessProbe.httpGet.port: Invalid value: 0: must be between 1 and 65535, inclusive",
            "spec.containers[0].readinessProbe.periodSeconds: Invalid value: 0: must be greater than 0",
        ];
        assert_eq!(msgs.len(), expected.len(), "{msgs:#?}");
        for (msg, want) in msgs.iter().zip(expected) {
            assert!(
                msg.starts_with(want),
                "{msg}\n  does not start with\n{want}"
            );
        }
    }

    #[test]
    fn scheduling_constraints() {
        let mut p = pod(vec![container("web", "nginx")]);
        p.spec.tolerations = vec![Toleration {
            operator: Some(TolerationOperator::Exists),
            value: "x".into(),
            toleration_seconds: Some(10),
            ..Toleration::default()
        }];
        p.spec.topology_spread_constraints = vec![TopologySpreadConstraint {
            max_skew: 0,
            topology_key: String::new(),
            when_unsatisfiable: UnsatisfiableConstraintAction::ScheduleAnyway,
            label_selector: None,
            min_domains: Some(2),
        }];
        p.spec.affinity = Some(Affinity {
            node_affinity: Some(crate::resources::pod::NodeAffinity {
                required_during_scheduling_ignored_during_execution: Some(
                    crate::resources::pod::NodeSelector {
                        node_selector_terms: vec![NodeSelectorTerm {
                            match_expressions: vec![
                                NodeSelectorRequirement {
                                    key: "zone".into(),
                                    operator: NodeSelectorOperator::In,
                                    values: vec![],
                                },
                                NodeSelectorRequirement {
                                    key: "cores".into(),
                                    operator: NodeSelectorOperator::Gt,
                                    values: vec!["many".into()],
                                },
                            ],
                            match_fields: vec![],
                        }],
                    },
                ),
                preferred_during_scheduling_ignored_during_execution: vec![],
            }),
            pod_affinity: None,
            pod_anti_affinity: Some(crate::resources::pod::PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: vec![
                    PodAffinityTerm::default(),
                ],
                preferred_during_scheduling_ignored_during_execution: vec![],
            }),
        });
        let msgs = messages(&p.validate());
        let expected = [
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[0].values: Required value",
            "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchExpressions[1].values[0]: Invalid value: \"many\": must be an integer",
            "spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey: Required value",
            "spec.tolerations[0].operator: Invalid value: \"x\": value must be empty",
            "spec.tolerations[0].effect: Invalid value: \"\": effect must be 'NoExecute'",
            "spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero",
            "spec.topologySpreadConstraints[0].topologyKey: Required value",
            "spec.topologySpreadConstraints[0].minDomains: Invalid value: 2: can only use minDomains if whenUnsatisfiable=DoNotSchedule",
        ];
        assert_eq!(msgs.len(), expected.len(), "{msgs:#?}");
        for (msg, want) in msgs.iter().zip(expected) {
            assert!(
                msg.starts_with(want),
                "{msg}\n  does not start with\n{want}"
            );
        }
    }

    #[test]
    fn restart_policy_only_always_on_init_containers_which_may_then_have_probes() {
        let exec = || {
            Some(Probe {
                exec: Some(crate::resources::pod::ExecAction {
                    command: vec!["true".into()],
                }),
                ..Probe::default()
            })
        };
        let mut sidecar = container("mesh", "proxy");
        sidecar.restart_policy = Some(RestartPolicy::Always);
        sidecar.readiness_probe = exec();
        sidecar.startup_probe = exec();
        sidecar.liveness_probe = exec();
        let mut never = container("setup", "busybox");
        never.restart_policy = Some(RestartPolicy::Never);
        let mut plain_init = container("migrate", "busybox");
        plain_init.readiness_probe = exec();
        let mut app = container("web", "nginx");
        app.restart_policy = Some(RestartPolicy::Always);
        let mut p = pod(vec![app, container("worker", "busybox")]);
        p.spec.init_containers = vec![sidecar, never, plain_init];
        p.apply_defaults();
        assert_eq!(
            messages(&p.validate()),
            vec![
                "spec.initContainers[1].restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec.initContainers[2].readinessProbe: Forbidden: may not be set for init containers without restartPolicy=Always",
                "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers",
            ]
        );

        // A sidecar's probes are checked as an app container's are.
        p.spec.init_containers.truncate(1);
        p.spec.containers[0].restart_policy = None;
        p.spec.init_containers[0]
            .liveness_probe
            .as_mut()
            .unwrap()
            .success_threshold = Some(2);
        assert_eq!(
            messages(&p.validate()),
            vec![
                "spec.initContainers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"
            ]
        );
        p.spec.init_containers[0]
            .liveness_probe
            .as_mut()
            .unwrap()
            .success_threshold = Some(1);
        assert!(p.validate().is_empty(), "{}", p.validate());

        // The policy is part of the spec a pod update may not change.
        let mut changed = p.clone();
        changed.spec.init_containers[0].restart_policy = None;
        assert_eq!(validate_pod_update(&changed, &p).len(), 1);
    }

    #[test]
    fn updates_may_change_images_only() {
        let old = pod(vec![container("web", "nginx:1")]);
        let mut new = old.clone();
        new.spec.containers[0].image = "nginx:2".into();
        assert!(validate_pod_update(&new, &old).is_empty());
        new.spec.node_name = "n1".into();
        assert!(
            messages(&validate_pod_update(&new, &old))[0]
                .starts_with("spec: Forbidden: pod updates may not change")
        );
    }
}
