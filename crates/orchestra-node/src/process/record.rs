//! What the process runtime keeps on disk: one JSON file per sandbox and per container under
//! its state directory, written atomically (a temporary file renamed over the old one), so that
//! a new runtime on the same directory finds everything again.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::runtime::{
    ContainerConfig, ContainerId, ContainerResources, ContainerSecurity, ContainerState,
    ContainerStatus, RuntimeError, SandboxConfig, SandboxId, SandboxState, SandboxStatus,
};

/// A sandbox on disk.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub attempt: u32,
    pub hostname: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub log_directory: Option<PathBuf>,
    pub created_at: SystemTime,
    pub ip: Ipv4Addr,
    pub ready: bool,
}

impl SandboxRecord {
    /// A ready sandbox record.
    pub fn new(id: &SandboxId, config: &SandboxConfig, ip: Ipv4Addr) -> Self {
        SandboxRecord {
            id: id.0.clone(),
            name: config.name.clone(),
            namespace: config.namespace.clone(),
            uid: config.uid.clone(),
            attempt: config.attempt,
            hostname: config.hostname.clone(),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            log_directory: config.log_directory.clone(),
            created_at: SystemTime::now(),
            ip,
            ready: true,
        }
    }

    /// The pod's hostname (its name when no hostname was given).
    pub fn hostname(&self) -> &str {
        if self.hostname.is_empty() {
            &self.name
        } else {
            &self.hostname
        }
    }

    /// The status the runtime reports.
    pub fn status(&self) -> SandboxStatus {
        SandboxStatus {
            id: SandboxId(self.id.clone()),
            config: SandboxConfig {
                name: self.name.clone(),
                namespace: self.namespace.clone(),
                uid: self.uid.clone(),
                attempt: self.attempt,
                hostname: self.hostname.clone(),
                labels: self.labels.clone(),
                annotations: self.annotations.clone(),
                log_directory: self.log_directory.clone(),
                // Not kept: a process cannot be given a resolver (see agent::env).
                dns: None,
            },
            state: if self.ready {
                SandboxState::Ready
            } else {
                SandboxState::NotReady
            },
            created_at: self.created_at,
            ip: Some(IpAddr::V4(self.ip)),
        }
    }
}

/// A container's lifecycle state on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredState {
    Created,
    Running,
    Exited,
}

