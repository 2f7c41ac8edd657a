//! Admission through the registry: NamespaceLifecycle (no creates in missing or terminating
//! namespaces, Kubernetes-like namespace deletion, system namespaces), DefaultTolerationSeconds,
//! and Service cluster IP / node port allocation (distinct under concurrent creates, released
//! on delete, explicit values checked, immutable, a clear error when the range is full), against
//! MemStore and DiskStore.

use std::collections::HashSet;
use std::sync::Arc;

use orchestra_api::admission::service_ip::{NODE_PORTS_PREFIX, SERVICE_IPS_PREFIX};
use orchestra_api::admission::{
    Admission, AdmissionConfig, AdmissionPlugin, AdmissionRequest, ServiceRanges,
};
use orchestra_api::registry::{ApiError, DeleteOptions};
use orchestra_api::resources::{
    FINALIZER_KUBERNETES, Namespace, NamespacePhase, Pod, Service, ServiceAccount, ServiceType,
};
use orchestra_api::testing::pod;
use orchestra_api::{ObjectMeta, Registry};
use orchestra_store::{MemStore, Store, StoreExt};

fn registry_with(store: Arc<dyn Store>, ranges: ServiceRanges) -> Registry {
    Registry::from_arc(store).with_admission(Admission::recommended(AdmissionConfig {
        service_ranges: ranges,
        ..AdmissionConfig::default()
    }))
}

/// What the ServiceAccount controller makes in every namespace: pods refer to it.
async fn default_account(registry: &Registry, namespace: &str) {
    registry
        .create(ServiceAccount {
            metadata: ObjectMeta::namespaced(namespace, "default"),
            ..ServiceAccount::default()
        })
        .await
        .expect("default service account");
}

fn mem(ranges: ServiceRanges) -> Registry {
    registry_with(Arc::new(MemStore::new()), ranges)
}

async fn disk(ranges: ServiceRanges) -> (Registry, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = orchestra_store::DiskStore::open(dir.path())
        .await
        .expect("open");
    (registry_with(Arc::new(store), ranges), dir)
}

fn ranges(cidr: &str) -> ServiceRanges {
    ServiceRanges {
        cluster_ips: cidr.parse().expect("cidr"),
        ..ServiceRanges::default()
    }
}

fn namespace(name: &str) -> Namespace {
    Namespace {
        metadata: ObjectMeta::named(name),
        ..Namespace::default()
    }
}

fn service(namespace: &str, name: &str, cluster_ip: &str) -> Service {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"clusterIP": cluster_ip, "selector": {"app": name}, "ports": [{"name": "http", "port": 80}]}
    }))
    .expect("service")
}

fn node_port_service(name: &str, node_port: Option<i32>) -> Service {
    let mut svc = service("default", name, "");
    svc.spec.type_ = Some(ServiceType::NodePort);
    svc.spec.ports[0].node_port = node_port;
    svc
}

fn invalid_detail(err: &ApiError) -> String {
    match err {
        ApiError::Invalid { errors, .. } => errors.to_string(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[tokio::test]
async fn creates_need_an_active_namespace() {
    let registry = mem(ServiceRanges::default());
    let err = registry
        .create(pod("shop", "web", "web"))
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.reason()), (403, "Forbidden"));
    assert!(
        err.to_string().contains("namespace shop does not exist"),
        "{err}"
    );
    // The system namespaces exist from the start, even before they are stored.
    default_account(&registry, "default").await;
    registry
        .create(pod("default", "web", "web"))
        .await
        .expect("default");
    registry.create(namespace("shop")).await.expect("namespace");
    default_account(&registry, "shop").await;
    registry
        .create(pod("shop", "web", "web"))
        .await
        .expect("pod in shop");
    // Cluster-scoped kinds need no namespace.
    registry.create(namespace("other")).await.expect("another");
}

#[tokio::test]
async fn namespace_deletion_is_held_by_the_kubernetes_finalizer() {
    let registry = mem(ServiceRanges::default());
    let created = registry.create(namespace("shop")).await.expect("create");
    let spec = created.spec.clone().expect("spec");
    assert_eq!(spec.finalizers, [FINALIZER_KUBERNETES]);
    assert_eq!(
        created.status.as_ref().and_then(|s| s.phase),
        Some(NamespacePhase::Active)
    );
    // Applying the manifest again (no spec) keeps the finalizer.
    let applied = registry.update(namespace("shop")).await.expect("apply");
    assert_eq!(applied.spec, Some(spec));

    let outcome = registry
        .delete::<Namespace>("", "shop", &DeleteOptions::default())
        .await
        .expect("delete");
    assert!(!outcome.is_deleted());
    let terminating = outcome.object().clone();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(
        terminating.status.as_ref().and_then(|s| s.phase),
        Some(NamespacePhase::Terminating)
    );
    let err = registry
        .create(pod("shop", "late", "late"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), 403);
    assert!(
        err.to_string()
            .contains("namespace shop because it is being terminated"),
        "{err}"
    );

    // The namespace controller clears the finalizer: the namespace goes away.
    let mut finalized = terminating.clone();
    finalized.spec.as_mut().expect("spec").finalizers.clear();
    registry.update(finalized).await.expect("finalize");
    let gone = registry.get::<Namespace>("", "shop").await.unwrap_err();
    assert!(gone.is_not_found(), "{gone:?}");
}

#[tokio::test]
async fn system_namespaces_are_created_at_start_and_never_deleted() {
    let registry = mem(ServiceRanges::default());
    registry.initialize().await.expect("initialize");
    registry
        .initialize()
        .await
        .expect("initialize is idempotent");
    for name in ["default", "kube-system", "kube-node-lease"] {
        registry.get::<Namespace>("", name).await.expect(name);
        let err = registry
            .delete::<Namespace>("", name, &DeleteOptions::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), 403, "{err}");
        assert!(err.to_string().contains(name), "{err}");
    }
}

