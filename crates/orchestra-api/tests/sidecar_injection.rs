//! Sidecar injection through a registry with the recommended chain configured to inject:
//! pods of a namespace labelled `mesh.orchestra.dev/inject: enabled` (or annotated pods) get
//! the mesh proxy as their first init container, a native sidecar that also mounts the
//! default token; other pods are left alone.

use std::collections::BTreeMap;

use orchestra_api::admission::service_account::TOKEN_MOUNT_PATH;
use orchestra_api::admission::sidecar_injection::{INJECT_ANNOTATION, PROXY_CONTAINER};
use orchestra_api::admission::{Admission, AdmissionConfig, SidecarInjectionConfig};
use orchestra_api::resources::{Namespace, Pod, ServiceAccount};
use orchestra_api::testing::pod;
use orchestra_api::{ObjectMeta, Registry};
use orchestra_store::MemStore;

async fn namespace(registry: &Registry, name: &str, inject: bool) {
    let labels = if inject {
        BTreeMap::from([(INJECT_ANNOTATION.to_owned(), "enabled".to_owned())])
    } else {
        BTreeMap::new()
    };
    registry
        .create(Namespace {
            metadata: ObjectMeta {
                labels,
                ..ObjectMeta::named(name)
            },
            ..Namespace::default()
        })
        .await
        .expect("namespace");
    registry
        .create(ServiceAccount {
            metadata: ObjectMeta::namespaced(name, "default"),
            ..ServiceAccount::default()
        })
        .await
        .expect("default account");
}

fn init_names(pod: &Pod) -> Vec<&str> {
    pod.spec
        .init_containers
        .iter()
        .map(|c| c.name.as_str())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn pods_of_an_enabled_namespace_get_the_proxy() {
    let registry =
        Registry::new(MemStore::new()).with_admission(Admission::recommended(AdmissionConfig {
            sidecar_injection: Some(SidecarInjectionConfig {
                image: "orchestra:dev".into(),
                server: None,
                trust_domain: "example.org".into(),
            }),
            ..AdmissionConfig::default()
        }));
    namespace(&registry, "shop", true).await;
    namespace(&registry, "plain", false).await;

    let created = registry
        .create(pod("shop", "web", "web"))
        .await
        .expect("create");
    assert_eq!(init_names(&created), [PROXY_CONTAINER]);
    let proxy = &created.spec.init_containers[0];
    assert!(proxy.is_sidecar());
    // The ServiceAccount plug-in ran after the injection: the proxy mounts the token too.
    assert!(
        proxy
            .volume_mounts
            .iter()
            .any(|m| m.mount_path == TOKEN_MOUNT_PATH)
    );
    assert!(
        created
            .spec
            .volumes
            .iter()
            .any(|v| v.name == "mesh-proxy-token")
    );

    // A pod of the namespace that opts out, and a pod of a plain namespace: untouched.
    let mut opted_out = pod("shop", "batch", "batch");
    opted_out
        .metadata
        .annotations
        .insert(INJECT_ANNOTATION.into(), "disabled".into());
    let created = registry.create(opted_out).await.expect("create");
    assert!(created.spec.init_containers.is_empty());
    let created = registry
        .create(pod("plain", "web", "web"))
        .await
        .expect("create");
    assert!(created.spec.init_containers.is_empty());

    // A pod annotated by itself, in a plain namespace: injected.
    let mut asking = pod("plain", "api", "api");
    asking
        .metadata
        .annotations
        .insert(INJECT_ANNOTATION.into(), "enabled".into());
    let created = registry.create(asking).await.expect("create");
    assert_eq!(init_names(&created), [PROXY_CONTAINER]);

    // A bad app-port annotation is refused by name.
    let mut bad = pod("shop", "bad", "bad");
    bad.metadata
        .annotations
        .insert("mesh.orchestra.dev/app-port".into(), "http".into());
    let err = registry.create(bad).await.unwrap_err();
    assert_eq!(err.code(), 400, "{err}");
    assert!(
        err.to_string().contains("mesh.orchestra.dev/app-port"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn without_configuration_nothing_is_injected() {
    let registry = Registry::new(MemStore::new())
        .with_admission(Admission::recommended(AdmissionConfig::default()));
    namespace(&registry, "shop", true).await;
    let created = registry
        .create(pod("shop", "web", "web"))
        .await
        .expect("create");
    assert!(created.spec.init_containers.is_empty());
}
