//! Endpoint identities: which ServiceAccount the pod behind an endpoint address runs as.
//!
//! An Endpoints address names its pod (`targetRef`); the pod's `spec.serviceAccountName`
//! in its namespace is the workload identity its mesh sidecar holds a certificate for
//! (`spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICEACCOUNT`, as Linkerd's destination
//! service tells its proxies). [`PodAccounts`] keeps that account for every pod a
//! [`ProxyFollower`](crate::ProxyFollower) has seen, and
//! [`build_table_with_identities`](super::build_table_with_identities) looks endpoints up in
//! it, so that the mesh's outbound proxy can insist that each endpoint presents its own pod's
//! identity. Pure data, no I/O.

use std::collections::HashMap;
use std::fmt;

use orchestra_api::resources::{ObjectReference, Pod};

/// Kubernetes' account for pods that name none (what the ServiceAccount admission plug-in
/// writes into `spec.serviceAccountName` on creation).
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// A ServiceAccount by namespace and name: the identity of the pods that run as it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceAccountRef {
    /// The namespace (the pod's own: an account serves only its namespace's pods).
    pub namespace: String,
    /// The account's name.
    pub name: String,
}

impl ServiceAccountRef {
    /// An account from its two parts.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceAccountRef {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The account `pod` runs as: its `spec.serviceAccountName` in its namespace, `default`
    /// when the field is empty (a pod stored before the admission plug-in defaulted it, or
    /// written around it), as Kubernetes does.
    pub fn of_pod(pod: &Pod) -> Self {
        let name = match pod.spec.service_account_name.trim() {
            "" => DEFAULT_SERVICE_ACCOUNT,
            name => name,
        };
        ServiceAccountRef::new(pod.metadata.namespace.as_str(), name)
    }
}

impl fmt::Display for ServiceAccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What is kept of one pod: its uid (to tell a pod from a later one of the same name) and
/// its account.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PodAccount {
    uid: String,
    account: ServiceAccountRef,
}

/// The ServiceAccount of every known pod, by (namespace, name) — only that, not the pods,
/// so that following every pod of the cluster stays small.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodAccounts {
    pods: HashMap<(String, String), PodAccount>,
}

impl PodAccounts {
    /// No pod known.
    pub fn new() -> Self {
        PodAccounts::default()
    }

    /// Records `pod` (created or changed); returns whether what is kept of it changed (a new
    /// pod, or another pod under the same name): a pod's account never changes, so most pod
    /// updates (status) change nothing here.
    pub fn insert(&mut self, pod: &Pod) -> bool {
        let key = (pod.metadata.namespace.clone(), pod.metadata.name.clone());
        let kept = PodAccount {
            uid: pod.metadata.uid.clone(),
            account: ServiceAccountRef::of_pod(pod),
        };
        match self.pods.get(&key) {
            Some(old) if *old == kept => false,
            _ => {
                self.pods.insert(key, kept);
                true
            }
        }
    }

    /// Forgets the pod `namespace/name`; returns whether it was known.
    pub fn remove(&mut self, namespace: &str, name: &str) -> bool {
        self.pods
            .remove(&(namespace.to_owned(), name.to_owned()))
            .is_some()
    }

