//! The CA, bundle and verification together: issued certificates verify, carry their
//! identity, expire when they should, and nothing from a foreign CA is accepted.

use std::time::{Duration, SystemTime};

use rustls::pki_types::UnixTime;

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn t0() -> SystemTime {
    // A fixed, injected "now": nothing below reads the clock.
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn at(time: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(time.duration_since(SystemTime::UNIX_EPOCH).unwrap())
}

fn ca() -> MeshCa {
    MeshCa::generate(CaConfig::default(), t0()).unwrap()
}

fn web() -> SpiffeId {
    SpiffeId::new("cluster.local", "shop", "web").unwrap()
}

fn issue(ca: &MeshCa, id: &SpiffeId, now: SystemTime) -> IssuedCert {
    let (_key, request) = SidecarKey::generate(id).unwrap();
    ca.issue(&request, id, now).unwrap()
}

#[test]
fn issued_certificates_verify_and_carry_their_spiffe_id() {
    let ca = ca();
    let bundle = TrustBundle::new("cluster.local", [ca.root().clone()]).unwrap();
    let cert = issue(&ca, &web(), t0());
    assert_eq!(cert.chain.len(), 1);
    assert_eq!(spiffe_id_of(&cert.chain[0]).unwrap(), web());
    for role in [PeerRole::Client, PeerRole::Server] {
        let id = bundle.verify(&cert.chain, role, at(t0() + HOUR)).unwrap();
        assert_eq!(id, web());
    }
    // 24 hours by default, backdated one minute for clock skew.
    assert_eq!(cert.not_after, t0() + 24 * HOUR);
    assert_eq!(cert.not_before, t0() - Duration::from_secs(60));
}

#[test]
fn certificates_expire_when_they_should() {
    let ca = ca();
    let bundle = TrustBundle::new("cluster.local", [ca.root().clone()]).unwrap();
    let (_key, request) = SidecarKey::generate(&web()).unwrap();
    let cert = ca.issue_for(&request, &web(), t0(), HOUR).unwrap();
    let verify = |time| bundle.verify(&cert.chain, PeerRole::Client, at(time));
    assert!(verify(t0() + HOUR - Duration::from_secs(1)).is_ok());
    let error = verify(t0() + HOUR + Duration::from_secs(1)).unwrap_err();
    assert!(
        matches!(
            error,
            VerifyError::Untrusted(webpki::Error::CertExpired { .. })
        ),
        "{error}"
    );
    let error = verify(t0() - HOUR).unwrap_err();
    assert!(
        matches!(
            error,
            VerifyError::Untrusted(webpki::Error::CertNotValidYet { .. })
        ),
        "{error}"
    );
    // The renewal schedule of that certificate: due at 70% of its lifetime.
    assert!(matches!(
        renew_decision(cert.not_before, cert.not_after, t0(), RENEW_AT_FRACTION),
        RenewDecision::Keep { .. }
    ));
    assert!(matches!(
        renew_decision(
            cert.not_before,
            cert.not_after,
            t0() + HOUR.mul_f64(0.75),
            RENEW_AT_FRACTION
        ),
        RenewDecision::Renew { .. }
    ));
}

#[test]
fn a_foreign_cas_certificate_is_refused() {
    let ours = ca();
    let foreign = ca(); // same trust domain name, different key: an impostor
    let bundle = TrustBundle::new("cluster.local", [ours.root().clone()]).unwrap();
    let cert = issue(&foreign, &web(), t0());
    let error = bundle
        .verify(&cert.chain, PeerRole::Client, at(t0()))
        .unwrap_err();
    // Same issuer name, wrong key: the signature check fails (UnknownIssuer when the
    // names differ).
    assert!(
        matches!(
            error,
            VerifyError::Untrusted(
                webpki::Error::InvalidSignatureForPublicKey | webpki::Error::UnknownIssuer
            )
        ),
        "{error}"
    );
    // A root is not a workload certificate either.
    assert!(
        bundle
            .verify(&[ours.root().clone()], PeerRole::Client, at(t0()))
            .is_err()
    );
}

#[test]
fn a_trust_anchor_rotation_accepts_both_roots_during_the_overlap() {
    let old = ca();
    let new = ca();
    let old_cert = issue(&old, &web(), t0());
    let new_cert = issue(&new, &web(), t0());
    let before = TrustBundle::new("cluster.local", [old.root().clone()]).unwrap();
    let overlap = before.with_root(new.root().clone()).unwrap();
    assert_eq!(overlap.roots().len(), 2);
    let after = overlap.without_root(old.root());
    let ok = |bundle: &TrustBundle, cert: &IssuedCert| {
        bundle
            .verify(&cert.chain, PeerRole::Server, at(t0()))
            .is_ok()
    };
    assert!(ok(&before, &old_cert) && !ok(&before, &new_cert));
    assert!(ok(&overlap, &old_cert) && ok(&overlap, &new_cert));
    assert!(!ok(&after, &old_cert) && ok(&after, &new_cert));
}

#[test]
fn the_ca_signs_only_the_identity_the_caller_vouches_for() {
    let ca = ca();
    let (_key, request) = SidecarKey::generate(&web()).unwrap();
    let admin = SpiffeId::new("cluster.local", "kube-system", "admin").unwrap();
    let error = ca.issue(&request, &admin, t0()).unwrap_err();
    assert!(matches!(error, CaError::IdentityMismatch { .. }), "{error}");
    let other_domain = SpiffeId::new("other.example", "shop", "web").unwrap();
    let error = ca.issue(&request, &other_domain, t0()).unwrap_err();
    assert!(
        matches!(error, CaError::ForeignTrustDomain { .. }),
        "{error}"
    );
    // A request whose bytes were tampered with fails its signature check.
    let mut bytes = request.as_ref().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    let error = ca.issue(&bytes.into(), &web(), t0()).unwrap_err();
    assert!(matches!(error, CaError::InvalidRequest(_)), "{error}");
    // Garbage is an error too, not a panic.
    let error = ca.issue(&vec![1, 2, 3].into(), &web(), t0()).unwrap_err();
    assert!(matches!(error, CaError::InvalidRequest(_)), "{error}");
}

#[test]
fn keys_are_never_printed() {
    let (key, request) = SidecarKey::generate(&web()).unwrap();
    let issued = ca().issue(&request, &web(), t0()).unwrap();
    assert_eq!(format!("{key:?}"), "SidecarKey(<private key redacted>)");
    let credentials = MeshCredentials::new(&key, issued).unwrap();
    let printed = format!("{credentials:?} {:?}", ca());
    assert!(printed.contains("spiffe://cluster.local/ns/shop/sa/web") || printed.contains("web"));
    assert!(!printed.to_lowercase().contains("private"), "{printed}");
}
