//! [`Workload`]: a portable description of what a test container does, which each runtime's
//! harness maps onto its own [`ContainerConfig`](crate::ContainerConfig).

use std::time::Duration;

/// One thing a [`Workload`] does, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// From now on, ignore the TERM signal (only KILL ends the workload).
    IgnoreTerm,
    /// Write this line (a newline is added) on stdout.
    Print(String),
    /// Write this line (a newline is added) on stderr.
    PrintErr(String),
    /// Wait this long.
    Sleep(Duration),
    /// Exit with this code (0-255).
    Exit(i32),
    /// Run until stopped (exits when signalled).
    RunForever,
}

/// What a test container does, independent of the runtime: "print X and exit N", "ignore TERM",
/// "run forever". A harness maps it to its runtime: a `/bin/sh -c` script for the process and
/// CRI runtimes ([`Workload::shell_script`]), stages for the fake runtime.
///
/// A workload that reaches the end of its steps without [`Step::Exit`] or
/// [`Step::RunForever`] exits with code 0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    /// The steps, run in order.
    pub steps: Vec<Step>,
}

impl Workload {
    /// A workload doing these steps.
    pub fn new(steps: Vec<Step>) -> Self {
        Workload { steps }
    }

    /// Prints each line of `lines` on stdout, then exits with `code`.
    pub fn print_and_exit(lines: &[&str], code: i32) -> Self {
        let mut steps: Vec<Step> = lines.iter().map(|l| Step::Print((*l).to_owned())).collect();
        steps.push(Step::Exit(code));
        Workload { steps }
    }

    /// Prints `ready`, then runs until stopped (TERM ends it).
    pub fn run_forever() -> Self {
        Workload::new(vec![Step::Print("ready".into()), Step::RunForever])
    }

    /// Ignores TERM, prints `ready` (so a test knows TERM is ignored from then on), then runs
    /// until killed.
    pub fn ignore_term() -> Self {
        Workload::new(vec![
            Step::IgnoreTerm,
            Step::Print("ready".into()),
            Step::RunForever,
        ])
    }

    /// The workload as a command line for runtimes without a shell (a simulated runtime
    /// carries it in `command`, and in `exec_sync`'s command): `orchestra-workload` followed by
    /// one argument per step (`print=TEXT`, `print-err=TEXT`, `sleep-ms=N`, `exit=N`,
    /// `ignore-term`, `forever`). [`Workload::from_command`] reads it back.
    pub fn to_command(&self) -> Vec<String> {
        let mut argv = vec![COMMAND_NAME.to_owned()];
        argv.extend(self.steps.iter().map(|step| match step {
            Step::IgnoreTerm => "ignore-term".to_owned(),
            Step::Print(line) => format!("print={line}"),
            Step::PrintErr(line) => format!("print-err={line}"),
            Step::Sleep(d) => format!("sleep-ms={}", d.as_millis()),
            Step::Exit(code) => format!("exit={code}"),
            Step::RunForever => "forever".to_owned(),
        }));
        argv
    }

    /// Reads a command made by [`Workload::to_command`]; `None` if `argv` is not one (another
    /// program, or an argument it does not understand).
    pub fn from_command(argv: &[String]) -> Option<Workload> {
        let (program, args) = argv.split_first()?;
        if program != COMMAND_NAME {
            return None;
        }
        let steps = args
            .iter()
            .map(|arg| {
                Some(match arg.split_once('=') {
                    Some(("print", line)) => Step::Print(line.to_owned()),
                    Some(("print-err", line)) => Step::PrintErr(line.to_owned()),
                    Some(("sleep-ms", ms)) => Step::Sleep(Duration::from_millis(ms.parse().ok()?)),
                    Some(("exit", code)) => Step::Exit(code.parse().ok()?),
                    None if arg == "ignore-term" => Step::IgnoreTerm,
                    None if arg == "forever" => Step::RunForever,
                    _ => return None,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Workload { steps })
    }

    /// The workload as a POSIX shell script (for `/bin/sh -c`, dash or busybox sh): lines are
    /// written with `printf '%s\n'` and single-quoted, so any text is safe.
    pub fn shell_script(&self) -> String {
        let mut parts = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            parts.push(match step {
                Step::IgnoreTerm => "trap '' TERM".to_owned(),
                Step::Print(line) => format!("printf '%s\\n' {}", shell_quote(line)),
                Step::PrintErr(line) => format!("printf '%s\\n' {} >&2", shell_quote(line)),
                Step::Sleep(d) => format!("sleep {}.{:03}", d.as_secs(), d.subsec_millis()),
                Step::Exit(code) => format!("exit {code}"),
                // `sleep` in the foreground: a TERM to the process group ends both the shell
                // and the sleep (unless TERM is ignored, which `sleep` inherits across exec).
                Step::RunForever => "while :; do sleep 1; done".to_owned(),
            });
        }
        parts.join("; ")
    }
}

/// The program name of [`Workload::to_command`]'s command lines.
pub const COMMAND_NAME: &str = "orchestra-workload";

/// `s` single-quoted for a POSIX shell (`'` becomes `'\''`).
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_script_quotes_and_orders_steps() {
        let w = Workload::new(vec![
            Step::IgnoreTerm,
            Step::Print("it's".into()),
            Step::PrintErr("e".into()),
            Step::Sleep(Duration::from_millis(1500)),
            Step::Exit(3),
        ]);
        assert_eq!(
            w.shell_script(),
            r"trap '' TERM; printf '%s\n' 'it'\''s'; printf '%s\n' 'e' >&2; sleep 1.500; exit 3"
        );
    }

    #[test]
    fn command_lines_round_trip() {
        let w = Workload::new(vec![
            Step::IgnoreTerm,
            Step::Print("a=b c".into()),
            Step::PrintErr(String::new()),
            Step::Sleep(Duration::from_millis(250)),
            Step::Exit(-1),
            Step::RunForever,
        ]);
        let argv = w.to_command();
        assert_eq!(argv[0], COMMAND_NAME);
        assert_eq!(argv[2], "print=a=b c");
        assert_eq!(Workload::from_command(&argv), Some(w));
        assert_eq!(Workload::from_command(&["sh".to_owned()]), None);
        let bad = vec![COMMAND_NAME.to_owned(), "sleep-ms=soon".to_owned()];
        assert_eq!(Workload::from_command(&bad), None);
        assert_eq!(
            Workload::from_command(&[COMMAND_NAME.to_owned()]),
            Some(Workload::default())
        );
    }

    #[test]
    fn print_and_exit_ends_with_exit() {
        let w = Workload::print_and_exit(&["a", "b"], 7);
        assert_eq!(
            w.steps,
            vec![
                Step::Print("a".into()),
                Step::Print("b".into()),
                Step::Exit(7)
            ]
        );
    }
}
