//! `orchestra etcd`: orchestra's embedded store served over etcd's v3 gRPC API, so that
//! `etcdctl`, etcd clients and tools work against it.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;

/// `orchestra etcd --listen ADDR --data-dir DIR [--memory] [--cert-file F --key-file F
/// [--trusted-ca-file F]]`.
#[derive(Debug, Args)]
pub struct EtcdArgs {
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
