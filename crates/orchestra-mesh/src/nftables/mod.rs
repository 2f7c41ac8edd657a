//! [`NftablesProxy`]: the service proxy on the kernel's nftables, in the shape of
//! kube-proxy's nftables mode. The kernel DNATs service traffic to endpoints; no byte goes
//! through a process.
//!
//! Everything lives in table `inet orchestra` (see [`ruleset`] for its shape); nothing
//! outside it is read or written. On its first sync the proxy takes the table over: a table
//! left by a previous run is deleted and the whole ruleset is created afresh, in the same
//! transaction. Each later sync sends only what changed ([`plan`]): the chains of changed
//! service ports are flushed and refilled, map elements added or deleted, so the rules of
//! other services keep their handles and their counters.
//!
//! # A sync costs what changed
//! The proxy keeps what it programmed (`applied`: the table, with its entries shared with
//! the caller's, the owner of each frontend, the service ports per pick). A sync walks the
//! new table beside the applied one once (`diff`: an entry still shared is unchanged
//! without a look inside), then validates, plans and records only the changed service
//! ports: no whole-table validation, comparison of endpoints, or copy. Only a takeover (the
//! first sync, one after a failure, or one needing more pick chains) costs the whole table.
//!
//! A caller that knows which service ports it changed says so
//! ([`ServiceProxy::apply_changed`], [`NftablesProxy::sync_changed`]; the
//! [`ProxyFollower`](crate::ProxyFollower) does): then not even the walk is done, only a
//! lookup per changed key in each table (`diff::diff_keys`), and a sync does nothing at
//! all per unchanged service.
//!
//! # Why the `nft` binary's text input
//! Each sync is one batch of nft commands, applied by nft as one kernel transaction (all or
//! nothing); errors come back as nft's own messages, and the same binary the operator uses
//! to inspect the rules does the work. The proxy keeps one `nft -i` process (see below) for
//! its syncs, and runs `nft -f -`
//! for a batch too big for one line (a takeover of many services). Text rather than nft's JSON: nft 1.0.x's JSON cannot declare a map by `typeof`,
//! which the endpoint maps need (see [`ruleset`]), and the commands read as what an operator
//! would type. Netlink (`rustables`) would skip a process per sync and nft's userspace cache,
//! but hand-encodes expressions nft already knows (numgen, concatenations, dynamic set
//! updates) and is far less used; `rustables` also generates its bindings with bindgen
//! (libclang) at build time, and `nftnl` links the C libnftnl and libmnl. With the long-lived
//! nft process the time a netlink client would save is nft's parsing and its cache listing
//! (tables, chains and sets of the host: under a millisecond with this layout).
//!
//! # One nft process for the proxy's life
//! A `nft -f -` per sync costs a process start, nft's initialisation and, when its netlink
//! socket closes after a transaction that deleted something, a kernel wait for an RCU grace
//! period (nf_tables flushes the deleted objects' destruction on socket release): about 20
//! ms at 30,000 services for a 0.3 ms transaction. `session` keeps one `nft -i` and sends a
//! sync as one line (one transaction) followed by a marker line whose syntax error tells
//! where nft's answer ends. A session that breaks mid-batch is dropped (the next batch
//! starts another).
//!
//! A failed transaction (refused by nft, or lost with its session) leaves the proxy unsure
//! of what the kernel runs, so the next sync takes the table over.
//!
//! The cost of a sync is what nft fetches before it sends anything: for every `add rule` or
//! `add element`, nft 1.0.x lists all chains and sets of the host, and the kernel answers
//! the chain dump in time quadratic in the number of chains. The layout of [`ruleset`]
//! keeps the number of chains independent of the number of services (except for services
//! with ClientIP affinity) so that a one-service change stays cheap at 30,000 services;
//! `orchestra bench proxy --mode nftables` measures it.
//!
//! # Stale UDP flows
//! A UDP client keeps its conntrack entry (and so its DNAT to one endpoint) as long as it
//! keeps sending. When an endpoint leaves a UDP service, the proxy runs the `conntrack`
//! tool (`conntrack -D -p udp --orig-dst CLUSTER_IP --orig-port-dst PORT --dst-nat
//! ENDPOINT`, and the same for the NodePort) after the rules are in force, so the next
//! datagram is balanced afresh. The tool is used rather than conntrack netlink for the same
//! reason as nft: a few calls per endpoint removal do not justify hand-written netlink.
//!
//! # Network namespaces
//! [`NftablesProxyConfig::command_prefix`] runs both tools behind a prefix such as
//! `nsenter --net=/run/netns/NODE` ([`NftablesProxyConfig::in_netns`]; a few ms cheaper per
//! run than `ip netns exec`, which also remounts /sys), so a test or a benchmark can program
//! the proxy of a namespace it created without this process entering it.
//!
//! # Layout
//! - this file: [`NftablesProxy`], [`NftablesProxyConfig`], [`SyncReport`].
//! - [`ruleset`]: the table's skeleton and each service port's objects (pure).
//! - `diff`: the service ports that changed since the table applied last.
//! - `applied`: what the proxy programmed, updated by each sync's changes.
//! - [`plan`]: the incremental transaction for those changes (pure).
//! - `validate`: refusing a bad table (or bad changes) before anything is sent.
//! - `command`: running `nft` and `conntrack`.
//! - `session`: the long-lived `nft -i`.
//! - [`NftError`]: the errors.

