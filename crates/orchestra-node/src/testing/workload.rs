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
