//! Audit sinks: [`FileAuditSink`] appends one JSON object per line to a file from a
//! background thread, so that recording never waits on the disk; [`MemoryAuditSink`] keeps
//! entries for tests.
//!
//! A line (see [`entry_json`]):
//! `{"time":"2026-11-27T08:00:00Z","user":"alice","groups":["system:authenticated"],`
//! `"verb":"delete","apiGroup":"","resource":"pods","subresource":null,"namespace":"shop",`
//! `"name":"web","allowed":false,"reason":"user \"alice\" cannot delete ..."}`

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};

use super::{AuditEntry, AuditSink};

/// How many entries may wait for the writer thread before new ones are dropped (and
/// counted): the request path never blocks on a slow disk.
pub const DEFAULT_QUEUE: usize = 16 * 1024;

/// Why the audit log could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The file could not be opened for appending.
    #[error("cannot open the audit log {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Writing or flushing the file failed.
    #[error("cannot write the audit log {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The writer thread is gone (it panicked or could not start).
    #[error("the audit log writer for {path} has stopped")]
    Stopped {
        /// The file.
        path: PathBuf,
    },
}

/// One entry as the JSON object of its line: `time` (RFC 3339, UTC), `user`, `groups`,
/// `verb`, `apiGroup`, `resource`, `subresource`, `namespace`, `name` (null when absent),
/// `allowed`, `reason` (empty when allowed).
pub fn entry_json(entry: &AuditEntry) -> Value {
    let time = jiff::Timestamp::try_from(entry.time)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let request = &entry.request;
    json!({
        "time": time,
        "user": request.user.name,
        "groups": request.user.groups,
        "verb": request.verb.as_str(),
        "apiGroup": request.api_group,
        "resource": request.resource,
        "subresource": request.subresource,
        "namespace": request.namespace,
        "name": request.name,
        "allowed": entry.allowed,
        "reason": entry.reason,
    })
}

enum Message {
    Entry(Box<AuditEntry>),
    Flush(mpsc::Sender<io::Result<()>>),
}

/// Appends entries as JSON lines to a file; see the [module docs](self). Cheap to clone;
/// the writer thread ends (after writing what is queued) when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct FileAuditSink {
    path: PathBuf,
    queue: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

impl FileAuditSink {
    /// Opens (creating if needed) `path` for appending, and starts the writer thread.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        Self::with_queue(path, DEFAULT_QUEUE)
    }

    /// [`FileAuditSink::open`] with room for `queue` waiting entries.
    pub fn with_queue(path: impl AsRef<Path>, queue: usize) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| AuditError::Open {
                path: path.clone(),
                source,
            })?;
        let (tx, rx) = mpsc::sync_channel(queue.max(1));
        let thread_path = path.clone();
        std::thread::Builder::new()
            .name("orchestra-audit".into())
            .spawn(move || write_loop(rx, BufWriter::new(file), &thread_path))
            .map_err(|source| AuditError::Open {
                path: path.clone(),
                source,
            })?;
        Ok(FileAuditSink {
            path,
            queue: tx,
            dropped: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The file written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many entries were dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Waits until every entry recorded before this call is written and flushed (at shutdown,
    /// and in tests). Blocks the calling thread.
    pub fn flush(&self) -> Result<(), AuditError> {
        let stopped = || AuditError::Stopped {
            path: self.path.clone(),
        };
        let (tx, rx) = mpsc::channel();
        self.queue.send(Message::Flush(tx)).map_err(|_| stopped())?;
        rx.recv()
            .map_err(|_| stopped())?
            .map_err(|source| AuditError::Write {
                path: self.path.clone(),
                source,
            })
    }
}

fn write_loop(rx: Receiver<Message>, mut out: BufWriter<File>, path: &Path) {
    let mut failing = false;
    while let Ok(first) = rx.recv() {
        // Write everything queued, then flush once: a burst costs one write to the file.
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                Message::Entry(entry) => {
                    let mut line = entry_json(&entry).to_string();
                    line.push('\n');
                    let result = out.write_all(line.as_bytes());
                    // Reported once per failure streak, not per entry.
                    match &result {
                        Err(error) if !failing => {
                            tracing::error!(path = %path.display(), %error, "audit log write failed");
                        }
                        _ => {}
                    }
                    failing = result.is_err();
                }
                Message::Flush(done) => {
                    let _ = done.send(out.flush());
                }
            }
            next = rx.try_recv().ok();
        }
        if let Err(error) = out.flush() {
            tracing::error!(path = %path.display(), %error, "audit log flush failed");
        }
    }
}

