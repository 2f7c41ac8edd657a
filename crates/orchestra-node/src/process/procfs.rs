//! What `/proc/<pid>/stat` says about a process: whether it still runs, and its start time
//! (which tells a re-adopted pid from a new process that reused the number).

use std::io;
use std::process::ExitStatus;

/// The fields of `/proc/<pid>/stat` the runtime needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcStat {
    /// The state letter (`R`, `S`, `Z` for a zombie...).
    pub state: char,
    /// The process group.
    pub pgrp: i32,
    /// When the process started, in clock ticks since boot (field 22).
    pub start_ticks: u64,
}

impl ProcStat {
    /// Whether the process has exited (a zombie counts as exited).
    pub fn is_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Reads `/proc/<pid>/stat`; `Ok(None)` if there is no such process.
pub fn read_stat(pid: i32) -> io::Result<Option<ProcStat>> {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(text) => parse_stat(&text).map(Some).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("/proc/{pid}/stat is not in the expected format: {text:?}"),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // ESRCH shows up when the process vanishes between open and read.
        Err(e) if e.raw_os_error() == Some(3) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `pid` is still the live process that started at `start_ticks`.
pub fn is_same_live_process(pid: i32, start_ticks: u64) -> bool {
    matches!(read_stat(pid), Ok(Some(stat)) if stat.start_ticks == start_ticks && !stat.is_exited())
}

/// Parses a stat line. The command name (field 2) is in parentheses and may itself contain
/// spaces and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so field N is fields[N - 3].
    Some(ProcStat {
        state: fields.first()?.chars().next()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start_ticks: fields.get(19)?.parse().ok()?,
    })
}

/// A process's exit code as shells and Kubernetes report it: its code, or 128 + the signal
/// that killed it.
pub fn exit_code(status: ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.code().or_else(|| status.signal().map(|s| 128 + s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 50 0 0";
        assert_eq!(
            parse_stat(line),
            Some(ProcStat {
                state: 'S',
                pgrp: 4242,
                start_ticks: 987654
            })
        );
        assert_eq!(
            parse_stat("12 (x) Z 1"),
            None,
            "truncated lines are refused"
        );
    }

    #[test]
    fn reads_its_own_stat() {
        let own = read_stat(std::process::id() as i32)
            .expect("read")
            .expect("exists");
        assert!(!own.is_exited());
        assert!(is_same_live_process(
            std::process::id() as i32,
            own.start_ticks
        ));
        assert!(!is_same_live_process(
            std::process::id() as i32,
            own.start_ticks + 1
        ));
    }
}
