//! `orchestra sidecar init`: what a meshed pod's init container runs (Linkerd's
//! proxy-init). It applies table `inet orchestra-mesh` (orchestra-mesh's `redirect`) in the
//! current network namespace, so that the pod's outbound TCP reaches the sidecar's outbound
//! listener and its inbound TCP the inbound listener, then exits. It needs CAP_NET_ADMIN in
//! the pod's namespace and the `nft` binary; running it again replaces the table.
//!
//! The flags are named after proxy-init's where they mean the same (`--inbound-port`,
//! `--outbound-port`, `--proxy-uid`, `--skip-inbound-ports`, `--skip-outbound-ports`).

use std::path::PathBuf;

use clap::Args;
use orchestra_mesh::nftables::NftablesProxyConfig;
use orchestra_mesh::redirect::{self, PortList, PortRange, RedirectConfig, RedirectError};

/// `orchestra sidecar init --proxy-uid UID [--inbound-port P] [--outbound-port P]
/// [--skip-inbound-ports LIST] [--skip-outbound-ports LIST] [--admin-port P] [--dry-run]`.
#[derive(Debug, Args)]
pub struct SidecarInitArgs {
    /// The uid the sidecar runs as: its own connections are not redirected (they would
    /// come back to it).
    #[arg(long)]
    pub proxy_uid: u32,
    /// The sidecar's inbound listener port (its `--inbound`): the pod's inbound TCP goes
    /// there.
    #[arg(long, default_value_t = 4143)]
    pub inbound_port: u16,
    /// The sidecar's outbound listener port (its `--outbound`, on loopback): the pod's
    /// outbound TCP goes there.
    #[arg(long, default_value_t = 4140)]
    pub outbound_port: u16,
    /// Inbound ports not redirected, like 9000,9100-9110 (the sidecar's own ports and the
    /// admin port never are).
    #[arg(long, default_value = "", value_name = "PORTS")]
    pub skip_inbound_ports: PortList,
    /// Outbound destination ports not redirected, like 25,3306 (protocols the mesh must
    /// not touch).
    #[arg(long, default_value = "", value_name = "PORTS")]
    pub skip_outbound_ports: PortList,
    /// The sidecar's admin port (its `--admin`), never redirected, so that probes and
    /// `POST /shutdown` reach it.
    #[arg(long, default_value_t = 4191)]
    pub admin_port: u16,
    /// The nft binary.
    #[arg(long, default_value = "nft", value_name = "PATH")]
    pub nft: PathBuf,
    /// Print the nft script instead of applying it.
    #[arg(long)]
    pub dry_run: bool,
}

/// The redirect the flags ask for.
pub fn redirect_config(args: &SidecarInitArgs) -> RedirectConfig {
    let admin = PortList::new(PortRange::single(args.admin_port));
    RedirectConfig {
        inbound_port: args.inbound_port,
        outbound_port: args.outbound_port,
        proxy_uid: args.proxy_uid,
        skip_inbound_ports: args.skip_inbound_ports.union(&admin),
        skip_outbound_ports: args.skip_outbound_ports.clone(),
    }
}

