//! System test of transparent redirection into the sidecar (issue #8): two pod network
//! namespaces joined by a veth pair, each with the redirect table (`redirect::apply`, what
//! `orchestra sidecar init` runs) and a sidecar half running inside it:
//!
//! ```text
//!  client pod 10.77.0.1                                server pod 10.77.0.2
//!  app (uid 65534) --plain HTTP to 10.96.0.10:80-->    (redirected to :4143)
//!    (redirected to 127.0.0.1:4140)                    InboundProxy --> app 127.0.0.1:8080|8081
//!    HttpProxy (uid 0, exempt) --mTLS to 10.77.0.2:8080-->
//! ```
//!
//! The client application addresses a ClusterIP with a `Host` no service has, as an
//! application unaware of the mesh would; the answer carries the caller's SPIFFE ID, which
//! only the inbound sidecar sets after an mTLS handshake with the outbound one, and the
//! outbound sidecar counted no connection coming back to it (its own connection to the
//! endpoint was not redirected). A connection to an address no service has goes through
//! the outbound sidecar unchanged. The host's own ruleset is never touched.
//!
//! The same over IPv6 (the pods on `fd77::1` and `fd77::2`, a ClusterIP `fd96::10`): the
//! application's connection is redirected to `[::1]:4140` and the peer's to
//! `[fd77::2]:4143`, which only the sidecar's IPv6 twins ([`Listeners`]) serve.
//!
//! It needs root, `ip` (iproute2) and `nft` (nftables); without them it prints why and
//! passes, unless `ORCHESTRA_SYSTEM_TESTS=1`, where that is a failure. The IPv6 test also
//! needs a kernel with IPv6 (it says so and passes otherwise).

mod netns;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use netns::{Netns, in_netns, run};
use orchestra_mesh::l7::identity::{
    CaConfig, MeshCa, MeshCredentials, MeshTls, SidecarKey, SpiffeId, TrustBundle,
};
use orchestra_mesh::l7::{
    AuthorizationPolicy, DirectoryConfig, HttpProxy, HttpProxyConfig, InboundConfig, InboundProxy,
    Listeners, MeshDirectory, OutboundTls, PEER_IDENTITY_HEADER,
};
use orchestra_mesh::nftables::NftablesProxyConfig;
use orchestra_mesh::redirect::{self, RedirectConfig};
use orchestra_mesh::{Affinity, Protocol, ServiceEntry, ServiceKey, ServiceProxy, ServiceTable};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// How long a probe waits (only a broken redirect ever waits this long).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// The uid the client application runs as (not the sidecar's, so its connections are
/// redirected).
const APP_UID: u32 = 65534;

/// The two pods' namespaces, deleted on drop (so also when the test fails).
struct Pods {
    client: Netns,
    server: Netns,
}

impl Pods {
    /// Creates the namespaces and their link (`10.77.0.1` and `10.77.0.2`, the client pod's
    /// default route), or returns `None` (after saying why) when the system cannot; under
    /// `ORCHESTRA_SYSTEM_TESTS=1` that is a failure instead (see [`netns::require_system`]).
    /// With `ipv6`, also `fd77::1` and `fd77::2` on the link, and the client pod's IPv6
    /// default route.
    fn new(ipv6: bool) -> Option<Pods> {
        if !netns::require_system("the redirect system test", &[netns::IP, netns::NFT]) {
            return None;
        }
        let id = netns::unique_name("orr");
        let client = Netns::add(&format!("{id}-a"));
        let server = Netns::add(&format!("{id}-b"));
        let (a, b) = (client.name(), server.name());
        run(
            "ip",
            &[
                "-n", a, "link", "add", "a0", "type", "veth", "peer", "name", "b0", "netns", b,
            ],
        );
        run("ip", &["-n", a, "addr", "add", "10.77.0.1/24", "dev", "a0"]);
        run("ip", &["-n", b, "addr", "add", "10.77.0.2/24", "dev", "b0"]);
        run("ip", &["-n", a, "link", "set", "a0", "up"]);
        run("ip", &["-n", b, "link", "set", "b0", "up"]);
        // A pod has a default route: a ClusterIP must be routable for connect() to send
        // anything (the output hook then redirects it).
        run(
            "ip",
            &["-n", a, "route", "add", "default", "via", "10.77.0.2"],
        );
        if ipv6 {
            // `nodad`: usable at once (a tentative address is neither bound nor redirected to).
            for (ns, addr, dev) in [(a, "fd77::1/64", "a0"), (b, "fd77::2/64", "b0")] {
                let add = ["-n", ns, "-6", "addr", "add", addr, "dev", dev, "nodad"];
                run("ip", &add);
            }
            run(
                "ip",
                &["-n", a, "-6", "route", "add", "default", "via", "fd77::2"],
            );
        }
        Some(Pods { client, server })
    }
}

