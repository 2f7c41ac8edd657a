//! The [`ServiceProxy`] trait and its error, [`ProxyError`].

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
