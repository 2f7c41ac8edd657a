//! Role-based access control: [`RbacAuthorizer`] answers from an in-memory [`RbacIndex`] of
//! who holds which rules, rebuilt from reflector caches of Roles, ClusterRoles, RoleBindings
//! and ClusterRoleBindings whenever one of them changes.
//!
//! Kubernetes' semantics: permissions are the union of every rule bound to the user, to any
//! of their groups, or (for `system:serviceaccount:NS:NAME` users) to their service account;
//! there are no deny rules; a RoleBinding grants its Role or ClusterRole only inside the
//! binding's namespace; a ClusterRoleBinding grants its ClusterRole everywhere. The group
//! `system:masters` is allowed everything without any binding, so an administrator can
//! always repair RBAC objects. A request no rule allows gets [`Decision::NoOpinion`], so that
//! an [`AuthorizerChain`](super::AuthorizerChain) denies it with the request's own text.
//!
//! ```
//! use orchestra_api::auth::rbac::RbacAuthorizer;
//! use orchestra_api::auth::{Authorizer, Decision, RequestAttributes, UserInfo, Verb};
//! use orchestra_api::meta::ObjectMeta;
//! use orchestra_api::resources::{ClusterRole, PolicyRule, RoleBinding, RoleRef, Subject};
//!
//! let view = ClusterRole {
//!     metadata: ObjectMeta::named("view"),
//!     rules: vec![PolicyRule::new(&[""], &["pods"], &["get", "list", "watch"])],
//! };
//! let binding = RoleBinding {
//!     metadata: ObjectMeta::namespaced("shop", "alice-view"),
//!     subjects: vec![Subject::user("alice")],
//!     role_ref: RoleRef::cluster_role("view"),
//! };
//! let rbac = RbacAuthorizer::from_objects(&[], &[view], &[binding], &[]);
//! let mut request = RequestAttributes {
//!     user: UserInfo::new("alice", ["system:authenticated"]),
//!     verb: Verb::List,
//!     api_group: String::new(),
//!     resource: "pods".into(),
//!     subresource: None,
//!     namespace: Some("shop".into()),
//!     name: None,
//! };
//! assert_eq!(rbac.authorize(&request), Decision::Allow);
//! request.namespace = Some("bank".into());
//! assert_eq!(rbac.authorize(&request), Decision::NoOpinion);
//! ```
//!
//! # Layout
//! - [`rules`]: whether one rule covers one request (pure).
//! - this module: [`RbacIndex`] (subjects to grants) and [`RbacAuthorizer`] (the index
//!   behind a lock, fed from a [`Client`]).

pub mod rules;

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use futures::StreamExt;
use tokio::sync::watch;

use super::{Authorizer, Decision, GROUP_MASTERS, RequestAttributes};
use crate::client::Client;
use crate::reflector;
use crate::resource::Resource;
use crate::resources::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, SUBJECT_GROUP,
    SUBJECT_SERVICE_ACCOUNT, SUBJECT_USER, Subject,
};
use crate::watcher::{self, WatcherConfig};

