//! Network namespaces for the system tests: the gate that decides whether they can run
//! ([`require_system`]), namespaces deleted on drop ([`Netns`]), running code inside one
//! ([`in_netns`]); and the nftables tests' topology, created (and deleted, even when a test
//! fails) by [`Topology`], with unique names so that tests run in parallel.
//!
//! ```text
//!  client ns (10.0.0.2) --veth-- node ns (10.0.0.1; 10.1.i.1) --veth-- endpoint ns i (10.1.i.2)
//! ```
//! The node namespace forwards, routes 10.96.0.0/12 (the ClusterIPs) back to the client,
//! and runs the proxy's nftables. Each endpoint answers every TCP connection (port 8080) and
//! every UDP datagram (port 5353) with its name. Sockets are made inside a namespace by a
//! short-lived thread that enters it (`setns`), so the test process itself stays put.

#![allow(dead_code)] // each test file uses a part

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How long a probe waits for an answer (only a broken proxy ever waits this long).
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A program a system test runs: its name, the arguments that make it print its version,
/// and the package that has it.
pub type Tool = (&'static str, &'static [&'static str], &'static str);

/// `ip`, from iproute2.
pub const IP: Tool = ("ip", &["-V"], "iproute2");
/// `nft`, from nftables.
pub const NFT: Tool = ("nft", &["--version"], "nftables");
/// `conntrack`, from conntrack.
pub const CONNTRACK: Tool = ("conntrack", &["--version"], "conntrack");

/// Why system tests that run `tools` cannot run here, if they cannot: they need root
/// (network namespaces, nftables) and every tool.
pub fn system_ready(tools: &[Tool]) -> Result<(), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("root is needed (network namespaces, nftables)".into());
    }
    for &(tool, args, package) in tools {
        match Command::new(tool).args(args).output() {
            Ok(out) if out.status.success() => {}
            _ => return Err(format!("`{tool}` is missing: apt-get install {package}")),
        }
    }
    Ok(())
}

/// Whether `what` (a test, or a group of tests, that runs `tools`) can run here. When it
/// cannot, it says why (`skipped: WHAT cannot run: WHY`) and returns `false`, so that the
/// test returns and passes; under `ORCHESTRA_SYSTEM_TESTS=1` it panics saying the same.
pub fn require_system(what: &str, tools: &[Tool]) -> bool {
    let Err(reason) = system_ready(tools) else {
        return true;
    };
    if std::env::var("ORCHESTRA_SYSTEM_TESTS").as_deref() == Ok("1") {
        panic!("ORCHESTRA_SYSTEM_TESTS=1 but {what} cannot run: {reason}");
    }
    eprintln!("skipped: {what} cannot run: {reason}");
    false
}

/// A name no other test of any process uses at the same time: `PREFIX-PID-N`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace with its loopback up, deleted on drop (so also when a test fails;
/// the veth pairs with an end in it go with it).
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates namespace `name` (`ip netns add`).
    pub fn add(name: &str) -> Netns {
        run("ip", &["netns", "add", name]);
        let netns = Netns {
            name: name.to_owned(),
        };
        run("ip", &["-n", name, "link", "set", "lo", "up"]);
        netns
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Moves the calling thread into network namespace `ns`: every socket it makes from now on
/// is the namespace's.
pub fn enter(ns: &str) {
    let path = format!("/run/netns/{ns}");
    let file = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
    rustix::thread::move_into_link_name_space(
        file.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .unwrap_or_else(|e| panic!("entering {path}: {e}"));
}

/// Runs `f` on a fresh thread inside network namespace `ns`.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        enter(&ns);
        f()
    })
    .join()
    .expect("the thread in the namespace panicked")
}

/// Runs a command, panicking with its stderr if it fails; returns its stdout.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One endpoint: its namespace's name (also what it answers) and its addresses.
pub struct Endpoint {
    /// What it answers.
    pub name: String,
    /// Its TCP address (port 8080).
    pub tcp: SocketAddr,
    /// Its UDP address (port 5353).
    pub udp: SocketAddr,
}

/// The namespaces of one test, deleted on drop.
pub struct Topology {
    /// The node namespace, where the proxy runs.
    pub node: String,
    /// The client namespace.
    client: String,
    /// The node's address on the client's link (NodePorts).
    pub node_addr: IpAddr,
    /// The client's address.
    pub client_addr: IpAddr,
    /// The endpoints.
    pub endpoints: Vec<Endpoint>,
    /// Every namespace created, deleted in reverse order on drop.
    created: Vec<Netns>,
}

