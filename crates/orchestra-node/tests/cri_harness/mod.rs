//! The containerd test harness: a containerd of its own (config, root, state and socket in a
//! temporary directory; its own CNI network: a bridge with its own name and subnet, host-local
//! addresses, loopback), a busybox image imported into it, and a cleanup that leaves nothing
//! behind (sandboxes, containers, shims, mounts, network namespaces, the bridge, cgroups, the
//! daemon) and reports what it had to clean up by force.
//!
//! Policy (DESIGN.md): when a tool is missing the test prints that it skipped and why, unless
//! `ORCHESTRA_SYSTEM_TESTS=1`, where a missing tool is a failure.

#![allow(dead_code)]

pub mod image;

use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::FutureExt;
use orchestra_node::RuntimeDriver;
use orchestra_node::cri::{CriRuntime, CriRuntimeConfig};

/// The install command named when a tool is missing.
pub const INSTALL: &str =
    "apt-get install containerd runc containernetworking-plugins busybox-static";
/// Where Debian's containernetworking-plugins are.
pub const CNI_BIN_DIR: &str = "/usr/lib/cni";
/// The image the tests use, as workload and as sandbox image.
pub const IMAGE: &str = "docker.io/orchestra-test/busybox:1";
/// The test network's bridge and subnet (chosen not to collide with containerd's or docker's
/// defaults).
pub const BRIDGE: &str = "orchcri0";
pub const SUBNET: &str = "10.231.17.0/24";
/// The parent cgroup of the test's pods (removed at the end).
pub const CGROUP_PARENT: &str = "/orchestra-cri-test";
/// Where containerd 1.6 creates pod network namespaces.
const NETNS_DIR: &str = "/var/run/netns";
const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
/// Directories containerd 1.6 and CNI create outside the configured ones (shim sockets go
/// under /run/containerd/s whatever the state directory; libcni caches results under
/// /var/lib/cni), innermost first: removed at the end when the test created them and they are
/// empty.
const HOST_DIRS: &[&str] = &[
    "/var/lib/cni/results",
    "/var/lib/cni",
    "/run/containerd/s",
    "/run/containerd/runc/k8s.io",
    "/run/containerd/runc",
    "/run/containerd",
    NETNS_DIR,
];

/// The tools, found on the machine.
pub struct Tools {
    pub containerd: PathBuf,
    pub ctr: PathBuf,
    pub busybox: PathBuf,
}

/// True when the system tests must run (a missing tool fails them).
pub fn required() -> bool {
    std::env::var("ORCHESTRA_SYSTEM_TESTS").is_ok_and(|v| v == "1")
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Why the machine cannot run the test, if it cannot.
fn missing() -> Result<Tools, String> {
    let find = |name: &str| on_path(name).ok_or_else(|| format!("{name} is not on PATH"));
    let containerd = find("containerd")?;
    let ctr = find("ctr")?;
    find("runc")?;
    for plugin in ["bridge", "host-local", "loopback"] {
        let path = Path::new(CNI_BIN_DIR).join(plugin);
        if !path.is_file() {
            return Err(format!("the CNI plugin {} is missing", path.display()));
        }
    }
    let busybox = find("busybox")?;
    let bytes =
        std::fs::read(&busybox).map_err(|e| format!("reading {}: {e}", busybox.display()))?;
    if !image::is_static_elf(&bytes) {
        return Err(format!(
            "{} is not statically linked (install busybox-static)",
            busybox.display()
        ));
    }
    if !rustix::process::geteuid().is_root() {
        return Err("containerd needs root".to_owned());
    }
    Ok(Tools {
        containerd,
        ctr,
        busybox,
    })
}

/// The tools, or `None` after printing why the test is skipped; panics instead when the
/// system tests are required.
pub fn tools_or_skip(test: &str) -> Option<Tools> {
    match missing() {
        Ok(tools) => Some(tools),
        Err(why) if required() => panic!(
            "{test}: {why}, and ORCHESTRA_SYSTEM_TESTS=1 requires it; install with `{INSTALL}`"
        ),
        Err(why) => {
            eprintln!(
                "{test}: skipped: {why}; install with `{INSTALL}` (or set ORCHESTRA_SYSTEM_TESTS=1 to make this a failure)"
            );
            None
        }
    }
}

/// Runs a containerd test: starts a containerd of its own with the test image imported, runs
/// `body` against it, then shuts it down. When the body panics, containerd's log is printed
/// before the panic goes on; the test fails when the shutdown had to clean anything up by force
/// (a leak). Returns at once, skipped, when a tool is missing ([`tools_or_skip`]).
pub async fn run_with_containerd(test: &str, body: impl AsyncFnOnce(&Containerd)) {
    let Some(tools) = tools_or_skip(test) else {
        return;
    };
    let containerd = Containerd::start(&tools).await;
    let outcome = AssertUnwindSafe(async {
        containerd.import_image(&tools).await;
        body(&containerd).await;
    })
    .catch_unwind()
    .await;
    let log = containerd.log();
    let leaks = containerd.shutdown().await;
    if let Err(panic) = outcome {
        eprintln!("containerd's log:\n{log}");
        std::panic::resume_unwind(panic);
    }
    assert!(
        leaks.is_empty(),
        "left behind after every sandbox was removed: {leaks:#?}"
    );
}

/// A running containerd of the test's own.
pub struct Containerd {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub log_root: PathBuf,
    child: tokio::process::Child,
    netns_before: BTreeSet<String>,
    ip_forward_before: Option<String>,
    host_dirs_before: Vec<bool>,
    ctr: PathBuf,
}

fn netns_names() -> BTreeSet<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn config_toml(dir: &Path, socket: &Path) -> String {
    let d = dir.display();
    let s = socket.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
# Plugins that would touch the host outside this directory, or that cannot work here.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{s}"

[ttrpc]
  address = "{s}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE: the sandbox's oom_score_adj of -998 would fail in runc.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{d}/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # runc's own state in the test's directory, not under /run/containerd/runc.
        Root = "{d}/runc"
"#
    )
}

