//! [`SpiffeId`]: a workload's mesh identity, `spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/ACCOUNT`,
//! the form Istio and Linkerd use, carried as the only URI SAN of its certificate.

use std::fmt;
use std::str::FromStr;

/// A workload identity: which trust domain, namespace and service account it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    trust_domain: String,
    namespace: String,
    service_account: String,
}

/// Why a string is not a mesh SPIFFE ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid SPIFFE ID {input:?}: {reason}")]
pub struct SpiffeIdError {
    input: String,
    reason: &'static str,
}

/// A trust domain (a DNS-like name) or a path segment may hold only these characters
/// (the SPIFFE ID specification's sets, restricted to what Kubernetes names use).
fn valid_segment(segment: &str, allow_dot: bool) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment.bytes().all(|b| {
            b.is_ascii_lowercase()
                || b.is_ascii_digit()
                || b == b'-'
                || b == b'_'
                || (b == b'.' && allow_dot)
        })
}

impl SpiffeId {
    /// The identity of service account `service_account` in `namespace`.
    pub fn new(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, SpiffeIdError> {
        format!("spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}").parse()
    }

    /// The trust domain (`cluster.local` in most meshes).
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The service account.
    pub fn service_account(&self) -> &str {
        &self.service_account
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(input: &str) -> Result<Self, SpiffeIdError> {
        let error = |reason| SpiffeIdError {
            input: input.to_owned(),
            reason,
        };
        let rest = input
            .strip_prefix("spiffe://")
            .ok_or_else(|| error("it does not start with spiffe://"))?;
        let (trust_domain, path) = rest
            .split_once('/')
            .ok_or_else(|| error("it has no path after the trust domain"))?;
        if !valid_segment(trust_domain, true) {
            return Err(error(
                "the trust domain must be non-empty lowercase letters, digits, '.', '-' or '_'",
            ));
        }
        let parts: Vec<&str> = path.split('/').collect();
        let [ns_tag, namespace, sa_tag, service_account] = parts[..] else {
            return Err(error("the path must be /ns/NAMESPACE/sa/SERVICEACCOUNT"));
        };
        if ns_tag != "ns" || sa_tag != "sa" {
            return Err(error("the path must be /ns/NAMESPACE/sa/SERVICEACCOUNT"));
        }
        if !valid_segment(namespace, true) || !valid_segment(service_account, true) {
            return Err(error(
                "namespace and service account must be non-empty lowercase letters, digits, '.', '-' or '_'",
            ));
        }
        Ok(SpiffeId {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        })
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_mesh_form() {
        let id: SpiffeId = "spiffe://cluster.local/ns/shop/sa/web".parse().unwrap();
        assert_eq!(id.trust_domain(), "cluster.local");
        assert_eq!(id.namespace(), "shop");
        assert_eq!(id.service_account(), "web");
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/web");
        assert_eq!(SpiffeId::new("cluster.local", "shop", "web").unwrap(), id);
    }

    #[test]
    fn refuses_other_forms_naming_the_problem() {
        for (input, needle) in [
            ("https://cluster.local/ns/a/sa/b", "spiffe://"),
            ("spiffe://cluster.local", "no path"),
            ("spiffe:///ns/a/sa/b", "trust domain"),
            ("spiffe://Cluster/ns/a/sa/b", "trust domain"),
            ("spiffe://td/ns/a/sa/b/c", "/ns/NAMESPACE"),
            ("spiffe://td/namespace/a/sa/b", "/ns/NAMESPACE"),
            ("spiffe://td/ns//sa/b", "namespace and service account"),
            ("spiffe://td/ns/../sa/b", "namespace and service account"),
        ] {
            let error = input.parse::<SpiffeId>().unwrap_err().to_string();
            assert!(error.contains(needle), "{input}: {error}");
            assert!(error.contains(input), "{input}: {error}");
        }
    }
}
