//! Sidecar injection through a registry with the recommended chain configured to inject:
//! pods of a namespace labelled `mesh.orchestra.dev/inject: enabled` (or annotated pods) get
//! the redirect's init container and then the mesh proxy, first among their init
//! containers (the proxy a native sidecar that also mounts the default token, running as
//! the uid the redirect exempts, on the ports the redirect sends to); other pods are left
//! alone, an injected pod created again gets nothing twice, and bad annotations are 400s
//! naming them.

use std::collections::BTreeMap;

use orchestra_api::admission::service_account::TOKEN_MOUNT_PATH;
use orchestra_api::admission::sidecar_injection::{
    INIT_CONTAINER, INJECT_ANNOTATION, PROXY_CONTAINER, SKIP_OUTBOUND_PORTS_ANNOTATION,
    SKIP_PROXY_INIT_ANNOTATION,
};
use orchestra_api::admission::{Admission, AdmissionConfig, RedirectMode, SidecarInjectionConfig};
use orchestra_api::resources::{Container, Namespace, Pod, ServiceAccount};
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

/// A registry injecting with `config`, namespace `shop` enabled and `plain` not.
async fn registry_with(config: SidecarInjectionConfig) -> Registry {
    let registry =
        Registry::new(MemStore::new()).with_admission(Admission::recommended(AdmissionConfig {
            sidecar_injection: Some(config),
            ..AdmissionConfig::default()
        }));
    namespace(&registry, "shop", true).await;
    namespace(&registry, "plain", false).await;
    registry
}

async fn registry() -> Registry {
    registry_with(SidecarInjectionConfig::new("orchestra:dev", "example.org")).await
}

fn init_names(pod: &Pod) -> Vec<&str> {
    pod.spec
        .init_containers
        .iter()
        .map(|c| c.name.as_str())
        .collect()
}

fn init_container<'a>(pod: &'a Pod, name: &str) -> &'a Container {
    pod.spec
        .init_containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", init_names(pod)))
}

/// The value after `flag` in `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1).map(String::as_str)
}

/// The port of the proxy's `--inbound`/`--outbound`/`--admin` listener address.
fn listener_port(args: &[String], name: &str) -> String {
    let value = flag(args, name).unwrap_or_else(|| panic!("no {name} in {args:?}"));
    value.rsplit_once(':').unwrap().1.to_owned()
}

