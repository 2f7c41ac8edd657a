//! [`ServiceAccount`] (`v1`): the identity pods run as, and [`TokenRequest`]
//! (`authentication.k8s.io/v1`), the body of its `token` subresource, through which a node
//! agent (or an administrator) has a bound service account token issued.
//!
//! A token is the user `system:serviceaccount:NAMESPACE:NAME`; bound to a pod, it stops
//! authenticating when that pod is gone, and it stops when the ServiceAccount is deleted
//! (see `auth::token`).

use serde::{Deserialize, Serialize};

use crate::meta::{ObjectMeta, Time};
use crate::resource::Resource;

/// The apiVersion of [`TokenRequest`].
pub const TOKEN_REQUEST_API_VERSION: &str = "authentication.k8s.io/v1";

/// A service account (`v1`, `ServiceAccount`, namespaced).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceAccount {
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// Whether pods running as this account get its token mounted by the ServiceAccount
    /// admission plug-in (`kube-api-access-*`); a pod's own setting wins; yes when neither
    /// says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
}

impl Resource for ServiceAccount {
    const API_VERSION: &'static str = "v1";
    const KIND: &'static str = "ServiceAccount";
    const PLURAL: &'static str = "serviceaccounts";
    const NAMESPACED: bool = true;

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// A request for a service account token (`authentication.k8s.io/v1`, `TokenRequest`): the
/// body posted to `serviceaccounts/NAME/token`, returned with its `status` filled.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TokenRequest {
    /// `authentication.k8s.io/v1` (may be left empty in a request).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// `TokenRequest` (may be left empty in a request).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    /// What the token is for.
    pub spec: TokenRequestSpec,
    /// The issued token (set by the server).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<TokenRequestStatus>,
}

/// What a token is for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TokenRequestSpec {
    /// Who the token is meant for; a verifier accepts it only if it is one of these. Empty:
    /// the API server's own audiences.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// How long the token is valid: 1 hour when unset, at least 10 minutes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiration_seconds: Option<i64>,
    /// The object the token is bound to (a Pod): the token stops being valid with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bound_object_ref: Option<BoundObjectReference>,
}

/// The object a token is bound to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BoundObjectReference {
    /// `Pod` (the only kind orchestra binds tokens to).
    pub kind: String,
    /// `v1`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub api_version: String,
    /// The object's name, in the service account's namespace.
    pub name: String,
    /// The object's uid: set, the token is bound to that very object (a pod recreated under
    /// the same name does not revive it).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub uid: String,
}

/// An issued token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenRequestStatus {
    /// The token (a signed JWT): a bearer credential, never logged.
    pub token: String,
    /// When it stops being valid.
    pub expiration_timestamp: Time,
}

impl std::fmt::Debug for TokenRequestStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRequestStatus")
            .field("token", &"<redacted>")
            .field("expiration_timestamp", &self.expiration_timestamp)
            .finish()
    }
}
