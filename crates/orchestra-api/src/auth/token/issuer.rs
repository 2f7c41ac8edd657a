//! [`ServiceAccountTokens`]: issues bound service account tokens and authenticates them,
//! looking the ServiceAccount and the bound pod up in the registry (the store, not a cache:
//! a deleted pod's token stops working at once). Time is a parameter, so tests choose it.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use super::jwt::{Claims, KubernetesClaims, ObjectClaim, SigningKey};
use super::{DEFAULT_ISSUER, TokenIssuer, check_spec, pod_service_account, service_account_user};
use crate::auth::UserInfo;
use crate::meta::Time;
use crate::registry::{ApiError, Registry};
use crate::resources::{
    Pod, ServiceAccount, TOKEN_REQUEST_API_VERSION, TokenRequest, TokenRequestStatus,
};

/// Why a token does not authenticate (the text goes into the 401 message; it never
/// contains the token).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not a token this server signed.
    #[error("the service account token is invalid: {0}")]
    Invalid(String),
    /// Past its expiry.
    #[error("the service account token has expired")]
    Expired,
    /// Used before its `nbf`.
    #[error("the service account token is not valid yet")]
    NotYetValid,
    /// Meant for someone else.
    #[error(
        "the service account token is for audiences {token:?}, none of which this server accepts ({accepted:?})"
    )]
    WrongAudience {
        /// The token's audiences.
        token: Vec<String>,
        /// The accepted ones.
        accepted: Vec<String>,
    },
    /// Its ServiceAccount was deleted (or deleted and recreated).
    #[error("the service account {namespace}/{name} of the token no longer exists")]
    ServiceAccountGone {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The pod it is bound to was deleted (or deleted and recreated).
    #[error("the pod {namespace}/{name} the token is bound to no longer exists")]
    PodGone {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The lookups failed (the store is unreachable).
    #[error("the service account token cannot be checked now: {0}")]
    Lookup(#[source] ApiError),
}

/// Issues and authenticates service account tokens (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct ServiceAccountTokens {
    key: std::sync::Arc<SigningKey>,
    issuer: String,
    api_audiences: Vec<String>,
    registry: Registry,
}

fn unix(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl ServiceAccountTokens {
    /// Tokens signed with `key`, issued by [`DEFAULT_ISSUER`], for the API audience
    /// [`DEFAULT_ISSUER`], checked against `registry`'s objects.
    pub fn new(key: SigningKey, registry: Registry) -> Self {
        ServiceAccountTokens {
            key: std::sync::Arc::new(key),
            issuer: DEFAULT_ISSUER.to_owned(),
            api_audiences: vec![DEFAULT_ISSUER.to_owned()],
            registry,
        }
    }

    /// The audiences the API server accepts (the default audiences of a request without
    /// any): Kubernetes' `--api-audiences`.
    pub fn with_api_audiences(mut self, audiences: Vec<String>) -> Self {
        self.api_audiences = audiences;
        self
    }

    /// The audiences the API server accepts.
    pub fn api_audiences(&self) -> &[String] {
        &self.api_audiences
    }

    /// Issues a token for service account `namespace/name` at `now`: the account must exist,
    /// a bound pod must exist (with the uid given, if any) and run as that account.
    pub async fn issue_at(
        &self,
        namespace: &str,
        name: &str,
        request: &TokenRequest,
        now: SystemTime,
    ) -> Result<TokenRequest, ApiError> {
        let spec = check_spec(&request.spec, &self.api_audiences)?;
        let account: ServiceAccount = self.registry.get(namespace, name).await?;
        let pod = match &spec.bound_object_ref {
            None => None,
            Some(bound) => {
                let pod: Pod = self.registry.get(namespace, &bound.name).await?;
                if !bound.uid.is_empty() && bound.uid != pod.metadata.uid {
                    return Err(ApiError::Conflict(format!(
                        "the bound pod {namespace}/{} has uid {}, not {}",
                        bound.name, pod.metadata.uid, bound.uid
                    )));
                }
                if pod_service_account(&pod) != name {
                    return Err(ApiError::BadRequest(format!(
                        "pod {namespace}/{} runs as service account {:?}, not {name:?}",
                        bound.name,
                        pod_service_account(&pod)
                    )));
                }
                Some(ObjectClaim {
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                })
            }
        };
        let seconds = spec
            .expiration_seconds
            .unwrap_or(super::DEFAULT_EXPIRATION_SECONDS);
        let iat = unix(now);
        let exp = iat.saturating_add(seconds);
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: service_account_user(namespace, name).name,
            aud: spec.audiences.clone(),
            exp,
            iat,
            nbf: iat,
            jti: uuid_like(),
            kubernetes: KubernetesClaims {
                namespace: namespace.to_owned(),
                serviceaccount: ObjectClaim {
                    name: name.to_owned(),
                    uid: account.metadata.uid.clone(),
                },
                pod,
            },
        };
        let expires = jiff::Timestamp::from_second(exp)
            .map_err(|err| ApiError::BadRequest(format!("the expiry is out of range: {err}")))?;
        Ok(TokenRequest {
            api_version: TOKEN_REQUEST_API_VERSION.to_owned(),
            kind: "TokenRequest".to_owned(),
            spec,
            status: Some(TokenRequestStatus {
                token: self.key.sign(&claims),
                expiration_timestamp: Time::new(expires),
            }),
        })
    }

    /// Whether `token` looks like one of these tokens (a JWT), as opposed to a static one.
    pub fn looks_like_token(token: &str) -> bool {
        token.starts_with("eyJ") && token.matches('.').count() == 2
    }

    /// The user of `token` at `now`, if it is valid for one of `accepted` audiences, its
    /// ServiceAccount exists (same uid) and its bound pod exists (same uid).
    pub async fn authenticate_at(
        &self,
        token: &str,
        accepted: &[String],
        now: SystemTime,
    ) -> Result<UserInfo, TokenError> {
        let claims = self.key.verify(token).map_err(TokenError::Invalid)?;
        if claims.iss != self.issuer {
            return Err(TokenError::Invalid(format!(
                "issued by {:?}, not {:?}",
                claims.iss, self.issuer
            )));
        }
        let now = unix(now);
        if now >= claims.exp {
            return Err(TokenError::Expired);
        }
        if now < claims.nbf {
            return Err(TokenError::NotYetValid);
        }
        if !claims.aud.iter().any(|a| accepted.contains(a)) {
            return Err(TokenError::WrongAudience {
                token: claims.aud,
                accepted: accepted.to_vec(),
            });
        }
        let k = &claims.kubernetes;
        let user = service_account_user(&k.namespace, &k.serviceaccount.name);
        if claims.sub != user.name {
            return Err(TokenError::Invalid(
                "the subject does not match its service account".into(),
            ));
        }
        let gone = || TokenError::ServiceAccountGone {
            namespace: k.namespace.clone(),
            name: k.serviceaccount.name.clone(),
        };
        match self
            .registry
            .get::<ServiceAccount>(&k.namespace, &k.serviceaccount.name)
            .await
        {
            Ok(account) if account.metadata.uid == k.serviceaccount.uid => {}
            Ok(_) => return Err(gone()),
            Err(err) if err.is_not_found() => return Err(gone()),
            Err(err) => return Err(TokenError::Lookup(err)),
        }
        if let Some(bound) = &k.pod {
            let gone = || TokenError::PodGone {
                namespace: k.namespace.clone(),
                name: bound.name.clone(),
            };
            match self.registry.get::<Pod>(&k.namespace, &bound.name).await {
                Ok(pod) if pod.metadata.uid == bound.uid => {}
                Ok(_) => return Err(gone()),
                Err(err) if err.is_not_found() => return Err(gone()),
                Err(err) => return Err(TokenError::Lookup(err)),
            }
        }
        Ok(user)
    }
}

/// 128 random bits, hex, for `jti`.
fn uuid_like() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}

#[async_trait]
impl TokenIssuer for ServiceAccountTokens {
    async fn issue(
        &self,
        namespace: &str,
        name: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, ApiError> {
        self.issue_at(namespace, name, request, SystemTime::now())
            .await
    }
}
