//! Kubernetes' REST paths and query strings, parsed (pure functions, no I/O):
//! `/api/v1/namespaces/{ns}/pods/{name}/status`, `/apis/apps/v1/deployments`, and
//! `?labelSelector=app%3Dweb&limit=10`.

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;

/// What a resource path names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Target {
    /// `v1`, or `group/version`.
    pub api_version: String,
    /// The kind's plural: `pods`.
    pub plural: String,
    /// The namespace in the path, if any (`None`: cluster-scoped, or across namespaces).
    pub namespace: Option<String>,
    /// The object's name, if the path names one.
    pub name: Option<String>,
    /// `status`, `binding`, ...
    pub subresource: Option<String>,
}

/// Parses a resource path; `None` when the path is not one.
pub(crate) fn parse_target(path: &str) -> Option<Target> {
    let mut segments: Vec<String> = Vec::new();
    for (i, raw) in path.trim_start_matches('/').split('/').enumerate() {
        if raw.is_empty() {
            // A trailing slash is fine; an empty segment inside the path is not.
            if i + 1 == path.trim_start_matches('/').split('/').count() {
                continue;
            }
            return None;
        }
        segments.push(percent_decode_str(raw).decode_utf8().ok()?.into_owned());
    }
    let (api_version, rest) = match segments.as_slice() {
        [api, version, rest @ ..] if api == "api" => (version.clone(), rest),
        [apis, group, version, rest @ ..] if apis == "apis" => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let item =
        |plural: &String, name: Option<&String>, sub: Option<&String>, ns: Option<&String>| {
            Some(Target {
                api_version: api_version.clone(),
                plural: plural.clone(),
                namespace: ns.cloned(),
                name: name.cloned(),
                subresource: sub.cloned(),
            })
        };
    match rest {
        // namespaces/{ns}/{plural}[/{name}[/{sub}]], unless it is a Namespace's subresource.
        [namespaces, ns, plural, tail @ ..]
            if namespaces == "namespaces" && !matches!(plural.as_str(), "status" | "finalize") =>
        {
            match tail {
                [] => item(plural, None, None, Some(ns)),
                [name] => item(plural, Some(name), None, Some(ns)),
                [name, sub] => item(plural, Some(name), Some(sub), Some(ns)),
                _ => None,
            }
        }
        [plural] => item(plural, None, None, None),
        [plural, name] => item(plural, Some(name), None, None),
        [plural, name, sub] => item(plural, Some(name), Some(sub), None),
        _ => None,
    }
}

/// A query string's parameters, decoded (`+` is a space); the last value of a repeated
/// parameter wins.
pub(crate) fn parse_query(query: Option<&str>) -> Result<BTreeMap<String, String>, String> {
    let mut params = BTreeMap::new();
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |text: &str| {
            percent_decode_str(&text.replace('+', " "))
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| format!("query parameter {key:?} is not valid UTF-8 once decoded"))
        };
        params.insert(decode(key)?, decode(value)?);
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(
        api: &str,
        plural: &str,
        ns: Option<&str>,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Target {
        Target {
            api_version: api.into(),
            plural: plural.into(),
            namespace: ns.map(Into::into),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        }
    }

    #[test]
    fn parses_kubernetes_paths() {
        let cases = [
            ("/api/v1/pods", t("v1", "pods", None, None, None)),
            (
                "/api/v1/namespaces/shop/pods",
                t("v1", "pods", Some("shop"), None, None),
            ),
            (
                "/api/v1/namespaces/shop/pods/web/",
                t("v1", "pods", Some("shop"), Some("web"), None),
            ),
            (
                "/api/v1/namespaces/shop/pods/web/binding",
                t("v1", "pods", Some("shop"), Some("web"), Some("binding")),
            ),
            (
                "/api/v1/nodes/n1/status",
                t("v1", "nodes", None, Some("n1"), Some("status")),
            ),
            (
                "/api/v1/namespaces",
                t("v1", "namespaces", None, None, None),
            ),
            (
                "/api/v1/namespaces/shop",
                t("v1", "namespaces", None, Some("shop"), None),
            ),
            (
                "/api/v1/namespaces/shop/status",
                t("v1", "namespaces", None, Some("shop"), Some("status")),
            ),
            (
                "/apis/apps/v1/namespaces/shop/deployments/web",
                t("apps/v1", "deployments", Some("shop"), Some("web"), None),
            ),
            (
                "/apis/apps/v1/deployments",
                t("apps/v1", "deployments", None, None, None),
            ),
        ];
        for (path, want) in cases {
            assert_eq!(parse_target(path), Some(want), "{path}");
        }
        for bad in [
            "/",
            "/api",
            "/api/v1",
            "/healthz",
            "/apis/apps",
            "/api/v1//pods",
            "/api/v1/namespaces/shop/pods/web/status/extra",
            "/api/v1/pods/a/b/c",
            "/api/v1/pods/%FF",
        ] {
            assert_eq!(parse_target(bad), None, "{bad}");
        }
    }

    #[test]
    fn decodes_query_strings() {
        let q = parse_query(Some("labelSelector=app%3Dweb%2Ctier+in+(a)&limit=2&watch")).unwrap();
        assert_eq!(q["labelSelector"], "app=web,tier in (a)");
        assert_eq!(q["limit"], "2");
        assert_eq!(q["watch"], "");
        assert!(parse_query(None).unwrap().is_empty());
        assert!(parse_query(Some("a=%FF")).is_err());
    }
}
