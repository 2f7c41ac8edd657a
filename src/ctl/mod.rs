//! `orchestra ctl`: kubectl's everyday verbs (`apply`, `get`, `describe`, `delete`) over any
//! [`Client`]: the command line hands it a `RemoteClient`, the tests a `LocalClient`.
//!
//! Output goes to a writer given by the caller and every error is a [`CtlError`] whose
//! message a person can act on; nothing here prints or exits on its own.
//!
//! # Layout
//! - [`kind`]: the kinds `ctl` knows and the names users type for them.
//! - [`table`]: kubectl's tables and ages, as pure functions.
//! - [`apply`]: create-or-update from manifest files.
//! - [`show`]: `get` (tables, JSON, YAML, watch), `describe` and `delete`.
//! - [`rollout`]: `rollout status|undo|pause|resume` and `scale`.
//! - [`logs`]: `logs POD [-c C] [-f] [--tail N] [-p] [--since D | --since-time T]
//!   [--timestamps]`, streamed.

pub mod apply;
pub mod kind;
pub mod logs;
pub mod rollout;
pub mod show;
pub mod table;

use std::path::PathBuf;

use orchestra::api::manifest::ManifestError;
use orchestra::api::{ApiError, SelectorError};

pub use kind::{Kind, UnknownKind};

/// Which namespaces a command looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// One namespace (`-n NS`, default `default`).
    Namespace(String),
    /// Every namespace (`-A`).
    All,
}

impl Scope {
    /// The namespace for single-object commands (`default` with `-A`, as kubectl).
    pub fn namespace(&self) -> &str {
        match self {
            Scope::Namespace(ns) => ns,
            Scope::All => "default",
        }
    }
}

/// How `get` prints objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Output {
    /// kubectl's table.
    #[default]
    Table,
    /// The table with more columns.
    Wide,
    /// JSON (a `List` for several objects).
    Json,
    /// YAML (a `List` for several objects).
    Yaml,
}

/// Why a `ctl` command failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The API server could not be reached.
    #[error(
        "cannot connect to the API server at {server} (set --server or ORCHESTRA_SERVER): {source}"
    )]
    Connect {
        /// The address tried.
        server: String,
        /// Why.
        #[source]
        source: crate::cli::security::ApiConnectError,
    },
    /// The kind name is not one `ctl` knows.
    #[error(transparent)]
    UnknownKind(#[from] UnknownKind),
    /// The API server refused or failed the request.
    #[error("{context}: {source}")]
    Api {
        /// What `ctl` was doing.
        context: String,
        /// The server's error.
        #[source]
        source: ApiError,
    },
    /// A label selector does not parse.
    #[error("invalid label selector {selector:?}: {source}")]
    Selector {
        /// The selector as typed.
        selector: String,
        /// What is wrong with it.
        #[source]
        source: SelectorError,
    },
    /// A manifest could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file (`-` for standard input).
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A manifest does not parse or does not validate.
    #[error("{path}: {source}")]
    Manifest {
        /// The file.
        path: PathBuf,
        /// Every document's error.
        #[source]
        source: ManifestError,
    },
    /// A manifest holds a kind `ctl` cannot write.
    #[error("{path}: {what}: ctl cannot apply this kind (known: the built-in kinds)")]
    UnsupportedKind {
        /// The file.
        path: PathBuf,
        /// The object.
        what: String,
    },
    /// `-f` named nothing to apply.
    #[error("no objects passed to apply (the files and directories given hold no manifest)")]
    NothingToApply,
    /// The command line or the object does not allow what was asked (the message says why).
    #[error("{0}")]
    Usage(String),
    /// Writing the output failed.
    #[error("writing the output failed: {0}")]
    Output(#[from] std::io::Error),
    /// Encoding an object failed.
    #[error("encoding {what} failed: {message}")]
    Encode {
        /// The object.
        what: String,
        /// The encoder's message.
        message: String,
    },
}

impl CtlError {
    /// Wrap an API error with what `ctl` was doing.
    pub fn api(context: impl Into<String>, source: ApiError) -> Self {
        CtlError::Api {
            context: context.into(),
            source,
        }
    }
}

/// Run one `ctl` command line against `client`, writing results to `out` and warnings and
/// notices to `err`.
pub async fn run<C: orchestra::api::Client>(
    client: &C,
    args: &crate::cli::ctl::CtlArgs,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> Result<(), CtlError> {
    use crate::cli::ctl::CtlVerb;
    let scope = args.scope();
    let now = jiff::Timestamp::now();
    match &args.verb {
        CtlVerb::Apply { files, strict } => {
            apply::apply(client, files, &scope, *strict, out, err).await
        }
        CtlVerb::Get {
            kind,
            name,
            selector,
            output,
            watch,
        } => {
            let request = show::GetRequest {
                kind: Kind::parse(kind)?,
                name: name.clone(),
                scope,
                selector: selector.clone(),
                output: *output,
                watch: *watch,
            };
            show::get(client, &request, now, out, err).await
        }
        CtlVerb::Describe { kind, name } => {
            show::describe(client, Kind::parse(kind)?, name, &scope, now, out).await
        }
        CtlVerb::Delete { kind, name } => {
            show::delete(client, Kind::parse(kind)?, name, &scope, out).await
        }
        CtlVerb::Logs {
            pod,
            container,
            follow,
            tail,
            previous,
            since,
            since_time,
            timestamps,
        } => {
            let options = orchestra_api::logs::PodLogOptions {
                container: container.clone(),
                follow: *follow,
                // kubectl's `--tail=-1`: everything.
                tail_lines: tail.and_then(|n| u64::try_from(n).ok()),
                previous: *previous,
                limit_bytes: None,
                since_seconds: *since,
                since_time: *since_time,
                timestamps: *timestamps,
            };
            logs::logs(client, &args.namespace, pod, &options, out).await
        }
        CtlVerb::Scale { target, replicas } => {
            rollout::scale(client, target, *replicas, &scope, out).await
        }
        CtlVerb::Rollout { action } => {
            use crate::cli::ctl::RolloutAction;
            match action {
                RolloutAction::Status {
                    deployment,
                    watch,
                    timeout,
                } => {
                    let timeout = timeout.map(std::time::Duration::from_secs);
                    rollout::status(client, deployment, *watch, timeout, &scope, out).await
                }
                RolloutAction::Undo {
                    target,
                    to_revision,
                } => rollout::undo(client, target, *to_revision, &scope, out).await,
                RolloutAction::History { target } => {
                    rollout::history(client, target, &scope, out).await
                }
                RolloutAction::Pause { deployment } => {
                    rollout::set_paused(client, deployment, true, &scope, out).await
                }
                RolloutAction::Resume { deployment } => {
                    rollout::set_paused(client, deployment, false, &scope, out).await
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
