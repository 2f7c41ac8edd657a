//! The format version of `orchestra server`'s data directory, kept in `<data-dir>/FORMAT`.
//!
//! The data directory holds several files in a layout that later versions may change (the
//! store, `tls/`, `mesh/` (the mesh CA), the credentials, `node-token`, `encryption.yaml`,
//! `audit.log`). Its format number says which layout it is, so that a version of orchestra
//! never misreads a directory laid out by a newer one:
//!
//! - a new (missing or empty) directory is created and stamped with [`FORMAT`];
//! - a directory of the current format is used as it is;
//! - a directory of an older known format is upgraded in place, then stamped; the only older
//!   format is 0, a directory written before this file existed, whose layout is format 1's,
//!   so its upgrade is writing the file;
//! - a directory of a newer format is refused before anything in it is touched, with an error
//!   naming the file and both formats.
//!
//! The file is text: comment lines starting with `#`, and one line with the number.
//! The store inside keeps its own format number as well (see `orchestra_store::DiskStore`),
//! checked when it is opened.
//!
//! ```
//! use orchestra::data_dir::{self, Opened};
//!
//! let dir = tempfile::tempdir()?;
//! assert_eq!(data_dir::open(dir.path())?, Opened::Created);
//! assert_eq!(data_dir::open(dir.path())?, Opened::Current);
//! std::fs::write(dir.path().join(data_dir::FORMAT_FILE), "99\n")?;
//! let err = data_dir::open(dir.path()).unwrap_err();
//! assert!(err.to_string().contains("format 99"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

/// The name of the format file inside the data directory.
pub const FORMAT_FILE: &str = "FORMAT";

/// The data directory format this version writes and reads.
pub const FORMAT: u32 = 1;

/// Files whose presence, without a format file, marks a data directory written before the
/// format file existed (format 0).
const FORMAT_0_FILES: &[&str] = &[
    "orchestra.redb",
    "tls",
    "admin.credentials",
    "node-token",
    "encryption.yaml",
    "audit.log",
];

/// What [`open`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// A new data directory, now stamped with [`FORMAT`].
    Created,
    /// A data directory of the current format.
    Current,
    /// A data directory of an older format, upgraded to [`FORMAT`].
    Upgraded {
        /// The format it had.
        from: u32,
    },
}

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// The directory was laid out by a newer version of orchestra.
    #[error(
        "the data directory's format file {path} says format {found}, newer than format {supported} that this version of orchestra ({version}) reads: it was written by a newer orchestra; run that version (or newer) on it, or restore a backup of the data directory made before the upgrade",
        version = env!("CARGO_PKG_VERSION")
    )]
    Newer {
        /// The format file.
        path: PathBuf,
        /// The format it records.
        found: u32,
        /// The newest format this version reads.
        supported: u32,
    },
    /// The format file does not hold a format number.
    #[error(
        "the data directory's format file {path} is malformed: {detail} (expected one line with the format number, such as `{FORMAT}`)"
    )]
    Malformed {
        /// The format file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The directory or its format file could not be read or written.
    #[error("cannot {action} {path}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Checks (or creates) the data directory `dir` and its format, upgrading an older format; see
/// the [module docs](self). Call it before anything else reads or writes in `dir`.
pub fn open(dir: &Path) -> Result<Opened, DataDirError> {
    let path = dir.join(FORMAT_FILE);
    let found = match std::fs::read_to_string(&path) {
        Ok(text) => Some(parse(&path, &text)?),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(DataDirError::Io {
                action: "read the data directory's format file",
                path,
                source,
            });
        }
    };
    let opened = match found {
        Some(FORMAT) => return Ok(Opened::Current),
        Some(newer) if newer > FORMAT => {
            return Err(DataDirError::Newer {
                path,
                found: newer,
                supported: FORMAT,
            });
        }
        Some(older) => upgrade(dir, older)?,
        None if FORMAT_0_FILES.iter().any(|f| dir.join(f).exists()) => upgrade(dir, 0)?,
        None => {
            std::fs::create_dir_all(dir).map_err(|source| DataDirError::Io {
                action: "create the data directory",
                path: dir.to_owned(),
                source,
            })?;
            Opened::Created
        }
    };
    write(dir, &path)?;
    match opened {
        Opened::Upgraded { from } => {
            tracing::info!(dir = %dir.display(), from, to = FORMAT, "upgraded the data directory's format")
        }
        _ => tracing::info!(dir = %dir.display(), format = FORMAT, "new data directory"),
    }
    Ok(opened)
}