/// A tokio runtime on its own thread inside a namespace: every socket its tasks make
/// (listeners, the sidecar's upstream connections) is the namespace's. Stopped on drop.
struct PodRuntime {
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PodRuntime {
    fn start(ns: &str) -> PodRuntime {
        let ns = ns.to_owned();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            netns::enter(&ns);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            ready_tx
                .send(runtime.handle().clone())
                .expect("the test waits for the handle");
            runtime.block_on(async {
                let _ = stopped.await;
            });
        });
        let handle = ready_rx.recv().expect("the runtime thread started");
        PodRuntime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Runs `future` on the pod's runtime and waits for its output.
    async fn run<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        self.handle
            .spawn(future)
            .await
            .expect("the task in the pod panicked")
    }
}

impl Drop for PodRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn id(sa: &str) -> SpiffeId {
    SpiffeId::new("cluster.local", "shop", sa).unwrap()
}

/// A sidecar's TLS settings: a certificate for `identity` from `ca`, trusting `ca`.
fn sidecar_tls(ca: &MeshCa, identity: &SpiffeId) -> MeshTls {
    let (key, request) = SidecarKey::generate(identity).unwrap();
    let issued = ca.issue(&request, identity, SystemTime::now()).unwrap();
    let bundle = TrustBundle::new("cluster.local", [ca.root().clone()]).unwrap();
    MeshTls::new(MeshCredentials::new(&key, issued).unwrap(), bundle)
}

/// The server pod's application on `port`: answers `port PORT: CALLER-IDENTITY`.
async fn app(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = service_fn(move |request: Request<Incoming>| {
                let caller = request
                    .headers()
                    .get(PEER_IDENTITY_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("no identity")
                    .to_owned();
                let body = format!("port {port}: {caller}");
                async move { Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(body)))) }
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

/// A plain TCP server outside the mesh on `addr` of the server pod: writes `plain`.
async fn plain_server(addr: SocketAddr) {
    let listener = TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = stream.write_all(b"plain").await;
        }
    });
}

/// One plain HTTP/1.1 request from the client application (a thread of the client pod
/// running as [`APP_UID`]) to `dest`, with a `Host` no service has; the whole answer.
fn app_request(ns: &str, dest: SocketAddr) -> std::io::Result<String> {
    in_netns(ns, move || {
        become_app()?;
        let mut stream = TcpStream::connect_timeout(&dest, PROBE_TIMEOUT)?;
        stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
        stream.write_all(
            b"GET /hello HTTP/1.1\r\nHost: unknown.example\r\nConnection: close\r\n\r\n",
        )?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    })
}

/// What the client application reads from a TCP connection to `dest`.
fn app_read(ns: &str, dest: SocketAddr) -> std::io::Result<String> {
    in_netns(ns, move || {
        become_app()?;
        let mut stream = TcpStream::connect_timeout(&dest, PROBE_TIMEOUT)?;
        stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    })
}

/// This thread (only: the raw syscall, not libc's process-wide one) runs as [`APP_UID`]
/// from now on, so the sockets it makes are the application's, not the sidecar's.
fn become_app() -> std::io::Result<()> {
    let uid = rustix::process::Uid::from_raw(APP_UID);
    rustix::thread::set_thread_uid(uid).map_err(std::io::Error::from)
}

