//! The kinds `orchestra ctl` knows, and the names users type for them (kubectl's: singular,
//! plural, short name, or the kind itself, in any case).

use std::fmt;

/// A built-in kind `ctl` can read and write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `Namespace` (`ns`).
    Namespace,
    /// `Node` (`no`).
    Node,
    /// `Pod` (`po`).
    Pod,
    /// `Service` (`svc`).
    Service,
    /// `Endpoints` (`ep`).
    Endpoints,
    /// `ReplicaSet` (`rs`).
    ReplicaSet,
    /// `Deployment` (`deploy`).
    Deployment,
    /// `Lease`.
    Lease,
    /// `Event` (`ev`).
    Event,
    /// `ConfigMap` (`cm`).
    ConfigMap,
    /// `Secret`.
    Secret,
    /// `ServiceAccount` (`sa`).
    ServiceAccount,
    /// `Job` (`batch/v1`).
    Job,
    /// `DaemonSet` (`ds`).
    DaemonSet,
    /// `StatefulSet` (`sts`).
    StatefulSet,
    /// `ControllerRevision` (a daemon or stateful set's history).
    ControllerRevision,
    /// `Role` (`rbac.authorization.k8s.io/v1`).
    Role,
    /// `ClusterRole`.
    ClusterRole,
    /// `RoleBinding`.
    RoleBinding,
    /// `ClusterRoleBinding`.
    ClusterRoleBinding,
    /// `PodGroup` (`scheduling.x-k8s.io/v1alpha1`, `pg`): a gang.
    PodGroup,
    /// `TrafficSplit` (`ts`, `mesh.orchestra.dev/v1alpha1`).
    TrafficSplit,
}

impl Kind {
    /// Every kind, in the order `ctl` lists them in messages.
    pub const ALL: [Kind; 22] = [
        Kind::Namespace,
        Kind::Node,
        Kind::Pod,
        Kind::Service,
        Kind::Endpoints,
        Kind::ReplicaSet,
        Kind::Deployment,
        Kind::Lease,
        Kind::Event,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::ServiceAccount,
        Kind::Job,
        Kind::DaemonSet,
        Kind::StatefulSet,
        Kind::ControllerRevision,
        Kind::Role,
        Kind::ClusterRole,
        Kind::RoleBinding,
        Kind::ClusterRoleBinding,
        Kind::PodGroup,
        Kind::TrafficSplit,
    ];

    /// The names a user may type for this kind, the plural first.
    fn names(self) -> &'static [&'static str] {
        match self {
            Kind::Namespace => &["namespaces", "namespace", "ns"],
            Kind::Node => &["nodes", "node", "no"],
            Kind::Pod => &["pods", "pod", "po"],
            Kind::Service => &["services", "service", "svc"],
            Kind::Endpoints => &["endpoints", "ep"],
            Kind::ReplicaSet => &["replicasets", "replicaset", "rs"],
            Kind::Deployment => &["deployments", "deployment", "deploy"],
            Kind::Lease => &["leases", "lease"],
            Kind::Event => &["events", "event", "ev"],
            Kind::ConfigMap => &["configmaps", "configmap", "cm"],
            Kind::Secret => &["secrets", "secret"],
            Kind::ServiceAccount => &["serviceaccounts", "serviceaccount", "sa"],
            Kind::Job => &["jobs", "job"],
            Kind::DaemonSet => &["daemonsets", "daemonset", "ds"],
            Kind::StatefulSet => &["statefulsets", "statefulset", "sts"],
            Kind::ControllerRevision => &["controllerrevisions", "controllerrevision"],
            Kind::Role => &["roles", "role"],
            Kind::ClusterRole => &["clusterroles", "clusterrole"],
            Kind::RoleBinding => &["rolebindings", "rolebinding"],
            Kind::ClusterRoleBinding => &["clusterrolebindings", "clusterrolebinding"],
            Kind::PodGroup => &["podgroups", "podgroup", "pg"],
            Kind::TrafficSplit => &["trafficsplits", "trafficsplit", "ts"],
        }
    }

    /// The lowercase singular used in messages (`pod/web created`).
    pub fn singular(self) -> &'static str {
        match self {
            Kind::Endpoints => "endpoints",
            kind => kind.names()[1],
        }
    }

    /// Parse a user's name for a kind.
    pub fn parse(text: &str) -> Result<Kind, UnknownKind> {
        let lower = text.to_ascii_lowercase();
        Kind::ALL
            .into_iter()
            .find(|kind| kind.names().contains(&lower.as_str()))
            .ok_or_else(|| UnknownKind(text.to_string()))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.singular())
    }
}

