//! Container logs in the CRI format, which containerd writes to the path the container was
//! created with: one record per line, `<RFC 3339 time> <stdout|stderr> <P|F> <content>`, where
//! `F` closes a line and `P` is a part of a longer one (the newline is not in the content).
//!
//! [`decode`] turns records back into the output as the container wrote it; a [`Decoder`]
//! can also drop the records written before a time (`sinceTime`) and start each line with its
//! time (`timestamps`), as kubelet does. [`read`] and [`follow`] read a file, the latter
//! polling it for new records until the container exits.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::runtime::{LogOptions, LogStream, RuntimeError};

/// How often a followed log looks for new records.
const FOLLOW_POLL: Duration = Duration::from_millis(50);

/// The output held by the complete records at the start of `raw`, and how many bytes of `raw`
/// they span (an incomplete last record, still being written, is left for later).
///
/// A line that is not a CRI record is kept as it is, so that nothing written is lost.
pub fn decode(raw: &[u8]) -> (Vec<u8>, usize) {
    Decoder::default().decode(raw)
}

/// Decodes records with kubelet's `sinceTime` and `timestamps`, remembering across calls
/// (a followed log) whether the next record starts a line.
#[derive(Clone, Debug, Default)]
pub struct Decoder {
    /// Records written before this are left out.
    pub since: Option<jiff::Timestamp>,
    /// Each line starts with its first record's time and a space.
    pub timestamps: bool,
    /// The last record kept was a partial one: the next continues its line.
    in_line: bool,
}

impl Decoder {
    /// A decoder with `options`' `since` and `timestamps`.
    pub fn new(options: &LogOptions) -> Self {
        Decoder {
            since: options.since,
            timestamps: options.timestamps,
            in_line: false,
        }
    }

    /// [`decode`] with this decoder's selection and timestamps. A record whose time does not
    /// parse is kept (it cannot be placed before `since`).
    pub fn decode(&mut self, raw: &[u8]) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(raw.len());
        let mut consumed = 0;
        while let Some(end) = raw[consumed..].iter().position(|b| *b == b'\n') {
            let line = &raw[consumed..consumed + end];
            consumed += end + 1;
            match record(line) {
                Some(Record {
                    time,
                    content,
                    full,
                }) => {
                    let early = self.since.is_some_and(|since| {
                        std::str::from_utf8(time)
                            .ok()
                            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                            .is_some_and(|t| t < since)
                    });
                    if early {
                        continue;
                    }
                    if self.timestamps && !self.in_line {
                        out.extend_from_slice(time);
                        out.push(b' ');
                    }
                    out.extend_from_slice(content);
                    if full {
                        out.push(b'\n');
                    }
                    self.in_line = !full;
                }
                None => {
                    out.extend_from_slice(line);
                    out.push(b'\n');
                    self.in_line = false;
                }
            }
        }
        (out, consumed)
    }
}

/// One record of a CRI log.
struct Record<'a> {
    /// When it was written (RFC 3339, as in the file).
    time: &'a [u8],
    /// What the container wrote (without the newline).
    content: &'a [u8],
    /// Whether it ends a line.
    full: bool,
}

/// The record `line` holds; `None` if it is not one.
fn record(line: &[u8]) -> Option<Record<'_>> {
    let mut fields = line.splitn(4, |b| *b == b' ');
    let time = fields.next().filter(|t| !t.is_empty())?;
    let stream = fields.next()?;
    if stream != b"stdout" && stream != b"stderr" {
        return None;
    }
    // Tags are `:`-separated; the first says whether the line is partial.
    let tags = fields.next()?;
    let full = match tags.split(|b| *b == b':').next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    Some(Record {
        time,
        content: fields.next().unwrap_or_default(),
        full,
    })
}

