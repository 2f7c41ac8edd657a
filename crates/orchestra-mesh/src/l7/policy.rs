//! [`AuthorizationPolicy`]: which identities may call which port of a namespace's workloads,
//! and, for HTTP, which paths with which methods. The decisions are pure functions of the
//! server's namespace, the port and the caller's verified SPIFFE ID
//! ([`AuthorizationPolicy::decide`], for a connection) and of the request's method and path
//! ([`AuthorizationPolicy::decide_request`]).
//!
//! Rules are allow-lists, like Istio's ALLOW policies: when a namespace has rules for a port,
//! only callers matching one of them get through; a port without rules falls back to the
//! namespace's default action (allow unless configured otherwise), and a namespace without
//! a policy to the policy-wide default.
//!
//! A rule may also name HTTP routes ([`HttpRoute`]: an exact path or a path prefix, and
//! methods), as Linkerd's AuthorizationPolicy does when it targets an HTTPRoute: then it
//! admits its callers only for requests matching one of the routes, and never an opaque
//! TCP connection (which has no path). Prefixes match whole path segments (`/api` matches
//! `/api` and `/api/items`, not `/apix`), and a path with dot segments or encoded dots or
//! slashes (`/api/../admin`, `/api/%2e%2e/admin`) matches no route, so that an application
//! normalizing its paths cannot be reached outside the routes allowed.

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

/// How an [`HttpRoute`] matches a request's path (the query string is not part of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// Exactly this path.
    Exact(String),
    /// This path or any below it, by whole segments (`/` matches every path).
    Prefix(String),
}

impl PathMatch {
    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(exact) => path == exact,
            PathMatch::Prefix(prefix) => {
                let prefix = prefix.trim_end_matches('/');
                match path.strip_prefix(prefix) {
                    Some(rest) => rest.is_empty() || rest.starts_with('/'),
                    None => false,
                }
            }
        }
    }
}

/// HTTP requests a rule admits: a path match and methods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRoute {
    /// The paths (`None`: every path).
    pub path: Option<PathMatch>,
    /// The methods (empty: every method).
    pub methods: Vec<http::Method>,
}

impl HttpRoute {
    fn matches(&self, method: &http::Method, path: &str) -> bool {
        (self.methods.is_empty() || self.methods.contains(method))
            && self.path.as_ref().is_none_or(|p| p.matches(path))
    }
}

/// Whether `path` can be compared with routes as it is: no dot segments, no encoded dots,
/// slashes or backslashes, which the application could resolve to another path.
fn comparable_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    path.starts_with('/')
        && !["%2e", "%2f", "%5c", "\\"]
            .iter()
            .any(|bad| lower.contains(bad))
        && !path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

/// An allow rule: `from` may call `port` (every port when `None`), for the requests of
/// `http` (when not empty).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    /// The server port the rule is about, or all ports.
    pub port: Option<u16>,
    /// The callers it admits.
    pub from: Vec<Caller>,
    /// The HTTP requests it admits them for (empty: every request, and opaque connections).
    pub http: Vec<HttpRoute>,
}

