//! [`EtcdOptions`]: where etcd is and how patiently to talk to it.

use std::time::Duration;

use crate::limits::Limits;

/// How [`EtcdStore::connect`](crate::etcd::EtcdStore::connect) reaches etcd.
///
/// ```
/// use std::time::Duration;
/// use orchestra_store::etcd::EtcdOptions;
/// let options = EtcdOptions::new(["http://127.0.0.1:2379", "http://127.0.0.1:22379"])
///     .with_request_timeout(Duration::from_secs(5));
/// assert_eq!(options.endpoints.len(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct EtcdOptions {
    /// The members' client URLs (`http://host:port`; a bare `host:port` means `http://`, or
    /// `https://` when [`tls`](Self::tls) is set). Requests go to one endpoint at a time and
    /// move to the next when it cannot be reached.
    pub endpoints: Vec<String>,
    /// How long to wait for a TCP (and TLS) connection to one endpoint.
    pub connect_timeout: Duration,
    /// How long one store operation may take, retries and failovers included.
    pub request_timeout: Duration,
    /// TLS to the endpoints; `None` for plain HTTP/2.
    pub tls: Option<EtcdTls>,
    /// The server's request limits (`--max-request-bytes`, `--max-txn-ops`; etcd's defaults
    /// unless set). Requests are checked against them before they are sent, so that a bad
    /// request fails with the same precise error as on the embedded stores.
    pub limits: Limits,
    /// How long a watch keeps trying to reconnect after losing its connection before it gives
    /// up with an error. While it reconnects, it delivers nothing and misses nothing.
    pub watch_reconnect_timeout: Duration,
    /// The HTTP/2 keep-alive ping interval, which finds dead connections that no packet
    /// reports (a host that vanished without closing its sockets).
    pub keep_alive_interval: Duration,
    /// HTTP/2 connections for requests to each endpoint (at least 1). Concurrent requests are
    /// multiplexed as streams on a connection; with many concurrent callers, a few connections
    /// spread the work of framing and flow control over more tasks (calls pick one
    /// round-robin). Watches always share one separate connection per endpoint.
    pub connections: usize,
}

impl Default for EtcdOptions {
    fn default() -> Self {
        EtcdOptions {
            endpoints: vec!["http://127.0.0.1:2379".to_string()],
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            tls: None,
            limits: Limits::default(),
            watch_reconnect_timeout: Duration::from_secs(60),
            keep_alive_interval: Duration::from_secs(10),
            connections: 1,
        }
    }
}

impl EtcdOptions {
    /// The default options for these endpoints.
    pub fn new<I, S>(endpoints: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        EtcdOptions {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// Set the connect timeout.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Set the request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Use TLS.
    pub fn with_tls(mut self, tls: EtcdTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Set the server's request limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Set the number of HTTP/2 connections for requests to each endpoint (0 counts as 1).
    pub fn with_connections(mut self, connections: usize) -> Self {
        self.connections = connections.max(1);
        self
    }

    /// Set how long a watch tries to reconnect.
    pub fn with_watch_reconnect_timeout(mut self, timeout: Duration) -> Self {
        self.watch_reconnect_timeout = timeout;
        self
    }
}

/// TLS settings for the connections to etcd (etcd's `--cert-file`, `--key-file`,
/// `--trusted-ca-file` on the server side). Needs the `etcd-tls` feature.
#[derive(Clone, Default)]
pub struct EtcdTls {
    /// PEM certificates of the CA that signed the servers' certificates; `None`: the platform's
    /// roots are not loaded, so set this unless the servers' CA is added some other way.
    pub ca_pem: Option<Vec<u8>>,
    /// A PEM client certificate and its PEM private key, for servers that require client
    /// certificates (`--client-cert-auth`).
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name to verify the servers' certificates against, when it differs from the
    /// endpoints' host.
    pub domain: Option<String>,
}

impl std::fmt::Debug for EtcdTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the private key.
        f.debug_struct("EtcdTls")
            .field("ca_pem", &self.ca_pem.as_ref().map(|c| c.len()))
            .field("identity", &self.identity.is_some())
            .field("domain", &self.domain)
            .finish()
    }
}
