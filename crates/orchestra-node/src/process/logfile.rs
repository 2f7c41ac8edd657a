//! Container log files: size-based rotation and reading back.
//!
//! A container's stdout and stderr are one file opened in append mode and handed to the process
//! itself, so output keeps flowing while no runtime runs (after an agent restart, a process
//! writing into a pipe nobody reads would block or die on SIGPIPE). Rotation is therefore
//! "copy, then truncate" (logrotate's `copytruncate`): the current file is copied to
//! `<file>.1` (older copies shift to `.2`, ...) and truncated; the writer's next append lands at
//! the start of the emptied file. What is written between the copy and the truncation is lost:
//! that is the price of not owning the pipe.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The path of rotated copy number `n` (1 is the newest) of `path`.
pub fn rotated_path(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Opens (creating it and its directory) the log file for appending.
pub fn open_for_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// Rotates `path` if it is larger than `max_bytes`, keeping at most `keep` rotated copies.
/// Returns whether it rotated.
pub fn rotate_if_needed(path: &Path, max_bytes: u64, keep: usize) -> io::Result<bool> {
    let len = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if len <= max_bytes {
        return Ok(false);
    }
    if keep > 0 {
        remove_if_present(&rotated_path(path, keep))?;
        for n in (1..keep).rev() {
            let from = rotated_path(path, n);
            if from.exists() {
                fs::rename(&from, rotated_path(path, n + 1))?;
            }
        }
        fs::copy(path, rotated_path(path, 1))?;
    }
    OpenOptions::new().write(true).open(path)?.set_len(0)?;
    Ok(true)
}

/// Removes `path` and its rotated copies (up to `keep`).
pub fn remove_all(path: &Path, keep: usize) -> io::Result<()> {
    remove_if_present(path)?;
    for n in 1..=keep {
        remove_if_present(&rotated_path(path, n))?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The rotated copies' contents, oldest first (missing copies count as empty).
pub fn read_rotated(path: &Path, keep: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    for n in (1..=keep).rev() {
        out.extend(read_if_present(&rotated_path(path, n))?);
    }
    Ok(out)
}

/// A file's contents, empty if it does not exist.
pub fn read_if_present(path: &Path) -> io::Result<Vec<u8>> {
    match fs::read(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        other => other,
    }
}

/// The last `tail_lines` lines of `text` (all of it when `None`).
pub fn tail(text: &[u8], tail_lines: Option<usize>) -> &[u8] {
    let Some(n) = tail_lines else { return text };
    if n == 0 {
        return &[];
    }
    // A trailing newline ends the last line; it does not start another.
    let body = text.strip_suffix(b"\n").unwrap_or(text);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map_or(0, |(i, _)| i + 1);
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_counts_lines_from_the_end() {
        assert_eq!(tail(b"a\nb\nc\n", Some(2)), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", Some(2)), b"b\nc");
        assert_eq!(tail(b"a\nb\n", Some(5)), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", Some(0)), b"");
        assert_eq!(tail(b"a\nb\n", None), b"a\nb\n");
    }

    #[test]
    fn rotation_keeps_the_configured_number_of_copies() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("c/0.log");
        let mut file = open_for_append(&log).expect("open");
        use std::io::Write;
        for round in 0..4u8 {
            file.write_all(&[b'a' + round; 10]).expect("write");
            assert!(rotate_if_needed(&log, 5, 2).expect("rotate"));
            assert_eq!(fs::metadata(&log).expect("meta").len(), 0);
        }
        assert!(
            !rotate_if_needed(&log, 5, 2).expect("small"),
            "an empty file is not rotated"
        );
        assert_eq!(fs::read(rotated_path(&log, 1)).expect(".1"), b"dddddddddd");
        assert_eq!(fs::read(rotated_path(&log, 2)).expect(".2"), b"cccccccccc");
        assert!(!rotated_path(&log, 3).exists(), "only two copies are kept");
        // The writer appends at the start of the truncated file.
        file.write_all(b"e").expect("write");
        let mut all = read_rotated(&log, 2).expect("read");
        all.extend(read_if_present(&log).expect("read"));
        assert_eq!(all, b"ccccccccccdddddddddde");
        remove_all(&log, 2).expect("remove");
        assert!(!log.exists() && !rotated_path(&log, 1).exists());
    }
}
