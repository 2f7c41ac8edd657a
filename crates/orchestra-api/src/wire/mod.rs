//! What travels between the API server and its clients: the gRPC messages generated from
//! `proto/orchestra/api/v1/api.proto` ([`proto`]), and Kubernetes' [`Status`] object, which
//! carries an [`ApiError`] over both protocols (the body of an HTTP error, the details of a
//! gRPC status) so that the client rebuilds exactly the error the registry returned.
//!
//! # Layout
//! - [`proto`]: the generated messages, `api_client::ApiClient` and `api_server::ApiServer`.
//! - [`status`]: [`Status`], and its conversions from and to [`ApiError`].

pub mod status;

pub use status::{Status, StatusCause, StatusDetails};

use crate::registry::ApiError;
use crate::selector::{FieldSelector, Selector, SelectorError};

/// The gRPC messages and stubs of `orchestra.api.v1` (generated at build time by protox and
/// tonic-prost-build, see the crate's `build.rs`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/orchestra.api.v1.rs"));
}

/// How [`Selector::nothing`] travels (its display, which does not parse as a selector).
pub const NOTHING_SELECTOR: &str = "<nothing>";

/// A label selector as sent on the wire.
pub fn label_selector_text(selector: &Selector) -> String {
    selector.to_string()
}

/// Parses a label selector from the wire (`<nothing>` is [`Selector::nothing`]).
pub fn parse_label_selector(text: &str) -> Result<Selector, ApiError> {
    if text == NOTHING_SELECTOR {
        return Ok(Selector::nothing());
    }
    Selector::parse(text).map_err(|err| bad_selector("labelSelector", text, &err))
}

/// Parses a field selector from the wire.
pub fn parse_field_selector(text: &str) -> Result<FieldSelector, ApiError> {
    FieldSelector::parse(text).map_err(|err| bad_selector("fieldSelector", text, &err))
}

fn bad_selector(what: &str, text: &str, err: &SelectorError) -> ApiError {
    ApiError::BadRequest(format!("invalid {what} {text:?}: {err}"))
}

/// The grpc status code that stands for an HTTP status code of an [`ApiError`]; the exact
/// error travels in the details, this is for generic gRPC tooling.
pub fn grpc_code(http: u16) -> tonic::Code {
    match http {
        400 | 422 => tonic::Code::InvalidArgument,
        403 => tonic::Code::PermissionDenied,
        404 => tonic::Code::NotFound,
        409 => tonic::Code::Aborted,
        410 => tonic::Code::OutOfRange,
        413 | 429 => tonic::Code::ResourceExhausted,
        _ => tonic::Code::Internal,
    }
}

/// The gRPC metadata key of how long a throttled client should wait, in whole seconds (the
/// HTTP `Retry-After` header's name and value; the [`Status`] details carry it too).
pub const RETRY_AFTER_METADATA: &str = "retry-after";

/// An [`ApiError`] as a gRPC status: the code for tooling, the message, and the [`Status`]
/// JSON in the details; a 429 also carries [`RETRY_AFTER_METADATA`], for gRPC clients that
/// do not read orchestra's details.
pub fn to_grpc(err: &ApiError) -> tonic::Status {
    let status = Status::from_error(err);
    let details = serde_json::to_vec(&status).unwrap_or_default();
    let mut grpc = tonic::Status::with_details(
        grpc_code(err.code()),
        err.to_string(),
        bytes::Bytes::from(details),
    );
    if let ApiError::TooManyRequests {
        retry_after_seconds,
        ..
    } = err
    {
        grpc.metadata_mut().insert(
            RETRY_AFTER_METADATA,
            tonic::metadata::MetadataValue::from(*retry_after_seconds),
        );
    }
    grpc
}

/// The whole seconds of a status's [`RETRY_AFTER_METADATA`], when it has a valid one.
fn retry_after(status: &tonic::Status) -> Option<u64> {
    status
        .metadata()
        .get(RETRY_AFTER_METADATA)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The [`ApiError`] a gRPC status carries; a status without [`Status`] details (a transport
/// failure, a server that is not orchestra's) is an internal error naming the gRPC code.
/// `kind` names the kind the call was about, for errors whose kind is not a built-in one.
pub fn from_grpc(status: &tonic::Status, kind: &'static str) -> ApiError {
    match serde_json::from_slice::<Status>(status.details()) {
        Ok(decoded) if decoded.kind == "Status" => decoded.into_error(kind),
        // Throttled by a server (or proxy) that says only when to come back.
        _ if status.code() == tonic::Code::ResourceExhausted
            && let Some(seconds) = retry_after(status) =>
        {
            ApiError::TooManyRequests {
                message: status.message().to_owned(),
                retry_after_seconds: seconds.max(1),
            }
        }
        _ => ApiError::Internal(orchestra_store::StoreError::Other(format!(
            "the API server call failed ({:?}): {}",
            status.code(),
            status.message()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttled_status_carries_retry_after_in_metadata_and_details() {
        let err = ApiError::TooManyRequests {
            message: "too many requests from user \"bob\"".into(),
            retry_after_seconds: 7,
        };
        let status = to_grpc(&err);
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status.metadata().get(RETRY_AFTER_METADATA).unwrap(),
            "7",
            "the metadata says when to come back"
        );
        assert!(
            matches!(
                from_grpc(&status, "Pod"),
                ApiError::TooManyRequests { retry_after_seconds: 7, ref message } if *message == err.to_string()
            ),
            "{:?}",
            from_grpc(&status, "Pod")
        );
        // Other errors carry no retry-after.
        let forbidden = to_grpc(&ApiError::Forbidden("no".into()));
        assert!(forbidden.metadata().get(RETRY_AFTER_METADATA).is_none());
    }

    #[test]
    fn a_foreign_resource_exhausted_with_retry_after_is_too_many_requests() {
        let mut status = tonic::Status::resource_exhausted("slow down");
        status
            .metadata_mut()
            .insert(RETRY_AFTER_METADATA, "3".parse().unwrap());
        assert!(matches!(
            from_grpc(&status, "Pod"),
            ApiError::TooManyRequests { retry_after_seconds: 3, ref message } if message == "slow down"
        ));
        // Without it (or with a value that is not whole seconds) nothing says it may be retried.
        let mut status = tonic::Status::resource_exhausted("too big");
        assert!(matches!(from_grpc(&status, "Pod"), ApiError::Internal(_)));
        status
            .metadata_mut()
            .insert(RETRY_AFTER_METADATA, "soon".parse().unwrap());
        assert!(matches!(from_grpc(&status, "Pod"), ApiError::Internal(_)));
    }
}
