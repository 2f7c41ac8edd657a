//! [`KeySet`]: AES-256-GCM keys with names, one that encrypts and all that decrypt, and the
//! stored value's format.
//!
//! An encrypted value is `k8s:enc:aesgcm:v1:{key name}:` followed by a random 96-bit nonce and
//! the AES-GCM ciphertext with its 16-byte tag (Kubernetes' format for its `aesgcm` provider),
//! with the store key as associated data so that a value copied under another key does not
//! decrypt. A value without the `k8s:enc:` prefix is plaintext written before encryption was
//! turned on (Kubernetes' `identity` provider) and reads as it is.

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use bytes::{BufMut, Bytes, BytesMut};

/// What every encrypted value starts with, whatever its provider.
pub const ENCRYPTED_PREFIX: &[u8] = b"k8s:enc:";
/// The provider part of the marker this module writes and reads.
pub const AESGCM_PREFIX: &str = "k8s:enc:aesgcm:v1:";
/// The length of an AES-256 key in bytes.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;

/// One named AES-256-GCM key. Its Debug shows the name only.
#[derive(Clone)]
pub struct EncryptionKey {
    name: String,
    cipher: Aes256Gcm,
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl EncryptionKey {
    /// A key from its name and 32 bytes. The name becomes part of every value it encrypts, so
    /// it must be non-empty, at most 64 bytes, and made of `[A-Za-z0-9._-]`.
    pub fn new(name: &str, secret: &[u8]) -> Result<Self, KeyError> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(KeyError::InvalidName(name.to_owned()));
        }
        if secret.len() != KEY_LEN {
            return Err(KeyError::InvalidLength {
                name: name.to_owned(),
                len: secret.len(),
            });
        }
        Ok(EncryptionKey {
            name: name.to_owned(),
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(secret)),
        })
    }

    /// A fresh random key (from the operating system's generator) named `name`, with its bytes
    /// (to write into a config file).
    pub fn generate(name: &str) -> Result<(Self, [u8; KEY_LEN]), KeyError> {
        let secret: [u8; KEY_LEN] = Aes256Gcm::generate_key(OsRng).into();
        Ok((Self::new(name, &secret)?, secret))
    }

    /// The key's name, as it appears in the values it encrypts.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Why a key could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The name is empty, too long or has characters outside `[A-Za-z0-9._-]`.
    #[error(
        "invalid encryption key name {0:?}: use 1 to 64 characters of letters, digits, '.', '_' and '-'"
    )]
    InvalidName(String),
    /// The secret is not 32 bytes.
    #[error("encryption key {name:?} is {len} bytes; AES-256-GCM needs exactly 32")]
    InvalidLength {
        /// The key's name.
        name: String,
        /// Its length.
        len: usize,
    },
    /// The set has no key.
    #[error("an encryption key set needs at least one key")]
    Empty,
    /// A value is over AES-GCM's length limit.
    #[error("a {0} byte value is over AES-GCM's limit")]
    TooLarge(usize),
    /// Two keys share a name.
    #[error("encryption key name {0:?} is used twice; names must be unique")]
    DuplicateName(String),
}

/// Why a stored value could not be decrypted. Never carries the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    /// The value names a key this set does not have.
    #[error(
        "it is encrypted with aesgcm key {0:?}, which is not among the configured encryption keys (add it back to the encryption config to read it)"
    )]
    UnknownKey(String),
    /// The named key does not open the value: another key of that name, or damaged data.
    #[error(
        "it is encrypted with aesgcm key {0:?} and that key does not decrypt it (a different key under the same name, or damaged data)"
    )]
    Authentication(String),
    /// The value has the encrypted prefix but no provider this build knows.
    #[error("it is encrypted with an unknown provider ({0:?}); this build knows aesgcm v1")]
    UnknownProvider(String),
    /// The value is cut short or its marker is malformed.
    #[error("its encrypted form is malformed ({0})")]
    Malformed(&'static str),
}

