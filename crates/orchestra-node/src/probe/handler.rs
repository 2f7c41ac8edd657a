//! Running one probe attempt: exec through the runtime, an HTTP GET, or a TCP connect.

use std::net::IpAddr;
use std::time::Duration;

use orchestra_api::IntOrString;
use orchestra_api::resources::{Container, Probe, UriScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::runtime::{ContainerId, RuntimeDriver};

/// What a probe does, with its port resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handler {
    /// Run a command in the container; exit code 0 is success.
    Exec(Vec<String>),
    /// GET `path` from `host:port`; a status from 200 to 399 is success.
    HttpGet {
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
        if http.scheme == Some(UriScheme::Https) {
            return Err("HTTPS probes are not supported yet; use HTTP, tcpSocket or exec".into());
        }
        return Ok(Handler::HttpGet {
            host: host(&http.host),
            port: port(&http.port)?,
            path: if http.path.is_empty() {
                "/".into()
            } else {
                http.path.clone()
            },
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

/// Runs one attempt; `Err` carries why it failed, as kubelet's event message would.
pub async fn run_once(
    runtime: &dyn RuntimeDriver,
    container: &ContainerId,
    pod_ip: Option<IpAddr>,
    config: &ProbeConfig,
) -> Result<(), String> {
    let handler = config.handler.as_ref().map_err(Clone::clone)?;
    let target = |host: &Option<String>, port: u16| match (host, pod_ip) {
        (Some(host), _) => Ok(format!("{host}:{port}")),
        (None, Some(ip)) => Ok(std::net::SocketAddr::new(ip, port).to_string()),
        (None, None) => Err("the pod has no IP yet".to_owned()),
    };
    let attempt = async {
        match handler {
            Handler::Exec(command) => {
                let result = runtime
                    .exec_sync(container, command, config.timeout)
                    .await
                    .map_err(|e| e.to_string())?;
                if result.exit_code == 0 {
                    Ok(())
                } else {
                    Err(format!(
                        "command {command:?} exited with {}: {}",
                        result.exit_code,
                        String::from_utf8_lossy(&result.stdout).trim()
                    ))
                }
            }
            Handler::TcpSocket { host, port } => {
                let addr = target(host, *port)?;
                TcpStream::connect(&addr)
                    .await
                    .map(drop)
                    .map_err(|e| format!("dial tcp {addr}: {e}"))
            }
            Handler::HttpGet {
                host,
                port,
                path,
                headers,
            } => {
                let addr = target(host, *port)?;
                let code = http_get(&addr, path, headers).await?;
                if (200..400).contains(&code) {
                    Ok(())
                } else {
                    Err(format!("HTTP probe failed with statuscode: {code}"))
                }
            }
        }
    };
    match tokio::time::timeout(config.timeout, attempt).await {
        Ok(outcome) => outcome,
        Err(_) => Err(format!("timeout after {:?}", config.timeout)),
    }
}

/// One `GET` over a fresh connection, returning the status code.
///
/// Written by hand rather than with hyper's client: a probe needs one request line, a few
/// headers and the status code of the answer, and hyper's client would add the hyper-util
/// client stack and body handling to the node agent for that.
async fn http_get(addr: &str, path: &str, headers: &[(String, String)]) -> Result<u16, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("Get \"http://{addr}{path}\": dial tcp {addr}: {e}"))?;
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: orchestra-probe/0.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("writing to {addr}: {e}"))?;
    let mut head = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("reading from {addr}: {e}"))?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default();
    line.split_whitespace()
        .nth(1)
        .filter(|_| line.starts_with("HTTP/"))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("{addr} did not answer with an HTTP status line: {line:?}"))
}
