//! Role-based access control (`rbac.authorization.k8s.io/v1`): [`Role`] and [`ClusterRole`]
//! (sets of [`PolicyRule`]s), [`RoleBinding`] and [`ClusterRoleBinding`] (which grant a role to
//! [`Subject`]s). The shapes and JSON names are Kubernetes', so RBAC manifests written for
//! Kubernetes apply unchanged; [`crate::auth::rbac`] evaluates them.

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::resource::{NameRule, Resource};
use crate::validation::{self, ErrorList};

/// The API group of the RBAC kinds, and of `User` and `Group` subjects.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// A subject kind: a user name.
pub const SUBJECT_USER: &str = "User";
/// A subject kind: a group name.
pub const SUBJECT_GROUP: &str = "Group";
/// A subject kind: a service account (user `system:serviceaccount:NAMESPACE:NAME`).
pub const SUBJECT_SERVICE_ACCOUNT: &str = "ServiceAccount";
/// The wildcard of verbs, API groups and resources.
pub const RBAC_ALL: &str = "*";

/// One permission: these verbs on these resources of these API groups (optionally only the
/// objects named in `resourceNames`), or, in a ClusterRole, these non-resource URLs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PolicyRule {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, or `*`.
    pub verbs: Vec<String>,
    /// API groups (`""` is the core group), or `*`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub api_groups: Vec<String>,
    /// Resources by plural (`pods`), subresources as `pods/status`, any resource's
    /// subresource as `*/status`, or `*` for every resource and subresource.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// When set, only objects with these names (requests that name no object, such as list
    /// and create, do not match).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resource_names: Vec<String>,
    /// URL paths of non-resource requests (ClusterRoles only). Accepted and stored so that
    /// Kubernetes manifests apply; orchestra's authorizer sees only resource requests, so these
    /// rules grant nothing.
    #[serde(rename = "nonResourceURLs", skip_serializing_if = "Vec::is_empty")]
    pub non_resource_urls: Vec<String>,
}

impl PolicyRule {
    /// A rule for `verbs` on `resources` of `api_groups`.
    pub fn new(api_groups: &[&str], resources: &[&str], verbs: &[&str]) -> Self {
        let owned = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect();
        PolicyRule {
            verbs: owned(verbs),
            api_groups: owned(api_groups),
            resources: owned(resources),
            ..PolicyRule::default()
        }
    }

    /// The same rule, restricted to objects with these names.
    pub fn named(mut self, names: &[&str]) -> Self {
        self.resource_names = names.iter().map(|s| (*s).to_owned()).collect();
        self
    }
}

/// A namespaced set of permissions (`rbac.authorization.k8s.io/v1`, `Role`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Role {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The permissions.
    pub rules: Vec<PolicyRule>,
}

impl Resource for Role {
    const API_VERSION: &'static str = "rbac.authorization.k8s.io/v1";
    const KIND: &'static str = "Role";
    const PLURAL: &'static str = "roles";
    const NAMESPACED: bool = true;
    // Kubernetes' RBAC names are path segments, so `system:kube-scheduler` is a valid name.
    const NAME_RULE: NameRule = NameRule::PathSegment;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_role(self)
    }
}

/// A cluster-wide set of permissions (`rbac.authorization.k8s.io/v1`, `ClusterRole`),
/// granted everywhere by a [`ClusterRoleBinding`] or in one namespace by a [`RoleBinding`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterRole {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// The permissions.
    pub rules: Vec<PolicyRule>,
}

impl Resource for ClusterRole {
    const API_VERSION: &'static str = "rbac.authorization.k8s.io/v1";
    const KIND: &'static str = "ClusterRole";
    const PLURAL: &'static str = "clusterroles";
    const NAMESPACED: bool = false;
    const NAME_RULE: NameRule = NameRule::PathSegment;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_cluster_role(self)
    }
}