/// The addresses of one family the redirect scenario ([`carried_by_the_sidecars`]) uses.
struct Family {
    /// The pods also have `fd77::1` and `fd77::2`, and each sidecar listener has its IPv6
    /// twin (`[::]:4143`, `[::1]:4140`), as `orchestra sidecar` binds them.
    ipv6: bool,
    /// The services the outbound sidecar knows: name, ClusterIP and port, endpoint (the
    /// server pod's address and an application port: an application listens on each).
    services: &'static [(&'static str, &'static str, &'static str)],
    /// Where the server pod's plain server listens (port 7000, skipped inbound).
    plain_listen: &'static str,
    /// The plain server's address the client application connects to (no service's).
    plain: &'static str,
    /// Whether the client pod's rules are applied a second time (idempotent: one table,
    /// the same rules).
    reapply: bool,
}

/// The pods' IPv4 addresses, two services (one per application port), the sidecars' IPv4
/// listeners alone.
const IPV4: Family = Family {
    ipv6: false,
    services: &[
        ("echo", "10.96.0.10:80", "10.77.0.2:8080"),
        ("echo-admin", "10.96.0.11:80", "10.77.0.2:8081"),
    ],
    plain_listen: "0.0.0.0:7000",
    plain: "10.77.0.2:7000",
    reapply: true,
};

/// The pods' IPv6 addresses, an IPv6 ClusterIP, the sidecars' IPv6 twins: the application's
/// connection is redirected to `[::1]:4140` and the peer's to `[fd77::2]:4143`.
const IPV6: Family = Family {
    ipv6: true,
    services: &[("echo6", "[fd96::10]:80", "[fd77::2]:8080")],
    plain_listen: "[::]:7000",
    plain: "[fd77::2]:7000",
    reapply: false,
};

/// The sockets of a sidecar listener on `addr`: the IPv4 one alone, or with `ipv6` also its
/// IPv6 twin (checked: both there), as `orchestra sidecar` binds them.
async fn listen(addr: &str, ipv6: bool, what: &str) -> Vec<TcpListener> {
    if !ipv6 {
        return vec![TcpListener::bind(addr).await.unwrap()];
    }
    let listeners = Listeners::bind(addr.parse().unwrap(), true).await.unwrap();
    assert!(
        listeners.ipv6_unavailable().is_none(),
        "{what}: no IPv6 in the pod: {:?}",
        listeners.ipv6_unavailable()
    );
    let sockets = listeners.into_listeners();
    assert_eq!(sockets.len(), 2, "{what}: an IPv4 socket and its IPv6 twin");
    sockets
}

