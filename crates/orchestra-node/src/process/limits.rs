//! CPU and memory limits: cgroup v2 where a writable one is available, rlimits otherwise.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rustix::process::{Pid, Resource, Rlimit, prlimit};

use crate::runtime::ContainerResources;

/// The CFS period cpu.max quotas are expressed in (the kernel's default, 100 ms).
const CPU_PERIOD_MICROS: u64 = 100_000;

/// How a [`ProcessRuntime`](super::ProcessRuntime) enforces containers' limits, as chosen when
/// it starts ([`ProcessRuntime::limits_mode`](super::ProcessRuntime::limits_mode)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitsMode {
    /// Each container runs in its own cgroup v2 under `root`: `cpu.max` for the CPU limit,
    /// `memory.max` for the memory limit. The process joins its cgroup right after it is
    /// spawned (no pre-exec hook without `unsafe`), so a child it forks in its first instant
    /// may escape.
    CgroupV2 {
        /// The parent cgroup of the containers' cgroups.
        root: PathBuf,
    },
    /// No writable cgroup v2 with the cpu and memory controllers: the memory limit becomes the
    /// process's `RLIMIT_AS` (address space, set with `prlimit` right after spawn, inherited by
    /// its children); the CPU limit is not enforced (no rlimit expresses a rate).
    Rlimit,
}

impl LimitsMode {
    /// Chooses the mode: cgroup v2 under `cgroup_root` if its parent offers the cpu and memory
    /// controllers and the runtime may create and configure it; rlimits otherwise.
    pub fn detect(cgroup_root: Option<&Path>) -> LimitsMode {
        let Some(root) = cgroup_root else {
            return LimitsMode::Rlimit;
        };
        let existed = root.exists();
        match prepare_cgroup_root(root) {
            Ok(()) => LimitsMode::CgroupV2 {
                root: root.to_owned(),
            },
            Err(e) => {
                tracing::info!(cgroup = %root.display(), error = %e, "no usable cgroup v2: limits fall back to rlimits");
                if !existed {
                    // Best effort: leave no unusable empty cgroup behind.
                    let _ = fs::remove_dir(root);
                }
                LimitsMode::Rlimit
            }
        }
    }

