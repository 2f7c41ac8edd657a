//! The server's authorization hook: every API request becomes [`RequestAttributes`] and goes
//! to `ServerOptions::authorizer`; a denial is a 403 `Forbidden` naming the user, the verb and
//! the resource, counted in the metrics; every write and every denial goes to
//! `ServerOptions::audit`.

use http::Method;

use super::State;
use super::authn::GROUP_BOOTSTRAPPERS;
use super::path::Target;
use crate::auth::enforce::enforce;
use crate::auth::{Decision, NAME_FIELD, RequestAttributes, UserInfo, Verb};
use crate::registry::ApiError;

/// The RBAC verb of a REST request (`None`: no operation matches; the router answers 404/405
/// and does nothing).
pub(crate) fn rest_verb(method: &Method, target: &Target, watch: bool) -> Option<Verb> {
    let name = target.name.is_some();
    Some(match (method, name) {
        (&Method::GET, false) if watch => Verb::Watch,
        (&Method::GET, false) => Verb::List,
        (&Method::GET, true) => Verb::Get,
        (&Method::POST, _) => Verb::Create,
        (&Method::PUT, true) => Verb::Update,
        (&Method::PATCH, true) => Verb::Patch,
        (&Method::DELETE, true) => Verb::Delete,
        _ => return None,
    })
}

/// The name a list or watch gives by its field selector `metadata.name=NAME` (which restricts
/// it to that object, so it is authorized as a request naming it, as Kubernetes' request info
/// does); `None` for other verbs and selectors. A selector that does not parse names nothing
/// (the operation refuses it afterwards).
pub(crate) fn selected_name(verb: Verb, field_selector: Option<&str>) -> Option<String> {
    if !matches!(verb, Verb::List | Verb::Watch) {
        return None;
    }
    let selector = crate::wire::parse_field_selector(field_selector?).ok()?;
    selector.requires_exact_match(NAME_FIELD).map(str::to_owned)
}

/// The API group of an apiVersion (`""` for `v1`, `apps` for `apps/v1`).
pub(crate) fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(group, _)| group)
}

/// What a request is about, before the user is attached.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub verb: Verb,
    pub api_version: &'a str,
    pub resource: &'a str,
    pub subresource: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// Allows or refuses `request` by `user` (`protocol` labels the denial metric).
pub(crate) fn check(
    state: &State,
    protocol: &'static str,
    user: &UserInfo,
    request: Request<'_>,
) -> Result<(), ApiError> {
    let attributes = RequestAttributes {
        user: user.clone(),
        verb: request.verb,
        api_group: api_group(request.api_version).to_owned(),
        resource: request.resource.to_owned(),
        subresource: request.subresource.map(str::to_owned),
        namespace: request
            .namespace
            .filter(|ns| !ns.is_empty())
            .map(str::to_owned),
        name: request.name.filter(|n| !n.is_empty()).map(str::to_owned),
    };
    let decision = if user.in_group(GROUP_BOOTSTRAPPERS) {
        // The join token buys a node certificate and nothing else, whatever the authorizer.
        Decision::Deny("the join token only grants a node certificate".into())
    } else {
        match &state.options.authorizer {
            Some(authorizer) => authorizer.authorize(&attributes),
            None => Decision::Allow,
        }
    };
    if decision != Decision::Allow {
        state.metrics.denied(
            protocol,
            attributes.verb.as_str(),
            &attributes.resource_path(),
        );
    }
    enforce(decision, attributes, state.options.audit.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_methods_map_to_rbac_verbs() {
        let collection = Target {
            api_version: "apps/v1".into(),
            plural: "deployments".into(),
            ..Target::default()
        };
        let item = Target {
            name: Some("web".into()),
            ..collection.clone()
        };
        assert_eq!(
            rest_verb(&Method::GET, &collection, true),
            Some(Verb::Watch)
        );
        assert_eq!(
            rest_verb(&Method::GET, &collection, false),
            Some(Verb::List)
        );
        assert_eq!(rest_verb(&Method::GET, &item, false), Some(Verb::Get));
        assert_eq!(
            rest_verb(&Method::POST, &collection, false),
            Some(Verb::Create)
        );
        assert_eq!(rest_verb(&Method::PUT, &item, false), Some(Verb::Update));
        assert_eq!(rest_verb(&Method::PATCH, &item, false), Some(Verb::Patch));
        assert_eq!(rest_verb(&Method::DELETE, &item, false), Some(Verb::Delete));
        assert_eq!(rest_verb(&Method::DELETE, &collection, false), None);
        assert_eq!(api_group("apps/v1"), "apps");
        assert_eq!(api_group("v1"), "");
    }

    #[test]
    fn a_list_or_watch_by_exact_name_names_its_object() {
        let by_name = Some("metadata.name=db");
        assert_eq!(selected_name(Verb::List, by_name), Some("db".into()));
        assert_eq!(selected_name(Verb::Watch, by_name), Some("db".into()));
        assert_eq!(selected_name(Verb::Get, by_name), None);
        assert_eq!(selected_name(Verb::Delete, by_name), None);
        assert_eq!(selected_name(Verb::List, Some("metadata.name!=db")), None);
        assert_eq!(selected_name(Verb::List, Some("spec.nodeName=a")), None);
        assert_eq!(selected_name(Verb::List, Some("metadata.name")), None);
        assert_eq!(selected_name(Verb::List, None), None);
    }
}
