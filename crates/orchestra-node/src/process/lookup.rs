//! Finding a container's program in the `PATH` of the container's own environment before it
//! is spawned.
//!
//! Why: the standard library spawns with `posix_spawn` (a vfork-like clone that shares the
//! parent's memory until the exec) only when it does not have to search `PATH` itself in an
//! environment that replaced `PATH`; otherwise it forks, copying the page tables of the whole
//! agent. On this 2-core machine a fork of the agent took milliseconds and, being done under
//! the runtime's state lock on a tokio worker thread, 100 pods started at once queued behind
//! each other for about 0.45 s (`orchestra bench node --runtime process --pods 100`). Looking
//! the program up here, with `execvp`'s rules, gives the spawn an absolute path.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The file `execvp` would run for `program` with `path` (the value of the container's
/// `PATH`): `program` itself when it names a path (contains a `/`); else the first regular,
/// executable file named `program` in the directories of `path`. `None` when the search would
/// depend on the child's working directory (an empty or relative entry comes before a match)
/// or finds nothing: the caller then lets the spawn search, which reports a missing program
/// as before.
pub fn resolve(program: &str, path: &str) -> Option<PathBuf> {
    if program.is_empty() || program.contains('/') {
        return None;
    }
    for dir in path.split(':') {
        let dir = Path::new(dir);
        if !dir.is_absolute() {
            return None;
        }
        let candidate = dir.join(program);
        if is_executable_file(&candidate) {
            return Some(candidate);
        }
    }
    None
}

fn is_executable_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn file(dir: &Path, name: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, "#!/bin/sh\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn the_first_executable_match_in_path_order_wins() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        file(a.path(), "tool", 0o644); // not executable: skipped, as execvp does
        let wanted = file(b.path(), "tool", 0o755);
        file(b.path(), "other", 0o755);
        fs::create_dir(a.path().join("dir")).unwrap();
        let path = format!("{}:{}", a.path().display(), b.path().display());
        assert_eq!(resolve("tool", &path), Some(wanted));
        assert_eq!(resolve("dir", &path), None, "a directory is not a program");
        assert_eq!(resolve("missing", &path), None);
    }

    #[test]
    fn paths_and_cwd_dependent_searches_are_left_to_the_spawn() {
        let a = tempfile::tempdir().unwrap();
        file(a.path(), "tool", 0o755);
        let dir = a.path().display().to_string();
        assert_eq!(resolve("./tool", &dir), None);
        assert_eq!(resolve("/bin/sh", &dir), None);
        assert_eq!(resolve("", &dir), None);
        // An empty entry means the working directory: the child's, not ours.
        assert_eq!(resolve("tool", &format!(":{dir}")), None);
        assert_eq!(resolve("tool", &format!("bin:{dir}")), None);
        assert!(resolve("tool", &format!("{dir}:bin")).is_some());
    }
}
