//! `orchestra ctl ...`: the arguments of kubectl's everyday verbs.

use std::path::PathBuf;

use clap::{ArgAction, Args, Subcommand};

use crate::ctl::{Output, Scope};

/// `orchestra ctl [--server URL] VERB ...`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The API server (also `ORCHESTRA_SERVER`; default: the credentials' server, else
    /// https://127.0.0.1:7443; `http://...`: an `--insecure` server, in plain text).
    #[arg(long, env = "ORCHESTRA_SERVER", global = true)]
    pub server: Option<String>,

    /// The credentials file (`orchestra server` writes `DATA_DIR/admin.credentials`; default:
    /// `ORCHESTRA_CREDENTIALS`, else `~/.orchestra/credentials` if it exists).
    #[arg(long, env = "ORCHESTRA_CREDENTIALS", global = true)]
    pub credentials: Option<PathBuf>,

    /// The namespace of namespaced kinds.
    #[arg(short = 'n', long, default_value = "default", global = true)]
    pub namespace: String,

    /// Every namespace (for `get`).
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,

    /// The verb.
    #[command(subcommand)]
    pub verb: CtlVerb,
}

impl CtlArgs {
    /// The namespaces the command looks at.
    pub fn scope(&self) -> Scope {
        if self.all_namespaces {
            Scope::All
        } else {
            Scope::Namespace(self.namespace.clone())
        }
    }
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum CtlVerb {
    /// Create or update the objects of manifest files (YAML or JSON, many documents each).
    Apply {
        /// A file, a directory of `.yaml`/`.yml`/`.json` files, or `-` for standard input.
        #[arg(short = 'f', long = "filename", required = true)]
        files: Vec<PathBuf>,
        /// Unknown fields are errors instead of warnings.
        #[arg(long)]
        strict: bool,
    },
    /// List objects of a kind, or show one.
    Get {
        /// The kind: `pods`, `po`, `deployments`, `deploy`, `svc`, `nodes`, ...
        kind: String,
        /// One object's name.
        name: Option<String>,
        /// A label selector: `app=web,tier!=db`, `env in (prod,staging)`, `!canary`.
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// The output format.
        #[arg(short = 'o', long, value_enum, default_value = "table")]
        output: Output,
        /// After listing, print each change until interrupted.
        #[arg(short = 'w', long)]
        watch: bool,
    },
    /// Show one object in detail, with its events.
    Describe {
        /// The kind.
        kind: String,
        /// The object's name.
        name: String,
    },
    /// Delete one object.
    Delete {
        /// The kind.
        kind: String,
        /// The object's name.
        name: String,
    },
    /// Print a container's log (`-f`: keep following it).
    Logs {
        /// The pod.
        pod: String,
        /// The container (may be left out when the pod has one).
        #[arg(short = 'c', long)]
        container: Option<String>,
        /// Keep streaming new output until the container stops or Ctrl-C.
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only the last N lines (-1: all).
        #[arg(long, allow_negative_numbers = true)]
        tail: Option<i64>,
        /// The previous, terminated instance of the container.
        #[arg(short = 'p', long)]
        previous: bool,
        /// Only the output of this last while: a Go duration such as 30s, 5m or 1h30m
        /// (every runtime keeps per-line times: CRI in its log format, process in a time index).
        #[arg(long, value_parser = parse_since, conflicts_with = "since_time")]
        since: Option<u64>,
        /// Only the output written at or after this RFC 3339 time.
        #[arg(long, value_parser = parse_since_time)]
        since_time: Option<jiff::Timestamp>,
        /// Start each line with the RFC 3339 time it was written at.
        #[arg(long)]
        timestamps: bool,
    },
    /// Set the replicas of a deployment or replica set.
    Scale {
        /// `deployment/NAME` or `replicaset/NAME`.
        target: String,
        /// The new number of replicas.
        #[arg(long)]
        replicas: i32,
    },
    /// Follow, undo, pause or resume a deployment's rollout.
    Rollout {
        /// What to do.
        #[command(subcommand)]
        action: RolloutAction,
    },
}

/// `rollout` actions; each names a deployment as `deployment/NAME` or `NAME` (`undo` and
/// `history` also a daemon set, as `daemonset/NAME`; `status`, `undo` and `history` a stateful
/// set, as `statefulset/NAME`).
#[derive(Debug, Subcommand)]
pub enum RolloutAction {
    /// Print the rollout's progress until it is done (an error past its progress deadline).
    Status {
        /// The deployment (`NAME` or `deployment/NAME`) or stateful set (`statefulset/NAME`).
        #[arg(value_name = "KIND/NAME")]
        deployment: String,
        /// Keep watching until done (`--watch=false`: print the state once).
        #[arg(short = 'w', long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
        watch: bool,
        /// Give up after this many seconds.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Roll back to the previous revision, or to `--to-revision N`.
    Undo {
        /// The deployment (`NAME` or `deployment/NAME`), daemon set (`daemonset/NAME`) or
        /// stateful set (`statefulset/NAME`).
        #[arg(value_name = "KIND/NAME")]
        target: String,
        /// The revision to go back to (0 or absent: the previous one).
        #[arg(long)]
        to_revision: Option<i64>,
    },
    /// List the revisions a rollout can go back to.
    History {
        /// The deployment (`NAME` or `deployment/NAME`), daemon set (`daemonset/NAME`) or
        /// stateful set (`statefulset/NAME`).
        #[arg(value_name = "KIND/NAME")]
        target: String,
    },
    /// Pause the rollout: template changes wait until resumed.
    Pause {
        /// The deployment.
        deployment: String,
    },
    /// Resume a paused rollout.
    Resume {
        /// The deployment.
        deployment: String,
    },
}

/// `--since`: a Go duration (`300ms`, `5s`, `2m`, `1h30m`, `1.5h`) as whole seconds, rounded
/// as kubectl rounds it, and at least one.
fn parse_since(text: &str) -> Result<u64, String> {
    let bad = || format!("`{text}` is not a duration such as 30s, 5m or 1h30m");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut seconds = 0f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..number_end].parse().map_err(|_| bad())?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        seconds += number * scale;
        rest = &rest[unit_end..];
    }
    let rounded = seconds.round();
    if !rounded.is_finite() || rounded > 1e12 {
        return Err(format!("`{text}` is too long a duration"));
    }
    // Kubernetes wants a positive sinceSeconds; anything under half a second asks for one.
    Ok((rounded as u64).max(1))
}

