//! The built-in roles are valid, cover each component's calls, and are reconciled.

use orchestra_store::MemStore;

use super::*;
use crate::LocalClient;
use crate::Resource;
use crate::auth::rbac::RbacIndex;
use crate::auth::{GROUP_AUTHENTICATED, RequestAttributes, UserInfo, Verb};
use crate::resources::RoleBinding;

fn index() -> RbacIndex {
    let roles = default_cluster_roles();
    let bindings = default_cluster_role_bindings();
    RbacIndex::build([], &roles, std::iter::empty::<&RoleBinding>(), &bindings)
}

fn req(
    user: &UserInfo,
    verb: Verb,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
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
        name: Some("x".into()),
    }
}

#[test]
fn the_built_in_objects_are_valid() {
    for mut role in default_cluster_roles() {
        role.apply_defaults();
        assert!(
            role.validate().is_empty(),
            "{}: {}",
            role.metadata.name,
            role.validate()
        );
    }
    for mut binding in default_cluster_role_bindings() {
        binding.apply_defaults();
        assert!(
            binding.validate().is_empty(),
            "{}: {}",
            binding.metadata.name,
            binding.validate()
        );
    }
}

/// Every call the scheduler makes (orchestra-sched's run loop and default binder).
#[test]
fn the_scheduler_may_do_what_it_does_and_no_more() {
    let index = index();
    let user = UserInfo::new(SCHEDULER_USER, [GROUP_AUTHENTICATED]);
    for (verb, group, resource, ns) in [
        (Verb::List, "", "pods", None),
        (Verb::Watch, "", "pods", None),
        (Verb::List, "", "nodes", None),
        (Verb::Watch, "", "nodes", None),
        (Verb::Get, "", "pods", Some("shop")),
        (Verb::Create, "", "pods/binding", Some("shop")),
        (Verb::Update, "", "pods/status", Some("shop")),
        (Verb::Delete, "", "pods", Some("shop")),
        (Verb::Create, "", "events", Some("shop")),
    ] {
        assert!(
            index.allows(&req(&user, verb, group, resource, ns)),
            "{verb} {resource}"
        );
    }
    for (verb, group, resource, ns) in [
        (Verb::Delete, "", "nodes", None),
        (Verb::Update, "", "pods", Some("shop")),
        (Verb::Get, "", "secrets", Some("shop")),
        (Verb::Create, "apps", "deployments", Some("shop")),
    ] {
        assert!(
            !index.allows(&req(&user, verb, group, resource, ns)),
            "{verb} {resource}"
        );
    }
}

/// The service proxy and the cluster DNS list and watch Services and Endpoints in every
/// namespace (orchestra-mesh's followers), and may do nothing else.
#[test]
fn the_proxy_and_the_dns_only_read_services_and_endpoints() {
    let index = index();
    let proxy = UserInfo::new(PROXY_USER, [GROUP_AUTHENTICATED]);
    for user in [&proxy, &dns_user()] {
        for resource in ["services", "endpoints"] {
            for verb in [Verb::List, Verb::Watch] {
                assert!(
                    index.allows(&req(user, verb, "", resource, None)),
                    "{} {verb} {resource}",
                    user.name
                );
            }
        }
        for (verb, resource, ns) in [
            (Verb::Create, "pods", Some("shop")),
            (Verb::Delete, "pods", Some("shop")),
            (Verb::List, "pods", None),
            (Verb::Update, "services", Some("shop")),
            (Verb::Create, "endpoints", Some("shop")),
            (Verb::Delete, "endpoints", Some("shop")),
            (Verb::Get, "secrets", Some("shop")),
            (Verb::Update, "nodes", None),
            (Verb::Create, "events", Some("shop")),
        ] {
            assert!(
                !index.allows(&req(user, verb, "", resource, ns)),
                "{} {verb} {resource}",
                user.name
            );
        }
    }
    assert_eq!(
        dns_user().name,
        "system:serviceaccount:kube-system:coredns",
        "the binding's service account subject names this user"
    );
}

