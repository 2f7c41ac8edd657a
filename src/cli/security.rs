//! How the commands that talk to an API server reach it: over TLS with a credentials file
//! (`--credentials FILE`, else `$ORCHESTRA_CREDENTIALS`, else `~/.orchestra/credentials` when
//! it exists), or in plain text to an `--insecure` server (`--server http://...`); and the
//! agent's TLS bootstrap with a join token (`--token`).
//!
//! `orchestra server` writes `<data-dir>/admin.credentials`; point `ORCHESTRA_CREDENTIALS` at
//! it, or copy it to `~/.orchestra/credentials` (as k3s users copy its kubeconfig to
//! `~/.kube/config`).

use std::path::{Path, PathBuf};

use orchestra::api::RemoteClient;
use orchestra_api::remote::ConnectError;
use orchestra_api::tls::{Credentials, JoinToken, TlsError, pki};

/// Where the credentials are looked for when neither `--credentials` nor
/// `ORCHESTRA_CREDENTIALS` names a file: this, under the home directory.
pub const DEFAULT_CREDENTIALS: &str = ".orchestra/credentials";

/// The server of commands given neither `--server` nor credentials.
pub const DEFAULT_SERVER: &str = "https://127.0.0.1:7443";

/// Why a command could not reach the API server.
#[derive(Debug, thiserror::Error)]
pub enum ApiConnectError {
    /// The credentials file could not be used.
    #[error("the credentials file")]
    Credentials(#[from] TlsError),
    /// A TLS server and no credentials.
    #[error(
        "no credentials for {server}: pass --credentials FILE or set ORCHESTRA_CREDENTIALS (orchestra server writes DATA_DIR/admin.credentials), or copy that file to ~/{DEFAULT_CREDENTIALS}; an --insecure server is reached with --server http://HOST:PORT"
    )]
    NoCredentials {
        /// The server.
        server: String,
    },
    /// The connection failed.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The agent's TLS bootstrap failed.
    #[error("joining the cluster at {server} as node {node} with the join token failed: {message}")]
    Join {
        /// The server.
        server: String,
        /// The node.
        node: String,
        /// Why.
        message: String,
    },
}

/// How to reach the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Plain text (an `--insecure` server).
    Plain(String),
    /// TLS with these credentials (their `server` set to the URL to use).
    Secure(Credentials),
}

impl Endpoint {
    /// The server's URL.
    pub fn url(&self) -> &str {
        match self {
            Endpoint::Plain(url) => url,
            Endpoint::Secure(credentials) => &credentials.server,
        }
    }
}

/// The credentials file to use: the flag's (or the environment's, which clap fills in), else
/// the default one if it exists.
fn credentials_path(credentials: Option<&Path>) -> Option<PathBuf> {
    credentials.map(Path::to_owned).or_else(|| {
        let home = std::env::var_os("HOME")?;
        let path = Path::new(&home).join(DEFAULT_CREDENTIALS);
        path.is_file().then_some(path)
    })
}

/// Whether `--server` names an `--insecure` server (`http://...`), reached in plain text.
pub fn is_plain(server: Option<&str>) -> bool {
    server.is_some_and(|url| url.starts_with("http://"))
}

/// Decides how to reach the server from `--server` and `--credentials`: an `http://` URL is
/// plain text; otherwise the credentials (their server unless `--server` overrides it).
pub fn resolve(
    server: Option<&str>,
    credentials: Option<&Path>,
) -> Result<Endpoint, ApiConnectError> {
    if let Some(url) = server.filter(|_| is_plain(server)) {
        return Ok(Endpoint::Plain(url.to_owned()));
    }
    match credentials_path(credentials) {
        Some(path) => {
            let mut credentials = Credentials::load(&path)?;
            if let Some(url) = server {
                credentials.server = url.to_owned();
            }
            Ok(Endpoint::Secure(credentials))
        }
        None => Err(ApiConnectError::NoCredentials {
            server: server.unwrap_or(DEFAULT_SERVER).to_owned(),
        }),
    }
}

/// Connects (now) as [`resolve`] decides; returns the client and the URL.
pub async fn connect(
    server: Option<&str>,
    credentials: Option<&Path>,
) -> Result<(RemoteClient, String), ApiConnectError> {
    let endpoint = resolve(server, credentials)?;
    let client = match &endpoint {
        Endpoint::Plain(url) => RemoteClient::connect(url).await?,
        Endpoint::Secure(credentials) => RemoteClient::connect_with(credentials).await?,
    };
    Ok((client, endpoint.url().to_owned()))
}

