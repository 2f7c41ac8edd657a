//! [`SidecarInjection`]: adds the mesh proxy (`orchestra sidecar`) to the pods that ask for
//! it, as Linkerd's proxy injector does (a mutating webhook there, a built-in plug-in here).
//!
//! A pod is injected when its annotation [`INJECT_ANNOTATION`] (`mesh.orchestra.dev/inject`)
//! is `enabled`, or, without that annotation, when its namespace carries that label or
//! annotation with `enabled`; a pod annotated `disabled` is never injected, nor a pod on the
//! host's network, nor one that has a container named [`PROXY_CONTAINER`] already.
//!
//! The proxy is a native sidecar: the first init container, with `restartPolicy: Always`,
//! so that it starts before the other init containers and the application and stops after
//! them ([`proxy_container`]). It runs `orchestra sidecar` with the pod's namespace and
//! service account (from the downward API), the trust domain and API server of the
//! [`SidecarInjectionConfig`], the application's port (the annotation
//! [`APP_PORT_ANNOTATION`], else the first container's first TCP port, else 8080), and its
//! own projected service account token and the API server's CA bundle `ca.crt`
//! ([`PROXY_TOKEN_VOLUME`], mounted at [`PROXY_TOKEN_DIR`]), so that it authenticates and
//! trusts the server even when the pod opts out of the default token, with no credentials
//! file. It exposes the inbound (4143) and admin (4191) ports; `/ready` and `/live` on the
//! admin port are its probes.
//!
//! The decisions are pure functions ([`injection_requested`], [`inject`]).

use async_trait::async_trait;

use super::{AdmissionPlugin, AdmissionRequest, Operation};
use crate::meta::IntOrString;
use crate::registry::ApiError;
use crate::resources::{
    Container, ContainerPort, EnvVar, EnvVarSource, HttpGetAction, Namespace, ObjectFieldSelector,
    Pod, Probe, ProjectedVolumeSource, Protocol, RestartPolicy, ServiceAccountTokenProjection,
    Volume, VolumeMount, VolumeProjection,
};

/// The pod or namespace annotation (or namespace label) asking for the proxy: `enabled` or
/// `disabled`.
pub const INJECT_ANNOTATION: &str = "mesh.orchestra.dev/inject";
/// The pod annotation naming the application's port (the inbound proxy forwards there).
pub const APP_PORT_ANNOTATION: &str = "mesh.orchestra.dev/app-port";
/// The injected container's name.
pub const PROXY_CONTAINER: &str = "mesh-proxy";
/// The proxy's token volume.
pub const PROXY_TOKEN_VOLUME: &str = "mesh-proxy-token";
/// Where the proxy finds its token (`token` in it).
pub const PROXY_TOKEN_DIR: &str = "/var/run/secrets/mesh.orchestra.dev/serviceaccount";
/// The proxy's inbound port (mTLS from other proxies).
pub const INBOUND_PORT: i32 = 4143;
/// The proxy's admin port (`/ready`, `/live`, `/metrics`).
pub const ADMIN_PORT: i32 = 4191;
/// The application's port when neither the annotation nor a container port names one.
pub const DEFAULT_APP_PORT: u16 = 8080;
/// The proxy token's lifetime: a day. `orchestra sidecar` reads its token file when it
/// starts, so the token must outlast the proxy's need to reconnect to the API server;
/// bound to the pod, it stops working with it all the same.
pub const PROXY_TOKEN_EXPIRATION_SECONDS: i64 = 86_400;

/// How injected proxies are set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SidecarInjectionConfig {
    /// The image holding the `orchestra` binary.
    pub image: String,
    /// The API server's URL as pods reach it (`--server`); `None`: the sidecar's default.
    pub server: Option<String>,
    /// The mesh's trust domain (the server's `--mesh-trust-domain`).
    pub trust_domain: String,
}

/// Whether `value` (an annotation or label) says `enabled` (`Some(true)`), `disabled`
/// (`Some(false)`) or nothing.
fn setting(value: Option<&String>) -> Option<bool> {
    match value.map(String::as_str) {
        Some("enabled") => Some(true),
        Some("disabled") => Some(false),
        _ => None,
    }
}

