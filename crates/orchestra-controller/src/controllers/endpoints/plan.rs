//! The Endpoints controller's decision, as a pure function: a service and the pods of its
//! namespace in, the endpoint subsets out.

use std::collections::BTreeMap;
use std::sync::Arc;

use orchestra_api::resources::{
    EndpointAddress, EndpointPort, EndpointSubset, ObjectReference, Pod, PodPhase, Protocol,
    Service, ServicePort,
};
use orchestra_api::{IntOrString, Resource, Selector, SelectorError};

use crate::controllers::pods;

/// The subsets of `service`'s endpoints: for each pod its selector matches that has an IP and
/// is neither terminated nor being deleted, one address, ready or not ready (ready whenever the
/// service publishes not-ready addresses), and for each service port the pod resolves (a
/// `targetPort` number, or the name of one of its container ports with the same protocol; the
/// service port itself when unset), one endpoint port. Addresses with the same ports share a
/// subset; subsets and addresses are sorted, so equal inputs give equal outputs. `None` for a
/// service without a selector: its endpoints are someone else's to manage.
pub fn subsets(
    service: &Service,
    namespace_pods: &[Arc<Pod>],
) -> Result<Option<Vec<EndpointSubset>>, SelectorError> {
    if service.spec.selector.is_empty() {
        return Ok(None);
    }
    let selector = Selector::from_labels(&service.spec.selector)?;
    let mut by_ports: BTreeMap<Vec<PortKey>, (Vec<EndpointAddress>, Vec<EndpointAddress>)> =
        BTreeMap::new();
    for pod in namespace_pods {
        if !selector.matches(&pod.metadata.labels) {
            continue;
        }
        let Some(ip) = pod.status.as_ref().map(|s| s.pod_ip.as_str()) else {
            continue;
        };
        let phase = pod.status.as_ref().and_then(|s| s.phase);
        if ip.is_empty()
            || pod.metadata.deletion_timestamp.is_some()
            || matches!(phase, Some(PodPhase::Succeeded | PodPhase::Failed))
        {
            continue;
        }
        let ports: Vec<PortKey> = service
            .spec
            .ports
            .iter()
            .filter_map(|port| resolve_port(port, pod).map(|number| PortKey::new(port, number)))
            .collect();
        if ports.is_empty() && !service.spec.ports.is_empty() {
            continue;
        }
        // A pod that names this service as its subdomain (a stateful set's) is reachable by
        // its hostname under the service: `HOSTNAME.SERVICE.NAMESPACE.svc`.
        let hostname = if !pod.spec.hostname.is_empty()
            && pod.spec.subdomain == service.metadata.name
            && pod.metadata.namespace == service.metadata.namespace
        {
            pod.spec.hostname.clone()
        } else {
            String::new()
        };
        let address = EndpointAddress {
            ip: ip.to_owned(),
            hostname,
            node_name: (!pod.spec.node_name.is_empty()).then(|| pod.spec.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Pod::KIND.into(),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                ..ObjectReference::default()
            }),
        };
        let entry = by_ports.entry(ports).or_default();
        if pods::is_ready(pod) || service.spec.publish_not_ready_addresses {
            entry.0.push(address);
        } else {
            entry.1.push(address);
        }
    }
    Ok(Some(
        by_ports
            .into_iter()
            .map(|(ports, (mut ready, mut not_ready))| {
                let order = |a: &EndpointAddress, b: &EndpointAddress| {
                    (&a.ip, &a.target_ref.as_ref().map(|r| &r.name))
                        .cmp(&(&b.ip, &b.target_ref.as_ref().map(|r| &r.name)))
                };
                ready.sort_by(order);
                not_ready.sort_by(order);
                EndpointSubset {
                    addresses: ready,
                    not_ready_addresses: not_ready,
                    ports: ports.into_iter().map(PortKey::into_port).collect(),
                }
            })
            .collect(),
    ))
}

/// The port number `port` targets on `pod`, if the pod has it.
pub fn resolve_port(port: &ServicePort, pod: &Pod) -> Option<i32> {
    let protocol = port.protocol.unwrap_or_default();
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(number)) => Some(*number),
        Some(IntOrString::String(name)) => pod
            .spec
            .containers
            .iter()
            .flat_map(|c| &c.ports)
            .find(|p| p.name == *name && p.protocol.unwrap_or_default() == protocol)
            .map(|p| p.container_port),
    }
}

/// An endpoint port as a sortable key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PortKey {
    name: String,
    port: i32,
    protocol: &'static str,
    app_protocol: String,
}

impl PortKey {
    fn new(port: &ServicePort, number: i32) -> Self {
        PortKey {
            name: port.name.clone(),
            port: number,
            protocol: port.protocol.unwrap_or_default().as_str(),
            app_protocol: port.app_protocol.clone(),
        }
    }