mod applied;
pub(crate) mod command;
mod diff;
mod error;
pub mod plan;
pub mod ruleset;
mod session;
mod validate;

#[cfg(test)]
mod incremental_tests;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Mutex;
use tracing::{debug, warn};

pub use error::NftError;
pub use plan::StaleFlows;
pub use ruleset::TABLE;

use crate::proxy::{ProxyError, ServiceProxy};
use crate::table::{ServiceKey, ServiceTable};

/// Settings of an [`NftablesProxy`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NftablesProxyConfig {
    /// The `nft` binary (default `nft`, found on PATH).
    pub nft: PathBuf,
    /// The `conntrack` binary (default `conntrack`).
    pub conntrack: PathBuf,
    /// Words run before either tool (default none; `nsenter --net=/run/netns/NODE`
    /// programs the namespace NODE).
    pub command_prefix: Vec<OsString>,
    /// The packet mark bit that asks for masquerade (default `0x4000`, kube-proxy's).
    pub masquerade_mark: u32,
    /// Keep one `nft -i` process and send it every sync of up to 1 MiB of script (default
    /// `true`); `false`: one `nft -f -` per sync.
    pub long_lived_nft: bool,
}

impl Default for NftablesProxyConfig {
    fn default() -> Self {
        NftablesProxyConfig {
            nft: PathBuf::from("nft"),
            conntrack: PathBuf::from("conntrack"),
            command_prefix: Vec::new(),
            masquerade_mark: 0x4000,
            long_lived_nft: true,
        }
    }
}

impl NftablesProxyConfig {
    /// The default settings, with both tools run inside network namespace `netns`, as
    /// `ip netns` names it (`nsenter --net=/run/netns/NETNS ...`).
    pub fn in_netns(netns: &str) -> Self {
        NftablesProxyConfig {
            command_prefix: vec![
                OsString::from("nsenter"),
                OsString::from(format!("--net=/run/netns/{netns}")),
            ],
            ..NftablesProxyConfig::default()
        }
    }
}

/// What one sync did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Service ports added, changed or removed.
    pub changed_ports: usize,
    /// nft commands in the transaction (0: nothing to do, nft was not run).
    pub commands: usize,
    /// Bytes of nft script sent.
    pub payload_bytes: usize,
    /// How long nft took to apply the transaction (from sending the batch to its answer).
    pub nft_time: Duration,
    /// Conntrack entries of stale UDP flows deleted.
    pub flushed_flows: u64,
}

/// The nftables service proxy (see the [module docs](self)).
///
/// ```no_run
/// use orchestra_mesh::nftables::{NftablesProxy, NftablesProxyConfig};
/// use orchestra_mesh::{ServiceProxy, ServiceTable};
///
/// # async fn example() -> Result<(), orchestra_mesh::ProxyError> {
/// let proxy = NftablesProxy::new(NftablesProxyConfig::in_netns("node-1"));
/// proxy.apply(&ServiceTable::new()).await?; // takes table `inet orchestra` over
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct NftablesProxy {
    /// The settings.
    config: NftablesProxyConfig,
    /// What the kernel runs, as far as this proxy knows.
    state: Mutex<State>,
}

/// What the proxy has programmed.
#[derive(Debug, Default)]
struct State {
    /// The table in force and what the next sync needs to know of it; `None` until the
    /// first successful sync (which takes over), and after a failed one.
    applied: Option<applied::Applied>,
    /// Stale UDP flows whose flush failed, tried again by the next sync.
    pending_flush: Vec<StaleFlows>,
    /// The long-lived nft, once started.
    session: Option<session::Session>,
}

