//! Following a container's log: new output as it is written, until the container has exited.
//!
//! The process writes its log file directly (see `logfile`), so there is no pipe to read from:
//! the follower polls the file's length every [`FOLLOW_POLL`], reads what was appended, and
//! starts again from the top when the file was truncated by a rotation. With a
//! [`LineStamper`] (`sinceTime`, `timestamps`) the output goes out line by line, each line
//! with the time it was read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::stamps::LineStamper;
use crate::runtime::{LogStream, RuntimeError};

/// How often a followed log looks for new output.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

/// A stream of `initial`, then of what is appended to `path` after `offset`, until `ended()`
/// (asked before each read, so the last output is delivered) or `remaining` bytes are sent;
/// through `stamper` when given.
pub fn follow(
    path: PathBuf,
    mut offset: u64,
    initial: Vec<u8>,
    mut remaining: Option<usize>,
    mut stamper: Option<LineStamper>,
    ended: impl Fn() -> bool + Send + 'static,
) -> LogStream {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, RuntimeError>>(16);
    tokio::spawn(async move {
        if !initial.is_empty() && tx.send(Ok(Bytes::from(initial))).await.is_err() {
            return;
        }
        // A reader that went away is noticed here even when nothing is written.
        while !tx.is_closed() {
            let done = ended();
            let mut new = match read_new_output(&path, &mut offset) {
                Ok(new) => new,
                Err(source) => {
                    let context = format!("following the log {}", path.display());
                    let _ = tx.send(Err(RuntimeError::Io { context, source })).await;
                    return;
                }
            };
            if let Some(stamper) = stamper.as_mut() {
                new = stamper.feed(&new, jiff::Timestamp::now(), done);
            }
            if let Some(left) = remaining.as_mut() {
                new.truncate(*left);
                *left -= new.len();
            }
            if !new.is_empty() && tx.send(Ok(Bytes::from(new))).await.is_err() {
                return;
            }
            if done || remaining == Some(0) {
                return;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    });
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// What was appended to `path` since `offset` (from the start if the file shrank), moving
/// `offset` past it. A missing file has nothing new.
fn read_new_output(path: &Path, offset: &mut u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    if len < *offset {
        *offset = 0; // rotated (truncated) since the last read
    }
    file.seek(SeekFrom::Start(*offset))?;
    let mut buf = Vec::new();
    file.take(len - *offset).read_to_end(&mut buf)?;
    *offset += buf.len() as u64;
    Ok(buf)
}
