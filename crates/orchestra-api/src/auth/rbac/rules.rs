//! Whether one [`PolicyRule`] covers one request: the pure matching Kubernetes' RBAC does
//! (wildcards, `resource/subresource`, `*/subresource`, resourceNames).

use super::super::RequestAttributes;
use crate::resources::{PolicyRule, RBAC_ALL};

/// Whether `rule` allows `request`: its verb, API group, resource (with subresource) and, when
/// the rule lists `resourceNames`, the object's name all match.
///
/// As in Kubernetes, a rule with `resourceNames` matches only requests that name an object:
/// `get`, `update`, `patch`, `delete`, and a `list` or `watch` restricted by the field
/// selector `metadata.name=NAME` (which names the object in the request's
/// [attributes](RequestAttributes::name)), never an unrestricted `list` or `watch` or a
/// `create` without a name. `nonResourceURLs` never match a resource request.
pub fn rule_allows(rule: &PolicyRule, request: &RequestAttributes) -> bool {
    verb_matches(rule, request.verb.as_str())
        && group_matches(rule, &request.api_group)
        && resource_matches(rule, &request.resource, request.subresource.as_deref())
        && name_matches(rule, request.name.as_deref())
}

fn verb_matches(rule: &PolicyRule, verb: &str) -> bool {
    rule.verbs.iter().any(|v| v == RBAC_ALL || v == verb)
}

fn group_matches(rule: &PolicyRule, group: &str) -> bool {
    rule.api_groups.iter().any(|g| g == RBAC_ALL || g == group)
}

/// `*` matches everything; `pods` matches only `pods` (not `pods/status`); `pods/status`
/// matches that subresource; `*/status` matches the `status` subresource of any resource.
fn resource_matches(rule: &PolicyRule, resource: &str, subresource: Option<&str>) -> bool {
    rule.resources.iter().any(|r| {
        if r == RBAC_ALL {
            return true;
        }
        match (r.split_once('/'), subresource) {
            (None, None) => r == resource,
            (Some((res, sub)), Some(wanted)) => {
                sub == wanted && (res == RBAC_ALL || res == resource)
            }
            _ => false,
        }
    })
}

fn name_matches(rule: &PolicyRule, name: Option<&str>) -> bool {
    if rule.resource_names.is_empty() {
        return true;
    }
    name.is_some_and(|name| rule.resource_names.iter().any(|n| n == name))
}

