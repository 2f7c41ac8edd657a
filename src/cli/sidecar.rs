//! `orchestra sidecar`: the mesh proxy next to an application (orchestra-mesh's
//! `Sidecar`). It authenticates to the API server as the pod's service account (a token
//! file, read again as the node agent renews it, or the credentials file's token or client
//! certificate), obtains and renews that
//! account's mesh certificate, follows Services and Endpoints, and serves the outbound
//! (plain HTTP from the application, mTLS to peers), inbound (mTLS from peers, policy,
//! forward to the application) and admin (`/ready`, `/live`, `/metrics`,
//! `POST /shutdown`) listeners until SIGTERM or `POST /shutdown`, after which it drains and
//! exits 0.
//!
//! The service account must be allowed to list and watch Services and Endpoints
//! cluster-wide (bind it a ClusterRole with those two rules, as the mesh's install does).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use orchestra::api::RemoteClient;
use orchestra_api::remote::{BearerToken, TokenError};
use orchestra_mesh::l7::identity::{IdentityClient, SpiffeId};
use orchestra_mesh::l7::{
    AuthorizationPolicy, Caller, DefaultAction, NamespacePolicy, Rule, Sidecar, SidecarConfig,
    SidecarError,
};

use super::security::{ApiConnectError, Endpoint};

/// `orchestra sidecar --namespace NS --service-account SA [--app ADDR] ...`.
#[derive(Debug, Args)]
pub struct SidecarArgs {
    /// The API server (also `ORCHESTRA_SERVER`; default: the credentials' server, else
    /// https://127.0.0.1:7443; `http://...`: an `--insecure` server, in plain text).
    #[arg(long, env = "ORCHESTRA_SERVER")]
    pub server: Option<String>,
    /// The credentials file: the API server's CA, and the service account's token or client
    /// certificate (default: `ORCHESTRA_CREDENTIALS`, else `~/.orchestra/credentials`).
    #[arg(long, env = "ORCHESTRA_CREDENTIALS")]
    pub credentials: Option<PathBuf>,
    /// A file holding the service account's token (a pod's mounted token): it replaces the
    /// credentials file's token or client certificate. Read again when the token in hand is a
    /// minute old and when the API server refuses it, so the node agent's renewals reach
    /// the sidecar.
    #[arg(long, env = "ORCHESTRA_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// The pod's namespace.
    #[arg(long, env = "ORCHESTRA_POD_NAMESPACE")]
    pub namespace: String,
    /// The pod's service account: the sidecar's identity is
    /// spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT.
    #[arg(long, env = "ORCHESTRA_SERVICE_ACCOUNT", default_value = "default")]
    pub service_account: String,
    /// The mesh's trust domain (the server's --mesh-trust-domain).
    #[arg(long, default_value = "cluster.local")]
    pub trust_domain: String,
    /// The cluster's DNS domain, for the service names requests use.
    #[arg(long, default_value = "cluster.local")]
    pub cluster_domain: String,
    /// Where the application listens; the inbound listener forwards there.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub app: SocketAddr,
    /// The inbound listener: mTLS from other sidecars.
    #[arg(long, default_value = "0.0.0.0:4143")]
    pub inbound: SocketAddr,
    /// The outbound listener: plain HTTP from the application, routed by Host to services.
    #[arg(long, default_value = "127.0.0.1:4140")]
    pub outbound: SocketAddr,
    /// The admin listener: /ready, /live, /metrics, POST /shutdown (from loopback).
    #[arg(long, default_value = "0.0.0.0:4191")]
    pub admin: SocketAddr,
    /// Who may call the application (repeatable): a SPIFFE ID, `ns:NAMESPACE` (its service
    /// accounts) or `any` (any mesh identity). Without it, any mesh identity may.
    #[arg(long = "allow", value_name = "CALLER", value_parser = parse_caller)]
    pub allow: Vec<Caller>,
    /// How long open connections may take to finish at shutdown (like 30s or 1m).
    #[arg(long, default_value = "30s", value_parser = super::server::parse_interval)]
    pub drain_timeout: Duration,
}