/// Whether `pod` (in `namespace`, when it is known) gets the proxy (see the
/// [module docs](self)).
pub fn injection_requested(pod: &Pod, namespace: Option<&Namespace>) -> bool {
    if pod.spec.host_network
        || pod
            .spec
            .init_containers
            .iter()
            .chain(&pod.spec.containers)
            .any(|c| c.name == PROXY_CONTAINER)
    {
        return false;
    }
    if let Some(wanted) = setting(pod.metadata.annotations.get(INJECT_ANNOTATION)) {
        return wanted;
    }
    namespace.is_some_and(|ns| {
        setting(ns.metadata.labels.get(INJECT_ANNOTATION))
            .or_else(|| setting(ns.metadata.annotations.get(INJECT_ANNOTATION)))
            == Some(true)
    })
}

/// The application's port: the annotation's, else the first container's first TCP port,
/// else [`DEFAULT_APP_PORT`]. A bad annotation is an error naming it.
pub fn app_port(pod: &Pod) -> Result<u16, String> {
    if let Some(value) = pod.metadata.annotations.get(APP_PORT_ANNOTATION) {
        return match value.parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(format!(
                "metadata.annotations[{APP_PORT_ANNOTATION}]: Invalid value: {value:?}: must be a port number between 1 and 65535"
            )),
        };
    }
    let first = pod
        .spec
        .containers
        .first()
        .into_iter()
        .flat_map(|c| &c.ports)
        .find(|p| p.protocol.is_none_or(|p| p == Protocol::Tcp))
        .and_then(|p| u16::try_from(p.container_port).ok());
    Ok(first.unwrap_or(DEFAULT_APP_PORT))
}

fn from_field(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: "v1".into(),
                field_path: field_path.into(),
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn admin_probe(path: &str) -> Probe {
    Probe {
        http_get: Some(HttpGetAction {
            path: path.into(),
            port: IntOrString::Int(ADMIN_PORT),
            ..HttpGetAction::default()
        }),
        ..Probe::default()
    }
}

/// The proxy container for an application on `app_port`.
pub fn proxy_container(config: &SidecarInjectionConfig, app_port: u16) -> Container {
    let mut args = vec![
        "sidecar".to_owned(),
        "--app".to_owned(),
        format!("127.0.0.1:{app_port}"),
        "--trust-domain".to_owned(),
        config.trust_domain.clone(),
        "--token-file".to_owned(),
        format!("{PROXY_TOKEN_DIR}/token"),
    ];
    if let Some(server) = &config.server {
        args.extend(["--server".to_owned(), server.clone()]);
    }
    Container {
        name: PROXY_CONTAINER.into(),
        image: config.image.clone(),
        command: vec!["orchestra".into()],
        args,
        ports: vec![
            ContainerPort {
                name: "mesh-inbound".into(),
                container_port: INBOUND_PORT,
                ..ContainerPort::default()
            },
            ContainerPort {
                name: "mesh-admin".into(),
                container_port: ADMIN_PORT,
                ..ContainerPort::default()
            },
        ],
        env: vec![
            from_field("ORCHESTRA_POD_NAMESPACE", "metadata.namespace"),
            from_field("ORCHESTRA_SERVICE_ACCOUNT", "spec.serviceAccountName"),
        ],
        volume_mounts: vec![VolumeMount {
            name: PROXY_TOKEN_VOLUME.into(),
            mount_path: PROXY_TOKEN_DIR.into(),
            read_only: true,
            ..VolumeMount::default()
        }],
        readiness_probe: Some(admin_probe("/ready")),
        liveness_probe: Some(admin_probe("/live")),
        restart_policy: Some(RestartPolicy::Always),
        ..Container::default()
    }
}

/// The proxy's token volume.
pub fn proxy_token_volume() -> Volume {
    Volume {
        name: PROXY_TOKEN_VOLUME.into(),
        projected: Some(ProjectedVolumeSource {
            sources: vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: String::new(),
                        expiration_seconds: Some(PROXY_TOKEN_EXPIRATION_SECONDS),
                        path: "token".into(),
                    }),
                    ..VolumeProjection::default()
                },
                // Beside the token, so that `orchestra sidecar` trusts the API server with no
                // credentials file (Kubernetes' in-cluster configuration).
                super::service_account::root_ca_projection(),
            ],
            default_mode: None,
        }),
        ..Volume::default()
    }
}

