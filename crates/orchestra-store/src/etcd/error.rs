//! Errors of the etcd client: [`EtcdError`] for setting up the connection, and how etcd's gRPC
//! errors are read (which are etcd's verdicts on a request, which leave its outcome unknown,
//! and which prove it was never processed and may be sent again).

use tonic::{Code, Status};

use crate::error::StoreError;

/// Why [`EtcdStore::connect`](crate::etcd::EtcdStore::connect) failed.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// No endpoint was given.
    #[error("no etcd endpoint given: pass at least one client URL such as http://127.0.0.1:2379")]
    NoEndpoints,
    /// An endpoint is not a valid URL.
    #[error("etcd endpoint {endpoint:?} is not a valid URL: {source}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// What the URL parser said.
        #[source]
        source: tonic::transport::Error,
    },
    /// TLS was asked for, but this build cannot do it.
    #[error(
        "TLS to etcd needs orchestra-store's `etcd-tls` feature, which this build does not have; rebuild with it or use http:// endpoints"
    )]
    TlsUnsupported,
    /// The TLS settings were rejected.
    #[error("invalid TLS settings for etcd endpoint {endpoint:?}: {source}")]
    Tls {
        /// The endpoint.
        endpoint: String,
        /// The underlying error.
        #[source]
        source: tonic::transport::Error,
    },
    /// No endpoint answered.
    #[error(
        "no etcd endpoint answered ({detail}); check that etcd runs and listens on the given client URLs"
    )]
    Unreachable {
        /// What each endpoint answered.
        detail: String,
    },
}

impl From<EtcdError> for StoreError {
    fn from(err: EtcdError) -> Self {
        match err {
            EtcdError::Unreachable { .. } => StoreError::Io(err.to_string()),
            other => StoreError::Other(other.to_string()),
        }
    }
}

/// What an error from a call says about the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// etcd processed the request and refused it: map it to a [`StoreError`], never retry.
    Refused(Refusal),
    /// The request never reached etcd (the connection could not be made): retry anywhere.
    NotSent,
    /// etcd did not process the request (no leader, too busy, proposal dropped): retry, after
    /// a pause, here or elsewhere.
    NotProcessed,
    /// The outcome is unknown (the connection broke, or the server timed out while the
    /// request was in flight): only a request that is safe to repeat may be retried.
    Unknown,
}

/// etcd's verdicts that map to a precise [`StoreError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// "required revision has been compacted".
    Compacted,
    /// "required revision is a future revision".
    FutureRevision,
    /// "requested lease not found".
    LeaseNotFound,
    /// "request is too large", or a gRPC message over the server's size limit.
    TooLarge,
    /// "too many operations in txn request".
    TooManyOps,
    /// "duplicate key given in txn request".
    DuplicateKey,
    /// "key is not provided".
    EmptyKey,
    /// "too large lease TTL".
    TtlTooLarge,
    /// "lease already exists" (a grant with a chosen id).
    LeaseExists,
    /// Any other error: reported as [`StoreError::Other`] with etcd's message.
    Other,
}

/// Read a gRPC status from etcd (or from the transport on the way to it).
pub(crate) fn classify(status: &Status) -> Failure {
    let message = status.message();
    if let Some(etcd) = message.strip_prefix("etcdserver: ") {
        let refusal = match etcd {
            "mvcc: required revision has been compacted" => Refusal::Compacted,
            "mvcc: required revision is a future revision" => Refusal::FutureRevision,
            "requested lease not found" => Refusal::LeaseNotFound,
            "request is too large" => Refusal::TooLarge,
            "too many operations in txn request" => Refusal::TooManyOps,
            "duplicate key given in txn request" => Refusal::DuplicateKey,
            "key is not provided" => Refusal::EmptyKey,
            "too large lease TTL" => Refusal::TtlTooLarge,
            "lease already exists" => Refusal::LeaseExists,
            "no leader" | "too many requests" | "not capable" => return Failure::NotProcessed,
            "leader changed"
            | "request timed out"
            | "request timed out, possibly due to previous leader failure"
            | "request timed out, possibly due to connection lost"
            | "request timed out, waiting for the applied index took too long"
            | "server stopped"
            | "unhealthy cluster" => return Failure::Unknown,
            _ => Refusal::Other,
        };
        return Failure::Refused(refusal);
    }
    if message.contains("proposal dropped") {
        return Failure::NotProcessed;
    }
    if status.code() == Code::ResourceExhausted && message.contains("larger than max") {
        return Failure::Refused(Refusal::TooLarge);
    }
    match status.code() {
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Internal | Code::Aborted => {
            if never_connected(status) {
                Failure::NotSent
            } else {
                Failure::Unknown
            }
        }
        _ => Failure::Refused(Refusal::Other),
    }
}

/// True when the error comes from making the connection, so the request was never sent.
fn never_connected(status: &Status) -> bool {
    let mut chain = String::from(status.message());
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        let refused = err.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::AddrNotAvailable
                    | std::io::ErrorKind::NotFound
            )
        });
        if refused {
            return true;
        }
        chain.push_str(": ");
        chain.push_str(&err.to_string());
        source = err.source();
    }
    let chain = chain.to_ascii_lowercase();
    chain.contains("error trying to connect")
        || chain.contains("tcp connect error")
        || chain.contains("connection refused")
        || chain.contains("dns error")
}

/// A status as text, with its sources (tonic keeps the transport's reason there).
pub(crate) fn describe(status: &Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        let next = err.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = err.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_etcds_errors() {
        let compacted =
            Status::out_of_range("etcdserver: mvcc: required revision has been compacted");
        assert_eq!(classify(&compacted), Failure::Refused(Refusal::Compacted));
        let no_leader = Status::unavailable("etcdserver: no leader");
        assert_eq!(classify(&no_leader), Failure::NotProcessed);
        let timeout = Status::unavailable("etcdserver: request timed out");
        assert_eq!(classify(&timeout), Failure::Unknown);
        let big = Status::resource_exhausted("grpc: received message larger than max (3 vs. 2)");
        assert_eq!(classify(&big), Failure::Refused(Refusal::TooLarge));
        let refused = Status::unavailable("tcp connect error: Connection refused (os error 111)");
        assert_eq!(classify(&refused), Failure::NotSent);
        let reset = Status::unavailable("transport error");
        assert_eq!(classify(&reset), Failure::Unknown);
        let odd = Status::invalid_argument("etcdserver: something new");
        assert_eq!(classify(&odd), Failure::Refused(Refusal::Other));
    }
}
