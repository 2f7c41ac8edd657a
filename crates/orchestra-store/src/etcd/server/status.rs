//! Store errors as etcd's gRPC statuses: the codes and messages etcd's clients recognise.

use tonic::Status;

use crate::error::StoreError;

/// etcd's message for a read or watch below the compact revision.
pub(crate) const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
/// etcd's message for a revision ahead of the store.
pub(crate) const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
/// etcd's message for an unknown lease.
pub(crate) const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
/// etcd's message for a request over the size limit.
pub(crate) const TOO_LARGE: &str = "etcdserver: request is too large";
/// etcd's message for an empty key.
pub(crate) const NO_KEY: &str = "etcdserver: key is not provided";
/// etcd's message for ignore_value/ignore_lease on an absent key.
pub(crate) const KEY_NOT_FOUND: &str = "etcdserver: key not found";

/// The gRPC status etcd answers the same failure with.
pub(crate) fn to_status(err: StoreError) -> Status {
    match err {
        StoreError::Compacted { .. } | StoreError::Lagged { .. } => Status::out_of_range(COMPACTED),
        StoreError::FutureRevision { .. } => Status::out_of_range(FUTURE_REV),
        StoreError::LeaseNotFound(_) => Status::not_found(LEASE_NOT_FOUND),
        StoreError::LeaseExists(_) => {
            Status::failed_precondition("etcdserver: lease already exists")
        }
        StoreError::RequestTooLarge { .. } => Status::invalid_argument(TOO_LARGE),
        StoreError::TooManyOps { .. } => {
            Status::invalid_argument("etcdserver: too many operations in txn request")
        }
        StoreError::DuplicateKey { .. } => {
            Status::invalid_argument("etcdserver: duplicate key given in txn request")
        }
        StoreError::EmptyKey => Status::invalid_argument(NO_KEY),
        StoreError::InvalidTtl { .. } => Status::out_of_range("etcdserver: too large lease TTL"),
        StoreError::InvalidRange { key, end } => Status::invalid_argument(format!(
            "orchestra: range end {end:?} is not after key {key:?}"
        )),
        StoreError::Closed => Status::unavailable("etcdserver: server stopped"),
        err @ (StoreError::Io(_) | StoreError::Failed(_) | StoreError::Locked { .. }) => {
            Status::unavailable(format!("orchestra: {err}"))
        }
        err => Status::unknown(format!("orchestra: {err}")),
    }
}

/// `Unimplemented`, naming what orchestra does not serve.
pub(crate) fn unsupported(what: &str) -> Status {
    Status::unimplemented(format!("orchestra: {what} is not supported by this server"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_to_etcds_codes_and_messages() {
        let s = to_status(StoreError::Compacted {
            requested: 1,
            compact_revision: 3,
        });
        assert_eq!(s.code(), tonic::Code::OutOfRange);
        assert_eq!(s.message(), COMPACTED);
        let s = to_status(StoreError::LeaseNotFound(7));
        assert_eq!(s.code(), tonic::Code::NotFound);
        assert_eq!(s.message(), LEASE_NOT_FOUND);
        assert_eq!(to_status(StoreError::EmptyKey).message(), NO_KEY);
    }
}
