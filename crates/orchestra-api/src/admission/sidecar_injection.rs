//! [`SidecarInjection`]: adds the mesh proxy (`orchestra sidecar`) to the pods that ask for
//! it, as Linkerd's proxy injector does (a mutating webhook there, a built-in plug-in here),
//! with the init container that redirects the pod's TCP into it (Linkerd's `linkerd-init`).
//!
//! A pod is injected when its annotation [`INJECT_ANNOTATION`] (`mesh.orchestra.dev/inject`)
//! is `enabled`, or, without that annotation, when its namespace carries that label or
//! annotation with `enabled`; a pod annotated `disabled` is never injected, nor a pod on the
//! host's network (the redirect would be the node's), nor one that has a container named
//! [`PROXY_CONTAINER`] or [`INIT_CONTAINER`] already (an injected pod created again, as
//! `ctl get -o yaml` prints it, gets nothing twice).
//!
//! What the pod gets, in `initContainers` before its own:
//!
//! 1. [`INIT_CONTAINER`] (`mesh-init`, [`init_container`]), with the default
//!    [`RedirectMode::InitContainer`]: `orchestra sidecar init --proxy-uid UID
//!    --inbound-port 4143 --outbound-port 4140 --admin-port 4191 [--skip-inbound-ports L]
//!    [--skip-outbound-ports L]`, which applies table `inet orchestra-mesh` in the pod's
//!    network namespace and exits. It runs as root with every capability dropped but
//!    `NET_ADMIN` (nft speaks netlink, which needs nothing else; Linkerd's iptables also
//!    needs `NET_RAW`). First, so that the redirect is in place before anything of the pod
//!    runs, as Linkerd orders it.
//! 2. [`PROXY_CONTAINER`] (`mesh-proxy`, [`proxy_container`]): a native sidecar
//!    (`restartPolicy: Always`: it starts before the pod's own init containers and the
//!    application and stops after them), running `orchestra sidecar` with the same three
//!    ports given explicitly, the pod's namespace and service account (from the downward
//!    API), the trust domain and API server of the [`SidecarInjectionConfig`], the
//!    application's port (the annotation [`APP_PORT_ANNOTATION`], else the first
//!    container's first TCP port, else 8080), and its own projected service account token
//!    and the API server's CA bundle `ca.crt` ([`PROXY_TOKEN_VOLUME`], mounted at
//!    [`PROXY_TOKEN_DIR`]), so that it authenticates and trusts the server even when the
//!    pod opts out of the default token, with no credentials file. It runs as the proxy
//!    uid (`securityContext.runAsUser`, [`DEFAULT_PROXY_UID`] unless configured), the one
//!    uid whose connections the redirect leaves alone: the ports and the uid of the two
//!    containers come from the same constants and configuration, so they cannot disagree.
//!    It exposes the inbound (4143) and admin (4191) ports; `/ready` and `/live` on the
//!    admin port are its probes.
//!
//! Pod annotations, named after Linkerd's `config.linkerd.io/...` ones:
//! [`SKIP_INBOUND_PORTS_ANNOTATION`] and [`SKIP_OUTBOUND_PORTS_ANNOTATION`] (ports and
//! ranges, `25,3306,9000-9010`: the init container's `--skip-inbound-ports` and
//! `--skip-outbound-ports`), and [`SKIP_PROXY_INIT_ANNOTATION`] (`"true"`: no init
//! container for this pod, whose traffic something else redirects, or nothing). A bad
//! value is a 400 naming the annotation, and the pod is not created.
//!
//! The decisions are pure functions ([`injection_requested`], [`inject`]).

use async_trait::async_trait;

use super::{AdmissionPlugin, AdmissionRequest, Operation};
use crate::meta::IntOrString;
use crate::registry::ApiError;
use crate::resources::{
    Capabilities, Container, ContainerPort, EnvVar, EnvVarSource, HttpGetAction, Namespace,
    ObjectFieldSelector, Pod, Probe, ProjectedVolumeSource, Protocol, RestartPolicy,
    SecurityContext, ServiceAccountTokenProjection, Volume, VolumeMount, VolumeProjection,
};

