//! Kubernetes' `Status` object: how an API error looks on the wire (the body of an HTTP error
//! response, the details of a gRPC status, the object of a watch `ERROR` event), and the
//! conversions from and back to [`ApiError`] that keep code, reason, message and details
//! exact.
//!
//! Beyond Kubernetes' fields, a cause carries the field error's `value` and `detail`, and the
//! details of `RequestEntityTooLarge` carry `size` and `limit`, so that every [`ApiError`]
//! round-trips; Kubernetes clients ignore these extra fields.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::registry::ApiError;
use crate::validation::{ErrorList, ErrorType, FieldError};

/// Kubernetes' `Status` (`apiVersion: v1`, `kind: Status`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// Always `v1`.
    pub api_version: String,
    /// Always `Status`.
    pub kind: String,
    /// Empty list metadata, as Kubernetes sends it.
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
    /// `Success` or `Failure`.
    pub status: String,
    /// What happened, for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Why, for programs: `NotFound`, `Conflict`, `Expired`, ...
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// The object concerned and the field errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// The HTTP status code.
    pub code: u16,
}

/// The object an error is about, and its causes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusDetails {
    /// The object's name (`namespace/name` for namespaced objects).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The object's kind.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// One cause per invalid field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub causes: Vec<StatusCause>,
    /// orchestra: the encoded size of an object that is too large.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<usize>,
    /// orchestra: the size limit it broke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// How long a throttled client should wait before it tries again (Kubernetes' field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

/// One invalid field.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusCause {
    /// `FieldValueRequired`, `FieldValueInvalid`, ...
    pub reason: String,
    /// The whole error for people: `spec.containers: Required value`.
    pub message: String,
    /// The field's path.
    pub field: String,
    /// orchestra: the bad value, when the error has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// orchestra: the error's detail.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The display prefix of [`ApiError::Internal`], stripped when rebuilding it.
const INTERNAL_PREFIX: &str = "internal error: ";

impl Status {
    /// A `Failure` status without details.
    pub fn failure(code: u16, reason: &str, message: impl Into<String>) -> Self {
        Status {
            api_version: "v1".into(),
            kind: "Status".into(),
            metadata: serde_json::Map::new(),
            status: "Failure".into(),
            message: message.into(),
            reason: reason.into(),
            details: None,
            code,
        }
    }

    /// A `Success` status (what a pod binding answers).
    pub fn success(code: u16) -> Self {
        Status {
            status: "Success".into(),
            ..Status::failure(code, "", "")
        }
    }

    /// The status of an API error.
    pub fn from_error(err: &ApiError) -> Self {
        let mut status = Status::failure(err.code(), err.reason(), err.to_string());
        status.details = match err {
            ApiError::NotFound { kind, name } | ApiError::AlreadyExists { kind, name } => {
                Some(StatusDetails {
                    name: name.clone(),
                    kind: (*kind).to_owned(),
                    ..StatusDetails::default()
                })
            }
            ApiError::Invalid { kind, name, errors } => Some(StatusDetails {
                name: name.clone(),
                kind: (*kind).to_owned(),
                causes: errors.iter().map(cause).collect(),
                ..StatusDetails::default()
            }),
            ApiError::TooLarge {
                kind,
                name,
                size,
                limit,
            } => Some(StatusDetails {
                name: name.clone(),
                kind: (*kind).to_owned(),
                size: Some(*size),
                limit: Some(*limit),
                ..StatusDetails::default()
            }),
            ApiError::TooManyRequests {
                retry_after_seconds,
                ..
            } => Some(StatusDetails {
                retry_after_seconds: Some(*retry_after_seconds),
                ..StatusDetails::default()
            }),
            ApiError::Conflict(_)
            | ApiError::Forbidden(_)
            | ApiError::Expired(_)
            | ApiError::BadRequest(_)
            | ApiError::Internal(_) => None,
        };
        status
    }

    /// The API error this status stands for. `kind` is the kind the request was about: an
    /// error's kind is `&'static str`, so a kind named in the details that is neither `kind`
    /// nor a built-in one is reported as `kind`.
    pub fn into_error(self, kind: &'static str) -> ApiError {
        let details = self.details.unwrap_or_default();
        let kind = static_kind(&details.kind, kind);
        let name = details.name;
        match (self.reason.as_str(), self.code) {
            ("NotFound", _) => ApiError::NotFound { kind, name },
            ("AlreadyExists", _) => ApiError::AlreadyExists { kind, name },
            ("Conflict", _) => ApiError::Conflict(self.message),
            ("Forbidden", _) | (_, 403) => ApiError::Forbidden(self.message),
            ("Invalid", _) => {
                let mut errors = ErrorList::new();
                for cause in details.causes {
                    errors.push(field_error(cause));
                }
                ApiError::Invalid { kind, name, errors }
            }
            ("Expired" | "Gone", _) => ApiError::Expired(self.message),
            ("BadRequest", _) => ApiError::BadRequest(self.message),
            ("RequestEntityTooLarge", _) => ApiError::TooLarge {
                kind,
                name,
                size: details.size.unwrap_or_default(),
                limit: details.limit.unwrap_or(crate::registry::MAX_OBJECT_BYTES),
            },
            ("TooManyRequests", _) | (_, 429) => ApiError::TooManyRequests {
                message: self.message,
                retry_after_seconds: details.retry_after_seconds.unwrap_or(1),
            },
            (_, 400) => ApiError::BadRequest(self.message),
            (_, 409) => ApiError::Conflict(self.message),
            (_, 410) => ApiError::Expired(self.message),
            _ => {
                let message = self
                    .message
                    .strip_prefix(INTERNAL_PREFIX)
                    .map(str::to_owned)
                    .unwrap_or(self.message);
                ApiError::Internal(orchestra_store::StoreError::Other(message))
            }
        }
    }
}

