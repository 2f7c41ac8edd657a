//! Service account tokens for projected `serviceAccountToken` volume sources, as kubelet's
//! token manager keeps them: the agent asks the API server for a token bound to the pod
//! (name and uid), for the pod's service account, with the source's audience and lifetime;
//! keeps it; and asks for a new one once 80% of its lifetime has passed, or after 24 hours
//! ([`refresh_after`]). The volume [refresh](super::refresh) then writes the new token
//! through the atomic `..data` swap. A failed renewal keeps serving the old token while it is
//! still valid.
//!
//! Time is tokio's (paused in tests); a token's lifetime is the one the server granted.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use orchestra_api::Client;
use orchestra_api::auth::token::{DEFAULT_EXPIRATION_SECONDS, pod_service_account, refresh_after};
use orchestra_api::resources::{BoundObjectReference, Pod, TokenRequest, TokenRequestSpec, Volume};
use tokio::time::Instant;

use super::resolve::ConfigError;

/// What a projected source asks for: its audience (empty: the API server's) and lifetime.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenSource {
    /// The audience.
    pub audience: String,
    /// The lifetime asked for, seconds.
    pub expiration_seconds: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    pod_uid: String,
    source: TokenSource,
}

#[derive(Clone)]
struct Cached {
    token: String,
    refresh_at: Instant,
    expires_at: Instant,
}

/// The agent's tokens (see the [module docs](self)). Cheap to clone; clones share them.
#[derive(Clone, Default)]
pub struct TokenCache {
    tokens: Arc<Mutex<HashMap<Key, Cached>>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        write!(f, "TokenCache({count} tokens)")
    }
}

/// The token sources of `volumes` (their projected `serviceAccountToken` sources).
pub fn token_sources<'a>(volumes: impl IntoIterator<Item = &'a Volume>) -> Vec<TokenSource> {
    let mut sources: Vec<TokenSource> = volumes
        .into_iter()
        .flat_map(|v| v.projected.iter().flat_map(|p| &p.sources))
        .filter_map(|s| s.service_account_token.as_ref())
        .map(|t| TokenSource {
            audience: t.audience.clone(),
            expiration_seconds: t.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION_SECONDS),
        })
        .collect();
    sources.sort();
    sources.dedup();
    sources
}

impl TokenCache {
    /// The tokens `volumes` need for `pod`, each from the cache or newly issued.
    pub async fn tokens_for<C: Client>(
        &self,
        client: &C,
        pod: &Pod,
        volumes: &[&Volume],
    ) -> Result<BTreeMap<TokenSource, String>, ConfigError> {
        let mut tokens = BTreeMap::new();
        for source in token_sources(volumes.iter().copied()) {
            let token = self.token(client, pod, &source).await?;
            tokens.insert(source, token);
        }
        Ok(tokens)
    }

    /// One token for `pod`: the cached one until it is due for renewal, else a new one.
    pub async fn token<C: Client>(
        &self,
        client: &C,
        pod: &Pod,
        source: &TokenSource,
    ) -> Result<String, ConfigError> {
        let key = Key {
            pod_uid: pod.metadata.uid.clone(),
            source: source.clone(),
        };
        let now = Instant::now();
        let cached = {
            let mut tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
            // Expired tokens (of deleted pods too) are of no use to anyone.
            tokens.retain(|_, c| c.expires_at > now);
            tokens.get(&key).cloned()
        };
        if let Some(cached) = &cached
            && now < cached.refresh_at
        {
            return Ok(cached.token.clone());
        }
        let account = pod_service_account(pod);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                // Empty: the API server's own audiences.
                audiences: [&source.audience]
                    .into_iter()
                    .filter(|a| !a.is_empty())
                    .cloned()
                    .collect(),
                expiration_seconds: Some(source.expiration_seconds),
                bound_object_ref: Some(BoundObjectReference {
                    kind: "Pod".into(),
                    api_version: "v1".into(),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..TokenRequest::default()
        };
        let namespace = &pod.metadata.namespace;
        let issued = match client.request_token(namespace, account, &request).await {
            Ok(issued) => issued,
            Err(err) => {
                if let Some(cached) = cached {
                    tracing::warn!(pod = %pod.metadata.name, %err, "renewing a service account token failed; the current one is still valid");
                    return Ok(cached.token);
                }
                return Err(ConfigError::from_api(
                    "serviceaccount token",
                    &format!("{namespace}/{account}"),
                    &err,
                ));
            }
        };
        let Some(status) = issued.status else {
            return Err(ConfigError::from_api(
                "serviceaccount token",
                &format!("{namespace}/{account}"),
                &orchestra_api::registry::ApiError::BadRequest(
                    "the server returned no token".into(),
                ),
            ));
        };
        let seconds = issued
            .spec
            .expiration_seconds
            .unwrap_or(source.expiration_seconds);
        let lifetime = Duration::from_secs(u64::try_from(seconds).unwrap_or(0));
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key,
                Cached {
                    token: status.token.clone(),
                    refresh_at: now + refresh_after(lifetime),
                    expires_at: now + lifetime,
                },
            );
        tracing::debug!(pod = %pod.metadata.name, service_account = %account, "service account token issued");
        Ok(status.token)
    }
}