impl Default for NftablesProxy {
    fn default() -> Self {
        NftablesProxy::new(NftablesProxyConfig::default())
    }
}

impl NftablesProxy {
    /// A proxy that has programmed nothing yet (its first sync takes the table over).
    pub fn new(config: NftablesProxyConfig) -> Self {
        NftablesProxy {
            config,
            state: Mutex::new(State::default()),
        }
    }

    /// Its settings.
    pub fn config(&self) -> &NftablesProxyConfig {
        &self.config
    }

    /// Applies `table` (see [`ServiceProxy::apply`]) and reports what the sync did.
    pub async fn sync(&self, table: &ServiceTable) -> Result<SyncReport, NftError> {
        self.sync_with(table, None).await
    }

    /// Applies `table`, which differs from the table of the last sync that succeeded in the
    /// entries of `changed` alone (see [`ServiceProxy::apply_changed`]), and reports what the
    /// sync did. Only those entries are compared: nothing is done per unchanged service.
    pub async fn sync_changed(
        &self,
        table: &ServiceTable,
        changed: &BTreeSet<ServiceKey>,
    ) -> Result<SyncReport, NftError> {
        self.sync_with(table, Some(changed)).await
    }

    /// A sync, given the keys that changed (`None`: found by walking both tables).
    async fn sync_with(
        &self,
        table: &ServiceTable,
        changed: Option<&BTreeSet<ServiceKey>>,
    ) -> Result<SyncReport, NftError> {
        let mut state = self.state.lock().await;
        let changes = match &state.applied {
            Some(applied) => {
                let changes = match changed {
                    Some(keys) => diff::diff_keys(&applied.table, table, keys),
                    None => diff::diff(&applied.table, table),
                };
                applied.frontends.validate_changes(&changes, table)?;
                changes
            }
            None => {
                validate::validate(table)?;
                Vec::new()
            }
        };
        let plan = plan::plan(
            state.applied.as_ref(),
            table,
            changes,
            self.config.masquerade_mark,
        );
        let mut report = SyncReport {
            changed_ports: plan.changed_ports,
            commands: plan.commands.len(),
            ..SyncReport::default()
        };
        if !plan.commands.is_empty() {
            report.payload_bytes = plan.commands.iter().map(|c| c.len() + 1).sum();
            let started = Instant::now();
            if let Err(error) =
                command::apply(&self.config, &mut state.session, &plan.commands).await
            {
                // nft refused the batch (the table was changed behind the proxy's back?) or
                // its session broke mid-batch (outcome unknown): either way the proxy no
                // longer knows what the kernel runs, and the next sync takes the table over.
                state.applied = None;
                return Err(error);
            }
            report.nft_time = started.elapsed();
            debug!(ports = report.changed_ports, commands = report.commands, nft_time = ?report.nft_time, "nftables synced");
        }
        match (plan.then, &mut state.applied) {
            (plan::Then::Changed(changes), Some(applied)) => applied.apply(&changes),
            // A takeover (the only plan without an applied table) costs the whole table
            // anyway; the copy shares the entries.
            _ => state.applied = Some(applied::Applied::new(table.clone(), plan.picks_upto)),
        }
        let mut flows = std::mem::take(&mut state.pending_flush);
        flows.extend(plan.stale);
        let mut first_error = None;
        for flow in flows {
            match command::flush_conntrack(&self.config, &flow).await {
                Ok(n) => report.flushed_flows += n,
                Err(error) => {
                    warn!(%error, "stale UDP flows not flushed; the next sync tries again");
                    state.pending_flush.push(flow);
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(report),
        }
    }

    /// Deletes table `inet orchestra` (if it exists) and forgets what was programmed: the
    /// next sync takes over again.
    pub async fn delete_table(&self) -> Result<(), NftError> {
        let mut state = self.state.lock().await;
        let commands = ruleset::delete_table();
        let applied = command::apply(&self.config, &mut state.session, &commands).await;
        // Whatever happened, the next sync takes the table over.
        state.applied = None;
        applied
    }
}

#[async_trait]
impl ServiceProxy for NftablesProxy {
    async fn apply(&self, table: &ServiceTable) -> Result<(), ProxyError> {
        self.sync(table).await?;
        Ok(())
    }

    async fn apply_changed(
        &self,
        table: &ServiceTable,
        changed: &BTreeSet<ServiceKey>,
    ) -> Result<(), ProxyError> {
        self.sync_changed(table, changed).await?;
        Ok(())
    }
}
