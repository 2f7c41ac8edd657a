//! `orchestra etcd`: orchestra's embedded store served over etcd's v3 gRPC API, so that
//! `etcdctl`, etcd clients and tools work against it; and `orchestra etcd snapshot
//! restore|status`, for the snapshots `etcdctl snapshot save` takes from it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use orchestra_store::snapshot::{Snapshot, SnapshotError};

/// `orchestra etcd --listen ADDR --data-dir DIR [--memory] [--cert-file F --key-file F
/// [--trusted-ca-file F]]`, or `orchestra etcd snapshot restore|status ...`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct EtcdArgs {
    /// Work on snapshots instead of serving.
    #[command(subcommand)]
    pub action: Option<EtcdAction>,
    /// The address to serve the etcd v3 API on.
    #[arg(long, default_value = "127.0.0.1:2379")]
    pub listen: SocketAddr,
    /// The durable store's data directory (created if missing).
    #[arg(long, required_unless_present = "memory")]
    pub data_dir: Option<PathBuf>,
    /// Serve an in-memory store instead: nothing survives a restart.
    #[arg(long, conflicts_with = "data_dir")]
    pub memory: bool,
    /// Serve HTTPS with this PEM certificate (chain); needs --key-file and a build with the
    /// `etcd-tls` feature.
    #[arg(long, value_name = "FILE", requires = "key_file")]
    pub cert_file: Option<PathBuf>,
    /// The PEM private key of --cert-file.
    #[arg(long, value_name = "FILE", requires = "cert_file")]
    pub key_file: Option<PathBuf>,
    /// Require client certificates signed by this PEM CA (etcd's --trusted-ca-file with
    /// --client-cert-auth).
    #[arg(long, value_name = "FILE", requires = "cert_file")]
    pub trusted_ca_file: Option<PathBuf>,
}

/// What `orchestra etcd` does instead of serving.
#[derive(Debug, Subcommand)]
pub enum EtcdAction {
    /// Snapshots taken with `etcdctl snapshot save` from `orchestra etcd`.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
}

/// `orchestra etcd snapshot restore|status`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Make a new data directory from a snapshot (the directory must not hold a store);
    /// then serve it with `orchestra etcd --data-dir DIR`.
    Restore {
        /// The snapshot file.
        file: PathBuf,
        /// The new data directory.
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Check a snapshot and print its revision, keys, leases and checksum as one JSON line.
    Status {
        /// The snapshot file.
        file: PathBuf,
    },
}

/// Why a snapshot command failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotCommandError {
    /// The restore failed; the data directory was left without a store.
    #[error(transparent)]
    Restore(#[from] orchestra_store::disk::RestoreError),
    /// The snapshot could not be read.
    #[error("{file}: {source}")]
    Read {
        /// The snapshot file.
        file: PathBuf,
        /// What was wrong.
        #[source]
        source: SnapshotError,
    },
}

/// Run a snapshot command, printing its one-line result to `out`.
pub async fn run_snapshot(
    command: SnapshotCommand,
    out: &mut impl std::io::Write,
) -> Result<(), SnapshotCommandError> {
    match command {
        SnapshotCommand::Restore { file, data_dir } => {
            let restored = orchestra_store::DiskStore::restore(&file, &data_dir).await?;
            let _ = writeln!(
                out,
                "restored revision {} ({} keys, {} leases) into {}",
                restored.revision,
                restored.keys,
                restored.leases,
                data_dir.display()
            );
        }
        SnapshotCommand::Status { file } => {
            let snapshot = read(&file)?;
            let bytes = std::fs::metadata(&file).map_or(0, |m| m.len());
            let _ = writeln!(
                out,
                "{{\"revision\":{},\"keys\":{},\"leases\":{},\"bytes\":{bytes},\"sha256\":\"{}\"}}",
                snapshot.revision,
                snapshot.kvs.len(),
                snapshot.leases.len(),
                snapshot.checksum()
            );
        }
    }
    Ok(())
}

fn read(file: &Path) -> Result<Snapshot, SnapshotCommandError> {
    Snapshot::read_file(file).map_err(|source| SnapshotCommandError::Read {
        file: file.to_path_buf(),
        source,
    })
}

