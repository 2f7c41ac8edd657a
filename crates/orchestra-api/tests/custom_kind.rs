//! An embedding product's own kind, `Database` (`db.example.com/v1`), registered with a small
//! trait impl and then decoded, defaulted, validated, encoded, selected and read from
//! manifests exactly like the built-in kinds.

use std::sync::Arc;

use orchestra_api::manifest::{self, ManifestOptions};
use orchestra_api::resources::Deployment;
use orchestra_api::{
    DynResource, ErrorList, FieldError, FieldPath, FieldSelector, ObjectMeta, Quantity, Resource,
    Scheme, SchemeError, Selector,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Database {
    metadata: ObjectMeta,
    spec: DatabaseSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<DatabaseStatus>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct DatabaseSpec {
    engine: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    replicas: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    storage: Option<Quantity>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct DatabaseStatus {
    phase: String,
}

const ENGINES: &[&str] = &["postgres", "mysql"];

impl Resource for Database {
    const API_VERSION: &'static str = "db.example.com/v1";
    const KIND: &'static str = "Database";
    const PLURAL: &'static str = "databases";
    const NAMESPACED: bool = true;
    const SELECTABLE_FIELDS: &'static [&'static str] = &["spec.engine", "status.phase"];

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn default_fields(&mut self) {
        self.spec.replicas.get_or_insert(1);
        if self.spec.storage.is_none() {
            self.spec.storage = Some(Quantity::from_bytes(10 << 30));
        }
    }

    fn validate_fields(&self) -> ErrorList {
        let mut errors = ErrorList::new();
        let spec = FieldPath::new("spec");
        if self.spec.engine.is_empty() {
            errors.push(FieldError::required(&spec.child("engine"), ""));
        } else if !ENGINES.contains(&self.spec.engine.as_str()) {
            errors.push(FieldError::not_supported(
                &spec.child("engine"),
                self.spec.engine.as_str(),
                ENGINES,
            ));
        }
        if let Some(r) = self.spec.replicas.filter(|r| *r < 1) {
            errors.push(FieldError::invalid(
                &spec.child("replicas"),
                r,
                "must be at least 1",
            ));
        }
        if let Some(s) = self
            .spec
            .storage
            .filter(|s| *s < Quantity::from_bytes(1 << 30))
        {
            errors.push(FieldError::invalid(
                &spec.child("storage"),
                s.to_string(),
                "must be at least 1Gi",
            ));
        }
        errors
    }

    fn validate_update_fields(&self, old: &Self) -> ErrorList {
        let mut errors = ErrorList::new();
        if self.spec.engine != old.spec.engine {
            errors.push(FieldError::invalid(
                &FieldPath::new("spec").child("engine"),
                self.spec.engine.as_str(),
                "field is immutable",
            ));
        }
        errors
    }

    fn field_value(&self, field: &str) -> Option<String> {
        match field {
            "spec.engine" => Some(self.spec.engine.clone()),
            "status.phase" => Some(
                self.status
                    .as_ref()
                    .map(|s| s.phase.clone())
                    .unwrap_or_default(),
            ),
            _ => None,
        }
    }
}

fn scheme() -> Scheme {
    let mut scheme = Scheme::new();
    scheme.register::<Database>().unwrap();
    scheme
}

#[test]
fn the_scheme_serves_the_custom_kind_like_a_built_in() {
    let scheme = scheme();
    let codec = scheme.get("db.example.com/v1", "Database").unwrap();
    assert!(codec.is::<Database>());
    let info = codec.info();
    assert_eq!(
        (info.group(), info.version(), info.plural, info.namespaced),
        ("db.example.com", "v1", "databases", true)
    );
    assert!(
        scheme
            .get_by_plural("db.example.com/v1", "databases")
            .is_some()
    );
    // The built-in kinds and the custom one.
    assert_eq!(scheme.kinds().count(), Scheme::new().kinds().count() + 1);

    let value = json!({
        "apiVersion": "db.example.com/v1",
        "kind": "Database",
        "metadata": {"name": "orders", "labels": {"team": "payments"}},
        "spec": {"engine": "postgres", "version": "16", "storag": "5Gi"}
    });
    let decoded = scheme.decode(value).unwrap();
    assert_eq!(decoded.unknown_fields, ["spec.storag"]);
    let mut object: Box<dyn DynResource> = decoded.object;
    codec.default(object.as_mut());
    assert!(codec.validate(object.as_ref()).is_empty());
    let db: &Database = object.downcast_ref().unwrap();
    assert_eq!(db.metadata.namespace, "default");
    assert_eq!(db.spec.replicas, Some(1));
    assert_eq!(db.spec.storage.unwrap().to_string(), "10Gi");

    let encoded = codec.encode(object.as_ref()).unwrap();
    assert_eq!(
        encoded,
        json!({
            "apiVersion": "db.example.com/v1",
            "kind": "Database",
            "metadata": {"name": "orders", "namespace": "default", "labels": {"team": "payments"}},
            "spec": {"engine": "postgres", "version": "16", "replicas": 1, "storage": "10Gi"}
        })
    );
    let deployments = scheme.get_type::<Deployment>().unwrap();
    assert!(deployments.encode(object.as_ref()).is_err());
}

#[test]
fn validation_and_update_rules_of_the_custom_kind() {
    let mut db = Database {
        metadata: ObjectMeta::namespaced("prod", "Orders DB"),
        spec: DatabaseSpec {
            engine: "oracle".into(),
            replicas: Some(0),
            storage: Some("512Mi".parse().unwrap()),
            ..DatabaseSpec::default()
        },
        status: None,
    };
    let messages: Vec<String> = db.validate().iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 4, "{messages:#?}");
    assert!(messages[0].starts_with(
        "metadata.name: Invalid value: \"Orders DB\": a lowercase RFC 1123 subdomain"
    ));
    assert_eq!(
        messages[1],
        "spec.engine: Unsupported value: \"oracle\": supported values: \"postgres\", \"mysql\""
    );
    assert_eq!(
        messages[2],
        "spec.replicas: Invalid value: 0: must be at least 1"
    );
    assert_eq!(
        messages[3],
        "spec.storage: Invalid value: \"512Mi\": must be at least 1Gi"
    );

    db.metadata.name = "orders".into();
    db.spec.engine = "postgres".into();
    db.spec.replicas = Some(2);
    db.spec.storage = None;
    db.apply_defaults();
    assert!(db.validate().is_empty());
    let mut changed = db.clone();
    changed.spec.engine = "mysql".into();
    assert_eq!(
        changed.validate_update(&db).to_string(),
        "spec.engine: Invalid value: \"mysql\": field is immutable"
    );
    let dyn_new = changed.into_dyn();
    assert_eq!(
        dyn_new
            .validate_update(db.clone().into_dyn().as_ref())
            .len(),
        1
    );
    let other_kind = Deployment::default().into_dyn();
    assert_eq!(
        dyn_new.validate_update(other_kind.as_ref()).to_string(),
        "kind: Invalid value: \"Database\": an update may not change the kind (the stored object is a Deployment)"
    );
}

#[test]
fn selectors_work_on_the_custom_kind() {
    let mut db = Database {
        metadata: ObjectMeta::namespaced("prod", "orders").with_label("tier", "gold"),
        spec: DatabaseSpec {
            engine: "postgres".into(),
            ..DatabaseSpec::default()
        },
        status: Some(DatabaseStatus {
            phase: "Ready".into(),
        }),
    };
    let fields = FieldSelector::parse("spec.engine=postgres,status.phase!=Failed").unwrap();
    assert!(fields.check::<Database>().is_ok());
    assert!(fields.matches(&db).unwrap());
    db.spec.engine = "mysql".into();
    assert!(!fields.matches(&db).unwrap());
    let err = FieldSelector::parse("spec.version=16")
        .unwrap()
        .matches(&db)
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("field label not supported for Database: spec.version"),
        "{err}"
    );
    let labels = Selector::parse("tier in (gold, silver)").unwrap();
    assert!(labels.matches(&db.metadata.labels));
}

