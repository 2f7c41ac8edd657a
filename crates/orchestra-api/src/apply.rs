//! Client-side apply: the three-way merge `orchestra ctl apply` (like `kubectl apply`) uses
//! to update a live object from a manifest without undoing what others set.
//!
//! The three sides, all as JSON:
//! - *original*: the manifest applied last time, kept on the object in the
//!   [`LAST_APPLIED_ANNOTATION`] annotation (absent for objects not created by apply);
//! - *modified*: the manifest applied now;
//! - *live*: the object as stored.
//!
//! A field the manifest sets gets the manifest's value; a field the last manifest set and this
//! one does not is removed (an explicit `null` removes it too); every other field of the live
//! object (filled by the server, or set by another writer: an allocated `clusterIP`, a
//! controller's annotation) is kept. Lists of objects with a merge key are merged item by
//! item, as Kubernetes' strategic merge does (containers, env and volumes by `name`, container
//! ports by `containerPort`, Service ports by `port`, volume mounts by `mountPath`, owner
//! references by `uid`); other lists are replaced whole. A keyed list whose items lack their
//! key, or repeat one, is replaced whole too.
//!
//! ```
//! use orchestra_api::apply::three_way_merge;
//! use serde_json::json;
//!
//! let original = json!({"spec": {"replicas": 2, "paused": false}});
//! let modified = json!({"spec": {"replicas": 3}});
//! let live = json!({"spec": {"replicas": 2, "paused": false, "revisionHistoryLimit": 10}});
//! assert_eq!(
//!     three_way_merge(Some(&original), &modified, &live),
//!     json!({"spec": {"replicas": 3, "revisionHistoryLimit": 10}}),
//! );
//! ```

use serde_json::{Map, Value};

/// The annotation holding the manifest last applied to an object (kubectl's name, so that
/// objects move between the tools).
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The object `live` becomes when `modified` is applied over it, `original` having been
/// applied before (`None`: nothing is known to be the manifest's, so nothing is removed).
/// Pure: the same inputs always give the same object.
pub fn three_way_merge(original: Option<&Value>, modified: &Value, live: &Value) -> Value {
    let mut path = Vec::new();
    merge(&mut path, original, modified, Some(live))
}

/// The merge key of the list at `path` (field names from the root, list indices left out),
/// if its items merge one by one.
pub fn merge_key(path: &[&str]) -> Option<&'static str> {
    let (last, parents) = path.split_last()?;
    let parent = parents.last().copied().unwrap_or("");
    match *last {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "ownerReferences" => Some("uid"),
        "conditions" => Some("type"),
        "hostAliases" => Some("ip"),
        "ports" if matches!(parent, "containers" | "initContainers") => Some("containerPort"),
        // A Service's `spec.ports` (the only `ports` directly under a top-level `spec`).
        "ports" if parents == ["spec"] => Some("port"),
        _ => None,
    }
}

fn merge(
    path: &mut Vec<String>,
    original: Option<&Value>,
    modified: &Value,
    live: Option<&Value>,
) -> Value {
    match (modified, live) {
        (Value::Object(modified), Some(Value::Object(live))) => {
            merge_object(path, original.and_then(Value::as_object), modified, live)
        }
        (Value::Array(modified), Some(Value::Array(live))) => {
            let names: Vec<&str> = path.iter().map(String::as_str).collect();
            merge_key(&names)
                .and_then(|key| {
                    merge_list(
                        path,
                        key,
                        original.and_then(Value::as_array),
                        modified,
                        live,
                    )
                })
                .unwrap_or_else(|| without_nulls(&Value::Array(modified.clone())))
        }
        _ => without_nulls(modified),
    }
}