/// The scenario, over `family`: the client application's requests to the services'
/// ClusterIPs are carried by both sidecars over mTLS, its connection to the plain server
/// goes through the outbound sidecar unchanged, and the sidecars' own connections are not
/// redirected back to them.
async fn carried_by_the_sidecars(family: &Family) {
    let Some(pods) = Pods::new(family.ipv6) else {
        return;
    };
    let ca = MeshCa::generate(CaConfig::default(), SystemTime::now()).unwrap();
    let server_pod = PodRuntime::start(pods.server.name());
    let client_pod = PodRuntime::start(pods.client.name());

    // The rules, as each pod's init container applies them. The sidecars run as this
    // process (root, uid 0); the client application as APP_UID.
    let client_rules = RedirectConfig::new(0);
    let server_rules = RedirectConfig {
        skip_inbound_ports: "7000".parse().unwrap(),
        ..RedirectConfig::new(0)
    };
    let client_nft = NftablesProxyConfig::in_netns(pods.client.name());
    let server_nft = NftablesProxyConfig::in_netns(pods.server.name());
    redirect::apply(&client_rules, &client_nft).await.unwrap();
    redirect::apply(&server_rules, &server_nft).await.unwrap();
    if family.reapply {
        // Idempotent: applying again replaces the table (one table, same rules).
        redirect::apply(&client_rules, &client_nft).await.unwrap();
    }

    let ipv6 = family.ipv6;
    let endpoints: Vec<SocketAddr> = family
        .services
        .iter()
        .map(|&(_, _, endpoint)| endpoint.parse().unwrap())
        .collect();

    // The server pod: the application on each endpoint's port, the plain server (skipped
    // inbound), and the inbound sidecar on 0.0.0.0:4143 configured with 8080 as the
    // application.
    let server_tls = sidecar_tls(&ca, &id("echo"));
    let app_ports: Vec<u16> = endpoints.iter().map(SocketAddr::port).collect();
    let plain_listen = family.plain_listen.parse().unwrap();
    let inbound = server_pod
        .run(async move {
            for port in app_ports {
                app(port).await;
            }
            plain_server(plain_listen).await;
            let config = InboundConfig::new(
                "shop",
                "127.0.0.1:8080".parse().unwrap(),
                AuthorizationPolicy::default(),
            );
            let inbound = InboundProxy::new(&server_tls, config);
            for listener in listen("0.0.0.0:4143", ipv6, "inbound").await {
                tokio::spawn(inbound.clone().serve(listener));
            }
            inbound
        })
        .await;

    // The client pod: the outbound sidecar on 127.0.0.1:4140 knows the services of the
    // server pod.
    let client_tls = sidecar_tls(&ca, &id("web"));
    let table: ServiceTable = family
        .services
        .iter()
        .zip(&endpoints)
        .map(|(&(name, cluster, _), &endpoint)| {
            let entry = ServiceEntry {
                cluster: cluster.parse().unwrap(),
                node_port: None,
                protocol: Protocol::Tcp,
                affinity: Affinity::None,
                endpoints: vec![endpoint],
            };
            (ServiceKey::new("shop", name, ""), entry)
        })
        .collect();
    let outbound = client_pod
        .run(async move {
            let directory = MeshDirectory::new(DirectoryConfig::default());
            directory.apply(&table).await.unwrap();
            let config = HttpProxyConfig {
                tls: Some(OutboundTls {
                    tls: client_tls,
                    server_identities: HashMap::new(),
                }),
                ..HttpProxyConfig::default()
            };
            let proxy = HttpProxy::new(directory, config);
            for listener in listen("127.0.0.1:4140", ipv6, "outbound").await {
                tokio::spawn(proxy.clone().serve(listener));
            }
            proxy
        })
        .await;

    let client = pods.client.name().to_owned();
    let clusters: Vec<SocketAddr> = family
        .services
        .iter()
        .map(|&(_, cluster, _)| cluster.parse().unwrap())
        .collect();
    let plain = family.plain.parse().unwrap();
    let (answers, plain) = tokio::task::spawn_blocking(move || {
        let answers: Vec<_> = clusters
            .iter()
            .map(|&cluster| app_request(&client, cluster))
            .collect();
        (answers, app_read(&client, plain))
    })
    .await
    .unwrap();

    // Carried by both sidecars over mTLS: the inbound one names the outbound's identity;
    // routed by the original destination (the Host names nothing), and each to the
    // application port its endpoint has.
    for ((_, cluster, _), (answer, endpoint)) in
        family.services.iter().zip(answers.iter().zip(&endpoints))
    {
        let answer = answer
            .as_ref()
            .unwrap_or_else(|e| panic!("the request to the ClusterIP {cluster}: {e:?}"));
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        let port = endpoint.port();
        assert!(
            answer.ends_with(&format!(
                "port {port}: spiffe://cluster.local/ns/shop/sa/web"
            )),
            "{answer}"
        );
    }
    // Counted under each service's name (the Host names nothing).
    for (name, _, _) in family.services {
        assert_eq!(outbound.metrics().requests(&format!("shop/{name}"), 200), 1);
    }
    let carried = u64::try_from(family.services.len()).unwrap();
    assert_eq!(inbound.metrics().requests("unknown.example", 200), carried);
    // The plain server is no service: its connection went through the outbound sidecar
    // unchanged (one opaque connection), and was not redirected inbound (port skipped).
    assert_eq!(plain.expect("the connection to the plain server"), "plain");
    // Counted when the sidecar's copy ends, just after the client has read its answer.
    for _ in 0..1000 {
        if outbound.metrics().opaque_connections() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        outbound.metrics().opaque_connections(),
        1,
        "exactly one opaque connection (the plain one): the sidecar's own connections to the endpoints did not come back to it"
    );
    drop(client_pod);
    drop(server_pod);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_plain_tcp_is_carried_by_its_sidecars_and_theirs_is_not_redirected() {
    carried_by_the_sidecars(&IPV4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pods_ipv6_tcp_reaches_the_sidecars_ipv6_listeners() {
    if !std::path::Path::new("/proc/net/if_inet6").exists() {
        eprintln!(
            "skipped: the IPv6 redirect test needs a kernel with IPv6 (no /proc/net/if_inet6)"
        );
        return;
    }
    carried_by_the_sidecars(&IPV6).await;
}
