//! The format version of a data directory, kept in `<data-dir>/FORMAT`.
//!
//! Two commands keep a data directory, each with its own [`Layout`]: `orchestra server` (the
//! store in `orchestra.redb`, `tls/`, `mesh/` (the mesh CA), the credentials, `node-token`,
//! `encryption.yaml`, `service-account.key`, `audit.log`) and `orchestra cluster` (the same beside `store/` and the
//! nodes' state in `nodes/`). Later versions may change either layout. The format file names
//! the layout and its format number, so that a version of orchestra never misreads a directory
//! laid out by a newer one, and neither command takes over the other's directory:
//!
//! - a new (missing or empty) directory is created and stamped with [`FORMAT`];
//! - a directory of the current format is used as it is;
//! - a directory of an older known format is upgraded in place, then stamped; the only older
//!   format is 0, a directory written before this file existed, whose layout is format 1's,
//!   so its upgrade is writing the file;
//! - a directory of a newer format is refused before anything in it is touched, with an error
//!   naming the file and both formats;
//! - a directory of the other layout is refused the same way.
//!
//! The file is text: comment lines starting with `#`, and one line with the layout and the
//! number (`cluster 1`). A bare number is the server layout, as the first version wrote it.
//! The store inside keeps its own format number as well (see `orchestra_store::DiskStore`),
//! checked when it is opened.
//!
//! ```
//! use orchestra::data_dir::{self, Layout, Opened};
//!
//! let dir = tempfile::tempdir()?;
//! assert_eq!(data_dir::open(dir.path(), Layout::Server)?, Opened::Created);
//! assert_eq!(data_dir::open(dir.path(), Layout::Server)?, Opened::Current);
//! let err = data_dir::open(dir.path(), Layout::Cluster).unwrap_err();
//! assert!(err.to_string().contains("orchestra server"));
//! std::fs::write(dir.path().join(data_dir::FORMAT_FILE), "99\n")?;
//! let err = data_dir::open(dir.path(), Layout::Server).unwrap_err();
//! assert!(err.to_string().contains("format 99"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

/// The name of the format file inside the data directory.
pub const FORMAT_FILE: &str = "FORMAT";

/// The data directory format this version writes and reads.
pub const FORMAT: u32 = 1;

/// Which command's files a data directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `orchestra server`'s.
    Server,
    /// `orchestra cluster`'s.
    Cluster,
}

impl Layout {
    /// The word naming the layout in the format file.
    fn word(self) -> &'static str {
        match self {
            Layout::Server => "server",
            Layout::Cluster => "cluster",
        }
    }

    /// Files whose presence, without a format file, marks a data directory of this layout
    /// written before the format file existed (format 0).
    fn format_0_files(self) -> &'static [&'static str] {
        match self {
            Layout::Server => &[
                "orchestra.redb",
                "tls",
                "admin.credentials",
                "node-token",
                "encryption.yaml",
                "audit.log",
            ],
            Layout::Cluster => &[
                "store",
                "nodes",
                "tls",
                "admin.credentials",
                "node-token",
                "encryption.yaml",
                "audit.log",
            ],
        }
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "orchestra {}", self.word())
    }
}

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
    /// The directory belongs to the other command.
    #[error(
        "the data directory's format file {path} says it holds {found}'s files, not {expected}'s: give {expected} a directory of its own"
    )]
    OtherLayout {
        /// The format file.
        path: PathBuf,
        /// The layout it records.
        found: Layout,
        /// The layout that was asked for.
        expected: Layout,
    },
    /// The format file does not hold a format number.
    #[error(
        "the data directory's format file {path} is malformed: {detail} (expected one line with the layout and the format number, such as `cluster {FORMAT}`)"
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