/// Every call the controller manager's controllers make.
#[test]
fn the_controller_manager_may_do_what_it_does() {
    let index = index();
    let user = UserInfo::new(CONTROLLER_MANAGER_USER, [GROUP_AUTHENTICATED]);
    let mut calls = Vec::new();
    for (group, resource) in [
        ("", "pods"),
        ("", "nodes"),
        ("", "services"),
        ("", "endpoints"),
        ("", "namespaces"),
        ("", "events"),
        ("", "serviceaccounts"),
        ("apps", "deployments"),
        ("apps", "replicasets"),
        ("apps", "daemonsets"),
        ("apps", "statefulsets"),
        ("batch", "jobs"),
        ("coordination.k8s.io", "leases"),
    ] {
        calls.push((Verb::List, group, resource));
        calls.push((Verb::Watch, group, resource));
    }
    calls.extend([
        (Verb::Create, "", "pods"),
        (Verb::Delete, "", "pods"),
        (Verb::Update, "", "pods"),
        (Verb::Update, "", "pods/status"),
        (Verb::Create, "apps", "replicasets"),
        (Verb::Update, "apps", "replicasets"),
        (Verb::Update, "apps", "replicasets/status"),
        (Verb::Update, "apps", "deployments"),
        (Verb::Update, "apps", "deployments/status"),
        (Verb::Update, "apps", "daemonsets/status"),
        (Verb::Update, "apps", "statefulsets/status"),
        (Verb::Update, "batch", "jobs/status"),
        (Verb::Delete, "apps", "replicasets"),
        (Verb::Create, "", "endpoints"),
        (Verb::Update, "", "endpoints"),
        (Verb::Delete, "", "endpoints"),
        (Verb::Update, "", "nodes"),
        (Verb::Update, "", "nodes/status"),
        (Verb::Update, "", "namespaces/status"),
        (Verb::Delete, "", "namespaces"),
        (Verb::Get, "coordination.k8s.io", "leases"),
        (Verb::Create, "coordination.k8s.io", "leases"),
        (Verb::Update, "coordination.k8s.io", "leases"),
        (Verb::Delete, "", "events"),
        (Verb::Delete, "", "services"),
        (Verb::Update, "apps", "deployments"),
        (Verb::Create, "", "serviceaccounts"),
        (Verb::Delete, "", "serviceaccounts"),
    ]);
    for (verb, group, resource) in calls {
        assert!(
            index.allows(&req(&user, verb, group, resource, Some("shop"))),
            "{verb} {group} {resource}"
        );
    }
    assert!(!index.allows(&req(
        &user,
        Verb::Create,
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        None
    )));
}

#[test]
fn nodes_views_and_masters() {
    let index = index();
    let node = UserInfo::new("system:node:a", [GROUP_NODES, GROUP_AUTHENTICATED]);
    for (verb, group, resource) in [
        (Verb::Create, "", "nodes"),
        (Verb::Update, "", "nodes/status"),
        (Verb::Watch, "", "pods"),
        (Verb::Update, "", "pods/status"),
        (Verb::Update, "", "pods"),
        (Verb::List, "", "services"),
        (Verb::Get, "coordination.k8s.io", "leases"),
        (Verb::Update, "coordination.k8s.io", "leases"),
        (Verb::Create, "", "events"),
    ] {
        assert!(
            index.allows(&req(&node, verb, group, resource, Some("shop"))),
            "{verb} {resource}"
        );
    }
    assert!(!index.allows(&req(&node, Verb::Create, "", "pods/binding", Some("shop"))));
    let admin = UserInfo::new("root", [GROUP_MASTERS]);
    assert!(index.allows(&req(
        &admin,
        Verb::Delete,
        "rbac.authorization.k8s.io",
        "clusterroles",
        None
    )));
    // `view` reads workloads but not secrets; `edit` writes workloads but not roles.
    let roles = default_cluster_roles();
    let bind = |role: &str| RoleBinding {
        metadata: ObjectMeta::namespaced("shop", role),
        subjects: vec![Subject::user("dana")],
        role_ref: RoleRef::cluster_role(role),
    };
    let dana = UserInfo::new("dana", [GROUP_AUTHENTICATED]);
    let view = RbacIndex::build([], &roles, &[bind("view")], []);
    assert!(view.allows(&req(&dana, Verb::List, "apps", "deployments", Some("shop"))));
    assert!(!view.allows(&req(&dana, Verb::Get, "", "secrets", Some("shop"))));
    assert!(!view.allows(&req(&dana, Verb::Delete, "", "pods", Some("shop"))));
    let edit = RbacIndex::build([], &roles, &[bind("edit")], []);
    assert!(edit.allows(&req(&dana, Verb::Delete, "", "pods", Some("shop"))));
    assert!(!edit.allows(&req(
        &dana,
        Verb::Create,
        "rbac.authorization.k8s.io",
        "rolebindings",
        Some("shop")
    )));
    let admin_role = RbacIndex::build([], &roles, &[bind("admin")], []);
    assert!(admin_role.allows(&req(
        &dana,
        Verb::Create,
        "rbac.authorization.k8s.io",
        "rolebindings",
        Some("shop")
    )));
    assert!(!admin_role.allows(&req(&dana, Verb::Delete, "", "pods", Some("bank"))));
}

