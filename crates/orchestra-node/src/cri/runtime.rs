//! [`CriRuntime`]: the [`RuntimeDriver`] over a CRI server's RuntimeService and ImageService.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::future::BoxFuture;
use tonic::transport::Channel;
use tonic::{Code, Status};

use super::proto::image_service_client::ImageServiceClient;
use super::proto::runtime_service_client::RuntimeServiceClient;
use super::{convert, endpoint, logs, proto};
use crate::runtime::{
    ContainerConfig, ContainerId, ContainerStatus, ExecResult, LogOptions, LogStream,
    RuntimeDriver, RuntimeError, RuntimeState, RuntimeSummary, SandboxConfig, SandboxId,
    SandboxStatus,
};

/// How many status calls `list` makes at once.
const LIST_CONCURRENCY: usize = 8;

/// How a [`CriRuntime`] reaches its CRI server and where container logs go.
#[derive(Clone, Debug)]
pub struct CriRuntimeConfig {
    /// The CRI socket: `unix:///run/containerd/containerd.sock` or an absolute path.
    pub endpoint: String,
    /// Where the logs of sandboxes created without a `log_directory` go
    /// (`<log_root>/<namespace>_<name>_<uid>/<container>/<attempt>.log`).
    pub log_root: PathBuf,
    /// The parent cgroup of the pods' cgroups (the runtime's default when `None`).
    pub cgroup_parent: Option<String>,
    /// The CRI runtime handler (RuntimeClass) sandboxes run with; empty: the default.
    pub runtime_handler: String,
    /// How long connecting to the socket may take.
    pub connect_timeout: Duration,
    /// The deadline of each call (a stop gets its grace period on top; an exec its timeout).
    pub call_timeout: Duration,
    /// The deadline of an image pull.
    pub pull_timeout: Duration,
}

impl CriRuntimeConfig {
    /// A configuration for the CRI server at `endpoint`, logging under `log_root`, with the
    /// default deadlines (connect 5 s, calls 2 min, pulls 10 min).
    pub fn new(endpoint: impl Into<String>, log_root: impl Into<PathBuf>) -> Self {
        CriRuntimeConfig {
            endpoint: endpoint.into(),
            log_root: log_root.into(),
            cgroup_parent: None,
            runtime_handler: String::new(),
            connect_timeout: Duration::from_secs(5),
            call_timeout: Duration::from_secs(120),
            pull_timeout: Duration::from_secs(600),
        }
    }
}

/// Pods as containerd (or any CRI v1 server) runs them: a sandbox is a CRI pod sandbox (its
/// own network namespace, with an IP from the runtime's CNI configuration), a container is a
/// CRI container in it.
///
/// - Containers log in CRI's format to `<log dir>/<name>/<attempt>.log`; [`RuntimeDriver::logs`]
///   decodes it. Removing a container removes its log file; removing a sandbox removes a log
///   directory the runtime chose (not one it was given).
/// - Stopping uses CRI's grace period, which has whole-second resolution: a grace period is
///   rounded up. The stop signal is the image's (CRI v1 has no per-container signal here), so
///   a `stop_signal` other than TERM is refused at create time.
/// - A container's main process is PID 1 of its own PID namespace (Kubernetes' default): as in
///   Kubernetes, it only ends on TERM if it handles TERM.
/// - `pull_image` asks `ImageStatus` first and pulls only a missing image.
pub struct CriRuntime {
    runtime: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    config: CriRuntimeConfig,
    version: String,
}

impl CriRuntime {
    /// Connects to the CRI server of `config` and checks that it answers (`Version`).
    pub async fn connect(config: CriRuntimeConfig) -> Result<Self, RuntimeError> {
        let socket = endpoint::socket_path(&config.endpoint)?;
        let channel = endpoint::connect(&socket, config.connect_timeout).await?;
        let mut runtime = RuntimeServiceClient::new(channel.clone());
        let request = timed(
            proto::VersionRequest {
                version: "v1".to_owned(),
            },
            config.call_timeout,
        );
        let version = runtime
            .version(request)
            .await
            .map_err(|s| RuntimeError::Unavailable {
                message: format!(
                    "the CRI server at {} does not answer Version: {} (does it serve CRI v1, the `runtime.v1` API?)",
                    socket.display(),
                    s.message()
                ),
            })?
            .into_inner();
        Ok(CriRuntime {
            runtime,
            images: ImageServiceClient::new(channel),
            config,
            version: format!("{} {}", version.runtime_name, version.runtime_version),
        })
    }

