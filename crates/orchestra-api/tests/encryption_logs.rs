//! Nothing of a secret leaks into tracing: not its value, not its base64, not the key.
//!
//! Alone in its test binary: it captures log lines with a thread-local subscriber, and
//! tracing caches each call site's interest process-wide, so another test thread reaching a
//! call site first (with no subscriber) could hide that line from this test.

use std::io::Write;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use orchestra_api::encryption::EncryptionConfig;
use orchestra_api::registry::{DeleteOptions, WatchOptions};
use orchestra_api::resources::Secret;
use orchestra_api::{Client, LocalClient, Registry};
use orchestra_store::MemStore;

mod encryption_support;

use encryption_support::{PLAIN, config, secret};

/// A `MakeWriter` that appends every log line to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn tracing_output_never_contains_a_secret_value() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let raw = Arc::new(MemStore::new());
    let registry = Registry::from_arc(raw.clone()).with_encryption(config(&[("k1", 1)]));
    let client = LocalClient::from_registry(registry.clone());
    let mut watch = client
        .watch::<Secret>(None, &WatchOptions::default())
        .await
        .expect("watch");
    let created = client.create(&secret("db", PLAIN)).await.expect("create");
    let _ = watch.next().await;
    let mut invalid = created.clone();
    invalid.type_ = "kubernetes.io/tls".into();
    let err = registry
        .update(invalid)
        .await
        .expect_err("type is immutable");
    // The value is also logged the way code commonly does: an error and the object itself.
    tracing::warn!(%err, object = ?created, "update refused");
    let dir = tempfile::tempdir().expect("tempdir");
    let _ = EncryptionConfig::load_or_create(dir.path()).expect("key file");
    let undecryptable = Registry::from_arc(raw.clone()).with_encryption(config(&[("k2", 2)]));
    let err = undecryptable
        .get::<Secret>("default", "db")
        .await
        .expect_err("wrong key");
    tracing::error!(%err, ?err, "read failed");
    client
        .delete::<Secret>("default", "db", &DeleteOptions::default())
        .await
        .expect("delete");
    let _ = watch.next().await;

    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(
        logs.contains("update refused") && logs.contains("read failed"),
        "{logs}"
    );
    assert!(logs.contains("created the encryption config"), "{logs}");
    assert!(!logs.contains(PLAIN), "{logs}");
    assert!(
        !logs.contains("Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5LXN0YXBsZQ"),
        "{logs}"
    );
    let key_file = std::fs::read_to_string(dir.path().join("encryption.yaml")).expect("key file");
    let key = key_file
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret: "))
        .expect("a key");
    assert!(!logs.contains(key), "the key itself is never logged");
}
