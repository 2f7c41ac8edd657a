//! The etcd server over TLS (feature `etcd-tls`): `EtcdStore` with TLS talks to it, a client
//! that does not trust its CA or speaks plain HTTP/2 gets nothing, and with a trusted client CA
//! only clients with a certificate it signed get in. Certificates are made here with rcgen;
//! the server runs in-process on a free loopback port.

#![cfg(feature = "etcd-tls")]

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use orchestra_store::etcd::server::{ServeError, ServerOptions, ServerTls, serve};
use orchestra_store::etcd::{EtcdOptions, EtcdStore, EtcdTls};
use orchestra_store::{MemStore, Store, StoreExt, WatchRequest};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::sync::oneshot;

/// A CA, and PEM certificates it signs.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("self-signed CA"),
        }
    }

    fn pem(&self) -> Vec<u8> {
        self.issuer.pem().into_bytes()
    }

    /// A certificate for `names` and its private key, both PEM.
    fn sign(&self, names: &[&str]) -> (Vec<u8>, Vec<u8>) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let params = CertificateParams::new(names).expect("leaf params");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
    }
}

/// A TLS server over a MemStore on a free loopback port; dropping it shuts the server down.
struct Served {
    url: String,
    _shutdown: oneshot::Sender<()>,
}

async fn start(tls: ServerTls) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    let (tx, rx) = oneshot::channel::<()>();
    let options = ServerOptions {
        tls: Some(tls),
        ..ServerOptions::default()
    };
    tokio::spawn(async move {
        let shutdown = async {
            let _ = rx.await;
        };
        if let Err(err) = serve(Arc::new(MemStore::new()), listener, options, shutdown).await {
            eprintln!("etcd server failed: {err}");
        }
    });
    Served {
        url: format!("https://localhost:{}", addr.port()),
        _shutdown: tx,
    }
}

fn options(url: &str, tls: Option<EtcdTls>) -> EtcdOptions {
    let mut options = EtcdOptions::new([url.to_string()])
        .with_connect_timeout(Duration::from_secs(5))
        .with_request_timeout(Duration::from_secs(5));
    options.tls = tls;
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_store_with_tls_reads_writes_and_watches() {
    let ca = Ca::new("orchestra test CA");
    let (cert_pem, key_pem) = ca.sign(&["localhost", "127.0.0.1"]);
    let served = start(ServerTls {
        cert_pem,
        key_pem,
        client_ca_pem: None,
    })
    .await;
    let store = EtcdStore::connect(options(
        &served.url,
        Some(EtcdTls {
            ca_pem: Some(ca.pem()),
            ..EtcdTls::default()
        }),
    ))
    .await
    .expect("connect over TLS");

    let mut watch = store
        .watch(WatchRequest::prefix("/tls/"))
        .await
        .expect("watch");
    let rev = store.put("/tls/a", "secret").await.expect("put");
    let kv = store.get("/tls/a").await.expect("get").expect("the key");
    assert_eq!((kv.value.as_ref(), kv.mod_revision), (&b"secret"[..], rev));
    let batch = tokio::time::timeout(Duration::from_secs(10), watch.next())
        .await
        .expect("a watch event within 10 s")
        .expect("the watch is open")
        .expect("no watch error");
    assert_eq!(batch.events[0].kv.key.as_ref(), b"/tls/a");
    assert_eq!(batch.events[0].kv.mod_revision, rev);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_do_not_trust_the_server_or_skip_tls_get_nothing() {
    let ca = Ca::new("orchestra test CA");
    let (cert_pem, key_pem) = ca.sign(&["localhost"]);
    let served = start(ServerTls {
        cert_pem,
        key_pem,
        client_ca_pem: None,
    })
    .await;

    let other_ca = Ca::new("some other CA");
    let untrusting = EtcdStore::connect(options(
        &served.url,
        Some(EtcdTls {
            ca_pem: Some(other_ca.pem()),
            ..EtcdTls::default()
        }),
    ))
    .await;
    let err = untrusting
        .expect_err("a client that does not trust the server's CA connected")
        .to_string();
    assert!(err.contains("UnknownIssuer"), "{err}");

    let plain_url = served.url.replace("https://", "http://");
    let plain = EtcdStore::connect(options(&plain_url, None)).await;
    let err = plain
        .expect_err("a plain HTTP/2 client connected")
        .to_string();
    assert!(err.contains("no etcd endpoint answered"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_client_ca_admits_only_clients_with_its_certificates() {
    let ca = Ca::new("orchestra server CA");
    let client_ca = Ca::new("orchestra client CA");
    let (cert_pem, key_pem) = ca.sign(&["localhost"]);
    let served = start(ServerTls {
        cert_pem,
        key_pem,
        client_ca_pem: Some(client_ca.pem()),
    })
    .await;
    let tls = |identity| EtcdTls {
        ca_pem: Some(ca.pem()),
        identity,
        domain: None,
    };

    let anonymous = EtcdStore::connect(options(&served.url, Some(tls(None)))).await;
    let err = anonymous
        .expect_err("a client without a certificate connected")
        .to_string();
    // With TLS 1.3 the client may finish its handshake before the server's alert arrives:
    // then it sees the connection close rather than the alert.
    assert!(err.contains("no etcd endpoint answered"), "{err}");
    let stranger = EtcdStore::connect(options(&served.url, Some(tls(Some(ca.sign(&["x"])))))).await;
    let err = stranger
        .expect_err("a client with a certificate the client CA did not sign connected")
        .to_string();
    assert!(err.contains("no etcd endpoint answered"), "{err}");

    let member = EtcdStore::connect(options(
        &served.url,
        Some(tls(Some(client_ca.sign(&["client"])))),
    ))
    .await
    .expect("a client with a certificate of the client CA connects");
    let rev = member.put("/mtls", "ok").await.expect("put");
    assert_eq!(
        member
            .get("/mtls")
            .await
            .expect("get")
            .map(|kv| kv.mod_revision),
        Some(rev)
    );
}

#[tokio::test]
async fn unusable_tls_settings_are_a_clear_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let options = ServerOptions {
        tls: Some(ServerTls {
            cert_pem: b"not a certificate".to_vec(),
            key_pem: b"not a key".to_vec(),
            client_ca_pem: None,
        }),
        ..ServerOptions::default()
    };
    let err = serve(Arc::new(MemStore::new()), listener, options, async {})
        .await
        .expect_err("garbage certificates must be refused");
    assert!(matches!(err, ServeError::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("--cert-file"), "{err}");
}
