//! A client certificate's subject as a user: the common name (CN) is the user name, the
//! organizations (O) are the groups, as in Kubernetes.

use x509_parser::prelude::{FromDer, X509Certificate};

use crate::auth::{GROUP_AUTHENTICATED, UserInfo};

/// The user the first certificate of a PEM text names (a credentials file's certificate,
/// leaf first), as [`user_from_certificate`].
pub fn user_from_pem(pem: &str) -> Result<UserInfo, String> {
    let certs =
        super::config::certificates("the certificate", pem).map_err(|err| err.to_string())?;
    user_from_certificate(&certs[0])
}

/// The user a (verified) client certificate names, with [`GROUP_AUTHENTICATED`] added.
/// An error says why the certificate names no user (no CN, not DER).
pub fn user_from_certificate(der: &[u8]) -> Result<UserInfo, String> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|err| format!("the client certificate does not parse: {err}"))?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())
        .ok_or("the client certificate has no common name (CN) to name its user")?;
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_owned)
        .collect();
    if !groups.iter().any(|g| g == GROUP_AUTHENTICATED) {
        groups.push(GROUP_AUTHENTICATED.to_owned());
    }
    Ok(UserInfo::new(name, groups))
}
