//! The Maintenance service: Status, enough for `etcdctl endpoint status` (and `endpoint
//! health`, which reads a key through the KV service).

use tonic::{Request, Response, Status};

use super::Shared;
use super::status::to_status;
use crate::etcd::proto::etcdserverpb as pb;

/// The Maintenance service.
pub(crate) struct MaintenanceService {
    shared: Shared,
}

impl MaintenanceService {
    pub(crate) fn new(shared: Shared) -> Self {
        MaintenanceService { shared }
    }
}

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
}
