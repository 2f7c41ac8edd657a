//! Encryption at rest: Secrets are ciphertext in the store (MemStore's values, DiskStore's
//! files), plaintext through the registry, its watches and LocalClient's watch cache; keys
//! rotate; a value no key opens fails alone with a clear error. That nothing leaks into
//! tracing is `encryption_logs.rs`'s, alone in its binary.

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use orchestra_api::encryption::EncryptionConfig;
use orchestra_api::registry::{ApiError, DeleteOptions, ListOptions, WatchEvent, WatchOptions};
use orchestra_api::resources::{ConfigMap, Secret};
use orchestra_api::{Client, LocalClient, ObjectMeta, Registry};
use orchestra_store::{MemStore, StoreExt};

mod encryption_support;

use encryption_support::{PLAIN, config, secret};

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

async fn raw_value(store: &MemStore, key: &str) -> Vec<u8> {
    store
        .get(key.to_owned())
        .await
        .expect("read")
        .expect("present")
        .value
        .to_vec()
}

#[tokio::test(start_paused = true)]
async fn mem_store_holds_ciphertext_and_every_read_path_plaintext() {
    let raw = Arc::new(MemStore::new());
    let registry = Registry::from_arc(raw.clone()).with_encryption(config(&[("k1", 1)]));
    let client = LocalClient::from_registry(registry.clone());
    let mut local_watch = client
        .watch::<Secret>(Some("default"), &WatchOptions::default())
        .await
        .expect("local watch");
    let mut registry_watch = registry
        .watch::<Secret>(Some("default"), &WatchOptions::default())
        .await
        .expect("registry watch");

    let created = client.create(&secret("db", PLAIN)).await.expect("create");
    let stored = raw_value(raw.as_ref(), "/registry/secrets/default/db").await;
    assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:k1:"));
    assert!(!contains(&stored, PLAIN));
    assert!(
        !contains(&stored, "Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5LXN0YXBsZQ=="),
        "nor its base64"
    );
    assert!(
        !contains(&stored, "\"password\""),
        "entry names are encrypted too"
    );

    let read: Secret = client.get("default", "db").await.expect("get");
    assert_eq!(read.data["password"].0, PLAIN.as_bytes());
    assert_eq!(read, created);
    let listed = registry
        .list::<Secret>(Some("default"), &ListOptions::default())
        .await
        .expect("list");
    assert_eq!(listed.items, vec![created.clone()]);
    for events in [&mut local_watch, &mut registry_watch] {
        match events.next().await {
            Some(Ok(WatchEvent::Added(s))) => assert_eq!(s.data["password"].0, PLAIN.as_bytes()),
            other => panic!("expected Added, got {other:?}"),
        }
    }

    // An update that changes nothing is a no-op (the comparison sees plaintext, not nonces).
    let same = registry.update(read.clone()).await.expect("no-op update");
    assert_eq!(
        same.metadata.resource_version,
        read.metadata.resource_version
    );
    let mut changed = read.clone();
    changed
        .data
        .insert("password".into(), "second-value".into());
    let updated = registry.update(changed).await.expect("update");
    assert_ne!(
        updated.metadata.resource_version,
        read.metadata.resource_version
    );
    let stored = raw_value(raw.as_ref(), "/registry/secrets/default/db").await;
    assert!(!contains(&stored, "second-value"));
    match registry_watch.next().await {
        Some(Ok(WatchEvent::Modified(s))) => assert_eq!(s.data["password"].0, b"second-value"),
        other => panic!("expected Modified, got {other:?}"),
    }

    // Other kinds are not encrypted by default.
    let mut cm = ConfigMap {
        metadata: ObjectMeta::named("settings"),
        ..Default::default()
    };
    cm.metadata.namespace = "default".into();
    cm.data.insert("mode".into(), "plain-config".into());
    registry.create(cm).await.expect("configmap");
    let stored = raw_value(raw.as_ref(), "/registry/configmaps/default/settings").await;
    assert!(contains(&stored, "plain-config"));

    registry
        .delete::<Secret>("default", "db", &DeleteOptions::default())
        .await
        .expect("delete");
    match registry_watch.next().await {
        Some(Ok(WatchEvent::Deleted(s))) => assert_eq!(s.data["password"].0, b"second-value"),
        other => panic!("expected Deleted, got {other:?}"),
    }
}

/// Every file under `dir`, read whole.
fn files(dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(std::fs::read(&path).expect("read file"));
        }
    }
    out
}

