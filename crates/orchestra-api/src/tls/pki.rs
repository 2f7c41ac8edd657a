//! [`ClusterPki`]: the cluster's certificate authority in a data directory, and the
//! certificates it issues (the API server's, clients', nodes').
//!
//! Files, under `<data-dir>/tls/`: `ca.crt` and `ca.key` (made once, reused on every start:
//! every credential hangs on them), `server.crt` and `server.key` (issued again on every start,
//! so that new `--tls-san` names take effect), `admin.crt` and `admin.key` (the
//! administrator's client certificate, made once), `apiserver-agent-client.crt` and `.key`
//! (the API server's client identity, [`APISERVER_USER`], towards node agents' log endpoints,
//! made once). Keys are written with mode 0600.
//!
//! A node's certificate serves both ends of the node: it is the agent's client certificate
//! towards the API server and its server certificate for its log endpoint (its subject
//! alternative name is the node's name, which the API server verifies).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use super::credentials::Credentials;
use super::{TlsError, files};
use crate::auth::{GROUP_MASTERS, GROUP_NODES, NODE_USER_PREFIX};

/// The user name of the API server's client certificate towards node agents: the one
/// identity an agent's log endpoint accepts.
pub const APISERVER_USER: &str = "system:apiserver";

/// How long issued certificates are valid, in years (there is no rotation yet: long).
const VALID_YEARS: i32 = 10;

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct CertifiedKey {
    /// The certificate chain, leaf first (PEM).
    pub cert_pem: String,
    /// The private key (PEM, PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for CertifiedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never a private key in a log line.
        f.debug_struct("CertifiedKey")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// The cluster CA, loaded from (or created in) a data directory. See the [module docs](self).
pub struct ClusterPki {
    dir: PathBuf,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
    server: CertifiedKey,
    admin: CertifiedKey,
    apiserver_client: CertifiedKey,
}

impl std::fmt::Debug for ClusterPki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterPki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl ClusterPki {
    /// Loads the CA from `<data_dir>/tls/` (creating it on first start), issues the server's
    /// certificate for `localhost`, `127.0.0.1`, `::1`, this host's name and `extra_sans`
    /// (names or IP addresses), and loads (or creates) the admin's client certificate.
    pub fn load_or_create(data_dir: &Path, extra_sans: &[String]) -> Result<Self, TlsError> {
        let dir = data_dir.join("tls");
        let (ca_pem, issuer) = load_or_create_ca(&dir)?;
        let mut sans: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        // This host's name (Linux keeps it here; elsewhere, name it with `--tls-san`).
        if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname")
            && !host.trim().is_empty()
        {
            sans.push(host.trim().to_owned());
        }
        for san in extra_sans {
            if !sans.contains(san) {
                sans.push(san.clone());
            }
        }
        let server = issue(&issuer, &ca_pem, "orchestra-apiserver", &[], &sans, true)?;
        files::write(&dir.join("server.crt"), &server.cert_pem, false)?;
        files::write(&dir.join("server.key"), &server.key_pem, true)?;
        let admin = load_or_issue(
            &dir,
            "admin",
            |pki_issuer| issue(pki_issuer, &ca_pem, "admin", &[GROUP_MASTERS], &[], false),
            &issuer,
        )?;
        let apiserver_client = load_or_issue(
            &dir,
            "apiserver-agent-client",
            |pki_issuer| issue(pki_issuer, &ca_pem, APISERVER_USER, &[], &[], false),
            &issuer,
        )?;
        Ok(ClusterPki {
            dir,
            ca_pem,
            issuer,
            server,
            admin,
            apiserver_client,
        })
    }

    /// Where the files are (`<data-dir>/tls`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM), which clients trust.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The API server's certificate (chain: server, CA) and key.
    pub fn server(&self) -> &CertifiedKey {
        &self.server
    }

    /// The administrator's client certificate (CN `admin`, O `system:masters`).
    pub fn admin(&self) -> &CertifiedKey {
        &self.admin
    }

    /// The API server's client certificate towards node agents (CN [`APISERVER_USER`]).
    pub fn apiserver_client(&self) -> &CertifiedKey {
        &self.apiserver_client
    }

    /// A node's certificate and key, issued directly (for agents in the server's own process;
    /// remote agents send a certificate signing request with the join token instead).
    pub fn issue_node(&self, node: &str) -> Result<CertifiedKey, TlsError> {
        let generate = |source| TlsError::Generate {
            what: format!("issuing the certificate of node {node:?}"),
            source,
        };
        let key = KeyPair::generate().map_err(generate)?;
        let cert = node_params(node)?
            .signed_by(&key, &self.issuer)
            .map_err(generate)?;
        Ok(CertifiedKey {
            cert_pem: format!("{}{}", cert.pem(), self.ca_pem),
            key_pem: key.serialize_pem(),
        })
    }

    /// Credentials for the administrator at `server_url`.
    pub fn admin_credentials(&self, server_url: &str) -> Result<Credentials, TlsError> {
        Ok(Credentials {
            server: server_url.to_owned(),
            certificate_authority: self.ca_pem.clone(),
            client_certificate: Some(self.admin.cert_pem.clone()),
            client_key: Some(self.admin.key_pem.clone()),
            token: None,
        })
    }

    /// A new client certificate for `user` in `groups` (not stored: the caller hands it out).
    pub fn issue_client(&self, user: &str, groups: &[&str]) -> Result<CertifiedKey, TlsError> {
        issue(&self.issuer, &self.ca_pem, user, groups, &[], false)
    }

    /// Signs a node's certificate signing request (PEM): whatever subject the request asks
    /// for, the certificate names `system:node:NODE` in `system:nodes`, for client use and for
    /// serving the agent's endpoint under the node's name (its subject alternative name).
    /// Returns the certificate chain (PEM: the node's, then the CA's).
    pub fn sign_node_csr(&self, node: &str, csr_pem: &str) -> Result<String, TlsError> {
        let mut csr =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(|err| TlsError::Pem {
                what: "the certificate signing request",
                message: err.to_string(),
            })?;
        csr.params = node_params(node)?;
        let cert = csr
            .signed_by(&self.issuer)
            .map_err(|source| TlsError::Generate {
                what: format!("signing the certificate of node {node:?}"),
                source,
            })?;
        Ok(format!("{}{}", cert.pem(), self.ca_pem))
    }
}

/// A new key and a certificate signing request for `system:node:NODE` (the agent's half of
/// the TLS bootstrap): `(key PEM, CSR PEM)`.
pub fn node_csr(node: &str) -> Result<(String, String), TlsError> {
    let generate = |source| TlsError::Generate {
        what: format!("making the certificate request of node {node:?}"),
        source,
    };
    let key = KeyPair::generate().map_err(generate)?;
    let params = leaf_params(
        &format!("{NODE_USER_PREFIX}{node}"),
        &[GROUP_NODES],
        &[],
        false,
    )?;
    let csr = params.serialize_request(&key).map_err(generate)?;
    Ok((key.serialize_pem(), csr.pem().map_err(generate)?))
}

/// A node certificate's parameters: `system:node:NODE` in `system:nodes`, the node's name as
/// its DNS name, good for client and server authentication.
fn node_params(node: &str) -> Result<CertificateParams, TlsError> {
    let user = format!("{NODE_USER_PREFIX}{node}");
    let mut params = leaf_params(&user, &[GROUP_NODES], &[node.to_owned()], false)?;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    Ok(params)
}

fn load_or_create_ca(dir: &Path) -> Result<(String, Issuer<'static, KeyPair>), TlsError> {
    let (crt, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    match (files::exists(&crt), files::exists(&key)) {
        (true, true) => {
            let ca_pem = files::read(&crt)?;
            let key_pair = load_key(&key)?;
            let issuer =
                Issuer::from_ca_cert_pem(&ca_pem, key_pair).map_err(|err| TlsError::Invalid {
                    path: crt.clone(),
                    message: format!("not a CA certificate in PEM ({err})"),
                })?;
            Ok((ca_pem, issuer))
        }
        (false, false) => {
            let generate = |source| TlsError::Generate {
                what: "creating the cluster CA".into(),
                source,
            };
            let key_pair = KeyPair::generate().map_err(generate)?;
            let mut params = CertificateParams::default();
            params.distinguished_name = DistinguishedName::new();
            params
                .distinguished_name
                .push(DnType::CommonName, "orchestra-ca");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            set_validity(&mut params);
            let cert = params.self_signed(&key_pair).map_err(generate)?;
            let ca_pem = cert.pem();
            files::write(&key, &key_pair.serialize_pem(), true)?;
            files::write(&crt, &ca_pem, false)?;
            Ok((ca_pem, Issuer::new(params, key_pair)))
        }
        (true, false) => Err(TlsError::Incomplete {
            missing: key,
            present: crt,
        }),
        (false, true) => Err(TlsError::Incomplete {
            missing: crt,
            present: key,
        }),
    }
}

fn load_key(path: &Path) -> Result<KeyPair, TlsError> {
    KeyPair::from_pem(&files::read(path)?).map_err(|err| TlsError::Invalid {
        path: path.to_owned(),
        message: format!("not a private key in PEM ({err})"),
    })
}

/// `<name>.crt` and `<name>.key` from `dir`, or new ones from `make` (then written).
fn load_or_issue(
    dir: &Path,
    name: &str,
    make: impl FnOnce(&Issuer<'static, KeyPair>) -> Result<CertifiedKey, TlsError>,
    issuer: &Issuer<'static, KeyPair>,
) -> Result<CertifiedKey, TlsError> {
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    match (files::exists(&crt), files::exists(&key)) {
        (true, true) => {
            let cert_pem = files::read(&crt)?;
            if !cert_pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(TlsError::Invalid {
                    path: crt,
                    message: "no PEM certificate in it".into(),
                });
            }
            load_key(&key)?;
            Ok(CertifiedKey {
                cert_pem,
                key_pem: files::read(&key)?,
            })
        }
        (false, false) => {
            let made = make(issuer)?;
            files::write(&key, &made.key_pem, true)?;
            files::write(&crt, &made.cert_pem, false)?;
            Ok(made)
        }
        (true, false) => Err(TlsError::Incomplete {
            missing: key,
            present: crt,
        }),
        (false, true) => Err(TlsError::Incomplete {
            missing: crt,
            present: key,
        }),
    }
}

/// A certificate for `cn` in `groups`, for a server (`sans`) or a client; the chain includes
/// the CA so that clients pinning the CA by hash (join tokens) find it.
fn issue(
    issuer: &Issuer<'static, KeyPair>,
    ca_pem: &str,
    cn: &str,
    groups: &[&str],
    sans: &[String],
    server: bool,
) -> Result<CertifiedKey, TlsError> {
    let generate = |source| TlsError::Generate {
        what: format!("issuing the certificate of {cn:?}"),
        source,
    };
    let key = KeyPair::generate().map_err(generate)?;
    let params = leaf_params(cn, groups, sans, server)?;
    let cert = params.signed_by(&key, issuer).map_err(generate)?;
    let cert_pem = if server {
        format!("{}{ca_pem}", cert.pem())
    } else {
        cert.pem()
    };
    Ok(CertifiedKey {
        cert_pem,
        key_pem: key.serialize_pem(),
    })
}

fn leaf_params(
    cn: &str,
    groups: &[&str],
    sans: &[String],
    server: bool,
) -> Result<CertificateParams, TlsError> {
    if groups.len() > 1 {
        return Err(TlsError::TooManyGroups {
            user: cn.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        });
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    for group in groups {
        params
            .distinguished_name
            .push(DnType::OrganizationName, *group);
    }
    for san in sans {
        params.subject_alt_names.push(match san.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => {
                SanType::DnsName(
                    san.clone()
                        .try_into()
                        .map_err(|source| TlsError::Generate {
                            what: format!("the subject alternative name {san:?}"),
                            source,
                        })?,
                )
            }
        });
    }
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    set_validity(&mut params);
    Ok(params)
}

fn set_validity(params: &mut CertificateParams) {
    // The year, near enough (the start has a year of slack anyway).
    let year = 1970 + (jiff::Timestamp::now().as_second() / 31_556_952) as i32;
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + VALID_YEARS, 1, 1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::user_from_certificate;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    fn leaf_der(pem: &str) -> Vec<u8> {
        CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn a_client_certificate_names_its_one_group_and_refuses_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
        let one = pki.issue_client("ops", &["ops-team"]).unwrap();
        let user = user_from_certificate(&leaf_der(&one.cert_pem)).unwrap();
        assert!(user.in_group("ops-team"));
        let err = pki
            .issue_client("ops", &["ops-team", "auditors"])
            .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, TlsError::TooManyGroups { .. }), "{message}");
        assert!(
            message.contains("auditors") && message.contains("\"ops\""),
            "{message}"
        );
    }

    #[test]
    fn a_restart_reuses_the_ca_and_the_admin_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let first = ClusterPki::load_or_create(dir.path(), &["api.example".into()]).unwrap();
        let second = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
        assert_eq!(first.ca_pem(), second.ca_pem());
        assert_eq!(first.admin().cert_pem, second.admin().cert_pem);
        let admin = user_from_certificate(&leaf_der(&first.admin().cert_pem)).unwrap();
        assert_eq!(admin.name, "admin");
        assert!(admin.in_group(GROUP_MASTERS));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("tls/ca.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_missing_or_broken_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        ClusterPki::load_or_create(dir.path(), &[]).unwrap();
        let key = dir.path().join("tls/ca.key");
        std::fs::write(&key, "garbage").unwrap();
        let err = ClusterPki::load_or_create(dir.path(), &[]).unwrap_err();
        assert!(err.to_string().contains("ca.key is not valid"), "{err}");
        std::fs::remove_file(&key).unwrap();
        let err = ClusterPki::load_or_create(dir.path(), &[]).unwrap_err();
        assert!(err.to_string().contains("ca.key is missing"), "{err}");
    }

    #[test]
    fn a_node_csr_becomes_that_nodes_identity_whatever_it_asks() {
        let dir = tempfile::tempdir().unwrap();
        let pki = ClusterPki::load_or_create(dir.path(), &[]).unwrap();
        // The agent asks to be an admin; the CA signs a node certificate anyway.
        let key = KeyPair::generate().unwrap();
        let csr = leaf_params("admin", &[GROUP_MASTERS], &[], false)
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let chain = pki.sign_node_csr("n1", &csr).unwrap();
        let user = user_from_certificate(&leaf_der(&chain)).unwrap();
        assert_eq!(user.node_name(), Some("n1"));
        assert!(!user.in_group(GROUP_MASTERS));
        let (_, csr) = node_csr("n2").unwrap();
        let chain = pki.sign_node_csr("n2", &csr).unwrap();
        assert_eq!(
            user_from_certificate(&leaf_der(&chain)).unwrap().name,
            "system:node:n2"
        );
    }
}
