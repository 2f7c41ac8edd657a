//! [`EncryptionConfig`]: which kinds are encrypted and with which keys, kept in a small YAML
//! file in the data dir (created with mode 0600 on first start).
//!
//! ```yaml
//! # orchestra encryption at rest
//! resources: [secrets]
//! keys:
//!   - name: key-1764230000
//!     secret: 3q2+7w...   # base64 of 32 random bytes
//!   - name: key-1700000000
//!     secret: q83vEj...
//! ```
//! The first key encrypts every write; every key listed decrypts. Rotating: put a new key
//! first, restart, rewrite ([`EncryptedStore::rewrite`](super::EncryptedStore::rewrite)), then
//! drop the old key.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::key::{EncryptionKey, KeyError, KeySet};

/// The config file's name inside a data dir.
pub const CONFIG_FILE: &str = "encryption.yaml";

/// The kinds (by plural) encrypted when a config does not say: Kubernetes' usual choice.
pub const DEFAULT_RESOURCES: &[&str] = &["secrets"];

/// What is encrypted (kinds by plural) and with which keys.
#[derive(Clone, Debug)]
pub struct EncryptionConfig {
    resources: Vec<String>,
    keys: KeySet,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default = "default_resources")]
    resources: Vec<String>,
    keys: Vec<FileKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    name: String,
    secret: String,
}

fn default_resources() -> Vec<String> {
    DEFAULT_RESOURCES.iter().map(|r| (*r).to_owned()).collect()
}

/// Why an encryption config could not be read or created. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum EncryptionConfigError {
    /// The file exists but could not be read.
    #[error("cannot read the encryption config {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be created on first start.
    #[error("cannot create the encryption config {path}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not the expected YAML.
    #[error(
        "the encryption config {path} is malformed (expected `resources: [secrets]` and `keys: [{{name, secret}}]`)"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and why.
        #[source]
        source: serde_yaml_ng::Error,
    },
    /// A key's secret is not base64.
    #[error("the encryption config {path}: key {name:?} has a secret that is not base64")]
    Base64 {
        /// The file.
        path: PathBuf,
        /// The key's name.
        name: String,
        /// Why.
        #[source]
        source: base64::DecodeError,
    },
    /// A key is unusable (name, length, duplicates, none at all).
    #[error("the encryption config {path} has an unusable key")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// A resource is not a kind's plural (lowercase letters, digits, '-' and '.').
    #[error(
        "the encryption config {path} lists resource {resource:?}: use a kind's plural, such as secrets"
    )]
    Resource {
        /// The file.
        path: PathBuf,
        /// The entry.
        resource: String,
    },
}

impl EncryptionConfig {
    /// Encrypt the [`DEFAULT_RESOURCES`] with `keys`.
    pub fn new(keys: KeySet) -> Self {
        EncryptionConfig {
            resources: default_resources(),
            keys,
        }
    }