/// A kind name `ctl` does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the server doesn't have a resource type {0:?} (known: namespaces, nodes, pods, services, endpoints, replicasets, deployments, leases, events, configmaps, secrets, serviceaccounts, jobs, daemonsets, statefulsets, controllerrevisions, roles, clusterroles, rolebindings, clusterrolebindings, podgroups, trafficsplits)"
)]
pub struct UnknownKind(pub String);

/// Run `$body` with `$r` bound to the Rust type of `$kind`: the bridge from a kind chosen at
/// run time to the typed [`Client`](orchestra::api::Client) calls.
macro_rules! with_kind {
    ($kind:expr, $r:ident => $body:expr) => {{
        use orchestra::api::resources as res;
        match $kind {
            $crate::ctl::kind::Kind::Namespace => {
                type $r = res::Namespace;
                $body
            }
            $crate::ctl::kind::Kind::Node => {
                type $r = res::Node;
                $body
            }
            $crate::ctl::kind::Kind::Pod => {
                type $r = res::Pod;
                $body
            }
            $crate::ctl::kind::Kind::Service => {
                type $r = res::Service;
                $body
            }
            $crate::ctl::kind::Kind::Endpoints => {
                type $r = res::Endpoints;
                $body
            }
            $crate::ctl::kind::Kind::ReplicaSet => {
                type $r = res::ReplicaSet;
                $body
            }
            $crate::ctl::kind::Kind::Deployment => {
                type $r = res::Deployment;
                $body
            }
            $crate::ctl::kind::Kind::Lease => {
                type $r = res::Lease;
                $body
            }
            $crate::ctl::kind::Kind::Event => {
                type $r = res::Event;
                $body
            }
            $crate::ctl::kind::Kind::ConfigMap => {
                type $r = res::ConfigMap;
                $body
            }
            $crate::ctl::kind::Kind::Secret => {
                type $r = res::Secret;
                $body
            }
            $crate::ctl::kind::Kind::ServiceAccount => {
                type $r = res::ServiceAccount;
                $body
            }
            $crate::ctl::kind::Kind::Job => {
                type $r = res::Job;
                $body
            }
            $crate::ctl::kind::Kind::DaemonSet => {
                type $r = res::DaemonSet;
                $body
            }
            $crate::ctl::kind::Kind::StatefulSet => {
                type $r = res::StatefulSet;
                $body
            }
            $crate::ctl::kind::Kind::ControllerRevision => {
                type $r = res::ControllerRevision;
                $body
            }
            $crate::ctl::kind::Kind::Role => {
                type $r = res::Role;
                $body
            }
            $crate::ctl::kind::Kind::ClusterRole => {
                type $r = res::ClusterRole;
                $body
            }
            $crate::ctl::kind::Kind::RoleBinding => {
                type $r = res::RoleBinding;
                $body
            }
            $crate::ctl::kind::Kind::ClusterRoleBinding => {
                type $r = res::ClusterRoleBinding;
                $body
            }
            $crate::ctl::kind::Kind::PodGroup => {
                type $r = res::PodGroup;
                $body
            }
            $crate::ctl::kind::Kind::TrafficSplit => {
                type $r = res::TrafficSplit;
                $body
            }
        }
    }};
}
pub(crate) use with_kind;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kubectl_name_resolves() {
        for (name, kind) in [
            ("po", Kind::Pod),
            ("Pods", Kind::Pod),
            ("Pod", Kind::Pod),
            ("svc", Kind::Service),
            ("deploy", Kind::Deployment),
            ("deployments", Kind::Deployment),
            ("rs", Kind::ReplicaSet),
            ("ep", Kind::Endpoints),
            ("ns", Kind::Namespace),
            ("no", Kind::Node),
            ("ev", Kind::Event),
            ("lease", Kind::Lease),
            ("cm", Kind::ConfigMap),
            ("secrets", Kind::Secret),
            ("sa", Kind::ServiceAccount),
            ("job", Kind::Job),
            ("ds", Kind::DaemonSet),
            ("sts", Kind::StatefulSet),
            ("StatefulSets", Kind::StatefulSet),
            ("controllerrevisions", Kind::ControllerRevision),
            ("clusterrolebindings", Kind::ClusterRoleBinding),
            ("Role", Kind::Role),
            ("pg", Kind::PodGroup),
            ("podgroups", Kind::PodGroup),
            ("ts", Kind::TrafficSplit),
            ("TrafficSplit", Kind::TrafficSplit),
        ] {
            assert_eq!(Kind::parse(name), Ok(kind), "{name}");
        }
    }

    #[test]
    fn unknown_names_list_the_known_ones() {
        let err = Kind::parse("pdos").unwrap_err();
        assert_eq!(err, UnknownKind("pdos".into()));
        assert!(err.to_string().contains("pods, services"), "{err}");
    }
}
