//! Bound service account tokens, as Kubernetes' TokenRequest API issues them: a node agent
//! asks for a token for the service account of one of its pods (`create` on
//! `serviceaccounts/token`, with a [`TokenRequest`] body naming audiences, a lifetime and the
//! pod), the server signs a JWT, and the server's authentication accepts it as the user
//! `system:serviceaccount:NAMESPACE:NAME` (groups `system:serviceaccounts` and
//! `system:serviceaccounts:NAMESPACE`) while it has not expired, names one of the audiences the
//! server accepts, its ServiceAccount still exists (the same one: same uid) and the pod it is
//! bound to still exists (same uid).
//!
//! This module holds what every client needs: the request's rules ([`check_spec`]), node
//! restriction ([`restrict_node`]) and the [`TokenIssuer`] seam through which a
//! [`LocalClient`](crate::LocalClient) issues tokens in-process. The signing itself (feature
//! `tls`, for `ring`) is in `jwt` (the compact EdDSA JWS) and `issuer`
//! ([`ServiceAccountTokens`], the key kept in a file, issue and authenticate).

#[cfg(feature = "tls")]
mod issuer;
#[cfg(feature = "tls")]
mod jwt;

#[cfg(feature = "tls")]
pub use issuer::{ServiceAccountTokens, TokenError};
#[cfg(feature = "tls")]
pub use jwt::{Claims, KeyError, KubernetesClaims, ObjectClaim, SigningKey};

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use super::UserInfo;
use super::workload::SERVICE_ACCOUNT_USER_PREFIX;
use crate::client::Client;
use crate::registry::ApiError;
use crate::resources::{Pod, TokenRequest, TokenRequestSpec};

/// The file of the signing key in a server's data directory.
pub const SERVICE_ACCOUNT_KEY_FILE: &str = "service-account.key";
/// The group of every service account.
pub const GROUP_SERVICE_ACCOUNTS: &str = "system:serviceaccounts";
/// A token's lifetime when the request sets none: one hour.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a request may ask for: ten minutes (Kubernetes' minimum).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest lifetime a request may ask for (Kubernetes' validation limit, 2^32 s).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;
/// The issuer (`iss`) of orchestra's tokens, and the audience the API server accepts unless
/// configured otherwise: Kubernetes' in-cluster name of its API server, so that workloads
/// written for Kubernetes read them the same.
pub const DEFAULT_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The audience the mesh identity service accepts (besides the API server's): a sidecar's
/// token for it buys a workload certificate and nothing else.
pub const MESH_IDENTITY_AUDIENCE: &str = "identity.mesh.orchestra";

/// The user a service account's token authenticates as.
pub fn service_account_user(namespace: &str, name: &str) -> UserInfo {
    UserInfo::new(
        format!("{SERVICE_ACCOUNT_USER_PREFIX}{namespace}:{name}"),
        [
            GROUP_SERVICE_ACCOUNTS.to_owned(),
            format!("{GROUP_SERVICE_ACCOUNTS}:{namespace}"),
            super::GROUP_AUTHENTICATED.to_owned(),
        ],
    )
}

/// Checks a request's spec and fills its defaults: the lifetime (1 hour unset, at least 10
/// minutes, at most 2^32 seconds), the audiences (`default_audiences` when empty; none may
/// be empty), and the bound object (a `Pod` with a name). Errors name the field.
pub fn check_spec(
    spec: &TokenRequestSpec,
    default_audiences: &[String],
) -> Result<TokenRequestSpec, ApiError> {
    let bad = |message: String| Err(ApiError::BadRequest(message));
    let mut spec = spec.clone();
    let seconds = spec
        .expiration_seconds
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    if seconds < MIN_EXPIRATION_SECONDS {
        return bad(format!(
            "spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration less than 10 minutes"
        ));
    }
    if seconds > MAX_EXPIRATION_SECONDS {
        return bad(format!(
            "spec.expirationSeconds: Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"
        ));
    }
    spec.expiration_seconds = Some(seconds);
    if spec.audiences.is_empty() {
        spec.audiences = default_audiences.to_vec();
    }
    if let Some(i) = spec.audiences.iter().position(String::is_empty) {
        return bad(format!(
            "spec.audiences[{i}]: Invalid value: \"\": an audience may not be empty"
        ));
    }
    if let Some(bound) = &spec.bound_object_ref {
        if bound.kind != "Pod" {
            return bad(format!(
                "spec.boundObjectRef.kind: Unsupported value: {:?}: supported values: \"Pod\"",
                bound.kind
            ));
        }
        if !bound.api_version.is_empty() && bound.api_version != "v1" {
            return bad(format!(
                "spec.boundObjectRef.apiVersion: Unsupported value: {:?}: supported values: \"v1\"",
                bound.api_version
            ));
        }
        if bound.name.is_empty() {
            return bad("spec.boundObjectRef.name: Required value".into());
        }
    }
    Ok(spec)
}

/// Node restriction of token requests (Kubernetes' NodeRestriction admission): a node may
/// only have tokens issued that are bound to a pod bound to it, for that pod's own service
/// account. Other callers pass (authorization decided about them). Reads the pod through
/// `client`.
pub async fn restrict_node<C: Client>(
    client: &C,
    caller: &UserInfo,
    namespace: &str,
    service_account: &str,
    request: &TokenRequest,
) -> Result<(), ApiError> {
    let Some(node) = caller.node_name() else {
        return Ok(());
    };
    let forbidden = |why: String| {
        Err(ApiError::Forbidden(format!(
            "node {node:?} may not request a token for service account {namespace}/{service_account}: {why}"
        )))
    };
    let Some(bound) = &request.spec.bound_object_ref else {
        return forbidden("a node's tokens must be bound to one of its pods".into());
    };
    if bound.kind != "Pod" {
        return forbidden(format!(
            "tokens may only be bound to pods, not {}",
            bound.kind
        ));
    }
    let pod = match client.get::<Pod>(namespace, &bound.name).await {
        Ok(pod) => pod,
        Err(err) if err.is_not_found() => {
            return forbidden(format!("pod {namespace}/{} does not exist", bound.name));
        }
        Err(err) => return Err(err),
    };
    if pod.spec.node_name != node {
        return forbidden(format!(
            "pod {namespace}/{} is not bound to this node",
            bound.name
        ));
    }
    if pod_service_account(&pod) != service_account {
        return forbidden(format!(
            "pod {namespace}/{} runs as service account {:?}",
            bound.name,
            pod_service_account(&pod)
        ));
    }
    Ok(())
}

/// The service account `pod` runs as (`default` when unset).
pub fn pod_service_account(pod: &Pod) -> &str {
    match pod.spec.service_account_name.as_str() {
        "" => "default",
        name => name,
    }
}

/// Issues tokens for a [`Client`] that runs in the server's process
/// ([`LocalClient::with_token_issuer`](crate::LocalClient::with_token_issuer)). The caller
/// has been authorized (and node-restricted) already.
#[async_trait]
pub trait TokenIssuer: Send + Sync + fmt::Debug {
    /// Issues a token for service account `namespace/name` as `request` asks, returning the
    /// request with its status filled.
    async fn issue(
        &self,
        namespace: &str,
        name: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, ApiError>;
}

/// How long after it was issued a token of `lifetime` is replaced: at 80% of its lifetime,
/// or after 24 hours, whichever comes first (kubelet's rule).
pub fn refresh_after(lifetime: Duration) -> Duration {
    lifetime.mul_f64(0.8).min(Duration::from_secs(24 * 3600))
}

#[cfg(test)]
mod tests;