/// The pod or namespace annotation (or namespace label) asking for the proxy: `enabled` or
/// `disabled`.
pub const INJECT_ANNOTATION: &str = "mesh.orchestra.dev/inject";
/// The pod annotation naming the application's port (the inbound proxy forwards there).
pub const APP_PORT_ANNOTATION: &str = "mesh.orchestra.dev/app-port";
/// The pod annotation `"true"` that leaves out the init container (Linkerd's CNI mode, per
/// pod): something else redirects the pod's traffic, or nothing does.
pub const SKIP_PROXY_INIT_ANNOTATION: &str = "mesh.orchestra.dev/skip-proxy-init";
/// The pod annotation listing inbound ports the redirect leaves alone (the init
/// container's `--skip-inbound-ports`): ports peers outside the mesh must reach.
pub const SKIP_INBOUND_PORTS_ANNOTATION: &str = "mesh.orchestra.dev/skip-inbound-ports";
/// The pod annotation listing outbound destination ports the redirect leaves alone (the
/// init container's `--skip-outbound-ports`): protocols the proxy must not touch.
pub const SKIP_OUTBOUND_PORTS_ANNOTATION: &str = "mesh.orchestra.dev/skip-outbound-ports";
/// The injected proxy container's name.
pub const PROXY_CONTAINER: &str = "mesh-proxy";
/// The injected init container's name (Linkerd's `linkerd-init`).
pub const INIT_CONTAINER: &str = "mesh-init";
/// The proxy's token volume.
pub const PROXY_TOKEN_VOLUME: &str = "mesh-proxy-token";
/// Where the proxy finds its token (`token` in it).
pub const PROXY_TOKEN_DIR: &str = "/var/run/secrets/mesh.orchestra.dev/serviceaccount";
/// The proxy's inbound port (mTLS from other proxies; the pod's inbound TCP is redirected
/// there).
pub const INBOUND_PORT: u16 = 4143;
/// The proxy's outbound port, on loopback (the pod's outbound TCP is redirected there).
pub const OUTBOUND_PORT: u16 = 4140;
/// The proxy's admin port (`/ready`, `/live`, `/metrics`), never redirected.
pub const ADMIN_PORT: u16 = 4191;
/// The uid the proxy runs as unless configured: Linkerd's proxy uid.
pub const DEFAULT_PROXY_UID: u32 = 2102;
/// The capabilities the init container keeps (every other one is dropped): nft programs
/// the table over netlink, which needs `NET_ADMIN` alone.
pub const INIT_CAPABILITIES: &[&str] = &["NET_ADMIN"];
/// The application's port when neither the annotation nor a container port names one.
pub const DEFAULT_APP_PORT: u16 = 8080;
/// The proxy token's lifetime: a day. `orchestra sidecar` reads its token file when it
/// starts, so the token must outlast the proxy's need to reconnect to the API server;
/// bound to the pod, it stops working with it all the same.
pub const PROXY_TOKEN_EXPIRATION_SECONDS: i64 = 86_400;

/// How injected pods' TCP reaches the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedirectMode {
    /// The init container [`INIT_CONTAINER`] applies the redirect, exempting `proxy_uid`,
    /// the uid the proxy runs as. The node's runtime must give each pod a network namespace
    /// of its own and apply `securityContext` (the CRI runtime does; the process runtime,
    /// whose pods share the node's network, refuses the init container's capabilities).
    InitContainer {
        /// The proxy's uid (at most 2147483647, like any `runAsUser`).
        proxy_uid: u32,
    },
    /// Something else redirects (a CNI plug-in, as in Linkerd's CNI mode), exempting
    /// `proxy_uid`: the proxy runs as that uid, and no init container is added.
    External {
        /// The proxy's uid (at most 2147483647, like any `runAsUser`).
        proxy_uid: u32,
    },
    /// No redirect: the proxy runs as the runtime's default user, and the application
    /// uses it explicitly (its outbound listener, peers its inbound port). For nodes whose
    /// runtime cannot give the init container a network namespace of its own.
    None,
}

