//! A pod's volumes on the node: what each holds ([`volume_content`], pure), writing it into the
//! pod's directory ([`materialize`]), and the mounts a container gets ([`container_mounts`]).
//!
//! Layout: `<volumes_dir>/<pod uid>/<volume name>/`, the pod's directory with mode 0700 (so
//! only the agent's user can reach secret files, whatever their own mode). An emptyDir is an
//! empty directory (mode 0777, as kubelet makes it, for containers running as other users);
//! a hostPath is the node's path itself (checked or created per its `type`).
//!
//! ConfigMap, Secret, downward API and projected volumes (several of those sources in one
//! directory, files of later sources replacing earlier ones at the same path) are written as
//! kubelet's atomic writer does:
//! the files go into a fresh hidden directory `..<generation>`, a `..data` symlink is switched
//! to it with one `rename` (atomic), and each top-level entry is a symlink through `..data`.
//! A reader therefore sees either the old set of files or the new one, never a mix. Files get
//! the item's `mode` or the volume's `defaultMode`. The generation directories are 0755, so
//! that a container running as another user can traverse them; the 0700 pod directory keeps
//! the node's other users out. Unchanged content is not rewritten. The pod's directory is
//! removed with the pod.
//!
//! A projected `serviceAccountToken` source is a file holding the pod's bound token
//! ([`tokens`](super::tokens)).
//!
//! These volumes are [refreshed](super::refresh) while the pod runs: a changed ConfigMap or
//! Secret, or a renewed token, reaches the files through a new generation. A `subPath` mount of one is not (as in
//! Kubernetes, where it is a bind mount of the file as it was): the container gets a
//! [snapshot](subpath) of the path taken when it starts, under
//! `<pod dir>/..subpaths/<container>/<mount index>`, which a restarted container takes anew.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use orchestra_api::resources::{
    Container, DEFAULT_VOLUME_MODE, DownwardApiVolumeFile, HostPathType, KeyToPath,
    ProjectedVolumeSource, Volume,
};

use super::resolve::{ConfigError, PodContext, Sources, field_value, resource_value};
use super::tokens::TokenSource;
use crate::runtime::Mount;
use orchestra_api::auth::token::DEFAULT_EXPIRATION_SECONDS;

pub mod subpath;

/// The symlink to the current generation of a projected volume.
const DATA_LINK: &str = "..data";

/// One file of a projected volume.
#[derive(Clone, PartialEq, Eq)]
pub struct ProjectedFile {
    /// Its path relative to the volume (validated: relative, no `..`).
    pub path: String,
    /// Its content (never logged).
    pub data: Vec<u8>,
    /// Its permission bits.
    pub mode: u32,
}

impl std::fmt::Debug for ProjectedFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ProjectedFile({}, {} bytes, {:o})",
            self.path,
            self.data.len(),
            self.mode
        )
    }
}

/// What a volume holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VolumeContent {
    /// An empty directory, kept for the pod's life.
    EmptyDir,
    /// A path of the node.
    HostPath {
        /// The path.
        path: PathBuf,
        /// What it must be.
        type_: HostPathType,
    },
    /// Files written by the agent (ConfigMap, Secret, downward API, projected).
    Projected(Vec<ProjectedFile>),
}

/// Why a volume could not be set up; displays as kubelet's `FailedMount` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeError {
    /// The volume's name.
    pub volume: String,
    /// What went wrong (never a value).
    pub message: String,
}

impl std::fmt::Display for VolumeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MountVolume.SetUp failed for volume {:?} : {}",
            self.volume, self.message
        )
    }
}

impl std::error::Error for VolumeError {}

fn mode_bits(mode: Option<i32>, default: Option<i32>) -> u32 {
    let mode = mode.or(default).unwrap_or(DEFAULT_VOLUME_MODE);
    u32::try_from(mode).unwrap_or(0) & 0o777
}

