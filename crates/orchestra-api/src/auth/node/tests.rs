//! Node A against node B: its own objects, B's objects, and secrets by pod references.

use std::time::Duration;

use orchestra_store::MemStore;

use super::*;
use crate::auth::{GROUP_AUTHENTICATED, GROUP_NODES, UserInfo};
use crate::resources::{EnvVar, EnvVarSource, KeySelector};
use crate::{LocalClient, testing};

fn node_user(name: &str) -> UserInfo {
    UserInfo::new(
        format!("system:node:{name}"),
        [GROUP_NODES, GROUP_AUTHENTICATED],
    )
}

fn req(
    user: &UserInfo,
    verb: Verb,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> RequestAttributes {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r.to_owned(), Some(s.to_owned())),
        None => (resource.to_owned(), None),
    };
    RequestAttributes {
        user: user.clone(),
        verb,
        api_group: group.into(),
        resource,
        subresource,
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
    }
}

fn bound(name: &str, node: &str, secret: Option<&str>) -> Pod {
    let mut pod = testing::pod("shop", name, "web");
    pod.spec.node_name = node.into();
    if let Some(secret) = secret {
        pod.spec.containers[0].env.push(EnvVar {
            name: "PASSWORD".into(),
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(KeySelector {
                    name: secret.into(),
                    key: "password".into(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        });
    }
    pod
}

fn allowed(authz: &NodeAuthorizer, request: &RequestAttributes) -> bool {
    authz.authorize(request) == Decision::Allow
}

#[test]
fn a_node_modifies_only_its_own_node_and_lease() {
    let authz = NodeAuthorizer::new();
    let a = node_user("a");
    for verb in [Verb::Create, Verb::Update, Verb::Patch] {
        assert!(allowed(
            &authz,
            &req(&a, verb, "", "nodes", None, Some("a"))
        ));
        assert!(
            !allowed(&authz, &req(&a, verb, "", "nodes", None, Some("b"))),
            "{verb}"
        );
    }
    assert!(allowed(
        &authz,
        &req(&a, Verb::Update, "", "nodes/status", None, Some("a"))
    ));
    let denied = authz.authorize(&req(&a, Verb::Update, "", "nodes/status", None, Some("b")));
    let Decision::Deny(text) = denied else {
        panic!("node a may not update node b: {denied:?}")
    };
    assert!(
        text.starts_with(
            "user \"system:node:a\" cannot update resource \"nodes/status\" named \"b\""
        ),
        "{text}"
    );
    assert!(!allowed(
        &authz,
        &req(&a, Verb::Delete, "", "nodes", None, Some("a"))
    ));
    assert!(!allowed(
        &authz,
        &req(&a, Verb::Create, "", "nodes", None, None)
    ));
    assert!(allowed(
        &authz,
        &req(&a, Verb::List, "", "nodes", None, None)
    ));

    let lease = |verb, name| {
        req(
            &a,
            verb,
            "coordination.k8s.io",
            "leases",
            Some("kube-node-lease"),
            name,
        )
    };
    for verb in [Verb::Get, Verb::Create, Verb::Update] {
        assert!(allowed(&authz, &lease(verb, Some("a"))), "{verb}");
        assert!(!allowed(&authz, &lease(verb, Some("b"))), "{verb}");
    }
    assert!(!allowed(&authz, &lease(Verb::List, None)));
    assert!(!allowed(
        &authz,
        &req(
            &a,
            Verb::Update,
            "coordination.k8s.io",
            "leases",
            Some("kube-system"),
            Some("a")
        )
    ));
}

#[test]
fn a_node_modifies_only_pods_bound_to_it() {
    let authz = NodeAuthorizer::new();
    authz.apply(&Event::Restarted(vec![
        bound("on-a", "a", None).into(),
        bound("on-b", "b", None).into(),
    ]));
    let a = node_user("a");
    for (verb, resource) in [
        (Verb::Update, "pods/status"),
        (Verb::Patch, "pods/status"),
        (Verb::Update, "pods"),
        (Verb::Delete, "pods"),
    ] {
        assert!(allowed(
            &authz,
            &req(&a, verb, "", resource, Some("shop"), Some("on-a"))
        ));
        assert!(
            !allowed(
                &authz,
                &req(&a, verb, "", resource, Some("shop"), Some("on-b"))
            ),
            "{verb} {resource}"
        );
        assert!(!allowed(
            &authz,
            &req(&a, verb, "", resource, Some("shop"), Some("unknown"))
        ));
    }
    // Reads of pods are open; creating and binding pods is not.
    assert!(allowed(
        &authz,
        &req(&a, Verb::Get, "", "pods", Some("shop"), Some("on-b"))
    ));
    assert!(allowed(
        &authz,
        &req(&a, Verb::Watch, "", "pods", None, None)
    ));
    assert!(!allowed(
        &authz,
        &req(&a, Verb::Create, "", "pods", Some("shop"), Some("x"))
    ));
    assert!(!allowed(
        &authz,
        &req(
            &a,
            Verb::Create,
            "",
            "pods/binding",
            Some("shop"),
            Some("on-b")
        )
    ));
    // Once the pod moves (deleted and recreated on b), a loses it.
    authz.apply(&Event::Deleted(Arc::new(bound("on-a", "a", None))));
    assert!(!allowed(
        &authz,
        &req(
            &a,
            Verb::Update,
            "",
            "pods/status",
            Some("shop"),
            Some("on-a")
        )
    ));
    // Anything outside the node's list is denied, not left to RBAC.
    assert!(!allowed(
        &authz,
        &req(
            &a,
            Verb::Get,
            "apps",
            "deployments",
            Some("shop"),
            Some("web")
        )
    ));
    // Other users are not this authorizer's concern.
    let alice = UserInfo::new("alice", [GROUP_AUTHENTICATED]);
    assert_eq!(
        authz.authorize(&req(&alice, Verb::Delete, "", "nodes", None, Some("a"))),
        Decision::NoOpinion
    );
}

#[test]
fn a_node_reads_a_secret_only_while_a_bound_pod_references_it() {
    let authz = NodeAuthorizer::new();
    let a = node_user("a");
    let get = req(&a, Verb::Get, "", "secrets", Some("shop"), Some("db"));
    authz.apply(&Event::Restarted(vec![
        bound("on-b", "b", Some("db")).into(),
    ]));
    assert!(!allowed(&authz, &get), "referenced only by b's pod");
    // An unbound pod referencing it does not count; binding it to a does.
    authz.apply(&Event::Applied(Arc::new(bound("web", "", Some("db")))));
    assert!(!allowed(&authz, &get));
    authz.apply(&Event::Applied(Arc::new(bound("web", "a", Some("db")))));
    assert!(allowed(&authz, &get));
    // A list or watch by `metadata.name=db` (the name in the attributes) is a named read.
    for verb in [Verb::List, Verb::Watch] {
        let by_name = req(&a, verb, "", "secrets", Some("shop"), Some("db"));
        assert!(allowed(&authz, &by_name), "{verb} by name");
        let other = req(&a, verb, "", "secrets", Some("shop"), Some("other"));
        assert!(!allowed(&authz, &other), "{verb} of another secret");
        let all = req(&a, verb, "", "secrets", Some("shop"), None);
        assert!(!allowed(&authz, &all), "{verb} of all secrets");
    }
    assert!(!allowed(
        &authz,
        &req(&a, Verb::Get, "", "secrets", Some("bank"), Some("db"))
    ));
    assert!(!allowed(
        &authz,
        &req(&a, Verb::List, "", "secrets", Some("shop"), None)
    ));
    assert!(!allowed(
        &authz,
        &req(&a, Verb::Get, "", "configmaps", Some("shop"), Some("db"))
    ));
    // The reference goes when the pod stops referencing the secret.
    authz.apply(&Event::Applied(Arc::new(bound("web", "a", None))));
    assert!(!allowed(&authz, &get));
}

#[test]
fn a_node_has_tokens_issued_only_for_the_accounts_its_pods_run_as() {
    let authz = NodeAuthorizer::new();
    let a = node_user("a");
    let token = |account: &str| {
        req(
            &a,
            Verb::Create,
            "",
            "serviceaccounts/token",
            Some("shop"),
            Some(account),
        )
    };
    let mut builder = bound("build", "b", None);
    builder.spec.service_account_name = "builder".into();
    authz.apply(&Event::Restarted(vec![
        bound("web", "a", None).into(),
        builder.into(),
    ]));
    assert!(allowed(&authz, &token("default")), "web runs as default");
    assert!(
        !allowed(&authz, &token("builder")),
        "only b's pod runs as builder"
    );
    assert!(!allowed(
        &authz,
        &req(
            &a,
            Verb::Get,
            "",
            "serviceaccounts",
            Some("shop"),
            Some("default")
        )
    ));
    assert!(!allowed(
        &authz,
        &req(
            &a,
            Verb::Create,
            "",
            "serviceaccounts/token",
            Some("bank"),
            Some("default")
        )
    ));
    authz.apply(&Event::Deleted(bound("web", "a", None).into()));
    assert!(!allowed(&authz, &token("default")), "the pod is gone");
}

#[test]
fn env_from_and_volumes_count_as_references() {
    use crate::resources::{
        ConfigMapProjection, ConfigMapVolumeSource, EnvFromRef, EnvFromSource,
        ProjectedVolumeSource, SecretProjection, SecretVolumeSource, Volume, VolumeProjection,
    };
    let mut pod = bound("web", "a", None);
    pod.spec.init_containers = vec![pod.spec.containers[0].clone()];
    pod.spec.init_containers[0].env_from.push(EnvFromSource {
        prefix: String::new(),
        config_map_ref: Some(EnvFromRef {
            name: "settings".into(),
            optional: None,
        }),
        secret_ref: None,
    });
    pod.spec.containers[0].env_from.push(EnvFromSource {
        prefix: "DB_".into(),
        config_map_ref: None,
        secret_ref: Some(EnvFromRef {
            name: "db".into(),
            optional: Some(true),
        }),
    });
    pod.spec.volumes = vec![
        Volume {
            name: "creds".into(),
            secret: Some(SecretVolumeSource {
                secret_name: "tls".into(),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "conf".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: "nginx".into(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "all".into(),
            projected: Some(ProjectedVolumeSource {
                sources: vec![
                    VolumeProjection {
                        config_map: Some(ConfigMapProjection {
                            name: "features".into(),
                            ..ConfigMapProjection::default()
                        }),
                        ..VolumeProjection::default()
                    },
                    VolumeProjection {
                        secret: Some(SecretProjection {
                            name: "api-key".into(),
                            ..SecretProjection::default()
                        }),
                        ..VolumeProjection::default()
                    },
                ],
                default_mode: None,
            }),
            ..Volume::default()
        },
    ];
    assert_eq!(
        referenced_objects(&pod),
        BTreeSet::from([
            (RefKind::Secret, "api-key".to_owned()),
            (RefKind::Secret, "db".to_owned()),
            (RefKind::Secret, "tls".to_owned()),
            (RefKind::ConfigMap, "features".to_owned()),
            (RefKind::ConfigMap, "nginx".to_owned()),
            (RefKind::ConfigMap, "settings".to_owned()),
            (RefKind::ServiceAccount, "default".to_owned()),
        ])
    );
    let authz = NodeAuthorizer::new();
    authz.apply(&Event::Restarted(vec![pod.into()]));
    let a = node_user("a");
    for (resource, name) in [
        ("secrets", "tls"),
        ("secrets", "db"),
        ("configmaps", "nginx"),
        ("configmaps", "settings"),
    ] {
        let get = req(&a, Verb::Get, "", resource, Some("shop"), Some(name));
        assert!(allowed(&authz, &get), "{resource}/{name}");
    }
    let other = req(&a, Verb::Get, "", "secrets", Some("shop"), Some("other"));
    assert!(!allowed(&authz, &other));
}

#[tokio::test(start_paused = true)]
async fn the_graph_follows_pods_through_a_client() {
    let client = LocalClient::new(MemStore::new());
    let authz = NodeAuthorizer::new();
    let mut changes = authz.subscribe();
    let feed = tokio::spawn({
        let authz = authz.clone();
        let client = client.clone();
        async move { authz.run(client).await }
    });
    client
        .create(&bound("web", "", Some("db")))
        .await
        .expect("create");
    let get = req(
        &node_user("a"),
        Verb::Get,
        "",
        "secrets",
        Some("shop"),
        Some("db"),
    );
    assert!(!allowed(&authz, &get));
    client.bind("shop", "web", "a").await.expect("bind");
    tokio::time::timeout(Duration::from_secs(60), async {
        while !allowed(&authz, &get) {
            changes.changed().await.expect("feed alive");
        }
    })
    .await
    .expect("the graph saw the binding");
    feed.abort();
}
