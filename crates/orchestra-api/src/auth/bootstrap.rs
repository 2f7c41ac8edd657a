//! The built-in ClusterRoles and ClusterRoleBindings, and [`ensure_default_roles`], which the
//! server calls at start to create them or bring them up to date.
//!
//! | ClusterRole | bound to | for |
//! |---|---|---|
//! | `cluster-admin` | group `system:masters` | everything (also hard-coded in RBAC) |
//! | `admin` | nobody (bind it per namespace) | all workloads, secrets, Roles and RoleBindings of a namespace |
//! | `edit` | nobody | `admin` without Roles and RoleBindings |
//! | `view` | nobody | reading workloads and pods' logs (`pods/log`), without Secrets |
//! | `system:kube-scheduler` | user `system:kube-scheduler` | what `orchestra scheduler` reads and writes |
//! | `system:kube-controller-manager` | user `system:kube-controller-manager` | what `orchestra controller-manager` reads and writes |
//! | `system:node` | group `system:nodes` | what `orchestra agent` reads and writes (narrowed per node by [`NodeAuthorizer`](super::node::NodeAuthorizer)) |
//! | `system:node-proxier` | user `system:kube-proxy` | what the service proxy reads (Services, Endpoints) |
//! | `system:coredns` | service account `kube-system/coredns` | what the cluster DNS reads (Services, Endpoints) |
//! | `system:mesh-sidecar` | nobody (bind it to the service accounts whose pods run the mesh) | what `orchestra sidecar` reads (Services, Endpoints, TrafficSplits) |
//!
//! The component roles list exactly what the components call (read from their code: the
//! scheduler's pod and node watches, bindings, status and preemption; the controllers'
//! informers and writes; the agent's node, lease, pod and service calls; the proxy's, the
//! DNS's and the sidecar's two watches, which is less than Kubernetes grants them: none reads
//! nodes, pods, namespaces or EndpointSlices here, nor records events). Objects carrying the
//! annotation `rbac.authorization.kubernetes.io/autoupdate: "false"` are left as an
//! administrator changed them, as in Kubernetes.

use std::collections::BTreeMap;

use super::{GROUP_MASTERS, GROUP_NODES};
use crate::client::Client;
use crate::meta::ObjectMeta;
use crate::registry::ApiError;
use crate::resources::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};

/// The annotation that, set to `"false"`, stops [`ensure_default_roles`] from changing an
/// object.
pub const AUTOUPDATE_ANNOTATION: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// The label marking the built-in objects.
pub const BOOTSTRAP_LABEL: &str = "kubernetes.io/bootstrapping";
/// The user name of the scheduler.
pub const SCHEDULER_USER: &str = "system:kube-scheduler";
/// The user name of the controller manager.
pub const CONTROLLER_MANAGER_USER: &str = "system:kube-controller-manager";
/// The user name of the service proxy (Kubernetes' kube-proxy).
pub const PROXY_USER: &str = "system:kube-proxy";
/// The ClusterRole (and its binding) of the service proxy.
pub const PROXY_ROLE: &str = "system:node-proxier";
/// The namespace of the cluster DNS's service account.
pub const DNS_NAMESPACE: &str = "kube-system";
/// The name of the cluster DNS's service account (its user is
/// `system:serviceaccount:kube-system:coredns`, see
/// [`service_account_user`](super::rbac::service_account_user)).
pub const DNS_SERVICE_ACCOUNT: &str = "coredns";
/// The ClusterRole (and its binding) of the cluster DNS.
pub const DNS_ROLE: &str = "system:coredns";
/// The ClusterRole of mesh sidecars (`orchestra sidecar`): what they read to route. Not
/// bound by default: whoever enables the mesh binds it to the service accounts whose pods
/// run sidecars (e.g. the group `system:serviceaccounts`, or one namespace's
/// `system:serviceaccounts:NAMESPACE`). Their certificates need no role: the identity
/// service signs a token's own identity.
pub const MESH_SIDECAR_ROLE: &str = "system:mesh-sidecar";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "update", "patch", "delete"];
const ALL: &[&str] = &[
    "get", "list", "watch", "create", "update", "patch", "delete",
];
const STATUS: &[&str] = &["update", "patch"];
const RECORD: &[&str] = &["create", "update", "patch"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule::new(groups, resources, verbs)
}

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        labels: BTreeMap::from([(BOOTSTRAP_LABEL.to_owned(), "rbac-defaults".to_owned())]),
        annotations: BTreeMap::from([(AUTOUPDATE_ANNOTATION.to_owned(), "true".to_owned())]),
        ..ObjectMeta::named(name)
    }
}