/// The entries of a ConfigMap or Secret as files: every entry under its key, or `items`.
fn project_entries(
    entries: &BTreeMap<String, Vec<u8>>,
    items: &[KeyToPath],
    default_mode: Option<i32>,
    optional: bool,
    missing_key: impl Fn(&str) -> String,
) -> Result<Vec<ProjectedFile>, String> {
    if items.is_empty() {
        return Ok(entries
            .iter()
            .map(|(key, data)| ProjectedFile {
                path: key.clone(),
                data: data.clone(),
                mode: mode_bits(None, default_mode),
            })
            .collect());
    }
    let mut files = Vec::new();
    for item in items {
        match entries.get(&item.key) {
            Some(data) => files.push(ProjectedFile {
                path: item.path.clone(),
                data: data.clone(),
                mode: mode_bits(item.mode, default_mode),
            }),
            None if optional => {}
            None => return Err(missing_key(&item.key)),
        }
    }
    Ok(files)
}

/// A ConfigMap's entries (`data` and `binaryData`) as files, or `None` when it is missing and
/// `optional`.
fn config_map_files(
    sources: &Sources,
    name: &str,
    items: &[KeyToPath],
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Vec<ProjectedFile>, String> {
    let Some(map) = sources.config_maps.get(name).and_then(Option::as_ref) else {
        if optional {
            return Ok(Vec::new());
        }
        return Err(ConfigError::ObjectNotFound {
            kind: "configmap",
            name: name.to_owned(),
        }
        .to_string());
    };
    let mut entries: BTreeMap<String, Vec<u8>> = map
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    entries.extend(
        map.binary_data
            .iter()
            .map(|(k, v)| (k.clone(), v.0.clone())),
    );
    project_entries(&entries, items, default_mode, optional, |k| {
        format!("configmap references non-existent config key: {k}")
    })
}

/// A Secret's entries as files, or none when it is missing and `optional`.
fn secret_files(
    sources: &Sources,
    name: &str,
    items: &[KeyToPath],
    default_mode: Option<i32>,
    optional: bool,
) -> Result<Vec<ProjectedFile>, String> {
    let Some(secret) = sources.secrets.get(name).and_then(Option::as_ref) else {
        if optional {
            return Ok(Vec::new());
        }
        return Err(ConfigError::ObjectNotFound {
            kind: "secret",
            name: name.to_owned(),
        }
        .to_string());
    };
    let entries: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    project_entries(&entries, items, default_mode, optional, |k| {
        format!("references non-existent secret key: {k}")
    })
}

/// Downward API items as files.
fn downward_files(
    ctx: &PodContext<'_>,
    items: &[DownwardApiVolumeFile],
    default_mode: Option<i32>,
) -> Result<Vec<ProjectedFile>, String> {
    let mut files = Vec::new();
    for item in items {
        let value = if let Some(field) = &item.field_ref {
            field_value(ctx, &field.field_path)
                .ok_or_else(|| format!("unsupported fieldRef path {:?}", field.field_path))?
        } else if let Some(selector) = &item.resource_field_ref {
            resource_value(ctx, None, selector).map_err(|e| e.to_string())?
        } else {
            continue;
        };
        files.push(ProjectedFile {
            path: item.path.clone(),
            data: value.into_bytes(),
            mode: mode_bits(item.mode, default_mode),
        });
    }
    Ok(files)
}

/// A projected volume's files: each source's in order, a later file replacing an earlier one
/// at the same path (validation refuses listed paths that collide).
fn projected_files(
    ctx: &PodContext<'_>,
    source: &ProjectedVolumeSource,
    sources: &Sources,
) -> Result<Vec<ProjectedFile>, String> {
    let mode = source.default_mode;
    let mut by_path: BTreeMap<String, ProjectedFile> = BTreeMap::new();
    for projection in &source.sources {
        let files = if let Some(c) = &projection.config_map {
            config_map_files(sources, &c.name, &c.items, mode, c.optional == Some(true))?
        } else if let Some(s) = &projection.secret {
            secret_files(sources, &s.name, &s.items, mode, s.optional == Some(true))?
        } else if let Some(d) = &projection.downward_api {
            downward_files(ctx, &d.items, mode)?
        } else if let Some(token) = &projection.service_account_token {
            let source = TokenSource {
                audience: token.audience.clone(),
                expiration_seconds: token
                    .expiration_seconds
                    .unwrap_or(DEFAULT_EXPIRATION_SECONDS),
            };
            let data = sources.tokens.get(&source).ok_or_else(|| {
                format!(
                    "no service account token was issued for audience {:?}",
                    token.audience
                )
            })?;
            vec![ProjectedFile {
                path: token.path.clone(),
                data: data.clone().into_bytes(),
                mode: mode_bits(None, mode),
            }]
        } else {
            Vec::new()
        };
        by_path.extend(files.into_iter().map(|f| (f.path.clone(), f)));
    }
    Ok(by_path.into_values().collect())
}

/// What `volume` holds for the pod of `ctx`, from the fetched `sources`. A required object or
/// key that is missing is an error; an optional one leaves the volume empty (or without the
/// file).
pub fn volume_content(
    ctx: &PodContext<'_>,
    volume: &Volume,
    sources: &Sources,
) -> Result<VolumeContent, VolumeError> {
    let fail = |message: String| VolumeError {
        volume: volume.name.clone(),
        message,
    };
    if volume.empty_dir.is_some() {
        return Ok(VolumeContent::EmptyDir);
    }
    if let Some(host) = &volume.host_path {
        return Ok(VolumeContent::HostPath {
            path: PathBuf::from(&host.path),
            type_: host.type_.unwrap_or(HostPathType::Unset),
        });
    }
    let files = if let Some(source) = &volume.config_map {
        let optional = source.optional == Some(true);
        config_map_files(
            sources,
            &source.name,
            &source.items,
            source.default_mode,
            optional,
        )
    } else if let Some(source) = &volume.secret {
        let optional = source.optional == Some(true);
        let name = &source.secret_name;
        secret_files(sources, name, &source.items, source.default_mode, optional)
    } else if let Some(source) = &volume.downward_api {
        downward_files(ctx, &source.items, source.default_mode)
    } else if let Some(source) = &volume.projected {
        projected_files(ctx, source, sources)
    } else {
        Err("the volume has no source".to_owned())
    };
    files.map(VolumeContent::Projected).map_err(fail)
}

/// The pod's volume directory under `volumes_dir`, refusing a uid that is not a plain name.
pub fn pod_dir(volumes_dir: &Path, uid: &str) -> Result<PathBuf, String> {
    let mut parts = Path::new(uid).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(_)), None) => Ok(volumes_dir.join(uid)),
        _ => Err(format!("pod uid {uid:?} cannot name a directory")),
    }
}

