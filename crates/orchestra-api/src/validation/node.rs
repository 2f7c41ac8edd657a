//! Checks of Nodes: taints and resource amounts.

use std::collections::HashSet;

use super::names;
use super::{ErrorList, FieldError, FieldPath};
use crate::resources::{Node, Taint};

/// Checks a Node: its taints, and that capacity and allocatable amounts are not negative.
pub fn validate_node(node: &Node) -> ErrorList {
    let mut errors = ErrorList::new();
    let taints = FieldPath::new("spec").child("taints");
    let mut seen = HashSet::new();
    for (i, taint) in node.spec.taints.iter().enumerate() {
        let p = taints.index(i);
        errors.extend(validate_taint(taint, &p));
        if !seen.insert((taint.key.as_str(), taint.effect)) {
            errors.push(FieldError::duplicate(
                &p,
                format!("{}:{:?}", taint.key, taint.effect),
            ));
        }
    }
    if let Some(status) = &node.status {
        let sp = FieldPath::new("status");
        for (field, list) in [
            ("capacity", &status.capacity),
            ("allocatable", &status.allocatable),
        ] {
            for (name, quantity) in list {
                let p = sp.child(field).key(name);
                for msg in names::is_qualified_name(name) {
                    errors.push(FieldError::invalid(&p, name.as_str(), msg));
                }
                if quantity.is_negative() {
                    errors.push(FieldError::invalid(
                        &p,
                        quantity.to_string(),
                        "must be greater than or equal to 0",
                    ));
                }
            }
        }
        for (i, address) in status.addresses.iter().enumerate() {
            if address.address.is_empty() {
                errors.push(FieldError::required(
                    &sp.child("addresses").index(i).child("address"),
                    "",
                ));
            }
        }
    }
    errors
}

/// Checks one taint at `path`: a qualified-name key and a label-value value.
pub fn validate_taint(taint: &Taint, path: &FieldPath) -> ErrorList {
    let mut errors = ErrorList::new();
    if taint.key.is_empty() {
        errors.push(FieldError::required(&path.child("key"), ""));
    } else {
        for msg in names::is_qualified_name(&taint.key) {
            errors.push(FieldError::invalid(
                &path.child("key"),
                taint.key.as_str(),
                msg,
            ));
        }
    }
    for msg in names::is_valid_label_value(&taint.value) {
        errors.push(FieldError::invalid(
            &path.child("value"),
            taint.value.as_str(),
            msg,
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Resource;
    use crate::meta::ObjectMeta;
    use crate::resources::{NodeSpec, NodeStatus, TaintEffect};

    #[test]
    fn taints_and_capacity() {
        let taint = |key: &str| Taint {
            key: key.into(),
            value: String::new(),
            effect: TaintEffect::NoSchedule,
            time_added: None,
        };
        let node = Node {
            metadata: ObjectMeta::named("node-1"),
            spec: NodeSpec {
                taints: vec![taint("dedicated"), taint("dedicated"), taint("")],
                ..NodeSpec::default()
            },
            status: Some(NodeStatus {
                capacity: [("cpu".to_owned(), "-1".parse().unwrap())].into(),
                ..NodeStatus::default()
            }),
        };
        let msgs: Vec<String> = node.validate().iter().map(ToString::to_string).collect();
        assert_eq!(
            msgs,
            vec![
                "spec.taints[1]: Duplicate value: \"dedicated:NoSchedule\"",
                "spec.taints[2].key: Required value",
                "status.capacity[cpu]: Invalid value: \"-1\": must be greater than or equal to 0",
            ]
        );
    }
}
