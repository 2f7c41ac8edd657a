//! The sidecar's certificate renewal task under tokio's paused time: it renews at 70% of the
//! lifetime (or the configured fraction), retries a failing control plane with a doubling
//! backoff while the old certificate stays in use, and swaps the new certificate into the
//! live TLS configuration: a connection made before the renewal keeps working, one made
//! after presents the new certificate. It follows a trust-anchor rotation: the new root
//! comes with the renewal, and the old one stays trusted until it expires, then is dropped;
//! an answer with an unusable root changes nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use orchestra_api::auth::UserInfo;
use orchestra_mesh::l7::identity::{
    CaConfig, CertificateIssuer, Clock, IdentityService, IssueError, IssuedCert, LocalIssuer,
    MeshCa, MeshCredentials, MeshTls, PeerRole, RenewalConfig, RenewalStatus, SidecarKey, SpiffeId,
    TrustBundle, renewal_time, request_certificate, root_not_after, spawn_renewal, tokio_clock,
};
use rustls::pki_types::{CertificateDer, CertificateSigningRequestDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

const HOUR: Duration = Duration::from_secs(3600);

fn web() -> SpiffeId {
    SpiffeId::new("cluster.local", "shop", "web").unwrap()
}

/// The identity service in process, failing the next `fail_next` calls, recording when each
/// call came (on the test's clock).
struct Flaky {
    inner: LocalIssuer,
    fail_next: AtomicUsize,
    calls: Mutex<Vec<SystemTime>>,
    clock: Clock,
}

#[async_trait]
impl CertificateIssuer for Flaky {
    async fn certify(
        &self,
        identity: &SpiffeId,
        csr: &CertificateSigningRequestDer<'static>,
    ) -> Result<(Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>), IssueError> {
        self.calls.lock().unwrap().push((self.clock)());
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(IssueError::Refused(
                "the control plane is unavailable".into(),
            ));
        }
        self.inner.certify(identity, csr).await
    }
}

struct Setup {
    clock: Clock,
    issuer: Arc<Flaky>,
    credentials: Arc<MeshCredentials>,
    bundle: TrustBundle,
}

impl Setup {
    /// The sidecar's TLS settings: its credentials and the bundle it started with.
    fn tls(&self) -> MeshTls {
        MeshTls::new(self.credentials.clone(), self.bundle.clone())
    }
}

async fn setup() -> Setup {
    setup_with(CaConfig::default()).await
}

async fn setup_with(config: CaConfig) -> Setup {
    let clock = tokio_clock();
    let ca = MeshCa::generate(config, clock()).unwrap();
    let service = Arc::new(IdentityService::new(ca));
    let sa = UserInfo::new("system:serviceaccount:shop:web", ["system:serviceaccounts"]);
    let issuer = Arc::new(Flaky {
        inner: LocalIssuer::new(service, sa).with_clock({
            let clock = clock.clone();
            move || clock()
        }),
        fail_next: AtomicUsize::new(0),
        calls: Mutex::default(),
        clock: clock.clone(),
    });
    let (key, certified) = request_certificate(&*issuer, &web()).await.unwrap();
    issuer.calls.lock().unwrap().clear();
    let bundle = TrustBundle::new("cluster.local", certified.trust_roots.clone()).unwrap();
    let credentials = MeshCredentials::new(&key, certified.issued).unwrap();
    Setup {
        clock,
        issuer,
        credentials,
        bundle,
    }
}

async fn wait_for(
    status: &mut watch::Receiver<RenewalStatus>,
    what: impl FnMut(&RenewalStatus) -> bool,
) -> RenewalStatus {
    // Paused time: waiting lets tokio jump to the task's next timer.
    status.wait_for(what).await.unwrap().clone()
}

/// `at` is within tokio's timer resolution (1 ms) after `due`.
fn at_about(at: SystemTime, due: SystemTime) -> bool {
    at.duration_since(due)
        .is_ok_and(|late| late <= Duration::from_millis(2))
}