impl From<&ApiError> for Status {
    fn from(err: &ApiError) -> Self {
        Status::from_error(err)
    }
}

impl From<ApiError> for Status {
    fn from(err: ApiError) -> Self {
        Status::from_error(&err)
    }
}

impl From<ApiError> for Box<Status> {
    fn from(err: ApiError) -> Self {
        Box::new(Status::from_error(&err))
    }
}

fn cause(error: &FieldError) -> StatusCause {
    StatusCause {
        reason: error.type_.reason().to_owned(),
        message: error.to_string(),
        field: error.field.clone(),
        value: error.value.clone(),
        detail: error.detail.clone(),
    }
}

fn field_error(cause: StatusCause) -> FieldError {
    let type_ = match cause.reason.as_str() {
        "FieldValueRequired" => ErrorType::Required,
        "FieldValueNotSupported" => ErrorType::NotSupported,
        "FieldValueDuplicate" => ErrorType::Duplicate,
        "FieldValueForbidden" => ErrorType::Forbidden,
        "FieldValueTooLong" => ErrorType::TooLong,
        "FieldValueTooMany" => ErrorType::TooMany,
        "FieldValueNotFound" => ErrorType::NotFound,
        _ => ErrorType::Invalid,
    };
    FieldError {
        type_,
        field: cause.field,
        value: cause.value,
        detail: cause.detail,
    }
}

/// The kinds an error may name besides the one a request was about.
const BUILT_IN_KINDS: [&str; 18] = [
    "Namespace",
    "Node",
    "Pod",
    "Service",
    "Endpoints",
    "Event",
    "ReplicaSet",
    "Deployment",
    "Lease",
    "ConfigMap",
    "Secret",
    "DaemonSet",
    "StatefulSet",
    "ControllerRevision",
    "Job",
    "PodGroup",
    "Binding",
    "",
];

fn static_kind(kind: &str, requested: &'static str) -> &'static str {
    if kind == requested {
        return requested;
    }
    BUILT_IN_KINDS
        .iter()
        .find(|known| **known == kind)
        .copied()
        .unwrap_or(requested)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::FieldPath;
    use orchestra_store::StoreError;

    fn round_trip(err: &ApiError, kind: &'static str) -> ApiError {
        let json = serde_json::to_vec(&Status::from_error(err)).expect("encode");
        let status: Status = serde_json::from_slice(&json).expect("decode");
        status.into_error(kind)
    }

    #[test]
    fn every_error_round_trips_with_code_reason_and_message() {
        let mut errors = ErrorList::new();
        errors.push(FieldError::required(
            &FieldPath::new("spec").child("containers"),
            "",
        ));
        errors.push(FieldError::invalid(
            &FieldPath::new("metadata").child("name"),
            "Not_Valid",
            "a lowercase RFC 1123 subdomain",
        ));
        let cases = [
            ApiError::NotFound {
                kind: "Pod",
                name: "default/web".into(),
            },
            ApiError::AlreadyExists {
                kind: "Node",
                name: "n1".into(),
            },
            ApiError::Conflict("the object has been modified".into()),
            ApiError::Forbidden("namespace shop is terminating".into()),
            ApiError::Invalid {
                kind: "Pod",
                name: "Not_Valid".into(),
                errors,
            },
            ApiError::Expired("too old resource version: 3".into()),
            ApiError::BadRequest("invalid labelSelector".into()),
            ApiError::TooLarge {
                kind: "Pod",
                name: "big".into(),
                size: 2_000_000,
                limit: 1_572_864,
            },
            ApiError::Internal(StoreError::Closed),
            ApiError::TooManyRequests {
                message: "too many requests from \"bob\"".into(),
                retry_after_seconds: 3,
            },
        ];
        for err in &cases {
            let back = round_trip(err, "Pod");
            assert_eq!(
                (back.code(), back.reason(), back.to_string()),
                (err.code(), err.reason(), err.to_string())
            );
        }
        assert!(matches!(
            round_trip(&cases[9], "Pod"),
            ApiError::TooManyRequests {
                retry_after_seconds: 3,
                ..
            }
        ));
        let back = round_trip(&cases[4], "Pod");
        match (&back, &cases[4]) {
            (ApiError::Invalid { errors: a, .. }, ApiError::Invalid { errors: b, .. }) => {
                assert_eq!(a, b)
            }
            _ => panic!("{back:?}"),
        }
    }

    #[test]
    fn a_custom_kind_keeps_the_requested_kind() {
        let err = ApiError::NotFound {
            kind: "Database",
            name: "default/orders".into(),
        };
        let back = round_trip(&err, "Database");
        assert!(matches!(
            back,
            ApiError::NotFound {
                kind: "Database",
                ..
            }
        ));
    }

    #[test]
    fn a_status_from_elsewhere_maps_by_code() {
        let status = Status::failure(410, "", "gone");
        assert!(matches!(status.into_error("Pod"), ApiError::Expired(m) if m == "gone"));
        let status = Status::failure(503, "ServiceUnavailable", "later");
        assert_eq!(status.into_error("Pod").code(), 500);
    }
}