    fn into_port(self) -> EndpointPort {
        let protocol = match self.protocol {
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            _ => Protocol::Tcp,
        };
        EndpointPort {
            name: self.name,
            port: self.port,
            protocol: Some(protocol),
            app_protocol: self.app_protocol,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use orchestra_api::ObjectMeta;
    use orchestra_api::resources::{
        ConditionStatus, Container, ContainerPort, PodCondition, PodStatus,
    };

    use super::*;

    fn service(ports: Vec<ServicePort>) -> Service {
        let mut service = Service {
            metadata: ObjectMeta::namespaced("ns", "web"),
            ..Service::default()
        };
        service.spec.selector = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
        service.spec.ports = ports;
        service
    }

    fn port(name: &str, port: i32, target: Option<IntOrString>) -> ServicePort {
        ServicePort {
            name: name.into(),
            port,
            target_port: target,
            ..ServicePort::default()
        }
    }

    fn pod(name: &str, ip: &str, ready: bool, http_port: Option<i32>) -> Arc<Pod> {
        let mut pod = Pod {
            metadata: ObjectMeta::namespaced("ns", name).with_label("app", "web"),
            ..Pod::default()
        };
        pod.metadata.uid = format!("uid-{name}");
        pod.spec.node_name = "node-1".into();
        pod.spec.containers = vec![Container {
            name: "main".into(),
            ports: http_port
                .map(|p| ContainerPort {
                    name: "http".into(),
                    container_port: p,
                    ..ContainerPort::default()
                })
                .into_iter()
                .collect(),
            ..Container::default()
        }];
        pod.status = Some(PodStatus {
            pod_ip: ip.into(),
            phase: Some(PodPhase::Running),
            conditions: vec![PodCondition {
                type_: "Ready".into(),
                status: if ready {
                    ConditionStatus::True
                } else {
                    ConditionStatus::False
                },
                ..PodCondition::default()
            }],
            ..PodStatus::default()
        });
        Arc::new(pod)
    }

    fn address(name: &str, ip: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.into(),
            hostname: String::new(),
            node_name: Some("node-1".into()),
            target_ref: Some(ObjectReference {
                kind: "Pod".into(),
                namespace: "ns".into(),
                name: name.into(),
                uid: format!("uid-{name}"),
                ..ObjectReference::default()
            }),
        }
    }

    fn endpoint_port(name: &str, port: i32) -> EndpointPort {
        EndpointPort {
            name: name.into(),
            port,
            protocol: Some(Protocol::Tcp),
            app_protocol: String::new(),
        }
    }

    #[test]
    fn ready_and_not_ready_addresses_with_named_and_numbered_target_ports() {
        let svc = service(vec![
            port("http", 80, Some(IntOrString::String("http".into()))),
            port("metrics", 9000, Some(IntOrString::Int(9090))),
        ]);
        let mut other = (*pod("other-app", "10.0.0.9", true, Some(8080))).clone();
        other.metadata.labels.insert("app".into(), "db".into());
        let pods = vec![
            pod("b", "10.0.0.2", true, Some(8080)),
            pod("a", "10.0.0.1", false, Some(8080)),
            pod("c", "10.0.0.3", true, Some(8080)),
            pod("no-ip", "", true, Some(8080)),
            Arc::new(other),
        ];
        let subsets = subsets(&svc, &pods).unwrap().unwrap();
        assert_eq!(
            subsets,
            [EndpointSubset {
                addresses: vec![address("b", "10.0.0.2"), address("c", "10.0.0.3")],
                not_ready_addresses: vec![address("a", "10.0.0.1")],
                ports: vec![endpoint_port("http", 8080), endpoint_port("metrics", 9090)],
            }]
        );
    }

    #[test]
    fn pods_resolving_different_ports_get_separate_subsets() {
        let svc = service(vec![port(
            "http",
            80,
            Some(IntOrString::String("http".into())),
        )]);
        let pods = vec![
            pod("old", "10.0.0.1", true, Some(8080)),
            pod("new", "10.0.0.2", true, Some(9090)),
            pod("portless", "10.0.0.3", true, None),
        ];
        let subsets = subsets(&svc, &pods).unwrap().unwrap();
        assert_eq!(
            subsets,
            [
                EndpointSubset {
                    addresses: vec![address("old", "10.0.0.1")],
                    not_ready_addresses: Vec::new(),
                    ports: vec![endpoint_port("http", 8080)],
                },
                EndpointSubset {
                    addresses: vec![address("new", "10.0.0.2")],
                    not_ready_addresses: Vec::new(),
                    ports: vec![endpoint_port("http", 9090)],
                },
            ],
            "a pod without the named port is left out"
        );
    }

    #[test]
    fn publish_not_ready_terminating_and_selectorless_services() {
        let mut svc = service(vec![port("", 80, None)]);
        svc.spec.publish_not_ready_addresses = true;
        let mut terminating = (*pod("t", "10.0.0.5", true, None)).clone();
        terminating.metadata.deletion_timestamp = Some("2024-01-01T00:00:00Z".parse().unwrap());
        let pods = vec![pod("a", "10.0.0.1", false, None), Arc::new(terminating)];
        let subsets_out = subsets(&svc, &pods).unwrap().unwrap();
        assert_eq!(
            subsets_out,
            [EndpointSubset {
                addresses: vec![address("a", "10.0.0.1")],
                not_ready_addresses: Vec::new(),
                ports: vec![endpoint_port("", 80)],
            }]
        );
        svc.spec.selector.clear();
        assert_eq!(subsets(&svc, &pods).unwrap(), None);
    }

    #[test]
    fn a_pod_with_this_service_as_subdomain_is_named_by_its_hostname() {
        let svc = service(vec![port("http", 80, None)]);
        let mut named = (*pod("web-0", "10.0.0.1", true, None)).clone();
        named.spec.hostname = "web-0".into();
        named.spec.subdomain = "web".into();
        let mut elsewhere = (*pod("web-1", "10.0.0.2", true, None)).clone();
        elsewhere.spec.hostname = "web-1".into();
        elsewhere.spec.subdomain = "other".into();
        let subsets = subsets(&svc, &[Arc::new(named), Arc::new(elsewhere)])
            .unwrap()
            .unwrap();
        let hostnames: Vec<&str> = subsets[0]
            .addresses
            .iter()
            .map(|a| a.hostname.as_str())
            .collect();
        assert_eq!(hostnames, ["web-0", ""]);
    }
}
