//! Index functions for [`Store::add_index`](super::Store::add_index): each maps an object to
//! the values it is found under (none, one or several).

use crate::resource::Resource;
use crate::resources::Pod;

/// Pods by `spec.nodeName` (unbound pods are not indexed).
pub fn pods_by_node(pod: &Pod) -> Vec<String> {
    if pod.spec.node_name.is_empty() {
        Vec::new()
    } else {
        vec![pod.spec.node_name.clone()]
    }
}

/// Objects by the uid of their controller owner (the ownerReference with `controller: true`).
pub fn by_controller_uid<R: Resource>(object: &R) -> Vec<String> {
    object
        .meta()
        .controller_ref()
        .map(|owner| vec![owner.uid.clone()])
        .unwrap_or_default()
}

/// Objects by the uid of every owner, controller or not.
pub fn by_owner_uid<R: Resource>(object: &R) -> Vec<String> {
    object
        .meta()
        .owner_references
        .iter()
        .map(|owner| owner.uid.clone())
        .collect()
}

/// Objects by namespace.
pub fn by_namespace<R: Resource>(object: &R) -> Vec<String> {
    vec![object.meta().namespace.clone()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::OwnerReference;
    use crate::testing::pod;

    #[test]
    fn functions_read_the_right_fields() {
        let mut p = pod("ns", "a", "web");
        assert!(pods_by_node(&p).is_empty());
        p.spec.node_name = "n1".into();
        assert_eq!(pods_by_node(&p), ["n1"]);
        p.metadata.owner_references = vec![
            OwnerReference {
                uid: "u1".into(),
                ..OwnerReference::default()
            },
            OwnerReference {
                uid: "u2".into(),
                controller: Some(true),
                ..OwnerReference::default()
            },
        ];
        assert_eq!(by_controller_uid(&p), ["u2"]);
        assert_eq!(by_owner_uid(&p), ["u1", "u2"]);
        assert_eq!(by_namespace(&p), ["ns"]);
    }
}
