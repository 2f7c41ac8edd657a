//! `orchestra sidecar`: the mesh proxy next to an application (orchestra-mesh's
//! `Sidecar`). It authenticates to the API server as the pod's service account (a token
//! file, read again as the node agent renews it, or the credentials file's token or client
//! certificate). In a pod it needs no credentials file: like Kubernetes' in-cluster
//! configuration, it trusts the CA bundle mounted beside its token (`ca.crt`, from the
//! `kube-root-ca.crt` ConfigMap) or named by `--ca-file`. It obtains and renews that
//! account's mesh certificate, follows Services and Endpoints, and serves the outbound
//! (plain HTTP from the application, mTLS to peers), inbound (mTLS from peers, policy,
//! forward to the application) and admin (`/ready`, `/live`, `/metrics`,
//! `POST /shutdown`) listeners until SIGTERM or `POST /shutdown`, after which it drains and
//! exits 0.
//!
//! The service account must be allowed to list and watch Services and Endpoints
//! cluster-wide (bind it a ClusterRole with those two rules, as the mesh's install does).
//!
//! `orchestra sidecar init` (see [`super::sidecar_init`]) is what the pod's init container
//! runs first: the rules that redirect the pod's TCP through the sidecar's listeners.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use orchestra::api::RemoteClient;
use orchestra_api::remote::{BearerToken, TokenError};
use orchestra_mesh::l7::identity::{IdentityClient, SpiffeId};
use orchestra_mesh::l7::{
    AuthorizationPolicy, Caller, DefaultAction, NamespacePolicy, Rule, Sidecar, SidecarConfig,
    SidecarError,
};

use orchestra_api::tls::{Credentials, TlsError};

use super::security::{ApiConnectError, DEFAULT_SERVER, Endpoint};

/// `orchestra sidecar --namespace NS --service-account SA [--app ADDR] ...`, or
/// `orchestra sidecar init ...`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SidecarArgs {
    /// Prepare the pod instead of running the proxy.
    #[command(subcommand)]
    pub action: Option<SidecarAction>,
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
    /// The API server's CA bundle (PEM; default: a `ca.crt` beside the token file, as a
    /// pod's service account volume has it). With `--token-file` and no `--credentials`,
    /// these two files are all the sidecar needs; with `--credentials`, it replaces the
    /// file's CA.
    #[arg(long, env = "ORCHESTRA_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// The pod's namespace (required to run the proxy; `None` only with a subcommand).
    #[arg(long, env = "ORCHESTRA_POD_NAMESPACE", required = true)]
    pub namespace: Option<String>,
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
    /// The inbound listener: mTLS from other sidecars. 0.0.0.0:PORT is also served on
    /// [::]:PORT (see --no-ipv6).
    #[arg(long, default_value = "0.0.0.0:4143")]
    pub inbound: SocketAddr,
    /// The outbound listener: plain HTTP from the application, routed by Host to services.
    /// 127.0.0.1:PORT is also served on [::1]:PORT (see --no-ipv6).
    #[arg(long, default_value = "127.0.0.1:4140")]
    pub outbound: SocketAddr,
    /// The admin listener: /ready, /live, /metrics, POST /shutdown (from loopback). Also on
    /// its IPv6 twin, as the others.
    #[arg(long, default_value = "0.0.0.0:4191")]
    pub admin: SocketAddr,
    /// Listen on the IPv4 addresses alone, without their IPv6 twins ([::] for 0.0.0.0, [::1]
    /// for 127.0.0.1, same port), which a dual-stack pod's redirected IPv6 connections
    /// need. Without it, a host with no IPv6 is noticed and logged, never an error.
    #[arg(long)]
    pub no_ipv6: bool,
    /// Who may call the application (repeatable): a SPIFFE ID, `ns:NAMESPACE` (its service
    /// accounts) or `any` (any mesh identity). Without it, any mesh identity may.
    #[arg(long = "allow", value_name = "CALLER", value_parser = parse_caller)]
    pub allow: Vec<Caller>,
    /// How long open connections may take to finish at shutdown (like 30s or 1m).
    #[arg(long, default_value = "30s", value_parser = super::server::parse_interval)]
    pub drain_timeout: Duration,
}

/// What `orchestra sidecar` does instead of running the proxy.
#[derive(Debug, Subcommand)]
pub enum SidecarAction {
    /// Redirect this network namespace's TCP into the sidecar's listeners (nftables table
    /// inet orchestra-mesh), as a meshed pod's init container does, and exit.
    Init(super::sidecar_init::SidecarInitArgs),
}

