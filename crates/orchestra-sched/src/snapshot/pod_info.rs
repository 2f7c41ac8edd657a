//! [`PodInfo`]: a pod with everything the plugins need precomputed once (requests, host ports,
//! parsed affinity and spread selectors, normalized image names), so that no Filter or Score
//! call parses or allocates.

use std::sync::Arc;

use orchestra_api::Selector;
use orchestra_api::meta::{LabelSelector, Time};
use orchestra_api::resources::{
    Pod, PodAffinityTerm, Protocol, UnsatisfiableConstraintAction, WeightedPodAffinityTerm,
};

use crate::resources::PodRequests;

/// Why a pod could not be prepared for scheduling: one of its selectors is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pod {pod}: {field}: {message}")]
pub struct PodInfoError {
    /// The pod, `namespace/name`.
    pub pod: String,
    /// The field, e.g. `spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// A host port a container binds on its node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host IP; `None` for every address (`0.0.0.0`, or unset).
    pub ip: Option<std::net::IpAddr>,
    /// The protocol.
    pub protocol: Protocol,
    /// The port.
    pub port: i32,
}

impl HostPort {
    /// Whether two host ports cannot both be bound on one node: same protocol and port, and
    /// the same IP or either on every address.
    pub fn conflicts(&self, other: &HostPort) -> bool {
        self.port == other.port
            && self.protocol == other.protocol
            && (self.ip.is_none() || other.ip.is_none() || self.ip == other.ip)
    }
}

/// A pod (anti-)affinity term, parsed.
#[derive(Clone, Debug)]
pub struct AffinityTerm {
    /// Which pods the term is about.
    pub selector: Selector,
    /// The namespaces to look in (the pod's own when the term names none and has no
    /// namespace selector).
    pub namespaces: Vec<String>,
    /// More namespaces, by their labels (an empty selector means every namespace).
    pub namespace_selector: Option<Selector>,
    /// The node label defining the domain.
    pub topology_key: Arc<str>,
    /// The term's weight (preferred terms; 0 for required ones).
    pub weight: i64,
}

impl AffinityTerm {
    /// Whether `pod` is one of the pods this term is about. `namespace_labels` looks up a
    /// namespace's labels (for namespace selectors).
    pub fn matches<'a>(
        &self,
        pod: &PodInfo,
        namespace_labels: impl Fn(&str) -> Option<&'a std::collections::BTreeMap<String, String>>,
    ) -> bool {
        let ns = pod.namespace();
        let in_namespace = self.namespaces.iter().any(|n| n == ns)
            || self.namespace_selector.as_ref().is_some_and(|sel| {
                sel.is_everything() || namespace_labels(ns).is_some_and(|l| sel.matches(l))
            });
        in_namespace && self.selector.matches(&pod.pod.metadata.labels)
    }
}

/// A topology spread constraint, parsed.
#[derive(Clone, Debug)]
pub struct SpreadConstraint {
    /// The most two domains' counts may differ by.
    pub max_skew: i64,
    /// The node label defining the domains.
    pub topology_key: Arc<str>,
    /// What to do when it cannot be satisfied.
    pub action: UnsatisfiableConstraintAction,
    /// Which pods are counted (an absent selector counts none).
    pub selector: Selector,
    /// The least number of domains (`DoNotSchedule` only).
    pub min_domains: Option<i64>,
}

/// A pod and what the plugins need of it; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct PodInfo {
    /// The pod.
    pub pod: Arc<Pod>,
    key: String,
    /// Its requests.
    pub requests: PodRequests,
    /// The host ports its containers bind.
    pub host_ports: Vec<HostPort>,
    /// Required pod affinity terms.
    pub required_affinity: Vec<AffinityTerm>,
    /// Required pod anti-affinity terms.
    pub required_anti_affinity: Vec<AffinityTerm>,
    /// Preferred pod affinity terms, with weights.
    pub preferred_affinity: Vec<AffinityTerm>,
    /// Preferred pod anti-affinity terms, with weights.
    pub preferred_anti_affinity: Vec<AffinityTerm>,
    /// Topology spread constraints.
    pub spread_constraints: Vec<SpreadConstraint>,
    /// Its containers' images, normalized (`nginx` is `nginx:latest`).
    pub images: Vec<Arc<str>>,
    /// Its priority (0 when unset).
    pub priority: i32,
    /// The hash of its namespace and labels (see [`super::PodGroups`]).
    pub(crate) group_hash: u64,
    /// `status.startTime` (preemption orders victims by it, many times per cycle).
    pub(crate) start_time: Option<Time>,
}

