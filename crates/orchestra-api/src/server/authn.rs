//! Authentication: who sends a request. A verified client certificate (the TLS layer checked
//! it against the cluster CA; CN is the user, O the groups), or a bearer token: one of a token
//! file's (Kubernetes' static token file, re-read when it changes, so that a token removed
//! from it stops working at once), a service account token (a JWT the server signed: see
//! [`crate::auth::token`]), or the join token, which only buys a node certificate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use http::HeaderMap;

use crate::auth::token::{MESH_IDENTITY_AUDIENCE, ServiceAccountTokens};
use crate::auth::{GROUP_AUTHENTICATED, UserInfo};
use crate::tls::{ClusterPki, JoinToken};

/// The user of a request made with the join token.
pub const BOOTSTRAP_USER: &str = "system:bootstrap:node-token";
/// The group of requests made with the join token: they may only ask for a node certificate.
pub const GROUP_BOOTSTRAPPERS: &str = "system:bootstrappers";

/// How the server authenticates requests (`ServerOptions::authentication`; `None` there:
/// nobody is asked, everyone is an administrator, for `--insecure` only).
#[derive(Clone, Debug, Default)]
pub struct Authentication {
    /// Bearer tokens from a token file.
    pub tokens: Option<Arc<TokenFile>>,
    /// The join token agents bootstrap with.
    pub join_token: Option<JoinToken>,
    /// The CA that signs node certificates for agents bootstrapping with the join token.
    pub node_signer: Option<Arc<ClusterPki>>,
}

impl Authentication {
    /// The request's user: the bearer token's if it carries one (an unknown token is refused,
    /// never ignored), else the client certificate's; `Err` says why nobody is known.
    /// A service account token is checked with `service_accounts` (none: it is an unknown
    /// token), for the API's audiences, and also the mesh identity's when `mesh_identity`
    /// (the request is the workload certificate call).
    pub async fn authenticate(
        &self,
        peer: Option<&UserInfo>,
        headers: &HeaderMap,
        service_accounts: Option<&ServiceAccountTokens>,
        mesh_identity: bool,
    ) -> Result<UserInfo, String> {
        if let Some(value) = headers.get(http::header::AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .ok_or("the Authorization header is not \"Bearer TOKEN\"")?;
            if self.join_token.as_ref().is_some_and(|j| j.matches(token)) {
                return Ok(UserInfo::new(
                    BOOTSTRAP_USER,
                    [GROUP_BOOTSTRAPPERS, GROUP_AUTHENTICATED],
                ));
            }
            if let Some(accounts) = service_accounts
                && ServiceAccountTokens::looks_like_token(token)
            {
                let mut audiences = accounts.api_audiences().to_vec();
                if mesh_identity {
                    audiences.push(MESH_IDENTITY_AUDIENCE.to_owned());
                }
                return accounts
                    .authenticate_at(token, &audiences, SystemTime::now())
                    .await
                    .map_err(|err| err.to_string());
            }
            return self
                .tokens
                .as_ref()
                .and_then(|tokens| tokens.lookup(token))
                .ok_or_else(|| "the bearer token is not valid (unknown or revoked)".to_owned());
        }
        peer.cloned().ok_or_else(|| {
            "no credentials: present a client certificate signed by the cluster CA or a bearer \
             token (orchestra ctl --credentials FILE)"
                .to_owned()
        })
    }
}

/// Why a token file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("reading the token file {path} failed")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("{path}:{line}: {message}")]
    Line {
        /// The file.
        path: PathBuf,
        /// The line number (from 1).
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// A static token file, Kubernetes' format: `token,user,uid,"group1,group2"` per line (groups
/// optional). Re-read whenever its modification time changes, so that rewriting it revokes.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    state: Mutex<(Option<SystemTime>, HashMap<String, UserInfo>)>,
}

impl TokenFile {
    /// Reads the file (an error here stops the server from starting).
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let modified = modified(path);
        let tokens = read_tokens(path)?;
        Ok(TokenFile {
            path: path.to_owned(),
            state: Mutex::new((modified, tokens)),
        })
    }

    /// The user of `token`, after re-reading the file if it changed. A file that became
    /// unreadable or malformed authenticates nobody (and says so in the log) until fixed.
    pub fn lookup(&self, token: &str) -> Option<UserInfo> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = modified(&self.path);
        if now != state.0 {
            state.1 = read_tokens(&self.path).unwrap_or_else(|error| {
                tracing::error!(%error, "the token file changed and no longer reads: no token is accepted until it is fixed");
                HashMap::new()
            });
            state.0 = now;
        }
        state.1.get(token).cloned()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn read_tokens(path: &Path) -> Result<HashMap<String, UserInfo>, TokenFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut tokens = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |message: &str| TokenFileError::Line {
            path: path.to_owned(),
            line: i + 1,
            message: message.to_owned(),
        };
        let fields = split_csv(line).ok_or_else(|| bad("an unterminated quote"))?;
        let [token, user, _uid, rest @ ..] = fields.as_slice() else {
            return Err(bad("expected token,user,uid[,\"group1,group2\"]"));
        };
        if token.is_empty() || user.is_empty() {
            return Err(bad("the token and the user must not be empty"));
        }
        let mut groups: Vec<String> = rest
            .first()
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        groups.push(GROUP_AUTHENTICATED.to_owned());
        tokens.insert(token.clone(), UserInfo::new(user.clone(), groups));
    }
    Ok(tokens)
}

/// One CSV line's fields, with `"..."` quoting (`""` inside is a quote). Four fields of
/// Kubernetes' token file format do not justify a CSV dependency.
fn split_csv(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let field = fields.last_mut()?;
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(String::new()),
            (c, _) => field.push(c),
        }
    }
    (!quoted).then(|| fields.into_iter().map(|f| f.trim().to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines_read_as_kubernetes_writes_them() {
        assert_eq!(
            split_csv(r#"t1,alice,42,"dev,ops""#).unwrap(),
            ["t1", "alice", "42", "dev,ops"]
        );
        assert_eq!(split_csv("t2,bob,7").unwrap(), ["t2", "bob", "7"]);
        assert!(split_csv(r#"t3,"bob"#).is_none());
    }

    #[test]
    fn a_rewritten_token_file_revokes_and_a_bad_line_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, "# comment\nsecret1,alice,1,\"dev,ops\"\n").unwrap();
        let file = TokenFile::load(&path).unwrap();
        let alice = file.lookup("secret1").unwrap();
        assert_eq!(alice.name, "alice");
        assert!(alice.in_group("ops") && alice.in_group(GROUP_AUTHENTICATED));
        assert!(file.lookup("nope").is_none());
        // Rewrite without alice; force a different mtime (some filesystems keep seconds).
        std::fs::write(&path, "secret2,bob,2\n").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(file.lookup("secret1").is_none());
        assert_eq!(file.lookup("secret2").unwrap().name, "bob");
        std::fs::write(&path, "only-a-token\n").unwrap();
        let err = TokenFile::load(&path).unwrap_err().to_string();
        assert!(
            err.contains("tokens.csv:1: expected token,user,uid"),
            "{err}"
        );
    }
}
