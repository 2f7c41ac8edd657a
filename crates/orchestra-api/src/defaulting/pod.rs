//! Defaults of pods, pod templates and containers.

use crate::resources::Protocol;
use crate::resources::pod::{
    Container, DEFAULT_VOLUME_MODE, DnsPolicy, DownwardApiVolumeFile, PodSpec, PreemptionPolicy,
    Probe, PullPolicy, RestartPolicy, UriScheme, Volume,
};

/// The scheduler pods go to when they name none.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// The grace period between TERM and KILL when a pod names none.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;

/// Fills a pod spec's defaults (see the [module table](super)).
pub fn default_pod_spec(spec: &mut PodSpec) {
    spec.restart_policy.get_or_insert(RestartPolicy::Always);
    spec.termination_grace_period_seconds
        .get_or_insert(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    spec.dns_policy.get_or_insert(DnsPolicy::ClusterFirst);
    if spec.scheduler_name.is_empty() {
        spec.scheduler_name = DEFAULT_SCHEDULER_NAME.to_owned();
    }
    spec.preemption_policy
        .get_or_insert(PreemptionPolicy::PreemptLowerPriority);
    for container in spec
        .init_containers
        .iter_mut()
        .chain(spec.containers.iter_mut())
    {
        default_container(container);
    }
    for volume in &mut spec.volumes {
        default_volume(volume);
    }
}

/// Fills a volume's defaults: `defaultMode` 0644 for ConfigMap, Secret, downward API and
/// projected volumes, `apiVersion: v1` in downward API field references (projected ones too).
pub fn default_volume(volume: &mut Volume) {
    if let Some(source) = &mut volume.config_map {
        source.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(source) = &mut volume.secret {
        source.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
    }
    if let Some(source) = &mut volume.downward_api {
        source.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        default_field_refs(&mut source.items);
    }
    if let Some(source) = &mut volume.projected {
        source.default_mode.get_or_insert(DEFAULT_VOLUME_MODE);
        for downward in source
            .sources
            .iter_mut()
            .filter_map(|s| s.downward_api.as_mut())
        {
            default_field_refs(&mut downward.items);
        }
    }
}

fn default_field_refs(items: &mut [DownwardApiVolumeFile]) {
    for field_ref in items.iter_mut().filter_map(|i| i.field_ref.as_mut()) {
        if field_ref.api_version.is_empty() {
            field_ref.api_version = "v1".to_owned();
        }
    }
}

/// Fills a container's defaults: pull policy, port protocols, requests from limits, probes.
pub fn default_container(c: &mut Container) {
    if c.image_pull_policy.is_none() && !c.image.is_empty() {
        c.image_pull_policy = Some(image_pull_policy(&c.image));
    }
    for port in &mut c.ports {
        port.protocol.get_or_insert(Protocol::Tcp);
    }
    for (name, limit) in &c.resources.limits {
        c.resources.requests.entry(name.clone()).or_insert(*limit);
    }
    for env in &mut c.env {
        if let Some(field_ref) = env.value_from.as_mut().and_then(|f| f.field_ref.as_mut())
            && field_ref.api_version.is_empty()
        {
            field_ref.api_version = "v1".to_owned();
        }
    }
    for probe in [
        &mut c.liveness_probe,
        &mut c.readiness_probe,
        &mut c.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
}

fn default_probe(probe: &mut Probe) {
    probe.timeout_seconds.get_or_insert(1);
    probe.period_seconds.get_or_insert(10);
    probe.success_threshold.get_or_insert(1);
    probe.failure_threshold.get_or_insert(3);
    if let Some(http) = &mut probe.http_get {
        if http.path.is_empty() {
            http.path = "/".to_owned();
        }
        http.scheme.get_or_insert(UriScheme::Http);
    }
}

/// The default pull policy of an image: `Always` for the `latest` tag or no tag,
/// `IfNotPresent` for any other tag or a digest.
pub fn image_pull_policy(image: &str) -> PullPolicy {
    if image.contains('@') {
        return PullPolicy::IfNotPresent;
    }
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    match last_segment.rsplit_once(':') {
        Some((_, tag)) if tag != "latest" => PullPolicy::IfNotPresent,
        _ => PullPolicy::Always,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::pod::{ContainerPort, HttpGetAction};

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(image_pull_policy("nginx"), PullPolicy::Always);
        assert_eq!(image_pull_policy("nginx:latest"), PullPolicy::Always);
        assert_eq!(image_pull_policy("nginx:1.27"), PullPolicy::IfNotPresent);
        assert_eq!(image_pull_policy("registry:5000/app"), PullPolicy::Always);
        assert_eq!(
            image_pull_policy("registry:5000/app:v2"),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            image_pull_policy("app@sha256:abcd"),
            PullPolicy::IfNotPresent
        );
    }

    #[test]
    fn pod_spec_defaults() {
        let mut spec = PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: "nginx:1.27".into(),
                ports: vec![ContainerPort {
                    container_port: 80,
                    ..ContainerPort::default()
                }],
                readiness_probe: Some(Probe {
                    http_get: Some(HttpGetAction {
                        port: 80.into(),
                        ..HttpGetAction::default()
                    }),
                    ..Probe::default()
                }),
                ..Container::default()
            }],
            ..PodSpec::default()
        };
        spec.containers[0]
            .resources
            .limits
            .insert("memory".into(), "128Mi".parse().unwrap());
        default_pod_spec(&mut spec);
        assert_eq!(spec.restart_policy, Some(RestartPolicy::Always));
        assert_eq!(
            spec.preemption_policy,
            Some(PreemptionPolicy::PreemptLowerPriority)
        );
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.dns_policy, Some(DnsPolicy::ClusterFirst));
        assert_eq!(spec.scheduler_name, "default-scheduler");
        let c = &spec.containers[0];
        assert_eq!(c.image_pull_policy, Some(PullPolicy::IfNotPresent));
        assert_eq!(c.ports[0].protocol, Some(Protocol::Tcp));
        assert_eq!(c.resources.requests["memory"].to_string(), "128Mi");
        let probe = c.readiness_probe.as_ref().unwrap();
        assert_eq!(
            (
                probe.timeout_seconds,
                probe.period_seconds,
                probe.success_threshold,
                probe.failure_threshold
            ),
            (Some(1), Some(10), Some(1), Some(3))
        );
        let http = probe.http_get.as_ref().unwrap();
        assert_eq!(
            (http.path.as_str(), http.scheme),
            ("/", Some(UriScheme::Http))
        );
        let again = spec.clone();
        default_pod_spec(&mut spec);
        assert_eq!(spec, again, "defaulting is idempotent");
    }

    #[test]
    fn projected_volumes_get_a_default_mode_and_field_ref_versions() {
        use crate::resources::pod::{
            DownwardApiProjection, ObjectFieldSelector, ProjectedVolumeSource, VolumeProjection,
        };
        let mut volume = Volume {
            name: "all".into(),
            projected: Some(ProjectedVolumeSource {
                sources: vec![VolumeProjection {
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
                    ..VolumeProjection::default()
                }],
                default_mode: None,
            }),
            ..Volume::default()
        };
        default_volume(&mut volume);
        let projected = volume.projected.unwrap();
        assert_eq!(projected.default_mode, Some(0o644));
        let item = &projected.sources[0].downward_api.as_ref().unwrap().items[0];
        assert_eq!(item.field_ref.as_ref().unwrap().api_version, "v1");
    }
}
