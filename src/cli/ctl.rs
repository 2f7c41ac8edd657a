//! `orchestra ctl ...`: the arguments of kubectl's everyday verbs.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::ctl::{Output, Scope};

/// `orchestra ctl [--server URL] VERB ...`.
#[derive(Debug, Args)]
pub struct CtlArgs {
    /// The API server (`ORCHESTRA_SERVER` sets the default).
    #[arg(
        long,
        env = "ORCHESTRA_SERVER",
        default_value = "http://127.0.0.1:7443",
        global = true
    )]
    pub server: String,

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
}
