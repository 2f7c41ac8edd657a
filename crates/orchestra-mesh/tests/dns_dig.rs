//! System test: the cluster DNS server queried with Debian's `dig` (package `dnsutils`), the
//! tool people debug cluster DNS with, so that the answers hold for a resolver that is not
//! hickory's own client.
//!
//! The server runs on a free loopback port over a snapshot built from hand-written Services
//! and Endpoints (the follower's path is covered by `tests/dns.rs`). When `dig` is missing the
//! test prints why and passes, unless `ORCHESTRA_SYSTEM_TESTS=1`, where that is a failure.

mod dns_objects;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use orchestra_api::ObjectMeta;
use orchestra_api::resources::{EndpointAddress, EndpointPort, EndpointSubset, Endpoints, Service};
use orchestra_mesh::dns::{DnsConfig, DnsServer, DnsSnapshot};
use tokio::sync::watch;

const INSTALL: &str = "apt-get install -y dnsutils";

/// `dig` on PATH, or `None` after printing why the test is skipped (a panic when the system
/// tests are required).
fn dig_or_skip(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("dig"))
            .find(|candidate| candidate.is_file())
    });
    let required = std::env::var("ORCHESTRA_SYSTEM_TESTS").is_ok_and(|v| v == "1");
    match found {
        Some(dig) => Some(dig),
        None if required => panic!(
            "{test}: dig is not on PATH and ORCHESTRA_SYSTEM_TESTS=1 requires it; install it with `{INSTALL}`"
        ),
        None => {
            eprintln!(
                "{test}: skipped: dig is not on PATH; install it with `{INSTALL}` (or set ORCHESTRA_SYSTEM_TESTS=1 to make this a failure)"
            );
            None
        }
    }
}

/// The namespace of this file's objects.
const NAMESPACE: &str = "shop";

fn meta(name: &str) -> ObjectMeta {
    dns_objects::meta(NAMESPACE, name)
}

fn service(name: &str, cluster_ip: &str) -> Service {
    dns_objects::service(NAMESPACE, name, cluster_ip)
}

fn endpoints(name: &str, ips: impl IntoIterator<Item = String>) -> Endpoints {
    Endpoints {
        metadata: meta(name),
        subsets: vec![EndpointSubset {
            addresses: ips
                .into_iter()
                .map(|ip| EndpointAddress {
                    ip,
                    ..EndpointAddress::default()
                })
                .collect(),
            not_ready_addresses: vec![],
            ports: vec![EndpointPort {
                name: "http".into(),
                port: 8080,
                ..EndpointPort::default()
            }],
        }],
    }
}

/// What one `dig` run printed, picked apart.
struct Dig {
    /// The whole output, for failure messages.
    text: String,
    /// `NOERROR`, `NXDOMAIN`, `REFUSED`...
    status: String,
    /// The header flags (`qr`, `aa`, `tc`...).
    flags: Vec<String>,
    /// The answer section's records as (owner, type, data).
    answers: Vec<(String, String, String)>,
    /// The authority section's record types.
    authority_types: Vec<String>,
}

