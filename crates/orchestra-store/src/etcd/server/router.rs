//! Routes each gRPC call to its service by the path's service name (`/etcdserverpb.KV/Range`
//! goes to KV), without pulling in a web framework for four services.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http;

use super::kv::KvService;
use super::lease::LeaseService;
use super::maintenance::MaintenanceService;
use super::watch::WatchService;
use crate::etcd::proto::etcdserverpb as pb;

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send + 'static>>;

/// The four services behind one tower service.
#[derive(Clone)]
pub(crate) struct Router {
    pub(crate) kv: pb::kv_server::KvServer<KvService>,
    pub(crate) watch: pb::watch_server::WatchServer<WatchService>,
    pub(crate) lease: pb::lease_server::LeaseServer<LeaseService>,
    pub(crate) maintenance: pb::maintenance_server::MaintenanceServer<MaintenanceService>,
}

/// Call a generated server (always ready) with the request.
fn forward<S>(mut service: S, req: http::Request<Body>) -> ResponseFuture
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    Box::pin(async move { service.call(req).await })
}

impl Service<http::Request<Body>> for Router {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let path = req.uri().path();
        let service = path
            .strip_prefix('/')
            .and_then(|p| p.split('/').next())
            .unwrap_or("");
        match service {
            "etcdserverpb.KV" => forward(self.kv.clone(), req),
            "etcdserverpb.Watch" => forward(self.watch.clone(), req),
            "etcdserverpb.Lease" => forward(self.lease.clone(), req),
            "etcdserverpb.Maintenance" => forward(self.maintenance.clone(), req),
            other => {
                let status = tonic::Status::unimplemented(format!(
                    "orchestra: the etcd service {other:?} is not served (KV, Watch, Lease and Maintenance are)"
                ));
                Box::pin(async move { Ok(status.into_http()) })
            }
        }
    }
}
