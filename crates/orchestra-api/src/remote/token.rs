//! [`BearerToken`]: the `authorization: Bearer ...` header a [`RemoteClient`](super::RemoteClient)
//! adds to every call: none, a fixed token (a credentials file's), or a token file that is
//! read again as it changes.
//!
//! A token file is what a pod mounts: the node agent replaces the projected token at 80% of its
//! life (an hour by default), so a long-running process that read it once would lose its
//! credentials when the first one expires. As client-go's cached token file source does, the
//! file is read again when the token in hand is a minute old ([`DEFAULT_REREAD_PERIOD`]), and
//! at once after the server answers 401 (the client then sends the refused call once more
//! with the new token, if the file held a new one). A read that fails (the file replaced
//! under us, briefly empty) keeps the token in hand and is tried again on the next call.
//!
//! The read is a small synchronous file read inside the call path, at most once a period:
//! cheap, and simpler than a background task that would need its own shutdown.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;

/// How old the token read from a file may get before the file is read again (client-go's
/// period).
pub const DEFAULT_REREAD_PERIOD: Duration = Duration::from_secs(60);

/// Why a token (or a token file) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("reading the token file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty (or only white space).
    #[error("the token file {path} is empty")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The token cannot be carried in a header.
    #[error("the token{where_} has characters a header cannot carry", where_ = .path.as_ref().map(|p| format!(" in {}", p.display())).unwrap_or_default())]
    NotAHeader {
        /// The file it came from, if any.
        path: Option<PathBuf>,
    },
}

/// Adds `authorization: Bearer TOKEN` to every call, when there is a token. Cheap to clone:
/// clones of a file-backed token share one cache.
#[derive(Clone, Debug, Default)]
pub struct BearerToken(Source);

#[derive(Clone, Debug, Default)]
enum Source {
    #[default]
    None,
    Fixed(MetadataValue<Ascii>),
    File(Arc<FileToken>),
}

/// A token file and the token last read from it.
#[derive(Debug)]
struct FileToken {
    path: PathBuf,
    period: Duration,
    cached: Mutex<Cached>,
}

#[derive(Debug)]
struct Cached {
    header: MetadataValue<Ascii>,
    read_at: Instant,
}

/// The header for `token`.
fn header(token: &str, path: Option<&Path>) -> Result<MetadataValue<Ascii>, TokenError> {
    format!("Bearer {token}")
        .parse()
        .map_err(|_| TokenError::NotAHeader {
            path: path.map(Path::to_owned),
        })
}

/// Reads the token in `path` as its header.
fn read(path: &Path) -> Result<MetadataValue<Ascii>, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.to_owned(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::Empty {
            path: path.to_owned(),
        });
    }
    header(token, Some(path))
}

impl BearerToken {
    /// No token (a client certificate, or an `--insecure` server).
    pub fn none() -> Self {
        BearerToken(Source::None)
    }

    /// Always `token`.
    pub fn fixed(token: &str) -> Result<Self, TokenError> {
        Ok(BearerToken(Source::Fixed(header(token, None)?)))
    }

    /// The token in `path`, read now (an unreadable or empty file is an error here) and again
    /// as described in the [module docs](self).
    pub fn from_file(path: impl Into<PathBuf>) -> Result<Self, TokenError> {
        Self::from_file_every(path, DEFAULT_REREAD_PERIOD)
    }

    /// [`from_file`](Self::from_file), reading the file again when the token in hand is
    /// `period` old.
    pub fn from_file_every(path: impl Into<PathBuf>, period: Duration) -> Result<Self, TokenError> {
        let path = path.into();
        let header = read(&path)?;
        Ok(BearerToken(Source::File(Arc::new(FileToken {
            path,
            period,
            cached: Mutex::new(Cached {
                header,
                read_at: Instant::now(),
            }),
        }))))
    }

    /// The header to send now (reading the file again if the token in hand is old).
    pub fn current(&self) -> Option<MetadataValue<Ascii>> {
        match &self.0 {
            Source::None => None,
            Source::Fixed(header) => Some(header.clone()),
            Source::File(file) => Some(file.current(false)),
        }
    }

    /// After the server refused `sent` (401): reads the file again now; whether the call
    /// should be sent again, that is whether the token changed. Never for a fixed token.
    pub fn refresh_after_refusal(&self, sent: Option<&MetadataValue<Ascii>>) -> bool {
        match &self.0 {
            Source::File(file) => Some(&file.current(true)) != sent,
            _ => false,
        }
    }
}

impl FileToken {
    /// The header; the file read again first if `force` or the token in hand is old.
    fn current(&self, force: bool) -> MetadataValue<Ascii> {
        let mut cached = self.cached.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if force || now.duration_since(cached.read_at) >= self.period {
            match read(&self.path) {
                Ok(header) => {
                    if header != cached.header {
                        tracing::debug!(path = %self.path.display(), "read a new API token from its file");
                    }
                    *cached = Cached {
                        header,
                        read_at: now,
                    };
                }
                // Kept, and tried again on the next call: a file being replaced comes back.
                Err(err) => {
                    tracing::warn!(error = %err, "could not read the API token again; using the one in hand");
                }
            }
        }
        cached.header.clone()
    }
}

impl Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = self.current() {
            request.metadata_mut().insert("authorization", token);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(token: &str) -> MetadataValue<Ascii> {
        header(token, None).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_file_is_read_again_once_a_period_has_passed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let token = BearerToken::from_file(&path).unwrap();
        assert_eq!(token.current(), Some(bearer("first")));
        std::fs::write(&path, "second").unwrap();
        // Within the period, the token in hand.
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(token.clone().current(), Some(bearer("first")));
        // After it, the file's.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(token.current(), Some(bearer("second")));
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_reads_the_file_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first").unwrap();
        let token = BearerToken::from_file(&path).unwrap();
        let sent = token.current();
        // Refused, the file unchanged: no point sending again.
        assert!(!token.refresh_after_refusal(sent.as_ref()));
        std::fs::write(&path, "second").unwrap();
        assert!(token.refresh_after_refusal(sent.as_ref()));
        assert_eq!(token.current(), Some(bearer("second")));
        // A fixed token or none never retries.
        assert!(!BearerToken::fixed("x").unwrap().refresh_after_refusal(None));
        assert!(!BearerToken::none().refresh_after_refusal(None));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreadable_file_keeps_the_token_in_hand() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first").unwrap();
        let token = BearerToken::from_file(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        tokio::time::advance(DEFAULT_REREAD_PERIOD).await;
        assert_eq!(token.current(), Some(bearer("first")));
        std::fs::write(&path, "  \n").unwrap();
        assert_eq!(token.current(), Some(bearer("first")));
        // It comes back: read on the next call (a failed read is tried again at once).
        std::fs::write(&path, "second").unwrap();
        assert_eq!(token.current(), Some(bearer("second")));
    }

    #[test]
    fn bad_files_are_refused_at_the_start_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let err = BearerToken::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("reading the token file") && err.contains("token"),
            "{err}"
        );
        std::fs::write(&path, "\n").unwrap();
        let err = BearerToken::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("is empty"), "{err}");
        std::fs::write(&path, "bad\u{7f}token").unwrap();
        let err = BearerToken::from_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("cannot carry") && err.contains("token"),
            "{err}"
        );
    }
}