#[tokio::test(start_paused = true)]
async fn pods_of_an_enabled_namespace_get_the_redirect_and_the_proxy() {
    let registry = registry().await;
    let created = registry
        .create(pod("shop", "web", "web"))
        .await
        .expect("create");
    assert_eq!(init_names(&created), [INIT_CONTAINER, PROXY_CONTAINER]);
    let proxy = &created.spec.init_containers[1];
    assert!(proxy.is_sidecar());
    assert!(!created.spec.init_containers[0].is_sidecar());
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
    assert_eq!(init_names(&created), [INIT_CONTAINER, PROXY_CONTAINER]);

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
async fn the_init_container_redirects_to_the_proxys_ports_and_exempts_its_uid() {
    let registry = registry_with(SidecarInjectionConfig {
        redirect: RedirectMode::InitContainer { proxy_uid: 2600 },
        ..SidecarInjectionConfig::new("orchestra:dev", "example.org")
    })
    .await;
    let created = registry
        .create(pod("shop", "web", "web"))
        .await
        .expect("create");
    let init = init_container(&created, INIT_CONTAINER);
    let proxy = init_container(&created, PROXY_CONTAINER);

    assert_eq!(init.command, ["orchestra"]);
    assert_eq!(init.args[..2], ["sidecar", "init"]);
    for (init_flag, proxy_flag) in [
        ("--inbound-port", "--inbound"),
        ("--outbound-port", "--outbound"),
        ("--admin-port", "--admin"),
    ] {
        assert_eq!(
            flag(&init.args, init_flag).map(str::to_owned),
            Some(listener_port(&proxy.args, proxy_flag)),
            "{init_flag} is the proxy's {proxy_flag}"
        );
    }
    let declared: Vec<String> = proxy
        .ports
        .iter()
        .map(|p| p.container_port.to_string())
        .collect();
    assert_eq!(
        declared,
        [
            flag(&init.args, "--inbound-port").unwrap(),
            flag(&init.args, "--admin-port").unwrap()
        ]
    );

    // One uid: the proxy runs as the uid the redirect leaves alone.
    assert_eq!(flag(&init.args, "--proxy-uid"), Some("2600"));
    let proxy_security = proxy
        .security_context
        .as_ref()
        .expect("proxy securityContext");
    assert_eq!(proxy_security.run_as_user, Some(2600));

    // The init container: root, keeping NET_ADMIN alone.
    let init_security = init
        .security_context
        .as_ref()
        .expect("init securityContext");
    assert_eq!(init_security.run_as_user, Some(0));
    let capabilities = init_security.capabilities.as_ref().expect("capabilities");
    assert_eq!(capabilities.add, ["NET_ADMIN"]);
    assert_eq!(capabilities.drop, ["ALL"]);

    // The stored pod reads back the same (securityContext survives the store).
    let stored: Pod = registry.get("shop", "web").await.expect("get");
    assert_eq!(stored.spec.init_containers, created.spec.init_containers);
}

#[tokio::test(start_paused = true)]
async fn an_injected_pod_created_again_gets_nothing_twice() {
    let registry = registry().await;
    let first = registry
        .create(pod("shop", "web", "web"))
        .await
        .expect("create");
    // What `ctl get -o yaml` prints, created again under another name.
    let mut again = first.clone();
    again.metadata = ObjectMeta {
        labels: first.metadata.labels.clone(),
        annotations: first.metadata.annotations.clone(),
        ..ObjectMeta::namespaced("shop", "web-2")
    };
    again.status = None;
    registry.create(again).await.expect("create again");
    let first: Pod = registry.get("shop", "web").await.expect("get");
    let second: Pod = registry.get("shop", "web-2").await.expect("get");
    assert_eq!(init_names(&second), [INIT_CONTAINER, PROXY_CONTAINER]);
    // The same containers (defaulting, which runs before admission, fills in the second
    // pod's fields the injection left empty in the first: only what injection sets counts).
    let injected = |pod: &Pod| -> Vec<_> {
        pod.spec
            .init_containers
            .iter()
            .map(|c| {
                (
                    c.command.clone(),
                    c.args.clone(),
                    c.security_context.clone(),
                    c.volume_mounts.len(),
                )
            })
            .collect()
    };
    assert_eq!(injected(&second), injected(&first));
    let count = |pod: &Pod| {
        pod.spec
            .volumes
            .iter()
            .filter(|v| v.name == "mesh-proxy-token")
            .count()
    };
    assert_eq!(count(&second), 1);
}

#[tokio::test(start_paused = true)]
async fn skip_annotations_shape_the_redirect_and_bad_ones_are_refused() {
    let registry = registry().await;
    let mut cni = pod("shop", "cni", "cni");
    cni.metadata
        .annotations
        .insert(SKIP_PROXY_INIT_ANNOTATION.into(), "true".into());
    let created = registry.create(cni).await.expect("create");
    assert_eq!(init_names(&created), [PROXY_CONTAINER]);
    let proxy = &created.spec.init_containers[0];
    assert_eq!(
        proxy.security_context.as_ref().and_then(|s| s.run_as_user),
        Some(2102),
        "still the uid a redirect done elsewhere exempts"
    );

    let mut mysql_client = pod("shop", "orders", "orders");
    mysql_client
        .metadata
        .annotations
        .insert(SKIP_OUTBOUND_PORTS_ANNOTATION.into(), "3306, 5432".into());
    let created = registry.create(mysql_client).await.expect("create");
    let init = init_container(&created, INIT_CONTAINER);
    assert_eq!(flag(&init.args, "--skip-outbound-ports"), Some("3306,5432"));
    assert_eq!(flag(&init.args, "--skip-inbound-ports"), None);

    for (key, value) in [
        (SKIP_PROXY_INIT_ANNOTATION, "maybe"),
        (SKIP_OUTBOUND_PORTS_ANNOTATION, "mysql"),
    ] {
        let mut bad = pod("shop", "bad", "bad");
        bad.metadata.annotations.insert(key.into(), value.into());
        let err = registry.create(bad).await.unwrap_err();
        assert_eq!(err.code(), 400, "{err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "metadata.annotations[{key}]: Invalid value: {value:?}"
            )),
            "{text}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn without_a_redirect_the_proxy_alone_is_injected() {
    let registry = registry_with(SidecarInjectionConfig {
        redirect: RedirectMode::None,
        ..SidecarInjectionConfig::new("orchestra:dev", "example.org")
    })
    .await;
    let created = registry
        .create(pod("shop", "web", "web"))
        .await
        .expect("create");
    assert_eq!(init_names(&created), [PROXY_CONTAINER]);
    assert_eq!(created.spec.init_containers[0].security_context, None);
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
