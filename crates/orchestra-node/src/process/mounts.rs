//! Volume mounts for plain processes. A process has no mount namespace of its own, so a
//! mount cannot appear at its `container_path`. Instead each container with mounts gets a
//! *root view*: a directory `<state>/roots/<container id>/` in which every mount's path is a
//! symlink to its host path (`<root>/etc/creds -> /var/lib/.../creds`). The process gets the
//! view's path as `ORCHESTRA_ROOT`, and runs in it unless the container sets a `workingDir`,
//! so a program reads a secret at `$ORCHESTRA_ROOT/etc/creds/password`, or at the relative
//! path `etc/creds/password`. Read-only mounts are not enforced (the host files' own modes
//! apply), and absolute paths such as `/etc/creds` are the host's.

use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::runtime::Mount;

/// The variable that tells a process where its root view is.
pub const ROOT_ENV: &str = "ORCHESTRA_ROOT";

/// A mount as the container's record stores it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMount {
    /// Where the container asked for it.
    pub container_path: PathBuf,
    /// The host's file or directory.
    pub host_path: PathBuf,
    /// Whether it was asked for read-only (recorded, not enforced).
    pub read_only: bool,
}

impl From<&Mount> for StoredMount {
    fn from(m: &Mount) -> Self {
        StoredMount {
            container_path: m.container_path.clone(),
            host_path: m.host_path.clone(),
            read_only: m.read_only,
        }
    }
}

impl From<&StoredMount> for Mount {
    fn from(m: &StoredMount) -> Self {
        Mount {
            container_path: m.container_path.clone(),
            host_path: m.host_path.clone(),
            read_only: m.read_only,
        }
    }
}

/// A mount's path inside the root view: its container path without the leading `/`;
/// `None` for a path with `..` or no name.
fn relative(container_path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in container_path.components() {
        match part {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(name) => out.push(name),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Builds the root view at `root` for `mounts` (replacing any earlier one).
pub fn build_root(root: &Path, mounts: &[Mount]) -> Result<(), String> {
    remove_root(root).map_err(|e| format!("clearing {}: {e}", root.display()))?;
    fs::create_dir_all(root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    for mount in mounts {
        let Some(inside) = relative(&mount.container_path) else {
            return Err(format!(
                "mount path {} must be absolute, without '..', and not /",
                mount.container_path.display()
            ));
        };
        let link = root.join(&inside);
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        symlink(&mount.host_path, &link).map_err(|e| {
            format!(
                "linking {} to {}: {e}",
                link.display(),
                mount.host_path.display()
            )
        })?;
    }
    Ok(())
}

/// Removes a root view (absent is fine). Only the links go: the mounts' files stay.
pub fn remove_root(root: &Path) -> io::Result<()> {
    match fs::remove_dir_all(root) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_view_links_each_mount_path_to_its_host_path() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("creds");
        fs::create_dir(&host).unwrap();
        fs::write(host.join("password"), "pw").unwrap();
        let root = tmp.path().join("root");
        let mount = |path: &str| Mount {
            container_path: path.into(),
            host_path: host.clone(),
            read_only: true,
        };
        build_root(&root, &[mount("/etc/creds"), mount("/data")]).unwrap();
        assert_eq!(
            fs::read_to_string(root.join("etc/creds/password")).unwrap(),
            "pw"
        );
        assert_eq!(
            fs::read_to_string(root.join("data/password")).unwrap(),
            "pw"
        );
        // Rebuilding replaces the view; removing it leaves the host files.
        build_root(&root, &[mount("/etc/creds")]).unwrap();
        assert!(!root.join("data").exists());
        remove_root(&root).unwrap();
        assert!(host.join("password").exists());
        for bad in ["/", "/a/../b"] {
            assert!(build_root(&root, &[mount(bad)]).is_err(), "{bad}");
        }
    }
}