/// Whether any of `rules` allows `request`.
pub fn rules_allow(rules: &[PolicyRule], request: &RequestAttributes) -> bool {
    rules.iter().any(|rule| rule_allows(rule, request))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::auth::{UserInfo, Verb};

    const VERBS: [Verb; 7] = [
        Verb::Get,
        Verb::List,
        Verb::Watch,
        Verb::Create,
        Verb::Update,
        Verb::Patch,
        Verb::Delete,
    ];

    fn request(verb: Verb, group: &str, resource: &str) -> RequestAttributes {
        let (resource, subresource) = match resource.split_once('/') {
            Some((r, s)) => (r.to_owned(), Some(s.to_owned())),
            None => (resource.to_owned(), None),
        };
        RequestAttributes {
            user: UserInfo::new("alice", ["system:authenticated"]),
            verb,
            api_group: group.into(),
            resource,
            subresource,
            namespace: Some("shop".into()),
            name: None,
        }
    }

    fn named(mut request: RequestAttributes, name: &str) -> RequestAttributes {
        request.name = Some(name.into());
        request
    }

    #[test]
    fn each_verb_is_allowed_only_when_listed() {
        for verb in VERBS {
            let rule = PolicyRule::new(&[""], &["pods"], &[verb.as_str()]);
            for other in VERBS {
                assert_eq!(
                    rule_allows(&rule, &request(other, "", "pods")),
                    verb == other,
                    "rule {verb} request {other}"
                );
            }
            let all = PolicyRule::new(&[""], &["pods"], &["*"]);
            assert!(rule_allows(&all, &request(verb, "", "pods")));
        }
    }

    #[test]
    fn groups_and_resources_must_match() {
        let rule = PolicyRule::new(&["apps"], &["deployments"], &["get"]);
        assert!(rule_allows(
            &rule,
            &request(Verb::Get, "apps", "deployments")
        ));
        assert!(!rule_allows(&rule, &request(Verb::Get, "", "deployments")));
        assert!(!rule_allows(
            &rule,
            &request(Verb::Get, "apps", "replicasets")
        ));
        let any_group = PolicyRule::new(&["*"], &["deployments"], &["get"]);
        assert!(rule_allows(
            &any_group,
            &request(Verb::Get, "batch", "deployments")
        ));
    }

    #[test]
    fn subresources_are_separate_resources() {
        let pods = PolicyRule::new(&[""], &["pods"], &["update"]);
        assert!(!rule_allows(
            &pods,
            &request(Verb::Update, "", "pods/status")
        ));
        let status = PolicyRule::new(&[""], &["pods/status"], &["update"]);
        assert!(rule_allows(
            &status,
            &request(Verb::Update, "", "pods/status")
        ));
        assert!(!rule_allows(&status, &request(Verb::Update, "", "pods")));
        assert!(!rule_allows(
            &status,
            &request(Verb::Update, "", "nodes/status")
        ));
        let any_status = PolicyRule::new(&[""], &["*/status"], &["update"]);
        assert!(rule_allows(
            &any_status,
            &request(Verb::Update, "", "nodes/status")
        ));
        assert!(!rule_allows(
            &any_status,
            &request(Verb::Update, "", "nodes")
        ));
        assert!(!rule_allows(
            &any_status,
            &request(Verb::Create, "", "pods/binding")
        ));
        let all = PolicyRule::new(&[""], &["*"], &["create"]);
        assert!(rule_allows(
            &all,
            &request(Verb::Create, "", "pods/binding")
        ));
    }

    #[test]
    fn resource_names_restrict_to_named_requests() {
        let rule = PolicyRule::new(&[""], &["configmaps"], &["*"]).named(&["settings"]);
        // A list or watch by an exact `metadata.name` selector carries the name.
        for verb in [
            Verb::Get,
            Verb::Update,
            Verb::Patch,
            Verb::Delete,
            Verb::List,
            Verb::Watch,
        ] {
            assert!(rule_allows(
                &rule,
                &named(request(verb, "", "configmaps"), "settings")
            ));
            assert!(!rule_allows(
                &rule,
                &named(request(verb, "", "configmaps"), "other")
            ));
        }
        // Requests without a name (list, a collection's watch, create) never match.
        for verb in [Verb::List, Verb::Watch, Verb::Create] {
            assert!(
                !rule_allows(&rule, &request(verb, "", "configmaps")),
                "{verb}"
            );
        }
    }

    #[test]
    fn url_rules_grant_no_resources() {
        let rule = PolicyRule {
            verbs: vec!["*".into()],
            non_resource_urls: vec!["*".into()],
            ..PolicyRule::default()
        };
        assert!(!rule_allows(&rule, &request(Verb::Get, "", "pods")));
    }

    fn pick(items: &[&'static str]) -> impl Strategy<Value = &'static str> + use<> {
        proptest::sample::select(items.to_vec())
    }

    proptest! {
        /// Replacing any list of a rule by `*` allows at least what the rule allowed.
        #[test]
        fn a_wildcard_allows_a_superset(
            verb in proptest::sample::select(VERBS.to_vec()),
            rule_verb in proptest::sample::select(VERBS.to_vec()),
            group in pick(&["", "apps", "batch"]),
            rule_group in pick(&["", "apps", "batch"]),
            resource in pick(&["pods", "pods/status", "nodes", "nodes/status", "deployments"]),
            rule_resource in pick(&["pods", "pods/status", "*/status", "nodes", "deployments"]),
            name in proptest::option::of(pick(&["a", "b"])),
            rule_names in proptest::collection::vec(pick(&["a", "b"]), 0..2),
            widen in 0usize..4,
        ) {
            let mut rule = PolicyRule::new(&[rule_group], &[rule_resource], &[rule_verb.as_str()]);
            rule.resource_names = rule_names.iter().map(|n| (*n).to_owned()).collect();
            let mut req = request(verb, group, resource);
            req.name = name.map(str::to_owned);
            let mut wide = rule.clone();
            match widen {
                0 => wide.verbs = vec!["*".into()],
                1 => wide.api_groups = vec!["*".into()],
                2 => wide.resources = vec!["*".into()],
                _ => wide.resource_names.clear(),
            }
            if rule_allows(&rule, &req) {
                prop_assert!(rule_allows(&wide, &req));
            }
        }
    }
}