/// The role a binding grants: a `Role` in the binding's namespace or a `ClusterRole`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RoleRef {
    /// `rbac.authorization.k8s.io`.
    pub api_group: String,
    /// `Role` or `ClusterRole`.
    pub kind: String,
    /// The role's name.
    pub name: String,
}

impl RoleRef {
    /// A reference to the ClusterRole `name`.
    pub fn cluster_role(name: impl Into<String>) -> Self {
        RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: <ClusterRole as Resource>::KIND.into(),
            name: name.into(),
        }
    }

    /// A reference to the Role `name` (in the binding's namespace).
    pub fn role(name: impl Into<String>) -> Self {
        RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: <Role as Resource>::KIND.into(),
            name: name.into(),
        }
    }
}

/// Who a binding grants its role to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    /// `rbac.authorization.k8s.io` for users and groups, `""` for service accounts
    /// (defaulted so).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_group: String,
    /// The user's, group's or service account's name.
    pub name: String,
    /// A service account's namespace (in a RoleBinding, the binding's by default).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

impl Subject {
    /// The user `name`.
    pub fn user(name: impl Into<String>) -> Self {
        Subject {
            kind: SUBJECT_USER.into(),
            api_group: RBAC_GROUP.into(),
            name: name.into(),
            namespace: String::new(),
        }
    }

    /// The group `name`.
    pub fn group(name: impl Into<String>) -> Self {
        Subject {
            kind: SUBJECT_GROUP.into(),
            api_group: RBAC_GROUP.into(),
            name: name.into(),
            namespace: String::new(),
        }
    }

    /// The service account `namespace/name`.
    pub fn service_account(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Subject {
            kind: SUBJECT_SERVICE_ACCOUNT.into(),
            api_group: String::new(),
            name: name.into(),
            namespace: namespace.into(),
        }
    }
}

/// Fills a subject's `apiGroup` as Kubernetes does.
fn default_subjects(subjects: &mut [Subject]) {
    for subject in subjects {
        if subject.api_group.is_empty()
            && (subject.kind == SUBJECT_USER || subject.kind == SUBJECT_GROUP)
        {
            subject.api_group = RBAC_GROUP.into();
        }
    }
}

/// Grants a Role or ClusterRole to subjects within one namespace
/// (`rbac.authorization.k8s.io/v1`, `RoleBinding`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct RoleBinding {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// Who is granted the role.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<Subject>,
    /// The role granted; immutable.
    pub role_ref: RoleRef,
}

impl Resource for RoleBinding {
    const API_VERSION: &'static str = "rbac.authorization.k8s.io/v1";
    const KIND: &'static str = "RoleBinding";
    const PLURAL: &'static str = "rolebindings";
    const NAMESPACED: bool = true;
    const NAME_RULE: NameRule = NameRule::PathSegment;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn default_fields(&mut self) {
        default_subjects(&mut self.subjects);
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_role_binding(self)
    }

    fn validate_update_fields(&self, old: &Self) -> ErrorList {
        validation::validate_role_ref_unchanged(&self.role_ref, &old.role_ref)
    }
}

/// Grants a ClusterRole to subjects in every namespace and at the cluster scope
/// (`rbac.authorization.k8s.io/v1`, `ClusterRoleBinding`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterRoleBinding {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// Who is granted the role.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<Subject>,
    /// The ClusterRole granted; immutable.
    pub role_ref: RoleRef,
}

impl Resource for ClusterRoleBinding {
    const API_VERSION: &'static str = "rbac.authorization.k8s.io/v1";
    const KIND: &'static str = "ClusterRoleBinding";
    const PLURAL: &'static str = "clusterrolebindings";
    const NAMESPACED: bool = false;
    const NAME_RULE: NameRule = NameRule::PathSegment;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }

    fn default_fields(&mut self) {
        default_subjects(&mut self.subjects);
    }

    fn validate_fields(&self) -> ErrorList {
        validation::validate_cluster_role_binding(self)
    }

    fn validate_update_fields(&self, old: &Self) -> ErrorList {
        validation::validate_role_ref_unchanged(&self.role_ref, &old.role_ref)
    }
}