#[tokio::test]
async fn ensure_default_roles_creates_then_reconciles() {
    let client = LocalClient::new(MemStore::new());
    let first = ensure_default_roles(&client).await.expect("bootstrap");
    assert_eq!(first.created.len(), 16, "{first:?}");
    assert!(
        first
            .created
            .contains(&"clusterrolebinding/cluster-admin".to_owned())
    );
    assert_eq!(
        ensure_default_roles(&client).await.expect("again"),
        BootstrapReport::default()
    );

    // A changed built-in role is put back; one marked autoupdate=false is left alone.
    let mut view: ClusterRole = client.get("", "view").await.expect("view");
    view.rules.clear();
    client.update(&view).await.expect("update");
    let mut edit: ClusterRole = client.get("", "edit").await.expect("edit");
    edit.rules.truncate(1);
    edit.metadata
        .annotations
        .insert(AUTOUPDATE_ANNOTATION.into(), "false".into());
    client.update(&edit).await.expect("update");
    // A binding that lost its subject gets it back; extra subjects stay.
    let mut masters: ClusterRoleBinding = client.get("", "cluster-admin").await.expect("crb");
    masters.subjects = vec![Subject::user("root")];
    client.update(&masters).await.expect("update");

    let again = ensure_default_roles(&client).await.expect("reconcile");
    assert_eq!(
        again.updated,
        ["clusterrole/view", "clusterrolebinding/cluster-admin"]
    );
    assert_eq!(again.skipped, ["clusterrole/edit"]);
    let view: ClusterRole = client.get("", "view").await.expect("view");
    assert!(!view.rules.is_empty());
    let masters: ClusterRoleBinding = client.get("", "cluster-admin").await.expect("crb");
    assert_eq!(
        masters.subjects,
        [Subject::user("root"), Subject::group(GROUP_MASTERS)]
    );
}

/// `system:mesh-sidecar` is bound to nobody by default; bound (to every service account, as
/// a mesh install does), it lets a sidecar list and watch Services, Endpoints and Pods (for
/// the endpoints' identities), and nothing else.
#[test]
fn the_mesh_sidecar_role_reads_the_service_table_once_bound() {
    let sidecar = UserInfo::new(
        crate::auth::rbac::service_account_user("shop", "web"),
        [
            "system:serviceaccounts".to_owned(),
            "system:serviceaccounts:shop".to_owned(),
            GROUP_AUTHENTICATED.to_owned(),
        ],
    );
    let list = |index: &RbacIndex, resource: &str| {
        index.allows(&req(&sidecar, Verb::List, "", resource, None))
    };
    assert!(!list(&index(), "services"), "not bound by default");

    let roles = default_cluster_roles();
    let mut bindings = default_cluster_role_bindings();
    bindings.push(ClusterRoleBinding {
        metadata: ObjectMeta::named("mesh-sidecars"),
        subjects: vec![Subject::group("system:serviceaccounts")],
        role_ref: RoleRef::cluster_role(MESH_SIDECAR_ROLE),
    });
    let index = RbacIndex::build([], &roles, std::iter::empty::<&RoleBinding>(), &bindings);
    for resource in ["services", "endpoints", "pods"] {
        for verb in [Verb::List, Verb::Watch] {
            assert!(
                index.allows(&req(&sidecar, verb, "", resource, None)),
                "{verb} {resource}"
            );
        }
    }
    for (verb, resource) in [
        (Verb::Get, "secrets"),
        (Verb::List, "secrets"),
        (Verb::Update, "pods"),
        (Verb::Delete, "pods"),
        (Verb::Update, "services"),
        (Verb::Create, "endpoints"),
    ] {
        assert!(
            !index.allows(&req(&sidecar, verb, "", resource, Some("shop"))),
            "{verb} {resource}"
        );
    }
}