impl PodInfo {
    /// Prepare a pod; fails if one of its selectors is invalid.
    pub fn new(pod: impl Into<Arc<Pod>>) -> Result<PodInfo, PodInfoError> {
        let pod: Arc<Pod> = pod.into();
        let key = format!("{}/{}", pod.metadata.namespace, pod.metadata.name);
        let spec = &pod.spec;
        let err = |field: String, message: String| PodInfoError {
            pod: key.clone(),
            field,
            message,
        };
        let mut host_ports = Vec::new();
        for c in spec.init_containers.iter().chain(&spec.containers) {
            for p in &c.ports {
                let Some(port) = p.host_port.filter(|p| *p > 0) else {
                    continue;
                };
                let ip = match p.host_ip.as_str() {
                    "" => None,
                    text => match text.parse::<std::net::IpAddr>() {
                        Ok(ip) if ip.is_unspecified() => None,
                        Ok(ip) => Some(ip),
                        Err(_) => {
                            return Err(err(
                                format!("spec.containers[{}].ports.hostIP", c.name),
                                format!("{text:?} is not an IP address"),
                            ));
                        }
                    },
                };
                host_ports.push(HostPort {
                    ip,
                    protocol: p.protocol.unwrap_or_default(),
                    port,
                });
            }
        }
        let ns = pod.metadata.namespace.as_str();
        let affinity = spec.affinity.as_ref();
        let pa = affinity.and_then(|a| a.pod_affinity.as_ref());
        let paa = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
        const REQ: &str = "requiredDuringSchedulingIgnoredDuringExecution";
        const PREF: &str = "preferredDuringSchedulingIgnoredDuringExecution";
        let required = |terms: &[PodAffinityTerm], path: &str| {
            terms
                .iter()
                .enumerate()
                .map(|(i, t)| parse_term(t, 0, ns, &format!("{path}.{REQ}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
        };
        let preferred = |terms: &[WeightedPodAffinityTerm], path: &str| {
            terms
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    parse_term(
                        &t.pod_affinity_term,
                        i64::from(t.weight),
                        ns,
                        &format!("{path}.{PREF}[{i}].podAffinityTerm"),
                    )
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let empty: (&[PodAffinityTerm], &[WeightedPodAffinityTerm]) = (&[], &[]);
        let (a_req, a_pref) = pa.map_or(empty, |a| {
            (
                &a.required_during_scheduling_ignored_during_execution[..],
                &a.preferred_during_scheduling_ignored_during_execution[..],
            )
        });
        let (aa_req, aa_pref) = paa.map_or(empty, |a| {
            (
                &a.required_during_scheduling_ignored_during_execution[..],
                &a.preferred_during_scheduling_ignored_during_execution[..],
            )
        });
        const PA: &str = "spec.affinity.podAffinity";
        const PAA: &str = "spec.affinity.podAntiAffinity";
        let terms = (|| {
            Ok::<_, (String, String)>((
                required(a_req, PA)?,
                required(aa_req, PAA)?,
                preferred(a_pref, PA)?,
                preferred(aa_pref, PAA)?,
            ))
        })();
        let (
            required_affinity,
            required_anti_affinity,
            preferred_affinity,
            preferred_anti_affinity,
        ) = terms.map_err(|(field, message)| err(field, message))?;
        let mut spread_constraints = Vec::with_capacity(spec.topology_spread_constraints.len());
        for (i, c) in spec.topology_spread_constraints.iter().enumerate() {
            let field = format!("spec.topologySpreadConstraints[{i}]");
            if c.max_skew < 1 {
                return Err(err(
                    format!("{field}.maxSkew"),
                    format!("must be at least 1, found {}", c.max_skew),
                ));
            }
            if c.topology_key.is_empty() {
                return Err(err(format!("{field}.topologyKey"), "must be set".into()));
            }
            let selector = selector(c.label_selector.as_ref())
                .map_err(|m| err(format!("{field}.labelSelector"), m))?;
            spread_constraints.push(SpreadConstraint {
                max_skew: i64::from(c.max_skew),
                topology_key: Arc::from(c.topology_key.as_str()),
                action: c.when_unsatisfiable,
                selector,
                min_domains: c.min_domains.map(i64::from),
            });
        }
        let images = spec
            .init_containers
            .iter()
            .chain(&spec.containers)
            .filter(|c| !c.image.is_empty())
            .map(|c| normalize_image(&c.image))
            .collect();
        Ok(PodInfo {
            requests: PodRequests::of(spec),
            host_ports,
            required_affinity,
            required_anti_affinity,
            preferred_affinity,
            preferred_anti_affinity,
            spread_constraints,
            images,
            priority: spec.priority.unwrap_or(0),
            group_hash: super::pod_groups::group_hash(&pod),
            start_time: pod.status.as_ref().and_then(|s| s.start_time),
            key,
            pod,
        })
    }

    /// `namespace/name`: the pod's key in a snapshot.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The pod's namespace.
    pub fn namespace(&self) -> &str {
        &self.pod.metadata.namespace
    }

    /// The pod's name.
    pub fn name(&self) -> &str {
        &self.pod.metadata.name
    }

    /// Whether the pod has any pod affinity or anti-affinity term (required or preferred).
    pub fn has_affinity(&self) -> bool {
        !(self.required_affinity.is_empty()
            && self.required_anti_affinity.is_empty()
            && self.preferred_affinity.is_empty()
            && self.preferred_anti_affinity.is_empty())
    }
}

/// Parse one pod affinity term (`path` names it in errors).
fn parse_term(
    term: &PodAffinityTerm,
    weight: i64,
    own_namespace: &str,
    path: &str,
) -> Result<AffinityTerm, (String, String)> {
    if term.topology_key.is_empty() {
        return Err((format!("{path}.topologyKey"), "must be set".into()));
    }
    let selector =
        selector(term.label_selector.as_ref()).map_err(|m| (format!("{path}.labelSelector"), m))?;
    let namespace_selector = term
        .namespace_selector
        .as_ref()
        .map(|s| Selector::try_from(s).map_err(|e| e.to_string()))
        .transpose()
        .map_err(|m| (format!("{path}.namespaceSelector"), m))?;
    let mut namespaces = term.namespaces.clone();
    if namespaces.is_empty() && namespace_selector.is_none() {
        namespaces.push(own_namespace.to_owned());
    }
    Ok(AffinityTerm {
        selector,
        namespaces,
        namespace_selector,
        topology_key: Arc::from(term.topology_key.as_str()),
        weight,
    })
}

/// A `LabelSelector` as a matcher: absent matches nothing, empty matches everything.
fn selector(s: Option<&LabelSelector>) -> Result<Selector, String> {
    Selector::from_label_selector(s).map_err(|e| e.to_string())
}

/// An image reference with its default tag: `nginx` becomes `nginx:latest`; references with
/// a tag or a digest are kept.
pub fn normalize_image(image: &str) -> Arc<str> {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        Arc::from(image)
    } else {
        Arc::from(format!("{image}:latest"))
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::meta::ObjectMeta;
    use orchestra_api::resources::{
        Affinity, Container, ContainerPort, PodAntiAffinity, PodSpec, TopologySpreadConstraint,
    };

    use super::*;

    fn pod(spec: PodSpec) -> Pod {
        Pod {
            metadata: ObjectMeta::namespaced("shop", "web").with_label("app", "web"),
            spec,
            status: None,
        }
    }

    #[test]
    fn collects_host_ports_images_and_terms() {
        let spec = PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: "registry:5000/nginx".into(),
                ports: vec![
                    ContainerPort {
                        container_port: 80,
                        host_port: Some(8080),
                        ..ContainerPort::default()
                    },
                    ContainerPort {
                        container_port: 81,
                        ..ContainerPort::default()
                    },
                ],
                ..Container::default()
            }],
            affinity: Some(Affinity {
                pod_anti_affinity: Some(PodAntiAffinity {
                    required_during_scheduling_ignored_during_execution: vec![PodAffinityTerm {
                        label_selector: Some(LabelSelector::match_labels([("app", "web")])),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..PodAffinityTerm::default()
                    }],
                    ..PodAntiAffinity::default()
                }),
                ..Affinity::default()
            }),
            ..PodSpec::default()
        };
        let info = PodInfo::new(pod(spec)).unwrap();
        assert_eq!(info.key(), "shop/web");
        assert_eq!(info.host_ports.len(), 1);
        assert_eq!(&*info.images[0], "registry:5000/nginx:latest");
        let term = &info.required_anti_affinity[0];
        assert_eq!(term.namespaces, ["shop"]);
        assert!(term.matches(&info, |_| None));
        assert!(info.has_affinity());
    }

    #[test]
    fn invalid_selectors_name_the_field() {
        let spec = PodSpec {
            topology_spread_constraints: vec![TopologySpreadConstraint {
                max_skew: 1,
                topology_key: "zone".into(),
                label_selector: Some(LabelSelector::match_labels([("bad key!", "x")])),
                ..TopologySpreadConstraint::default()
            }],
            ..PodSpec::default()
        };
        let err = PodInfo::new(pod(spec)).unwrap_err();
        assert_eq!(err.field, "spec.topologySpreadConstraints[0].labelSelector");
        assert!(
            err.to_string().starts_with("pod shop/web: spec.topology"),
            "{err}"
        );
    }

    #[test]
    fn host_ports_conflict_by_protocol_port_and_ip() {
        let any = HostPort {
            ip: None,
            protocol: Protocol::Tcp,
            port: 80,
        };
        let one = HostPort {
            ip: Some("10.0.0.1".parse().unwrap()),
            ..any
        };
        let two = HostPort {
            ip: Some("10.0.0.2".parse().unwrap()),
            ..any
        };
        assert!(any.conflicts(&one) && one.conflicts(&any));
        assert!(!one.conflicts(&two));
        assert!(!any.conflicts(&HostPort {
            protocol: Protocol::Udp,
            ..any
        }));
    }
}
