//! Conversions between orchestra's runtime types and the CRI messages: pure functions, tested
//! without a server.
//!
//! CRI has no place for a few things orchestra reports (a container's sandbox in its status,
//! the image as it was asked for, a sandbox's hostname and log directory), so they travel in
//! annotations under [`INTERNAL_PREFIX`], which are removed again before anything is reported.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::proto;
use crate::runtime::{
    ContainerConfig, ContainerId, ContainerResources, ContainerSecurity, ContainerState,
    ContainerStatus, ContainerSummary, PodDns, RuntimeError, SandboxConfig, SandboxId,
    SandboxState, SandboxStatus, SandboxSummary,
};

/// The prefix of the annotations CriRuntime keeps for itself.
pub const INTERNAL_PREFIX: &str = "orchestra.dev/cri-";
/// Sandbox annotation: the directory its containers log into.
pub const LOG_DIRECTORY: &str = "orchestra.dev/cri-log-directory";
/// Sandbox annotation: whether that directory was made by the runtime (removed with the sandbox).
pub const LOG_DIRECTORY_OWNED: &str = "orchestra.dev/cri-log-directory-owned";
/// Sandbox annotation: the hostname it was created with.
pub const HOSTNAME: &str = "orchestra.dev/cri-hostname";
/// Container annotation: its sandbox.
pub const SANDBOX: &str = "orchestra.dev/cri-sandbox";
/// Container annotation: the image reference as it was given.
pub const IMAGE: &str = "orchestra.dev/cri-image";

/// CFS period used to express a CPU limit (100 ms, as kubelet uses).
const CPU_PERIOD_MICROS: i64 = 100_000;

/// The directory a sandbox's container logs go to: its `log_directory`, or
/// `<root>/<namespace>_<name>_<uid>` (kubelet's layout under /var/log/pods).
pub fn log_directory(root: &Path, config: &SandboxConfig) -> (PathBuf, bool) {
    match &config.log_directory {
        Some(dir) => (dir.clone(), false),
        None => (
            root.join(format!(
                "{}_{}_{}",
                config.namespace, config.name, config.uid
            )),
            true,
        ),
    }
}

