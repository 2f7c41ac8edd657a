//! Checks of a container's `securityContext`: the uid's range (Kubernetes') and the
//! capability names. Kubernetes leaves the names to the runtime; they are checked here so
//! that a typo is a 422 naming the field rather than a container that never starts. Any
//! case, with or without `CAP_`, is accepted, as runtimes accept it
//! ([`Capabilities::canonical`] is the name the node agent hands on).

use super::{ErrorList, FieldError, FieldPath};
use crate::resources::pod::{Capabilities, SecurityContext};

/// The largest uid a pod may name (Kubernetes': uids are `int64` in the API but 31 bits in
/// practice, and runtimes refuse larger ones).
pub const MAX_UID: i64 = 2_147_483_647;

/// Checks `context` at `path` (`spec.containers[0].securityContext`).
pub(super) fn validate_security_context(context: &SecurityContext, path: &FieldPath) -> ErrorList {
    let mut errors = ErrorList::new();
    if let Some(uid) = context
        .run_as_user
        .filter(|uid| !(0..=MAX_UID).contains(uid))
    {
        errors.push(FieldError::invalid(
            &path.child("runAsUser"),
            uid,
            format!("must be between 0 and {MAX_UID}, inclusive"),
        ));
    }
    let Some(capabilities) = &context.capabilities else {
        return errors;
    };
    let path = path.child("capabilities");
    for (field, names) in [("add", &capabilities.add), ("drop", &capabilities.drop)] {
        for (i, name) in names.iter().enumerate() {
            if let Some(detail) = capability_error(name) {
                errors.push(FieldError::invalid(
                    &path.child(field).index(i),
                    name.as_str(),
                    detail,
                ));
            }
        }
    }
    errors
}

/// Why `name` is not a capability name, if it is not one.
fn capability_error(name: &str) -> Option<&'static str> {
    Capabilities::canonical(name).is_none().then_some(
        "not a Linux capability (like NET_ADMIN or SYS_TIME, with or without the CAP_ prefix), nor ALL",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(context: SecurityContext) -> Vec<String> {
        validate_security_context(&context, &FieldPath::new("securityContext"))
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_uid_in_range_and_known_capabilities_pass() {
        let good = SecurityContext {
            run_as_user: Some(2102),
            capabilities: Some(Capabilities {
                add: vec!["NET_ADMIN".into(), "NET_RAW".into()],
                drop: vec!["ALL".into()],
            }),
        };
        assert!(check(good).is_empty());
        for uid in [0, MAX_UID] {
            let edge = SecurityContext {
                run_as_user: Some(uid),
                ..SecurityContext::default()
            };
            assert!(check(edge).is_empty(), "{uid}");
        }
        assert!(check(SecurityContext::default()).is_empty());
    }

    #[test]
    fn bad_uids_and_capability_names_are_named_by_field() {
        for uid in [-1, MAX_UID + 1] {
            let errors = check(SecurityContext {
                run_as_user: Some(uid),
                ..SecurityContext::default()
            });
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(
                errors[0].starts_with("securityContext.runAsUser: Invalid value")
                    && errors[0].contains("between 0 and 2147483647"),
                "{errors:?}"
            );
        }
        let errors = check(SecurityContext {
            run_as_user: None,
            capabilities: Some(Capabilities {
                // Runtimes take any case, with or without the prefix.
                add: vec!["NET_ADMIN".into(), "CAP_NET_RAW".into(), "net_admin".into()],
                drop: vec!["all".into(), "EVERYTHING".into(), "CAP_".into()],
            }),
        });
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0]
                .starts_with("securityContext.capabilities.drop[1]: Invalid value: \"EVERYTHING\"")
                && errors[0].contains("not a Linux capability"),
            "{errors:?}"
        );
        assert!(
            errors[1].starts_with("securityContext.capabilities.drop[2]"),
            "{errors:?}"
        );
    }

    #[test]
    fn capability_names_have_one_canonical_form() {
        for (given, canonical) in [
            ("NET_ADMIN", Some("NET_ADMIN")),
            ("cap_net_admin", Some("NET_ADMIN")),
            (" Sys_Time ", Some("SYS_TIME")),
            ("all", Some("ALL")),
            ("CAP_ALL", Some("ALL")),
            ("NET_ADMINS", None),
            ("", None),
        ] {
            assert_eq!(Capabilities::canonical(given), canonical, "{given:?}");
        }
    }
}
