//! Writing a controller's status onto an object whose cached copy may be stale.
//!
//! A controller computes a status from its informer caches and writes it with the cached
//! object's resourceVersion. Right after its own previous status write the cache is often one
//! event behind, so that write fails with `Conflict` although nobody else touched the
//! status. Treating that as a failure sends the key into per-key backoff and, under load,
//! behind the queue's overall rate limit: at 30,000 pods `orchestra bench cluster` saw
//! ReplicaSet status retries scheduled 25 s out. kube-controller-manager's answer, and ours:
//! on a conflict, read the object once more and write the same status onto the fresh copy.
//! The status is the controller's alone, so the fresh spec does not change what it writes
//! (its observedGeneration may lag, and the next reconcile catches up).

use orchestra_api::{ApiError, Client, Resource};

/// Writes `status` (applied by `set`) onto `cached`; on a `Conflict`, reads the object again
/// and writes it onto the fresh copy once. Returns the object as stored.
///
/// When the object was deleted and re-created under the same name, the conflict stands:
/// the status of one object must not land on another.
pub(crate) async fn write_status<C, R>(
    client: &C,
    cached: &R,
    set: impl Fn(&mut R),
) -> Result<R, ApiError>
where
    C: Client,
    R: Resource + Clone,
{
    let mut updated = cached.clone();
    set(&mut updated);
    match client.update_status(&updated).await {
        Err(ApiError::Conflict(message)) => {
            let meta = cached.meta();
            let mut fresh: R = client.get(&meta.namespace, &meta.name).await?;
            if fresh.meta().uid != meta.uid {
                return Err(ApiError::Conflict(message));
            }
            set(&mut fresh);
            client.update_status(&fresh).await
        }
        result => result,
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::LocalClient;
    use orchestra_api::Resource;
    use orchestra_api::resources::{ReplicaSet, ReplicaSetStatus};
    use orchestra_store::MemStore;

    use super::*;

    fn replica_set(name: &str) -> ReplicaSet {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": name}},
                "template": {
                    "metadata": {"labels": {"app": name}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}
                }
            }
        }))
        .expect("a valid replica set")
    }

    fn status(replicas: i32) -> impl Fn(&mut ReplicaSet) {
        move |rs| {
            rs.status = Some(ReplicaSetStatus {
                replicas,
                ..Default::default()
            })
        }
    }

    #[tokio::test]
    async fn a_stale_copy_gets_its_status_written_on_a_fresh_read() {
        let client = LocalClient::new(MemStore::new());
        let stale = client.create(&replica_set("web")).await.expect("created");
        // Our own previous status write, which the cache has not seen yet.
        write_status(&client, &stale, status(1))
            .await
            .expect("first write");

        let stored = write_status(&client, &stale, status(2))
            .await
            .expect("retried");
        assert_eq!(stored.status.map(|s| s.replicas), Some(2));
        let read: ReplicaSet = client.get("default", "web").await.expect("read");
        assert_eq!(read.status.map(|s| s.replicas), Some(2));
    }

    #[tokio::test]
    async fn the_status_of_a_deleted_object_does_not_land_on_its_successor() {
        let client = LocalClient::new(MemStore::new());
        let old = client.create(&replica_set("web")).await.expect("created");
        client
            .delete::<ReplicaSet>("default", "web", &Default::default())
            .await
            .expect("deleted");
        let new = client
            .create(&replica_set("web"))
            .await
            .expect("re-created");
        assert_ne!(new.meta().uid, old.meta().uid);

        let err = write_status(&client, &old, status(3))
            .await
            .expect_err("refused");
        assert!(matches!(err, ApiError::Conflict(_)), "{err:?}");
        let read: ReplicaSet = client.get("default", "web").await.expect("read");
        assert_eq!(
            read.status
                .and_then(|s| (s.replicas != 0).then_some(s.replicas)),
            None
        );
    }
}