/// Keys for encryption at rest: the first encrypts every write, all of them decrypt (so that a
/// new key can be put first while values written under the old one still read).
#[derive(Clone, Debug)]
pub struct KeySet {
    keys: Vec<EncryptionKey>,
}

/// A value read back through a [`KeySet`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decrypted {
    /// The plaintext.
    pub plain: Bytes,
    /// The key it was encrypted with; `None` for a plaintext (legacy) value.
    pub key: Option<String>,
}

impl KeySet {
    /// A set from its keys, the write key first.
    pub fn new(keys: Vec<EncryptionKey>) -> Result<Self, KeyError> {
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.name == key.name) {
                return Err(KeyError::DuplicateName(key.name.clone()));
            }
        }
        Ok(KeySet { keys })
    }

    /// The key that encrypts writes.
    pub fn write_key(&self) -> &EncryptionKey {
        &self.keys[0]
    }

    /// Every key, the write key first.
    pub fn keys(&self) -> &[EncryptionKey] {
        &self.keys
    }

    /// Encrypts `plain` with the write key, binding it to the store key `aad`.
    /// Fails only for a value over AES-GCM's limit (64 GiB), far above any store's.
    pub fn encrypt(&self, aad: &[u8], plain: &[u8]) -> Result<Bytes, KeyError> {
        let key = self.write_key();
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = key
            .cipher
            .encrypt(&nonce, Payload { msg: plain, aad })
            .map_err(|_| KeyError::TooLarge(plain.len()))?;
        let mut out = BytesMut::with_capacity(
            AESGCM_PREFIX.len() + key.name.len() + 1 + NONCE_LEN + sealed.len(),
        );
        out.put_slice(AESGCM_PREFIX.as_bytes());
        out.put_slice(key.name.as_bytes());
        out.put_u8(b':');
        out.put_slice(&nonce);
        out.put_slice(&sealed);
        Ok(out.freeze())
    }

    /// Decrypts a stored value; a value without the encrypted prefix is returned as it is.
    pub fn decrypt(&self, aad: &[u8], stored: &Bytes) -> Result<Decrypted, DecryptError> {
        let Some(name) = encrypted_key_name(stored)? else {
            return Ok(Decrypted {
                plain: stored.clone(),
                key: None,
            });
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.name == name)
            .ok_or_else(|| DecryptError::UnknownKey(name.to_owned()))?;
        let body = &stored[AESGCM_PREFIX.len() + name.len() + 1..];
        if body.len() < NONCE_LEN + 16 {
            return Err(DecryptError::Malformed("shorter than a nonce and a tag"));
        }
        let (nonce, sealed) = body.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
            .map_err(|_| DecryptError::Authentication(name.to_owned()))?;
        Ok(Decrypted {
            plain: Bytes::from(plain),
            key: Some(name.to_owned()),
        })
    }

    /// Whether `stored` is already encrypted with the write key (so a rewrite can skip it).
    pub fn is_current(&self, stored: &[u8]) -> bool {
        matches!(encrypted_key_name(stored), Ok(Some(name)) if name == self.write_key().name)
    }
}