/// The user name of a service account: `system:serviceaccount:NAMESPACE:NAME`.
pub fn service_account_user(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// Rules granted to a subject by one binding.
#[derive(Clone, Debug)]
struct Grant {
    /// `Some(ns)` for a RoleBinding (only requests in `ns`), `None` for a ClusterRoleBinding.
    namespace: Option<String>,
    /// The referenced role's rules, shared by every subject of the binding.
    rules: Arc<[PolicyRule]>,
}

impl Grant {
    fn allows(&self, request: &RequestAttributes) -> bool {
        let in_scope = match &self.namespace {
            None => true,
            Some(ns) => request.namespace.as_deref() == Some(ns.as_str()),
        };
        in_scope && rules::rules_allow(&self.rules, request)
    }
}

/// Who holds which rules: grants by user name (users and service accounts) and by group,
/// with each binding's role already resolved, so that a decision reads only the requesting
/// user's own grants.
#[derive(Clone, Debug, Default)]
pub struct RbacIndex {
    by_user: HashMap<String, Vec<Grant>>,
    by_group: HashMap<String, Vec<Grant>>,
}

impl RbacIndex {
    /// The index of these objects. A binding whose role does not exist grants nothing (until
    /// the role appears and the index is rebuilt), as in Kubernetes.
    pub fn build<'a>(
        roles: impl IntoIterator<Item = &'a Role>,
        cluster_roles: impl IntoIterator<Item = &'a ClusterRole>,
        role_bindings: impl IntoIterator<Item = &'a RoleBinding>,
        cluster_role_bindings: impl IntoIterator<Item = &'a ClusterRoleBinding>,
    ) -> Self {
        let roles: HashMap<(&str, &str), Arc<[PolicyRule]>> = roles
            .into_iter()
            .map(|r| {
                let key = (r.metadata.namespace.as_str(), r.metadata.name.as_str());
                (key, Arc::from(r.rules.clone()))
            })
            .collect();
        let cluster_roles: HashMap<&str, Arc<[PolicyRule]>> = cluster_roles
            .into_iter()
            .map(|r| (r.metadata.name.as_str(), Arc::from(r.rules.clone())))
            .collect();
        let mut index = RbacIndex::default();
        for binding in cluster_role_bindings {
            if binding.role_ref.kind != ClusterRole::KIND {
                continue;
            }
            if let Some(rules) = cluster_roles.get(binding.role_ref.name.as_str()) {
                let grant = Grant {
                    namespace: None,
                    rules: rules.clone(),
                };
                index.add(&binding.subjects, "", &grant);
            }
        }
        for binding in role_bindings {
            let namespace = binding.metadata.namespace.as_str();
            let name = binding.role_ref.name.as_str();
            let rules = match binding.role_ref.kind.as_str() {
                kind if kind == Role::KIND => roles.get(&(namespace, name)),
                kind if kind == ClusterRole::KIND => cluster_roles.get(name),
                _ => None,
            };
            if let Some(rules) = rules {
                let grant = Grant {
                    namespace: Some(namespace.to_owned()),
                    rules: rules.clone(),
                };
                index.add(&binding.subjects, namespace, &grant);
            }
        }
        index
    }

    fn add(&mut self, subjects: &[Subject], binding_namespace: &str, grant: &Grant) {
        for subject in subjects {
            let (map, key) = match subject.kind.as_str() {
                SUBJECT_USER => (&mut self.by_user, subject.name.clone()),
                SUBJECT_GROUP => (&mut self.by_group, subject.name.clone()),
                SUBJECT_SERVICE_ACCOUNT => {
                    let namespace = if subject.namespace.is_empty() {
                        binding_namespace
                    } else {
                        &subject.namespace
                    };
                    (
                        &mut self.by_user,
                        service_account_user(namespace, &subject.name),
                    )
                }
                _ => continue,
            };
            map.entry(key).or_default().push(grant.clone());
        }
    }

    /// Whether some rule bound to the request's user or one of their groups allows it
    /// (`system:masters`: always).
    pub fn allows(&self, request: &RequestAttributes) -> bool {
        let user = &request.user;
        if user.in_group(GROUP_MASTERS) {
            return true;
        }
        let by_user = self.by_user.get(&user.name).into_iter().flatten();
        let by_group = user
            .groups
            .iter()
            .filter_map(|g| self.by_group.get(g))
            .flatten();
        by_user.chain(by_group).any(|grant| grant.allows(request))
    }
}

/// The state of the feed, as [`RbacAuthorizer::subscribe`] reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeedState {
    /// How often the index has been replaced.
    pub generation: u64,
    /// Whether the four caches have all completed their first list.
    pub ready: bool,
}

#[derive(Debug)]
struct Shared {
    index: RwLock<Arc<RbacIndex>>,
    state: watch::Sender<FeedState>,
}

/// The RBAC [`Authorizer`]: see the [module docs](self). Cheap to clone; clones share the
/// index. Feed it with [`RbacAuthorizer::run`] (or build it from objects for tests).
#[derive(Clone, Debug)]
pub struct RbacAuthorizer {
    shared: Arc<Shared>,
}

impl Default for RbacAuthorizer {
    fn default() -> Self {
        Self::new()
    }
}