/// The agent's connection: its credentials if given; else, with a join token, the node
/// credentials kept in `state_dir` from an earlier join, or a new join (the CA pinned by the
/// token's hash, a certificate signing request for `system:node:NODE`), whose credentials are
/// then kept in `state_dir/node.credentials` when there is a state directory; else plain text.
/// Also returns the credentials used (`None`: plain text), whose node certificate the agent's
/// endpoint serves with.
pub async fn connect_agent(
    server: Option<&str>,
    credentials: Option<&Path>,
    token: Option<&str>,
    node: &str,
    state_dir: Option<&Path>,
) -> Result<(RemoteClient, String, Option<Credentials>), ApiConnectError> {
    let Some(token) = token.filter(|_| credentials.is_none()) else {
        return connect_keeping(server, credentials).await;
    };
    let url = server.unwrap_or(DEFAULT_SERVER).to_owned();
    let kept = state_dir.map(|dir| dir.join("node.credentials"));
    if let Some(path) = kept.as_deref().filter(|path| path.is_file()) {
        return connect_keeping(Some(&url), Some(path)).await;
    }
    let join = |message: String| ApiConnectError::Join {
        server: url.clone(),
        node: node.to_owned(),
        message,
    };
    let token: JoinToken = token
        .parse()
        .map_err(|err: TlsError| join(err.to_string()))?;
    let ca = token
        .fetch_ca(&url)
        .await
        .map_err(|err| join(err.to_string()))?;
    let bootstrap = Credentials {
        server: url.clone(),
        certificate_authority: ca.clone(),
        client_certificate: None,
        client_key: None,
        token: Some(token.to_string()),
    };
    let client = RemoteClient::connect_with(&bootstrap).await?;
    let (key, csr) = pki::node_csr(node).map_err(|err| join(err.to_string()))?;
    let chain = client
        .issue_node_certificate(node, &csr)
        .await
        .map_err(|err| join(err.to_string()))?;
    let credentials = Credentials {
        server: url.clone(),
        certificate_authority: ca,
        client_certificate: Some(chain),
        client_key: Some(key),
        token: None,
    };
    match &kept {
        Some(path) => {
            credentials.save(path)?;
            tracing::info!(path = %path.display(), node, "joined the cluster: node credentials kept");
        }
        None => tracing::info!(
            node,
            "joined the cluster (no --state-dir: the node certificate is not kept)"
        ),
    }
    let client = RemoteClient::connect_with(&credentials).await?;
    Ok((client, url, Some(credentials)))
}

/// [`connect`], also returning the credentials (`None`: plain text).
async fn connect_keeping(
    server: Option<&str>,
    credentials: Option<&Path>,
) -> Result<(RemoteClient, String, Option<Credentials>), ApiConnectError> {
    let endpoint = resolve(server, credentials)?;
    match endpoint {
        Endpoint::Plain(url) => Ok((RemoteClient::connect(&url).await?, url, None)),
        Endpoint::Secure(credentials) => {
            let client = RemoteClient::connect_with(&credentials).await?;
            Ok((client, credentials.server.clone(), Some(credentials)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_is_plain_and_https_needs_credentials() {
        assert_eq!(
            resolve(Some("http://127.0.0.1:1"), None).unwrap(),
            Endpoint::Plain("http://127.0.0.1:1".into())
        );
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = resolve(Some("https://127.0.0.1:1"), Some(&missing)).unwrap_err();
        assert!(
            format!("{:?}", anyhow_chain(&err)).contains("missing"),
            "{err}"
        );
        let path = dir.path().join("creds");
        Credentials {
            server: "https://10.0.0.1:7443".into(),
            certificate_authority: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
                .into(),
            client_certificate: None,
            client_key: None,
            token: Some("t".into()),
        }
        .save(&path)
        .unwrap();
        assert_eq!(
            resolve(None, Some(&path)).unwrap().url(),
            "https://10.0.0.1:7443"
        );
        assert_eq!(
            resolve(Some("https://127.0.0.1:9"), Some(&path))
                .unwrap()
                .url(),
            "https://127.0.0.1:9"
        );
    }

    /// The error and its sources, as text.
    fn anyhow_chain(err: &dyn std::error::Error) -> String {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(next) = source {
            text.push_str(": ");
            text.push_str(&next.to_string());
            source = next.source();
        }
        text
    }
}