/// Adds the proxy to `pod`: the first init container, and its token volume. An error names
/// a bad [`APP_PORT_ANNOTATION`].
pub fn inject(pod: &mut Pod, config: &SidecarInjectionConfig) -> Result<(), String> {
    let port = app_port(pod)?;
    pod.spec
        .init_containers
        .insert(0, proxy_container(config, port));
    pod.spec.volumes.push(proxy_token_volume());
    Ok(())
}

/// The plug-in (see the [module docs](self)). Not in [`Admission::recommended`]'s chain
/// unless [`AdmissionConfig::sidecar_injection`](super::AdmissionConfig::sidecar_injection)
/// is set; it goes before the ServiceAccount plug-in, which then mounts the default token in
/// the proxy too.
///
/// [`Admission::recommended`]: super::Admission::recommended
#[derive(Clone, Debug)]
pub struct SidecarInjection {
    /// How the proxies are set up.
    pub config: SidecarInjectionConfig,
}

#[async_trait]
impl AdmissionPlugin for SidecarInjection {
    fn name(&self) -> &'static str {
        "SidecarInjection"
    }

    async fn mutate(&self, request: &mut AdmissionRequest<'_>) -> Result<(), ApiError> {
        if request.operation() != Operation::Create || !request.subresource().is_empty() {
            return Ok(());
        }
        let registry = request.registry();
        let namespace = request.namespace().to_owned();
        let name = request.name().to_owned();
        let Some(pod) = request.object_mut().and_then(|o| o.downcast_mut::<Pod>()) else {
            return Ok(());
        };
        // Read only when the pod does not decide by itself.
        let namespace = match pod.metadata.annotations.get(INJECT_ANNOTATION) {
            Some(_) => None,
            None => registry.get::<Namespace>("", &namespace).await.ok(),
        };
        if injection_requested(pod, namespace.as_ref()) {
            inject(pod, &self.config)
                .map_err(|message| ApiError::BadRequest(format!("pod {name:?}: {message}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ObjectMeta;
    use crate::resource::Resource;

    fn config() -> SidecarInjectionConfig {
        SidecarInjectionConfig {
            image: "orchestra:dev".into(),
            server: Some("https://10.0.0.1:7443".into()),
            trust_domain: "example.org".into(),
        }
    }

    fn pod(annotation: Option<&str>) -> Pod {
        let mut pod = crate::testing::pod("shop", "web", "web");
        pod.spec.containers[0].ports = vec![ContainerPort {
            name: "http".into(),
            container_port: 3000,
            ..ContainerPort::default()
        }];
        pod.spec.init_containers = vec![Container {
            name: "migrate".into(),
            image: "busybox".into(),
            ..Container::default()
        }];
        if let Some(value) = annotation {
            pod.metadata
                .annotations
                .insert(INJECT_ANNOTATION.into(), value.into());
        }
        pod
    }

    fn namespace(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> Namespace {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        Namespace {
            metadata: ObjectMeta {
                labels: map(labels),
                annotations: map(annotations),
                ..ObjectMeta::named("shop")
            },
            ..Namespace::default()
        }
    }

    #[test]
    fn the_pod_decides_else_its_namespace() {
        let enabled_ns = namespace(&[(INJECT_ANNOTATION, "enabled")], &[]);
        let annotated_ns = namespace(&[], &[(INJECT_ANNOTATION, "enabled")]);
        let plain_ns = namespace(&[], &[]);
        assert!(injection_requested(&pod(Some("enabled")), None));
        assert!(injection_requested(&pod(Some("enabled")), Some(&plain_ns)));
        assert!(!injection_requested(
            &pod(Some("disabled")),
            Some(&enabled_ns)
        ));
        assert!(injection_requested(&pod(None), Some(&enabled_ns)));
        assert!(injection_requested(&pod(None), Some(&annotated_ns)));
        assert!(!injection_requested(&pod(None), Some(&plain_ns)));
        assert!(!injection_requested(&pod(None), None));
        // Anything but enabled/disabled on the pod leaves it to the namespace.
        assert!(injection_requested(&pod(Some("yes")), Some(&enabled_ns)));

        let mut host = pod(Some("enabled"));
        host.spec.host_network = true;
        assert!(!injection_requested(&host, None));
        let mut injected = pod(Some("enabled"));
        inject(&mut injected, &config()).unwrap();
        assert!(!injection_requested(&injected, None), "injected only once");
    }

    #[test]
    fn the_proxy_is_the_first_init_container_as_a_native_sidecar() {
        let mut pod = pod(Some("enabled"));
        inject(&mut pod, &config()).unwrap();
        let names: Vec<&str> = pod
            .spec
            .init_containers
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, [PROXY_CONTAINER, "migrate"]);
        let proxy = &pod.spec.init_containers[0];
        assert!(proxy.is_sidecar());
        assert_eq!(proxy.image, "orchestra:dev");
        assert_eq!(proxy.command, ["orchestra"]);
        assert_eq!(
            proxy.args,
            [
                "sidecar",
                "--app",
                "127.0.0.1:3000",
                "--trust-domain",
                "example.org",
                "--token-file",
                "/var/run/secrets/mesh.orchestra.dev/serviceaccount/token",
                "--server",
                "https://10.0.0.1:7443"
            ]
        );
        let ports: Vec<(&str, i32)> = proxy
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.container_port))
            .collect();
        assert_eq!(ports, [("mesh-inbound", 4143), ("mesh-admin", 4191)]);
        let env: Vec<(&str, &str)> = proxy
            .env
            .iter()
            .map(|e| {
                let field = e.value_from.as_ref().unwrap().field_ref.as_ref().unwrap();
                (e.name.as_str(), field.field_path.as_str())
            })
            .collect();
        assert_eq!(
            env,
            [
                ("ORCHESTRA_POD_NAMESPACE", "metadata.namespace"),
                ("ORCHESTRA_SERVICE_ACCOUNT", "spec.serviceAccountName")
            ]
        );
        let ready = proxy
            .readiness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap();
        assert_eq!(
            (ready.path.as_str(), &ready.port),
            ("/ready", &IntOrString::Int(4191))
        );
        assert_eq!(pod.spec.volumes, [proxy_token_volume()]);
        let sources = &pod.spec.volumes[0].projected.as_ref().unwrap().sources;
        let ca = sources[1].config_map.as_ref().unwrap();
        assert_eq!(
            (ca.name.as_str(), ca.items[0].path.as_str(), ca.optional),
            ("kube-root-ca.crt", "ca.crt", Some(true)),
            "the CA bundle beside the token"
        );
        assert_eq!(proxy.volume_mounts[0].mount_path, PROXY_TOKEN_DIR);
        // The result is a valid pod.
        let errors = pod.validate();
        assert!(errors.is_empty(), "{errors}");
    }

    #[test]
    fn the_app_port_comes_from_the_annotation_or_the_first_port() {
        let mut pod = pod(Some("enabled"));
        assert_eq!(app_port(&pod), Ok(3000));
        pod.spec.containers[0].ports.clear();
        assert_eq!(app_port(&pod), Ok(DEFAULT_APP_PORT));
        pod.metadata
            .annotations
            .insert(APP_PORT_ANNOTATION.into(), "9090".into());
        assert_eq!(app_port(&pod), Ok(9090));
        for bad in ["http", "0", "70000"] {
            pod.metadata
                .annotations
                .insert(APP_PORT_ANNOTATION.into(), bad.into());
            let err = inject(&mut pod.clone(), &config()).unwrap_err();
            assert!(
                err.contains("metadata.annotations[mesh.orchestra.dev/app-port]")
                    && err.contains(bad),
                "{err}"
            );
        }
    }
}
