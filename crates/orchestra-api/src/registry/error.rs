//! [`ApiError`]: what the registry and every [`Client`](crate::client::Client) return, shaped
//! like Kubernetes' `Status` (an HTTP code and a `reason`), so that callers branch on the kind of
//! failure (retry on [`ApiError::Conflict`], re-list on [`ApiError::Expired`]) and people read
//! a message that says what to do.

use orchestra_store::StoreError;

use crate::validation::ErrorList;

/// The largest stored object, as Kubernetes (etcd's request limit): 1.5 MiB of JSON.
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;

/// A failed API request, with Kubernetes' status code ([`ApiError::code`]) and reason
/// ([`ApiError::reason`]).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The object does not exist (404 `NotFound`).
    #[error("{kind} {name:?} not found")]
    NotFound {
        /// The kind, e.g. `Pod`.
        kind: &'static str,
        /// `namespace/name`, or the name of a cluster-scoped object.
        name: String,
    },
    /// An object with this name exists already (409 `AlreadyExists`).
    #[error("{kind} {name:?} already exists; update it, or delete it first")]
    AlreadyExists {
        /// The kind, e.g. `Pod`.
        kind: &'static str,
        /// `namespace/name`, or the name of a cluster-scoped object.
        name: String,
    },
    /// A precondition failed: a stale resourceVersion, or a pod bound already (409 `Conflict`).
    #[error("{0}")]
    Conflict(String),
    /// The request is refused by policy, e.g. admission: a create in a namespace that does not
    /// exist or is terminating, the deletion of a system namespace (403 `Forbidden`).
    #[error("{0}")]
    Forbidden(String),
    /// The object failed validation (422 `Invalid`); the list names each field.
    #[error("{kind} {name:?} is invalid: {errors}")]
    Invalid {
        /// The kind, e.g. `Pod`.
        kind: &'static str,
        /// The object's name (may be empty when it had none).
        name: String,
        /// Every field that is wrong, by path.
        errors: ErrorList,
    },
    /// The resourceVersion asked for was compacted away (410 `Expired`, HTTP Gone): list again
    /// and watch from the list's resourceVersion.
    #[error("{0}")]
    Expired(String),
    /// The request itself is malformed: a bad selector, resourceVersion, continue token or patch
    /// (400 `BadRequest`).
    #[error("{0}")]
    BadRequest(String),
    /// The encoded object is over [`MAX_OBJECT_BYTES`] (413 `RequestEntityTooLarge`).
    #[error(
        "{kind} {name:?} is {size} bytes encoded, over the limit of {limit} bytes; keep large data out of objects"
    )]
    TooLarge {
        /// The kind, e.g. `ConfigMap`.
        kind: &'static str,
        /// The object's name.
        name: String,
        /// The encoded size in bytes.
        size: usize,
        /// The limit, [`MAX_OBJECT_BYTES`].
        limit: usize,
    },
    /// The client is over a limit of the API server: its request rate or its open watches
    /// (429 `TooManyRequests`). Wait `retry_after_seconds`, then try again.
    #[error("{message}")]
    TooManyRequests {
        /// What limit, for people.
        message: String,
        /// How long to wait before trying again, in seconds (at least 1).
        retry_after_seconds: u64,
    },
    /// The store failed (500 `InternalError`).
    #[error("internal error: {0}")]
    Internal(#[source] StoreError),
}

impl ApiError {
    /// The HTTP status code Kubernetes answers with.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict(_) => 409,
            ApiError::Forbidden(_) => 403,
            ApiError::Invalid { .. } => 422,
            ApiError::Expired(_) => 410,
            ApiError::BadRequest(_) => 400,
            ApiError::TooLarge { .. } => 413,
            ApiError::TooManyRequests { .. } => 429,
            ApiError::Internal(_) => 500,
        }
    }

    /// The `reason` of Kubernetes' `Status` object.
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict(_) => "Conflict",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Expired(_) => "Expired",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::TooLarge { .. } => "RequestEntityTooLarge",
            ApiError::TooManyRequests { .. } => "TooManyRequests",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// Whether this is a [`ApiError::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, ApiError::NotFound { .. })
    }

    /// Whether this is a [`ApiError::Conflict`] (retry with a fresh read).
    pub fn is_conflict(&self) -> bool {
        matches!(self, ApiError::Conflict(_))
    }

    /// A stored value that does not decode: the store holds something this program cannot read.
    /// A stored object that cannot be read, with the whole reason given.
    pub(crate) fn corrupt_raw(key: &[u8], detail: String) -> Self {
        ApiError::Internal(StoreError::Corrupt {
            path: String::from_utf8_lossy(key).into_owned(),
            detail,
        })
    }

    pub(crate) fn corrupt(key: &[u8], detail: impl std::fmt::Display) -> Self {
        ApiError::Internal(StoreError::Corrupt {
            path: String::from_utf8_lossy(key).into_owned(),
            detail: format!("the stored object does not decode: {detail}"),
        })
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Compacted { .. } => {
                ApiError::Expired(format!("too old resource version: {err}"))
            }
            StoreError::FutureRevision { .. } => {
                ApiError::BadRequest(format!("too large resource version: {err}"))
            }
            other => ApiError::Internal(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_reasons_follow_kubernetes() {
        let gone = ApiError::from(StoreError::Compacted {
            requested: 1,
            compact_revision: 5,
        });
        assert_eq!((gone.code(), gone.reason()), (410, "Expired"));
        let conflict = ApiError::Conflict("stale".into());
        assert_eq!((conflict.code(), conflict.reason()), (409, "Conflict"));
        assert!(conflict.is_conflict());
        let big = ApiError::TooLarge {
            kind: "Pod",
            name: "a".into(),
            size: 2,
            limit: 1,
        };
        assert_eq!(big.code(), 413);
        let forbidden = ApiError::Forbidden("namespace gone".into());
        assert_eq!((forbidden.code(), forbidden.reason()), (403, "Forbidden"));
        let busy = ApiError::TooManyRequests {
            message: "slow down".into(),
            retry_after_seconds: 2,
        };
        assert_eq!((busy.code(), busy.reason()), (429, "TooManyRequests"));
        let internal = ApiError::from(StoreError::Closed);
        assert_eq!((internal.code(), internal.reason()), (500, "InternalError"));
    }
}
