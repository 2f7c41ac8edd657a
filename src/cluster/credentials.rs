//! The credentials files of the components that run beside the API server, each with its own
//! identity, which the built-in RBAC roles bind (see
//! `orchestra_api::auth::bootstrap`), so that none of them runs as the administrator:
//!
//! | file | user | for |
//! |---|---|---|
//! | `scheduler.credentials` | `system:kube-scheduler` | `orchestra scheduler --credentials FILE` |
//! | `controller-manager.credentials` | `system:kube-controller-manager` | `orchestra controller-manager --credentials FILE` |
//! | `kube-proxy.credentials` | `system:kube-proxy` | `orchestra agent --proxy --proxy-credentials FILE` |
//! | `coredns.credentials` | the service account `kube-system/coredns` | `orchestra agent --dns ADDR --dns-credentials FILE` |
//!
//! The proxy and the DNS may only list and watch Services and Endpoints: with their own
//! files, a node's service proxy and DNS do not act with the node's wider rights.
//! `orchestra server` and `Cluster` (`orchestra cluster`) write them into their data
//! directory at every start, with fresh certificates from the cluster CA, as the admin's.

use std::path::Path;

use orchestra_api::auth::bootstrap::{CONTROLLER_MANAGER_USER, PROXY_USER, SCHEDULER_USER};
use orchestra_api::tls::{ClusterPki, Credentials, TlsError};

/// One component's credentials file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ComponentCredentials {
    /// The file's name in the data directory.
    pub file: &'static str,
    /// The user its certificate names (CN).
    pub user: &'static str,
    /// The user's groups (O).
    pub groups: &'static [&'static str],
}

/// The user of the cluster DNS's service account, `kube-system/coredns`.
pub const DNS_USER: &str = "system:serviceaccount:kube-system:coredns";

/// The files [`write_component_credentials`] writes (see the module docs).
pub const COMPONENT_CREDENTIALS: [ComponentCredentials; 4] = [
    ComponentCredentials {
        file: "scheduler.credentials",
        user: SCHEDULER_USER,
        groups: &[],
    },
    ComponentCredentials {
        file: "controller-manager.credentials",
        user: CONTROLLER_MANAGER_USER,
        groups: &[],
    },
    ComponentCredentials {
        file: "kube-proxy.credentials",
        user: PROXY_USER,
        groups: &[],
    },
    ComponentCredentials {
        file: "coredns.credentials",
        user: DNS_USER,
        // One group: the cluster PKI's certificates carry one organization (O) per user
        // today. The built-in role binds the service account itself, not a group.
        groups: &["system:serviceaccounts"],
    },
];

/// Writes [`COMPONENT_CREDENTIALS`] into `dir` for the API server at `url`, each with a
/// fresh client certificate from `pki`.
pub fn write_component_credentials(
    pki: &ClusterPki,
    url: &str,
    dir: &Path,
) -> Result<(), TlsError> {
    for component in COMPONENT_CREDENTIALS {
        let certified = pki.issue_client(component.user, component.groups)?;
        Credentials {
            server: url.to_owned(),
            certificate_authority: pki.ca_pem().to_owned(),
            client_certificate: Some(certified.cert_pem.clone()),
            client_key: Some(certified.key_pem.clone()),
            token: None,
        }
        .save(&dir.join(component.file))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dns_file_is_the_coredns_service_account_the_built_in_role_binds() {
        let dns = orchestra_api::auth::bootstrap::dns_user();
        let component = COMPONENT_CREDENTIALS[3];
        assert_eq!(component.user, dns.name);
        for group in component.groups {
            assert!(dns.groups.iter().any(|g| g == group), "{group}");
        }
    }
}