impl RbacAuthorizer {
    /// An authorizer with no roles yet: it allows `system:masters` only, until
    /// [`RbacAuthorizer::run`] has loaded the cluster's RBAC objects.
    pub fn new() -> Self {
        RbacAuthorizer {
            shared: Arc::new(Shared {
                index: RwLock::new(Arc::new(RbacIndex::default())),
                state: watch::Sender::new(FeedState::default()),
            }),
        }
    }

    /// An authorizer over these objects (not fed from a client).
    pub fn from_objects(
        roles: &[Role],
        cluster_roles: &[ClusterRole],
        role_bindings: &[RoleBinding],
        cluster_role_bindings: &[ClusterRoleBinding],
    ) -> Self {
        let this = Self::new();
        this.replace(
            RbacIndex::build(roles, cluster_roles, role_bindings, cluster_role_bindings),
            true,
        );
        this
    }

    fn replace(&self, index: RbacIndex, ready: bool) {
        *self
            .shared
            .index
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(index);
        self.shared.state.send_modify(|state| {
            state.generation += 1;
            state.ready = ready;
        });
    }

    /// The current index.
    pub fn index(&self) -> Arc<RbacIndex> {
        self.shared
            .index
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Follows the feed: the generation changes after every rebuild of the index, so a test
    /// (or a server waiting for its caches) can wait for a change instead of sleeping.
    pub fn subscribe(&self) -> watch::Receiver<FeedState> {
        self.shared.state.subscribe()
    }

    /// Whether the four caches have all been listed.
    pub fn is_ready(&self) -> bool {
        self.shared.state.borrow().ready
    }

    /// Returns once the four caches have all been listed (at once if they have).
    pub async fn wait_until_ready(&self) {
        let mut state = self.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = state.wait_for(|s| s.ready).await;
    }

    /// Watches Roles, ClusterRoles, RoleBindings and ClusterRoleBindings through `client`
    /// (list, then watch, resuming after disconnects) and rebuilds the index after every
    /// change once all four are listed. Never returns: spawn it, and abort the task to stop.
    ///
    /// The index is rebuilt whole on each change, which costs O(RBAC objects): RBAC objects
    /// are few and change rarely, and a whole rebuild cannot drift from the caches.
    pub async fn run<C: Client>(&self, client: C) {
        let (roles, roles_w) = reflector::store::<Role>();
        let (cluster_roles, cluster_roles_w) = reflector::store::<ClusterRole>();
        let (bindings, bindings_w) = reflector::store::<RoleBinding>();
        let (cluster_bindings, cluster_bindings_w) = reflector::store::<ClusterRoleBinding>();
        fn follow<R: Resource, C: Client>(
            writer: reflector::Writer<R>,
            client: &C,
        ) -> futures::stream::BoxStream<'static, Option<crate::registry::ApiError>> {
            let events = watcher::watcher::<R, C>(client.clone(), WatcherConfig::default());
            reflector::reflector(writer, events)
                .map(|event| event.err())
                .boxed()
        }
        let mut events = futures::stream::select_all([
            follow(roles_w, &client),
            follow(cluster_roles_w, &client),
            follow(bindings_w, &client),
            follow(cluster_bindings_w, &client),
        ]);
        while let Some(error) = events.next().await {
            if let Some(error) = error {
                tracing::warn!(%error, "RBAC cache: watch failed, retrying");
                continue;
            }
            let ready = roles.is_ready()
                && cluster_roles.is_ready()
                && bindings.is_ready()
                && cluster_bindings.is_ready();
            if !ready {
                continue;
            }
            let (r, cr, b, cb) = (
                roles.list(),
                cluster_roles.list(),
                bindings.list(),
                cluster_bindings.list(),
            );
            let index = RbacIndex::build(
                r.iter().map(|o| &**o),
                cr.iter().map(|o| &**o),
                b.iter().map(|o| &**o),
                cb.iter().map(|o| &**o),
            );
            self.replace(index, true);
        }
    }
}

impl Authorizer for RbacAuthorizer {
    fn authorize(&self, request: &RequestAttributes) -> Decision {
        if self.index().allows(request) {
            Decision::Allow
        } else {
            Decision::NoOpinion
        }
    }
}

#[cfg(test)]
mod tests;