impl Default for RedirectMode {
    /// [`RedirectMode::InitContainer`] with [`DEFAULT_PROXY_UID`].
    fn default() -> Self {
        RedirectMode::InitContainer {
            proxy_uid: DEFAULT_PROXY_UID,
        }
    }
}

impl RedirectMode {
    /// The uid the proxy runs as, when the mode fixes one.
    pub fn proxy_uid(self) -> Option<u32> {
        match self {
            RedirectMode::InitContainer { proxy_uid } | RedirectMode::External { proxy_uid } => {
                Some(proxy_uid)
            }
            RedirectMode::None => None,
        }
    }
}

/// How injected proxies are set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SidecarInjectionConfig {
    /// The image holding the `orchestra` binary (both injected containers run it).
    pub image: String,
    /// The API server's URL as pods reach it (`--server`); `None`: the sidecar's default.
    pub server: Option<String>,
    /// The mesh's trust domain (the server's `--mesh-trust-domain`).
    pub trust_domain: String,
    /// How the pods' traffic reaches the proxy, and the proxy's uid.
    pub redirect: RedirectMode,
}

impl SidecarInjectionConfig {
    /// Proxies from `image` in `trust_domain`, with the sidecar's default server and the
    /// default redirect (the init container, the proxy as [`DEFAULT_PROXY_UID`]).
    pub fn new(image: impl Into<String>, trust_domain: impl Into<String>) -> Self {
        SidecarInjectionConfig {
            image: image.into(),
            server: None,
            trust_domain: trust_domain.into(),
            redirect: RedirectMode::default(),
        }
    }
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

/// Whether `pod` has one of the containers the injection adds (it was injected already).
fn injected(pod: &Pod) -> bool {
    pod.spec
        .init_containers
        .iter()
        .chain(&pod.spec.containers)
        .any(|c| c.name == PROXY_CONTAINER || c.name == INIT_CONTAINER)
}

/// Whether `pod` (in `namespace`, when it is known) gets the proxy (see the
/// [module docs](self)).
pub fn injection_requested(pod: &Pod, namespace: Option<&Namespace>) -> bool {
    if pod.spec.host_network || injected(pod) {
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

/// The error of a bad annotation value, with its field path.
fn bad_annotation(key: &str, value: &str, why: &str) -> String {
    format!("metadata.annotations[{key}]: Invalid value: {value:?}: {why}")
}

/// The application's port: the annotation's, else the first container's first TCP port,
/// else [`DEFAULT_APP_PORT`]. A bad annotation is an error naming it.
pub fn app_port(pod: &Pod) -> Result<u16, String> {
    if let Some(value) = pod.metadata.annotations.get(APP_PORT_ANNOTATION) {
        return match value.parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(bad_annotation(
                APP_PORT_ANNOTATION,
                value,
                "must be a port number between 1 and 65535",
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

/// Whether the pod asks to go without the init container ([`SKIP_PROXY_INIT_ANNOTATION`]:
/// `"true"` or `"false"`; anything else is an error naming it).
pub fn skip_proxy_init(pod: &Pod) -> Result<bool, String> {
    match pod
        .metadata
        .annotations
        .get(SKIP_PROXY_INIT_ANNOTATION)
        .map(String::as_str)
    {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(bad_annotation(
            SKIP_PROXY_INIT_ANNOTATION,
            other,
            "must be \"true\" or \"false\"",
        )),
    }
}

/// The port list of annotation `key`, written as `orchestra sidecar init` reads it (ports
/// and `FIRST-LAST` ranges separated by commas, Linkerd's syntax), without spaces; `None`
/// when the annotation is absent or empty. Checked with the command's own rules, so that a
/// list the init container would refuse (and fail the pod's start with) is refused here,
/// naming the annotation.
pub fn skip_ports(pod: &Pod, key: &str) -> Result<Option<String>, String> {
    let Some(value) = pod.metadata.annotations.get(key) else {
        return Ok(None);
    };
    if value.trim().is_empty() {
        return Ok(None);
    }
    let mut items = Vec::new();
    for item in value.split(',').map(str::trim) {
        let port = |text: &str| match text.trim().parse::<u16>() {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(bad_annotation(
                key,
                value,
                &format!("{:?} is not a port between 1 and 65535", text.trim()),
            )),
        };
        let (first, last) = match item.split_once('-') {
            Some((first, last)) => (port(first)?, port(last)?),
            None if item.is_empty() => {
                return Err(bad_annotation(
                    key,
                    value,
                    "an empty item between commas (write ports and ranges separated by commas, like 25,3306,9000-9010)",
                ));
            }
            None => {
                let port = port(item)?;
                (port, port)
            }
        };
        if first > last {
            return Err(bad_annotation(
                key,
                value,
                &format!("the range {item:?} is empty (its first port is above its last)"),
            ));
        }
        items.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
    }
    Ok(Some(items.join(",")))
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
            port: IntOrString::Int(i32::from(ADMIN_PORT)),
            ..HttpGetAction::default()
        }),
        ..Probe::default()
    }
}

/// The proxy container for an application on `app_port`, as `config` sets it up.
pub fn proxy_container(config: &SidecarInjectionConfig, app_port: u16) -> Container {
    // The listeners are given explicitly, from the constants the init container's flags
    // also come from: a change of the sidecar's defaults must not part them.
    let mut args = vec![
        "sidecar".to_owned(),
        "--app".to_owned(),
        format!("127.0.0.1:{app_port}"),
        "--inbound".to_owned(),
        format!("0.0.0.0:{INBOUND_PORT}"),
        "--outbound".to_owned(),
        format!("127.0.0.1:{OUTBOUND_PORT}"),
        "--admin".to_owned(),
        format!("0.0.0.0:{ADMIN_PORT}"),
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
                container_port: i32::from(INBOUND_PORT),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: "mesh-admin".into(),
                container_port: i32::from(ADMIN_PORT),
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
        // The redirect exempts this uid's connections alone: the proxy must run as it, or
        // its own connections would come back to it.
        security_context: config.redirect.proxy_uid().map(|uid| SecurityContext {
            run_as_user: Some(i64::from(uid)),
            capabilities: None,
        }),
        ..Container::default()
    }
}

/// The init container that redirects the pod's TCP into a proxy running as `proxy_uid`,
/// leaving alone the inbound and outbound ports of `skip_inbound` and `skip_outbound`
/// (port lists as [`skip_ports`] writes them).
pub fn init_container(
    config: &SidecarInjectionConfig,
    proxy_uid: u32,
    skip_inbound: Option<&str>,
    skip_outbound: Option<&str>,
) -> Container {
    let mut args = vec![
        "sidecar".to_owned(),
        "init".to_owned(),
        "--proxy-uid".to_owned(),
        proxy_uid.to_string(),
        "--inbound-port".to_owned(),
        INBOUND_PORT.to_string(),
        "--outbound-port".to_owned(),
        OUTBOUND_PORT.to_string(),
        "--admin-port".to_owned(),
        ADMIN_PORT.to_string(),
    ];
    for (flag, ports) in [
        ("--skip-inbound-ports", skip_inbound),
        ("--skip-outbound-ports", skip_outbound),
    ] {
        if let Some(ports) = ports {
            args.extend([flag.to_owned(), ports.to_owned()]);
        }
    }
    Container {
        name: INIT_CONTAINER.into(),
        image: config.image.clone(),
        command: vec!["orchestra".into()],
        args,
        security_context: Some(SecurityContext {
            // Root, whatever the image's user: a process of another uid would not hold the
            // added capability (no ambient capabilities), and nft would be refused.
            run_as_user: Some(0),
            capabilities: Some(Capabilities {
                add: INIT_CAPABILITIES.iter().map(|c| (*c).to_owned()).collect(),
                drop: vec!["ALL".to_owned()],
            }),
        }),
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

/// Adds the proxy to `pod`: the init container (unless the redirect mode or the pod's
/// [`SKIP_PROXY_INIT_ANNOTATION`] leaves it out), then the proxy, first among the init
/// containers, and its token volume. A pod injected already is left as it is. An error
/// names a bad annotation, and leaves the pod untouched.
pub fn inject(pod: &mut Pod, config: &SidecarInjectionConfig) -> Result<(), String> {
    if injected(pod) {
        return Ok(());
    }
    // Every annotation is read before anything changes, so an error leaves the pod as it
    // was; the skip lists are checked even when no init container uses them (a CNI
    // redirect reads the same annotations).
    let port = app_port(pod)?;
    let skip_init = skip_proxy_init(pod)?;
    let skip_inbound = skip_ports(pod, SKIP_INBOUND_PORTS_ANNOTATION)?;
    let skip_outbound = skip_ports(pod, SKIP_OUTBOUND_PORTS_ANNOTATION)?;
    let mut added = Vec::with_capacity(2);
    if let RedirectMode::InitContainer { proxy_uid } = config.redirect
        && !skip_init
    {
        added.push(init_container(
            config,
            proxy_uid,
            skip_inbound.as_deref(),
            skip_outbound.as_deref(),
        ));
    }
    added.push(proxy_container(config, port));
    pod.spec.init_containers.splice(0..0, added);
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
            server: Some("https://10.0.0.1:7443".into()),
            ..SidecarInjectionConfig::new("orchestra:dev", "example.org")
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

    fn annotated(pairs: &[(&str, &str)]) -> Pod {
        let mut pod = pod(Some("enabled"));
        for (key, value) in pairs {
            pod.metadata
                .annotations
                .insert((*key).to_owned(), (*value).to_owned());
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

    fn init_names(pod: &Pod) -> Vec<&str> {
        pod.spec
            .init_containers
            .iter()
            .map(|c| c.name.as_str())
            .collect()
    }

    fn container<'a>(pod: &'a Pod, name: &str) -> &'a Container {
        pod.spec
            .init_containers
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no container {name} in {:?}", init_names(pod)))
    }

    /// The value after `flag` in `args`.
    fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
        let at = args.iter().position(|a| a == flag)?;
        args.get(at + 1).map(String::as_str)
    }

    /// The port of the `host:port` value of `flag`.
    fn listener_port(args: &[String], name: &str) -> u16 {
        let value = flag(args, name).unwrap_or_else(|| panic!("no {name} in {args:?}"));
        let (_, port) = value.rsplit_once(':').unwrap();
        port.parse().unwrap()
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
    fn the_init_container_and_the_proxy_come_first() {
        let mut pod = pod(Some("enabled"));
        inject(&mut pod, &config()).unwrap();
        // The redirect first, then the proxy, then the pod's own init containers (which
        // may then use the network through the proxy).
        assert_eq!(
            init_names(&pod),
            [INIT_CONTAINER, PROXY_CONTAINER, "migrate"]
        );

        let init = &pod.spec.init_containers[0];
        assert!(!init.is_sidecar(), "the init container runs to completion");
        assert_eq!(init.image, "orchestra:dev");
        assert_eq!(init.command, ["orchestra"]);
        assert_eq!(
            init.args,
            [
                "sidecar",
                "init",
                "--proxy-uid",
                "2102",
                "--inbound-port",
                "4143",
                "--outbound-port",
                "4140",
                "--admin-port",
                "4191"
            ]
        );
        assert_eq!(
            init.security_context,
            Some(SecurityContext {
                run_as_user: Some(0),
                capabilities: Some(Capabilities {
                    add: vec!["NET_ADMIN".into()],
                    drop: vec!["ALL".into()],
                }),
            }),
            "root with NET_ADMIN alone"
        );
        assert!(init.volume_mounts.is_empty() && init.ports.is_empty());

        let proxy = &pod.spec.init_containers[1];
        assert!(proxy.is_sidecar());
        assert_eq!(proxy.image, "orchestra:dev");
        assert_eq!(proxy.command, ["orchestra"]);
        assert_eq!(
            proxy.args,
            [
                "sidecar",
                "--app",
                "127.0.0.1:3000",
                "--inbound",
                "0.0.0.0:4143",
                "--outbound",
                "127.0.0.1:4140",
                "--admin",
                "0.0.0.0:4191",
                "--trust-domain",
                "example.org",
                "--token-file",
                "/var/run/secrets/mesh.orchestra.dev/serviceaccount/token",
                "--server",
                "https://10.0.0.1:7443"
            ]
        );
        assert_eq!(
            proxy.security_context,
            Some(SecurityContext {
                run_as_user: Some(2102),
                capabilities: None,
            })
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
    fn the_init_containers_ports_and_uid_are_the_proxys() {
        for uid in [DEFAULT_PROXY_UID, 7777] {
            let config = SidecarInjectionConfig {
                redirect: RedirectMode::InitContainer { proxy_uid: uid },
                ..config()
            };
            let mut pod = pod(Some("enabled"));
            inject(&mut pod, &config).unwrap();
            let init = &container(&pod, INIT_CONTAINER).args;
            let proxy = container(&pod, PROXY_CONTAINER);
            // Each redirect target is the port the proxy listens on.
            for (init_flag, proxy_flag) in [
                ("--inbound-port", "--inbound"),
                ("--outbound-port", "--outbound"),
                ("--admin-port", "--admin"),
            ] {
                assert_eq!(
                    flag(init, init_flag).map(|p| p.parse::<u16>().unwrap()),
                    Some(listener_port(&proxy.args, proxy_flag)),
                    "{init_flag} vs {proxy_flag}"
                );
            }
            // ... and the ports the proxy container declares.
            let declared = |name: &str| {
                proxy
                    .ports
                    .iter()
                    .find(|p| p.name == name)
                    .map(|p| p.container_port.to_string())
            };
            assert_eq!(
                flag(init, "--inbound-port").map(str::to_owned),
                declared("mesh-inbound")
            );
            assert_eq!(
                flag(init, "--admin-port").map(str::to_owned),
                declared("mesh-admin")
            );
            // The uid the redirect exempts is the one the proxy runs as.
            let uid_text = uid.to_string();
            assert_eq!(flag(init, "--proxy-uid"), Some(uid_text.as_str()));
            let runs_as = proxy.security_context.as_ref().and_then(|s| s.run_as_user);
            assert_eq!(runs_as, Some(i64::from(uid)));
        }
    }

    #[test]
    fn injecting_twice_adds_nothing_twice() {
        let mut once = pod(Some("enabled"));
        inject(&mut once, &config()).unwrap();
        let mut twice = once.clone();
        inject(&mut twice, &config()).unwrap();
        assert_eq!(twice, once);

        // A pod with either injected container is left alone: its redirect (or its proxy)
        // is someone's already, and a second one would be a duplicate name.
        for name in [INIT_CONTAINER, PROXY_CONTAINER] {
            let mut own = pod(Some("enabled"));
            own.spec.init_containers.push(Container {
                name: name.into(),
                image: "mine".into(),
                ..Container::default()
            });
            assert!(!injection_requested(&own, None), "{name}");
            let before = own.clone();
            inject(&mut own, &config()).unwrap();
            assert_eq!(own, before, "{name}");
        }
    }

    #[test]
    fn skip_annotations_reach_the_init_container() {
        let mut pod = annotated(&[
            (SKIP_INBOUND_PORTS_ANNOTATION, "9000-9010, 8081"),
            (SKIP_OUTBOUND_PORTS_ANNOTATION, "3306,25"),
            (SKIP_PROXY_INIT_ANNOTATION, "false"),
        ]);
        inject(&mut pod, &config()).unwrap();
        let init = &container(&pod, INIT_CONTAINER).args;
        assert_eq!(flag(init, "--skip-inbound-ports"), Some("9000-9010,8081"));
        assert_eq!(flag(init, "--skip-outbound-ports"), Some("3306,25"));
        assert!(pod.validate().is_empty());

        // Empty lists add no flag.
        let mut pod = annotated(&[(SKIP_OUTBOUND_PORTS_ANNOTATION, " ")]);
        inject(&mut pod, &config()).unwrap();
        let init = &container(&pod, INIT_CONTAINER).args;
        assert!(!init.iter().any(|a| a.starts_with("--skip")), "{init:?}");

        // skip-proxy-init: the proxy alone, still as the uid a redirect done elsewhere
        // exempts.
        let mut pod = annotated(&[(SKIP_PROXY_INIT_ANNOTATION, "true")]);
        inject(&mut pod, &config()).unwrap();
        assert_eq!(init_names(&pod), [PROXY_CONTAINER, "migrate"]);
        let proxy = container(&pod, PROXY_CONTAINER);
        assert_eq!(
            proxy.security_context.as_ref().and_then(|s| s.run_as_user),
            Some(2102)
        );
    }

    #[test]
    fn bad_skip_annotations_are_refused_by_name_and_change_nothing() {
        for (key, value, says) in [
            (
                SKIP_PROXY_INIT_ANNOTATION,
                "yes",
                "must be \"true\" or \"false\"",
            ),
            (
                SKIP_INBOUND_PORTS_ANNOTATION,
                "80,http",
                "\"http\" is not a port",
            ),
            (SKIP_INBOUND_PORTS_ANNOTATION, "0", "\"0\" is not a port"),
            (SKIP_OUTBOUND_PORTS_ANNOTATION, "25,,26", "an empty item"),
            (
                SKIP_OUTBOUND_PORTS_ANNOTATION,
                "9010-9000",
                "the range \"9010-9000\" is empty",
            ),
            (
                SKIP_OUTBOUND_PORTS_ANNOTATION,
                "70000",
                "\"70000\" is not a port",
            ),
        ] {
            let mut pod = annotated(&[(key, value)]);
            let before = pod.clone();
            let err = inject(&mut pod, &config()).unwrap_err();
            assert!(
                err.starts_with(&format!(
                    "metadata.annotations[{key}]: Invalid value: {value:?}: "
                )) && err.contains(says),
                "{err}"
            );
            assert_eq!(pod, before, "{key}={value}: nothing added");
        }
    }

    #[test]
    fn other_redirect_modes() {
        // A CNI redirects: the proxy runs as the exempt uid, no init container.
        let external = SidecarInjectionConfig {
            redirect: RedirectMode::External { proxy_uid: 2102 },
            ..config()
        };
        let mut pod = pod(Some("enabled"));
        inject(&mut pod, &external).unwrap();
        assert_eq!(init_names(&pod), [PROXY_CONTAINER, "migrate"]);
        assert_eq!(
            pod.spec.init_containers[0]
                .security_context
                .as_ref()
                .and_then(|s| s.run_as_user),
            Some(2102)
        );

        // No redirect: the proxy as the runtime's default user, as before the redirect.
        let none = SidecarInjectionConfig {
            redirect: RedirectMode::None,
            ..config()
        };
        let mut pod = self::pod(Some("enabled"));
        inject(&mut pod, &none).unwrap();
        assert_eq!(init_names(&pod), [PROXY_CONTAINER, "migrate"]);
        assert_eq!(pod.spec.init_containers[0].security_context, None);
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