/// Applies the table (or, with `--dry-run`, writes its script to `out`).
pub async fn run(
    args: SidecarInitArgs,
    out: &mut impl std::io::Write,
) -> Result<(), RedirectError> {
    let config = redirect_config(&args);
    if args.dry_run {
        let script = redirect::ruleset::script(&redirect::ruleset::commands(&config)?);
        // A closed stdout is the reader's business; the script was computed.
        let _ = out.write_all(script.as_bytes());
        return Ok(());
    }
    let nft = NftablesProxyConfig {
        nft: args.nft,
        ..NftablesProxyConfig::default()
    };
    redirect::apply(&config, &nft).await?;
    tracing::info!(
        inbound = config.inbound_port,
        outbound = config.outbound_port,
        proxy_uid = config.proxy_uid,
        skip_inbound = %config.skip_inbound_ports,
        skip_outbound = %config.skip_outbound_ports,
        "traffic redirection into the sidecar applied (table inet {})",
        redirect::ruleset::TABLE
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::sidecar::SidecarAction;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn init(extra: &[&str]) -> Result<SidecarInitArgs, clap::Error> {
        let argv = ["orchestra", "sidecar", "init"].iter().chain(extra);
        let cli = Cli::try_parse_from(argv)?;
        let Command::Sidecar(sidecar) = cli.command else {
            panic!("not the sidecar command: {cli:?}");
        };
        match sidecar.action {
            Some(SidecarAction::Init(args)) => Ok(args),
            None => panic!("init was not parsed as the subcommand"),
        }
    }

    #[test]
    fn the_flags_make_the_redirect_and_the_admin_port_is_always_skipped() {
        let args = init(&[
            "--proxy-uid",
            "2102",
            "--skip-inbound-ports",
            "9000,9100-9110",
            "--skip-outbound-ports",
            "25",
        ])
        .unwrap();
        let config = redirect_config(&args);
        assert_eq!(config.inbound_port, 4143);
        assert_eq!(config.outbound_port, 4140);
        assert_eq!(config.proxy_uid, 2102);
        assert_eq!(
            config.skip_inbound_ports.to_string(),
            "4191, 9000, 9100-9110"
        );
        assert_eq!(config.skip_outbound_ports.to_string(), "25");
        let bare = redirect_config(&init(&["--proxy-uid", "0", "--admin-port", "9990"]).unwrap());
        assert_eq!(bare.skip_inbound_ports.to_string(), "9990");
        assert!(bare.skip_outbound_ports.is_empty());
    }

    #[test]
    fn bad_flags_are_refused_with_the_reason() {
        let err = init(&["--proxy-uid", "2102", "--skip-outbound-ports", "25,smtp"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"smtp\" is not a port"), "{err}");
        let err = init(&[]).unwrap_err().to_string();
        assert!(err.contains("--proxy-uid"), "{err}");
    }

    #[test]
    fn the_sidecar_itself_still_parses_and_still_needs_its_namespace() {
        let cli = Cli::try_parse_from(["orchestra", "sidecar", "--namespace", "shop"]).unwrap();
        let Command::Sidecar(sidecar) = cli.command else {
            panic!("not the sidecar command");
        };
        assert!(sidecar.action.is_none());
        assert_eq!(sidecar.namespace.as_deref(), Some("shop"));
        // clap reads ORCHESTRA_POD_NAMESPACE too: the check holds only where it is not set.
        if std::env::var_os("ORCHESTRA_POD_NAMESPACE").is_none() {
            let err = Cli::try_parse_from(["orchestra", "sidecar"])
                .unwrap_err()
                .to_string();
            assert!(err.contains("--namespace"), "{err}");
        }
    }

    #[tokio::test]
    async fn dry_run_prints_the_script_and_applies_nothing() {
        let args = init(&[
            "--proxy-uid",
            "2102",
            "--dry-run",
            "--nft",
            "/nonexistent/nft",
        ])
        .unwrap();
        let mut out = Vec::new();
        run(args, &mut out).await.unwrap();
        let script = String::from_utf8(out).unwrap();
        assert!(
            script.contains("add rule inet orchestra-mesh output meta skuid 2102 return\n"),
            "{script}"
        );
        assert!(
            script.contains("tcp dport { 4140, 4143, 4191 } return"),
            "{script}"
        );
    }

    #[tokio::test]
    async fn a_failing_nft_is_an_error_that_names_it() {
        let args = init(&["--proxy-uid", "2102", "--nft", "/nonexistent/nft"]).unwrap();
        let err = run(args, &mut Vec::new()).await.unwrap_err();
        let text = crate::chain(&err);
        assert!(text.contains("inet orchestra-mesh"), "{text}");
        assert!(text.contains("/nonexistent/nft"), "{text}");
    }
}