fn merge_object(
    path: &mut Vec<String>,
    original: Option<&Map<String, Value>>,
    modified: &Map<String, Value>,
    live: &Map<String, Value>,
) -> Value {
    let mut out = live.clone();
    if let Some(original) = original {
        for key in original.keys() {
            if !modified.contains_key(key) {
                out.remove(key);
            }
        }
    }
    for (key, value) in modified {
        if value.is_null() {
            out.remove(key);
            continue;
        }
        path.push(key.clone());
        let merged = merge(
            path,
            original.and_then(|o| o.get(key)),
            value,
            live.get(key),
        );
        path.pop();
        out.insert(key.clone(), merged);
    }
    Value::Object(out)
}

/// Merges keyed lists item by item: the manifest's items in its order (each merged with the
/// live item of its key), then the live items neither manifest had (added by others), in
/// their order. `None` when an item lacks its key or a key repeats: the list is then atomic.
fn merge_list(
    path: &mut Vec<String>,
    key: &str,
    original: Option<&Vec<Value>>,
    modified: &[Value],
    live: &[Value],
) -> Option<Value> {
    let modified_keys = keys(modified, key)?;
    let live_keys = keys(live, key)?;
    // An unreadable original list only means nothing is known to be removed.
    let original_keys = original
        .and_then(|items| keys(items, key))
        .unwrap_or_default();
    let find = |items: Option<&Vec<Value>>, keys: &[&Value], wanted: &Value| {
        keys.iter()
            .position(|k| *k == wanted)
            .and_then(|i| items.and_then(|items| items.get(i)))
            .cloned()
    };
    let live_items = live.to_vec();
    let mut out = Vec::with_capacity(modified.len() + live.len());
    for (item, item_key) in modified.iter().zip(&modified_keys) {
        let original_item = find(original, &original_keys, item_key);
        let live_item = find(Some(&live_items), &live_keys, item_key);
        out.push(merge(
            path,
            original_item.as_ref(),
            item,
            live_item.as_ref(),
        ));
    }
    for (item, item_key) in live.iter().zip(&live_keys) {
        if !modified_keys.contains(item_key) && !original_keys.contains(item_key) {
            out.push(item.clone());
        }
    }
    Some(Value::Array(out))
}

/// Each item's merge key, if every item is an object with a distinct one.
fn keys<'a>(items: &'a [Value], key: &str) -> Option<Vec<&'a Value>> {
    let mut keys: Vec<&Value> = Vec::with_capacity(items.len());
    for item in items {
        let k = item.get(key).filter(|k| !k.is_null())?;
        if keys.contains(&k) {
            return None;
        }
        keys.push(k);
    }
    Some(keys)
}

