//! Lists decoded at exactly their length (use with `#[serde(deserialize_with = ...)]`).
//!
//! serde builds a `Vec` without knowing its length from JSON, so it grows by doubling from
//! four: a pod's one container took the room of four `Container`s (inline probes and all),
//! its one owner reference, two tolerations and four conditions the room of four or eight.
//! Decoded objects live long (the watch cache keeps every object and a window of past
//! states, shared with every in-process watcher), so those empty slots were the largest
//! single holder of memory in `orchestra bench cluster`: about 3 KB of a 7.5 KB decoded pod.

use serde::{Deserialize, Deserializer};

/// Deserializes a list and gives back the room it does not use.
pub(crate) fn deserialize<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let mut items = Vec::<T>::deserialize(deserializer)?;
    items.shrink_to_fit();
    Ok(items)
}

#[cfg(test)]
mod tests {
    use crate::resources::Pod;

    #[test]
    fn a_decoded_pods_lists_hold_no_spare_room() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": "web", "namespace": "default", "finalizers": ["a"],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u"}],
            },
            "spec": {
                "containers": [{"name": "main", "image": "pause", "env": [{"name": "A", "value": "1"}]}],
                "tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}],
            },
            "status": {
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "main", "ready": true}],
            },
        }))
        .unwrap();
        let spec = &pod.spec;
        let status = pod.status.as_ref().unwrap();
        assert_eq!(spec.containers.capacity(), 1);
        assert_eq!(spec.containers[0].env.capacity(), 1);
        assert_eq!(spec.tolerations.capacity(), 2);
        assert_eq!(pod.metadata.owner_references.capacity(), 1);
        assert_eq!(pod.metadata.finalizers.capacity(), 1);
        assert_eq!(status.conditions.capacity(), 1);
        assert_eq!(status.container_statuses.capacity(), 1);
    }
}
