//! nginx as a TCP reverse proxy (its `stream` module), started by the benchmark on loopback
//! with a temporary configuration, as one foreground process (`master_process off`, so that
//! killing the child leaves no orphaned worker), and killed at the end.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::bench::BenchError;
use crate::bench::proxy::io_error;

/// Where Debian's nginx keeps its dynamic stream module.
const STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

/// A running nginx; killed when dropped.
pub struct Nginx {
    /// The child process.
    child: Child,
    /// Its configuration, logs and pid file.
    _dir: tempfile::TempDir,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// The nginx binary to use, or why there is none.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return if path.exists() {
            Ok(path.to_path_buf())
        } else {
            Err(format!("{} does not exist", path.display()))
        };
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin/nginx")])
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "nginx is not installed (apt-get install nginx libnginx-mod-stream)".to_string()
        })
}

/// Starts nginx proxying TCP from a free loopback port to `backend`, and waits until it accepts.
pub async fn start(binary: &Path, backend: SocketAddr) -> Result<Nginx, String> {
    let module = Path::new(STREAM_MODULE);
    let load = if module.exists() {
        format!("load_module {STREAM_MODULE};")
    } else {
        // A build with the module compiled in needs no load_module; one without fails below
        // with nginx's own message.
        String::new()
    };
    start_with(binary, |addr, _dir| {
        format!(
            "{load}\nstream {{ server {{ listen {addr}; proxy_pass {backend}; tcp_nodelay on; proxy_half_close on; proxy_buffer_size 64k; }} }}\n"
        )
    })
    .await
}

/// Starts nginx on a free loopback port with the common settings (foreground, one process,
/// pid and error log in a temporary directory) and what `config` returns for that address
/// and directory (the proxying part), and waits until it accepts.
pub async fn start_with(
    binary: &Path,
    config: impl FnOnce(SocketAddr, &Path) -> String,
) -> Result<Nginx, String> {
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("finding a free port for nginx: {e}"))?
        .port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let dir = tempfile::tempdir().map_err(|e| format!("creating nginx's directory: {e}"))?;
    let d = dir.path().display();
    // The caller's part first: a `load_module` must come before the blocks.
    let config = format!(
        "{}\ndaemon off;\nmaster_process off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n",
        config(addr, dir.path())
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, config).map_err(|e| format!("writing nginx.conf: {e}"))?;
    let mut child = Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting {}: {e}", binary.display()))?;
    // Poll until it accepts: nginx has no readiness signal in the foreground.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
            return Err(format!("nginx exited with {status}: {}", log.trim()));
        }
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("nginx did not accept connections within 10 s".to_string());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(Nginx {
        child,
        _dir: dir,
        addr,
    })
}

impl Nginx {
    /// nginx's resident memory (its one process), in KiB, from /proc.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_of(self.child.id()?)
    }

    /// Stops nginx and waits for it.
    pub async fn stop(mut self) -> Result<(), BenchError> {
        self.child.kill().await.map_err(io_error("stopping nginx"))
    }
}

/// VmRSS of one process in KiB.
fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
