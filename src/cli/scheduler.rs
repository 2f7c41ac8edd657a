//! `orchestra scheduler --server URL [--config FILE]`: the scheduling loop against an API
//! server, with the default profile or the profiles of a configuration file.

use std::path::PathBuf;

use clap::Args;
use orchestra::sched::config::{ConfigError, SchedulerConfig};
use orchestra::sched::run::{LoopError, SchedulerLoop};
use orchestra::sched::{Profiles, plugins};

/// `orchestra scheduler [--server URL] [--config FILE]`.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// The API server (also `ORCHESTRA_SERVER`; default: the credentials' server, else
    /// https://127.0.0.1:7443; `http://...`: an `--insecure` server, in plain text).
    #[arg(long, env = "ORCHESTRA_SERVER")]
    pub server: Option<String>,
    /// The credentials file (`orchestra server` writes `DATA_DIR/scheduler.credentials`, this component's own
    /// identity, and `DATA_DIR/admin.credentials`; default:
    /// `ORCHESTRA_CREDENTIALS`, else `~/.orchestra/credentials` if it exists).
    #[arg(long, env = "ORCHESTRA_CREDENTIALS")]
    pub credentials: Option<PathBuf>,

    /// A scheduler configuration file (YAML, kube-scheduler's KubeSchedulerConfiguration
    /// shape); without it, the default profile as `default-scheduler`.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// Why the scheduler could not run.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The configuration file is invalid.
    #[error("scheduler configuration {path}")]
    Config {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ConfigError,
    },
    /// The API server could not be reached.
    #[error("connecting to the API server at {server}")]
    Connect {
        /// The address tried.
        server: String,
        /// Why.
        #[source]
        source: super::security::ApiConnectError,
    },
    /// The loop could not start.
    #[error(transparent)]
    Loop(#[from] LoopError),
}

/// The profiles: the configuration file's (checked before anything connects), or the default.
pub fn profiles(args: &SchedulerArgs) -> Result<Profiles, SchedulerError> {
    match &args.config {
        Some(path) => {
            let config = |source| SchedulerError::Config {
                path: path.clone(),
                source,
            };
            SchedulerConfig::read(path)
                .map_err(config)?
                .build(&plugins::Registry::default())
                .map_err(config)
        }
        None => {
            let mut profiles = Profiles::new();
            profiles.insert(plugins::default_profile());
            Ok(profiles)
        }
    }
}

/// Runs the scheduler until Ctrl-C or SIGTERM; bindings in flight finish first.
pub async fn run(args: SchedulerArgs) -> Result<(), SchedulerError> {
    let profiles = profiles(&args)?;
    let mut names = profiles
        .names()
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    names.sort();
    let (client, server) =
        super::security::connect(args.server.as_deref(), args.credentials.as_deref())
            .await
            .map_err(|source| SchedulerError::Connect {
                server: args.server.clone().unwrap_or_default(),
                source,
            })?;
    let scheduler = SchedulerLoop::new(client, profiles)?;
    tracing::info!(%server, profiles = ?names, "scheduler running");
    scheduler.run(super::server::shutdown_signal()).await;
    tracing::info!("scheduler stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_configuration_is_an_error_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("orchestra-sched-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.yaml");
        std::fs::write(
            &path,
            "profiles: [{schedulerName: x, plugins: {score: {enabled: [{name: Nope}]}}}]\n",
        )
        .unwrap();
        let args = SchedulerArgs {
            server: Some("http://127.0.0.1:1".into()),
            credentials: None,
            config: Some(path.clone()),
        };
        let err = profiles(&args).unwrap_err();
        assert!(err.to_string().contains("bad.yaml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_a_file_the_default_profile_runs() {
        let args = SchedulerArgs {
            server: Some("http://127.0.0.1:1".into()),
            credentials: None,
            config: None,
        };
        assert_eq!(profiles(&args).unwrap().names(), ["default-scheduler"]);
    }
}
