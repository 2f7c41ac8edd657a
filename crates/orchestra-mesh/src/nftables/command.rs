//! Running `nft` and `conntrack`, optionally behind a command prefix (`nsenter
//! --net=/run/netns/NODE`), so that one process can program the proxy of another network
//! namespace (tests, benchmarks, a node agent that serves a node namespace).
//!
//! [`apply`] sends a transaction through the proxy's long-lived [`Session`] when it has one
//! (or can start one) and the batch is small; a takeover of many services, or a proxy
//! configured without sessions, runs one `nft -f -` ([`nft`]).

use std::ffi::{OsStr, OsString};

use std::process::Stdio;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::NftablesProxyConfig;
use super::error::NftError;
use super::plan::StaleFlows;
use super::ruleset::{Command as NftCommand, script};
use super::session::{self, Outcome, Session};

/// Applies `commands` as one transaction: through `session` (started if `None`, and
/// dropped when it breaks or has done enough work) when the configuration allows and the
/// batch is at most [`session::MAX_BATCH`] bytes; otherwise with one `nft -f -`.
pub(crate) async fn apply(
    config: &NftablesProxyConfig,
    session: &mut Option<Session>,
    commands: &[NftCommand],
) -> Result<(), NftError> {
    let payload = script(commands);
    let small = payload.len() <= session::MAX_BATCH;
    if !config.long_lived_nft || !small {
        return nft(config, &payload, commands.len()).await;
    }
    let program = config
        .command_prefix
        .first()
        .cloned()
        .unwrap_or_else(|| config.nft.clone().into_os_string());
    let failed = |detail: String| NftError::Nft {
        program: program.clone(),
        commands: commands.len(),
        detail,
    };
    if session.as_ref().is_some_and(Session::retired) {
        *session = None;
    }
    let live = match session {
        Some(live) => live,
        None => session
            .insert(Session::start(config).map_err(|e| failed(format!("starting nft -i: {e}")))?),
    };
    match live.apply(commands).await {
        Ok(Outcome::Applied) => Ok(()),
        Ok(Outcome::Refused(detail)) => Err(failed(detail)),
        Err(e) => {
            // The batch may or may not have been applied; the session cannot be trusted.
            *session = None;
            Err(failed(format!("nft -i: {e}")))
        }
    }
}

/// Runs one nft transaction: `[PREFIX...] nft -f -` with `payload` (commands, one a line) on
/// stdin. nft applies the whole batch or nothing, and names the line it refused on stderr.
pub(crate) async fn nft(
    config: &NftablesProxyConfig,
    payload: &str,
    commands: usize,
) -> Result<(), NftError> {
    let (program, args) = invocation(config, config.nft.as_os_str());
    let failed = |detail: String| NftError::Nft {
        program: program.clone(),
        commands,
        detail,
    };
    let mut child = Command::new(&program)
        .args(&args)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(e.to_string()))?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| failed("no stdin".to_owned()))?;
    // Written while nft reads, and closed so that nft sees the end of the batch.
    let write = async move {
        let result = stdin.write_all(payload.as_bytes()).await;
        drop(stdin);
        result
    };
    let (written, output) = tokio::join!(write, child.wait_with_output());
    let output = output.map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(failed(format!("{}: {}", output.status, stderr.trim())));
    }
    written.map_err(|e| failed(format!("writing the batch: {e}")))
}

/// Deletes the conntrack entries of `flows`: the UDP flows whose original destination is the
/// ClusterIP:port (or the NodePort) and that were DNATed to the removed endpoint. Returns how
/// many entries were deleted.
pub(crate) async fn flush_conntrack(
    config: &NftablesProxyConfig,
    flows: &StaleFlows,
) -> Result<u64, NftError> {
    let family = if flows.endpoint.is_ipv6() {
        "ipv6"
    } else {
        "ipv4"
    };
    let endpoint = flows.endpoint.to_string();
    let mut filters = vec![vec![
        "--orig-dst".to_owned(),
        flows.cluster_ip.to_string(),
        "--orig-port-dst".to_owned(),
        flows.port.to_string(),
    ]];
    if let Some(node_port) = flows.node_port {
        filters.push(vec!["--orig-port-dst".to_owned(), node_port.to_string()]);
    }
    let (program, prefix) = invocation(config, config.conntrack.as_os_str());
    let mut deleted = 0;
    for filter in filters {
        let output = Command::new(&program)
            .args(&prefix)
            .args(["-D", "-f", family, "-p", "udp"])
            .args(&filter)
            .args(["--dst-nat", &endpoint])
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|e| NftError::Conntrack {
                program: program.clone(),
                endpoint: flows.endpoint,
                detail: e.to_string(),
            })?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        // conntrack reports the count on stderr, and exits 1 when it deleted nothing.
        match deleted_count(&stderr) {
            Some(n) => deleted += n,
            None if output.status.success() => {}
            None => {
                return Err(NftError::Conntrack {
                    program,
                    endpoint: flows.endpoint,
                    detail: format!("{}: {}", output.status, stderr.trim()),
                });
            }
        }
    }
    Ok(deleted)
}

/// `N` from conntrack's "N flow entries have been deleted".
fn deleted_count(stderr: &str) -> Option<u64> {
    let (before, _) = stderr.split_once(" flow entries have been deleted")?;
    before.rsplit(' ').next()?.parse().ok()
}

/// The program and leading arguments for `tool`, after the configured prefix.
pub(crate) fn invocation(config: &NftablesProxyConfig, tool: &OsStr) -> (OsString, Vec<OsString>) {
    match config.command_prefix.split_first() {
        None => (tool.to_owned(), Vec::new()),
        Some((first, rest)) => {
            let mut args = rest.to_vec();
            args.push(tool.to_owned());
            (first.clone(), args)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conntrack_counts_are_read_from_its_report() {
        assert_eq!(
            deleted_count(
                "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been deleted.\n"
            ),
            Some(3)
        );
        assert_eq!(deleted_count("conntrack: unknown option\n"), None);
    }

    #[test]
    fn a_prefix_puts_the_tool_after_it() {
        let config = NftablesProxyConfig::in_netns("node-1");
        let (program, args) = invocation(&config, OsStr::new("nft"));
        assert_eq!(program, "nsenter");
        assert_eq!(args, ["--net=/run/netns/node-1", "nft"]);
        let (program, args) = invocation(&NftablesProxyConfig::default(), OsStr::new("nft"));
        assert_eq!(program, "nft");
        assert!(args.is_empty());
    }
}