/// The last `n` lines of `text` (all of it when `None`).
pub fn tail(text: &[u8], n: Option<usize>) -> &[u8] {
    let Some(n) = n else { return text };
    if n == 0 {
        return &[];
    }
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

/// A log file's raw bytes, empty when it does not exist (yet).
fn read_raw(path: &Path) -> Result<Vec<u8>, RuntimeError> {
    match std::fs::read(path) {
        Ok(raw) => Ok(raw),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(RuntimeError::Io {
            context: format!("reading the container log {}", path.display()),
            source,
        }),
    }
}

/// The log at `path` selected by `options`; with `follow`, a stream that goes on with new
/// output until `exited` says the container has exited (asked before each read, so that the
/// last output is delivered).
pub fn read(
    path: PathBuf,
    options: &LogOptions,
    exited: impl FnMut() -> BoxFuture<'static, bool> + Send + 'static,
) -> Result<LogStream, RuntimeError> {
    let raw = read_raw(&path)?;
    let mut decoder = Decoder::new(options);
    let (text, consumed) = decoder.decode(&raw);
    let mut selected = tail(&text, options.tail_lines).to_vec();
    let mut remaining = options.limit_bytes;
    if let Some(limit) = remaining {
        selected.truncate(limit);
        remaining = Some(limit - selected.len());
    }
    if !options.follow || remaining == Some(0) {
        let chunks = (!selected.is_empty()).then(|| Ok(Bytes::from(selected)));
        return Ok(Box::pin(futures::stream::iter(chunks)));
    }
    Ok(follow(
        path,
        consumed as u64,
        decoder,
        selected,
        remaining,
        exited,
    ))
}

/// A stream of `initial`, then of the output of records appended to `path` after `offset`.
fn follow(
    path: PathBuf,
    mut offset: u64,
    mut decoder: Decoder,
    initial: Vec<u8>,
    mut remaining: Option<usize>,
    mut exited: impl FnMut() -> BoxFuture<'static, bool> + Send + 'static,
) -> LogStream {
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, RuntimeError>>(16);
    tokio::spawn(async move {
        if !initial.is_empty() && tx.send(Ok(Bytes::from(initial))).await.is_err() {
            return;
        }
        while !tx.is_closed() {
            let done = exited().await;
            let mut new = match read_from(&path, &mut offset, &mut decoder) {
                Ok(new) => new,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
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

/// The output of the complete records after `offset` in `path`, moving `offset` past them.
fn read_from(
    path: &Path,
    offset: &mut u64,
    decoder: &mut Decoder,
) -> Result<Vec<u8>, RuntimeError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |source| RuntimeError::Io {
        context: format!("following the container log {}", path.display()),
        source,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let len = file.metadata().map_err(io)?.len();
    if len < *offset {
        *offset = 0; // truncated (rotated) since the last read
    }
    file.seek(SeekFrom::Start(*offset)).map_err(io)?;
    let mut raw = Vec::new();
    file.take(len - *offset).read_to_end(&mut raw).map_err(io)?;
    let (text, consumed) = decoder.decode(&raw);
    *offset += consumed as u64;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "2026-11-27T03:00:00.123456789Z";

    #[test]
    fn records_decode_to_the_output_as_written() {
        let raw = format!(
            "{T} stdout F one\n{T} stderr F two\n{T} stdout P thr\n{T} stdout F ee\n{T} stdout F \n"
        );
        let (text, consumed) = decode(raw.as_bytes());
        assert_eq!(String::from_utf8_lossy(&text), "one\ntwo\nthree\n\n");
        assert_eq!(consumed, raw.len());
    }

    #[test]
    fn an_incomplete_last_record_waits_and_content_keeps_its_spaces() {
        let raw = format!("{T} stdout F a  b c\n{T} stdout F hal");
        let (text, consumed) = decode(raw.as_bytes());
        assert_eq!(text, b"a  b c\n");
        assert_eq!(consumed, raw.find('\n').expect("first record") + 1);
    }

    #[test]
    fn lines_that_are_not_records_are_kept() {
        let raw = format!("garbage here\n{T} stdin F x\n{T} stdout Q y\n{T} stdout F:x ok\n");
        let (text, _) = decode(raw.as_bytes());
        assert_eq!(
            String::from_utf8_lossy(&text),
            format!("garbage here\n{T} stdin F x\n{T} stdout Q y\nok\n")
        );
    }

    #[test]
    fn since_drops_earlier_records_and_timestamps_start_each_line() {
        let (t1, t2, t3) = (
            "2026-11-27T03:00:00.1Z",
            "2026-11-27T03:00:01.5+00:00",
            "2026-11-27T04:00:02Z",
        );
        let raw = format!(
            "{t1} stdout F early\n{t2} stdout P par\n{t3} stdout F tial\ngarbage\n{t3} stderr F late\n"
        );
        let mut decoder = Decoder {
            since: Some("2026-11-27T03:00:01Z".parse().unwrap()),
            timestamps: true,
            ..Decoder::default()
        };
        let (text, consumed) = decoder.decode(raw.as_bytes());
        assert_eq!(
            String::from_utf8_lossy(&text),
            format!("{t2} partial\ngarbage\n{t3} late\n")
        );
        assert_eq!(consumed, raw.len());
        // A line split across calls (a followed log) gets its time once.
        let mut decoder = Decoder {
            timestamps: true,
            ..Decoder::default()
        };
        let (first, _) = decoder.decode(format!("{t1} stdout P a\n").as_bytes());
        let (second, _) = decoder.decode(format!("{t2} stdout F b\n").as_bytes());
        assert_eq!(first, format!("{t1} a").as_bytes());
        assert_eq!(second, b"b\n");
        // `since` alone keeps the output as written.
        let mut decoder = Decoder {
            since: Some("2026-11-27T04:00:00Z".parse().unwrap()),
            ..Decoder::default()
        };
        assert_eq!(decoder.decode(raw.as_bytes()).0, b"tial\ngarbage\nlate\n");
    }

    #[test]
    fn tail_counts_lines_from_the_end() {
        assert_eq!(tail(b"a\nb\nc\n", Some(2)), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", Some(1)), b"c");
        assert_eq!(tail(b"a\n", Some(5)), b"a\n");
        assert_eq!(tail(b"a\n", Some(0)), b"");
        assert_eq!(tail(b"a\n", None), b"a\n");
    }

    #[tokio::test]
    async fn reading_selects_tail_and_limit_and_a_missing_file_is_empty() {
        use futures::StreamExt;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("0.log");
        let never = || -> BoxFuture<'static, bool> { Box::pin(async { true }) };
        let collect = |stream: LogStream| async move {
            let chunks: Vec<_> = stream.collect().await;
            chunks
                .into_iter()
                .map(|c| c.expect("chunk"))
                .fold(Vec::new(), |mut all, c| {
                    all.extend_from_slice(&c);
                    all
                })
        };
        let empty = read(path.clone(), &LogOptions::default(), never).expect("missing file");
        assert!(collect(empty).await.is_empty());
        std::fs::write(&path, format!("{T} stdout F one\n{T} stderr F two\n")).expect("write");
        let options = LogOptions {
            tail_lines: Some(1),
            ..LogOptions::default()
        };
        assert_eq!(
            collect(read(path.clone(), &options, never).expect("tail")).await,
            b"two\n"
        );
        let options = LogOptions {
            limit_bytes: Some(5),
            follow: true,
            ..LogOptions::default()
        };
        assert_eq!(
            collect(read(path, &options, never).expect("limit")).await,
            b"one\nt"
        );
    }
}
