//! The `serviceaccounts/token` subresource (Kubernetes' TokenRequest), shared by the gRPC
//! `RequestToken` call and REST's `POST .../serviceaccounts/NAME/token`: authorize `create`
//! on `serviceaccounts/token`, restrict nodes to their own pods' tokens, then issue with
//! [`ServerOptions::service_account_tokens`](super::ServerOptions::service_account_tokens).

use super::State;
use super::authz;
use crate::LocalClient;
use crate::auth::token::restrict_node;
use crate::auth::{UserInfo, Verb};
use crate::registry::ApiError;
use crate::resources::TokenRequest;

/// Issues a token for service account `namespace/name` to `user`, as `request` asks.
/// `protocol` is `Some` when the request still needs authorizing (gRPC; REST authorized it
/// like every request).
pub(crate) async fn request_token(
    state: &State,
    protocol: Option<&'static str>,
    user: &UserInfo,
    namespace: &str,
    name: &str,
    request: &TokenRequest,
) -> Result<TokenRequest, ApiError> {
    if let Some(protocol) = protocol {
        authz::check(
            state,
            protocol,
            user,
            authz::Request {
                verb: Verb::Create,
                api_version: "v1",
                resource: "serviceaccounts",
                subresource: Some("token"),
                namespace: Some(namespace),
                name: Some(name),
            },
        )?;
    }
    if !request.api_version.is_empty()
        && request.api_version != crate::resources::TOKEN_REQUEST_API_VERSION
    {
        return Err(ApiError::BadRequest(format!(
            "apiVersion {:?}: the body of serviceaccounts/token must be an authentication.k8s.io/v1 TokenRequest",
            request.api_version
        )));
    }
    if !request.kind.is_empty() && request.kind != "TokenRequest" {
        return Err(ApiError::BadRequest(format!(
            "kind {:?}: the body of serviceaccounts/token must be a TokenRequest",
            request.kind
        )));
    }
    let tokens = state
        .options
        .service_account_tokens
        .as_ref()
        .ok_or_else(|| {
            ApiError::BadRequest(
                "this server issues no service account tokens (it has no signing key)".into(),
            )
        })?;
    let reader = LocalClient::from_registry(state.registry.registry().clone());
    restrict_node(&reader, user, namespace, name, request).await?;
    let issued = tokens
        .issue_at(namespace, name, request, std::time::SystemTime::now())
        .await?;
    tracing::info!(user = %user.name, service_account = %format!("{namespace}/{name}"), "issued a service account token");
    Ok(issued)
}
