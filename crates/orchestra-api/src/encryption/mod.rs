//! Encryption at rest: the values of chosen kinds (Secrets by default) are stored encrypted
//! with AES-256-GCM, as Kubernetes' `EncryptionConfiguration` with its `aesgcm` provider does.
//!
//! [`EncryptedStore`] sits between the registry's object encoding and the [`Store`]: it
//! encrypts what is written under `/registry/{plural}/` of the configured kinds and decrypts
//! what is read or watched, so the registry, its watch caches and the API server see objects
//! as usual while the store's files hold ciphertext. Keys rotate: the [`KeySet`]'s first key
//! encrypts, all of its keys decrypt, [`EncryptedStore::rewrite`] re-encrypts old values with
//! the current key, and plaintext values written before encryption was turned on still read.
//!
//! ```
//! use orchestra_api::encryption::EncryptionConfig;
//! use orchestra_api::resources::Secret;
//! use orchestra_api::{ObjectMeta, Registry};
//! use orchestra_store::{MemStore, Store, StoreExt};
//! use std::sync::Arc;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let raw = Arc::new(MemStore::new());
//! let registry = Registry::from_arc(raw.clone()).with_encryption(EncryptionConfig::ephemeral());
//! let mut secret = Secret { metadata: ObjectMeta::named("db"), ..Default::default() };
//! secret.metadata.namespace = "default".into();
//! secret.data.insert("password".into(), "hunter2".into());
//! registry.create(secret).await?;
//! let stored = raw.get("/registry/secrets/default/db").await.unwrap().unwrap();
//! assert!(stored.value.starts_with(b"k8s:enc:aesgcm:v1:ephemeral:"));
//! let read = registry.get::<Secret>("default", "db").await?;
//! assert_eq!(read.data["password"].0, b"hunter2");
//! # Ok::<(), orchestra_api::ApiError>(())
//! # }).unwrap();
//! ```
//!
//! # Layout
//! - [`key`]: [`KeySet`] and [`EncryptionKey`], the value format and its marker.
//! - [`config`]: [`EncryptionConfig`], the kinds and keys, and its file in the data dir.
//! - `store`: [`EncryptedStore`], the transforming [`Store`], and the rewrite.
//!
//! [`Store`]: orchestra_store::Store

pub mod config;
pub mod key;
mod store;

pub use config::{CONFIG_FILE, DEFAULT_RESOURCES, EncryptionConfig, EncryptionConfigError};
pub use key::{DecryptError, Decrypted, EncryptionKey, KeyError, KeySet};
pub use store::{EncryptedStore, RewriteReport};

/// Why a stored value that reached a decoder still encrypted could not be read, or `None` for
/// a value that is not encrypted. Names the key, never any content.
pub(crate) fn undecryptable(value: &[u8]) -> Option<String> {
    match key::encrypted_key_name(value) {
        Ok(None) => None,
        Ok(Some(name)) => Some(format!(
            "the object is encrypted at rest with aesgcm key {name:?} and no configured encryption key decrypts it: add that key to the encryption config ({CONFIG_FILE} in the data dir), or restore the key file it was written with"
        )),
        Err(err) => Some(format!("the object cannot be decrypted: {err}")),
    }
}
