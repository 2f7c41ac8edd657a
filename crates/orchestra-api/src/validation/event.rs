//! Checks of Events.

use super::{ErrorList, FieldError, FieldPath};
use crate::resources::{EVENT_TYPE_NORMAL, EVENT_TYPE_WARNING, Event};

/// Checks an Event: its involved object is in its namespace, its type is `Normal` or
/// `Warning`, and its count is not negative.
pub fn validate_event(event: &Event) -> ErrorList {
    let mut errors = ErrorList::new();
    let involved = FieldPath::new("involvedObject");
    if event.involved_object.kind.is_empty() {
        errors.push(FieldError::required(&involved.child("kind"), ""));
    }
    let ns = &event.involved_object.namespace;
    if !ns.is_empty() && *ns != event.metadata.namespace {
        errors.push(FieldError::invalid(
            &involved.child("namespace"),
            ns.as_str(),
            "does not match event.namespace",
        ));
    }
    if !event.type_.is_empty()
        && event.type_ != EVENT_TYPE_NORMAL
        && event.type_ != EVENT_TYPE_WARNING
    {
        errors.push(FieldError::not_supported(
            &FieldPath::new("type"),
            event.type_.as_str(),
            &[EVENT_TYPE_NORMAL, EVENT_TYPE_WARNING],
        ));
    }
    if let Some(count) = event.count.filter(|c| *c < 0) {
        errors.push(FieldError::invalid(
            &FieldPath::new("count"),
            count,
            "must be greater than or equal to 0",
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Resource;
    use crate::meta::ObjectMeta;
    use crate::resources::ObjectReference;

    #[test]
    fn events() {
        let mut event = Event {
            metadata: ObjectMeta::namespaced("default", "web-1.17a8b"),
            involved_object: ObjectReference {
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "web-1".into(),
                ..ObjectReference::default()
            },
            reason: "Scheduled".into(),
            type_: "Normal".into(),
            ..Event::default()
        };
        assert!(event.validate().is_empty(), "{}", event.validate());
        event.involved_object.namespace = "other".into();
        event.type_ = "Info".into();
        let msgs: Vec<String> = event.validate().iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            vec![
                "involvedObject.namespace: Invalid value: \"other\": does not match event.namespace",
                "type: Unsupported value: \"Info\": supported values: \"Normal\", \"Warning\"",
            ]
        );
    }
}
