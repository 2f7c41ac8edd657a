//! [`SidecarStatus`]: what the sidecar has so far (its certificate, the first service table)
//! and [`SidecarStatus::readiness`], the pure decision behind `/ready`: ready once it holds
//! a certificate valid now and the directory has received a service table, and until it
//! starts draining.

use std::time::SystemTime;

/// The sidecar's progress, published on a `watch` channel
/// ([`Sidecar::status`](super::Sidecar::status)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SidecarStatus {
    /// The expiry of the certificate presented now (`None`: none obtained yet).
    pub certificate_expiry: Option<SystemTime>,
    /// The last failure to obtain or renew the certificate (cleared by a success).
    pub certificate_error: Option<String>,
    /// Certificates obtained: the first one and every renewal.
    pub certificates_issued: u64,
    /// The service ports of the last table applied to the directory (`None`: no table yet).
    pub service_ports: Option<usize>,
    /// Shutting down: listeners closed, connections finishing.
    pub draining: bool,
}

impl SidecarStatus {
    /// `Ok` when the sidecar can carry traffic at `now`; otherwise why not (for `/ready`'s
    /// 503 body).
    pub fn readiness(&self, now: SystemTime) -> Result<(), String> {
        if self.draining {
            return Err("draining: the sidecar is shutting down".to_owned());
        }
        match self.certificate_expiry {
            None => {
                let mut reason = "no mesh certificate yet".to_owned();
                if let Some(error) = &self.certificate_error {
                    reason.push_str(": ");
                    reason.push_str(error);
                }
                return Err(reason);
            }
            Some(expiry) if expiry <= now => {
                let mut reason = "the mesh certificate has expired and was not renewed".to_owned();
                if let Some(error) = &self.certificate_error {
                    reason.push_str(": ");
                    reason.push_str(error);
                }
                return Err(reason);
            }
            Some(_) => {}
        }
        if self.service_ports.is_none() {
            return Err("no service table from the API server yet".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn ready_needs_a_valid_certificate_and_a_table_and_not_draining() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut status = SidecarStatus::default();
        assert_eq!(
            status.readiness(now).unwrap_err(),
            "no mesh certificate yet"
        );
        status.certificate_error = Some("connection refused".into());
        assert_eq!(
            status.readiness(now).unwrap_err(),
            "no mesh certificate yet: connection refused"
        );
        status.certificate_error = None;
        status.certificate_expiry = Some(now + Duration::from_secs(3600));
        assert_eq!(
            status.readiness(now).unwrap_err(),
            "no service table from the API server yet"
        );
        // An empty table is a table: the cluster may have no services yet.
        status.service_ports = Some(0);
        assert_eq!(status.readiness(now), Ok(()));
        // Past the expiry, unrenewed: not ready.
        let later = now + Duration::from_secs(3600);
        assert!(status.readiness(later).unwrap_err().contains("expired"));
        status.draining = true;
        assert!(status.readiness(now).unwrap_err().starts_with("draining"));
    }
}