    /// Replaces every pod with `pods` (after a relist).
    pub fn replace_all<'a>(&mut self, pods: impl IntoIterator<Item = &'a Pod>) {
        self.pods.clear();
        for pod in pods {
            self.insert(pod);
        }
    }

    /// How many pods are known.
    pub fn len(&self) -> usize {
        self.pods.len()
    }

    /// Whether no pod is known.
    pub fn is_empty(&self) -> bool {
        self.pods.is_empty()
    }

    /// The account of the pod an Endpoints address of namespace `namespace` refers to:
    /// `None` when the reference is not to a pod, the pod is not known, or the known pod is
    /// another one than the reference's (a different uid: the name was reused and the
    /// Endpoints or the pod cache is behind). A reference without a namespace means the
    /// Endpoints' own; one without a uid matches the pod of that name.
    pub fn lookup(&self, target: &ObjectReference, namespace: &str) -> Option<&ServiceAccountRef> {
        if !(target.kind.is_empty() || target.kind == "Pod") || target.name.is_empty() {
            return None;
        }
        let namespace = if target.namespace.is_empty() {
            namespace
        } else {
            target.namespace.as_str()
        };
        let known = self
            .pods
            .get(&(namespace.to_owned(), target.name.clone()))?;
        if !target.uid.is_empty() && target.uid != known.uid {
            return None;
        }
        Some(&known.account)
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::ObjectMeta;
    use orchestra_api::resources::PodSpec;

    use super::*;

    fn pod(namespace: &str, name: &str, uid: &str, account: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                uid: uid.to_owned(),
                ..ObjectMeta::default()
            },
            spec: PodSpec {
                service_account_name: account.to_owned(),
                ..PodSpec::default()
            },
            ..Pod::default()
        }
    }

    fn reference(kind: &str, namespace: &str, name: &str, uid: &str) -> ObjectReference {
        ObjectReference {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid: uid.to_owned(),
            ..ObjectReference::default()
        }
    }

    #[test]
    fn a_pods_account_is_its_service_account_in_its_namespace_default_when_unset() {
        assert_eq!(
            ServiceAccountRef::of_pod(&pod("shop", "web-1", "u1", "web")),
            ServiceAccountRef::new("shop", "web")
        );
        // The namespace is the pod's, whatever the account's name suggests.
        assert_eq!(
            ServiceAccountRef::of_pod(&pod("billing", "pay-1", "u2", "web")),
            ServiceAccountRef::new("billing", "web")
        );
        for unset in ["", "  "] {
            assert_eq!(
                ServiceAccountRef::of_pod(&pod("shop", "job-1", "u3", unset)),
                ServiceAccountRef::new("shop", "default"),
                "{unset:?}"
            );
        }
        assert_eq!(
            ServiceAccountRef::new("shop", "web").to_string(),
            "shop/web"
        );
    }

    #[test]
    fn endpoints_find_their_pods_account_by_reference_and_uid() {
        let mut accounts = PodAccounts::new();
        assert!(accounts.insert(&pod("shop", "web-1", "u1", "web")));
        assert!(accounts.insert(&pod("shop", "job-1", "u2", "")));
        let web = ServiceAccountRef::new("shop", "web");
        let default = ServiceAccountRef::new("shop", "default");

        assert_eq!(
            accounts.lookup(&reference("Pod", "shop", "web-1", "u1"), "shop"),
            Some(&web)
        );
        assert_eq!(
            accounts.lookup(&reference("Pod", "shop", "job-1", "u2"), "shop"),
            Some(&default)
        );
        // No namespace: the Endpoints'; no uid: the pod of that name; no kind: a pod.
        assert_eq!(
            accounts.lookup(&reference("", "", "web-1", ""), "shop"),
            Some(&web)
        );
        // Another pod under the same name, another kind, another namespace, no name,
        // an unknown pod: no identity.
        for (target, namespace) in [
            (reference("Pod", "shop", "web-1", "u9"), "shop"),
            (reference("Node", "shop", "web-1", "u1"), "shop"),
            (reference("Pod", "", "web-1", "u1"), "other"),
            (reference("Pod", "shop", "", ""), "shop"),
            (reference("Pod", "shop", "web-2", ""), "shop"),
        ] {
            assert_eq!(accounts.lookup(&target, namespace), None, "{target:?}");
        }

        // A status update changes nothing kept; a new pod under the old name does.
        assert!(!accounts.insert(&pod("shop", "web-1", "u1", "web")));
        assert!(accounts.insert(&pod("shop", "web-1", "u9", "web")));
        assert_eq!(
            accounts.lookup(&reference("Pod", "shop", "web-1", "u1"), "shop"),
            None
        );
        assert!(accounts.remove("shop", "web-1"));
        assert!(!accounts.remove("shop", "web-1"));
        assert_eq!(accounts.len(), 1);
        accounts.replace_all([]);
        assert!(accounts.is_empty());
    }
}