    /// This config encrypting the kinds with these plurals instead.
    pub fn with_resources<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        plurals: I,
    ) -> Self {
        self.resources = plurals.into_iter().map(Into::into).collect();
        self
    }

    /// A config with one fresh random key that lives only in memory: for stores that do not
    /// outlive the process (the memory store, tests).
    pub fn ephemeral() -> Self {
        let (key, _) =
            EncryptionKey::generate("ephemeral").unwrap_or_else(|err| unreachable!("{err}"));
        Self::new(KeySet::new(vec![key]).unwrap_or_else(|err| unreachable!("{err}")))
    }

    /// The plurals of the encrypted kinds.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// The keys.
    pub fn keys(&self) -> &KeySet {
        &self.keys
    }

    /// Whether the store key `key` holds an object of an encrypted kind.
    pub fn covers(&self, key: &[u8]) -> bool {
        let Some(rest) = key.strip_prefix(b"/registry/") else {
            return false;
        };
        self.resources.iter().any(|plural| {
            rest.strip_prefix(plural.as_bytes())
                .is_some_and(|r| r.first() == Some(&b'/'))
        })
    }

    /// The key prefixes of the encrypted kinds, `/registry/{plural}/`.
    pub fn prefixes(&self) -> impl Iterator<Item = String> + '_ {
        self.resources.iter().map(|p| format!("/registry/{p}/"))
    }

    /// Reads a config file.
    pub fn load(path: &Path) -> Result<Self, EncryptionConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| EncryptionConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        warn_if_readable_by_others(path);
        Self::parse(path, &text)
    }

    /// Parses a config's text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self, EncryptionConfigError> {
        let file: FileConfig =
            serde_yaml_ng::from_str(text).map_err(|source| EncryptionConfigError::Parse {
                path: path.to_owned(),
                source,
            })?;
        for resource in &file.resources {
            let valid = !resource.is_empty()
                && resource.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                });
            if !valid {
                return Err(EncryptionConfigError::Resource {
                    path: path.to_owned(),
                    resource: resource.clone(),
                });
            }
        }
        let mut keys = Vec::with_capacity(file.keys.len());
        for key in &file.keys {
            let secret = STANDARD.decode(key.secret.trim()).map_err(|source| {
                EncryptionConfigError::Base64 {
                    path: path.to_owned(),
                    name: key.name.clone(),
                    source,
                }
            })?;
            keys.push(EncryptionKey::new(&key.name, &secret).map_err(|source| {
                EncryptionConfigError::Key {
                    path: path.to_owned(),
                    source,
                }
            })?);
        }
        let keys = KeySet::new(keys).map_err(|source| EncryptionConfigError::Key {
            path: path.to_owned(),
            source,
        })?;
        Ok(EncryptionConfig {
            resources: file.resources,
            keys,
        })
    }

    /// Reads `dir/encryption.yaml`, creating it (mode 0600, one fresh key, secrets encrypted)
    /// when it does not exist: encryption at rest on by default.
    pub fn load_or_create(dir: &Path) -> Result<Self, EncryptionConfigError> {
        let path = dir.join(CONFIG_FILE);
        if path.exists() {
            return Self::load(&path);
        }
        let create = |source| EncryptionConfigError::Create {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(create)?;
        let name = format!("key-{}", jiff::Timestamp::now().as_second());
        let (_, secret) =
            EncryptionKey::generate(&name).map_err(|source| EncryptionConfigError::Key {
                path: path.clone(),
                source,
            })?;
        let text = format!(
            "# orchestra encryption at rest: the kinds listed are encrypted with AES-256-GCM.\n\
             # The first key encrypts every write; every key listed decrypts. To rotate, put a\n\
             # new key first, restart, rewrite the secrets, then remove the old key.\n\
             # Losing this file makes the encrypted objects unreadable: back it up.\n\
             resources: [{}]\nkeys:\n  - name: {name}\n    secret: {}\n",
            DEFAULT_RESOURCES.join(", "),
            STANDARD.encode(secret)
        );
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(create)?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(create)?;
        tracing::info!(path = %path.display(), key = %name, "created the encryption config with a new key");
        Self::parse(&path, &text)
    }
}

/// Warns (naming the file, never its contents) when group or others may read the keys.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "the encryption config is readable by other users; chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_with_mode_0600_then_reread() {
        let dir = tempfile::tempdir().unwrap();
        let first = EncryptionConfig::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(CONFIG_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = EncryptionConfig::load_or_create(dir.path()).unwrap();
        assert_eq!(
            first.keys().write_key().name(),
            again.keys().write_key().name()
        );
        let value = first.keys().encrypt(b"/k", b"v").unwrap();
        assert_eq!(
            again.keys().decrypt(b"/k", &value).unwrap().plain,
            &b"v"[..]
        );
        assert_eq!(again.resources(), ["secrets"]);
    }

    #[test]
    fn malformed_files_name_the_file_and_never_the_secret() {
        let path = Path::new("/data/encryption.yaml");
        let cases = [
            ("keys: [", "malformed"),
            ("keys: []", "unusable key"),
            ("keys: [{name: a, secret: '!!notbase64'}]", "not base64"),
            ("keys: [{name: a, secret: c2hvcnQ=}]", "unusable key"),
            (
                "resources: [Secrets]\nkeys: [{name: a, secret: c2hvcnQ=}]",
                "resource",
            ),
            ("keys: [{name: a, secret: c2hvcnQ=, extra: 1}]", "malformed"),
        ];
        for (text, expected) in cases {
            let err = EncryptionConfig::parse(path, text).unwrap_err();
            let message = err.to_string();
            assert!(message.contains("/data/encryption.yaml"), "{message}");
            assert!(message.contains(expected), "{text}: {message}");
            let chain = format!("{err:?}");
            assert!(!chain.contains("c2hvcnQ"), "{chain}");
        }
        let unreadable =
            EncryptionConfig::load(Path::new("/nonexistent/dir/encryption.yaml")).unwrap_err();
        assert!(
            unreadable
                .to_string()
                .contains("/nonexistent/dir/encryption.yaml")
        );
    }

    #[test]
    fn covers_only_the_listed_kinds() {
        let config = EncryptionConfig::ephemeral().with_resources(["secrets", "configmaps"]);
        assert!(config.covers(b"/registry/secrets/ns/a"));
        assert!(config.covers(b"/registry/configmaps/ns/a"));
        assert!(!config.covers(b"/registry/secretsx/ns/a"));
        assert!(!config.covers(b"/registry/pods/ns/a"));
        assert!(!config.covers(b"/other/secrets/a"));
    }
}