/// Why `orchestra sidecar` failed.
#[derive(Debug, thiserror::Error)]
pub enum SidecarCommandError {
    /// The token file cannot be used (unreadable, empty, not a token).
    #[error("the service account token file")]
    TokenFile(#[from] TokenError),
    /// The API server could not be reached.
    #[error("connecting to the API server")]
    Connect(#[from] ApiConnectError),
    /// The sidecar could not start.
    #[error(transparent)]
    Sidecar(#[from] SidecarError),
}

/// A `--allow` value.
fn parse_caller(text: &str) -> Result<Caller, String> {
    if text == "any" {
        return Ok(Caller::AnyAuthenticated);
    }
    if let Some(namespace) = text.strip_prefix("ns:") {
        if namespace.is_empty() {
            return Err("ns: needs a namespace, like ns:shop".to_owned());
        }
        return Ok(Caller::Namespace(namespace.to_owned()));
    }
    text.parse::<SpiffeId>()
        .map(Caller::Identity)
        .map_err(|err| format!("{err} (or use ns:NAMESPACE or any)"))
}

/// The policy of `--allow`: those callers only on the application's port, or any mesh
/// identity without it.
fn policy(namespace: &str, port: u16, allow: &[Caller]) -> AuthorizationPolicy {
    if allow.is_empty() {
        return AuthorizationPolicy::default();
    }
    let rules = vec![Rule {
        port: Some(port),
        from: allow.to_vec(),
        http: Vec::new(),
    }];
    AuthorizationPolicy {
        default: DefaultAction::Deny,
        namespaces: HashMap::from([(
            namespace.to_owned(),
            NamespacePolicy {
                default: DefaultAction::Deny,
                rules,
            },
        )]),
    }
}

/// The sidecar's settings from the flags.
pub fn config(args: &SidecarArgs) -> SidecarConfig {
    SidecarConfig {
        trust_domain: args.trust_domain.clone(),
        cluster_domain: args.cluster_domain.clone(),
        inbound: args.inbound,
        app: args.app,
        outbound: args.outbound,
        admin: args.admin,
        policy: policy(&args.namespace, args.app.port(), &args.allow),
        drain_timeout: args.drain_timeout,
        ..SidecarConfig::new(&args.namespace, &args.service_account)
    }
}

/// How to reach the API server: the flags', with the token file in place of the
/// credentials' own authentication (`None`: the credentials' own).
fn endpoint(args: &SidecarArgs) -> Result<(Endpoint, Option<BearerToken>), SidecarCommandError> {
    let mut endpoint =
        super::security::resolve(args.server.as_deref(), args.credentials.as_deref())?;
    let mut token = None;
    if let (Some(path), Endpoint::Secure(credentials)) = (&args.token_file, &mut endpoint) {
        // Read now (a bad file fails the start), and again as the node agent renews it.
        token = Some(BearerToken::from_file(path)?);
        credentials.token = None;
        credentials.client_certificate = None;
        credentials.client_key = None;
    }
    Ok((endpoint, token))
}

/// The API client of `endpoint` and `token`.
async fn connect(
    endpoint: Endpoint,
    token: Option<BearerToken>,
) -> Result<RemoteClient, ApiConnectError> {
    Ok(match (endpoint, token) {
        (Endpoint::Plain(url), _) => RemoteClient::connect(&url).await?,
        (Endpoint::Secure(credentials), Some(token)) => {
            RemoteClient::connect_with_token(&credentials, token).await?
        }
        (Endpoint::Secure(credentials), None) => RemoteClient::connect_with(&credentials).await?,
    })
}

/// Runs the sidecar until SIGTERM, Ctrl-C or `POST /shutdown`; returns once drained.
pub async fn run(args: SidecarArgs) -> Result<(), SidecarCommandError> {
    // The listeners first: a taken port is reported before anything connects.
    let sidecar = Sidecar::bind(config(&args)).await?;
    let (endpoint, token) = endpoint(&args)?;
    let client = connect(endpoint, token).await?;
    tracing::info!(identity = %sidecar.identity(), admin = %sidecar.admin_addr(), "sidecar starting");
    let issuer = Arc::new(IdentityClient::new(client.clone()));
    sidecar
        .run(client, issuer, super::server::shutdown_signal())
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use orchestra_mesh::l7::Decision;

    use super::*;

    #[test]
    fn callers_parse_and_bad_ones_say_why() {
        assert_eq!(parse_caller("any").unwrap(), Caller::AnyAuthenticated);
        assert_eq!(
            parse_caller("ns:shop").unwrap(),
            Caller::Namespace("shop".into())
        );
        assert_eq!(
            parse_caller("spiffe://cluster.local/ns/shop/sa/web").unwrap(),
            Caller::Identity(SpiffeId::new("cluster.local", "shop", "web").unwrap())
        );
        let err = parse_caller("web").unwrap_err();
        assert!(
            err.contains("\"web\"") && err.contains("ns:NAMESPACE"),
            "{err}"
        );
        assert!(parse_caller("ns:").is_err());
    }

    #[test]
    fn allow_restricts_the_application_port() {
        let web = SpiffeId::new("cluster.local", "shop", "web").unwrap();
        let cart = SpiffeId::new("cluster.local", "shop", "cart").unwrap();
        let open = policy("shop", 8080, &[]);
        assert_eq!(open.decide("shop", 8080, &cart), Decision::Allow);
        let only_web = policy("shop", 8080, &[Caller::Identity(web.clone())]);
        assert_eq!(only_web.decide("shop", 8080, &web), Decision::Allow);
        assert_ne!(only_web.decide("shop", 8080, &cart), Decision::Allow);
    }
}