#[tokio::test(start_paused = true)]
async fn renews_at_seventy_percent_of_each_lifetime() {
    let s = setup().await;
    let first = s.credentials.issued();
    let handle = spawn_renewal(
        s.tls(),
        s.issuer.clone(),
        RenewalConfig::default(),
        s.clock.clone(),
    );
    let mut status = handle.status();
    let after_one = wait_for(&mut status, |s| s.renewals == 1).await;
    let calls = s.issuer.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let due = renewal_time(first.not_before, first.not_after, 0.7);
    assert!(
        at_about(calls[0], due),
        "renewed at {:?}, due {due:?}",
        calls[0]
    );
    // The new certificate is presented: same identity, a new expiry 24 hours after the call.
    let second = s.credentials.issued();
    assert_ne!(second.chain, first.chain);
    assert_eq!(second.identity, web());
    assert_eq!(after_one.not_after, second.not_after);
    assert!(second.not_after > first.not_after);
    // The next renewal is at 70% of the new certificate's lifetime.
    wait_for(&mut status, |s| s.renewals == 2).await;
    let calls = s.issuer.calls.lock().unwrap().clone();
    let due = renewal_time(second.not_before, second.not_after, 0.7);
    assert!(
        at_about(calls[1], due),
        "renewed at {:?}, due {due:?}",
        calls[1]
    );
    assert_eq!(status.borrow().failures, 0);
    handle.stop();
}

#[tokio::test(start_paused = true)]
async fn the_fraction_is_configurable() {
    let s = setup().await;
    let first = s.credentials.issued();
    let config = RenewalConfig {
        renew_at: 0.5,
        ..RenewalConfig::default()
    };
    let handle = spawn_renewal(s.tls(), s.issuer.clone(), config, s.clock.clone());
    wait_for(&mut handle.status(), |s| s.renewals == 1).await;
    let call = s.issuer.calls.lock().unwrap()[0];
    let due = renewal_time(first.not_before, first.not_after, 0.5);
    assert!(at_about(call, due), "renewed at {call:?}, due {due:?}");
}

#[tokio::test(start_paused = true)]
async fn failures_are_retried_with_backoff_and_the_old_certificate_kept() {
    let s = setup().await;
    let first = s.credentials.issued();
    s.issuer.fail_next.store(5, Ordering::SeqCst);
    let config = RenewalConfig {
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(8),
        ..RenewalConfig::default()
    };
    let handle = spawn_renewal(s.tls(), s.issuer.clone(), config, s.clock.clone());
    let mut status = handle.status();
    for failures in 1..=5 {
        let seen = wait_for(&mut status, |s| s.failures == failures).await;
        // Until an attempt succeeds, the old certificate is what handshakes present.
        assert_eq!(s.credentials.issued().chain, first.chain);
        assert_eq!(seen.renewals, 0);
        assert_eq!(seen.consecutive_failures, failures);
        assert!(
            seen.last_error
                .as_deref()
                .is_some_and(|e| e.contains("the control plane is unavailable")),
            "{seen:?}"
        );
    }
    let done = wait_for(&mut status, |s| s.renewals == 1).await;
    assert_eq!((done.failures, done.consecutive_failures), (5, 0));
    assert_ne!(s.credentials.issued().chain, first.chain);
    // Attempts at the due time, then 1, 2, 4, 8 (the cap) and 8 seconds later.
    let calls = s.issuer.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 6);
    let gaps: Vec<u64> = calls
        .windows(2)
        .map(|w| w[1].duration_since(w[0]).unwrap().as_secs())
        .collect();
    assert_eq!(gaps, [1, 2, 4, 8, 8]);
    // After a success the backoff starts over: the next failure waits 1 s again.
    s.issuer.fail_next.store(1, Ordering::SeqCst);
    wait_for(&mut status, |s| s.renewals == 2).await;
    let calls = s.issuer.calls.lock().unwrap().clone();
    assert_eq!(calls[7].duration_since(calls[6]).unwrap().as_secs(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_outage_past_expiry_keeps_retrying_and_recovers() {
    let s = setup().await;
    let first = s.credentials.issued();
    s.issuer.fail_next.store(usize::MAX, Ordering::SeqCst);
    let handle = spawn_renewal(
        s.tls(),
        s.issuer.clone(),
        RenewalConfig::default(),
        s.clock.clone(),
    );
    let mut status = handle.status();
    // Fail through the end of the certificate's life.
    let clock = s.clock.clone();
    loop {
        let seen = wait_for(&mut status, |_| true).await;
        if clock() > first.not_after + HOUR {
            assert_eq!(seen.renewals, 0);
            break;
        }
        status.changed().await.unwrap();
    }
    // The capped backoff: no attempt waited more than a minute.
    let calls = s.issuer.calls.lock().unwrap().clone();
    assert!(
        calls
            .windows(2)
            .all(|w| w[1].duration_since(w[0]).unwrap() <= Duration::from_secs(60))
    );
    // The control plane is back: the expired certificate is replaced at the next attempt.
    s.issuer.fail_next.store(0, Ordering::SeqCst);
    wait_for(&mut status, |s| s.renewals == 1).await;
    let now = clock();
    let renewed = s.credentials.issued();
    assert!(renewed.not_before <= now && now < renewed.not_after);
}

/// A TLS connection over an in-memory pipe: the client's view of the server's certificate,
/// and the stream (the server side echoes).
async fn connect(
    server: &MeshTls,
    client: &MeshTls,
) -> (
    CertificateDer<'static>,
    tokio_rustls::client::TlsStream<tokio::io::DuplexStream>,
) {
    let (near, far) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(server.server_config());
    tokio::spawn(async move {
        let mut stream = acceptor.accept(far).await.unwrap();
        let mut buf = [0u8; 64];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                    let _ = stream.flush().await;
                }
            }
        }
    });
    let connector = tokio_rustls::TlsConnector::from(client.client_config(Some(web())));
    let stream = connector
        .connect(ServerName::try_from("web.mesh").unwrap(), near)
        .await
        .unwrap();
    let presented = stream.get_ref().1.peer_certificates().unwrap()[0].clone();
    (presented, stream)
}