impl EtcdArgs {
    /// The server's run options.
    pub fn run_options(self) -> orchestra_store::etcd::server::RunOptions {
        orchestra_store::etcd::server::RunOptions {
            listen: self.listen,
            data_dir: self.data_dir.unwrap_or_default(),
            memory: self.memory,
            server: Default::default(),
            tls_files: match (self.cert_file, self.key_file) {
                (Some(cert_file), Some(key_file)) => {
                    Some(orchestra_store::etcd::server::TlsFiles {
                        cert_file,
                        key_file,
                        trusted_ca_file: self.trusted_ca_file,
                    })
                }
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn etcd_args(line: &[&str]) -> Result<EtcdArgs, clap::Error> {
        let cli = Cli::try_parse_from(["orchestra", "etcd"].iter().chain(line))?;
        // Other commands exist: the last arm is reachable only with them.
        #[allow(unreachable_patterns)]
        match cli.command {
            Command::Etcd(args) => Ok(args),
            other => panic!("`etcd` parsed as {other:?}"),
        }
    }

    #[test]
    fn tls_flags_become_the_files_to_read() {
        let args = etcd_args(&[
            "--memory",
            "--cert-file",
            "server.pem",
            "--key-file",
            "server-key.pem",
            "--trusted-ca-file",
            "ca.pem",
        ])
        .unwrap();
        let files = args.run_options().tls_files.expect("TLS files");
        assert_eq!(files.cert_file, PathBuf::from("server.pem"));
        assert_eq!(files.key_file, PathBuf::from("server-key.pem"));
        assert_eq!(files.trusted_ca_file, Some(PathBuf::from("ca.pem")));
        assert!(
            etcd_args(&["--memory"])
                .unwrap()
                .run_options()
                .tls_files
                .is_none()
        );
    }

    #[test]
    fn snapshot_subcommands_parse_without_serving_flags() {
        let args = etcd_args(&["snapshot", "restore", "snap.db", "--data-dir", "new"]).unwrap();
        match args.action {
            Some(EtcdAction::Snapshot(SnapshotCommand::Restore { file, data_dir })) => {
                assert_eq!(file, PathBuf::from("snap.db"));
                assert_eq!(data_dir, PathBuf::from("new"));
            }
            other => panic!("parsed as {other:?}"),
        }
        assert!(etcd_args(&["snapshot", "status", "snap.db"]).is_ok());
        assert!(etcd_args(&["snapshot", "restore", "snap.db"]).is_err());
        // Serving still needs a data directory or --memory.
        assert!(etcd_args(&[]).is_err());
        assert!(etcd_args(&["--data-dir", "d"]).unwrap().action.is_none());
    }

    #[tokio::test]
    async fn restore_then_status_of_a_saved_snapshot() {
        use orchestra_store::{MemStore, StoreExt};
        let store = MemStore::new();
        store.put("a", "1").await.unwrap();
        let snapshot = orchestra_store::snapshot::capture(&store).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("snap.db");
        std::fs::write(&file, snapshot.encode()).unwrap();

        let mut out = Vec::new();
        run_snapshot(SnapshotCommand::Status { file: file.clone() }, &mut out)
            .await
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("{\"revision\":2,\"keys\":1,\"leases\":0,"),
            "{text}"
        );
        assert!(text.contains(&snapshot.checksum()), "{text}");

        let data_dir = dir.path().join("restored");
        let mut out = Vec::new();
        let restore = SnapshotCommand::Restore {
            file: file.clone(),
            data_dir: data_dir.clone(),
        };
        run_snapshot(restore, &mut out).await.unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .starts_with("restored revision 2 (1 keys")
        );
        let restored = orchestra_store::DiskStore::open(&data_dir).await.unwrap();
        assert_eq!(
            restored.get("a").await.unwrap().unwrap().value.as_ref(),
            b"1"
        );

        std::fs::write(&file, b"not a snapshot").unwrap();
        let err = run_snapshot(SnapshotCommand::Status { file }, &mut Vec::new())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("not an orchestra snapshot"),
            "{err}"
        );
    }

    #[test]
    fn a_certificate_needs_its_key_and_a_client_ca_needs_a_certificate() {
        for bad in [
            &["--memory", "--cert-file", "c.pem"][..],
            &["--memory", "--key-file", "k.pem"],
            &["--memory", "--trusted-ca-file", "ca.pem"],
        ] {
            assert!(etcd_args(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
