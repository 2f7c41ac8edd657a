//! The Lease service: Grant (with the client's ID, or 0 for one the store chooses), Revoke,
//! KeepAlive (a stream), TimeToLive, Leases.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use super::Shared;
use super::status::to_status;
use crate::error::StoreError;
use crate::etcd::proto::etcdserverpb as pb;

/// The Lease service.
pub(crate) struct LeaseService {
    shared: Shared,
}

impl LeaseService {
    pub(crate) fn new(shared: Shared) -> Self {
        LeaseService { shared }
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// One keep-alive: the response etcd sends (a TTL of 0 for an unknown lease).
async fn keep_alive(shared: &Shared, id: i64) -> Result<pb::LeaseKeepAliveResponse, Status> {
    let ttl = match shared.store.lease_keep_alive(id).await {
        Ok(ttl) => secs(ttl),
        Err(StoreError::LeaseNotFound(_)) => 0,
        Err(err) => return Err(to_status(err)),
    };
    Ok(pb::LeaseKeepAliveResponse {
        header: shared.current_header().await?,
        id,
        ttl,
    })
}

#[async_trait::async_trait]
impl pb::lease_server::Lease for LeaseService {
    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Result<Response<pb::LeaseGrantResponse>, Status> {
        let req = request.into_inner();
        let ttl = req.ttl.max(self.shared.options.min_lease_ttl).max(1);
        let ttl_secs = u64::try_from(ttl).unwrap_or(u64::MAX);
        let id = self
            .shared
            .store
            .lease_grant_id(req.id, Duration::from_secs(ttl_secs))
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::LeaseGrantResponse {
            header: self.shared.current_header().await?,
            id,
            ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Result<Response<pb::LeaseRevokeResponse>, Status> {
        let id = request.into_inner().id;
        self.shared
            .store
            .lease_revoke(id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::LeaseRevokeResponse {
            header: self.shared.current_header().await?,
        }))
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        let mut inbound = request.into_inner();
        let (out, rx) = mpsc::channel(16);
        let shared = self.shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    message = inbound.message() => match message {
                        Ok(Some(req)) => {
                            let resp = keep_alive(&shared, req.id).await;
                            let failed = resp.is_err();
                            if out.send(resp).await.is_err() || failed {
                                break;
                            }
                        }
                        // The client ended its side (or broke the stream): end ours.
                        Ok(None) | Err(_) => break,
                    },
                    () = out.closed() => break,
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Result<Response<pb::LeaseTimeToLiveResponse>, Status> {
        let req = request.into_inner();
        let header = self.shared.current_header().await?;
        match self.shared.store.lease_time_to_live(req.id).await {
            Ok(status) => Ok(Response::new(pb::LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: secs(status.remaining),
                granted_ttl: secs(status.granted_ttl),
                keys: if req.keys { status.keys } else { Vec::new() },
            })),
            // etcd answers an unknown lease with a TTL of -1.
            Err(StoreError::LeaseNotFound(_)) => Ok(Response::new(pb::LeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                ..Default::default()
            })),
            Err(err) => Err(to_status(err)),
        }
    }

    async fn lease_leases(
        &self,
        _request: Request<pb::LeaseLeasesRequest>,
    ) -> Result<Response<pb::LeaseLeasesResponse>, Status> {
        let header = self.shared.current_header().await?;
        let ids = self.shared.store.lease_list().await.map_err(to_status)?;
        Ok(Response::new(pb::LeaseLeasesResponse {
            header,
            leases: ids.into_iter().map(|id| pb::LeaseStatus { id }).collect(),
        }))
    }
}
