//! Enforcing a decision, the same way wherever a request is authorized (the API server, and
//! [`AuthorizedClient`](super::client::AuthorizedClient) for components inside its process):
//! an allowed write and every denial go to the audit sink, and a denial becomes a `Forbidden`
//! naming the user, the verb and the resource.

use std::time::SystemTime;

use super::{AuditEntry, AuditSink, Decision, RequestAttributes};
use crate::registry::ApiError;

/// Applies `decision` to `request`: `Ok` when allowed (a write is audited), else the
/// `Forbidden` error (audited with its reason). `NoOpinion` is a denial: nothing allowed it.
pub fn enforce(
    decision: Decision,
    request: RequestAttributes,
    audit: Option<&dyn AuditSink>,
) -> Result<(), ApiError> {
    let reason = match decision {
        Decision::Allow => {
            if request.verb.is_write() {
                record(audit, request, true, String::new());
            }
            return Ok(());
        }
        Decision::Deny(reason) => reason,
        Decision::NoOpinion => "no rule allows it".to_owned(),
    };
    let message = if reason.is_empty() {
        request.to_string()
    } else {
        format!("{request}: {reason}")
    };
    tracing::debug!(%message, "request denied");
    record(audit, request, false, reason);
    Err(ApiError::Forbidden(message))
}

fn record(
    audit: Option<&dyn AuditSink>,
    request: RequestAttributes,
    allowed: bool,
    reason: String,
) {
    if let Some(sink) = audit {
        sink.record(AuditEntry {
            time: SystemTime::now(),
            request,
            allowed,
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::audit::MemoryAuditSink;
    use crate::auth::{UserInfo, Verb};

    fn request(verb: Verb) -> RequestAttributes {
        RequestAttributes {
            user: UserInfo::new("bob", ["system:authenticated"]),
            verb,
            api_group: String::new(),
            resource: "pods".into(),
            subresource: None,
            namespace: Some("shop".into()),
            name: Some("web".into()),
        }
    }

    #[test]
    fn writes_and_denials_are_audited_and_denials_are_forbidden() {
        let audit = MemoryAuditSink::default();
        enforce(Decision::Allow, request(Verb::Get), Some(&audit)).unwrap();
        enforce(Decision::Allow, request(Verb::Delete), Some(&audit)).unwrap();
        let err = enforce(
            Decision::Deny("not today".into()),
            request(Verb::Update),
            Some(&audit),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "user \"bob\" cannot update resource \"pods\" named \"web\" in the namespace \"shop\": not today"
        );
        assert_eq!(err.code(), 403);
        let silent = enforce(Decision::NoOpinion, request(Verb::Get), None).unwrap_err();
        assert!(
            silent.to_string().ends_with("no rule allows it"),
            "{silent}"
        );
        let entries = audit.entries();
        assert_eq!(entries.len(), 2, "the read is not audited");
        assert!(entries[0].allowed && entries[0].request.verb == Verb::Delete);
        assert!(!entries[1].allowed && entries[1].reason == "not today");
    }
}