fn cluster_role(name: &str, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(name),
        rules,
    }
}

/// The namespaced workload kinds users manage, by API group.
const CORE_WORKLOADS: &[&str] = &["pods", "services", "endpoints", "configmaps"];
const APPS_WORKLOADS: &[&str] = &["deployments", "replicasets", "daemonsets", "statefulsets"];
/// The history the DaemonSet and StatefulSet controllers keep: users read it, only controllers write it (as in
/// Kubernetes' `edit` role).
const REVISIONS: &[&str] = &["controllerrevisions"];
/// Gangs (`scheduling.x-k8s.io`): users write them, the scheduler writes their status.
const SCHEDULING_GROUP: &[&str] = &["scheduling.x-k8s.io"];
const POD_GROUPS: &[&str] = &["podgroups"];
/// The mesh's kinds (`mesh.orchestra.dev`): users manage their traffic splits like their
/// workloads.
const MESH_GROUP: &str = "mesh.orchestra.dev";
const MESH_KINDS: &[&str] = &["trafficsplits"];

/// The built-in ClusterRoles (see the [module docs](self)).
pub fn default_cluster_roles() -> Vec<ClusterRole> {
    let editing = |verbs: &[&str]| {
        vec![
            rule(&[""], CORE_WORKLOADS, verbs),
            rule(&[""], &["secrets"], verbs),
            rule(&["apps"], APPS_WORKLOADS, verbs),
            rule(&["batch"], &["jobs"], verbs),
            rule(
                &[""],
                &["events", "namespaces", "pods/status", "pods/log"],
                READ,
            ),
            rule(
                &["apps"],
                &[
                    "deployments/status",
                    "replicasets/status",
                    "daemonsets/status",
                    "statefulsets/status",
                ],
                READ,
            ),
            rule(&["batch"], &["jobs/status"], READ),
            rule(&["coordination.k8s.io"], &["leases"], READ),
            rule(&["apps"], REVISIONS, READ),
            rule(SCHEDULING_GROUP, POD_GROUPS, verbs),
            rule(SCHEDULING_GROUP, &["podgroups/status"], READ),
            rule(&[MESH_GROUP], MESH_KINDS, verbs),
        ]
    };
    let mut admin = editing(ALL);
    admin.push(rule(
        &["rbac.authorization.k8s.io"],
        &["roles", "rolebindings"],
        ALL,
    ));
    let mut view = editing(READ);
    // Reading Secrets is reading credentials: not part of `view`, as in Kubernetes.
    view.remove(1);
    vec![
        cluster_role("cluster-admin", vec![rule(&["*"], &["*"], &["*"])]),
        cluster_role("admin", admin),
        cluster_role("edit", editing(ALL)),
        cluster_role("view", view),
        cluster_role(
            SCHEDULER_USER,
            vec![
                // The scheduling queue and cache follow pods and nodes.
                rule(&[""], &["pods", "nodes", "namespaces"], READ),
                // Binding, nomination and the unschedulable condition, preemption.
                rule(&[""], &["pods/binding"], &["create"]),
                rule(&[""], &["pods/status"], STATUS),
                rule(&[""], &["pods"], &["delete"]),
                rule(&[""], &["events"], RECORD),
                // Gangs: Coscheduling reads their minimum, the loop writes their status.
                rule(SCHEDULING_GROUP, POD_GROUPS, READ),
                rule(SCHEDULING_GROUP, &["podgroups/status"], STATUS),
                // Leader election, when the scheduler runs it.
                rule(
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["get", "create", "update"],
                ),
            ],
        ),
        cluster_role(
            CONTROLLER_MANAGER_USER,
            vec![
                // Informers of every controller, and the garbage collector's and namespace
                // controller's reads.
                rule(
                    &[""],
                    &[
                        "pods",
                        "nodes",
                        "services",
                        "endpoints",
                        "namespaces",
                        "events",
                        "configmaps",
                        "secrets",
                        "serviceaccounts",
                    ],
                    READ,
                ),
                rule(&["apps"], APPS_WORKLOADS, READ),
                rule(&["apps"], REVISIONS, READ),
                rule(&["batch"], &["jobs"], READ),
                rule(&["coordination.k8s.io"], &["leases"], READ),
                // Workload controllers create and delete what they own, the ServiceAccount
                // controller makes each namespace's `default` account, the root CA publisher
                // its `kube-root-ca.crt` ConfigMap, and the garbage collector and namespace
                // controller delete (or orphan) any of it.
                rule(
                    &[""],
                    &[
                        "pods",
                        "services",
                        "endpoints",
                        "events",
                        "configmaps",
                        "secrets",
                        "serviceaccounts",
                    ],
                    WRITE,
                ),
                rule(&["apps"], APPS_WORKLOADS, WRITE),
                rule(&["apps"], REVISIONS, WRITE),
                rule(&["batch"], &["jobs"], WRITE),
                rule(&["coordination.k8s.io"], &["leases"], WRITE),
                rule(
                    &["apps"],
                    &[
                        "deployments/status",
                        "replicasets/status",
                        "daemonsets/status",
                        "statefulsets/status",
                    ],
                    STATUS,
                ),
                rule(&["batch"], &["jobs/status"], STATUS),
                // Node lifecycle: taints, Ready=Unknown, eviction.
                rule(&[""], &["nodes"], &["update", "patch", "delete"]),
                rule(&[""], &["nodes/status", "pods/status"], STATUS),
                // The namespace controller empties a terminating namespace of its RBAC rules
                // and traffic splits too (every other kind it deletes is written above).
                rule(
                    &["rbac.authorization.k8s.io"],
                    &["roles", "rolebindings"],
                    &["get", "list", "watch", "delete"],
                ),
                rule(
                    SCHEDULING_GROUP,
                    POD_GROUPS,
                    &["get", "list", "watch", "delete"],
                ),
                rule(
                    &[MESH_GROUP],
                    MESH_KINDS,
                    &["get", "list", "watch", "delete"],
                ),
                // The namespace controller marks and releases terminating namespaces.
                rule(&[""], &["namespaces"], &["update", "patch", "delete"]),
                rule(
                    &[""],
                    &["namespaces/status", "namespaces/finalize"],
                    &["update"],
                ),
            ],
        ),
        cluster_role(
            "system:node",
            vec![
                // Registration and heartbeats.
                rule(
                    &[""],
                    &["nodes"],
                    &["get", "list", "watch", "create", "update", "patch"],
                ),
                rule(&[""], &["nodes/status"], STATUS),
                rule(
                    &["coordination.k8s.io"],
                    &["leases"],
                    &["get", "create", "update", "patch", "delete"],
                ),
                // The node's pods: status, the agent's finalizer, deletion once stopped.
                rule(
                    &[""],
                    &["pods"],
                    &["get", "list", "watch", "update", "patch", "delete"],
                ),
                rule(&[""], &["pods/status"], STATUS),
                // Service environment variables, the proxy and DNS.
                rule(&[""], &["services", "endpoints"], READ),
                // What the node's pods reference.
                rule(&[""], &["secrets", "configmaps"], &["get", "watch"]),
                rule(&[""], &["events"], RECORD),
            ],
        ),
        // The service proxy's and the DNS's followers list and watch these two, cluster-wide,
        // and nothing else (orchestra-mesh's `ProxyFollower` and `DnsFollower`).
        cluster_role(
            PROXY_ROLE,
            vec![rule(&[""], &["services", "endpoints"], &["list", "watch"])],
        ),
        cluster_role(
            DNS_ROLE,
            vec![rule(&[""], &["services", "endpoints"], &["list", "watch"])],
        ),
        // The sidecar's `ProxyFollower`, like the proxy's: the service table, cluster-wide;
        // and the pods, for the ServiceAccount behind each endpoint (the identity the
        // sidecar requires of that endpoint's server).
        cluster_role(
            MESH_SIDECAR_ROLE,
            vec![
                rule(
                    &[""],
                    &["services", "endpoints", "pods"],
                    &["list", "watch"],
                ),
                rule(&[MESH_GROUP], MESH_KINDS, &["list", "watch"]),
            ],
        ),
    ]
}