    /// The runtime's name and version as it reports them (`containerd 1.6.20`).
    pub fn runtime_version(&self) -> &str {
        &self.version
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &CriRuntimeConfig {
        &self.config
    }

    fn rt(&self) -> RuntimeServiceClient<Channel> {
        self.runtime.clone()
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        timed(message, self.config.call_timeout)
    }

    async fn cri_sandbox_status(
        &self,
        id: &SandboxId,
    ) -> Result<proto::PodSandboxStatus, RuntimeError> {
        let request = self.request(proto::PodSandboxStatusRequest {
            pod_sandbox_id: id.0.clone(),
            verbose: false,
        });
        let response = self.rt().pod_sandbox_status(request).await.map_err(|s| {
            lookup_error(
                s,
                "sandbox",
                &id.0,
                "PodSandboxStatus",
                self.config.call_timeout,
            )
        })?;
        response
            .into_inner()
            .status
            .ok_or_else(|| not_found("sandbox", &id.0))
    }

    async fn cri_container_status(
        &self,
        id: &ContainerId,
    ) -> Result<proto::ContainerStatus, RuntimeError> {
        let request = self.request(proto::ContainerStatusRequest {
            container_id: id.0.clone(),
            verbose: false,
        });
        let response = self.rt().container_status(request).await.map_err(|s| {
            lookup_error(
                s,
                "container",
                &id.0,
                "ContainerStatus",
                self.config.call_timeout,
            )
        })?;
        response
            .into_inner()
            .status
            .ok_or_else(|| not_found("container", &id.0))
    }

    async fn cri_list_containers(
        &self,
        filter: proto::ContainerFilter,
    ) -> Result<Vec<proto::Container>, RuntimeError> {
        let request = self.request(proto::ListContainersRequest {
            filter: Some(filter),
        });
        let response = self
            .rt()
            .list_containers(request)
            .await
            .map_err(|s| call_error(s, "ListContainers", self.config.call_timeout))?;
        Ok(response.into_inner().containers)
    }

    /// The sandbox of a container: recorded in its annotations when this runtime created it,
    /// otherwise asked of the server.
    async fn sandbox_of(&self, status: &proto::ContainerStatus) -> Result<SandboxId, RuntimeError> {
        if let Some(sandbox) = convert::recorded_sandbox(&status.annotations) {
            return Ok(sandbox);
        }
        let found = self
            .cri_list_containers(proto::ContainerFilter {
                id: status.id.clone(),
                ..proto::ContainerFilter::default()
            })
            .await?;
        found
            .into_iter()
            .next()
            .map(|c| SandboxId(c.pod_sandbox_id))
            .ok_or_else(|| not_found("container", &status.id))
    }

    async fn status_of(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        let status = self.cri_container_status(id).await?;
        let sandbox = self.sandbox_of(&status).await?;
        Ok(convert::container_status(status, sandbox))
    }
}

#[async_trait]
impl RuntimeDriver for CriRuntime {
    fn name(&self) -> &str {
        "cri"
    }

    async fn run_pod_sandbox(&self, config: &SandboxConfig) -> Result<SandboxId, RuntimeError> {
        // Refused before anything is made.
        let dns_config = config.dns.as_ref().map(convert::dns_config).transpose()?;
        let (log_directory, owned) = convert::log_directory(&self.config.log_root, config);
        create_dir(&log_directory)?;
        let mut cri = convert::sandbox_config(
            config,
            &log_directory,
            owned,
            self.config.cgroup_parent.as_deref(),
        );
        cri.dns_config = dns_config;
        let request = self.request(proto::RunPodSandboxRequest {
            config: Some(cri),
            runtime_handler: self.config.runtime_handler.clone(),
        });
        let response = self.rt().run_pod_sandbox(request).await.map_err(|s| {
            call_error(
                s,
                &format!("RunPodSandbox for pod {}/{}", config.namespace, config.name),
                self.config.call_timeout,
            )
        })?;
        Ok(SandboxId(response.into_inner().pod_sandbox_id))
    }

