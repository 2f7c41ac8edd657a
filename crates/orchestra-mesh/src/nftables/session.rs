//! [`Session`]: one long-lived `nft -i` process that applies the proxy's incremental
//! transactions, so that a one-service change costs one nft transaction and not a process.
//!
//! # Why
//! A `nft -f -` per sync pays for a process start (and the command prefix's), nft's
//! initialisation, and, when its netlink socket closes after a transaction that deleted
//! something, the kernel's wait for an RCU grace period before freeing the deleted objects
//! (nf_tables flushes its destroy work when a netfilter netlink socket is released). Measured
//! under load at 30,000 services: about 20 ms of wall time per `nft -f` for about 0.3 ms of
//! kernel transaction. A process that stays pays none of it per sync.
//!
//! # How a batch is exchanged
//! nft's interactive mode reads one line at a time and applies each line as one
//! transaction (commands separated by `;`: all or nothing, as with `-f`), printing nothing on
//! success and its errors on stderr. It has no "done" reply, so every batch is followed by a
//! marker line (`orchestra-sync-N`) that is not a command: nft answers it with a syntax
//! error that quotes it (`Error: ...`, the line, a line of carets). Everything nft wrote on
//! stderr before that error is the batch's own output, and an `Error` in it means the batch
//! was refused (and nothing of it applied).
//!
//! A session that dies, stops answering or cannot be written to leaves the batch's outcome
//! unknown: the caller drops it (and takes the table over at its next sync).

use std::io;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, Command};

use super::NftablesProxyConfig;
use super::command::invocation;

/// The largest batch sent through a session (bytes of script); larger ones (a takeover of
/// many services) go to a `nft -f -` of their own, which reads a file rather than a line.
pub(crate) const MAX_BATCH: usize = 1 << 20;

/// Bytes after which a session is replaced: nft's line editor keeps every line in its
/// history, in memory, for as long as the process lives.
const RETIRE_AFTER: usize = 32 << 20;

/// How long nft may take to answer one batch before the session is given up.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// A running `[PREFIX...] nft -i`.
#[derive(Debug)]
pub(crate) struct Session {
    /// The process (killed when the session is dropped).
    _child: Child,
    /// Where batches are written.
    stdin: ChildStdin,
    /// Where nft's errors (and the markers' errors) are read.
    stderr: BufReader<ChildStderr>,
    /// Bytes written so far.
    sent: usize,
    /// Markers used so far.
    markers: u64,
}

/// What nft did with one batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Applied.
    Applied,
    /// Refused, with nft's message; nothing of the batch was applied.
    Refused(String),
}

impl Session {
    /// Starts `nft -i` (behind the configured prefix).
    pub(crate) fn start(config: &NftablesProxyConfig) -> io::Result<Session> {
        let (program, args) = invocation(config, config.nft.as_os_str());
        let mut child = Command::new(program)
            .args(args)
            .arg("-i")
            // nft's interactive mode loads and saves a history file under $HOME; a proxy's
            // batches do not belong in root's shell history.
            .env("HOME", "/nonexistent")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("nft -i has no stdin"))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("nft -i has no stderr"))?;
        Ok(Session {
            _child: child,
            stdin,
            stderr: BufReader::new(stderr),
            sent: 0,
            markers: 0,
        })
    }

    /// Whether the session has done enough work to be replaced (see [`RETIRE_AFTER`]).
    pub(crate) fn retired(&self) -> bool {
        self.sent >= RETIRE_AFTER
    }

    /// Applies `commands` (none containing a newline) as one transaction. An `Err` means
    /// the session is broken and the outcome unknown.
    pub(crate) async fn apply(&mut self, commands: &[String]) -> io::Result<Outcome> {
        if let Some(bad) = commands.iter().find(|c| c.contains('\n')) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("an nft command spans lines: {bad:?}"),
            ));
        }
        self.markers += 1;
        let marker = format!("orchestra-sync-{}", self.markers);
        let mut input = commands.join(";");
        input.push('\n');
        input.push_str(&marker);
        input.push('\n');
        self.sent += input.len();
        let output = tokio::time::timeout(REPLY_TIMEOUT, self.exchange(&input, &marker))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("nft -i did not answer within {REPLY_TIMEOUT:?}"),
                )
            })??;
        Ok(if output.contains("Error") {
            Outcome::Refused(output.trim().to_owned())
        } else {
            Outcome::Applied
        })
    }

    /// Writes `input` and returns what nft printed before the error about `marker`.
    async fn exchange(&mut self, input: &str, marker: &str) -> io::Result<String> {
        self.stdin.write_all(input.as_bytes()).await?;
        self.stdin.flush().await?;
        let mut lines: Vec<String> = Vec::new();
        loop {
            let mut line = String::new();
            if self.stderr.read_line(&mut line).await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("nft -i exited; it said: {}", lines.concat().trim()),
                ));
            }
            if line.trim_end_matches(['\n', '\r']) == marker {
                break;
            }
            lines.push(line);
        }
        // The marker's error is the line before it and the line of carets after it.
        let mut carets = String::new();
        self.stderr.read_line(&mut carets).await?;
        lines.pop();
        Ok(lines.concat())
    }
}
