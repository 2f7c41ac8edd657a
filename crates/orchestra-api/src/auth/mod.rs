//! Who is asking, and may they: the types authentication produces and authorization and the
//! audit log consume.
//!
//! Authentication (client certificates, bearer tokens) turns a request into a [`UserInfo`];
//! the server turns the request's target into [`RequestAttributes`]; an [`Authorizer`]
//! decides; every write, and every denial, becomes an [`AuditEntry`] for an [`AuditSink`].
//! The names of users and groups follow Kubernetes' (`system:node:NAME` in `system:nodes`,
//! `system:masters` for administrators), so RBAC rules written for Kubernetes read the same.
//!
//! # Layout
//! - [`rbac`]: [`rbac::RbacAuthorizer`], Kubernetes' RBAC over Roles, ClusterRoles and their
//!   bindings, answered from an index fed by watches; [`rbac::rules`], the pure rule matching.
//! - [`node`]: [`node::NodeAuthorizer`], node restriction (a node writes only its own Node,
//!   Lease and pods, and reads only the secrets its pods reference).
//! - [`enforce`]: applying a decision (audit, `Forbidden`), shared by the server and
//!   [`client::AuthorizedClient`], a [`Client`](crate::Client) that acts as one user inside
//!   the server's process (the in-process scheduler, controllers and agents).
//! - [`chain`]: [`AuthorizerChain`], authorizers in order (denials are counted by the API server).
//! - [`bootstrap`]: the built-in ClusterRoles and bindings, and
//!   [`bootstrap::ensure_default_roles`] for the server's start.
//! - [`workload`]: [`workload::WorkloadSigner`], the hook through which the server signs
//!   mesh workload certificates for service accounts (the signer is `orchestra-mesh`'s).
//! - [`audit`]: [`audit::FileAuditSink`] (JSON lines, written off the request path) and
//!   [`audit::MemoryAuditSink`].
//!
//! A secure server builds
//! `AuthorizerChain::standard(NodeAuthorizer::new(), RbacAuthorizer::new())`, spawns
//! `node.run(client.clone())` and `rbac.run(client.clone())`, calls
//! `ensure_default_roles(&client)` once, and records to a `FileAuditSink`.

pub mod audit;
pub mod bootstrap;
pub mod chain;
pub mod client;
pub mod enforce;
pub mod node;
pub mod rbac;
pub mod token;
pub mod workload;

pub use chain::AuthorizerChain;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

/// The group of every authenticated user.
pub const GROUP_AUTHENTICATED: &str = "system:authenticated";
/// The group of requests that carry no credentials (only when anonymous access is on).
pub const GROUP_UNAUTHENTICATED: &str = "system:unauthenticated";
/// The group of administrators: every request of theirs is allowed.
pub const GROUP_MASTERS: &str = "system:masters";
/// The group of node agents.
pub const GROUP_NODES: &str = "system:nodes";
/// The prefix of a node agent's user name: `system:node:NODENAME`.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// An authenticated identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UserInfo {
    /// The user name (a certificate's CN, a token's user).
    pub name: String,
    /// The groups the user belongs to (a certificate's O entries, a token's groups), with
    /// [`GROUP_AUTHENTICATED`] added by authentication.
    pub groups: Vec<String>,
}

impl UserInfo {
    /// A user with these groups.
    pub fn new(
        name: impl Into<String>,
        groups: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        UserInfo {
            name: name.into(),
            groups: groups.into_iter().map(Into::into).collect(),
        }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The node name, when this is a node agent's identity (`system:node:NAME` in
    /// `system:nodes`).
    pub fn node_name(&self) -> Option<&str> {
        let name = self.name.strip_prefix(NODE_USER_PREFIX)?;
        (self.in_group(GROUP_NODES) && !name.is_empty()).then_some(name)
    }
}

impl fmt::Display for UserInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// What a request does, in RBAC's verbs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// Read one object.
    Get,
    /// Read a collection.
    List,
    /// Watch one object or a collection.
    Watch,
    /// Create an object (including a binding: `create` on `pods/binding`).
    Create,
    /// Replace an object (or its status: `update` on `pods/status`).
    Update,
    /// Patch an object.
    Patch,
    /// Delete an object.
    Delete,
}

impl Verb {
    /// The verb's name in RBAC rules.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::List => "list",
            Verb::Watch => "watch",
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    /// Whether the verb changes state (and so is always audited).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Verb::Create | Verb::Update | Verb::Patch | Verb::Delete
        )
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The field whose exact selector (`metadata.name=NAME`) makes a list or watch a request
/// naming `NAME`.
pub const NAME_FIELD: &str = "metadata.name";

