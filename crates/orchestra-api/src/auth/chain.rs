//! [`AuthorizerChain`]: authorizers asked in order (the first `Allow` or `Deny` decides; when
//! all have no opinion the request is denied). Denials are counted where they are answered:
//! the API server's `orchestra_apiserver_denied_requests_total`.

use std::sync::Arc;

use super::{Authorizer, Decision, RequestAttributes};

/// Authorizers in order; see the [module docs](self). Cheap to clone.
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
/// ```
#[derive(Clone, Debug, Default)]
pub struct AuthorizerChain {
    authorizers: Vec<Arc<dyn Authorizer>>,
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
}

impl Authorizer for AuthorizerChain {
    /// The first `Allow` or `Deny`; `Deny` with the request's text when no authorizer has an
    /// opinion. Never returns `NoOpinion`.
    fn authorize(&self, request: &RequestAttributes) -> Decision {
        self.authorizers
            .iter()
            .map(|a| a.authorize(request))
            .find(|d| *d != Decision::NoOpinion)
            .unwrap_or_else(|| Decision::Deny(request.to_string()))
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
}