/// Writes `content` as volume `name` of the pod whose directory is `pod_dir` (creating it,
/// mode 0700); returns the host path to mount.
pub fn materialize(
    pod_dir: &Path,
    name: &str,
    content: &VolumeContent,
) -> Result<PathBuf, VolumeError> {
    let fail = |what: &str, err: io::Error| VolumeError {
        volume: name.to_owned(),
        message: format!("{what}: {err}"),
    };
    fs::create_dir_all(pod_dir).map_err(|e| fail("creating the pod's volume directory", e))?;
    fs::set_permissions(pod_dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| fail("restricting the pod's volume directory", e))?;
    let dir = pod_dir.join(name);
    match content {
        VolumeContent::EmptyDir => {
            if !dir.is_dir() {
                fs::create_dir(&dir).map_err(|e| fail("creating the emptyDir", e))?;
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o777))
                    .map_err(|e| fail("setting the emptyDir's mode", e))?;
            }
            Ok(dir)
        }
        VolumeContent::HostPath { path, type_ } => {
            check_host_path(path, *type_).map_err(|message| VolumeError {
                volume: name.to_owned(),
                message,
            })?;
            Ok(path.clone())
        }
        VolumeContent::Projected(files) => {
            write_projected(&dir, files).map_err(|e| fail("writing the volume's files", e))?;
            Ok(dir)
        }
    }
}