async fn echo(stream: &mut tokio_rustls::client::TlsStream<tokio::io::DuplexStream>, text: &[u8]) {
    stream.write_all(text).await.unwrap();
    stream.flush().await.unwrap();
    let mut buf = vec![0u8; text.len()];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, text);
}

#[tokio::test(start_paused = true)]
async fn a_renewal_swaps_the_live_tls_config_without_dropping_connections() {
    // rustls checks validity against the real wall clock, which paused time does not move:
    // certificates backdated by a day stay valid to it after the test's clock jumps to the
    // renewal, hours ahead.
    let s = setup_with(CaConfig {
        backdate: 24 * HOUR,
        ..CaConfig::default()
    })
    .await;
    let server = MeshTls::new(s.credentials.clone(), s.bundle.clone());
    // The client is another sidecar of the same CA (its own certificate, never renewed
    // here).
    let client = {
        let (key, certified) = request_certificate(&*s.issuer, &web()).await.unwrap();
        s.issuer.calls.lock().unwrap().clear();
        MeshTls::new(
            MeshCredentials::new(&key, certified.issued).unwrap(),
            s.bundle.clone(),
        )
    };
    let first = s.credentials.issued();
    let (presented, mut before) = connect(&server, &client).await;
    assert_eq!(presented, first.chain[0]);
    echo(&mut before, b"before the renewal").await;

    let handle = spawn_renewal(
        server.clone(),
        s.issuer.clone(),
        RenewalConfig::default(),
        s.clock.clone(),
    );
    wait_for(&mut handle.status(), |s| s.renewals == 1).await;
    let renewed = s.credentials.issued();
    assert_ne!(renewed.chain, first.chain);

    // The connection made before is still open and working...
    echo(&mut before, b"after the renewal, same connection").await;
    // ...and a new one sees the new certificate.
    let (presented, mut after) = connect(&server, &client).await;
    assert_eq!(presented, renewed.chain[0]);
    echo(&mut after, b"new connection").await;
}

/// `service` answering as web's service account, on `clock`.
fn local(service: IdentityService, clock: &Clock) -> LocalIssuer {
    let sa = UserInfo::new("system:serviceaccount:shop:web", ["system:serviceaccounts"]);
    let clock = clock.clone();
    LocalIssuer::new(Arc::new(service), sa).with_clock(move || clock())
}

/// The control plane's identity service, which the test switches to another CA.
struct Rotating(Mutex<Arc<LocalIssuer>>);

#[async_trait]
impl CertificateIssuer for Rotating {
    async fn certify(
        &self,
        identity: &SpiffeId,
        csr: &CertificateSigningRequestDer<'static>,
    ) -> Result<(Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>), IssueError> {
        let current = self.0.lock().unwrap().clone();
        current.certify(identity, csr).await
    }
}

fn unix(time: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(time.duration_since(SystemTime::UNIX_EPOCH).unwrap())
}