/// A container on disk.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub sandbox: String,
    pub name: String,
    pub attempt: u32,
    pub image: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<PathBuf>,
    pub cpu_limit_millis: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub cpu_request_millis: Option<u64>,
    pub stop_signal: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub created_at: SystemTime,
    pub state: StoredState,
    /// The process (and process group) id while it runs.
    pub pid: Option<i32>,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat` field 22): a pid
    /// whose start time differs is another process that reused the number.
    pub pid_start_ticks: Option<u64>,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
    pub exit_code: Option<i32>,
    pub reason: String,
    pub message: String,
    pub log_path: PathBuf,
    pub cgroup: Option<PathBuf>,
    /// The mounts it was created with (absent in records of older versions).
    #[serde(default)]
    pub mounts: Vec<super::mounts::StoredMount>,
    /// Its root view of the mounts, when it has mounts.
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// The uid it was asked to run as (absent in records of older versions; the runtime
    /// accepts only its own).
    #[serde(default)]
    pub run_as_user: Option<i64>,
    /// The capabilities it was asked to drop (the runtime accepts drops only where the
    /// process holds none).
    #[serde(default)]
    pub drop_capabilities: Vec<String>,
}

impl ContainerRecord {
    /// A created container record.
    pub fn new(
        id: &ContainerId,
        sandbox: &SandboxId,
        config: &ContainerConfig,
        log_path: PathBuf,
    ) -> Self {
        ContainerRecord {
            id: id.0.clone(),
            sandbox: sandbox.0.clone(),
            name: config.name.clone(),
            attempt: config.attempt,
            image: config.image.clone(),
            command: config.command.clone(),
            args: config.args.clone(),
            env: config.env.clone(),
            working_dir: config.working_dir.clone(),
            cpu_limit_millis: config.resources.cpu_limit_millis,
            memory_limit_bytes: config.resources.memory_limit_bytes,
            cpu_request_millis: config.resources.cpu_request_millis,
            stop_signal: config.stop_signal.clone(),
            labels: config.labels.clone(),
            annotations: config.annotations.clone(),
            created_at: SystemTime::now(),
            state: StoredState::Created,
            pid: None,
            pid_start_ticks: None,
            started_at: None,
            finished_at: None,
            exit_code: None,
            reason: String::new(),
            message: String::new(),
            log_path,
            cgroup: None,
            mounts: config.mounts.iter().map(Into::into).collect(),
            root: None,
            run_as_user: config.security.run_as_user,
            drop_capabilities: config.security.drop_capabilities.clone(),
        }
    }

    /// The configuration it was created with.
    pub fn config(&self) -> ContainerConfig {
        ContainerConfig {
            name: self.name.clone(),
            attempt: self.attempt,
            image: self.image.clone(),
            command: self.command.clone(),
            args: self.args.clone(),
            env: self.env.clone(),
            working_dir: self.working_dir.clone(),
            mounts: self.mounts.iter().map(Into::into).collect(),
            resources: ContainerResources {
                cpu_limit_millis: self.cpu_limit_millis,
                memory_limit_bytes: self.memory_limit_bytes,
                cpu_request_millis: self.cpu_request_millis,
            },
            stop_signal: self.stop_signal.clone(),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            // Added capabilities are refused at creation: a record never has any.
            security: ContainerSecurity {
                run_as_user: self.run_as_user,
                add_capabilities: Vec::new(),
                drop_capabilities: self.drop_capabilities.clone(),
            },
        }
    }

    /// The status the runtime reports.
    pub fn status(&self) -> ContainerStatus {
        ContainerStatus {
            id: ContainerId(self.id.clone()),
            sandbox: SandboxId(self.sandbox.clone()),
            config: self.config(),
            state: match self.state {
                StoredState::Created => ContainerState::Created,
                StoredState::Running => ContainerState::Running,
                StoredState::Exited => ContainerState::Exited,
            },
            created_at: self.created_at,
            started_at: self.started_at,
            finished_at: self.finished_at,
            exit_code: self.exit_code,
            reason: self.reason.clone(),
            message: self.message.clone(),
            log_path: Some(self.log_path.clone()),
        }
    }

    /// Records the end of the process.
    pub fn mark_exited(&mut self, exit_code: Option<i32>, reason: &str, message: String) {
        self.state = StoredState::Exited;
        self.finished_at = Some(SystemTime::now());
        self.exit_code = exit_code;
        self.reason = reason.to_owned();
        self.message = message;
    }
}

/// Where records live: `<state>/sandboxes/<id>.json` and `<state>/containers/<id>.json`.
#[derive(Clone, Debug)]
pub struct RecordDir {
    root: PathBuf,
}

impl RecordDir {
    /// Opens (creating) the record directories under `root`.
    pub fn open(root: &Path) -> Result<Self, RuntimeError> {
        for sub in ["sandboxes", "containers"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir).map_err(|source| RuntimeError::Io {
                context: format!("creating the state directory {}", dir.display()),
                source,
            })?;
        }
        Ok(RecordDir {
            root: root.to_owned(),
        })
    }

    fn path(&self, kind: &str, id: &str) -> PathBuf {
        self.root.join(kind).join(format!("{id}.json"))
    }

    /// Writes a sandbox record.
    pub fn save_sandbox(&self, record: &SandboxRecord) -> Result<(), RuntimeError> {
        self.save(&self.path("sandboxes", &record.id), record)
    }

    /// Writes a container record.
    pub fn save_container(&self, record: &ContainerRecord) -> Result<(), RuntimeError> {
        self.save(&self.path("containers", &record.id), record)
    }

    /// Deletes a sandbox record (absent is fine).
    pub fn delete_sandbox(&self, id: &str) -> Result<(), RuntimeError> {
        delete(&self.path("sandboxes", id))
    }

    /// Deletes a container record (absent is fine).
    pub fn delete_container(&self, id: &str) -> Result<(), RuntimeError> {
        delete(&self.path("containers", id))
    }

    /// Every sandbox record.
    pub fn load_sandboxes(&self) -> Result<Vec<SandboxRecord>, RuntimeError> {
        load_all(&self.root.join("sandboxes"))
    }

    /// Every container record.
    pub fn load_containers(&self) -> Result<Vec<ContainerRecord>, RuntimeError> {
        load_all(&self.root.join("containers"))
    }

    fn save<T: Serialize>(&self, path: &Path, record: &T) -> Result<(), RuntimeError> {
        let io_err = |source| RuntimeError::Io {
            context: format!("writing {}", path.display()),
            source,
        };
        let json = serde_json::to_vec_pretty(record).map_err(|e| io_err(io::Error::other(e)))?;
        let tmp = path.with_extension("json.tmp");
        // Owner-only: a container's environment may hold values from Secrets.
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err)?;
        file.write_all(&json).map_err(io_err)?;
        drop(file);
        fs::rename(&tmp, path).map_err(io_err)
    }
}

fn delete(path: &Path) -> Result<(), RuntimeError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(RuntimeError::Io {
            context: format!("removing {}", path.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn load_all<T: DeserializeOwned>(dir: &Path) -> Result<Vec<T>, RuntimeError> {
    let read_err = |source| RuntimeError::Io {
        context: format!("reading {}", dir.display()),
        source,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue; // a temporary file left by a crash mid-write
        }
        let text = fs::read(&path).map_err(|source| RuntimeError::Io {
            context: format!("reading {}", path.display()),
            source,
        })?;
        let record = serde_json::from_slice(&text).map_err(|e| RuntimeError::Unavailable {
            message: format!(
                "the state file {} is not valid ({e}); move it away to let the runtime start",
                path.display()
            ),
        })?;
        out.push(record);
    }
    Ok(out)
}
