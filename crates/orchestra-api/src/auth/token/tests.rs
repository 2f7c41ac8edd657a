//! Issuing and checking tokens: the request's rules, node restriction, and (feature `tls`)
//! signing, expiry at chosen instants, audiences, a deleted pod or account, tampering, and a
//! key that survives a restart.

use std::time::Duration;

use orchestra_store::MemStore;

use super::*;
use crate::auth::{GROUP_AUTHENTICATED, GROUP_NODES};
use crate::resources::{BoundObjectReference, ServiceAccount};
use crate::{LocalClient, ObjectMeta, testing};

fn bound_to(pod: &str) -> TokenRequest {
    TokenRequest {
        spec: TokenRequestSpec {
            bound_object_ref: Some(BoundObjectReference {
                kind: "Pod".into(),
                name: pod.into(),
                ..BoundObjectReference::default()
            }),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    }
}

fn node(name: &str) -> UserInfo {
    UserInfo::new(
        format!("system:node:{name}"),
        [GROUP_NODES, GROUP_AUTHENTICATED],
    )
}

/// A client with service account `shop/web` and pod `shop/web-1` running as it on `n1`.
async fn cluster() -> LocalClient {
    let client = LocalClient::new(MemStore::new());
    client
        .create(&ServiceAccount {
            metadata: ObjectMeta::namespaced("shop", "web"),
            ..ServiceAccount::default()
        })
        .await
        .unwrap();
    let mut pod = testing::pod("shop", "web-1", "web");
    pod.spec.service_account_name = "web".into();
    pod.spec.node_name = "n1".into();
    client.create(&pod).await.unwrap();
    client
}

#[test]
fn a_request_gets_kubernetes_defaults_and_limits() {
    let api = vec![DEFAULT_ISSUER.to_owned()];
    let spec = check_spec(&TokenRequestSpec::default(), &api).unwrap();
    assert_eq!(spec.expiration_seconds, Some(3600));
    assert_eq!(spec.audiences, api);
    let short = TokenRequestSpec {
        expiration_seconds: Some(599),
        ..TokenRequestSpec::default()
    };
    let err = check_spec(&short, &api).unwrap_err().to_string();
    assert!(
        err.contains("spec.expirationSeconds: Invalid value: 599"),
        "{err}"
    );
    let ten_minutes = TokenRequestSpec {
        expiration_seconds: Some(600),
        audiences: vec!["vault".into()],
        ..TokenRequestSpec::default()
    };
    assert_eq!(check_spec(&ten_minutes, &api).unwrap().audiences, ["vault"]);
    let mut secret = bound_to("x").spec;
    secret.bound_object_ref.as_mut().unwrap().kind = "Secret".into();
    let err = check_spec(&secret, &api).unwrap_err().to_string();
    assert!(
        err.contains("spec.boundObjectRef.kind: Unsupported value: \"Secret\""),
        "{err}"
    );
}

#[test]
fn a_token_is_replaced_at_80_percent_of_its_life_or_after_a_day() {
    assert_eq!(
        refresh_after(Duration::from_secs(3600)),
        Duration::from_secs(2880)
    );
    assert_eq!(
        refresh_after(Duration::from_secs(600)),
        Duration::from_secs(480)
    );
    assert_eq!(
        refresh_after(Duration::from_secs(7 * 24 * 3600)),
        Duration::from_secs(24 * 3600)
    );
}

#[test]
fn a_service_account_user_has_kubernetes_groups() {
    let user = service_account_user("shop", "web");
    assert_eq!(user.name, "system:serviceaccount:shop:web");
    assert!(user.in_group("system:serviceaccounts"));
    assert!(user.in_group("system:serviceaccounts:shop"));
    assert!(user.in_group(GROUP_AUTHENTICATED));
    assert_eq!(
        crate::auth::workload::service_account_of(&user),
        Some(("shop", "web"))
    );
}

#[tokio::test]
async fn a_node_has_tokens_only_for_its_own_pods_and_their_account() {
    let client = cluster().await;
    restrict_node(&client, &node("n1"), "shop", "web", &bound_to("web-1"))
        .await
        .unwrap();
    let refused = [
        (
            node("n2"),
            "web",
            bound_to("web-1"),
            "is not bound to this node",
        ),
        (
            node("n1"),
            "admin",
            bound_to("web-1"),
            "runs as service account \"web\"",
        ),
        (
            node("n1"),
            "web",
            TokenRequest::default(),
            "must be bound to one of its pods",
        ),
        (node("n1"), "web", bound_to("gone"), "does not exist"),
    ];
    for (user, account, request, why) in refused {
        let err = restrict_node(&client, &user, "shop", account, &request)
            .await
            .unwrap_err();
        assert_eq!(err.code(), 403, "{err}");
        assert!(err.to_string().contains(why), "{err}");
    }
    // Not a node: authorization decided.
    let admin = UserInfo::new("admin", ["system:masters"]);
    restrict_node(&client, &admin, "shop", "admin", &TokenRequest::default())
        .await
        .unwrap();
}

#[cfg(feature = "tls")]
mod signed {
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::*;
    use crate::registry::DeleteOptions;
    use crate::resources::Pod;

    fn at(seconds: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds)
    }

    const T0: u64 = 1_800_000_000;

    fn api() -> Vec<String> {
        vec![DEFAULT_ISSUER.to_owned()]
    }

    async fn issuer() -> (LocalClient, ServiceAccountTokens) {
        let client = cluster().await;
        let tokens =
            ServiceAccountTokens::new(SigningKey::generate().unwrap(), client.registry().clone());
        (client, tokens)
    }

    async fn token(tokens: &ServiceAccountTokens, request: &TokenRequest) -> String {
        let issued = tokens
            .issue_at("shop", "web", request, at(T0))
            .await
            .unwrap();
        let status = issued.status.unwrap();
        assert_eq!(
            status.expiration_timestamp.as_second(),
            i64::try_from(T0).unwrap() + issued.spec.expiration_seconds.unwrap()
        );
        status.token
    }

    #[tokio::test]
    async fn a_token_authenticates_as_its_account_until_it_expires() {
        let (_, tokens) = issuer().await;
        let mut request = bound_to("web-1");
        request.spec.expiration_seconds = Some(600);
        let token = token(&tokens, &request).await;
        assert!(ServiceAccountTokens::looks_like_token(&token));
        let user = tokens
            .authenticate_at(&token, &api(), at(T0 + 599))
            .await
            .unwrap();
        assert_eq!(user, service_account_user("shop", "web"));
        let expired = tokens
            .authenticate_at(&token, &api(), at(T0 + 600))
            .await
            .unwrap_err();
        assert!(matches!(expired, TokenError::Expired), "{expired}");
        let early = tokens
            .authenticate_at(&token, &api(), at(T0 - 1))
            .await
            .unwrap_err();
        assert!(matches!(early, TokenError::NotYetValid), "{early}");
    }

    #[tokio::test]
    async fn a_token_is_only_for_its_audiences() {
        let (_, tokens) = issuer().await;
        let mut request = bound_to("web-1");
        request.spec.audiences = vec![MESH_IDENTITY_AUDIENCE.into()];
        let token = token(&tokens, &request).await;
        let err = tokens
            .authenticate_at(&token, &api(), at(T0 + 1))
            .await
            .unwrap_err();
        assert!(matches!(err, TokenError::WrongAudience { .. }), "{err}");
        let mesh = vec![MESH_IDENTITY_AUDIENCE.to_owned()];
        tokens
            .authenticate_at(&token, &mesh, at(T0 + 1))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_token_dies_with_its_pod_even_if_the_name_comes_back() {
        let (client, tokens) = issuer().await;
        let token = token(&tokens, &bound_to("web-1")).await;
        tokens
            .authenticate_at(&token, &api(), at(T0 + 1))
            .await
            .unwrap();
        let old: Pod = client.get("shop", "web-1").await.unwrap();
        let now = DeleteOptions {
            grace_period_seconds: Some(0),
            ..DeleteOptions::default()
        };
        client.delete::<Pod>("shop", "web-1", &now).await.unwrap();
        let err = tokens
            .authenticate_at(&token, &api(), at(T0 + 1))
            .await
            .unwrap_err();
        assert!(matches!(err, TokenError::PodGone { .. }), "{err}");
        // Recreated under the same name: another uid, the token stays dead.
        let mut again = testing::pod("shop", "web-1", "web");
        again.spec.service_account_name = "web".into();
        let again = client.create(&again).await.unwrap();
        assert_ne!(again.metadata.uid, old.metadata.uid);
        let err = tokens
            .authenticate_at(&token, &api(), at(T0 + 1))
            .await
            .unwrap_err();
        assert!(matches!(err, TokenError::PodGone { .. }), "{err}");
        // Asking for a token bound to the old uid is a conflict.
        let mut stale = bound_to("web-1");
        stale.spec.bound_object_ref.as_mut().unwrap().uid = old.metadata.uid.clone();
        let err = tokens
            .issue_at("shop", "web", &stale, at(T0))
            .await
            .unwrap_err();
        assert_eq!(err.code(), 409, "{err}");
    }

    #[tokio::test]
    async fn a_token_dies_with_its_service_account() {
        let (client, tokens) = issuer().await;
        // Unbound: only the account holds it.
        let token = token(&tokens, &TokenRequest::default()).await;
        tokens
            .authenticate_at(&token, &api(), at(T0 + 1))
            .await
            .unwrap();
        client
            .delete::<ServiceAccount>("shop", "web", &DeleteOptions::default())
            .await
            .unwrap();
        let err = tokens
            .authenticate_at(&token, &api(), at(T0 + 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, TokenError::ServiceAccountGone { .. }),
            "{err}"
        );
        client
            .create(&ServiceAccount {
                metadata: ObjectMeta::namespaced("shop", "web"),
                ..ServiceAccount::default()
            })
            .await
            .unwrap();
        let err = tokens
            .authenticate_at(&token, &api(), at(T0 + 1))
            .await
            .unwrap_err();
        assert!(
            matches!(err, TokenError::ServiceAccountGone { .. }),
            "{err}"
        );
        // And no token is issued for an account that does not exist.
        let err = tokens
            .issue_at("shop", "nobody", &TokenRequest::default(), at(T0))
            .await
            .unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[tokio::test]
    async fn a_tampered_or_foreign_token_is_refused() {
        let (client, tokens) = issuer().await;
        let token = token(&tokens, &bound_to("web-1")).await;
        let parts: Vec<&str> = token.split('.').collect();
        // The claims rewritten to another account, the signature kept.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = String::from_utf8(b64.decode(parts[1]).unwrap()).unwrap();
        let forged = claims.replace("shop:web", "shop:admin");
        let forged = format!("{}.{}.{}", parts[0], b64.encode(forged), parts[2]);
        // No signature at all, with the algorithm "none".
        let none = format!("{}.{}.", b64.encode(r#"{"alg":"none"}"#), parts[1]);
        // Signed by another key.
        let other =
            ServiceAccountTokens::new(SigningKey::generate().unwrap(), client.registry().clone());
        let foreign = other
            .issue_at("shop", "web", &bound_to("web-1"), at(T0))
            .await
            .unwrap()
            .status
            .unwrap()
            .token;
        for (bad, why) in [
            (forged.as_str(), "signature does not verify"),
            (none.as_str(), "algorithm \"none\" is not accepted"),
            (foreign.as_str(), "another key"),
            ("eyJ.not.base64!", "not base64url"),
            ("a.b", "three dot-separated parts"),
        ] {
            let err = tokens
                .authenticate_at(bad, &api(), at(T0 + 1))
                .await
                .unwrap_err();
            assert!(matches!(err, TokenError::Invalid(_)), "{err}");
            assert!(err.to_string().contains(why), "{why}: {err}");
        }
    }

    #[tokio::test]
    async fn the_key_survives_a_restart() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("service-account.key");
        let client = cluster().await;
        let first = SigningKey::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let kid = first.key_id().to_owned();
        let before = ServiceAccountTokens::new(first, client.registry().clone());
        let token = token(&before, &bound_to("web-1")).await;
        drop(before);
        // "Restart": the key is read back, and the old token still authenticates.
        let again = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(again.key_id(), kid);
        let after = ServiceAccountTokens::new(again, client.registry().clone());
        after
            .authenticate_at(&token, &api(), at(T0 + 1))
            .await
            .unwrap();
        // A file that is not a key is named, not replaced.
        std::fs::write(&path, b"garbage").unwrap();
        let err = SigningKey::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("is not an Ed25519 PKCS #8 key"), "{err}");
    }
}