    async fn stop_pod_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        let request = self.request(proto::StopPodSandboxRequest {
            pod_sandbox_id: id.0.clone(),
        });
        match self.rt().stop_pod_sandbox(request).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(call_error(
                s,
                &format!("StopPodSandbox {id}"),
                self.config.call_timeout,
            )),
        }
    }

    async fn remove_pod_sandbox(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        let status = match self.cri_sandbox_status(id).await {
            Ok(status) => status,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        // The containers first, one by one, so that their log files go with them (CRI's
        // RemovePodSandbox removes containers but leaves their logs).
        self.stop_pod_sandbox(id).await?;
        let containers = self
            .cri_list_containers(proto::ContainerFilter {
                pod_sandbox_id: id.0.clone(),
                ..proto::ContainerFilter::default()
            })
            .await?;
        for container in containers {
            self.remove_container(&ContainerId(container.id)).await?;
        }
        let request = self.request(proto::RemovePodSandboxRequest {
            pod_sandbox_id: id.0.clone(),
        });
        match self.rt().remove_pod_sandbox(request).await {
            Ok(_) => {}
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => {
                return Err(call_error(
                    s,
                    &format!("RemovePodSandbox {id}"),
                    self.config.call_timeout,
                ));
            }
        }
        if let Some((dir, true)) = convert::recorded_log_directory(&status.annotations) {
            remove_dir(&dir)?;
        }
        Ok(())
    }

    async fn sandbox_status(&self, id: &SandboxId) -> Result<SandboxStatus, RuntimeError> {
        Ok(convert::sandbox_status(self.cri_sandbox_status(id).await?))
    }

    async fn create_container(
        &self,
        sandbox: &SandboxId,
        config: &ContainerConfig,
    ) -> Result<ContainerId, RuntimeError> {
        let cri = convert::container_config(config, sandbox)?;
        // CRI wants the sandbox's configuration again (containerd takes the log directory
        // from it); it also tells whether the sandbox still runs, which containerd does not
        // check before creating.
        let status = self.cri_sandbox_status(sandbox).await?;
        if status.state != proto::PodSandboxState::SandboxReady as i32 {
            return Err(RuntimeError::InvalidState {
                id: sandbox.0.clone(),
                message: "the sandbox is not ready (stopped): containers cannot be created in it"
                    .to_owned(),
            });
        }
        let Some((log_directory, owned)) = convert::recorded_log_directory(&status.annotations)
        else {
            return Err(RuntimeError::InvalidState {
                id: sandbox.0.clone(),
                message: "the sandbox was not created by orchestra's CRI runtime (it has no log directory annotation)".to_owned(),
            });
        };
        if let Some(parent) = log_directory.join(&cri.log_path).parent() {
            create_dir(parent)?;
        }
        let back = convert::sandbox_config_back(status.metadata, status.labels, status.annotations);
        let sandbox_config = convert::sandbox_config(
            &back,
            &log_directory,
            owned,
            self.config.cgroup_parent.as_deref(),
        );
        let request = self.request(proto::CreateContainerRequest {
            pod_sandbox_id: sandbox.0.clone(),
            config: Some(cri),
            sandbox_config: Some(sandbox_config),
        });
        match self.rt().create_container(request).await {
            Ok(response) => Ok(ContainerId(response.into_inner().container_id)),
            // The sandbox was just found: what is missing is the image.
            Err(s) if s.code() == Code::NotFound => Err(RuntimeError::Image {
                image: config.image.clone(),
                message: s.message().to_owned(),
            }),
            Err(s) => Err(call_error(
                s,
                &format!("CreateContainer {:?} in sandbox {sandbox}", config.name),
                self.config.call_timeout,
            )),
        }
    }

    async fn start_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let request = self.request(proto::StartContainerRequest {
            container_id: id.0.clone(),
        });
        match self.rt().start_container(request).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Err(not_found("container", &id.0)),
            Err(s) if is_state_error(&s) => Err(RuntimeError::InvalidState {
                id: id.0.clone(),
                message: s.message().to_owned(),
            }),
            Err(s) if is_deadline(&s) => Err(RuntimeError::Timeout {
                what: format!("StartContainer {id}"),
                after: self.config.call_timeout,
            }),
            Err(s) => Err(RuntimeError::StartFailed {
                id: id.0.clone(),
                message: s.message().to_owned(),
            }),
        }
    }

    async fn stop_container(&self, id: &ContainerId, grace: Duration) -> Result<(), RuntimeError> {
        let deadline = grace.saturating_add(self.config.call_timeout);
        let request = timed(
            proto::StopContainerRequest {
                container_id: id.0.clone(),
                timeout: convert::whole_seconds(grace),
            },
            deadline,
        );
        match self.rt().stop_container(request).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => Ok(()),
            Err(s) => Err(call_error(s, &format!("StopContainer {id}"), deadline)),
        }
    }

    async fn remove_container(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let log_path = match self.cri_container_status(id).await {
            Ok(status) => status.log_path,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        let request = self.request(proto::RemoveContainerRequest {
            container_id: id.0.clone(),
        });
        match self.rt().remove_container(request).await {
            Ok(_) => {}
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => {
                return Err(call_error(
                    s,
                    &format!("RemoveContainer {id}"),
                    self.config.call_timeout,
                ));
            }
        }
        if !log_path.is_empty() {
            let path = Path::new(&log_path);
            remove_file(path)?;
            // The container's directory (`<name>/`) goes once its last attempt's log has
            // gone; while another attempt's log is there, this fails and that is fine.
            if let Some(dir) = path.parent() {
                let _ = std::fs::remove_dir(dir);
            }
        }
        Ok(())
    }

    async fn container_status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        self.status_of(id).await
    }

    async fn list(&self) -> Result<RuntimeState, RuntimeError> {
        let request = self.request(proto::ListPodSandboxRequest { filter: None });
        let sandboxes = self
            .rt()
            .list_pod_sandbox(request)
            .await
            .map_err(|s| call_error(s, "ListPodSandbox", self.config.call_timeout))?
            .into_inner()
            .items;
        let containers = self
            .cri_list_containers(proto::ContainerFilter::default())
            .await?;
        // The list entries lack IPs, exit codes and times: ask for each one's status. One that
        // vanished in between is simply not listed.
        let sandboxes: Vec<_> = futures::stream::iter(sandboxes)
            .map(|s| async move { self.sandbox_status(&SandboxId(s.id)).await })
            .buffered(LIST_CONCURRENCY)
            .collect()
            .await;
        let containers: Vec<_> = futures::stream::iter(containers)
            .map(|c| async move {
                let status = self.cri_container_status(&ContainerId(c.id)).await?;
                Ok::<_, RuntimeError>(convert::container_status(
                    status,
                    SandboxId(c.pod_sandbox_id),
                ))
            })
            .buffered(LIST_CONCURRENCY)
            .collect()
            .await;
        let mut state = RuntimeState::default();
        for sandbox in sandboxes {
            match sandbox {
                Ok(s) => state.sandboxes.push(s),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        for container in containers {
            match container {
                Ok(c) => state.containers.push(c),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(state)
    }

    async fn list_summary(&self) -> Result<RuntimeSummary, RuntimeError> {
        // Two calls whatever the node runs: the list entries carry the states.
        let request = self.request(proto::ListPodSandboxRequest { filter: None });
        let sandboxes = self
            .rt()
            .list_pod_sandbox(request)
            .await
            .map_err(|s| call_error(s, "ListPodSandbox", self.config.call_timeout))?
            .into_inner()
            .items;
        let containers = self
            .cri_list_containers(proto::ContainerFilter::default())
            .await?;
        Ok(RuntimeSummary {
            sandboxes: sandboxes
                .into_iter()
                .map(convert::sandbox_summary)
                .collect(),
            containers: containers
                .into_iter()
                .map(convert::container_summary)
                .collect(),
        })
    }

    async fn exec_sync(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecResult, RuntimeError> {
        if command.is_empty() {
            return Err(RuntimeError::InvalidConfig {
                what: "exec command".to_owned(),
                message: "the command is empty".to_owned(),
            });
        }
        // CRI counts the exec's timeout in whole seconds (rounded up here); the exact one is
        // kept by dropping the call when it passes, which cancels the exec in containerd.
        let request = tonic::Request::new(proto::ExecSyncRequest {
            container_id: id.0.clone(),
            cmd: command.to_vec(),
            timeout: convert::whole_seconds(timeout),
        });
        let timed_out = || RuntimeError::Timeout {
            what: format!("exec {command:?} in container {id}"),
            after: timeout,
        };
        let mut client = self.rt();
        let response = match tokio::time::timeout(timeout, client.exec_sync(request)).await {
            Err(_) => return Err(timed_out()),
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(s)) if is_deadline(&s) => return Err(timed_out()),
            Ok(Err(s)) if s.code() == Code::NotFound => return Err(not_found("container", &id.0)),
            Ok(Err(s)) if is_state_error(&s) => {
                return Err(RuntimeError::InvalidState {
                    id: id.0.clone(),
                    message: s.message().to_owned(),
                });
            }
            Ok(Err(s)) => return Err(call_error(s, &format!("ExecSync in {id}"), timeout)),
        };
        Ok(ExecResult {
            exit_code: response.exit_code,
            stdout: response.stdout,
            stderr: response.stderr,
        })
    }

    async fn logs(&self, id: &ContainerId, options: LogOptions) -> Result<LogStream, RuntimeError> {
        let status = self.cri_container_status(id).await?;
        if status.log_path.is_empty() {
            return Ok(Box::pin(futures::stream::empty()));
        }
        let client = self.rt();
        let call_timeout = self.config.call_timeout;
        let container = id.0.clone();
        let exited = move || -> BoxFuture<'static, bool> {
            let mut client = client.clone();
            let request = timed(
                proto::ContainerStatusRequest {
                    container_id: container.clone(),
                    verbose: false,
                },
                call_timeout,
            );
            Box::pin(async move {
                match client.container_status(request).await {
                    Ok(r) => r
                        .into_inner()
                        .status
                        .is_none_or(|s| s.state == proto::ContainerState::ContainerExited as i32),
                    Err(s) => s.code() == Code::NotFound,
                }
            })
        };
        logs::read(PathBuf::from(status.log_path), &options, exited)
    }

    async fn pull_image(&self, image: &str) -> Result<(), RuntimeError> {
        if image.is_empty() {
            return Err(RuntimeError::InvalidConfig {
                what: "image".to_owned(),
                message: "no image given".to_owned(),
            });
        }
        let spec = proto::ImageSpec {
            image: image.to_owned(),
        };
        let request = self.request(proto::ImageStatusRequest {
            image: Some(spec.clone()),
            verbose: false,
        });
        let image_error = |s: Status| RuntimeError::Image {
            image: image.to_owned(),
            message: s.message().to_owned(),
        };
        let present = self
            .images
            .clone()
            .image_status(request)
            .await
            .map_err(image_error)?
            .into_inner()
            .image
            .is_some();
        if present {
            return Ok(());
        }
        let request = timed(
            proto::PullImageRequest {
                image: Some(spec),
                sandbox_config: None,
            },
            self.config.pull_timeout,
        );
        self.images
            .clone()
            .pull_image(request)
            .await
            .map_err(image_error)?;
        Ok(())
    }
}

/// A request with a deadline.
fn timed<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

fn not_found(kind: &'static str, id: &str) -> RuntimeError {
    RuntimeError::NotFound {
        kind,
        id: id.to_owned(),
    }
}

/// Whether the call ran out of time: the server's deadline, or tonic's own (which it reports
/// as `Cancelled: Timeout expired`).
fn is_deadline(s: &Status) -> bool {
    s.code() == Code::DeadlineExceeded
        || (s.code() == Code::Cancelled && s.message().contains("Timeout expired"))
}

/// Whether the server refused the call because of the object's state (containerd says
/// `container is in CONTAINER_RUNNING state` and the like).
fn is_state_error(s: &Status) -> bool {
    s.code() == Code::FailedPrecondition || s.message().contains("state")
}

/// The error of a status or lookup call: NotFound for an unknown object.
fn lookup_error(
    s: Status,
    kind: &'static str,
    id: &str,
    call: &str,
    deadline: Duration,
) -> RuntimeError {
    if s.code() == Code::NotFound {
        not_found(kind, id)
    } else {
        call_error(s, &format!("{call} {id}"), deadline)
    }
}

/// Any other failed call, with what was being done.
fn call_error(s: Status, what: &str, deadline: Duration) -> RuntimeError {
    if is_deadline(&s) {
        return RuntimeError::Timeout {
            what: what.to_owned(),
            after: deadline,
        };
    }
    match s.code() {
        Code::InvalidArgument => RuntimeError::InvalidConfig {
            what: what.to_owned(),
            message: s.message().to_owned(),
        },
        _ => RuntimeError::Unavailable {
            message: format!("{what}: {} ({:?})", s.message(), s.code()),
        },
    }
}

fn create_dir(dir: &Path) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(dir).map_err(|source| RuntimeError::Io {
        context: format!("creating the log directory {}", dir.display()),
        source,
    })
}

fn remove_dir(dir: &Path) -> Result<(), RuntimeError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RuntimeError::Io {
            context: format!("removing the log directory {}", dir.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn remove_file(path: &Path) -> Result<(), RuntimeError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(RuntimeError::Io {
            context: format!("removing the container log {}", path.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}