/// Brings a directory of format `from` (older than [`FORMAT`]) to the current layout.
fn upgrade(_dir: &Path, from: u32) -> Result<Opened, DataDirError> {
    // Format 0 is format 1's layout without the format file: nothing to move. A later format
    // adds its steps here, one per older format, each safe to repeat if interrupted (the
    // file is only rewritten after they all succeeded).
    Ok(Opened::Upgraded { from })
}

/// The format number in the file's text.
fn parse(path: &Path, text: &str) -> Result<u32, DataDirError> {
    let malformed = |detail: String| DataDirError::Malformed {
        path: path.to_owned(),
        detail,
    };
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'));
    let line = lines
        .next()
        .ok_or_else(|| malformed("it holds no format number".into()))?;
    if let Some(extra) = lines.next() {
        return Err(malformed(format!("unexpected second line {extra:?}")));
    }
    line.parse()
        .map_err(|_| malformed(format!("{line:?} is not a format number")))
}

/// Writes the current format to `path` atomically (a temporary file renamed over it).
fn write(dir: &Path, path: &Path) -> Result<(), DataDirError> {
    let tmp = dir.join(format!("{FORMAT_FILE}.new"));
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DataDirError::Io {
            action: "write the data directory's format file",
            path,
            source,
        }
    };
    let text = format!(
        "# The format of this orchestra data directory (written by orchestra server; do not edit).\n{FORMAT}\n"
    );
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_in(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(FORMAT_FILE)).unwrap()
    }

    #[test]
    fn a_new_directory_is_created_and_stamped() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("server");
        assert_eq!(open(&dir).unwrap(), Opened::Created);
        assert_eq!(
            parse(Path::new("FORMAT"), &format_in(&dir)).unwrap(),
            FORMAT
        );
        assert_eq!(open(&dir).unwrap(), Opened::Current);
        assert!(!dir.join("FORMAT.new").exists());
    }

    #[test]
    fn a_directory_from_before_the_format_file_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("node-token"), "K10...").unwrap();
        assert_eq!(open(dir.path()).unwrap(), Opened::Upgraded { from: 0 });
        assert_eq!(open(dir.path()).unwrap(), Opened::Current);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("node-token")).unwrap(),
            "K10...",
            "the upgrade leaves the files alone"
        );
    }

    #[test]
    fn a_newer_format_is_refused_naming_the_file_and_both_formats() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FORMAT_FILE), "# newer\n2\n").unwrap();
        let err = open(dir.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(
                err,
                DataDirError::Newer {
                    found: 2,
                    supported: FORMAT,
                    ..
                }
            ),
            "{text}"
        );
        assert!(
            text.contains(&dir.path().join("FORMAT").display().to_string()),
            "{text}"
        );
        assert!(
            text.contains("format 2") && text.contains("format 1"),
            "{text}"
        );
        assert_eq!(format_in(dir.path()), "# newer\n2\n", "left untouched");
    }

    #[test]
    fn a_malformed_file_says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        for (text, expected) in [
            ("", "no format number"),
            ("# only a comment\n", "no format number"),
            ("one\n", "\"one\" is not a format number"),
            ("-1\n", "\"-1\" is not a format number"),
            ("1\n2\n", "unexpected second line \"2\""),
        ] {
            std::fs::write(dir.path().join(FORMAT_FILE), text).unwrap();
            let err = open(dir.path()).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(err.contains("FORMAT"), "{err}");
        }
    }
}