#[tokio::test]
async fn pods_get_the_default_tolerations() {
    let registry = mem(ServiceRanges::default());
    default_account(&registry, "default").await;
    let created = registry
        .create(pod("default", "web", "web"))
        .await
        .expect("create");
    let tolerations: Vec<_> = created
        .spec
        .tolerations
        .iter()
        .map(|t| (t.key.as_str(), t.toleration_seconds))
        .collect();
    assert_eq!(
        tolerations,
        [
            ("node.kubernetes.io/not-ready", Some(300)),
            ("node.kubernetes.io/unreachable", Some(300))
        ]
    );
    // An update does not add them again (nor to a pod that lost them).
    let mut updated = created.clone();
    updated.spec.tolerations.truncate(1);
    let updated = registry.update(updated).await.expect("update");
    assert_eq!(updated.spec.tolerations.len(), 1);
}

async fn distinct_ips_under_concurrent_creates(registry: Registry, count: usize) {
    let tasks: Vec<_> = (0..count)
        .map(|i| {
            let registry = registry.clone();
            tokio::spawn(async move {
                registry
                    .create(service("default", &format!("svc-{i}"), ""))
                    .await
            })
        })
        .collect();
    let mut ips = HashSet::new();
    for task in tasks {
        let created = task.await.expect("join").expect("create");
        assert_eq!(
            created.spec.cluster_ips,
            std::slice::from_ref(&created.spec.cluster_ip)
        );
        assert!(created.spec.cluster_ip.starts_with("127.2."), "{created:?}");
        assert!(ips.insert(created.spec.cluster_ip), "an IP was given twice");
    }
    let claimed = registry
        .store()
        .list_prefix(SERVICE_IPS_PREFIX)
        .await
        .expect("list");
    assert_eq!(claimed.kvs.len(), count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_get_distinct_ips_mem_store() {
    distinct_ips_under_concurrent_creates(mem(ServiceRanges::default()), 200).await;
    // A small range makes concurrent creates pick the same free IPs: the losers retry.
    distinct_ips_under_concurrent_creates(mem(ranges("127.2.0.0/27")), 24).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_get_distinct_ips_disk_store() {
    let (registry, _dir) = disk(ranges("127.2.0.0/27")).await;
    distinct_ips_under_concurrent_creates(registry, 24).await;
}

#[tokio::test]
async fn a_full_range_is_a_clear_error_and_delete_releases() {
    let registry = mem(ranges("127.2.0.0/30"));
    let a = registry
        .create(service("default", "a", ""))
        .await
        .expect("a");
    let b = registry
        .create(service("default", "b", ""))
        .await
        .expect("b");
    assert_ne!(a.spec.cluster_ip, b.spec.cluster_ip);
    let err = registry
        .create(service("default", "c", ""))
        .await
        .unwrap_err();
    let detail = invalid_detail(&err);
    assert!(detail.contains("spec.clusterIP"), "{detail}");
    assert!(detail.contains("no cluster IP is free"), "{detail}");
    assert!(detail.contains("127.2.0.0/30"), "{detail}");
    // Nothing was stored for the refused one.
    assert!(registry.get::<Service>("default", "c").await.is_err());

    registry
        .delete::<Service>("default", "a", &DeleteOptions::default())
        .await
        .expect("delete");
    let key = format!("{SERVICE_IPS_PREFIX}{}", a.spec.cluster_ip);
    assert!(registry.store().get(key).await.expect("get").is_none());
    let c = registry
        .create(service("default", "c", ""))
        .await
        .expect("c");
    assert_eq!(c.spec.cluster_ip, a.spec.cluster_ip);
}

#[tokio::test]
async fn explicit_ips_are_checked() {
    let registry = mem(ServiceRanges::default());
    let x = registry
        .create(service("default", "x", "127.2.0.10"))
        .await
        .expect("x");
    assert_eq!(x.spec.cluster_ip, "127.2.0.10");
    let taken = registry
        .create(service("default", "y", "127.2.0.10"))
        .await
        .unwrap_err();
    let detail = invalid_detail(&taken);
    assert!(
        detail.contains("spec.clusterIP") && detail.contains("already allocated"),
        "{detail}"
    );
    assert!(detail.contains("Service default/x"), "{detail}");
    let outside = registry
        .create(service("default", "y", "10.0.0.1"))
        .await
        .unwrap_err();
    assert!(
        invalid_detail(&outside).contains("not in the valid range"),
        "{outside}"
    );
    // Headless services keep `None` and hold nothing.
    let headless = registry
        .create(service("default", "h", "None"))
        .await
        .expect("headless");
    assert_eq!(headless.spec.cluster_ip, "None");
    let held = registry
        .store()
        .list_prefix(SERVICE_IPS_PREFIX)
        .await
        .expect("list");
    assert_eq!(held.kvs.len(), 1);
}

#[tokio::test]
async fn the_cluster_ip_is_immutable_and_kept_on_apply() {
    let registry = mem(ServiceRanges::default());
    let created = registry
        .create(service("default", "x", ""))
        .await
        .expect("x");
    let mut changed = created.clone();
    changed.spec.cluster_ip = "127.2.9.9".into();
    changed.spec.cluster_ips = vec!["127.2.9.9".into()];
    let err = registry.update(changed).await.unwrap_err();
    let detail = invalid_detail(&err);
    assert!(
        detail.contains("spec.clusterIP") && detail.contains("field is immutable"),
        "{detail}"
    );
    // A manifest applied again has no clusterIP: the allocated one stays.
    let mut applied = service("default", "x", "");
    applied.spec.ports[0].port = 8080;
    let updated = registry.update(applied).await.expect("apply");
    assert_eq!(updated.spec.cluster_ip, created.spec.cluster_ip);
    assert_eq!(updated.spec.ports[0].port, 8080);
}

#[tokio::test]
async fn node_ports_are_allocated_checked_and_released() {
    let registry = mem(ServiceRanges::default());
    let a = registry
        .create(node_port_service("a", None))
        .await
        .expect("a");
    let port = a.spec.ports[0].node_port.expect("allocated");
    assert!((30000..=32767).contains(&port), "{port}");
    let taken = registry
        .create(node_port_service("b", Some(port)))
        .await
        .unwrap_err();
    let detail = invalid_detail(&taken);
    assert!(
        detail.contains("spec.ports[0].nodePort") && detail.contains("already allocated"),
        "{detail}"
    );
    let outside = registry
        .create(node_port_service("b", Some(8080)))
        .await
        .unwrap_err();
    assert!(
        invalid_detail(&outside).contains("30000-32767"),
        "{outside}"
    );

    // Applied again without the port: it stays.
    let again = registry
        .update(node_port_service("a", None))
        .await
        .expect("apply");
    assert_eq!(again.spec.ports[0].node_port, Some(port));
    // Back to ClusterIP: the node port is released and can be taken.
    registry
        .update(service("default", "a", ""))
        .await
        .expect("to ClusterIP");
    let key = format!("{NODE_PORTS_PREFIX}{port}");
    assert!(registry.store().get(key).await.expect("get").is_none());
    let b = registry
        .create(node_port_service("b", Some(port)))
        .await
        .expect("b takes the port");
    assert_eq!(b.spec.ports[0].node_port, Some(port));
}

/// An embedder's plug-in: mutating runs before validating, every write.
#[derive(Debug)]
struct Stamp;

#[async_trait::async_trait]
impl AdmissionPlugin for Stamp {
    fn name(&self) -> &'static str {
        "Stamp"
    }

    async fn mutate(&self, request: &mut AdmissionRequest<'_>) -> Result<(), ApiError> {
        let operation = request.operation();
        if let Some(object) = request.object_mut() {
            object
                .meta_mut()
                .annotations
                .insert("stamp".into(), format!("{operation:?}"));
        }
        Ok(())
    }

    async fn validate(&self, request: &AdmissionRequest<'_>) -> Result<(), ApiError> {
        match request.object() {
            Some(object) if object.meta().labels.contains_key("forbidden") => Err(
                ApiError::Forbidden(format!("{} is labelled forbidden", request.name())),
            ),
            Some(object) => {
                assert!(object.meta().annotations.contains_key("stamp"));
                Ok(())
            }
            None => Ok(()),
        }
    }
}

#[tokio::test]
async fn embedders_add_their_own_plugins() {
    let admission = Admission::new().with(Stamp);
    assert_eq!(admission.names(), ["Stamp"]);
    let registry = Registry::new(MemStore::new()).with_admission(admission);
    let created = registry
        .create(pod("default", "web", "web"))
        .await
        .expect("create");
    assert_eq!(created.metadata.annotations["stamp"], "Create");
    let updated = registry.update(created).await.expect("update");
    assert_eq!(updated.metadata.annotations["stamp"], "Update");
    let mut bad: Pod = pod("default", "bad", "bad");
    bad.metadata.labels.insert("forbidden".into(), "yes".into());
    let err = registry.create(bad).await.unwrap_err();
    assert_eq!(err.code(), 403);
    assert!(registry.get::<Pod>("default", "bad").await.is_err());
}
