//! Checks of Services and Endpoints.

use std::collections::HashSet;

use serde_json::json;

use super::names;
use super::{ErrorList, FieldError, FieldPath, validate_labels};
use crate::meta::IntOrString;
use crate::resources::{Endpoints, Service, ServiceType, SessionAffinity};

fn push_msgs(errors: &mut ErrorList, path: &FieldPath, value: &str, msgs: Vec<String>) {
    for msg in msgs {
        errors.push(FieldError::invalid(path, value, msg));
    }
}

fn check_port(errors: &mut ErrorList, path: &FieldPath, port: i32) {
    for msg in names::is_valid_port_num(port) {
        errors.push(FieldError::invalid(path, port, msg));
    }
}

/// Checks a Service's spec: supported type, cluster IP, ports (range, names, duplicates,
/// target ports, node ports), selector and session affinity.
pub fn validate_service(service: &Service) -> ErrorList {
    let spec = &service.spec;
    let sp = FieldPath::new("spec");
    let mut errors = ErrorList::new();
    let type_ = spec.type_.unwrap_or(ServiceType::ClusterIP);
    if matches!(type_, ServiceType::LoadBalancer | ServiceType::ExternalName) {
        errors.push(FieldError::not_supported(
            &sp.child("type"),
            type_.as_str(),
            &["ClusterIP", "NodePort"],
        ));
    }
    let headless = spec.cluster_ip == "None";
    if !spec.cluster_ip.is_empty() && !headless {
        push_msgs(
            &mut errors,
            &sp.child("clusterIP"),
            &spec.cluster_ip,
            names::is_valid_ip(&spec.cluster_ip),
        );
    }
    if headless && type_ == ServiceType::NodePort {
        errors.push(FieldError::invalid(
            &sp.child("clusterIP"),
            "None",
            "may not be set to 'None' for NodePort services",
        ));
    }

    let ports = sp.child("ports");
    if spec.ports.is_empty() && !headless {
        errors.push(FieldError::required(&ports, ""));
    }
    let mut port_names = HashSet::new();
    let mut port_protocols = HashSet::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let p = ports.index(i);
        if port.name.is_empty() {
            if spec.ports.len() > 1 {
                errors.push(FieldError::required(&p.child("name"), ""));
            }
        } else {
            push_msgs(
                &mut errors,
                &p.child("name"),
                &port.name,
                names::is_dns1123_label(&port.name),
            );
            if !port_names.insert(port.name.as_str()) {
                errors.push(FieldError::duplicate(&p.child("name"), port.name.as_str()));
            }
        }
        check_port(&mut errors, &p.child("port"), port.port);
        let protocol = port.protocol.unwrap_or_default();
        if !port_protocols.insert((port.port, protocol)) {
            errors.push(FieldError::duplicate(
                &p,
                json!({"port": port.port, "protocol": protocol.as_str()}),
            ));
        }
        match &port.target_port {
            Some(IntOrString::Int(target)) => {
                check_port(&mut errors, &p.child("targetPort"), *target)
            }
            Some(IntOrString::String(name)) => {
                push_msgs(
                    &mut errors,
                    &p.child("targetPort"),
                    name,
                    names::is_valid_port_name(name),
                );
            }
            None => {}
        }
        if let Some(node_port) = port.node_port.filter(|n| *n != 0) {
            if type_ != ServiceType::NodePort {
                errors.push(FieldError::forbidden(
                    &p.child("nodePort"),
                    format!("may not be used when `type` is '{}'", type_.as_str()),
                ));
            } else {
                check_port(&mut errors, &p.child("nodePort"), node_port);
            }
        }
    }

    errors.extend(validate_labels(&spec.selector, &sp.child("selector")));

    let config = sp.child("sessionAffinityConfig");
    match spec.session_affinity.unwrap_or(SessionAffinity::None) {
        SessionAffinity::None => {
            if spec.session_affinity_config.is_some() {
                errors.push(FieldError::forbidden(
                    &config,
                    "must not be set when `sessionAffinity` is None",
                ));
            }
        }
        SessionAffinity::ClientIP => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            if let Some(t) = timeout.filter(|t| !(1..=86400).contains(t)) {
                errors.push(FieldError::invalid(
                    &config.child("clientIP").child("timeoutSeconds"),
                    t,
                    "must be greater than 0 and less than 86400",
                ));
            }
        }
    }
    errors
}

/// Checks a Service update: the cluster IP, once set, does not change.
pub fn validate_service_update(new: &Service, old: &Service) -> ErrorList {
    let mut errors = ErrorList::new();
    if !old.spec.cluster_ip.is_empty()
        && !new.spec.cluster_ip.is_empty()
        && new.spec.cluster_ip != old.spec.cluster_ip
    {
        errors.push(FieldError::invalid(
            &FieldPath::new("spec").child("clusterIP"),
            new.spec.cluster_ip.as_str(),
            "field is immutable",
        ));
    }
    errors
}