/// The CRI configuration of a sandbox logging into `log_directory`.
pub fn sandbox_config(
    config: &SandboxConfig,
    log_directory: &Path,
    owned: bool,
    cgroup_parent: Option<&str>,
) -> proto::PodSandboxConfig {
    let mut annotations: HashMap<String, String> = config
        .annotations
        .iter()
        .filter(|(k, _)| !k.starts_with(INTERNAL_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(
        LOG_DIRECTORY.to_owned(),
        log_directory.display().to_string(),
    );
    if owned {
        annotations.insert(LOG_DIRECTORY_OWNED.to_owned(), "true".to_owned());
    }
    annotations.insert(HOSTNAME.to_owned(), config.hostname.clone());
    proto::PodSandboxConfig {
        metadata: Some(proto::PodSandboxMetadata {
            name: config.name.clone(),
            uid: config.uid.clone(),
            namespace: config.namespace.clone(),
            attempt: config.attempt,
        }),
        hostname: config.hostname.clone(),
        // Filled in by the runtime from [`dns_config`], which can refuse the settings.
        dns_config: None,
        log_directory: log_directory.display().to_string(),
        labels: config.labels.clone().into_iter().collect(),
        annotations,
        linux: Some(proto::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.unwrap_or_default().to_owned(),
            // Kubernetes' defaults: the pod shares its network and IPC namespaces, each
            // container has its own PID namespace.
            security_context: Some(proto::LinuxSandboxSecurityContext {
                namespace_options: Some(namespaces()),
            }),
        }),
    }
}

/// The CRI DNSConfig of a pod's resolver settings. resolv.conf names servers by address
/// alone (port 53): `IP:53` is written as `IP`, any other port is refused with an error
/// naming the server, since the pod's resolver would silently ignore or misread it.
pub fn dns_config(dns: &PodDns) -> Result<proto::DnsConfig, RuntimeError> {
    let servers = dns
        .servers
        .iter()
        .map(|server| {
            if let Ok(ip) = server.parse::<IpAddr>() {
                return Ok(ip.to_string());
            }
            match server.parse::<SocketAddr>() {
                Ok(addr) if addr.port() == 53 => Ok(addr.ip().to_string()),
                Ok(addr) => Err(RuntimeError::InvalidConfig {
                    what: "DNS name server".to_owned(),
                    message: format!(
                        "{server}: a pod's resolv.conf can only name servers on port 53, not {}; \
                         run the cluster DNS on port 53 of an address the pods reach",
                        addr.port()
                    ),
                }),
                Err(_) => Err(RuntimeError::InvalidConfig {
                    what: "DNS name server".to_owned(),
                    message: format!("{server:?} is not an IP address"),
                }),
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(proto::DnsConfig {
        servers,
        searches: dns.searches.clone(),
        options: dns.options.clone(),
    })
}

fn namespaces() -> proto::NamespaceOption {
    proto::NamespaceOption {
        network: proto::NamespaceMode::Pod.into(),
        pid: proto::NamespaceMode::Container.into(),
        ipc: proto::NamespaceMode::Pod.into(),
    }
}

/// The sandbox configuration that a CRI sandbox was created from, as far as CRI keeps it.
pub fn sandbox_config_back(
    metadata: Option<proto::PodSandboxMetadata>,
    labels: HashMap<String, String>,
    annotations: HashMap<String, String>,
) -> SandboxConfig {
    let metadata = metadata.unwrap_or_default();
    let owned = annotations.contains_key(LOG_DIRECTORY_OWNED);
    SandboxConfig {
        name: metadata.name,
        namespace: metadata.namespace,
        uid: metadata.uid,
        attempt: metadata.attempt,
        hostname: annotations.get(HOSTNAME).cloned().unwrap_or_default(),
        log_directory: annotations
            .get(LOG_DIRECTORY)
            .filter(|_| !owned)
            .map(PathBuf::from),
        labels: labels.into_iter().collect(),
        annotations: public(annotations),
        // CRI's sandbox status does not carry the DNSConfig back.
        dns: None,
    }
}

/// The log directory recorded in a sandbox's annotations, and whether the runtime made it.
pub fn recorded_log_directory(annotations: &HashMap<String, String>) -> Option<(PathBuf, bool)> {
    let dir = annotations.get(LOG_DIRECTORY)?;
    Some((
        PathBuf::from(dir),
        annotations.contains_key(LOG_DIRECTORY_OWNED),
    ))
}

/// A CRI sandbox status as orchestra reports it.
pub fn sandbox_status(status: proto::PodSandboxStatus) -> SandboxStatus {
    let state = match proto::PodSandboxState::try_from(status.state) {
        Ok(proto::PodSandboxState::SandboxReady) => SandboxState::Ready,
        _ => SandboxState::NotReady,
    };
    let ip = status.network.as_ref().and_then(|n| n.ip.parse().ok());
    SandboxStatus {
        id: SandboxId(status.id),
        config: sandbox_config_back(status.metadata, status.labels, status.annotations),
        state,
        created_at: time(status.created_at).unwrap_or(SystemTime::UNIX_EPOCH),
        ip,
    }
}

/// The relative log path of a container (`<name>/<attempt>.log`, kubelet's layout).
pub fn container_log_path(config: &ContainerConfig) -> String {
    format!("{}/{}.log", config.name, config.attempt)
}

/// The CRI configuration of a container in `sandbox`; refuses what CRI cannot express.
pub fn container_config(
    config: &ContainerConfig,
    sandbox: &SandboxId,
) -> Result<proto::ContainerConfig, RuntimeError> {
    let invalid = |what: &str, message: String| RuntimeError::InvalidConfig {
        what: what.to_owned(),
        message,
    };
    if config.name.is_empty() {
        return Err(invalid("name", "a container needs a name".to_owned()));
    }
    if config.image.is_empty() {
        return Err(invalid(
            "image",
            format!("container {:?} has no image", config.name),
        ));
    }
    if let Some(signal) = &config.stop_signal {
        // CRI v1 as containerd 1.6 speaks it takes the stop signal from the image only.
        let name = signal.trim_start_matches("SIG");
        if name != "TERM" && signal != "15" {
            return Err(invalid(
                "stopSignal",
                format!(
                    "{signal:?}: the CRI runtime stops containers with the image's stop signal; set STOPSIGNAL in the image instead"
                ),
            ));
        }
    }
    let mut annotations: HashMap<String, String> = config
        .annotations
        .iter()
        .filter(|(k, _)| !k.starts_with(INTERNAL_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(SANDBOX.to_owned(), sandbox.0.clone());
    annotations.insert(IMAGE.to_owned(), config.image.clone());
    Ok(proto::ContainerConfig {
        metadata: Some(proto::ContainerMetadata {
            name: config.name.clone(),
            attempt: config.attempt,
        }),
        image: Some(proto::ImageSpec {
            image: config.image.clone(),
        }),
        command: config.command.clone(),
        args: config.args.clone(),
        working_dir: config
            .working_dir
            .as_ref()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        envs: config
            .env
            .iter()
            .map(|(key, value)| proto::KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts: config
            .mounts
            .iter()
            .map(|m| proto::Mount {
                container_path: m.container_path.display().to_string(),
                host_path: m.host_path.display().to_string(),
                readonly: m.read_only,
            })
            .collect(),
        labels: config.labels.clone().into_iter().collect(),
        annotations,
        log_path: container_log_path(config),
        linux: Some(proto::LinuxContainerConfig {
            resources: Some(resources(&config.resources)),
            security_context: Some(security_context(&config.security)),
        }),
    })
}

/// The CRI security context of a container: Kubernetes' namespaces, and its uid and
/// capabilities as given (containerd applies `ALL` first, then the named ones, and refuses
/// an unknown name when it creates the container).
pub fn security_context(security: &ContainerSecurity) -> proto::LinuxContainerSecurityContext {
    let changes_capabilities =
        !security.add_capabilities.is_empty() || !security.drop_capabilities.is_empty();
    proto::LinuxContainerSecurityContext {
        capabilities: changes_capabilities.then(|| proto::Capability {
            add_capabilities: security.add_capabilities.clone(),
            drop_capabilities: security.drop_capabilities.clone(),
        }),
        namespace_options: Some(namespaces()),
        run_as_user: security
            .run_as_user
            .map(|value| proto::Int64Value { value }),
    }
}

/// Limits and requests as cgroup values: a CPU limit as a CFS quota over a 100 ms period, a
/// CPU request as shares (1024 per core, at least 2), memory in bytes (0: unlimited).
pub fn resources(r: &ContainerResources) -> proto::LinuxContainerResources {
    let saturating = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let (cpu_period, cpu_quota) = match r.cpu_limit_millis {
        // At least 1 ms of CPU per period: the kernel refuses smaller quotas.
        Some(millis) => (
            CPU_PERIOD_MICROS,
            saturating(millis)
                .saturating_mul(CPU_PERIOD_MICROS / 1000)
                .max(1000),
        ),
        None => (0, 0),
    };
    proto::LinuxContainerResources {
        cpu_period,
        cpu_quota,
        cpu_shares: r
            .cpu_request_millis
            .map_or(0, |m| (saturating(m).saturating_mul(1024) / 1000).max(2)),
        memory_limit_in_bytes: r.memory_limit_bytes.map_or(0, saturating),
    }
}

/// A CRI container status as orchestra reports it, in `sandbox`.
pub fn container_status(status: proto::ContainerStatus, sandbox: SandboxId) -> ContainerStatus {
    let state = container_state(status.state);
    let metadata = status.metadata.unwrap_or_default();
    let image = status
        .annotations
        .get(IMAGE)
        .cloned()
        .or(status.image.map(|i| i.image))
        .unwrap_or_default();
    ContainerStatus {
        id: ContainerId(status.id),
        sandbox,
        config: ContainerConfig {
            name: metadata.name,
            attempt: metadata.attempt,
            image,
            labels: status.labels.into_iter().collect(),
            annotations: public(status.annotations),
            ..ContainerConfig::default()
        },
        state,
        created_at: time(status.created_at).unwrap_or(SystemTime::UNIX_EPOCH),
        started_at: time(status.started_at),
        finished_at: time(status.finished_at),
        exit_code: (state == ContainerState::Exited).then_some(status.exit_code),
        reason: status.reason,
        message: status.message,
        log_path: (!status.log_path.is_empty()).then(|| PathBuf::from(status.log_path)),
    }
}

/// A CRI sandbox list entry as a relist sees it.
pub fn sandbox_summary(sandbox: proto::PodSandbox) -> SandboxSummary {
    let state = match proto::PodSandboxState::try_from(sandbox.state) {
        Ok(proto::PodSandboxState::SandboxReady) => SandboxState::Ready,
        _ => SandboxState::NotReady,
    };
    SandboxSummary {
        id: SandboxId(sandbox.id),
        pod_uid: sandbox.metadata.map(|m| m.uid).unwrap_or_default(),
        state,
    }
}

/// A CRI container list entry as a relist sees it.
pub fn container_summary(container: proto::Container) -> ContainerSummary {
    ContainerSummary {
        id: ContainerId(container.id),
        sandbox: SandboxId(container.pod_sandbox_id),
        state: container_state(container.state),
    }
}

fn container_state(state: i32) -> ContainerState {
    match proto::ContainerState::try_from(state) {
        Ok(proto::ContainerState::ContainerCreated) => ContainerState::Created,
        Ok(proto::ContainerState::ContainerRunning) => ContainerState::Running,
        Ok(proto::ContainerState::ContainerExited) => ContainerState::Exited,
        _ => ContainerState::Unknown,
    }
}

/// The sandbox recorded in a container's annotations.
pub fn recorded_sandbox(annotations: &HashMap<String, String>) -> Option<SandboxId> {
    annotations.get(SANDBOX).map(|s| SandboxId(s.clone()))
}

/// Annotations without the runtime's own.
fn public(annotations: HashMap<String, String>) -> BTreeMap<String, String> {
    annotations
        .into_iter()
        .filter(|(k, _)| !k.starts_with(INTERNAL_PREFIX))
        .collect()
}

/// A CRI timestamp (nanoseconds since the epoch; 0 or less: not set).
pub fn time(nanos: i64) -> Option<SystemTime> {
    let nanos = u64::try_from(nanos).ok().filter(|n| *n > 0)?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos))
}

/// A grace period in CRI's whole seconds, rounded up so that a container never gets less
/// time than it was given (0 only for no grace at all: an immediate KILL).
pub fn whole_seconds(d: Duration) -> i64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox() -> SandboxConfig {
        SandboxConfig {
            name: "web".into(),
            namespace: "default".into(),
            uid: "u1".into(),
            attempt: 2,
            hostname: "web-host".into(),
            labels: BTreeMap::from([("app".into(), "web".into())]),
            annotations: BTreeMap::from([
                ("note".into(), "kept".into()),
                (format!("{INTERNAL_PREFIX}x"), "dropped".into()),
            ]),
            log_directory: None,
            dns: None,
        }
    }

    #[test]
    fn dns_settings_become_resolv_conf_addresses_and_other_ports_are_refused() {
        let dns = PodDns {
            servers: vec![
                "10.0.0.10:53".into(),
                "fd00::a".into(),
                "[fd00::b]:53".into(),
            ],
            searches: vec!["shop.svc.cluster.local".into(), "svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            dns_config(&dns).unwrap(),
            proto::DnsConfig {
                servers: vec!["10.0.0.10".into(), "fd00::a".into(), "fd00::b".into()],
                searches: dns.searches.clone(),
                options: dns.options.clone(),
            }
        );
        for (server, says) in [
            ("127.0.0.1:5353", "not 5353"),
            ("dns.example", "is not an IP address"),
        ] {
            let err = dns_config(&PodDns {
                servers: vec![server.into()],
                ..PodDns::default()
            })
            .unwrap_err();
            let text = err.to_string();
            assert!(text.contains(server) && text.contains(says), "{text}");
        }
    }

    #[test]
    fn sandbox_config_round_trips_through_cri() {
        let config = sandbox();
        let (dir, owned) = log_directory(Path::new("/logs"), &config);
        assert_eq!(
            (dir.as_path(), owned),
            (Path::new("/logs/default_web_u1"), true)
        );
        let cri = sandbox_config(&config, &dir, owned, Some("/orchestra"));
        assert_eq!(cri.log_directory, "/logs/default_web_u1");
        assert_eq!(cri.hostname, "web-host");
        let linux = cri.linux.clone().expect("linux");
        assert_eq!(linux.cgroup_parent, "/orchestra");
        let ns = linux
            .security_context
            .and_then(|s| s.namespace_options)
            .expect("namespaces");
        assert_eq!(ns.pid, proto::NamespaceMode::Container as i32);
        assert!(!cri.annotations.contains_key(&format!("{INTERNAL_PREFIX}x")));

        let back = sandbox_config_back(cri.metadata, cri.labels, cri.annotations.clone());
        let mut expected = config.clone();
        expected.annotations.remove(&format!("{INTERNAL_PREFIX}x"));
        assert_eq!(
            back, expected,
            "a directory the runtime chose is not reported as given"
        );
        assert_eq!(recorded_log_directory(&cri.annotations), Some((dir, true)));

        let mut given = sandbox();
        given.log_directory = Some(PathBuf::from("/var/log/pods/x"));
        let (dir, owned) = log_directory(Path::new("/logs"), &given);
        let cri = sandbox_config(&given, &dir, owned, None);
        let back = sandbox_config_back(cri.metadata, cri.labels, cri.annotations);
        assert_eq!(back.log_directory, given.log_directory);
    }

    #[test]
    fn container_config_maps_every_field_and_refuses_what_cri_cannot_do() {
        let config = ContainerConfig {
            name: "app".into(),
            attempt: 3,
            image: "busybox:latest".into(),
            command: vec!["/bin/sh".into()],
            args: vec!["-c".into(), "true".into()],
            env: vec![("A".into(), "1".into())],
            working_dir: Some(PathBuf::from("/tmp")),
            mounts: vec![crate::runtime::Mount {
                container_path: "/etc/creds".into(),
                host_path: "/var/lib/agent/u1/creds".into(),
                read_only: true,
            }],
            resources: ContainerResources {
                cpu_limit_millis: Some(250),
                memory_limit_bytes: Some(64 << 20),
                cpu_request_millis: Some(100),
            },
            stop_signal: Some("SIGTERM".into()),
            labels: BTreeMap::from([("l".into(), "v".into())]),
            annotations: BTreeMap::new(),
            security: ContainerSecurity {
                run_as_user: Some(0),
                add_capabilities: vec!["NET_ADMIN".into()],
                drop_capabilities: vec!["ALL".into()],
            },
        };
        let cri = container_config(&config, &SandboxId::from("sb")).expect("valid");
        let security = cri
            .linux
            .as_ref()
            .and_then(|l| l.security_context.clone())
            .expect("security context");
        // uid 0 is sent, not taken for "unset" (it is the wrapper's presence that counts).
        assert_eq!(security.run_as_user, Some(proto::Int64Value { value: 0 }));
        assert_eq!(
            security.capabilities,
            Some(proto::Capability {
                add_capabilities: vec!["NET_ADMIN".into()],
                drop_capabilities: vec!["ALL".into()],
            })
        );
        assert!(security.namespace_options.is_some());
        // Nothing asked, nothing sent: the image's user and the runtime's default set.
        let plain = security_context(&ContainerSecurity::default());
        assert_eq!((plain.run_as_user, plain.capabilities), (None, None));
        assert_eq!(cri.log_path, "app/3.log");
        assert_eq!(cri.working_dir, "/tmp");
        assert_eq!(cri.envs[0].key, "A");
        assert_eq!(
            cri.mounts,
            [proto::Mount {
                container_path: "/etc/creds".into(),
                host_path: "/var/lib/agent/u1/creds".into(),
                readonly: true,
            }]
        );
        let r = cri.linux.and_then(|l| l.resources).expect("resources");
        assert_eq!((r.cpu_period, r.cpu_quota), (100_000, 25_000));
        assert_eq!(r.cpu_shares, 102);
        assert_eq!(r.memory_limit_in_bytes, 64 << 20);
        assert_eq!(
            recorded_sandbox(&cri.annotations),
            Some(SandboxId::from("sb"))
        );

        let status = proto::ContainerStatus {
            id: "c1".into(),
            metadata: cri.metadata,
            state: proto::ContainerState::ContainerExited.into(),
            created_at: 1_000,
            started_at: 2_000,
            finished_at: 0,
            exit_code: 3,
            image: Some(proto::ImageSpec {
                image: "docker.io/library/busybox:latest".into(),
            }),
            reason: "Error".into(),
            message: String::new(),
            labels: cri.labels,
            annotations: cri.annotations,
            log_path: "/logs/app/3.log".into(),
        };
        let back = container_status(status, SandboxId::from("sb"));
        assert_eq!(
            back.config.image, "busybox:latest",
            "the image as it was given"
        );
        assert_eq!(back.config.labels, config.labels);
        assert!(
            back.config.annotations.is_empty(),
            "{:?}",
            back.config.annotations
        );
        assert_eq!(
            (back.state, back.exit_code),
            (ContainerState::Exited, Some(3))
        );
        assert_eq!(back.started_at, time(2_000));
        assert_eq!(back.finished_at, None);
        assert_eq!(back.log_path, Some(PathBuf::from("/logs/app/3.log")));

        for (signal, field) in [(Some("SIGINT"), "stopSignal"), (None, "image")] {
            let mut bad = config.clone();
            bad.stop_signal = signal.map(str::to_owned);
            if signal.is_none() {
                bad.image.clear();
            }
            let err = container_config(&bad, &SandboxId::from("sb")).expect_err("refused");
            assert!(
                matches!(&err, RuntimeError::InvalidConfig { what, .. } if what == field),
                "{err:?}"
            );
        }
    }

    #[test]
    fn grace_periods_round_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::ZERO), 0);
        assert_eq!(whole_seconds(Duration::from_millis(300)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(30)), 30);
        assert_eq!(whole_seconds(Duration::from_millis(30_001)), 31);
    }

    #[test]
    fn small_cpu_values_stay_valid() {
        let r = resources(&ContainerResources {
            cpu_limit_millis: Some(1),
            cpu_request_millis: Some(1),
            memory_limit_bytes: None,
        });
        assert_eq!(
            (r.cpu_quota, r.cpu_shares, r.memory_limit_in_bytes),
            (1000, 2, 0)
        );
    }
}
