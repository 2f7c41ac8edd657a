//! `subPath` mounts of atomically written volumes (ConfigMap, Secret, downward API) as
//! snapshots. Kubernetes bind-mounts the path as it resolves when the container starts, so a
//! later update of the volume (a new `..data` generation) does not reach it. A runtime without
//! bind mounts (the process runtime links paths) would follow the `..data` symlink to the new
//! generation, so the agent copies the path at container start instead and mounts the copy:
//! every runtime then sees the Kubernetes behaviour, and a restarted container copies anew.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The directory of a pod's subPath snapshots (a volume's name is a DNS label, so it cannot
/// start with dots).
const SUBPATHS_DIR: &str = "..subpaths";

/// Where the snapshot of mount number `index` of `container` lives in the pod's directory.
pub fn snapshot_path(pod_dir: &Path, container: &str, index: usize) -> PathBuf {
    pod_dir
        .join(SUBPATHS_DIR)
        .join(container)
        .join(index.to_string())
}

/// Replaces `dest` with a copy of what `source` resolves to now (a file or a directory, with
/// the files' modes). A path the volume does not have becomes an empty directory, as kubelet
/// creates a missing subPath.
pub fn snapshot(source: &Path, dest: &Path) -> io::Result<()> {
    remove(dest)?;
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::metadata(source) {
        Ok(meta) if meta.is_dir() => copy_dir(source, dest),
        Ok(_) => fs::copy(source, dest).map(drop),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir(dest)?;
            fs::set_permissions(dest, fs::Permissions::from_mode(0o755))
        }
        Err(e) => Err(e),
    }
}

/// Copies a directory tree, following symlinks (the volume's entries are links through
/// `..data`), skipping the volume's hidden `..` entries.
fn copy_dir(source: &Path, dest: &Path) -> io::Result<()> {
    fs::create_dir(dest)?;
    fs::set_permissions(dest, fs::Permissions::from_mode(0o755))?;
    for entry in fs::read_dir(source)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with("..") {
            continue;
        }
        let (from, to) = (entry.path(), dest.join(entry.file_name()));
        if fs::metadata(&from)?.is_dir() {
            copy_dir(&from, &to)?;
        } else {
            fs::copy(&from, &to)?;
        }
    }
    Ok(())
}

fn remove(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::volumes::{ProjectedFile, write_projected};

    fn file(path: &str, data: &str) -> ProjectedFile {
        ProjectedFile {
            path: path.into(),
            data: data.as_bytes().to_vec(),
            mode: 0o440,
        }
    }

    #[test]
    fn a_snapshot_keeps_what_the_volume_held_when_it_was_taken() {
        let tmp = tempfile::tempdir().unwrap();
        let volume = tmp.path().join("pod/conf");
        write_projected(&volume, &[file("app.conf", "v1"), file("d/x", "x1")]).unwrap();
        let pod_dir = tmp.path().join("pod");
        let (one, two, three) = (
            snapshot_path(&pod_dir, "main", 0),
            snapshot_path(&pod_dir, "main", 1),
            snapshot_path(&pod_dir, "main", 2),
        );
        snapshot(&volume.join("app.conf"), &one).unwrap();
        snapshot(&volume.join("d"), &two).unwrap();
        snapshot(&volume.join("absent"), &three).unwrap();

        // The volume moves on; the snapshots do not.
        assert!(write_projected(&volume, &[file("app.conf", "v2"), file("d/x", "x2")]).unwrap());
        assert_eq!(fs::read_to_string(volume.join("app.conf")).unwrap(), "v2");
        assert_eq!(fs::read_to_string(&one).unwrap(), "v1");
        assert_eq!(
            fs::metadata(&one).unwrap().permissions().mode() & 0o777,
            0o440
        );
        assert_eq!(fs::read_to_string(two.join("x")).unwrap(), "x1");
        assert!(three.is_dir());
        assert_eq!(fs::read_dir(&three).unwrap().count(), 0);

        // Taking it again (a restarted container) copies the current content.
        snapshot(&volume.join("app.conf"), &one).unwrap();
        assert_eq!(fs::read_to_string(&one).unwrap(), "v2");
        snapshot(&volume, &two).unwrap();
        assert_eq!(fs::read_to_string(two.join("d/x")).unwrap(), "x2");
        assert!(
            !two.join("..data").exists(),
            "hidden entries are not copied"
        );
    }
}