/// One request, as authorization sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestAttributes {
    /// Who asks.
    pub user: UserInfo,
    /// What they do.
    pub verb: Verb,
    /// The API group (`""` for the core group, `apps`, ...).
    pub api_group: String,
    /// The resource, plural (`pods`).
    pub resource: String,
    /// The subresource (`status`, `binding`), when the request is on one.
    pub subresource: Option<String>,
    /// The namespace, for namespaced requests (`None` for cluster-scoped ones and for lists
    /// and watches across all namespaces).
    pub namespace: Option<String>,
    /// The object's name, when the request names one: in its path, or, for a list or watch,
    /// by an exact field selector [`metadata.name=NAME`](NAME_FIELD) (which restricts it to
    /// that object, as Kubernetes' request info does). `None` for other lists and watches and
    /// for a create without a name.
    pub name: Option<String>,
}

impl RequestAttributes {
    /// `resource` or `resource/subresource`, as RBAC rules and messages name it.
    pub fn resource_path(&self) -> String {
        match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.clone(),
        }
    }
}

impl fmt::Display for RequestAttributes {
    /// `user "alice" cannot delete resource "pods" in namespace "shop"`-style text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "user \"{}\" cannot {} resource \"{}\"",
            self.user.name,
            self.verb,
            self.resource_path()
        )?;
        if !self.api_group.is_empty() {
            write!(f, " in API group \"{}\"", self.api_group)?;
        }
        if let Some(name) = &self.name {
            write!(f, " named \"{name}\"")?;
        }
        match &self.namespace {
            Some(namespace) => write!(f, " in the namespace \"{namespace}\""),
            None => write!(f, " at the cluster scope"),
        }
    }
}

/// An authorizer's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The request may proceed.
    Allow,
    /// The request is refused; the text says why (it goes into the `Forbidden` message).
    Deny(String),
    /// This authorizer has no opinion; the next one in a chain decides (none left: denied).
    NoOpinion,
}

/// Decides whether a request may proceed. Called on every request, so implementations
/// answer from memory (RBAC from a cache of roles and bindings).
pub trait Authorizer: Send + Sync + fmt::Debug {
    /// The decision for one request.
    fn authorize(&self, request: &RequestAttributes) -> Decision;
}

impl<A: Authorizer + ?Sized> Authorizer for Arc<A> {
    fn authorize(&self, request: &RequestAttributes) -> Decision {
        (**self).authorize(request)
    }
}

/// One line of the audit log: who did what, when, and whether it was allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// When the decision was made.
    pub time: SystemTime,
    /// The request.
    pub request: RequestAttributes,
    /// Whether it was allowed.
    pub allowed: bool,
    /// Why it was denied (empty when allowed).
    pub reason: String,
}

/// Where audit entries go (a file, memory in tests). Called on the request path: queue,
/// do not block.
pub trait AuditSink: Send + Sync + fmt::Debug {
    /// Records one entry.
    fn record(&self, entry: AuditEntry);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attributes(namespace: Option<&str>) -> RequestAttributes {
        RequestAttributes {
            user: UserInfo::new("alice", [GROUP_AUTHENTICATED]),
            verb: Verb::Delete,
            api_group: "apps".into(),
            resource: "deployments".into(),
            subresource: Some("scale".into()),
            namespace: namespace.map(str::to_owned),
            name: Some("web".into()),
        }
    }

    #[test]
    fn a_denial_names_the_user_verb_and_resource() {
        assert_eq!(
            attributes(Some("shop")).to_string(),
            "user \"alice\" cannot delete resource \"deployments/scale\" in API group \"apps\" \
             named \"web\" in the namespace \"shop\""
        );
        assert!(
            attributes(None)
                .to_string()
                .ends_with("at the cluster scope")
        );
    }

    #[test]
    fn only_a_node_user_in_the_nodes_group_is_a_node() {
        assert_eq!(
            UserInfo::new("system:node:n1", [GROUP_NODES]).node_name(),
            Some("n1")
        );
        assert_eq!(
            UserInfo::new("system:node:n1", [GROUP_AUTHENTICATED]).node_name(),
            None
        );
        assert_eq!(
            UserInfo::new("system:node:", [GROUP_NODES]).node_name(),
            None
        );
        assert_eq!(UserInfo::new("alice", [GROUP_NODES]).node_name(), None);
    }
}