fn check_host_path(path: &Path, type_: HostPathType) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let shown = path.display();
    let meta = fs::metadata(path);
    let is = |check: fn(&fs::FileType) -> bool, what: &str| match &meta {
        Ok(m) if check(&m.file_type()) => Ok(()),
        _ => Err(format!(
            "hostPath type check failed: {shown} is not a {what}"
        )),
    };
    match type_ {
        HostPathType::Unset => Ok(()),
        HostPathType::DirectoryOrCreate if meta.is_err() => {
            fs::create_dir_all(path).map_err(|e| format!("creating {shown}: {e}"))?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o755))
                .map_err(|e| format!("setting the mode of {shown}: {e}"))
        }
        HostPathType::FileOrCreate if meta.is_err() => fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .open(path)
            .map(drop)
            .map_err(|e| format!("creating {shown}: {e}")),
        HostPathType::DirectoryOrCreate | HostPathType::Directory => {
            is(fs::FileType::is_dir, "directory")
        }
        HostPathType::FileOrCreate | HostPathType::File => is(fs::FileType::is_file, "file"),
        HostPathType::Socket => is(|t| t.is_socket(), "socket"),
        HostPathType::CharDevice => is(|t| t.is_char_device(), "character device"),
        HostPathType::BlockDevice => is(|t| t.is_block_device(), "block device"),
    }
}

/// Whether the generation `..data` points at holds exactly `files`.
fn unchanged(dir: &Path, files: &[ProjectedFile]) -> bool {
    let data = dir.join(DATA_LINK);
    if !data.is_dir() {
        return false;
    }
    let mut expected = 0;
    for file in files {
        let path = data.join(&file.path);
        let same = fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o777 == file.mode)
            && fs::read(&path).is_ok_and(|content| content == file.data);
        if !same {
            return false;
        }
        expected += 1;
    }
    count_files(&data) == expected
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => count_files(&e.path()),
                _ => 1,
            })
            .sum()
    })
}

/// Whether `volume` is written by the agent with the atomic `..data` swap (ConfigMap, Secret,
/// downward API, projected): the volumes that are [refreshed](super::refresh) and whose `subPath` mounts
/// are snapshots.
pub fn is_atomic(volume: &Volume) -> bool {
    volume.config_map.is_some()
        || volume.secret.is_some()
        || volume.downward_api.is_some()
        || volume.projected.is_some()
}

/// Whether the atomic volume at `dir` has been written (a container that mounts it started).
pub fn is_written(dir: &Path) -> bool {
    fs::symlink_metadata(dir.join(DATA_LINK)).is_ok()
}