#[test]
fn manifests_mix_custom_and_built_in_kinds() {
    let yaml = r#"
apiVersion: db.example.com/v1
kind: Database
metadata:
  name: orders
  namespace: shop
spec:
  engine: postgres
  storage: 20Gi
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: orders-api, namespace: shop}
spec:
  selector: {matchLabels: {app: orders-api}}
  template:
    metadata: {labels: {app: orders-api}}
    spec:
      containers: [{name: api, image: "orders:1"}]
---
apiVersion: db.example.com/v1
kind: Database
metadata: {name: analytics, namespace: shop}
spec: {engine: cassandra}
"#;
    let err = manifest::parse(&scheme(), yaml, &ManifestOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "document 3 (Database \"analytics\"): spec.engine: Unsupported value: \"cassandra\": supported values: \"postgres\", \"mysql\""
    );
    let fixed = yaml.replace("cassandra", "mysql");
    let m = manifest::parse(&scheme(), &fixed, &ManifestOptions::default()).unwrap();
    let dbs: Vec<&Database> = m.objects_of::<Database>().collect();
    assert_eq!(dbs.len(), 2);
    assert_eq!(dbs[0].spec.storage.unwrap().value(), 20 << 30);
    assert_eq!(m.objects_of::<Deployment>().count(), 1);
    // Without registration, the kind is unknown, with a hint.
    let err = manifest::parse(&Scheme::new(), &fixed, &ManifestOptions::default()).unwrap_err();
    assert_eq!(err.errors.len(), 2);
    assert!(err.to_string().contains("no kind \"Database\" is registered for apiVersion \"db.example.com/v1\"; register the kind in the Scheme"), "{err}");
}

