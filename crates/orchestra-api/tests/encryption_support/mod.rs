//! What the encryption tests share: a secret value to look for, a key set, a secret.

use orchestra_api::ObjectMeta;
use orchestra_api::encryption::{EncryptionConfig, EncryptionKey, KeySet};
use orchestra_api::resources::Secret;

/// The secret value no store file and no log line may contain.
pub const PLAIN: &str = "correct-horse-battery-staple";

/// An encryption config with these (name, key byte) keys, the first one writing.
pub fn config(keys: &[(&str, u8)]) -> EncryptionConfig {
    let keys = keys
        .iter()
        .map(|(name, byte)| EncryptionKey::new(name, &[*byte; 32]).expect("key"))
        .collect();
    EncryptionConfig::new(KeySet::new(keys).expect("key set"))
}

/// A secret NAME in `default` holding VALUE under `password`.
pub fn secret(name: &str, value: &str) -> Secret {
    let mut secret = Secret {
        metadata: ObjectMeta::named(name),
        ..Default::default()
    };
    secret.metadata.namespace = "default".into();
    secret.data.insert("password".into(), value.into());
    secret
}