/// A certificate for cart from `ca`, valid 72 hours from `now` (a peer that does not renew
/// during the test).
fn peer(ca: &MeshCa, now: SystemTime) -> IssuedCert {
    let cart = SpiffeId::new("cluster.local", "shop", "cart").unwrap();
    let (_key, csr) = SidecarKey::generate(&cart).unwrap();
    ca.issue_for(&csr, &cart, now, 72 * HOUR).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_ca_rotation_adds_the_new_root_and_keeps_the_old_one_until_it_expires() {
    let clock = tokio_clock();
    let t0 = clock();
    let old_ca = MeshCa::generate(
        CaConfig {
            root_ttl: 48 * HOUR,
            ..CaConfig::default()
        },
        t0,
    )
    .unwrap();
    let old_root = old_ca.root().clone();
    let old_peer = peer(&old_ca, t0);
    let issuer = Arc::new(Rotating(Mutex::new(Arc::new(local(
        IdentityService::new(old_ca),
        &clock,
    )))));
    let (key, certified) = request_certificate(&*issuer, &web()).await.unwrap();
    let tls = MeshTls::new(
        MeshCredentials::new(&key, certified.issued).unwrap(),
        TrustBundle::new("cluster.local", certified.trust_roots).unwrap(),
    );
    // The control plane moves to a new CA and hands out only the new root.
    let new_ca = MeshCa::generate(CaConfig::default(), t0).unwrap();
    let new_root = new_ca.root().clone();
    let new_peer = peer(&new_ca, t0);
    *issuer.0.lock().unwrap() = Arc::new(local(IdentityService::new(new_ca), &clock));
    let trusts = |peer: &IssuedCert| {
        tls.bundle()
            .verify(&peer.chain, PeerRole::Client, unix(clock()))
            .is_ok()
    };
    assert!(trusts(&old_peer) && !trusts(&new_peer));

    let handle = spawn_renewal(
        tls.clone(),
        issuer.clone(),
        RenewalConfig::default(),
        clock.clone(),
    );
    let mut status = handle.status();
    assert_eq!(status.borrow().trust_roots, 1);
    // At the renewal the new root comes with the new certificate; the old one stays, so the
    // peers of both CAs are trusted during the overlap.
    let renewed = wait_for(&mut status, |s| s.renewals == 1).await;
    assert_eq!(renewed.trust_roots, 2);
    assert_eq!(tls.bundle().roots(), [new_root.clone(), old_root.clone()]);
    assert!(trusts(&old_peer) && trusts(&new_peer));
    let ours = tls.credentials().issued();
    TrustBundle::new("cluster.local", [new_root.clone()])
        .unwrap()
        .verify(&ours.chain, PeerRole::Server, unix(clock()))
        .expect("the renewed certificate is the new CA's");

    // The old root expires between the second renewal (33.6 h) and the third (50.4 h): the
    // task wakes then and drops it.
    let expiry = root_not_after(&old_root).unwrap();
    assert!(expiry > t0 + 47 * HOUR && expiry <= t0 + 48 * HOUR);
    let pruned = tokio::time::timeout(48 * HOUR, wait_for(&mut status, |s| s.trust_roots == 1))
        .await
        .expect("the expired root was never dropped");
    assert!(
        at_about(clock(), expiry),
        "dropped at {:?}, expired at {expiry:?}",
        clock()
    );
    assert_eq!((pruned.renewals, pruned.failures), (2, 0));
    assert_eq!(tls.bundle().roots(), std::slice::from_ref(&new_root));
    assert!(!trusts(&old_peer) && trusts(&new_peer));
    handle.stop();
}

/// Web's identity service, adding a root that is not a certificate to each answer.
struct GarbageRoot(LocalIssuer);

#[async_trait]
impl CertificateIssuer for GarbageRoot {
    async fn certify(
        &self,
        identity: &SpiffeId,
        csr: &CertificateSigningRequestDer<'static>,
    ) -> Result<(Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>), IssueError> {
        let (chain, mut roots) = self.0.certify(identity, csr).await?;
        roots.push(CertificateDer::from(b"not a certificate".to_vec()));
        Ok((chain, roots))
    }
}

#[tokio::test(start_paused = true)]
async fn an_answer_with_an_unusable_root_changes_nothing_and_is_retried() {
    let s = setup().await;
    let first = s.credentials.issued();
    let tls = s.tls();
    let ca = MeshCa::generate(CaConfig::default(), (s.clock)()).unwrap();
    let issuer = Arc::new(GarbageRoot(local(IdentityService::new(ca), &s.clock)));
    let handle = spawn_renewal(
        tls.clone(),
        issuer,
        RenewalConfig::default(),
        s.clock.clone(),
    );
    let failed = wait_for(&mut handle.status(), |s| s.failures == 2).await;
    assert_eq!(failed.renewals, 0);
    assert!(
        failed
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("not a usable trust anchor")),
        "{failed:?}"
    );
    assert_eq!(s.credentials.issued().chain, first.chain);
    assert_eq!(tls.bundle().roots(), s.bundle.roots());
}