/// Checks (or creates) the data directory `dir` of `layout` and its format, upgrading an older
/// format; see the [module docs](self). Call it before anything else reads or writes in `dir`.
pub fn open(dir: &Path, layout: Layout) -> Result<Opened, DataDirError> {
    let path = dir.join(FORMAT_FILE);
    let found = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let (found_layout, format) = parse(&path, &text)?;
            if found_layout != layout {
                return Err(DataDirError::OtherLayout {
                    path,
                    found: found_layout,
                    expected: layout,
                });
            }
            Some(format)
        }
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
        None if layout.format_0_files().iter().any(|f| dir.join(f).exists()) => upgrade(dir, 0)?,
        None => {
            std::fs::create_dir_all(dir).map_err(|source| DataDirError::Io {
                action: "create the data directory",
                path: dir.to_owned(),
                source,
            })?;
            Opened::Created
        }
    };
    write(dir, &path, layout)?;
    match opened {
        Opened::Upgraded { from } => {
            tracing::info!(dir = %dir.display(), %layout, from, to = FORMAT, "upgraded the data directory's format")
        }
        _ => tracing::info!(dir = %dir.display(), %layout, format = FORMAT, "new data directory"),
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

/// The layout and format number in the file's text.
fn parse(path: &Path, text: &str) -> Result<(Layout, u32), DataDirError> {
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
    let (layout, number) = match line.split_once(char::is_whitespace) {
        Some(("server", number)) => (Layout::Server, number.trim()),
        Some(("cluster", number)) => (Layout::Cluster, number.trim()),
        Some((word, _)) => {
            return Err(malformed(format!(
                "{word:?} is not a layout (`server` or `cluster`)"
            )));
        }
        // The first version wrote the bare number, for the server's layout.
        None => (Layout::Server, line),
    };
    let format = number
        .parse()
        .map_err(|_| malformed(format!("{number:?} is not a format number")))?;
    Ok((layout, format))
}

/// Writes the current format to `path` atomically (a temporary file renamed over it).
fn write(dir: &Path, path: &Path, layout: Layout) -> Result<(), DataDirError> {
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
        "# The layout and format of this data directory (written by {layout}; do not edit).\n{} {FORMAT}\n",
        layout.word()
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
        assert_eq!(open(&dir, Layout::Server).unwrap(), Opened::Created);
        assert_eq!(
            parse(Path::new("FORMAT"), &format_in(&dir)).unwrap(),
            (Layout::Server, FORMAT)
        );
        assert_eq!(open(&dir, Layout::Server).unwrap(), Opened::Current);
        assert!(!dir.join("FORMAT.new").exists());
    }

    #[test]
    fn a_directory_from_before_the_format_file_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("node-token"), "K10...").unwrap();
        assert_eq!(
            open(dir.path(), Layout::Server).unwrap(),
            Opened::Upgraded { from: 0 }
        );
        assert_eq!(open(dir.path(), Layout::Server).unwrap(), Opened::Current);
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
        let err = open(dir.path(), Layout::Server).unwrap_err();
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
            ("agent 1\n", "\"agent\" is not a layout"),
            ("cluster x\n", "\"x\" is not a format number"),
        ] {
            std::fs::write(dir.path().join(FORMAT_FILE), text).unwrap();
            let err = open(dir.path(), Layout::Server).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(err.contains("FORMAT"), "{err}");
        }
    }

    #[test]
    fn the_first_versions_bare_number_is_the_server_layout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FORMAT_FILE), "# old\n1\n").unwrap();
        assert_eq!(open(dir.path(), Layout::Server).unwrap(), Opened::Current);
        let err = open(dir.path(), Layout::Cluster).unwrap_err();
        assert!(matches!(err, DataDirError::OtherLayout { .. }), "{err}");
    }

    #[test]
    fn each_command_keeps_out_of_the_others_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(open(dir.path(), Layout::Cluster).unwrap(), Opened::Created);
        assert!(format_in(dir.path()).ends_with("\ncluster 1\n"));
        assert_eq!(open(dir.path(), Layout::Cluster).unwrap(), Opened::Current);
        let text = open(dir.path(), Layout::Server).unwrap_err().to_string();
        assert!(
            text.contains("holds orchestra cluster's files, not orchestra server's"),
            "{text}"
        );
        assert!(
            format_in(dir.path()).ends_with("\ncluster 1\n"),
            "untouched"
        );
    }

    #[test]
    fn a_cluster_directory_from_before_the_format_file_is_upgraded() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("nodes")).unwrap();
        assert_eq!(
            open(dir.path(), Layout::Cluster).unwrap(),
            Opened::Upgraded { from: 0 }
        );
    }
}
