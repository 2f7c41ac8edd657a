//! What the sidecar tests (`mesh_mtls.rs`, `sidecar_dual_stack.rs`, `traffic_split.rs`)
//! set up alike: the application behind an inbound sidecar that answers with the caller's
//! identity, and a Service published through the API with its one endpoint. The Service
//! objects themselves come from `dns_objects`, shared with the DNS tests.

// Each test file uses a part; what one leaves unused would warn in its test binary.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use orchestra_api::resources::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service};
use orchestra_api::{Client, LocalClient};
use orchestra_mesh::l7::PEER_IDENTITY_HEADER;
use tokio::net::TcpListener;

/// An HTTP/1.1 application on a loopback port answering every request with the caller
/// identity the inbound sidecar passed on (empty without one): its address, and how many
/// requests it has served.
pub async fn identity_echo() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let served = counter.clone();
            let service = service_fn(move |request: Request<Incoming>| {
                served.fetch_add(1, Ordering::SeqCst);
                let caller = request
                    .headers()
                    .get(PEER_IDENTITY_HEADER)
                    .map(|v| v.as_bytes().to_vec())
                    .unwrap_or_default();
                async move { Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(caller)))) }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, served)
}

/// Creates `service` and its Endpoints (same name and namespace): one ready address,
/// `endpoint`'s, with port `http` at `endpoint`'s port.
pub async fn publish(client: &LocalClient, service: Service, endpoint: SocketAddr) {
    let metadata = service.metadata.clone();
    client.create(&service).await.unwrap();
    client
        .create(&Endpoints {
            metadata,
            subsets: vec![EndpointSubset {
                addresses: vec![EndpointAddress {
                    ip: endpoint.ip().to_string(),
                    ..EndpointAddress::default()
                }],
                not_ready_addresses: vec![],
                ports: vec![EndpointPort {
                    name: "http".into(),
                    port: i32::from(endpoint.port()),
                    ..EndpointPort::default()
                }],
            }],
        })
        .await
        .unwrap();
}
