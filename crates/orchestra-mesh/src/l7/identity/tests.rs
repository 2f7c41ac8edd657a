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
fn a_refreshed_bundle_takes_new_roots_and_keeps_old_ones_until_they_expire() {
    let old = MeshCa::generate(
        CaConfig {
            root_ttl: 48 * HOUR,
            ..CaConfig::default()
        },
        t0(),
    )
    .unwrap();
    let new = ca();
    let bundle = TrustBundle::new("cluster.local", [old.root().clone()]).unwrap();
    let handed_out = [new.root().clone()];
    // The identity service now hands out only the new root: it is trusted at once, the old
    // one is kept while it is valid, and its expiry is when the bundle next changes.
    let overlap = bundle.refreshed(&handed_out, t0() + HOUR).unwrap();
    assert_eq!(overlap.roots(), [new.root().clone(), old.root().clone()]);
    assert_eq!(
        overlap.next_expiry_outside(&handed_out),
        Some(t0() + 48 * HOUR)
    );
    assert_eq!(root_not_after(old.root()), Some(t0() + 48 * HOUR));
    // Refreshing again changes nothing until then; at the expiry the old root goes.
    let later = overlap
        .refreshed(&handed_out, t0() + 48 * HOUR - Duration::from_secs(1))
        .unwrap();
    assert_eq!(later.roots(), overlap.roots());
    let after = overlap.refreshed(&handed_out, t0() + 48 * HOUR).unwrap();
    assert_eq!(after.roots(), [new.root().clone()]);
    assert_eq!(after.next_expiry_outside(&handed_out), None);
    // Roots handed out are taken as they are, once each; an unusable one is refused.
    let both = [new.root().clone(), old.root().clone(), new.root().clone()];
    let refreshed = bundle.refreshed(&both, t0()).unwrap();
    assert_eq!(refreshed.roots(), [new.root().clone(), old.root().clone()]);
    assert_eq!(refreshed.next_expiry_outside(&both), None);
    let garbage = rustls::pki_types::CertificateDer::from(b"not a certificate".to_vec());
    assert!(bundle.refreshed(&[garbage], t0()).is_err());
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

mod service {
    use orchestra_api::auth::UserInfo;
    use orchestra_api::auth::workload::{WorkloadCertificateRequest, WorkloadSigner};
    use orchestra_api::registry::ApiError;

    use super::*;

    fn sa(ns: &str, name: &str) -> UserInfo {
        UserInfo::new(
            format!("system:serviceaccount:{ns}:{name}"),
            ["system:serviceaccounts", "system:authenticated"],
        )
    }

    #[test]
    fn a_service_accounts_csr_for_its_own_identity_is_signed_for_24_hours() {
        let service = IdentityService::new(ca());
        let (_key, csr) = SidecarKey::generate(&web()).unwrap();
        let issued = service
            .certify(&sa("shop", "web"), &web().to_string(), &csr, t0())
            .unwrap();
        assert_eq!(issued.identity, web());
        assert_eq!(spiffe_id_of(&issued.chain[0]).unwrap(), web());
        assert_eq!(
            issued.not_after.duration_since(t0()).unwrap(),
            24 * HOUR,
            "default lifetime"
        );
        // What the sidecar reads back from the chain agrees with what the CA says it issued.
        let read = IssuedCert::from_chain(issued.chain.clone()).unwrap();
        assert_eq!(
            (read.identity, read.not_before, read.not_after),
            (issued.identity, issued.not_before, issued.not_after)
        );
        let bundle = TrustBundle::new("cluster.local", service.trust_roots().to_vec()).unwrap();
        bundle
            .verify(&issued.chain, PeerRole::Client, at(t0() + HOUR))
            .unwrap();
    }

    #[test]
    fn other_service_accounts_non_service_accounts_and_mismatched_csrs_are_refused() {
        let service = IdentityService::new(ca());
        let (_key, csr) = SidecarKey::generate(&web()).unwrap();
        // Another service account's token asks for web's identity.
        let error = service
            .certify(&sa("shop", "cart"), &web().to_string(), &csr, t0())
            .unwrap_err();
        assert!(matches!(error, CertifyError::WrongServiceAccount { .. }));
        let text = error.to_string();
        assert!(
            text.contains("shop/cart")
                && text.contains("spiffe://cluster.local/ns/shop/sa/cart")
                && text.contains("asks for spiffe://cluster.local/ns/shop/sa/web"),
            "{text}"
        );
        // Another trust domain is another identity.
        let foreign = "spiffe://evil.example/ns/shop/sa/web";
        assert!(matches!(
            service.certify(&sa("shop", "web"), foreign, &csr, t0()),
            Err(CertifyError::WrongServiceAccount { .. })
        ));
        // A person, not a service account.
        let error = service
            .certify(
                &UserInfo::new("alice", ["system:masters"]),
                &web().to_string(),
                &csr,
                t0(),
            )
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("\"alice\" is not a service account")
        );
        // The token and the requested identity agree, but the CSR asks for another name.
        let cart = SpiffeId::new("cluster.local", "shop", "cart").unwrap();
        let (_key, cart_csr) = SidecarKey::generate(&cart).unwrap();
        let error = service
            .certify(&sa("shop", "web"), &web().to_string(), &cart_csr, t0())
            .unwrap_err();
        assert!(
            matches!(error, CertifyError::Ca(CaError::IdentityMismatch { .. })),
            "{error}"
        );
        assert!(error.to_string().contains("sa/cart"), "{error}");
        // Garbage in the identity and in the CSR.
        assert!(matches!(
            service.certify(&sa("shop", "web"), "web", &csr, t0()),
            Err(CertifyError::BadIdentity(_))
        ));
        let garbage = rustls::pki_types::CertificateSigningRequestDer::from(&b"not a csr"[..]);
        assert!(matches!(
            service.certify(&sa("shop", "web"), &web().to_string(), &garbage, t0()),
            Err(CertifyError::Ca(CaError::InvalidRequest(_)))
        ));
    }

    #[test]
    fn the_api_servers_hook_maps_refusals_to_forbidden_and_bad_request() {
        let service = IdentityService::new(ca());
        let (_key, csr) = SidecarKey::generate(&web()).unwrap();
        let request = |identity: &str, csr: &[u8]| WorkloadCertificateRequest {
            identity: identity.to_owned(),
            csr_der: csr.to_vec(),
        };
        let signed = service
            .sign(&sa("shop", "web"), &request(&web().to_string(), &csr), t0())
            .unwrap();
        assert_eq!(signed.chain_der.len(), 1);
        assert_eq!(signed.trust_roots_der, [service.ca().root().to_vec()]);
        assert_eq!(signed.valid_until, t0() + 24 * HOUR);
        assert!(matches!(
            service.sign(
                &sa("shop", "cart"),
                &request(&web().to_string(), &csr),
                t0()
            ),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            service.sign(
                &sa("shop", "web"),
                &request(&web().to_string(), b"junk"),
                t0()
            ),
            Err(ApiError::BadRequest(_))
        ));
    }

    #[test]
    fn a_kept_ca_is_the_same_ca_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = MeshCa::load_or_create(dir.path(), CaConfig::default(), t0()).unwrap();
        let second = MeshCa::load_or_create(dir.path(), CaConfig::default(), t0() + HOUR).unwrap();
        assert_eq!(first.root(), second.root());
        // The reloaded CA signs certificates the first root verifies.
        let cert = issue(&second, &web(), t0() + HOUR);
        let bundle = TrustBundle::new("cluster.local", [first.root().clone()]).unwrap();
        bundle
            .verify(&cert.chain, PeerRole::Server, at(t0() + 2 * HOUR))
            .unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // A broken key file is named.
        std::fs::write(dir.path().join("ca.key"), "nonsense").unwrap();
        let error = MeshCa::load_or_create(dir.path(), CaConfig::default(), t0()).unwrap_err();
        assert!(error.to_string().contains("ca.key"), "{error}");
        // An expired root is refused, not used.
        let later = t0() + Duration::from_secs(2 * 365 * 24 * 3600);
        let fresh = tempfile::tempdir().unwrap();
        MeshCa::load_or_create(fresh.path(), CaConfig::default(), t0()).unwrap();
        let error = MeshCa::load_or_create(fresh.path(), CaConfig::default(), later).unwrap_err();
        assert!(error.to_string().contains("expired"), "{error}");
        // A trust domain no SPIFFE ID can carry is refused before anything is written.
        let empty = tempfile::tempdir().unwrap();
        let config = CaConfig {
            trust_domain: "Cluster Local".into(),
            ..CaConfig::default()
        };
        let error = MeshCa::load_or_create(empty.path(), config, t0()).unwrap_err();
        assert!(error.to_string().contains("\"Cluster Local\""), "{error}");
        assert!(!empty.path().join("ca.key").exists());
    }
}
