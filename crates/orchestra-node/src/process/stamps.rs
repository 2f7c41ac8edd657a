//! Per-line times for process logs, so that `sinceTime`/`sinceSeconds` and `timestamps` work.
//!
//! The process writes its log file itself (see `logfile`), so nothing stands between it and
//! the file to stamp its lines. Instead the runtime keeps a *time index* next to each log,
//! `<log>.times`: lines of `<end offset> <RFC 3339 time>`, each saying that the complete lines
//! ending at or before that byte offset (and after the previous entry's) had been written by
//! that time. The runtime adds an entry whenever it observes new complete lines: every
//! `log_stamp_interval`, when it reads the log, when the process exits (a last line without a
//! newline included) and before a rotation (which copies the index along with the log). A
//! line's time is therefore when the runtime first saw it: at most one stamp interval after it
//! was written while the runtime runs; output written while no runtime runs gets the time the
//! next runtime sees it. Lines not in the index yet (written since the last observation) are
//! given the time of the read; in a rotated copy (written between the last stamp and the
//! copy), the time of its index's last entry, so that times never go back.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::runtime::LogOptions;

/// The time index of the log at `log`.
pub fn index_path(log: &Path) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(".times");
    PathBuf::from(name)
}

/// The entries of the index at `path` (offset, time), in order; missing is empty. A line that
/// does not parse (a torn write) is skipped.
pub fn read_index(path: &Path) -> io::Result<Vec<(u64, Timestamp)>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|line| {
            let (offset, time) = line.split_once(' ')?;
            Some((offset.parse().ok()?, time.parse().ok()?))
        })
        .collect())
}

/// The offset the index at `path` has stamped up to (0 when it is empty).
pub fn stamped_up_to(path: &Path) -> io::Result<u64> {
    Ok(read_index(path)?.last().map_or(0, |(offset, _)| *offset))
}

/// Stamps with `now` the complete lines appended to `log` after `stamped` (the index's last
/// offset, which the caller keeps), or everything when `all` (an exited process's last line
/// has no newline). Returns the new stamped offset. A log that shrank (truncated by a rotation
/// the index was not moved with) starts a new index.
pub fn stamp(log: &Path, stamped: u64, now: Timestamp, all: bool) -> io::Result<u64> {
    let mut file = match fs::File::open(log) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(stamped),
        Err(e) => return Err(e),
    };
    let index = index_path(log);
    let len = file.metadata()?.len();
    let mut from = stamped;
    if len < from {
        remove_if_present(&index)?;
        from = 0;
    }
    if len == from {
        return Ok(from);
    }
    let end = if all {
        len
    } else {
        file.seek(SeekFrom::Start(from))?;
        let mut new = Vec::new();
        file.take(len - from).read_to_end(&mut new)?;
        match new.iter().rposition(|b| *b == b'\n') {
            Some(last) => from + last as u64 + 1,
            None => return Ok(from),
        }
    };
    let mut out = OpenOptions::new().create(true).append(true).open(&index)?;
    out.write_all(format!("{end} {now}\n").as_bytes())?;
    Ok(end)
}

