//! The etcd test harness: starts real etcd servers (Debian's `etcd-server`) on free loopback
//! ports with data in temporary directories, kills them with SIGKILL, restarts them on the same
//! data and ports, and stops them when dropped.
//!
//! Policy (DESIGN.md): when `etcd` is not on PATH a test prints that it skipped and why and
//! returns, unless `ORCHESTRA_SYSTEM_TESTS=1`, where a missing tool is a failure.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use orchestra_store::etcd::{EtcdOptions, EtcdStore};
use tokio::time::Instant;

/// How long an etcd member may take to answer after it was started.
const START_GUARD: Duration = Duration::from_secs(30);

/// The install command named when etcd is missing.
pub const INSTALL: &str = "apt-get install etcd-server etcd-client";

/// Log with `tracing` to the test's output, filtered by `RUST_LOG` (nothing by default).
pub fn trace() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The etcd binary on PATH, if any.
pub fn etcd_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|candidate| candidate.is_file())
}

/// True when the system tests must run (a missing tool fails them).
pub fn required() -> bool {
    std::env::var("ORCHESTRA_SYSTEM_TESTS").is_ok_and(|v| v == "1")
}

/// The etcd binary, or `None` after printing why the test is skipped; panics instead when
/// the system tests are required.
pub fn etcd_or_skip(test: &str) -> Option<PathBuf> {
    trace();
    match etcd_binary() {
        Some(binary) => Some(binary),
        None if required() => panic!(
            "{test}: etcd is not on PATH and ORCHESTRA_SYSTEM_TESTS=1 requires it; install it with `{INSTALL}`"
        ),
        None => {
            eprintln!(
                "{test}: skipped: etcd is not on PATH; install it with `{INSTALL}` (or set ORCHESTRA_SYSTEM_TESTS=1 to make this a failure)"
            );
            None
        }
    }
}

/// A free loopback port (the listener is closed before etcd binds it; a collision with
/// another process is caught by `Member::start`, which retries with new ports).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("local address").port()
}

/// One etcd member: its process, its data directory and its ports.
pub struct Member {
    binary: PathBuf,
    pub name: String,
    pub data_dir: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
    initial_cluster: String,
    extra: Vec<String>,
    child: Option<Child>,
    /// The temporary directory holding the data directory (None when shared by a cluster).
    _dir: Option<tempfile::TempDir>,
}

impl Member {
    /// A single-member cluster in its own temporary directory, started and answering.
    pub async fn single(binary: &Path) -> Member {
        Self::single_with(binary, &[]).await
    }

    /// A single-member cluster with extra flags.
    pub async fn single_with(binary: &Path, extra: &[&str]) -> Member {
        let mut last_log = String::new();
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("create a temporary directory");
            let (client_port, peer_port) = (free_port(), free_port());
            let name = "default".to_string();
            let initial_cluster = format!("{name}=http://127.0.0.1:{peer_port}");
            let mut member = Member {
                binary: binary.to_path_buf(),
                name,
                data_dir: dir.path().join("data"),
                client_port,
                peer_port,
                initial_cluster,
                extra: extra.iter().map(|s| s.to_string()).collect(),
                child: None,
                _dir: Some(dir),
            };
            member.spawn();
            match member.wait_ready().await {
                Ok(()) => return member,
                Err(log) => last_log = log,
            }
        }
        panic!("etcd did not start in three tries; its last log:\n{last_log}");
    }

    /// A member of a multi-member cluster (not started).
    pub fn of_cluster(
        binary: &Path,
        base: &Path,
        name: &str,
        client_port: u16,
        peer_port: u16,
        initial_cluster: &str,
        extra: &[&str],
    ) -> Member {
        Member {
            binary: binary.to_path_buf(),
            name: name.to_string(),
            data_dir: base.join(name),
            client_port,
            peer_port,
            initial_cluster: initial_cluster.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: None,
            _dir: None,
        }
    }

    /// A cluster of `size` members named `m0`, `m1`, ... on free loopback ports, with data
    /// under `base`, started and ready (panics with the member's log otherwise).
    pub async fn start_cluster(
        binary: &Path,
        base: &Path,
        size: usize,
        extra: &[&str],
    ) -> Vec<Member> {
        let ports: Vec<(u16, u16)> = (0..size).map(|_| (free_port(), free_port())).collect();
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, peer))| format!("m{i}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members: Vec<Member> = ports
            .iter()
            .enumerate()
            .map(|(i, &(client, peer))| {
                let name = format!("m{i}");
                Member::of_cluster(binary, base, &name, client, peer, &initial_cluster, extra)
            })
            .collect();
        for member in &mut members {
            member.spawn();
        }
        for member in &mut members {
            if let Err(log) = member.wait_ready().await {
                panic!("{} did not start: {log}", member.name);
            }
        }
        members
    }

    /// The client URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn log_path(&self) -> PathBuf {
        self.data_dir.with_extension("log")
    }

    /// Start the process (on its data directory and ports).
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let client = self.url();
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open the etcd log file");
        let log_err = log.try_clone().expect("clone the log file handle");
        let child = Command::new(&self.binary)
            .args(["--name", &self.name])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", "orchestra-test"])
            .args(["--initial-cluster-state", "new"])
            .args([
                "--logger",
                "zap",
                "--log-outputs",
                "stderr",
                "--log-level",
                "warn",
            ])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
    }

    /// Wait until the member serves a status request (or its process died: its log is the
    /// error).
    pub async fn wait_ready(&mut self) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < START_GUARD {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(exit)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("etcd exited with {exit}:\n{}", self.log()));
            }
            let options = EtcdOptions::new([self.url()])
                .with_connect_timeout(Duration::from_millis(500))
                .with_request_timeout(Duration::from_secs(2));
            if let Ok(store) = EtcdStore::connect(options).await
                && orchestra_store::Store::status(&store).await.is_ok()
            {
                return Ok(());
            }
            // Polling a starting server: the pause only paces the polls.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "etcd did not answer within {START_GUARD:?}:\n{}",
            self.log()
        ))
    }

    /// The member's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILL the process and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// True while the process runs.
    pub fn running(&self) -> bool {
        self.child.is_some()
    }

    /// Start again on the same data directory and ports, and wait until it answers.
    pub async fn restart(&mut self) {
        self.spawn();
        if let Err(log) = self.wait_ready().await {
            panic!("{} did not come back: {log}", self.name);
        }
    }

    /// Move the client port (for a restart that existing clients must not reach).
    pub fn set_client_port(&mut self, port: u16) {
        assert!(!self.running(), "change the port of a stopped member only");
        self.client_port = port;
    }

    /// A store connected to this member alone.
    pub async fn store(&self) -> EtcdStore {
        EtcdStore::connect(EtcdOptions::new([self.url()]))
            .await
            .expect("connect to etcd")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A field `"name":N` of etcdctl's JSON output.
pub fn json_number(json: &str, name: &str) -> i64 {
    let pattern = format!("\"{name}\":");
    let start = json
        .find(&pattern)
        .unwrap_or_else(|| panic!("no {name} in {json}"))
        + pattern.len();
    json[start..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number in {json}"))
}
