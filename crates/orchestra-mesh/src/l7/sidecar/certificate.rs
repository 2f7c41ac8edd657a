//! The sidecar's first certificate: asked for until it arrives, with the renewal settings'
//! doubling backoff, since a pod may start before the control plane answers (each failure
//! is logged and shown by `/ready`).

use tokio::sync::watch;
use tracing::{info, warn};

use super::SidecarConfig;
use super::status::SidecarStatus;
use crate::l7::identity::{
    CertificateIssuer, MeshCredentials, MeshTls, SpiffeId, TrustBundle, request_certificate,
};

/// One attempt: a key, its certificate and the trust bundle that came with it.
async fn attempt(
    issuer: &dyn CertificateIssuer,
    identity: &SpiffeId,
    trust_domain: &str,
) -> Result<MeshTls, String> {
    let (key, certified) = request_certificate(issuer, identity)
        .await
        .map_err(|e| e.to_string())?;
    let bundle =
        TrustBundle::new(trust_domain, certified.trust_roots).map_err(|e| e.to_string())?;
    let credentials = MeshCredentials::new(&key, certified.issued)
        .map_err(|e| format!("the certificate does not fit the key: {e}"))?;
    Ok(MeshTls::new(credentials, bundle))
}

/// The sidecar's TLS settings, once the identity service has answered.
pub(super) async fn first(
    issuer: &dyn CertificateIssuer,
    identity: &SpiffeId,
    config: &SidecarConfig,
    status: &watch::Sender<SidecarStatus>,
) -> MeshTls {
    let mut backoff = config.renewal.initial_backoff;
    loop {
        match attempt(issuer, identity, &config.trust_domain).await {
            Ok(tls) => {
                let expiry = tls.credentials().issued().not_after;
                info!(%identity, ?expiry, "mesh certificate obtained");
                status.send_modify(|s| {
                    s.certificate_expiry = Some(expiry);
                    s.certificate_error = None;
                    s.certificates_issued += 1;
                });
                return tls;
            }
            Err(error) => {
                warn!(%identity, %error, retry_in = ?backoff, "no mesh certificate yet");
                status.send_modify(|s| s.certificate_error = Some(error));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(config.renewal.max_backoff);
            }
        }
    }
}
