//! Running one probe attempt: exec through the runtime, an HTTP(S) GET (see [`super::http`]),
//! or a TCP connect.

use std::net::IpAddr;
use std::time::Duration;

use orchestra_api::IntOrString;
use orchestra_api::resources::{Container, Probe, UriScheme};
use tokio::net::TcpStream;

use super::http::{self, Scheme, Url};
use crate::runtime::{ContainerId, RuntimeDriver};

/// The result of one attempt, as kubelet's prober has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The probe passed.
    Success,
    /// The probe passed, with something worth an event (an httpGet answered with a redirect
    /// off the pod, which is not followed).
    Warning(String),
    /// The probe failed, and why, as kubelet's event message would say.
    Failure(String),
}

impl Outcome {
    /// Whether it counts as a pass.
    pub fn passed(&self) -> bool {
        !matches!(self, Outcome::Failure(_))
    }
}

/// What a probe does, with its port resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handler {
    /// Run a command in the container; exit code 0 is success.
    Exec(Vec<String>),
    /// GET `path` from `host:port`; a status from 200 to 399 is success.
    HttpGet {
        /// HTTP, or HTTPS without verifying the certificate.
        scheme: Scheme,
        /// The host; the pod IP when `None`.
        host: Option<String>,
        /// The port.
        port: u16,
        /// The path, `/` by default.
        path: String,
        /// Extra headers.
        headers: Vec<(String, String)>,
    },
    /// Connect to `host:port`; connecting is success.
    TcpSocket {
        /// The host; the pod IP when `None`.
        host: Option<String>,
        /// The port.
        port: u16,
    },
}

/// A probe with Kubernetes' defaults filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeConfig {
    /// What it does, or why it cannot be run (it then fails every time with this message).
    pub handler: Result<Handler, String>,
    /// Before the first attempt (default 0 s).
    pub initial_delay: Duration,
    /// Between attempts (default 10 s).
    pub period: Duration,
    /// Per attempt (default 1 s).
    pub timeout: Duration,
    /// Consecutive successes to succeed (default 1).
    pub success_threshold: u32,
    /// Consecutive failures to fail (default 3).
    pub failure_threshold: u32,
}

fn seconds(value: Option<i32>, default: u64) -> Duration {
    Duration::from_secs(value.and_then(|v| u64::try_from(v).ok()).unwrap_or(default))
}

fn count(value: Option<i32>, default: u32) -> u32 {
    value
        .and_then(|v| u32::try_from(v).ok())
        .filter(|v| *v > 0)
        .unwrap_or(default)
}

impl ProbeConfig {
    /// The probe of `container` with defaults applied and its port resolved against the
    /// container's named ports.
    pub fn new(probe: &Probe, container: &Container) -> Self {
        ProbeConfig {
            handler: resolve(probe, container),
            initial_delay: seconds(probe.initial_delay_seconds, 0),
            period: seconds(probe.period_seconds, 10).max(Duration::from_secs(1)),
            timeout: seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1)),
            success_threshold: count(probe.success_threshold, 1),
            failure_threshold: count(probe.failure_threshold, 3),
        }
    }
}

fn resolve(probe: &Probe, container: &Container) -> Result<Handler, String> {
    let port = |port: &IntOrString| -> Result<u16, String> {
        match port {
            IntOrString::Int(n) => {
                u16::try_from(*n).map_err(|_| format!("port {n} is out of range"))
            }
            IntOrString::String(name) => container
                .ports
                .iter()
                .find(|p| &p.name == name)
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| {
                    format!(
                        "port {name:?} is not a named port of container {:?}",
                        container.name
                    )
                }),
        }
    };
    let host = |h: &str| (!h.is_empty()).then(|| h.to_owned());
    if let Some(exec) = &probe.exec {
        if exec.command.is_empty() {
            return Err("the exec probe has no command".into());
        }
        return Ok(Handler::Exec(exec.command.clone()));
    }
    if let Some(http) = &probe.http_get {
        return Ok(Handler::HttpGet {
            scheme: match http.scheme {
                Some(UriScheme::Https) => Scheme::Https,
                Some(UriScheme::Http) | None => Scheme::Http,
            },
            host: host(&http.host),
            port: port(&http.port)?,
            path: http::normalise_path(&http.path),
            headers: http
                .http_headers
                .iter()
                .map(|h| (h.name.clone(), h.value.clone()))
                .collect(),
        });
    }
    if let Some(tcp) = &probe.tcp_socket {
        return Ok(Handler::TcpSocket {
            host: host(&tcp.host),
            port: port(&tcp.port)?,
        });
    }
    Err("the probe has no handler (exec, httpGet or tcpSocket)".into())
}

/// Runs one attempt.
pub async fn run_once(
    runtime: &dyn RuntimeDriver,
    container: &ContainerId,
    pod_ip: Option<IpAddr>,
    config: &ProbeConfig,
) -> Outcome {
    let handler = match &config.handler {
        Ok(handler) => handler,
        Err(why) => return Outcome::Failure(why.clone()),
    };
    let host = |host: &Option<String>| match (host, pod_ip) {
        (Some(host), _) => Ok(host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned()),
        (None, Some(ip)) => Ok(ip.to_string()),
        (None, None) => Err("the pod has no IP yet".to_owned()),
    };
    let attempt = async {
        match handler {
            Handler::Exec(command) => {
                let result = match runtime.exec_sync(container, command, config.timeout).await {
                    Ok(result) => result,
                    Err(e) => return Outcome::Failure(e.to_string()),
                };
                if result.exit_code == 0 {
                    Outcome::Success
                } else {
                    Outcome::Failure(format!(
                        "command {command:?} exited with {}: {}",
                        result.exit_code,
                        String::from_utf8_lossy(&result.stdout).trim()
                    ))
                }
            }
            Handler::TcpSocket { host: h, port } => {
                let addr = match host(h) {
                    Ok(host) if host.contains(':') => format!("[{host}]:{port}"),
                    Ok(host) => format!("{host}:{port}"),
                    Err(why) => return Outcome::Failure(why),
                };
                match TcpStream::connect(&addr).await {
                    Ok(_) => Outcome::Success,
                    Err(e) => Outcome::Failure(format!("dial tcp {addr}: {e}")),
                }
            }
            Handler::HttpGet {
                scheme,
                host: h,
                port,
                path,
                headers,
            } => {
                let host = match host(h) {
                    Ok(host) => host,
                    Err(why) => return Outcome::Failure(why),
                };
                let url = Url {
                    scheme: *scheme,
                    host,
                    port: *port,
                    path: path.clone(),
                };
                http::probe(url, headers).await
            }
        }
    };
    match tokio::time::timeout(config.timeout, attempt).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Failure(format!("timeout after {:?}", config.timeout)),
    }
}