/// A request, as far as the policy looks at it.
#[derive(Debug, Clone, Copy)]
pub struct HttpRequestInfo<'a> {
    /// The method.
    pub method: &'a http::Method,
    /// The path, without the query string.
    pub path: &'a str,
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
    /// Whether `peer` may open a connection to `port` of a workload in `namespace` and use
    /// it as it likes (an opaque TCP connection: rules with HTTP routes do not admit it).
    pub fn decide(&self, namespace: &str, port: u16, peer: &SpiffeId) -> Decision {
        self.decide_inner(namespace, port, peer, None)
    }

    /// Whether `peer` may send `request` to `port` of a workload in `namespace`.
    pub fn decide_request(
        &self,
        namespace: &str,
        port: u16,
        peer: &SpiffeId,
        request: HttpRequestInfo<'_>,
    ) -> Decision {
        self.decide_inner(namespace, port, peer, Some(request))
    }

    fn decide_inner(
        &self,
        namespace: &str,
        port: u16,
        peer: &SpiffeId,
        request: Option<HttpRequestInfo<'_>>,
    ) -> Decision {
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
        let admits = |rule: &Rule| {
            if !rule.from.iter().any(|caller| caller.matches(peer)) {
                return false;
            }
            if rule.http.is_empty() {
                return true;
            }
            match request {
                // Only whole-connection rules admit opaque traffic.
                None => false,
                Some(r) => {
                    comparable_path(r.path)
                        && rule
                            .http
                            .iter()
                            .any(|route| route.matches(r.method, r.path))
                }
            }
        };
        if rules.any(admits) {
            return Decision::Allow;
        }
        Decision::Deny(match request {
            None => format!(
                "{peer} is not allowed to open connections to port {port} in namespace {namespace}"
            ),
            Some(r) => format!(
                "{peer} is not allowed to {} {} on port {port} in namespace {namespace}",
                r.method, r.path
            ),
        })
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
                    ..Rule::default()
                },
                Rule {
                    port: Some(8080),
                    from: vec![Caller::Namespace("ops".to_owned())],
                    ..Rule::default()
                },
            ],
        };
        let vault = NamespacePolicy {
            default: DefaultAction::Deny,
            rules: vec![Rule {
                port: None,
                from: vec![Caller::Identity(id("shop", "cart"))],
                ..Rule::default()
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

    fn api_policy() -> AuthorizationPolicy {
        use http::Method;
        let shop = NamespacePolicy {
            default: DefaultAction::Deny,
            rules: vec![
                // web may read the catalogue.
                Rule {
                    port: Some(8080),
                    from: vec![Caller::Identity(id("shop", "web"))],
                    http: vec![HttpRoute {
                        path: Some(PathMatch::Prefix("/api/items/".into())),
                        methods: vec![Method::GET, Method::HEAD],
                    }],
                },
                // cart may post orders, and only to that exact path.
                Rule {
                    port: Some(8080),
                    from: vec![Caller::Identity(id("shop", "cart"))],
                    http: vec![HttpRoute {
                        path: Some(PathMatch::Exact("/api/orders".into())),
                        methods: vec![Method::POST],
                    }],
                },
                // Anyone in the mesh may probe health, with any method.
                Rule {
                    port: Some(8080),
                    from: vec![Caller::AnyAuthenticated],
                    http: vec![HttpRoute {
                        path: Some(PathMatch::Exact("/healthz".into())),
                        methods: vec![],
                    }],
                },
                // ops may do anything, opaque connections included.
                Rule {
                    port: Some(8080),
                    from: vec![Caller::Namespace("ops".into())],
                    http: vec![],
                },
            ],
        };
        AuthorizationPolicy {
            default: DefaultAction::Deny,
            namespaces: [("shop".to_owned(), shop)].into_iter().collect(),
        }
    }

    fn request(p: &AuthorizationPolicy, peer: &SpiffeId, method: &str, path: &str) -> Decision {
        let method: http::Method = method.parse().unwrap();
        p.decide_request(
            "shop",
            8080,
            peer,
            HttpRequestInfo {
                method: &method,
                path,
            },
        )
    }

    #[test]
    fn http_routes_allow_by_identity_path_and_method() {
        let p = api_policy();
        let (web, cart, ops) = (id("shop", "web"), id("shop", "cart"), id("ops", "probe"));
        let allowed = [
            (&web, "GET", "/api/items"),
            (&web, "GET", "/api/items/42"),
            (&web, "HEAD", "/api/items/42/"),
            (&cart, "POST", "/api/orders"),
            (&web, "DELETE", "/healthz"),
            (&cart, "GET", "/healthz"),
            (&ops, "DELETE", "/anything/at/all"),
        ];
        for (peer, method, path) in allowed {
            assert_eq!(
                request(&p, peer, method, path),
                Decision::Allow,
                "{peer} {method} {path}"
            );
        }
        let denied = [
            // Wrong method for the identity's route.
            (&web, "POST", "/api/items/42"),
            // A prefix matches whole segments only.
            (&web, "GET", "/api/itemsx"),
            (&web, "GET", "/api"),
            // Another identity's route.
            (&web, "POST", "/api/orders"),
            // Exact means exact.
            (&cart, "POST", "/api/orders/1"),
            (&cart, "POST", "/api/orders/"),
            (&web, "GET", "/healthz/deep"),
            // Paths the application could resolve elsewhere.
            (&web, "GET", "/api/items/../../admin"),
            (&web, "GET", "/api/items/./x"),
            (&web, "GET", "/api/items/%2e%2e/%2E%2E/admin"),
            (&web, "GET", "/api/items%2f..%2fadmin"),
        ];
        for (peer, method, path) in denied {
            let Decision::Deny(why) = request(&p, peer, method, path) else {
                panic!("{peer} {method} {path} must be denied");
            };
            assert!(why.contains(method) && why.contains(path), "{why}");
        }
    }

    #[test]
    fn route_rules_never_admit_opaque_connections() {
        let p = api_policy();
        // web is admitted only for routes: an opaque connection has none.
        let Decision::Deny(why) = p.decide("shop", 8080, &id("shop", "web")) else {
            panic!("an opaque connection must not pass an HTTP route rule");
        };
        assert!(why.contains("open connections"), "{why}");
        // ops' rule has no routes: connections are fine.
        assert_eq!(p.decide("shop", 8080, &id("ops", "probe")), Decision::Allow);
        // A rule without routes admits every request too (the old behaviour).
        assert_eq!(
            policy().decide_request(
                "shop",
                8080,
                &id("shop", "web"),
                HttpRequestInfo {
                    method: &http::Method::DELETE,
                    path: "/x"
                }
            ),
            Decision::Allow
        );
    }
}
