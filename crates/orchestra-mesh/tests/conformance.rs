//! The ServiceProxy conformance suite, run by both implementations.

use std::net::{IpAddr, Ipv4Addr};

use orchestra_mesh::{MemoryProxy, TcpProxy, TcpProxyConfig, testing};

fn tcp_proxy() -> TcpProxy {
    TcpProxy::new(TcpProxyConfig {
        node_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
        ..TcpProxyConfig::default()
    })
}

#[tokio::test]
async fn memory_proxy_conforms() {
    testing::run_all(MemoryProxy::new).await;
}

#[tokio::test(start_paused = true)]
async fn memory_proxy_affinity_expires() {
    testing::affinity_expires(MemoryProxy::new).await;
}

#[tokio::test]
async fn tcp_proxy_conforms() {
    testing::run_all(tcp_proxy).await;
}

#[tokio::test(start_paused = true)]
async fn tcp_proxy_affinity_expires() {
    testing::affinity_expires(tcp_proxy).await;
}
