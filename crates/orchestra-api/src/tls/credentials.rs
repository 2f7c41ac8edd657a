//! [`Credentials`]: what a client needs to reach the API server securely, in one YAML file
//! (kubeconfig's idea, flattened): the server's URL, the CA that signed the server's
//! certificate, and the client's certificate and key, or a bearer token.
//!
//! ```yaml
//! server: https://127.0.0.1:7443
//! certificate-authority: |
//!   -----BEGIN CERTIFICATE-----
//!   ...
//! client-certificate: |
//!   -----BEGIN CERTIFICATE-----
//!   ...
//! client-key: |
//!   -----BEGIN PRIVATE KEY-----
//!   ...
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{TlsError, files};

/// A client's credentials file. See the [module docs](self).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Credentials {
    /// The API server's URL (`https://HOST:PORT`).
    pub server: String,
    /// The cluster CA's certificate (PEM): the server must present a certificate it signed.
    pub certificate_authority: String,
    /// The client's certificate (PEM), for certificate authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// The client certificate's private key (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// A bearer token, for token authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never a key or a token in a log line.
        f.debug_struct("Credentials")
            .field("server", &self.server)
            .field("client_certificate", &self.client_certificate.is_some())
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Reads a credentials file; errors name the file and the field.
    pub fn load(path: &Path) -> Result<Self, TlsError> {
        let text = files::read(path)?;
        let credentials: Credentials =
            serde_yaml_ng::from_str(&text).map_err(|err| TlsError::Invalid {
                path: path.to_owned(),
                message: format!("not a credentials file: {err}"),
            })?;
        credentials.check().map_err(|message| TlsError::Invalid {
            path: path.to_owned(),
            message,
        })?;
        Ok(credentials)
    }

    /// A pod's credentials, as Kubernetes' in-cluster configuration builds them: the API
    /// server at `server`, trusted through the CA bundle mounted at `ca_file` (the
    /// `kube-root-ca.crt` ConfigMap's `ca.crt`), and no authentication of their own: the
    /// caller adds the service account's token, which it reads from its own file because the
    /// node agent renews it. An error names the file and what is wrong with it.
    pub fn in_cluster(server: &str, ca_file: &Path) -> Result<Self, TlsError> {
        let credentials = Credentials {
            server: server.to_owned(),
            certificate_authority: files::read(ca_file)?,
            client_certificate: None,
            client_key: None,
            token: None,
        };
        credentials.check().map_err(|_| TlsError::Invalid {
            path: ca_file.to_owned(),
            message: "no PEM certificate (a CA bundle starts with -----BEGIN CERTIFICATE-----)"
                .into(),
        })?;
        Ok(credentials)
    }

    /// Writes the file, readable by its owner only (it holds a private key or a token).
    pub fn save(&self, path: &Path) -> Result<(), TlsError> {
        let text = serde_yaml_ng::to_string(self).map_err(|err| TlsError::Invalid {
            path: path.to_owned(),
            message: format!("the credentials do not encode as YAML: {err}"),
        })?;
        files::write(path, &text, true)
    }

    /// A certificate needs its key, and the reverse.
    fn check(&self) -> Result<(), String> {
        if !self
            .certificate_authority
            .contains("-----BEGIN CERTIFICATE-----")
        {
            return Err("certificate-authority: no PEM certificate".into());
        }
        match (&self.client_certificate, &self.client_key) {
            (Some(_), None) => Err("client-certificate is set but client-key is not".into()),
            (None, Some(_)) => Err("client-key is set but client-certificate is not".into()),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credentials_file_round_trips_privately_and_names_its_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.credentials");
        let credentials = Credentials {
            server: "https://127.0.0.1:7443".into(),
            certificate_authority: "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n"
                .into(),
            client_certificate: None,
            client_key: None,
            token: Some("secret".into()),
        };
        credentials.save(&path).unwrap();
        assert_eq!(Credentials::load(&path).unwrap(), credentials);
        assert!(!format!("{credentials:?}").contains("secret"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "server: x\n").unwrap();
        let err = Credentials::load(&path).unwrap_err().to_string();
        assert!(err.contains("admin.credentials is not valid"), "{err}");
        let err = Credentials::load(&dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn in_cluster_credentials_trust_the_mounted_bundle_and_name_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.crt");
        let pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
        std::fs::write(&ca, pem).unwrap();
        let credentials = Credentials::in_cluster("https://10.0.0.1:7443", &ca).unwrap();
        assert_eq!(credentials.server, "https://10.0.0.1:7443");
        assert_eq!(credentials.certificate_authority, pem);
        assert_eq!(credentials.token, None);
        assert_eq!(credentials.client_certificate, None);

        std::fs::write(&ca, "").unwrap();
        let err = Credentials::in_cluster("https://10.0.0.1:7443", &ca).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("ca.crt") && matches!(err, TlsError::Invalid { .. }),
            "{text}"
        );
        let err = Credentials::in_cluster("https://x", &dir.path().join("gone")).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }), "{err}");
    }
}
