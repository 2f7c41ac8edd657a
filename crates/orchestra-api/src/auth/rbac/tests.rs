//! The index's scoping rules, and the authorizer fed from a LocalClient.

use std::time::Duration;

use orchestra_store::MemStore;

use super::*;
use crate::auth::{GROUP_AUTHENTICATED, UserInfo, Verb};
use crate::meta::ObjectMeta;
use crate::registry::DeleteOptions;
use crate::resources::RoleRef;
use crate::{Client, LocalClient};

fn request(
    user: UserInfo,
    verb: Verb,
    resource: &str,
    namespace: Option<&str>,
) -> RequestAttributes {
    RequestAttributes {
        user,
        verb,
        api_group: String::new(),
        resource: resource.into(),
        subresource: None,
        namespace: namespace.map(str::to_owned),
        name: None,
    }
}

fn alice() -> UserInfo {
    UserInfo::new("alice", [GROUP_AUTHENTICATED])
}

fn reader(namespace: &str) -> Role {
    Role {
        metadata: ObjectMeta::namespaced(namespace, "reader"),
        rules: vec![PolicyRule::new(&[""], &["pods"], &["get", "list"])],
    }
}

fn pod_admin() -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta::named("pod-admin"),
        rules: vec![PolicyRule::new(&[""], &["pods", "nodes"], &["*"])],
    }
}

fn binding(namespace: &str, subject: Subject, role_ref: RoleRef) -> RoleBinding {
    RoleBinding {
        metadata: ObjectMeta::namespaced(namespace, "b"),
        subjects: vec![subject],
        role_ref,
    }
}

#[test]
fn a_role_binding_grants_only_in_its_namespace() {
    let index = RbacIndex::build(
        &[reader("shop")],
        &[],
        &[binding(
            "shop",
            Subject::user("alice"),
            RoleRef::role("reader"),
        )],
        &[],
    );
    assert!(index.allows(&request(alice(), Verb::List, "pods", Some("shop"))));
    assert!(!index.allows(&request(alice(), Verb::List, "pods", Some("bank"))));
    // A list across all namespaces is not inside the binding's namespace.
    assert!(!index.allows(&request(alice(), Verb::List, "pods", None)));
    assert!(!index.allows(&request(alice(), Verb::Delete, "pods", Some("shop"))));
    let bob = UserInfo::new("bob", [GROUP_AUTHENTICATED]);
    assert!(!index.allows(&request(bob, Verb::List, "pods", Some("shop"))));
}

#[test]
fn a_role_binding_may_reference_a_cluster_role_scoped_to_its_namespace() {
    let index = RbacIndex::build(
        &[],
        &[pod_admin()],
        &[binding(
            "shop",
            Subject::user("alice"),
            RoleRef::cluster_role("pod-admin"),
        )],
        &[],
    );
    assert!(index.allows(&request(alice(), Verb::Delete, "pods", Some("shop"))));
    assert!(!index.allows(&request(alice(), Verb::Delete, "pods", Some("bank"))));
    // Cluster-scoped resources are outside every namespace.
    assert!(!index.allows(&request(alice(), Verb::Get, "nodes", None)));
}

#[test]
fn a_cluster_role_binding_grants_everywhere() {
    let crb = ClusterRoleBinding {
        metadata: ObjectMeta::named("admins"),
        subjects: vec![Subject::group("pod-admins")],
        role_ref: RoleRef::cluster_role("pod-admin"),
    };
    let index = RbacIndex::build(&[], &[pod_admin()], &[], &[crb]);
    let carol = UserInfo::new("carol", ["pod-admins"]);
    assert!(index.allows(&request(carol.clone(), Verb::Get, "nodes", None)));
    assert!(index.allows(&request(carol.clone(), Verb::Create, "pods", Some("any"))));
    assert!(!index.allows(&request(carol, Verb::Get, "services", Some("any"))));
    assert!(!index.allows(&request(alice(), Verb::Get, "nodes", None)));
}