/// Writes a projected volume into `dir` with the atomic `..data` swap (see the
/// [module docs](self)). Returns whether anything changed.
pub fn write_projected(dir: &Path, files: &[ProjectedFile]) -> io::Result<bool> {
    fs::create_dir_all(dir)?;
    if unchanged(dir, files) {
        return Ok(false);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let generation = format!("..{nanos}");
    let staging = dir.join(&generation);
    fs::create_dir(&staging)?;
    fs::set_permissions(&staging, fs::Permissions::from_mode(0o755))?;
    for file in files {
        let path = staging.join(&file.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(file.mode)
            .open(&path)?;
        out.write_all(&file.data)?;
        out.sync_all()?;
        // The umask may have cleared bits of the requested mode.
        fs::set_permissions(&path, fs::Permissions::from_mode(file.mode))?;
    }
    let old = fs::read_link(dir.join(DATA_LINK)).ok();
    let tmp_link = dir.join("..data_tmp");
    let _ = fs::remove_file(&tmp_link);
    symlink(&generation, &tmp_link)?;
    fs::rename(&tmp_link, dir.join(DATA_LINK))?;

    // Top-level entries: a symlink per first path element, through `..data`.
    let wanted: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|f| f.path.split('/').next().map(str::to_owned))
        .collect();
    for entry in fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !wanted.contains(&name) {
            fs::remove_file(entry.path())?;
        }
    }
    for name in &wanted {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA_LINK).join(name), &link)?;
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != generation.as_str()) {
        let _ = fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

/// Removes the pod's volume directory (absent is fine). The node's hostPaths are untouched:
/// they are outside it.
pub fn remove_pod_dir(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The sub path of each of `container`'s volume mounts, in order: its `subPath`, or its
/// `subPathExpr` with `$(VAR)` expanded from the container's resolved `env` (empty when it
/// has neither). A variable that is not defined or is empty, or a result that is absolute or
/// has a `..` element, is an error naming the mount (kubelet's `CreateContainerConfigError`).
pub fn sub_paths(container: &Container, env: &[(String, String)]) -> Result<Vec<String>, String> {
    let values: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut out = Vec::with_capacity(container.volume_mounts.len());
    for mount in &container.volume_mounts {
        if mount.sub_path_expr.is_empty() {
            out.push(mount.sub_path.clone());
            continue;
        }
        let missing = std::cell::RefCell::new(std::collections::BTreeSet::new());
        let expanded = super::expand::expand(&mount.sub_path_expr, |name| {
            match values.get(name).filter(|v| !v.is_empty()) {
                Some(value) => Some((*value).to_owned()),
                None => {
                    missing.borrow_mut().insert(name.to_owned());
                    None
                }
            }
        });
        let fail = |why: String| {
            format!(
                "subPathExpr {:?} of volumeMount {:?} of container {:?}: {why}",
                mount.sub_path_expr, mount.name, container.name
            )
        };
        let missing = missing.into_inner();
        if !missing.is_empty() {
            let names: Vec<String> = missing.into_iter().collect();
            return Err(fail(format!("missing value for {}", names.join(", "))));
        }
        if expanded.starts_with('/') || expanded.split('/').any(|part| part == "..") {
            return Err(fail(format!(
                "expands to {expanded:?}, which must be a relative path without '..'"
            )));
        }
        out.push(expanded);
    }
    Ok(out)
}

/// The mounts of `container` in the pod whose volume directory is `pod_dir`: each volume mount
/// at its path, the volume's host path (joined with the mount's entry of `sub_paths`, from
/// [`sub_paths`], created as a directory for an emptyDir when absent). ConfigMap, Secret,
/// downward API and projected volumes are always read-only, and a sub path of one is a
/// [snapshot](subpath) taken now.
pub fn container_mounts(
    container: &Container,
    volumes: &[Volume],
    host_paths: &BTreeMap<String, PathBuf>,
    pod_dir: &Path,
    sub_paths: &[String],
) -> Result<Vec<Mount>, VolumeError> {
    let mut mounts = Vec::new();
    for (index, mount) in container.volume_mounts.iter().enumerate() {
        let sub_path = sub_paths.get(index).map_or("", String::as_str);
        let fail = |message: String| VolumeError {
            volume: mount.name.clone(),
            message,
        };
        let volume = volumes
            .iter()
            .find(|v| v.name == mount.name)
            .ok_or_else(|| fail("no such volume in the pod".to_owned()))?;
        let host = host_paths
            .get(&mount.name)
            .ok_or_else(|| fail("the volume was not set up".to_owned()))?;
        let projected = is_atomic(volume);
        let mut host_path = host.clone();
        if !sub_path.is_empty() {
            host_path = host.join(sub_path);
            if projected {
                let snapshot = subpath::snapshot_path(pod_dir, &container.name, index);
                subpath::snapshot(&host_path, &snapshot)
                    .map_err(|e| fail(format!("copying subPath {sub_path:?}: {e}")))?;
                host_path = snapshot;
            } else if volume.empty_dir.is_some() && !host_path.exists() {
                fs::create_dir_all(&host_path)
                    .map_err(|e| fail(format!("creating subPath {sub_path:?}: {e}")))?;
            }
        }
        mounts.push(Mount {
            container_path: PathBuf::from(&mount.mount_path),
            host_path,
            read_only: mount.read_only || projected,
        });
    }
    Ok(mounts)
}

#[cfg(test)]
mod tests;
