//! The [`ServiceProxy`] trait and its error, [`ProxyError`].

use std::collections::BTreeSet;
use std::net::SocketAddr;

use async_trait::async_trait;

use crate::table::{Protocol, ServiceKey, ServiceTable};

/// Something that routes service traffic according to a [`ServiceTable`].
///
/// `apply` takes the complete desired state every time; implementations apply only the
/// difference from what they run, so that a change to one service port leaves every other
/// service port's listeners and connections alone. Applying the same table twice is a no-op.
#[async_trait]
pub trait ServiceProxy: Send + Sync + 'static {
    /// Makes the proxy route exactly what `table` describes.
    ///
    /// When some service ports cannot be set up (an address that cannot be bound), the others
    /// are still applied and the error names the first failure; the failed ports are tried
    /// again by the next `apply`.
    async fn apply(&self, table: &ServiceTable) -> Result<(), ProxyError>;

    /// [`apply`](Self::apply), told which service ports changed: `table` differs from the
    /// table of this proxy's last `apply` or `apply_changed` that succeeded (an empty table
    /// before the first) in the entries of `changed` alone. Keys of `changed` that did not
    /// change, or that neither table has, are allowed; a changed key left out is a bug of
    /// the caller, and the proxy may then route by an outdated entry.
    ///
    /// A caller that keeps its table from one apply to the next (the
    /// [`ProxyFollower`](crate::ProxyFollower)) knows what it edited, so a proxy can look
    /// at those entries only and make a sync cost what changed rather than the size of the
    /// table (the `nftables` proxy does). The default applies the whole table.
    async fn apply_changed(
        &self,
        table: &ServiceTable,
        changed: &BTreeSet<ServiceKey>,
    ) -> Result<(), ProxyError> {
        let _ = changed;
        self.apply(table).await
    }
}

/// Why a proxy could not apply a table.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A listening socket could not be opened.
    #[error(
        "service port {key}: cannot listen on {protocol} {addr}: {source} (is the address configured on this host, and the port free?)"
    )]
    Bind {
        /// The service port.
        key: ServiceKey,
        /// The protocol.
        protocol: Protocol,
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The nftables proxy refused the table or could not program it.
    #[cfg(feature = "nftables")]
    #[error(transparent)]
    Nftables(#[from] crate::nftables::NftError),
    /// The proxy has been shut down.
    #[error("the proxy has been shut down")]
    Closed,
}