    /// A short name for logs and docs (`cgroup-v2`, `rlimit`).
    pub fn name(&self) -> &'static str {
        match self {
            LimitsMode::CgroupV2 { .. } => "cgroup-v2",
            LimitsMode::Rlimit => "rlimit",
        }
    }

    /// Prepares a container's cgroup (cgroup mode) before its process exists; returns its path.
    pub fn create_cgroup(
        &self,
        container: &str,
        resources: &ContainerResources,
    ) -> io::Result<Option<PathBuf>> {
        let LimitsMode::CgroupV2 { root } = self else {
            return Ok(None);
        };
        let dir = root.join(container);
        fs::create_dir_all(&dir)?;
        if let Some(millis) = resources.cpu_limit_millis {
            let quota = (millis * CPU_PERIOD_MICROS / 1000).max(1000);
            fs::write(dir.join("cpu.max"), format!("{quota} {CPU_PERIOD_MICROS}"))?;
        }
        if let Some(bytes) = resources.memory_limit_bytes {
            fs::write(dir.join("memory.max"), bytes.to_string())?;
        }
        Ok(Some(dir))
    }

    /// Applies the limits to a just-spawned process: moves it into `cgroup`, or sets its
    /// address-space rlimit.
    pub fn apply(
        &self,
        pid: i32,
        cgroup: Option<&Path>,
        resources: &ContainerResources,
    ) -> io::Result<()> {
        match (self, cgroup) {
            (LimitsMode::CgroupV2 { .. }, Some(dir)) => {
                fs::write(dir.join("cgroup.procs"), pid.to_string())
            }
            (LimitsMode::CgroupV2 { .. }, None) => Ok(()),
            (LimitsMode::Rlimit, _) => {
                let (Some(bytes), Some(pid)) = (resources.memory_limit_bytes, Pid::from_raw(pid))
                else {
                    return Ok(());
                };
                let limit = Rlimit {
                    current: Some(bytes),
                    maximum: Some(bytes),
                };
                prlimit(Some(pid), Resource::As, limit)
                    .map(|_| ())
                    .map_err(io::Error::from)
            }
        }
    }

    /// Removes a container's cgroup (it must be empty: its processes have exited).
    pub fn remove_cgroup(cgroup: &Path) -> io::Result<()> {
        match fs::remove_dir(cgroup) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Creates `root` under a cgroup v2 parent that offers cpu and memory, and delegates both
/// controllers to `root`'s children.
fn prepare_cgroup_root(root: &Path) -> io::Result<()> {
    let parent = root
        .parent()
        .ok_or_else(|| io::Error::other("the cgroup root has no parent"))?;
    let offered = fs::read_to_string(parent.join("cgroup.controllers"))?;
    let has = |c: &str| offered.split_whitespace().any(|o| o == c);
    if !has("cpu") || !has("memory") {
        return Err(io::Error::other("cpu or memory controller missing"));
    }
    // The parent may already delegate them; a failure here shows up in the check below.
    let _ = fs::write(parent.join("cgroup.subtree_control"), "+cpu +memory");
    fs::create_dir_all(root)?;
    fs::write(root.join("cgroup.subtree_control"), "+cpu +memory")?;
    let delegated = fs::read_to_string(root.join("cgroup.subtree_control"))?;
    if delegated
        .split_whitespace()
        .filter(|c| *c == "cpu" || *c == "memory")
        .count()
        == 2
    {
        Ok(())
    } else {
        Err(io::Error::other("cpu and memory could not be delegated"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_cgroup_root_means_rlimits() {
        assert_eq!(LimitsMode::detect(None), LimitsMode::Rlimit);
        let dir = tempfile::tempdir().expect("tempdir");
        // A plain directory is no cgroup: no cgroup.controllers in its parent.
        assert_eq!(
            LimitsMode::detect(Some(&dir.path().join("orchestra"))),
            LimitsMode::Rlimit
        );
        assert_eq!(LimitsMode::Rlimit.name(), "rlimit");
    }

    #[test]
    fn cgroup_files_get_the_kernel_formats() {
        // The files a cgroup v2 directory offers, written into a plain directory: this checks
        // what is written, not that a kernel enforces it.
        let dir = tempfile::tempdir().expect("tempdir");
        let mode = LimitsMode::CgroupV2 {
            root: dir.path().to_owned(),
        };
        let resources = ContainerResources {
            cpu_limit_millis: Some(500),
            memory_limit_bytes: Some(64 << 20),
            cpu_request_millis: None,
        };
        let cgroup = mode
            .create_cgroup("c1", &resources)
            .expect("create")
            .expect("a cgroup");
        assert_eq!(cgroup, dir.path().join("c1"));
        assert_eq!(
            fs::read_to_string(cgroup.join("cpu.max")).expect("cpu.max"),
            "50000 100000"
        );
        assert_eq!(
            fs::read_to_string(cgroup.join("memory.max")).expect("memory.max"),
            "67108864"
        );
        mode.apply(4242, Some(&cgroup), &resources).expect("apply");
        assert_eq!(
            fs::read_to_string(cgroup.join("cgroup.procs")).expect("procs"),
            "4242"
        );
        // No limits: no limit files, the cgroup still groups the processes.
        let bare = mode
            .create_cgroup("c2", &ContainerResources::default())
            .expect("create")
            .expect("cgroup");
        assert!(!bare.join("cpu.max").exists() && !bare.join("memory.max").exists());
        assert_eq!(
            LimitsMode::Rlimit
                .create_cgroup("c3", &resources)
                .expect("rlimit"),
            None
        );
    }
}