/// Rotates the index along with its log (see `logfile::rotate_if_needed`): the current index
/// becomes copy 1, older copies shift, at most `keep` are kept.
pub fn rotate(log: &Path, keep: usize) -> io::Result<()> {
    let index = index_path(log);
    if keep == 0 {
        return remove_if_present(&index);
    }
    remove_if_present(&super::logfile::rotated_path(&index, keep))?;
    for n in (1..keep).rev() {
        let from = super::logfile::rotated_path(&index, n);
        if from.exists() {
            fs::rename(&from, super::logfile::rotated_path(&index, n + 1))?;
        }
    }
    match fs::rename(&index, super::logfile::rotated_path(&index, 1)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Removes the index of `log` and its rotated copies (up to `keep`).
pub fn remove_all(log: &Path, keep: usize) -> io::Result<()> {
    let index = index_path(log);
    remove_if_present(&index)?;
    for n in 1..=keep {
        remove_if_present(&super::logfile::rotated_path(&index, n))?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The lines of `content` with their times from `index` (the first entry at or past the
/// line's end); lines past the index get `unstamped`. A last line without a newline counts.
pub fn timed_lines<'a>(
    content: &'a [u8],
    index: &[(u64, Timestamp)],
    unstamped: Timestamp,
) -> Vec<(Timestamp, &'a [u8])> {
    let mut out = Vec::new();
    let mut entries = index.iter().peekable();
    let mut start = 0;
    while start < content.len() {
        let end = content[start..]
            .iter()
            .position(|b| *b == b'\n')
            .map_or(content.len(), |i| start + i + 1);
        while entries
            .next_if(|(offset, _)| *offset < end as u64)
            .is_some()
        {}
        let time = entries.peek().map_or(unstamped, |(_, time)| *time);
        out.push((time, &content[start..end]));
        start = end;
    }
    out
}

/// The log text `lines` make under `options`' `since`, `tail_lines` and `timestamps` (each
/// line then starts with its RFC 3339 time and a space, as kubelet writes it); `limit_bytes`
/// is left to the caller.
pub fn select(lines: &[(Timestamp, &[u8])], options: &LogOptions) -> Vec<u8> {
    let kept: Vec<&(Timestamp, &[u8])> = lines
        .iter()
        .filter(|(time, _)| options.since.is_none_or(|since| *time >= since))
        .collect();
    let skip = options
        .tail_lines
        .map_or(0, |n| kept.len().saturating_sub(n));
    let mut out = Vec::new();
    for (time, line) in &kept[skip..] {
        if options.timestamps {
            out.extend_from_slice(time.to_string().as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(line);
    }
    out
}

/// Turns followed output into `options`' selection, line by line: a partial line waits for
/// its newline (or the end of the stream); each line gets the time it was read.
#[derive(Debug, Default)]
pub struct LineStamper {
    since: Option<Timestamp>,
    timestamps: bool,
    partial: Vec<u8>,
}

impl LineStamper {
    /// A stamper for `options`.
    pub fn new(options: &LogOptions) -> Self {
        LineStamper {
            since: options.since,
            timestamps: options.timestamps,
            partial: Vec::new(),
        }
    }

    /// The selected output of `new`, read at `now`; with `last`, a partial line is let out.
    pub fn feed(&mut self, new: &[u8], now: Timestamp, last: bool) -> Vec<u8> {
        self.partial.extend_from_slice(new);
        let complete = if last {
            self.partial.len()
        } else {
            self.partial
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1)
        };
        let rest = self.partial.split_off(complete);
        let ready = std::mem::replace(&mut self.partial, rest);
        let lines = timed_lines(&ready, &[], now);
        let options = LogOptions {
            since: self.since,
            timestamps: self.timestamps,
            ..LogOptions::default()
        };
        select(&lines, &options)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    #[test]
    fn complete_lines_are_stamped_when_first_seen() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("0.log");
        let mut file = super::super::logfile::open_for_append(&log).unwrap();
        file.write_all(b"one\ntw").unwrap();
        let stamped = stamp(&log, 0, at(1), false).unwrap();
        assert_eq!(stamped, 4, "the partial line waits for its newline");
        assert_eq!(
            stamp(&log, stamped, at(2), false).unwrap(),
            4,
            "nothing new"
        );
        file.write_all(b"o\nthree").unwrap();
        let stamped = stamp(&log, stamped, at(3), false).unwrap();
        assert_eq!(stamped, 8);
        let stamped = stamp(&log, stamped, at(4), true).unwrap();
        assert_eq!(stamped, 13, "an exited process's last line counts");
        let index = read_index(&index_path(&log)).unwrap();
        assert_eq!(index, [(4, at(1)), (8, at(3)), (13, at(4))]);
        assert_eq!(stamped_up_to(&index_path(&log)).unwrap(), 13);

        let content = fs::read(&log).unwrap();
        let lines = timed_lines(&content, &index, at(9));
        assert_eq!(
            lines,
            [
                (at(1), &b"one\n"[..]),
                (at(3), &b"two\n"[..]),
                (at(4), &b"three"[..])
            ]
        );
        // Lines the index does not cover yet get the read's time.
        assert_eq!(
            timed_lines(b"one\nfour\n", &index[..1], at(9)),
            [(at(1), &b"one\n"[..]), (at(9), &b"four\n"[..])]
        );

        // A log truncated behind the index's back starts a new index.
        fs::write(&log, b"new\n").unwrap();
        assert_eq!(stamp(&log, stamped, at(5), false).unwrap(), 4);
        assert_eq!(read_index(&index_path(&log)).unwrap(), [(4, at(5))]);

        rotate(&log, 2).unwrap();
        assert!(!index_path(&log).exists());
        let first = super::super::logfile::rotated_path(&index_path(&log), 1);
        assert_eq!(read_index(&first).unwrap(), [(4, at(5))]);
        remove_all(&log, 2).unwrap();
        assert!(!first.exists());
    }

    #[test]
    fn selection_honours_since_tail_and_timestamps() {
        let lines = [
            (at(1), &b"a\n"[..]),
            (at(2), &b"b\n"[..]),
            (at(3), &b"c\n"[..]),
        ];
        let options = |since: Option<Timestamp>, tail, timestamps| LogOptions {
            since,
            tail_lines: tail,
            timestamps,
            ..LogOptions::default()
        };
        assert_eq!(select(&lines, &options(None, None, false)), b"a\nb\nc\n");
        assert_eq!(
            select(&lines, &options(Some(at(2)), None, false)),
            b"b\nc\n"
        );
        assert_eq!(
            select(&lines, &options(Some(at(2)), Some(1), false)),
            b"c\n"
        );
        let stamped = String::from_utf8(select(&lines, &options(Some(at(3)), None, true))).unwrap();
        assert_eq!(stamped, format!("{} c\n", at(3)));
        assert_eq!(stamped, "2023-11-14T22:13:23Z c\n");

        let mut follower = LineStamper::new(&options(None, None, true));
        assert_eq!(
            follower.feed(b"x\ny", at(5), false),
            format!("{} x\n", at(5)).as_bytes()
        );
        assert_eq!(
            follower.feed(b"z", at(6), true),
            format!("{} yz", at(6)).as_bytes()
        );
        let mut late = LineStamper::new(&options(Some(at(7)), None, false));
        assert!(late.feed(b"early\n", at(6), false).is_empty());
        assert_eq!(late.feed(b"late\n", at(7), false), b"late\n");
    }
}
