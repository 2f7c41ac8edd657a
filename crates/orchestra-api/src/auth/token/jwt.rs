//! The token format: a JWT (RFC 7519) in compact JWS form (RFC 7515) signed with Ed25519
//! (`alg: EdDSA`, RFC 8037), with Kubernetes' claims. The key is a PKCS #8 file, created with
//! mode 0600 on first start and read back at every later one, so tokens survive restarts.
//! Twenty lines of JWS do not justify a JWT dependency: `ring` (already under rustls) signs
//! and verifies, and a verifier accepts only `EdDSA`, so a token cannot pick its own algorithm.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why the signing key could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("the service account signing key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an Ed25519 PKCS #8 key.
    #[error(
        "the service account signing key {path} is not an Ed25519 PKCS #8 key ({reason}); \
         remove it to have a new one made (tokens issued with it stop working)"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What ring said.
        reason: String,
    },
    /// The system's random source failed.
    #[error("generating a signing key failed")]
    Generate,
}

/// The claims of a service account token (JSON names as Kubernetes writes them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The issuer.
    pub iss: String,
    /// The subject: `system:serviceaccount:NAMESPACE:NAME`.
    pub sub: String,
    /// The audiences.
    pub aud: Vec<String>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: i64,
    /// Issued at.
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// A unique id (for audit).
    pub jti: String,
    /// Kubernetes' private claims: what the token is bound to.
    #[serde(rename = "kubernetes.io")]
    pub kubernetes: KubernetesClaims,
}

/// The `kubernetes.io` claim.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubernetesClaims {
    /// The service account's namespace.
    pub namespace: String,
    /// The service account (name and uid).
    pub serviceaccount: ObjectClaim,
    /// The pod the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<ObjectClaim>,
}

/// An object a token names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectClaim {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: String,
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kid: Option<String>,
}

/// The service account token signing key (Ed25519).
pub struct SigningKey {
    pair: Ed25519KeyPair,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key, kept only in memory (tests, `--store memory` clusters).
    pub fn generate() -> Result<Self, KeyError> {
        let pkcs8 =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| KeyError::Generate)?;
        Ok(Self::from_pair(pair))
    }

    /// The key in `path`, made there (mode 0600) if the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        let pkcs8 = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| KeyError::Generate)?;
                // Written aside and renamed: a crash leaves no half-written key.
                let tmp = path.with_extension("tmp");
                let _ = fs::remove_file(&tmp);
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(io)?;
                file.write_all(pkcs8.as_ref()).map_err(io)?;
                file.sync_all().map_err(io)?;
                fs::rename(&tmp, path).map_err(io)?;
                tracing::info!(path = %path.display(), "created the service account token signing key");
                pkcs8.as_ref().to_vec()
            }
            Err(err) => return Err(io(err)),
        };
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|err| KeyError::Invalid {
            path: path.to_owned(),
            reason: err.to_string(),
        })?;
        Ok(Self::from_pair(pair))
    }

    fn from_pair(pair: Ed25519KeyPair) -> Self {
        let digest = Sha256::digest(pair.public_key().as_ref());
        let kid = B64.encode(&digest[..16]);
        SigningKey { pair, kid }
    }

    /// The key id (`kid`): derived from the public key, so it names the key across restarts.
    pub fn key_id(&self) -> &str {
        &self.kid
    }

    /// `claims` signed, in compact form.
    pub fn sign(&self, claims: &Claims) -> String {
        let header = Header {
            alg: "EdDSA".into(),
            typ: Some("JWT".into()),
            kid: Some(self.kid.clone()),
        };
        // Serializing plain structs of strings and numbers cannot fail.
        let header = serde_json::to_vec(&header).unwrap_or_default();
        let payload = serde_json::to_vec(claims).unwrap_or_default();
        let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let signature = self.pair.sign(input.as_bytes());
        format!("{input}.{}", B64.encode(signature.as_ref()))
    }

    /// The claims of `token` if this key signed it; `Err` says what is wrong (never the
    /// token). Checks the signature only: expiry and the rest are the caller's.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a JWT (three dot-separated parts)".into());
        };
        let decode = |part: &str, what: &str| {
            B64.decode(part)
                .map_err(|_| format!("the {what} is not base64url"))
        };
        let header: Header = serde_json::from_slice(&decode(header, "header")?)
            .map_err(|err| format!("the header is not valid JSON: {err}"))?;
        if header.alg != "EdDSA" {
            return Err(format!(
                "the algorithm {:?} is not accepted (only EdDSA)",
                header.alg
            ));
        }
        if header.kid.as_deref().is_some_and(|kid| kid != self.kid) {
            return Err("signed by another key".into());
        }
        let signature = decode(signature, "signature")?;
        let signed = &token[..token.len() - token.rsplit('.').next().map_or(0, str::len) - 1];
        UnparsedPublicKey::new(&ED25519, self.pair.public_key().as_ref())
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| "the signature does not verify".to_owned())?;
        serde_json::from_slice(&decode(payload, "payload")?)
            .map_err(|err| format!("the claims are not valid: {err}"))
    }
}