/// A manifest value as stored: its `null` fields (which only mean "remove") left out.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn fields_removed_from_the_manifest_are_removed_and_others_fields_kept() {
        let original = json!({"metadata": {"name": "web", "labels": {"app": "web", "tier": "front"}},
            "spec": {"replicas": 2, "minReadySeconds": 5}});
        let modified = json!({"metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 2}});
        let live = json!({"metadata": {"name": "web", "uid": "u1",
                "labels": {"app": "web", "tier": "front", "team": "ops"},
                "annotations": {"deployment.kubernetes.io/revision": "3"}},
            "spec": {"replicas": 2, "minReadySeconds": 5, "revisionHistoryLimit": 10},
            "status": {"replicas": 2}});
        assert_eq!(
            three_way_merge(Some(&original), &modified, &live),
            json!({"metadata": {"name": "web", "uid": "u1",
                    "labels": {"app": "web", "team": "ops"},
                    "annotations": {"deployment.kubernetes.io/revision": "3"}},
                "spec": {"replicas": 2, "revisionHistoryLimit": 10},
                "status": {"replicas": 2}})
        );
    }

    #[test]
    fn without_an_original_nothing_is_removed_and_null_removes() {
        let modified = json!({"spec": {"replicas": 3, "paused": null, "new": {"a": 1, "b": null}}});
        let live = json!({"spec": {"replicas": 1, "paused": true, "minReadySeconds": 5}});
        assert_eq!(
            three_way_merge(None, &modified, &live),
            json!({"spec": {"replicas": 3, "minReadySeconds": 5, "new": {"a": 1}}})
        );
    }

    #[test]
    fn containers_env_ports_and_volumes_merge_by_key() {
        let original = json!({"spec": {
            "containers": [
                {"name": "web", "image": "nginx:1.26",
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "ports": [{"containerPort": 80}, {"containerPort": 443}]},
                {"name": "old", "image": "busybox"}],
            "volumes": [{"name": "data", "emptyDir": {}}]}});
        let modified = json!({"spec": {
            "containers": [
                {"name": "web", "image": "nginx:1.27",
                 "env": [{"name": "A", "value": "10"}],
                 "ports": [{"containerPort": 80, "name": "http"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {}}]}});
        let live = json!({"spec": {
            "containers": [
                {"name": "sidecar", "image": "proxy:1"},
                {"name": "web", "image": "nginx:1.26", "imagePullPolicy": "IfNotPresent",
                 "env": [{"name": "INJECTED", "value": "x"}, {"name": "A", "value": "1"},
                         {"name": "B", "value": "2"}],
                 "ports": [{"containerPort": 80, "protocol": "TCP"},
                           {"containerPort": 443, "protocol": "TCP"}]},
                {"name": "old", "image": "busybox"}],
            "volumes": [{"name": "data", "emptyDir": {}}, {"name": "injected", "emptyDir": {}}]}});
        assert_eq!(
            three_way_merge(Some(&original), &modified, &live),
            json!({"spec": {
                "containers": [
                    {"name": "web", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
                     "env": [{"name": "A", "value": "10"}, {"name": "INJECTED", "value": "x"}],
                     "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}]},
                    {"name": "sidecar", "image": "proxy:1"}],
                "volumes": [{"name": "data", "emptyDir": {}}, {"name": "cache", "emptyDir": {}},
                            {"name": "injected", "emptyDir": {}}]}})
        );
    }

    #[test]
    fn service_ports_merge_by_port_and_unkeyed_lists_are_replaced() {
        let original = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 81}],
            "externalIPs": ["10.0.0.1"]}});
        let modified = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}],
            "externalIPs": ["10.0.0.2"]}});
        let live = json!({"spec": {"clusterIP": "10.96.0.7",
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"},
                      {"port": 81, "protocol": "TCP"}],
            "externalIPs": ["10.0.0.1", "10.0.0.9"]}});
        assert_eq!(
            three_way_merge(Some(&original), &modified, &live),
            json!({"spec": {"clusterIP": "10.96.0.7",
                "ports": [{"port": 80, "targetPort": 9090, "protocol": "TCP"}],
                "externalIPs": ["10.0.0.2"]}})
        );
    }

    #[test]
    fn a_keyed_list_with_missing_or_repeated_keys_is_replaced_whole() {
        let modified = json!({"spec": {"ports": [{"port": 53, "protocol": "UDP"},
                                                 {"port": 53, "protocol": "TCP"}]}});
        let live = json!({"spec": {"ports": [{"port": 53, "protocol": "UDP", "nodePort": 30053}]}});
        assert_eq!(three_way_merge(None, &modified, &live), modified);
        let modified = json!({"spec": {"containers": [{"image": "nginx"}]}});
        let live = json!({"spec": {"containers": [{"name": "web", "image": "old"}]}});
        assert_eq!(three_way_merge(None, &modified, &live), modified);
    }

    #[test]
    fn merge_keys_depend_on_where_the_list_is() {
        assert_eq!(
            merge_key(&["spec", "template", "spec", "containers"]),
            Some("name")
        );
        assert_eq!(
            merge_key(&["spec", "template", "spec", "containers", "ports"]),
            Some("containerPort")
        );
        assert_eq!(merge_key(&["spec", "ports"]), Some("port"));
        assert_eq!(merge_key(&["subsets", "ports"]), None);
        assert_eq!(merge_key(&["spec", "containers", "args"]), None);
        assert_eq!(merge_key(&[]), None);
    }
}