/// Runs `dig @server -p PORT ARGS...` and parses its output.
async fn dig(binary: &PathBuf, server: SocketAddr, args: &[&str]) -> Dig {
    let output = tokio::process::Command::new(binary)
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(["+time=5", "+tries=1", "+nocookie"])
        .args(args)
        .output()
        .await
        .expect("run dig");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "dig {args:?} failed:\n{text}");
    let status = text
        .split("status: ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_default()
        .to_owned();
    let flags = text
        .split("flags: ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let mut answers = Vec::new();
    let mut authority_types = Vec::new();
    let mut section = "";
    for line in text.lines() {
        if let Some(name) = line
            .strip_prefix(";; ")
            .and_then(|l| l.strip_suffix(" SECTION:"))
        {
            section = if name == "ANSWER" {
                "answer"
            } else if name == "AUTHORITY" {
                "authority"
            } else {
                ""
            };
            continue;
        }
        if line.is_empty() || line.starts_with(';') {
            if line.is_empty() {
                section = "";
            }
            continue;
        }
        // owner TTL class type data...
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 5 {
            continue;
        }
        match section {
            "answer" => answers.push((
                fields[0].to_owned(),
                fields[3].to_owned(),
                fields[4..].join(" "),
            )),
            "authority" => authority_types.push(fields[3].to_owned()),
            _ => {}
        }
    }
    Dig {
        text,
        status,
        flags,
        answers,
        authority_types,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_gets_a_srv_ptr_pod_nxdomain_refused_and_tcp_for_large_answers() {
    let Some(binary) =
        dig_or_skip("dig_gets_a_srv_ptr_pod_nxdomain_refused_and_tcp_for_large_answers")
    else {
        return;
    };
    let services = [service("web", "127.2.0.80"), service("big", "None")];
    let big = endpoints("big", (1..=150).map(|i| format!("127.3.1.{i}")));
    let snapshot = DnsSnapshot::build(&services, [&big], 7);
    let (_keep, snapshots) = watch::channel(Arc::new(snapshot));
    let server = DnsServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        DnsConfig::new("cluster.local").unwrap(),
        snapshots,
    )
    .await
    .unwrap();
    let addr = server.local_addr();

    // A: the ClusterIP, authoritative, with the 5 s TTL.
    let a = dig(&binary, addr, &["web.shop.svc.cluster.local", "A"]).await;
    assert_eq!(a.status, "NOERROR", "{}", a.text);
    assert!(a.flags.contains(&"aa".to_owned()), "{}", a.text);
    assert_eq!(
        a.answers,
        [(
            "web.shop.svc.cluster.local.".to_owned(),
            "A".to_owned(),
            "127.2.0.80".to_owned()
        )],
        "{}",
        a.text
    );
    assert!(
        a.text.contains("web.shop.svc.cluster.local. 5\tIN\tA"),
        "{}",
        a.text
    );

    // SRV of the named port: priority, weight, port and the service as the target.
    let srv = dig(
        &binary,
        addr,
        &["_http._tcp.web.shop.svc.cluster.local", "SRV"],
    )
    .await;
    assert_eq!(srv.status, "NOERROR", "{}", srv.text);
    assert_eq!(srv.answers.len(), 1, "{}", srv.text);
    assert_eq!(srv.answers[0].1, "SRV");
    assert_eq!(srv.answers[0].2, "0 100 80 web.shop.svc.cluster.local.");

    // PTR of the ClusterIP, asked the way people ask it (`dig -x`).
    let ptr = dig(&binary, addr, &["-x", "127.2.0.80"]).await;
    assert_eq!(ptr.status, "NOERROR", "{}", ptr.text);
    assert_eq!(
        ptr.answers,
        [(
            "80.0.2.127.in-addr.arpa.".to_owned(),
            "PTR".to_owned(),
            "web.shop.svc.cluster.local.".to_owned()
        )],
        "{}",
        ptr.text
    );

    // A name in the domain that does not exist: NXDOMAIN with the SOA for negative caching.
    let missing = dig(&binary, addr, &["nope.shop.svc.cluster.local", "A"]).await;
    assert_eq!(missing.status, "NXDOMAIN", "{}", missing.text);
    assert_eq!(missing.authority_types, ["SOA"], "{}", missing.text);

    // A pod's name spells its address (Kubernetes' `pods insecure`).
    let pod = dig(&binary, addr, &["127-3-0-9.shop.pod.cluster.local", "A"]).await;
    assert_eq!(pod.status, "NOERROR", "{}", pod.text);
    assert_eq!(pod.answers.len(), 1, "{}", pod.text);
    assert_eq!(pod.answers[0].2, "127.3.0.9", "{}", pod.text);

    // A name outside the domain, with no upstream configured: REFUSED.
    let outside = dig(&binary, addr, &["example.com", "A"]).await;
    assert_eq!(outside.status, "REFUSED", "{}", outside.text);
    assert!(outside.answers.is_empty());

    // 150 addresses do not fit a UDP answer: dig sees TC (kept with +ignore), and by default
    // retries over TCP and gets them all; +tcp asks over TCP at once.
    let truncated = dig(
        &binary,
        addr,
        &[
            "+ignore",
            "+bufsize=1232",
            "big.shop.svc.cluster.local",
            "A",
        ],
    )
    .await;
    assert!(
        truncated.flags.contains(&"tc".to_owned()),
        "{}",
        truncated.text
    );
    assert!(truncated.answers.len() < 150, "{}", truncated.text);
    let retried = dig(&binary, addr, &["big.shop.svc.cluster.local", "A"]).await;
    assert!(
        retried.text.contains("Truncated, retrying in TCP mode"),
        "{}",
        retried.text
    );
    assert_eq!(retried.answers.len(), 150, "{}", retried.text);
    let tcp = dig(&binary, addr, &["+tcp", "big.shop.svc.cluster.local", "A"]).await;
    assert_eq!(tcp.status, "NOERROR", "{}", tcp.text);
    assert!(!tcp.flags.contains(&"tc".to_owned()), "{}", tcp.text);
    let mut ips: Vec<String> = tcp.answers.iter().map(|(_, _, ip)| ip.clone()).collect();
    ips.sort();
    let mut expected: Vec<String> = (1..=150).map(|i| format!("127.3.1.{i}")).collect();
    expected.sort();
    assert_eq!(ips, expected);

    server.shutdown().await.unwrap();
}
