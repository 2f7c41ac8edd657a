//! [`AuthorizerChain`]: authorizers asked in order (the first `Allow` or `Deny` decides; when
//! all have no opinion the request is denied), with every denial counted by verb and
//! resource for the server's `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use super::{Authorizer, Decision, RequestAttributes};

/// Authorizers in order; see the [module docs](self). Cheap to clone; clones share the
/// denial counts.
///
/// ```
/// use orchestra_api::auth::node::NodeAuthorizer;
/// use orchestra_api::auth::rbac::RbacAuthorizer;
/// use orchestra_api::auth::{AuthorizerChain, Authorizer, Decision, RequestAttributes, UserInfo, Verb};
///
/// let chain = AuthorizerChain::standard(NodeAuthorizer::new(), RbacAuthorizer::new());
/// let request = RequestAttributes {
///     user: UserInfo::new("alice", ["system:authenticated"]),
///     verb: Verb::Delete,
///     api_group: String::new(),
///     resource: "pods".into(),
///     subresource: None,
///     namespace: Some("shop".into()),
///     name: Some("web".into()),
/// };
/// assert_eq!(
///     chain.authorize(&request),
///     Decision::Deny("user \"alice\" cannot delete resource \"pods\" named \"web\" in the namespace \"shop\"".into())
/// );
/// assert!(chain.metrics_text().contains(
///     "orchestra_authorization_denials_total{verb=\"delete\",resource=\"pods\"} 1"
/// ));
/// ```
#[derive(Clone, Debug, Default)]
pub struct AuthorizerChain {
    authorizers: Vec<Arc<dyn Authorizer>>,
    denials: Arc<Mutex<BTreeMap<(&'static str, String), u64>>>,
}

impl AuthorizerChain {
    /// An empty chain: it denies everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// The chain a secure server runs, as Kubernetes' `--authorization-mode=Node,RBAC`: node
    /// restriction first (it decides every node's request), then RBAC.
    pub fn standard(node: super::node::NodeAuthorizer, rbac: super::rbac::RbacAuthorizer) -> Self {
        Self::new().with(node).with(rbac)
    }

    /// Appends an authorizer, asked after the ones already in the chain.
    pub fn with(mut self, authorizer: impl Authorizer + 'static) -> Self {
        self.authorizers.push(Arc::new(authorizer));
        self
    }

    /// How many requests were denied, by verb and `resource[/subresource]`.
    pub fn denials(&self) -> BTreeMap<(&'static str, String), u64> {
        self.denials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The denial counts as Prometheus text (`# HELP`, `# TYPE`, one
    /// `orchestra_authorization_denials_total{verb="..",resource=".."} N` line per pair), for
    /// the server to append to its `/metrics` page. Resource names are plurals of registered
    /// kinds (no quotes or backslashes), so they need no escaping beyond what is done here.
    pub fn metrics_text(&self) -> String {
        let mut out = String::from(
            "# HELP orchestra_authorization_denials_total Requests denied by authorization, by verb and resource.\n\
             # TYPE orchestra_authorization_denials_total counter\n",
        );
        for ((verb, resource), count) in self.denials() {
            let resource = resource.replace('\\', "\\\\").replace('"', "\\\"");
            let _ = writeln!(
                out,
                "orchestra_authorization_denials_total{{verb=\"{verb}\",resource=\"{resource}\"}} {count}"
            );
        }
        out
    }

    fn count_denial(&self, request: &RequestAttributes) {
        *self
            .denials
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((request.verb.as_str(), request.resource_path()))
            .or_default() += 1;
    }
}

impl Authorizer for AuthorizerChain {
    /// The first `Allow` or `Deny`; `Deny` with the request's text when no authorizer has an
    /// opinion. Never returns `NoOpinion`.
    fn authorize(&self, request: &RequestAttributes) -> Decision {
        let decision = self
            .authorizers
            .iter()
            .map(|a| a.authorize(request))
            .find(|d| *d != Decision::NoOpinion)
            .unwrap_or_else(|| Decision::Deny(request.to_string()));
        if matches!(decision, Decision::Deny(_)) {
            self.count_denial(request);
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{UserInfo, Verb};

    #[derive(Debug)]
    struct Fixed(Decision);

    impl Authorizer for Fixed {
        fn authorize(&self, _: &RequestAttributes) -> Decision {
            self.0.clone()
        }
    }

    fn request(verb: Verb, resource: &str, sub: Option<&str>) -> RequestAttributes {
        RequestAttributes {
            user: UserInfo::new("bob", ["system:authenticated"]),
            verb,
            api_group: String::new(),
            resource: resource.into(),
            subresource: sub.map(str::to_owned),
            namespace: None,
            name: None,
        }
    }

    #[test]
    fn the_first_opinion_wins_and_silence_denies() {
        let get = request(Verb::Get, "pods", None);
        let allow_after_silence = AuthorizerChain::new()
            .with(Fixed(Decision::NoOpinion))
            .with(Fixed(Decision::Allow));
        assert_eq!(allow_after_silence.authorize(&get), Decision::Allow);
        let deny_first = AuthorizerChain::new()
            .with(Fixed(Decision::Deny("no".into())))
            .with(Fixed(Decision::Allow));
        assert_eq!(deny_first.authorize(&get), Decision::Deny("no".into()));
        let silent = AuthorizerChain::new().with(Fixed(Decision::NoOpinion));
        assert_eq!(silent.authorize(&get), Decision::Deny(get.to_string()));
        assert_eq!(
            AuthorizerChain::new().authorize(&get),
            Decision::Deny(get.to_string())
        );
    }

    #[test]
    fn denials_are_counted_by_verb_and_resource() {
        let chain = AuthorizerChain::new();
        chain.authorize(&request(Verb::Get, "pods", None));
        chain.authorize(&request(Verb::Get, "pods", None));
        chain.authorize(&request(Verb::Update, "pods", Some("status")));
        let allowing = AuthorizerChain::new().with(Fixed(Decision::Allow));
        allowing.authorize(&request(Verb::Get, "pods", None));
        assert!(allowing.denials().is_empty());
        assert_eq!(
            chain.metrics_text(),
            "# HELP orchestra_authorization_denials_total Requests denied by authorization, by verb and resource.\n\
             # TYPE orchestra_authorization_denials_total counter\n\
             orchestra_authorization_denials_total{verb=\"get\",resource=\"pods\"} 2\n\
             orchestra_authorization_denials_total{verb=\"update\",resource=\"pods/status\"} 1\n"
        );
    }
}