#[test]
fn role_refs_resolve_by_kind_and_namespace() {
    // A RoleBinding naming a Role of another namespace, or a missing role, grants nothing.
    let index = RbacIndex::build(
        &[reader("bank")],
        &[],
        &[
            binding("shop", Subject::user("alice"), RoleRef::role("reader")),
            binding(
                "shop",
                Subject::user("alice"),
                RoleRef::cluster_role("reader"),
            ),
        ],
        &[],
    );
    assert!(!index.allows(&request(alice(), Verb::List, "pods", Some("shop"))));
    assert!(!index.allows(&request(alice(), Verb::List, "pods", Some("bank"))));
}

#[test]
fn service_accounts_and_masters() {
    let index = RbacIndex::build(
        &[reader("shop")],
        &[],
        &[binding(
            "shop",
            // No namespace: the binding's.
            Subject {
                kind: "ServiceAccount".into(),
                name: "builder".into(),
                ..Subject::default()
            },
            RoleRef::role("reader"),
        )],
        &[],
    );
    let sa = UserInfo::new(
        service_account_user("shop", "builder"),
        ["system:serviceaccounts", GROUP_AUTHENTICATED],
    );
    assert!(index.allows(&request(sa, Verb::Get, "pods", Some("shop"))));
    let admin = UserInfo::new("root", [GROUP_MASTERS]);
    assert!(RbacIndex::default().allows(&request(admin, Verb::Delete, "nodes", None)));
}

#[test]
fn permissions_are_the_union_of_bindings() {
    let writer = Role {
        metadata: ObjectMeta::namespaced("shop", "writer"),
        rules: vec![PolicyRule::new(&[""], &["pods"], &["create"])],
    };
    let mut second = binding("shop", Subject::group("devs"), RoleRef::role("writer"));
    second.metadata.name = "c".into();
    let index = RbacIndex::build(
        &[reader("shop"), writer],
        &[],
        &[
            binding("shop", Subject::user("alice"), RoleRef::role("reader")),
            second,
        ],
        &[],
    );
    let alice_dev = UserInfo::new("alice", ["devs"]);
    assert!(index.allows(&request(
        alice_dev.clone(),
        Verb::List,
        "pods",
        Some("shop")
    )));
    assert!(index.allows(&request(alice_dev, Verb::Create, "pods", Some("shop"))));
    assert!(!index.allows(&request(alice(), Verb::Create, "pods", Some("shop"))));
}

/// Waits (in paused time, without real sleeping) until `check` holds after a feed change.
async fn until(rbac: &RbacAuthorizer, check: impl Fn() -> bool) {
    let mut state = rbac.subscribe();
    tokio::time::timeout(Duration::from_secs(60), async {
        while !check() {
            state.changed().await.expect("feed alive");
        }
    })
    .await
    .expect("the authorizer saw the change");
}

#[tokio::test(start_paused = true)]
async fn creating_a_binding_grants_and_deleting_it_revokes() {
    let client = LocalClient::new(MemStore::new());
    client.create(&reader("shop")).await.expect("role");
    let rbac = RbacAuthorizer::new();
    let feed = tokio::spawn({
        let rbac = rbac.clone();
        let client = client.clone();
        async move { rbac.run(client).await }
    });
    rbac.wait_until_ready().await;
    let list = request(alice(), Verb::List, "pods", Some("shop"));
    assert_eq!(rbac.authorize(&list), Decision::NoOpinion);

    client
        .create(&binding(
            "shop",
            Subject::user("alice"),
            RoleRef::role("reader"),
        ))
        .await
        .expect("binding");
    until(&rbac, || rbac.authorize(&list) == Decision::Allow).await;

    // Changing the role changes what the binding grants.
    let mut role: Role = client.get("shop", "reader").await.expect("get");
    role.rules[0].verbs = vec!["get".into()];
    client.update(&role).await.expect("update");
    until(&rbac, || rbac.authorize(&list) == Decision::NoOpinion).await;
    role = client.get("shop", "reader").await.expect("get");
    role.rules[0].verbs = vec!["list".into()];
    client.update(&role).await.expect("update");
    until(&rbac, || rbac.authorize(&list) == Decision::Allow).await;

    client
        .delete::<RoleBinding>("shop", "b", &DeleteOptions::default())
        .await
        .expect("delete");
    until(&rbac, || rbac.authorize(&list) == Decision::NoOpinion).await;
    feed.abort();
}
