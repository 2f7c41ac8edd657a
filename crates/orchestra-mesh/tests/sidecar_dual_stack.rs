//! A sidecar serves both address families (issue #8: the pod redirect sends IPv6 outbound
//! TCP to `[::1]:4140` and IPv6 inbound to port 4143). Two sidecars, `web` and `echo`,
//! configured on `127.0.0.1:0` as before, also listen on `[::1]` at the same ports; their
//! Services, Endpoints and Pods come from a `LocalClient`, their certificates from an
//! in-process identity service. The echo service's endpoint is the echo sidecar's *IPv6*
//! inbound socket, so a request through web's outbound listener crosses both twins:
//!
//! ```text
//! client --127.0.0.1 or [::1]--> web outbound --mTLS to [::1]--> echo inbound --> app
//! ```
//!
//! Both requests reach the application with web's identity and are counted by the same
//! proxies' metrics; `/ready` answers on both families of the admin listener; `POST
//! /shutdown` from `[::1]` (a loopback caller) drains the sidecar, whose IPv6 sockets close
//! with the IPv4 ones. Skipped (with the reason) on a machine without an IPv6 loopback.

#![cfg(feature = "l7")]

mod dns_objects;
mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use orchestra_api::LocalClient;
use orchestra_api::auth::UserInfo;
use orchestra_mesh::FollowerConfig;
use orchestra_mesh::l7::identity::{CaConfig, IdentityService, LocalIssuer, MeshCa};
use orchestra_mesh::l7::{Sidecar, SidecarConfig};
use orchestra_store::MemStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous: waits are for a certificate and a debounced table on a busy machine.
const WAIT: Duration = Duration::from_secs(30);

/// One HTTP/1.1 request to `addr` with `Host: host`: the status and the body.
async fn http(addr: SocketAddr, method: &str, path: &str, host: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(WAIT, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} on {addr}: no answer"))
        .unwrap_or_else(|e| panic!("{method} {path} on {addr}: {e}"));
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer from {addr}: {answer:?}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn config(service_account: &str, app: SocketAddr) -> SidecarConfig {
    let any = "127.0.0.1:0".parse().unwrap();
    let mut config = SidecarConfig::new("shop", service_account);
    config.inbound = any;
    config.outbound = any;
    config.admin = any;
    config.app = app;
    config.follower = FollowerConfig {
        debounce: Duration::from_millis(20),
        ..FollowerConfig::default()
    };
    config.drain_timeout = Duration::from_secs(5);
    config
}

/// The sidecar's addresses of one listener: the configured IPv4 one and its `[::1]` twin on
/// the same port.
fn both(addrs: Vec<SocketAddr>) -> (SocketAddr, SocketAddr) {
    assert_eq!(
        addrs.len(),
        2,
        "an IPv4 socket and its IPv6 twin: {addrs:?}"
    );
    let (v4, v6) = (addrs[0], addrs[1]);
    assert_eq!(v4.ip().to_string(), "127.0.0.1");
    assert_eq!(v6.ip().to_string(), "::1");
    assert_eq!(v4.port(), v6.port(), "one port for both families");
    (v4, v6)
}

async fn ready(admin: SocketAddr) {
    let became = tokio::time::timeout(WAIT, async {
        loop {
            if http(admin, "GET", "/ready", "admin").await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(became.is_ok(), "{admin}/ready not 200 within {WAIT:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_serves_ipv4_and_ipv6_with_one_proxy() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: this machine has no IPv6 loopback (::1): nothing to test");
        return;
    }
    let client = LocalClient::new(MemStore::new());
    let ca = MeshCa::generate(CaConfig::default(), std::time::SystemTime::now()).unwrap();
    let identities = Arc::new(IdentityService::new(ca));
    let issuer = |service_account: &str| {
        let user = format!("system:serviceaccount:shop:{service_account}");
        Arc::new(LocalIssuer::new(
            identities.clone(),
            UserInfo::new(user, ["system:serviceaccounts"]),
        ))
    };

    let echo = Sidecar::bind(config("echo", support::identity_echo().await.0))
        .await
        .unwrap();
    let (_, echo_inbound6) = both(echo.inbound_addrs());
    let (echo_admin4, echo_admin6) = both(echo.admin_addrs());
    let web = Sidecar::bind(config("web", support::identity_echo().await.0))
        .await
        .unwrap();
    let (web_outbound4, web_outbound6) = both(web.outbound_addrs());
    let (web_admin4, web_admin6) = both(web.admin_addrs());
    assert_eq!(
        web.outbound_addr(),
        web_outbound4,
        "the configured one first"
    );

    // The echo service's endpoint is the echo sidecar's IPv6 inbound socket.
    let echo_service = dns_objects::service("shop", "echo", "127.2.0.10");
    support::publish(&client, echo_service, echo_inbound6).await;
    let echo_run = tokio::spawn(echo.run(client.clone(), issuer("echo"), std::future::pending()));
    let web_run = tokio::spawn(web.run(client.clone(), issuer("web"), std::future::pending()));
    for admin in [echo_admin4, echo_admin6, web_admin4, web_admin6] {
        ready(admin).await;
    }

    // The application's request on either family of web's outbound listener reaches echo's
    // application through echo's IPv6 inbound socket, over mTLS (the caller's identity).
    for outbound in [web_outbound4, web_outbound6] {
        let (status, body) = http(outbound, "GET", "/", "echo.shop").await;
        assert_eq!(
            (status, body.as_str()),
            (200, "spiffe://cluster.local/ns/shop/sa/web"),
            "through {outbound}"
        );
    }
    // One proxy behind both sockets: both requests in the same counters, read on either
    // family of the admin listener.
    let (_, web_metrics) = http(web_admin6, "GET", "/metrics", "admin").await;
    assert!(
        web_metrics.contains(
            "orchestra_mesh_requests_total{direction=\"outbound\",authority=\"echo.shop\",status=\"200\"} 2\n"
        ),
        "{web_metrics}"
    );
    let (_, echo_metrics) = http(echo_admin4, "GET", "/metrics", "admin").await;
    assert!(
        echo_metrics.contains(
            "orchestra_mesh_requests_total{direction=\"inbound\",authority=\"echo.shop\",status=\"200\"} 2\n"
        ),
        "{echo_metrics}"
    );

    // `POST /shutdown` from [::1] is a loopback caller's: web drains and stops, and its
    // IPv6 sockets close with the IPv4 ones.
    let (status, _) = http(web_admin6, "POST", "/shutdown", "admin").await;
    assert_eq!(status, 200);
    tokio::time::timeout(WAIT, web_run)
        .await
        .expect("web stops after the drain")
        .unwrap();
    for closed in [web_outbound4, web_outbound6, web_admin6] {
        assert!(
            TcpStream::connect(closed).await.is_err(),
            "{closed} still accepts after the shutdown"
        );
    }
    echo_run.abort();
}
