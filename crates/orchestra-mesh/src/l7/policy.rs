//! [`AuthorizationPolicy`]: which identities may call which port of a namespace's workloads.
//! The decision is a pure function ([`AuthorizationPolicy::decide`]) of the server's
//! namespace, the port and the caller's verified SPIFFE ID.
//!
//! Rules are allow-lists, like Istio's ALLOW policies: when a namespace has rules for a port,
//! only callers matching one of them get through; a port without rules falls back to the
//! namespace's default action (allow unless configured otherwise), and a namespace without
//! a policy to the policy-wide default.

use std::collections::HashMap;

use super::identity::SpiffeId;

/// What happens to a call that no rule speaks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultAction {
    /// Let it through (Kubernetes' and most meshes' default).
    #[default]
    Allow,
    /// Refuse it.
    Deny,
}

/// Which callers a rule admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// Exactly this identity.
    Identity(SpiffeId),
    /// Every service account of this namespace (of the policy's trust domain).
    Namespace(String),
    /// Any caller with a valid mesh certificate.
    AnyAuthenticated,
}

impl Caller {
    fn matches(&self, peer: &SpiffeId) -> bool {
        match self {
            Caller::Identity(id) => id == peer,
            Caller::Namespace(ns) => peer.namespace() == ns,
            Caller::AnyAuthenticated => true,
        }
    }
}

/// An allow rule: `from` may call `port` (every port when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The server port the rule is about, or all ports.
    pub port: Option<u16>,
    /// The callers it admits.
    pub from: Vec<Caller>,
}

/// One namespace's policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespacePolicy {
    /// For ports no rule names.
    pub default: DefaultAction,
    /// The allow rules.
    pub rules: Vec<Rule>,
}

/// The verdict on one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let it through.
    Allow,
    /// Refuse it, and why (for the 403 body and logs).
    Deny(String),
}

/// The mesh's authorization policy (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorizationPolicy {
    /// For namespaces without a policy of their own.
    pub default: DefaultAction,
    /// Per namespace.
    pub namespaces: HashMap<String, NamespacePolicy>,
}

impl AuthorizationPolicy {
    /// Whether `peer` may call `port` of a workload in `namespace`.
    pub fn decide(&self, namespace: &str, port: u16, peer: &SpiffeId) -> Decision {
        let Some(policy) = self.namespaces.get(namespace) else {
            return match self.default {
                DefaultAction::Allow => Decision::Allow,
                DefaultAction::Deny => Decision::Deny(format!(
                    "namespace {namespace} has no policy and the default is deny"
                )),
            };
        };
        let mut rules = policy
            .rules
            .iter()
            .filter(|rule| rule.port.is_none_or(|p| p == port))
            .peekable();
        if rules.peek().is_none() {
            return match policy.default {
                DefaultAction::Allow => Decision::Allow,
                DefaultAction::Deny => Decision::Deny(format!(
                    "no rule of namespace {namespace} admits port {port} and its default is deny"
                )),
            };
        }
        if rules.any(|rule| rule.from.iter().any(|caller| caller.matches(peer))) {
            Decision::Allow
        } else {
            Decision::Deny(format!(
                "{peer} is not allowed to call port {port} in namespace {namespace}"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ns: &str, sa: &str) -> SpiffeId {
        SpiffeId::new("cluster.local", ns, sa).unwrap()
    }

    fn policy() -> AuthorizationPolicy {
        let shop = NamespacePolicy {
            default: DefaultAction::Allow,
            rules: vec![
                Rule {
                    port: Some(8080),
                    from: vec![Caller::Identity(id("shop", "web"))],
                },
                Rule {
                    port: Some(8080),
                    from: vec![Caller::Namespace("ops".to_owned())],
                },
            ],
        };
        let vault = NamespacePolicy {
            default: DefaultAction::Deny,
            rules: vec![Rule {
                port: None,
                from: vec![Caller::Identity(id("shop", "cart"))],
            }],
        };
        let locked = NamespacePolicy {
            default: DefaultAction::Deny,
            rules: vec![],
        };
        AuthorizationPolicy {
            default: DefaultAction::Allow,
            namespaces: [
                ("shop".to_owned(), shop),
                ("vault".to_owned(), vault),
                ("locked".to_owned(), locked),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn rules_for_a_port_are_an_allow_list() {
        let p = policy();
        assert_eq!(p.decide("shop", 8080, &id("shop", "web")), Decision::Allow);
        assert_eq!(p.decide("shop", 8080, &id("ops", "probe")), Decision::Allow);
        let Decision::Deny(why) = p.decide("shop", 8080, &id("shop", "cart")) else {
            panic!("cart must be denied on 8080");
        };
        assert!(
            why.contains("spiffe://cluster.local/ns/shop/sa/cart"),
            "{why}"
        );
        assert!(why.contains("8080"), "{why}");
        // Another port of the namespace: no rule, the namespace default (allow).
        assert_eq!(p.decide("shop", 9090, &id("shop", "cart")), Decision::Allow);
    }

    #[test]
    fn namespace_and_global_defaults() {
        let p = policy();
        // A rule for every port admits cart; nobody else, whatever the port.
        assert_eq!(p.decide("vault", 1, &id("shop", "cart")), Decision::Allow);
        assert!(matches!(
            p.decide("vault", 1, &id("shop", "web")),
            Decision::Deny(_)
        ));
        assert!(matches!(
            p.decide("locked", 80, &id("locked", "self")),
            Decision::Deny(_)
        ));
        assert_eq!(p.decide("elsewhere", 80, &id("x", "y")), Decision::Allow);
        let deny_all = AuthorizationPolicy {
            default: DefaultAction::Deny,
            ..AuthorizationPolicy::default()
        };
        assert!(matches!(
            deny_all.decide("elsewhere", 80, &id("x", "y")),
            Decision::Deny(_)
        ));
    }
}