fn cluster_binding(name: &str, subject: Subject) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name),
        subjects: vec![subject],
        role_ref: RoleRef::cluster_role(name),
    }
}

/// The user info of the cluster DNS's service account, as its token would authenticate.
pub fn dns_user() -> super::UserInfo {
    super::UserInfo::new(
        super::rbac::service_account_user(DNS_NAMESPACE, DNS_SERVICE_ACCOUNT),
        [
            "system:serviceaccounts".to_owned(),
            format!("system:serviceaccounts:{DNS_NAMESPACE}"),
            super::GROUP_AUTHENTICATED.to_owned(),
        ],
    )
}

/// The built-in ClusterRoleBindings: each component's role to its well-known identity.
pub fn default_cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    vec![
        cluster_binding("cluster-admin", Subject::group(GROUP_MASTERS)),
        cluster_binding(SCHEDULER_USER, Subject::user(SCHEDULER_USER)),
        cluster_binding(
            CONTROLLER_MANAGER_USER,
            Subject::user(CONTROLLER_MANAGER_USER),
        ),
        cluster_binding("system:node", Subject::group(GROUP_NODES)),
        cluster_binding(PROXY_ROLE, Subject::user(PROXY_USER)),
        cluster_binding(
            DNS_ROLE,
            Subject::service_account(DNS_NAMESPACE, DNS_SERVICE_ACCOUNT),
        ),
    ]
}