fn cni_conflist(dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "orchestra-cri-test",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                // No masquerading: no iptables rules to leave behind.
                "ipMasq": false,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": SUBNET}]],
                    "dataDir": dir.join("cni-ipam").display().to_string(),
                },
            },
            {"type": "loopback"},
        ],
    })
    .to_string()
}

impl Containerd {
    /// Starts containerd and waits until its CRI answers.
    pub async fn start(tools: &Tools) -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("orchestra-cri-")
            .tempdir()
            .expect("temporary directory");
        let socket = dir.path().join("containerd.sock");
        let config = dir.path().join("config.toml");
        std::fs::write(&config, config_toml(dir.path(), &socket)).expect("write config");
        let net_d = dir.path().join("net.d");
        std::fs::create_dir_all(&net_d).expect("net.d");
        std::fs::write(
            net_d.join("10-orchestra-test.conflist"),
            cni_conflist(dir.path()),
        )
        .expect("write conflist");
        let log = std::fs::File::create(dir.path().join("containerd.log")).expect("log file");
        let netns_before = netns_names();
        let ip_forward_before = std::fs::read_to_string(IP_FORWARD).ok();
        let host_dirs_before = HOST_DIRS.iter().map(|d| Path::new(d).exists()).collect();
        let child = tokio::process::Command::new(&tools.containerd)
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn containerd");
        let log_root = dir.path().join("pod-logs");
        let containerd = Containerd {
            dir,
            socket,
            log_root,
            child,
            netns_before,
            ip_forward_before,
            host_dirs_before,
            ctr: tools.ctr.clone(),
        };
        let limit = Duration::from_secs(30);
        let ready = tokio::time::timeout(limit, async {
            loop {
                if containerd.socket.exists()
                    && let Ok(rt) = CriRuntime::connect(containerd.runtime_config()).await
                {
                    return rt;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        if ready.is_err() {
            panic!(
                "containerd did not serve CRI within {limit:?}; its log:\n{}",
                containerd.log()
            );
        }
        containerd
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// A CriRuntime configuration for this containerd.
    pub fn runtime_config(&self) -> CriRuntimeConfig {
        let mut config =
            CriRuntimeConfig::new(format!("unix://{}", self.socket.display()), &self.log_root);
        config.cgroup_parent = Some(CGROUP_PARENT.to_owned());
        config
    }

    /// A CriRuntime on this containerd.
    pub async fn runtime(&self) -> CriRuntime {
        CriRuntime::connect(self.runtime_config())
            .await
            .expect("connect to containerd")
    }

    /// Builds the busybox image and imports it with `ctr -n k8s.io images import`.
    pub async fn import_image(&self, tools: &Tools) {
        let applets = std::process::Command::new(&tools.busybox)
            .arg("--list")
            .output()
            .expect("busybox --list");
        let applets: Vec<String> = String::from_utf8_lossy(&applets.stdout)
            .lines()
            .map(str::to_owned)
            .collect();
        let archive = self.dir.path().join("busybox-oci.tar");
        image::write_oci_archive(&tools.busybox, &applets, IMAGE, &archive);
        let out = tokio::process::Command::new(&self.ctr)
            .arg("--address")
            .arg(&self.socket)
            .args(["-n", "k8s.io", "images", "import"])
            .arg(&archive)
            .output()
            .await
            .expect("run ctr");
        assert!(
            out.status.success(),
            "ctr images import failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Removes every sandbox through CRI, stops containerd, then removes by force whatever is
    /// left (shims, mounts, network namespaces) and the test network; returns what had to be
    /// removed by force (empty when the runtime cleaned up after itself).
    pub async fn shutdown(mut self) -> Vec<String> {
        let mut leaks = Vec::new();
        match CriRuntime::connect(self.runtime_config()).await {
            Ok(rt) => match rt.list().await {
                Ok(state) => {
                    for sandbox in state.sandboxes {
                        if let Err(e) = rt.remove_pod_sandbox(&sandbox.id).await {
                            leaks.push(format!("sandbox {}: remove failed: {e}", sandbox.id));
                        }
                    }
                }
                Err(e) => leaks.push(format!("listing sandboxes failed: {e}")),
            },
            Err(e) => leaks.push(format!("containerd unreachable at shutdown: {e}")),
        }
        // containerd ends on TERM.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            leaks.push("containerd ignored TERM for 10 s".to_owned());
            let _ = self.child.kill().await;
        }

        let socket = self.socket.display().to_string();
        for (pid, cmdline) in processes_mentioning(&socket) {
            leaks.push(format!("process {pid}: {cmdline}"));
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        let base = self.dir.path().display().to_string();
        for mount in mounts_under(&base) {
            leaks.push(format!("mount {mount}"));
            let _ = std::process::Command::new("umount")
                .args(["-l", &mount])
                .status();
        }
        for name in netns_names().difference(&self.netns_before) {
            if name.starts_with("cni-") {
                leaks.push(format!("network namespace {name}"));
                let _ = std::process::Command::new("ip")
                    .args(["netns", "delete", name])
                    .status();
            }
        }
        // The bridge outlives the pods by design (the CNI bridge plugin never deletes it):
        // removing it is the harness's job, not a leak.
        let _ = std::process::Command::new("ip")
            .args(["link", "delete", BRIDGE])
            .stderr(Stdio::null())
            .status();
        if let Some(before) = &self.ip_forward_before {
            // The bridge plugin turns forwarding on for a gateway bridge: put it back.
            let _ = std::fs::write(IP_FORWARD, before);
        }
        remove_cgroups(CGROUP_PARENT);
        for (dir, existed) in HOST_DIRS.iter().zip(&self.host_dirs_before) {
            if !existed {
                // Only an empty directory is removed: anything in it is someone else's.
                let _ = std::fs::remove_dir(dir);
            }
        }
        leaks
    }
}

/// Processes whose command line mentions `needle` (the shims carry containerd's address).
pub fn processes_mentioning(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push((pid, cmdline.trim().to_owned()));
        }
    }
    found
}

/// Mount points under `base`, deepest first (so that they can be unmounted in order).
pub fn mounts_under(base: &str) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut mounts: Vec<String> = info
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| point.starts_with(base))
        .map(str::to_owned)
        .collect();
    mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
    mounts
}

/// Removes the test's parent cgroup from every cgroup hierarchy (v1 controllers or v2).
fn remove_cgroups(parent: &str) {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else {
        return;
    };
    let relative = parent.trim_start_matches('/');
    let mut candidates = vec![Path::new("/sys/fs/cgroup").join(relative)];
    candidates.extend(
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.path().join(relative)),
    );
    for dir in candidates {
        let _ = std::fs::remove_dir(dir);
    }
}