impl AuditSink for FileAuditSink {
    fn record(&self, entry: AuditEntry) {
        match self.queue.try_send(Message::Entry(Box::new(entry))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Keeps entries in memory, for tests. Cheap to clone; clones share the entries.
#[derive(Clone, Debug, Default)]
pub struct MemoryAuditSink {
    entries: Arc<Mutex<Vec<AuditEntry>>>,
}

impl MemoryAuditSink {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// The entries recorded so far, oldest first.
    pub fn entries(&self) -> Vec<AuditEntry> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl AuditSink for MemoryAuditSink {
    fn record(&self, entry: AuditEntry) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(entry);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::auth::{RequestAttributes, UserInfo, Verb};

    fn entry(allowed: bool, name: Option<&str>) -> AuditEntry {
        let request = RequestAttributes {
            user: UserInfo::new("alice", ["devs", "system:authenticated"]),
            verb: Verb::Delete,
            api_group: String::new(),
            resource: "pods".into(),
            subresource: None,
            namespace: Some("shop".into()),
            name: name.map(str::to_owned),
        };
        AuditEntry {
            time: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            reason: if allowed {
                String::new()
            } else {
                request.to_string()
            },
            request,
            allowed,
        }
    }

    #[test]
    fn the_file_holds_one_json_line_per_entry_appended() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.log");
        let sink = FileAuditSink::open(&path).expect("open");
        sink.record(entry(false, Some("web")));
        sink.record(entry(true, None));
        sink.flush().expect("flush");
        drop(sink);
        // Reopening appends.
        let again = FileAuditSink::open(&path).expect("reopen");
        again.record(entry(true, Some("db")));
        again.flush().expect("flush");
        assert_eq!(again.dropped(), 0);

        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines[0],
            json!({
                "time": "2023-11-14T22:13:20Z", "user": "alice",
                "groups": ["devs", "system:authenticated"], "verb": "delete", "apiGroup": "",
                "resource": "pods", "subresource": null, "namespace": "shop", "name": "web",
                "allowed": false,
                "reason": "user \"alice\" cannot delete resource \"pods\" named \"web\" in the namespace \"shop\""
            })
        );
        assert_eq!(lines[1]["allowed"], true);
        assert_eq!(lines[1]["name"], Value::Null);
        assert_eq!(lines[1]["reason"], "");
        assert_eq!(lines[2]["name"], "db");
    }

    #[test]
    fn a_full_queue_drops_and_counts_instead_of_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sink = FileAuditSink::with_queue(dir.path().join("audit.log"), 1).expect("open");
        // None of these calls blocks; each entry is either written or counted as dropped.
        for _ in 0..1000 {
            sink.record(entry(true, None));
        }
        sink.flush().expect("flush");
        let written = std::fs::read_to_string(sink.path())
            .expect("read")
            .lines()
            .count() as u64;
        assert_eq!(written + sink.dropped(), 1000);
    }

    #[test]
    fn opening_a_missing_directory_names_the_path() {
        let err = FileAuditSink::open("/nonexistent-dir/audit.log").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot open the audit log /nonexistent-dir/audit.log"),
            "{err}"
        );
    }

    #[test]
    fn memory_sink_keeps_entries_in_order() {
        let sink = MemoryAuditSink::new();
        sink.record(entry(false, Some("a")));
        sink.clone().record(entry(true, Some("b")));
        let names: Vec<_> = sink
            .entries()
            .into_iter()
            .map(|e| e.request.name.unwrap_or_default())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }
}