#[tokio::test]
async fn disk_store_files_hold_no_plaintext_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store_dir = dir.path().join("store");
    let encryption = EncryptionConfig::load_or_create(dir.path()).expect("key file");
    {
        let store = orchestra_store::DiskStore::open(&store_dir)
            .await
            .expect("open");
        let registry = Registry::new(store).with_encryption(encryption.clone());
        registry.create(secret("db", PLAIN)).await.expect("create");
        let mut cm = ConfigMap {
            metadata: ObjectMeta::named("control"),
            ..Default::default()
        };
        cm.metadata.namespace = "default".into();
        cm.data
            .insert("visible".into(), "control-plaintext-marker".into());
        registry.create(cm).await.expect("configmap");
    }
    let files = files(&store_dir);
    assert!(
        files
            .iter()
            .any(|f| contains(f, "control-plaintext-marker")),
        "the grep finds unencrypted values, so it would find the secret's"
    );
    for file in &files {
        assert!(!contains(file, PLAIN));
    }
    // Reopened with the key file, the secret reads back.
    let store = orchestra_store::DiskStore::open(&store_dir)
        .await
        .expect("reopen");
    let reopened = EncryptionConfig::load_or_create(dir.path()).expect("key file again");
    let registry = Registry::new(store).with_encryption(reopened);
    let read: Secret = registry.get("default", "db").await.expect("get");
    assert_eq!(read.data["password"].0, PLAIN.as_bytes());
}

#[tokio::test(start_paused = true)]
async fn rotation_reads_old_keys_and_rewrite_retires_them() {
    let raw = Arc::new(MemStore::new());
    // Before encryption: a plaintext (legacy) secret.
    Registry::from_arc(raw.clone())
        .create(secret("legacy", "legacy-value"))
        .await
        .expect("legacy");
    let old = Registry::from_arc(raw.clone()).with_encryption(config(&[("old", 1)]));
    old.create(secret("a", "value-a")).await.expect("create a");
    assert_eq!(
        old.get::<Secret>("default", "legacy")
            .await
            .expect("legacy reads")
            .data["password"]
            .0,
        b"legacy-value"
    );

    // New write key first, the old one still listed.
    let rotated =
        Registry::from_arc(raw.clone()).with_encryption(config(&[("new", 2), ("old", 1)]));
    assert_eq!(
        rotated
            .get::<Secret>("default", "a")
            .await
            .expect("old key reads")
            .data["password"]
            .0,
        b"value-a"
    );
    rotated
        .create(secret("b", "value-b"))
        .await
        .expect("create b");
    assert!(
        raw_value(raw.as_ref(), "/registry/secrets/default/b")
            .await
            .starts_with(b"k8s:enc:aesgcm:v1:new:")
    );

    let before = rotated.get::<Secret>("default", "a").await.expect("a");
    let report = rotated
        .encryption()
        .expect("encryption on")
        .rewrite()
        .await
        .expect("rewrite");
    assert_eq!((report.rewritten, report.current, report.raced), (2, 1, 0));
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    for name in ["a", "b", "legacy"] {
        let stored = raw_value(raw.as_ref(), &format!("/registry/secrets/default/{name}")).await;
        assert!(stored.starts_with(b"k8s:enc:aesgcm:v1:new:"), "{name}");
    }
    let again = rotated
        .encryption()
        .expect("on")
        .rewrite()
        .await
        .expect("rewrite again");
    assert_eq!((again.rewritten, again.current), (0, 3));

    // The old key can go: everything reads with the new one alone.
    let new_only = Registry::from_arc(raw.clone()).with_encryption(config(&[("new", 2)]));
    let after = new_only
        .get::<Secret>("default", "a")
        .await
        .expect("a after");
    assert_eq!(after.data, before.data);
    assert_eq!(
        new_only
            .get::<Secret>("default", "legacy")
            .await
            .expect("legacy")
            .data["password"]
            .0,
        b"legacy-value"
    );
}

#[tokio::test(start_paused = true)]
async fn a_value_no_key_opens_fails_alone_with_a_clear_error() {
    let raw = Arc::new(MemStore::new());
    Registry::from_arc(raw.clone())
        .with_encryption(config(&[("lost", 1)]))
        .create(secret("orphan", PLAIN))
        .await
        .expect("create");
    for other in [config(&[("current", 2)]), config(&[("lost", 3)])] {
        let registry = Registry::from_arc(raw.clone()).with_encryption(other);
        let err = registry
            .get::<Secret>("default", "orphan")
            .await
            .expect_err("undecryptable");
        let message = err.to_string();
        assert!(matches!(err, ApiError::Internal(_)), "{err:?}");
        assert!(
            message.contains("/registry/secrets/default/orphan"),
            "{message}"
        );
        assert!(message.contains("aesgcm key \"lost\""), "{message}");
        assert!(message.contains("encryption"), "{message}");
        assert!(!message.contains(PLAIN) && !format!("{err:?}").contains(PLAIN));

        // Everything else keeps working.
        registry
            .create(secret("fresh", "fresh-value"))
            .await
            .expect("create another");
        let fresh: Secret = registry
            .get("default", "fresh")
            .await
            .expect("read another");
        assert_eq!(fresh.data["password"].0, b"fresh-value");
        registry
            .delete::<Secret>("default", "fresh", &DeleteOptions::default())
            .await
            .expect("delete");
        let report = registry
            .encryption()
            .expect("on")
            .rewrite()
            .await
            .expect("rewrite");
        assert_eq!(report.failed.len(), 1, "{report:?}");
        assert_eq!(report.failed[0].0, "/registry/secrets/default/orphan");
    }
}