/// What [`ensure_default_roles`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootstrapReport {
    /// Objects created, as `kind/name`.
    pub created: Vec<String>,
    /// Objects brought up to date, as `kind/name`.
    pub updated: Vec<String>,
    /// Objects left alone because their autoupdate annotation is `"false"`, or (bindings)
    /// because their roleRef was changed, which only deleting them can undo.
    pub skipped: Vec<String>,
}

fn auto_update(meta: &ObjectMeta) -> bool {
    meta.annotations
        .get(AUTOUPDATE_ANNOTATION)
        .is_none_or(|v| v != "false")
}

/// Creates the built-in ClusterRoles and ClusterRoleBindings that are missing, and brings
/// the existing ones back to their built-in rules and subjects (a ClusterRole's rules are
/// replaced, a binding's missing subjects are added, extra ones kept), unless annotated
/// `rbac.authorization.kubernetes.io/autoupdate: "false"`. Idempotent: call it at every
/// server start, with a client allowed to write RBAC objects.
pub async fn ensure_default_roles<C: Client>(client: &C) -> Result<BootstrapReport, ApiError> {
    let mut report = BootstrapReport::default();
    for wanted in default_cluster_roles() {
        let label = format!("clusterrole/{}", wanted.metadata.name);
        match client.get::<ClusterRole>("", &wanted.metadata.name).await {
            Err(err) if err.is_not_found() => {
                client.create(&wanted).await?;
                report.created.push(label);
            }
            Err(err) => return Err(err),
            Ok(current) if !auto_update(&current.metadata) => report.skipped.push(label),
            Ok(current) if current.rules == wanted.rules => {}
            Ok(mut current) => {
                current.rules = wanted.rules;
                client.update(&current).await?;
                report.updated.push(label);
            }
        }
    }
    for wanted in default_cluster_role_bindings() {
        let label = format!("clusterrolebinding/{}", wanted.metadata.name);
        match client
            .get::<ClusterRoleBinding>("", &wanted.metadata.name)
            .await
        {
            Err(err) if err.is_not_found() => {
                client.create(&wanted).await?;
                report.created.push(label);
            }
            Err(err) => return Err(err),
            Ok(current)
                if !auto_update(&current.metadata) || current.role_ref != wanted.role_ref =>
            {
                report.skipped.push(label)
            }
            Ok(mut current) => {
                let missing: Vec<Subject> = wanted
                    .subjects
                    .into_iter()
                    .filter(|s| !current.subjects.contains(s))
                    .collect();
                if !missing.is_empty() {
                    current.subjects.extend(missing);
                    client.update(&current).await?;
                    report.updated.push(label);
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests;