/// The key name in an encrypted value's marker; `None` for a plaintext value.
pub fn encrypted_key_name(stored: &[u8]) -> Result<Option<&str>, DecryptError> {
    if !stored.starts_with(ENCRYPTED_PREFIX) {
        return Ok(None);
    }
    let Some(rest) = stored.strip_prefix(AESGCM_PREFIX.as_bytes()) else {
        let provider = stored[ENCRYPTED_PREFIX.len()..]
            .iter()
            .take(32)
            .take_while(|b| b.is_ascii_graphic())
            .map(|&b| b as char)
            .collect();
        return Err(DecryptError::UnknownProvider(provider));
    };
    let end = rest
        .iter()
        .take(65)
        .position(|&b| b == b':')
        .ok_or(DecryptError::Malformed("no ':' after the key name"))?;
    std::str::from_utf8(&rest[..end])
        .map(Some)
        .map_err(|_| DecryptError::Malformed("the key name is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, byte: u8) -> EncryptionKey {
        EncryptionKey::new(name, &[byte; KEY_LEN]).unwrap()
    }

    #[test]
    fn round_trip_with_marker_and_fresh_nonces() {
        let set = KeySet::new(vec![key("k1", 1)]).unwrap();
        let a = set.encrypt(b"/registry/secrets/ns/a", b"hunter2").unwrap();
        let b = set.encrypt(b"/registry/secrets/ns/a", b"hunter2").unwrap();
        assert!(a.starts_with(b"k8s:enc:aesgcm:v1:k1:"));
        assert_ne!(a, b, "each write draws a new nonce");
        assert!(!a.windows(7).any(|w| w == b"hunter2"));
        let plain = set.decrypt(b"/registry/secrets/ns/a", &a).unwrap();
        assert_eq!(plain.plain, Bytes::from_static(b"hunter2"));
        assert_eq!(plain.key.as_deref(), Some("k1"));
    }

    #[test]
    fn plaintext_reads_as_is() {
        let set = KeySet::new(vec![key("k1", 1)]).unwrap();
        let legacy = Bytes::from_static(b"{\"kind\":\"Secret\"}");
        let read = set.decrypt(b"/k", &legacy).unwrap();
        assert_eq!(read.plain, legacy);
        assert_eq!(read.key, None);
    }

    #[test]
    fn old_keys_read_and_only_the_first_writes() {
        let old = KeySet::new(vec![key("old", 1)]).unwrap();
        let value = old.encrypt(b"/k", b"v").unwrap();
        let rotated = KeySet::new(vec![key("new", 2), key("old", 1)]).unwrap();
        assert_eq!(
            rotated.decrypt(b"/k", &value).unwrap().key.as_deref(),
            Some("old")
        );
        assert!(!rotated.is_current(&value));
        assert!(rotated.is_current(&rotated.encrypt(b"/k", b"v").unwrap()));
    }

    #[test]
    fn wrong_key_missing_key_moved_value_and_damage_are_errors() {
        let set = KeySet::new(vec![key("k1", 1)]).unwrap();
        let value = set.encrypt(b"/a", b"v").unwrap();
        let other = KeySet::new(vec![key("k1", 9)]).unwrap();
        assert_eq!(
            other.decrypt(b"/a", &value),
            Err(DecryptError::Authentication("k1".into()))
        );
        let missing = KeySet::new(vec![key("k2", 1)]).unwrap();
        assert_eq!(
            missing.decrypt(b"/a", &value),
            Err(DecryptError::UnknownKey("k1".into()))
        );
        assert_eq!(
            set.decrypt(b"/b", &value),
            Err(DecryptError::Authentication("k1".into())),
            "the store key is bound as associated data"
        );
        let cut = value.slice(..value.len() - 20);
        assert!(set.decrypt(b"/a", &cut).is_err());
        assert!(matches!(
            set.decrypt(b"/a", &Bytes::from_static(b"k8s:enc:kms:v2:x:abc")),
            Err(DecryptError::UnknownProvider(p)) if p.starts_with("kms")
        ));
        assert!(matches!(
            set.decrypt(b"/a", &Bytes::from_static(b"k8s:enc:aesgcm:v1:nocolon")),
            Err(DecryptError::Malformed(_))
        ));
    }

    #[test]
    fn bad_keys_are_refused() {
        assert!(matches!(
            EncryptionKey::new("a:b", &[0; KEY_LEN]),
            Err(KeyError::InvalidName(_))
        ));
        assert!(matches!(
            EncryptionKey::new("a", &[0; 16]),
            Err(KeyError::InvalidLength { len: 16, .. })
        ));
        assert_eq!(KeySet::new(vec![]).unwrap_err(), KeyError::Empty);
        assert_eq!(
            KeySet::new(vec![key("a", 1), key("a", 2)]).unwrap_err(),
            KeyError::DuplicateName("a".into())
        );
        let debug = format!("{:?}", key("visible-name", 7));
        assert!(debug.contains("visible-name"));
    }
}
