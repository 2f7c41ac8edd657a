//! ConfigMap, Secret, Job and DaemonSet through the registry: stored and served like the other
//! built-in kinds, with their write-time behaviour (a Secret's stringData merged into data, a
//! Job's generated selector, immutable fields).

use orchestra_api::registry::DynRegistry;
use orchestra_api::resources::{
    ByteString, ConfigMap, DaemonSet, JOB_CONTROLLER_UID_LABEL, JOB_NAME_LABEL, Job, Secret,
};
use orchestra_api::{ApiError, Registry};
use orchestra_store::{MemStore, StoreExt};

fn decode<R: orchestra_api::Resource>(value: serde_json::Value) -> R {
    orchestra_api::decode::<R>(value)
        .expect("decode")
        .strict()
        .expect("no unknown fields")
}

fn job() -> Job {
    decode(serde_json::json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "migrate"},
        "spec": {"template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "m", "image": "shop/migrate:1"}]
        }}}
    }))
}

#[tokio::test]
async fn secrets_store_string_data_merged_into_data() {
    let registry = Registry::new(MemStore::new());
    let secret: Secret = decode(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db"},
        "data": {"username": "YWRtaW4="},
        "stringData": {"password": "s3cret"}
    }));
    let created = registry.create(secret).await.expect("create");
    assert_eq!(created.type_, "Opaque");
    assert_eq!(created.data["password"], ByteString::from("s3cret"));
    let stored = registry
        .store()
        .get("/registry/secrets/default/db")
        .await
        .expect("get")
        .expect("stored");
    let json: serde_json::Value = serde_json::from_slice(&stored.value).expect("json");
    assert_eq!(json["data"]["password"], "czNjcmV0");
    assert!(json.get("stringData").is_none(), "{json}");
    // stringData on update wins over data, and the type is immutable.
    let mut update = created.clone();
    update.string_data.insert("password".into(), "n3w".into());
    let updated = registry.update(update).await.expect("update");
    assert_eq!(updated.data["password"], ByteString::from("n3w"));
    let mut retype = updated.clone();
    retype.type_ = "kubernetes.io/basic-auth".into();
    let err = registry.update(retype).await.unwrap_err();
    assert!(err.to_string().contains("type: Invalid value"), "{err}");
}

#[tokio::test]
async fn jobs_get_a_generated_selector_and_keep_their_template() {
    let registry = Registry::new(MemStore::new());
    let created = registry.create(job()).await.expect("create");
    let uid = created.metadata.uid.clone();
    let selector = created.spec.selector.clone().expect("selector");
    assert_eq!(selector.match_labels[JOB_CONTROLLER_UID_LABEL], uid);
    let labels = &created.spec.template.metadata.labels;
    assert_eq!(labels[JOB_CONTROLLER_UID_LABEL], uid);
    assert_eq!(labels[JOB_NAME_LABEL], "migrate");
    assert_eq!(created.spec.backoff_limit, Some(6));
    let mut changed = created.clone();
    changed.spec.template.spec.containers[0].image = "shop/migrate:2".into();
    let err = registry.update(changed).await.unwrap_err();
    assert!(
        err.to_string().contains("spec.template: Invalid value")
            && err.to_string().contains("field is immutable"),
        "{err}"
    );
    let mut always = job();
    always.metadata.name = "always".into();
    always.spec.template.spec.restart_policy = None;
    let err = registry.create(always).await.unwrap_err();
    assert!(matches!(err, ApiError::Invalid { .. }), "{err}");
    assert!(
        err.to_string().contains("restartPolicy: Unsupported value"),
        "{err}"
    );
}

#[tokio::test]
async fn the_new_kinds_are_served_by_plural() {
    let registry = Registry::new(MemStore::new());
    let dynamic = DynRegistry::new(registry.clone());
    for (api_version, plural) in [
        ("v1", "configmaps"),
        ("v1", "secrets"),
        ("batch/v1", "jobs"),
        ("apps/v1", "daemonsets"),
        ("apps/v1", "statefulsets"),
        ("rbac.authorization.k8s.io/v1", "roles"),
        ("rbac.authorization.k8s.io/v1", "clusterroles"),
        ("rbac.authorization.k8s.io/v1", "rolebindings"),
        ("rbac.authorization.k8s.io/v1", "clusterrolebindings"),
    ] {
        assert!(
            dynamic.ops_by_plural(api_version, plural).is_some(),
            "{api_version} {plural}"
        );
    }
    let cm: ConfigMap = decode(serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings"},
        "data": {"a": "1"}, "binaryData": {"b": "AAE="}
    }));
    dynamic
        .create(orchestra_api::erase(cm))
        .await
        .expect("create");
    let read: ConfigMap = registry.get("default", "settings").await.expect("get");
    assert_eq!(read.binary_data["b"].0, [0, 1]);
    let ds: DaemonSet = decode(serde_json::json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                         "spec": {"containers": [{"name": "a", "image": "agent:1"}]}}
        }
    }));
    let created = registry.create(ds).await.expect("daemon set");
    assert_eq!(created.spec.revision_history_limit, Some(10));
}