impl Topology {
    /// Builds the topology with `n` endpoints, or returns `None` (after saying why) when the
    /// system cannot; under `ORCHESTRA_SYSTEM_TESTS=1` that is a failure instead (see
    /// [`require_system`]).
    pub fn new(tag: &str, n: u8) -> Option<Topology> {
        if !require_system("the nftables system tests", &[IP, NFT, CONNTRACK]) {
            return None;
        }
        let id = format!("{}-{tag}", unique_name("orx"));
        let mut topo = Topology {
            node: format!("{id}-node"),
            client: format!("{id}-client"),
            node_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            client_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            endpoints: Vec::new(),
            created: Vec::new(),
        };
        let node = topo.node.clone();
        let client = topo.client.clone();
        topo.add_netns(&node);
        topo.add_netns(&client);
        run(
            "ip",
            &[
                "-n", &node, "link", "add", "c0", "type", "veth", "peer", "name", "n0", "netns",
                &client,
            ],
        );
        run(
            "ip",
            &["-n", &node, "addr", "add", "10.0.0.1/24", "dev", "c0"],
        );
        run("ip", &["-n", &node, "link", "set", "c0", "up"]);
        run(
            "ip",
            &["-n", &client, "addr", "add", "10.0.0.2/24", "dev", "n0"],
        );
        run("ip", &["-n", &client, "link", "set", "n0", "up"]);
        run(
            "ip",
            &["-n", &client, "route", "add", "default", "via", "10.0.0.1"],
        );
        // ClusterIPs must be routable in the node for a packet to reach the forward hook (and
        // be rejected when its service has no endpoints); DNATed packets are routed to their
        // endpoint instead. (No dummy interface: containers often lack the module.)
        run(
            "ip",
            &[
                "-n",
                &node,
                "route",
                "add",
                "10.96.0.0/12",
                "via",
                "10.0.0.2",
            ],
        );
        for setting in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.send_redirects=0",
        ] {
            run("ip", &["netns", "exec", &node, "sysctl", "-qw", setting]);
        }
        for i in 0..n {
            let ns = format!("{id}-ep{i}");
            topo.add_netns(&ns);
            let dev = format!("e{i}");
            run(
                "ip",
                &[
                    "-n", &node, "link", "add", &dev, "type", "veth", "peer", "name", "n0",
                    "netns", &ns,
                ],
            );
            run(
                "ip",
                &[
                    "-n",
                    &node,
                    "addr",
                    "add",
                    &format!("10.1.{i}.1/24"),
                    "dev",
                    &dev,
                ],
            );
            run("ip", &["-n", &node, "link", "set", &dev, "up"]);
            run(
                "ip",
                &[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("10.1.{i}.2/24"),
                    "dev",
                    "n0",
                ],
            );
            run("ip", &["-n", &ns, "link", "set", "n0", "up"]);
            run(
                "ip",
                &[
                    "-n",
                    &ns,
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("10.1.{i}.1"),
                ],
            );
            let ip = IpAddr::V4(Ipv4Addr::new(10, 1, i, 2));
            let endpoint = Endpoint {
                name: ns.clone(),
                tcp: SocketAddr::new(ip, 8080),
                udp: SocketAddr::new(ip, 5353),
            };
            serve(&ns, &endpoint);
            topo.endpoints.push(endpoint);
        }
        Some(topo)
    }

    fn add_netns(&mut self, name: &str) {
        self.created.push(Netns::add(name));
    }

    /// The client, to probe from.
    pub fn client(&self) -> Client {
        Client {
            ns: self.client.clone(),
        }
    }

    /// Probes from endpoint `i`'s namespace (a pod calling a service).
    pub fn endpoint_client(&self, i: usize) -> Client {
        Client {
            ns: self.endpoints[i].name.clone(),
        }
    }

    /// The endpoints' names.
    pub fn endpoint_names(&self) -> Vec<String> {
        self.endpoints.iter().map(|e| e.name.clone()).collect()
    }

    /// Runs `nft COMMAND` in the node namespace.
    pub fn nft(&self, command: &str) -> String {
        run("ip", &["netns", "exec", &self.node, "nft", command])
    }

    /// The node's whole ruleset as nft's JSON.
    pub fn ruleset_json(&self) -> String {
        run(
            "ip",
            &["netns", "exec", &self.node, "nft", "-j", "list", "ruleset"],
        )
    }

    /// The proxy's table, parsed.
    fn table(&self) -> Vec<serde_json::Value> {
        let text = run(
            "ip",
            &[
                "netns",
                "exec",
                &self.node,
                "nft",
                "-j",
                "list",
                "table",
                "inet",
                "orchestra",
            ],
        );
        let json: serde_json::Value = serde_json::from_str(&text).expect("nft -j prints JSON");
        json["nftables"].as_array().cloned().unwrap_or_default()
    }

    /// The handles of every rule of the proxy's table, by chain.
    pub fn rule_handles(&self) -> BTreeMap<String, Vec<u64>> {
        let mut handles: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        for object in self.table() {
            if let Some(rule) = object.get("rule") {
                handles
                    .entry(rule["chain"].as_str().unwrap_or_default().to_owned())
                    .or_default()
                    .push(rule["handle"].as_u64().unwrap_or_default());
            }
        }
        handles
    }

    /// The elements of map or set `name`, each as its JSON text.
    pub fn elements(&self, name: &str) -> Vec<String> {
        let mut elements = Vec::new();
        for object in self.table() {
            let Some(set) = object.get("map").or_else(|| object.get("set")) else {
                continue;
            };
            if set["name"].as_str() != Some(name) {
                continue;
            }
            for elem in set["elem"].as_array().into_iter().flatten() {
                elements.push(elem.to_string());
            }
        }
        elements
    }

    /// The client addresses in any affinity set.
    pub fn affinity_members(&self) -> Vec<String> {
        let mut members = Vec::new();
        for object in self.table() {
            let Some(set) = object.get("set") else {
                continue;
            };
            if !set["name"].as_str().unwrap_or_default().starts_with("aff") {
                continue;
            }
            for elem in set["elem"].as_array().into_iter().flatten() {
                let value = elem.pointer("/elem/val").unwrap_or(elem);
                members.push(value.as_str().unwrap_or_default().to_owned());
            }
        }
        members
    }

    /// How many UDP conntrack entries in the node namespace are DNATed to `endpoint`.
    pub fn udp_flows_to(&self, endpoint: IpAddr) -> usize {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.node,
                "conntrack",
                "-L",
                "-p",
                "udp",
                "--dst-nat",
            ])
            .arg(endpoint.to_string())
            .output()
            .expect("running conntrack");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        while let Some(netns) = self.created.pop() {
            drop(netns);
        }
    }
}