/// Checks Endpoints: addresses are IPs, node names are DNS subdomains, ports are in range and
/// named when there are several.
pub fn validate_endpoints(endpoints: &Endpoints) -> ErrorList {
    let mut errors = ErrorList::new();
    let subsets = FieldPath::new("subsets");
    for (i, subset) in endpoints.subsets.iter().enumerate() {
        let sp = subsets.index(i);
        for (field, addresses) in [
            ("addresses", &subset.addresses),
            ("notReadyAddresses", &subset.not_ready_addresses),
        ] {
            for (j, address) in addresses.iter().enumerate() {
                let ap = sp.child(field).index(j);
                push_msgs(
                    &mut errors,
                    &ap.child("ip"),
                    &address.ip,
                    names::is_valid_ip(&address.ip),
                );
                if let Some(node) = &address.node_name {
                    push_msgs(
                        &mut errors,
                        &ap.child("nodeName"),
                        node,
                        names::is_dns1123_subdomain(node),
                    );
                }
                if !address.hostname.is_empty() {
                    push_msgs(
                        &mut errors,
                        &ap.child("hostname"),
                        &address.hostname,
                        names::is_dns1123_label(&address.hostname),
                    );
                }
            }
        }
        for (j, port) in subset.ports.iter().enumerate() {
            let pp = sp.child("ports").index(j);
            if port.name.is_empty() {
                if subset.ports.len() > 1 {
                    errors.push(FieldError::required(&pp.child("name"), ""));
                }
            } else {
                push_msgs(
                    &mut errors,
                    &pp.child("name"),
                    &port.name,
                    names::is_dns1123_label(&port.name),
                );
            }
            check_port(&mut errors, &pp.child("port"), port.port);
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Resource;
    use crate::meta::ObjectMeta;
    use crate::resources::{
        ClientIpConfig, EndpointAddress, EndpointPort, EndpointSubset, ServicePort, ServiceSpec,
        SessionAffinityConfig,
    };

    fn messages(errors: &ErrorList) -> Vec<String> {
        errors.iter().map(ToString::to_string).collect()
    }

    fn service(ports: Vec<ServicePort>) -> Service {
        Service {
            metadata: ObjectMeta::namespaced("default", "web"),
            spec: ServiceSpec {
                ports,
                selector: [("app".to_owned(), "web".to_owned())].into(),
                ..ServiceSpec::default()
            },
            status: None,
        }
    }

    #[test]
    fn a_defaulted_service_is_valid() {
        let mut s = service(vec![ServicePort {
            port: 80,
            ..ServicePort::default()
        }]);
        s.apply_defaults();
        assert!(s.validate().is_empty(), "{}", s.validate());
    }

    #[test]
    fn ports_and_types() {
        let mut s = service(vec![
            ServicePort {
                port: 80,
                node_port: Some(30080),
                ..ServicePort::default()
            },
            ServicePort {
                name: "http".into(),
                port: 80,
                target_port: Some("8080".into()),
                ..ServicePort::default()
            },
            ServicePort {
                name: "http".into(),
                port: 0,
                ..ServicePort::default()
            },
        ]);
        s.spec.type_ = Some(ServiceType::LoadBalancer);
        s.spec.session_affinity = Some(SessionAffinity::ClientIP);
        s.spec.session_affinity_config = Some(SessionAffinityConfig {
            client_ip: Some(ClientIpConfig {
                timeout_seconds: Some(0),
            }),
        });
        assert_eq!(
            messages(&s.validate()),
            vec![
                "spec.type: Unsupported value: \"LoadBalancer\": supported values: \"ClusterIP\", \"NodePort\"",
                "spec.ports[0].name: Required value",
                "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'LoadBalancer'",
                "spec.ports[1]: Duplicate value: {\"port\":80,\"protocol\":\"TCP\"}",
                "spec.ports[1].targetPort: Invalid value: \"8080\": must contain at least one letter (a-z)",
                "spec.ports[2].name: Duplicate value: \"http\"",
                "spec.ports[2].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: 0: must be greater than 0 and less than 86400",
            ]
        );
        let mut bad_name = service(vec![ServicePort {
            port: 80,
            ..ServicePort::default()
        }]);
        bad_name.metadata.name = "1web".into();
        assert!(
            messages(&bad_name.validate())[0]
                .starts_with("metadata.name: Invalid value: \"1web\": a DNS-1035 label")
        );
    }

    #[test]
    fn cluster_ip_is_immutable() {
        let mut old = service(vec![ServicePort {
            port: 80,
            ..ServicePort::default()
        }]);
        old.spec.cluster_ip = "10.96.0.10".into();
        let mut new = old.clone();
        new.spec.cluster_ip = "10.96.0.11".into();
        assert_eq!(
            messages(&new.validate_update(&old)),
            vec!["spec.clusterIP: Invalid value: \"10.96.0.11\": field is immutable"]
        );
    }

    #[test]
    fn endpoints() {
        let e = Endpoints {
            metadata: ObjectMeta::namespaced("default", "web"),
            subsets: vec![EndpointSubset {
                addresses: vec![EndpointAddress {
                    ip: "10.0.0.300".into(),
                    ..EndpointAddress::default()
                }],
                not_ready_addresses: vec![],
                ports: vec![EndpointPort {
                    port: 70000,
                    ..EndpointPort::default()
                }],
            }],
        };
        assert_eq!(
            messages(&e.validate()),
            vec![
                "subsets[0].addresses[0].ip: Invalid value: \"10.0.0.300\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "subsets[0].ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
            ]
        );
    }
}
