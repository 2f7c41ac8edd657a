//! The Maintenance service: Status (enough for `etcdctl endpoint status`; `endpoint health`
//! reads a key through the KV service), Snapshot (for `etcdctl snapshot save`), Hash and
//! HashKV (to compare two stores), and Defragment.

use std::pin::Pin;

use futures::Stream;
use tonic::{Request, Response, Status};

use super::Shared;
use super::status::to_status;
use crate::etcd::proto::etcdserverpb as pb;
use crate::snapshot;

/// The size of one snapshot chunk (etcd sends 32 KiB chunks too).
const CHUNK_BYTES: usize = 32 * 1024;

/// The Maintenance service.
pub(crate) struct MaintenanceService {
    shared: Shared,
}

impl MaintenanceService {
    pub(crate) fn new(shared: Shared) -> Self {
        MaintenanceService { shared }
    }
}

/// The messages of a snapshot stream: the body in chunks, each saying how many bytes follow
/// it, then the SHA-256 of the body alone (remaining 0), as etcd sends them. `etcdctl
/// snapshot save` writes the blobs one after the other, so the file is the body and its
/// checksum: exactly [`Snapshot::encode`].
pub(crate) fn snapshot_messages(
    body: &[u8],
    header: Option<pb::ResponseHeader>,
) -> Vec<pb::SnapshotResponse> {
    use sha2::{Digest, Sha256};
    let mut messages = Vec::with_capacity(body.len() / CHUNK_BYTES + 2);
    let mut sent = 0usize;
    for chunk in body.chunks(CHUNK_BYTES) {
        sent += chunk.len();
        messages.push(pb::SnapshotResponse {
            header,
            remaining_bytes: (body.len() - sent) as u64,
            blob: bytes::Bytes::copy_from_slice(chunk),
        });
    }
    messages.push(pb::SnapshotResponse {
        header,
        remaining_bytes: 0,
        blob: bytes::Bytes::copy_from_slice(&Sha256::digest(body)),
    });
    messages
}

type SnapshotStream =
    Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send + 'static>>;

#[async_trait::async_trait]
impl pb::maintenance_server::Maintenance for MaintenanceService {
    async fn status(
        &self,
        _request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let status = self.shared.store.status().await.map_err(to_status)?;
        let db_size = i64::try_from(status.db_size).unwrap_or(i64::MAX);
        // There is no raft log: the revision stands in for the raft index.
        let index = u64::try_from(status.revision).unwrap_or(0);
        Ok(Response::new(pb::StatusResponse {
            header: self.shared.header(status.revision),
            version: self.shared.options.version.clone(),
            db_size,
            leader: self.shared.options.member_id,
            raft_index: index,
            raft_term: self.shared.options.raft_term,
            raft_applied_index: index,
            errors: Vec::new(),
            db_size_in_use: db_size,
            is_learner: false,
        }))
    }

    async fn defragment(
        &self,
        _request: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        // Nothing to do: the DiskStore gives freed pages back to the file system when it
        // compacts, and a MemStore has no file.
        Ok(Response::new(pb::DefragmentResponse {
            header: self.shared.current_header().await?,
        }))
    }

    async fn hash(
        &self,
        _request: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        let snap = snapshot::capture(self.shared.store.as_ref())
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::HashResponse {
            header: self.shared.header(snap.revision),
            hash: crc32fast::hash(&snap.encode_body()),
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        // The store computes etcd's own HashKV (a CRC-32C over the history as etcd's backend
        // stores it), so the value equals an etcd member's after the same writes.
        let hash = self
            .shared
            .store
            .hash_kv(request.into_inner().revision)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::HashKvResponse {
            header: self.shared.header(hash.revision),
            hash: hash.hash,
            compact_revision: hash.compact_revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let snap = snapshot::capture(self.shared.store.as_ref())
            .await
            .map_err(to_status)?;
        tracing::info!(
            revision = snap.revision,
            keys = snap.kvs.len(),
            leases = snap.leases.len(),
            "sending a snapshot"
        );
        let messages = snapshot_messages(&snap.encode_body(), self.shared.header(snap.revision));
        Ok(Response::new(Box::pin(futures::stream::iter(
            messages.into_iter().map(Ok),
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::Snapshot;

    #[test]
    fn the_blobs_concatenated_are_the_snapshot_file() {
        let snap = Snapshot {
            revision: 5,
            kvs: (0..3000)
                .map(|i| crate::types::KeyValue {
                    key: format!("key-{i:05}").into(),
                    value: vec![b'v'; 40].into(),
                    create_revision: 2,
                    mod_revision: 5,
                    version: 1,
                    lease: 0,
                })
                .collect(),
            leases: Vec::new(),
        };
        let body = snap.encode_body();
        assert!(body.len() > 2 * CHUNK_BYTES);
        let messages = snapshot_messages(&body, None);
        let file: Vec<u8> = messages.iter().flat_map(|m| m.blob.to_vec()).collect();
        assert_eq!(file, snap.encode());
        assert_eq!(Snapshot::decode(&file).unwrap(), snap);
        // Remaining bytes count down to 0 with the last chunk of the body; the checksum
        // message says 0 too.
        let remaining: Vec<u64> = messages.iter().map(|m| m.remaining_bytes).collect();
        assert_eq!(remaining[0], (body.len() - CHUNK_BYTES) as u64);
        assert_eq!(&remaining[remaining.len() - 2..], [0, 0]);
        assert_eq!(messages.last().unwrap().blob.len(), 32);
    }
}
