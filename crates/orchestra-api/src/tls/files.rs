//! Reading and writing the PKI's files: errors name the file, and private keys and
//! credentials are written readable by their owner only (mode 0600 on Unix).

use std::io::Write;
use std::path::Path;

use super::TlsError;

/// The text of `path`.
pub(crate) fn read(path: &Path) -> Result<String, TlsError> {
    std::fs::read_to_string(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Writes `text` to `path` (through a temporary file and a rename, so a crash never leaves
/// half a key); `private`: mode 0600.
pub(crate) fn write(path: &Path, text: &str, private: bool) -> Result<(), TlsError> {
    let err = |source| TlsError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(err)?;
    file.write_all(text.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(err)
}

/// Whether `path` exists (an unreadable directory counts as "no": reading then fails with the
/// real error).
pub(crate) fn exists(path: &Path) -> bool {
    path.try_exists().unwrap_or(false)
}