#[test]
fn registration_checks_the_kind_constants() {
    let mut scheme = scheme();
    assert!(matches!(
        scheme.register::<Database>(),
        Err(SchemeError::AlreadyRegistered { .. })
    ));

    #[derive(Clone, Debug, Default, Serialize, Deserialize)]
    struct Bad {
        metadata: ObjectMeta,
    }
    impl Resource for Bad {
        const API_VERSION: &'static str = "Example.com/v1";
        const KIND: &'static str = "bad";
        const PLURAL: &'static str = "Bads";
        const NAMESPACED: bool = false;
        fn meta(&self) -> &ObjectMeta {
            &self.metadata
        }
        fn meta_mut(&mut self) -> &mut ObjectMeta {
            &mut self.metadata
        }
    }
    let err = scheme.register::<Bad>().unwrap_err();
    assert!(
        err.to_string()
            .contains("the group \"Example.com\" must be a DNS subdomain"),
        "{err}"
    );
}

/// The custom kind stored, validated, updated (spec and status) and watched through the
/// registry and `LocalClient` like the built-ins, at `/registry/databases/{namespace}/{name}`.
#[tokio::test]
async fn the_registry_and_local_client_serve_the_custom_kind() {
    use futures::StreamExt;
    use orchestra_api::registry::{ApiError, ListOptions, WatchEvent, WatchOptions};
    use orchestra_api::{Client, LocalClient};
    use orchestra_store::{MemStore, StoreExt};

    let client = LocalClient::new(MemStore::new());
    let mut watch = client
        .watch::<Database>(
            Some("shop"),
            &WatchOptions {
                field_selector: FieldSelector::parse("status.phase=Ready").unwrap(),
                ..WatchOptions::default()
            },
        )
        .await
        .unwrap();
    let orders = Database {
        metadata: ObjectMeta::namespaced("shop", "orders"),
        spec: DatabaseSpec {
            engine: "postgres".into(),
            ..DatabaseSpec::default()
        },
        status: None,
    };
    let created = client.create(&orders).await.unwrap();
    assert_eq!(created.spec.replicas, Some(1), "defaulted");
    let key = "/registry/databases/shop/orders";
    assert!(client.registry().store().get(key).await.unwrap().is_some());

    let mut other_engine = created.clone();
    other_engine.spec.engine = "mysql".into();
    let err = client.update(&other_engine).await.unwrap_err();
    match err {
        ApiError::Invalid { errors, .. } => {
            assert_eq!(
                errors.to_string(),
                "spec.engine: Invalid value: \"mysql\": field is immutable"
            )
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    let mut ready = created.clone();
    ready.status = Some(DatabaseStatus {
        phase: "Ready".into(),
    });
    let ready = client.update_status(&ready).await.unwrap();
    assert_eq!(ready.metadata.generation, Some(1));
    assert_eq!(
        watch.next().await.unwrap().unwrap(),
        WatchEvent::Added(Arc::new(ready.clone())),
        "it starts matching status.phase=Ready"
    );
    let list = client
        .list::<Database>(
            None,
            &ListOptions::fields(FieldSelector::parse("spec.engine=postgres").unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(list.items, [ready]);
    let mut bad = orders.clone();
    bad.metadata.name = "bad".into();
    bad.spec.engine = "oracle".into();
    let err = client.create(&bad).await.unwrap_err();
    assert_eq!(err.code(), 422, "{err}");
}

/// The custom kind through the type-erased `DynRegistry`: decoded by the scheme from JSON,
/// created, read, listed, patched and deleted by `(apiVersion, kind)`.
#[tokio::test]
async fn the_dyn_registry_serves_kinds_chosen_at_run_time() {
    use orchestra_api::Registry;
    use orchestra_api::registry::{DeleteOptions, DynRegistry, ListOptions};
    use orchestra_store::MemStore;

    let registry = Registry::new(MemStore::new());
    let mut dynamic = DynRegistry::new(registry.clone());
    let decoded = scheme()
        .decode(json!({
            "apiVersion": "db.example.com/v1", "kind": "Database",
            "metadata": {"name": "orders", "namespace": "shop"},
            "spec": {"engine": "postgres"}
        }))
        .unwrap();
    let unknown = dynamic.create(decoded.object.clone()).await.unwrap_err();
    assert_eq!(unknown.code(), 400, "not registered yet: {unknown}");
    dynamic.register::<Database>();
    let created = dynamic.create(decoded.object).await.unwrap();
    assert_eq!(created.meta().generation, Some(1));
    let typed: Database = registry.get("shop", "orders").await.unwrap();
    assert_eq!(typed.spec.replicas, Some(1));

    let read = dynamic
        .get("db.example.com/v1", "Database", "shop", "orders")
        .await
        .unwrap();
    assert_eq!(read.downcast_ref::<Database>(), Some(&typed));
    let patched = dynamic
        .patch(
            "db.example.com/v1",
            "Database",
            "shop",
            "orders",
            &json!({"spec": {"replicas": 3}}),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.downcast_ref::<Database>().unwrap().spec.replicas,
        Some(3)
    );
    assert_eq!(patched.meta().generation, Some(2));
    let list = dynamic
        .list(
            "db.example.com/v1",
            "Database",
            None,
            &ListOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    let pods = dynamic
        .list("v1", "Pod", Some("shop"), &ListOptions::default())
        .await
        .unwrap();
    assert!(pods.items.is_empty());
    let outcome = dynamic
        .delete(
            "db.example.com/v1",
            "Database",
            "shop",
            "orders",
            &DeleteOptions::default(),
        )
        .await
        .unwrap();
    assert!(outcome.is_deleted());
    assert!(
        registry
            .get::<Database>("shop", "orders")
            .await
            .unwrap_err()
            .is_not_found()
    );
    let missing = dynamic.get("v1", "Pod", "shop", "x").await.unwrap_err();
    assert!(missing.is_not_found());
}