/// `--since-time`: an RFC 3339 time.
fn parse_since_time(text: &str) -> Result<jiff::Timestamp, String> {
    text.trim()
        .parse()
        .map_err(|e| format!("`{text}` is not an RFC 3339 time such as 2026-11-27T03:00:00Z: {e}"))
}

#[cfg(test)]
mod since_tests {
    use super::*;

    #[test]
    fn since_takes_go_durations_and_since_time_rfc3339() {
        assert_eq!(parse_since("30s"), Ok(30));
        assert_eq!(parse_since("5m"), Ok(300));
        assert_eq!(parse_since("1h30m"), Ok(5400));
        assert_eq!(parse_since("1.5h"), Ok(5400));
        assert_eq!(parse_since("2600ms"), Ok(3));
        assert_eq!(parse_since("10ms"), Ok(1));
        for bad in ["", "5", "5x", "m", "-5s", "1h 30m"] {
            assert!(
                parse_since(bad).unwrap_err().contains("is not a duration"),
                "{bad}"
            );
        }
        assert_eq!(
            parse_since_time("2026-11-27T04:00:00+01:00").unwrap(),
            "2026-11-27T03:00:00Z".parse::<jiff::Timestamp>().unwrap()
        );
        assert!(
            parse_since_time("yesterday")
                .unwrap_err()
                .contains("RFC 3339")
        );
    }
}