/// Starts endpoint `endpoint`'s TCP and UDP servers inside `ns` (threads that live as long
/// as the test process; their sockets keep working after the namespace's name is deleted).
fn serve(ns: &str, endpoint: &Endpoint) {
    let (tcp, udp) = (endpoint.tcp, endpoint.udp);
    let (listener, socket) = in_netns(ns, move || {
        (
            TcpListener::bind(tcp).expect("binding the endpoint's TCP port"),
            UdpSocket::bind(udp).expect("binding the endpoint's UDP port"),
        )
    });
    let name = endpoint.name.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(name.as_bytes());
        }
    });
    let name = endpoint.name.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = socket.recv_from(&mut buf) {
            let _ = socket.send_to(name.as_bytes(), from);
        }
    });
}

/// Probes from the client namespace.
#[derive(Clone)]
pub struct Client {
    ns: String,
}

impl Client {
    /// One TCP connection to `dest`: the endpoint's name, or the connection's error.
    pub fn tcp(&self, dest: SocketAddr) -> io::Result<String> {
        in_netns(&self.ns, move || {
            let mut stream = TcpStream::connect_timeout(&dest, PROBE_TIMEOUT)?;
            stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
            let mut reply = String::new();
            stream.read_to_string(&mut reply)?;
            Ok(reply)
        })
    }

    /// A UDP socket connected to `dest` from the client namespace: one flow.
    pub fn udp_flow(&self, dest: SocketAddr) -> UdpSocket {
        in_netns(&self.ns, move || {
            let socket = UdpSocket::bind("0.0.0.0:0").expect("binding a client UDP socket");
            socket.connect(dest).expect("connecting a UDP socket");
            socket
                .set_read_timeout(Some(PROBE_TIMEOUT))
                .expect("setting a read timeout");
            socket
        })
    }

    /// One datagram on a fresh flow to `dest`.
    pub fn udp(&self, dest: SocketAddr) -> io::Result<String> {
        udp_exchange(&self.udp_flow(dest))
    }
}

/// Sends one datagram on `flow` and returns the answer.
pub fn udp_exchange(flow: &UdpSocket) -> io::Result<String> {
    flow.send(b"who")?;
    let mut buf = [0u8; 128];
    let n = flow.recv(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}