/// Why `orchestra sidecar` failed.
#[derive(Debug, thiserror::Error)]
pub enum SidecarCommandError {
    /// `orchestra sidecar init` could not apply the redirect.
    #[error(transparent)]
    Init(#[from] orchestra_mesh::redirect::RedirectError),
    /// No `--namespace` (clap requires it; a caller building the arguments by hand may not).
    #[error("the pod's namespace is missing: pass --namespace or set ORCHESTRA_POD_NAMESPACE")]
    NoNamespace,
    /// The token file cannot be used (unreadable, empty, not a token).
    #[error("the service account token file")]
    TokenFile(#[from] TokenError),
    /// The CA bundle cannot be used (unreadable, not PEM).
    #[error("the API server's CA bundle")]
    CaFile(#[source] TlsError),
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

/// The sidecar's settings from the flags (an empty namespace if `--namespace` is missing:
/// [`run`] refuses that first).
pub fn config(args: &SidecarArgs) -> SidecarConfig {
    let namespace = args.namespace.as_deref().unwrap_or_default();
    SidecarConfig {
        trust_domain: args.trust_domain.clone(),
        cluster_domain: args.cluster_domain.clone(),
        inbound: args.inbound,
        app: args.app,
        outbound: args.outbound,
        admin: args.admin,
        ipv6: !args.no_ipv6,
        policy: policy(namespace, args.app.port(), &args.allow),
        drain_timeout: args.drain_timeout,
        ..SidecarConfig::new(namespace, &args.service_account)
    }
}

/// The CA bundle to trust: `--ca-file`, else a `ca.crt` beside the token file when there is
/// one (a pod's service account volume).
fn ca_file(args: &SidecarArgs) -> Option<PathBuf> {
    if let Some(path) = &args.ca_file {
        return Some(path.clone());
    }
    let beside_token = args.token_file.as_ref()?.with_file_name("ca.crt");
    beside_token.is_file().then_some(beside_token)
}

/// How to reach the API server, and the token file's token that replaces the credentials'
/// own authentication (`None`: the credentials' own). A token file with a CA bundle and no
/// `--credentials` is the in-cluster case: the server is `--server`, else the default.
fn endpoint(args: &SidecarArgs) -> Result<(Endpoint, Option<BearerToken>), SidecarCommandError> {
    let plain = super::security::is_plain(args.server.as_deref());
    // The bundle, read and checked once: all the in-cluster case needs besides the token.
    let server = args.server.as_deref().unwrap_or(DEFAULT_SERVER);
    let trusted = ca_file(args)
        .filter(|_| !plain)
        .map(|path| Credentials::in_cluster(server, &path))
        .transpose()
        .map_err(SidecarCommandError::CaFile)?;
    let mut endpoint = match (trusted, &args.credentials, &args.token_file) {
        (Some(in_cluster), None, Some(_)) => Endpoint::Secure(in_cluster),
        (trusted, _, _) => {
            let mut endpoint =
                super::security::resolve(args.server.as_deref(), args.credentials.as_deref())?;
            if let (Endpoint::Secure(credentials), Some(trusted)) = (&mut endpoint, trusted) {
                credentials.certificate_authority = trusted.certificate_authority;
            }
            endpoint
        }
    };
    let Endpoint::Secure(credentials) = &mut endpoint else {
        return Ok((endpoint, None));
    };
    let mut token = None;
    if let Some(path) = &args.token_file {
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

/// Runs the sidecar until SIGTERM, Ctrl-C or `POST /shutdown`; returns once drained. With
/// `init`, applies the redirect and returns.
pub async fn run(mut args: SidecarArgs) -> Result<(), SidecarCommandError> {
    if let Some(SidecarAction::Init(init)) = args.action.take() {
        super::sidecar_init::run(init, &mut std::io::stdout()).await?;
        return Ok(());
    }
    if args.namespace.is_none() {
        return Err(SidecarCommandError::NoNamespace);
    }
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

    /// The flags of `orchestra sidecar --namespace shop ARGS`.
    fn args(extra: &[&str]) -> SidecarArgs {
        #[derive(clap::Parser)]
        struct Command {
            #[command(flatten)]
            sidecar: SidecarArgs,
        }
        let argv = ["sidecar", "--namespace", "shop"].iter().chain(extra);
        <Command as clap::Parser>::try_parse_from(argv)
            .unwrap()
            .sidecar
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";

    /// A service account volume as the node agent writes it: `token` and `ca.crt`.
    fn mounted_volume(dir: &std::path::Path, ca: &str) -> String {
        std::fs::write(dir.join("token"), "web-token-0001\n").unwrap();
        std::fs::write(dir.join("ca.crt"), ca).unwrap();
        dir.join("token").to_str().unwrap().to_owned()
    }

    #[test]
    fn a_mounted_token_and_ca_bundle_are_all_a_pod_needs() {
        let dir = tempfile::tempdir().unwrap();
        let token = mounted_volume(dir.path(), PEM);
        let with_server = args(&["--token-file", &token, "--server", "https://10.0.0.1:7443"]);
        let (found, bearer) = endpoint(&with_server).unwrap();
        let Endpoint::Secure(credentials) = found else {
            panic!("in-cluster is TLS: {found:?}");
        };
        assert_eq!(credentials.server, "https://10.0.0.1:7443");
        assert_eq!(credentials.certificate_authority, PEM);
        assert_eq!(
            (credentials.token, credentials.client_certificate),
            (None, None)
        );
        assert!(bearer.is_some(), "the token file authenticates");

        // The bundle named by --ca-file, anywhere; the default server.
        let elsewhere = dir.path().join("bundle.pem");
        std::fs::rename(dir.path().join("ca.crt"), &elsewhere).unwrap();
        let named = args(&[
            "--token-file",
            &token,
            "--ca-file",
            elsewhere.to_str().unwrap(),
        ]);
        let (found, _) = endpoint(&named).unwrap();
        assert_eq!(found.url(), DEFAULT_SERVER);

        // A plain-text server needs no bundle and sends no token.
        let plain = args(&["--token-file", &token, "--server", "http://127.0.0.1:7080"]);
        let (found, bearer) = endpoint(&plain).unwrap();
        assert_eq!(found, Endpoint::Plain("http://127.0.0.1:7080".into()));
        assert!(bearer.is_none());
    }

    #[test]
    fn a_bad_mounted_ca_bundle_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let token = mounted_volume(dir.path(), "not a certificate");
        let err = endpoint(&args(&["--token-file", &token])).unwrap_err();
        let SidecarCommandError::CaFile(source) = &err else {
            panic!("expected the CA bundle's error, got {err:?}");
        };
        let text = format!("{err}: {source}");
        assert!(
            text.contains("CA bundle") && text.contains("ca.crt"),
            "{text}"
        );
        assert!(text.contains("no PEM certificate"), "{text}");
    }

    #[test]
    fn a_ca_file_replaces_the_credentials_files_ca() {
        let dir = tempfile::tempdir().unwrap();
        let token = mounted_volume(dir.path(), PEM);
        let file = dir.path().join("web.credentials");
        Credentials {
            server: "https://192.0.2.7:7443".into(),
            certificate_authority: PEM.replace("AA==", "BB=="),
            client_certificate: None,
            client_key: None,
            token: Some("from-the-file".into()),
        }
        .save(&file)
        .unwrap();
        let both = args(&[
            "--credentials",
            file.to_str().unwrap(),
            "--token-file",
            &token,
        ]);
        let (found, bearer) = endpoint(&both).unwrap();
        let Endpoint::Secure(credentials) = found else {
            panic!("credentials are TLS: {found:?}");
        };
        assert_eq!(credentials.server, "https://192.0.2.7:7443");
        assert_eq!(
            credentials.certificate_authority, PEM,
            "the mounted bundle wins"
        );
        assert_eq!(
            credentials.token, None,
            "the token file replaces the file's token"
        );
        assert!(bearer.is_some());
    }

    #[test]
    fn the_ipv6_twins_are_on_unless_no_ipv6() {
        let injected = args(&[
            "--inbound",
            "0.0.0.0:4143",
            "--outbound",
            "127.0.0.1:4140",
            "--admin",
            "0.0.0.0:4191",
        ]);
        let on = config(&injected);
        assert!(on.ipv6);
        assert_eq!(
            (on.inbound, on.outbound, on.admin),
            (
                "0.0.0.0:4143".parse().unwrap(),
                "127.0.0.1:4140".parse().unwrap(),
                "0.0.0.0:4191".parse().unwrap()
            )
        );
        assert!(config(&args(&[])).ipv6);
        assert!(!config(&args(&["--no-ipv6"])).ipv6);
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
