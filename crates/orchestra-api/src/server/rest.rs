//! The HTTP/JSON API on Kubernetes' REST paths: get, list (selectors, pages), watch (JSON
//! lines), create, update, the `status` and `binding` subresources, merge patch and delete,
//! with errors as Kubernetes `Status` objects; plus `/healthz`, `/readyz` and `/metrics`.
//!
//! Nothing a client sends can panic a handler: every malformed path, query, header or body
//! becomes a `Status` with a 4xx code that says what was wrong.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use orchestra_store::StoreExt;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::authz;
use super::grpc::propagation_policy;
use super::limits::WatchPermit;
use super::path::{Target, parse_query, parse_target};
use super::watch_cache::CacheEvent;
use super::{Body, State};
use crate::auth::UserInfo;
use crate::registry::{ApiError, DeleteOptions, DeleteOutcome, DynOps, ListOptions, WatchOptions};
use crate::resource::{Resource, TypeInfo};
use crate::resources::Namespace;
use crate::scheme::DynResource;
use crate::wire::{self, Status};

type Query = std::collections::BTreeMap<String, String>;
type Object = Box<dyn DynResource>;

/// Answers one HTTP request.
pub(crate) async fn handle(state: &Arc<State>, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    match (request.method(), path.as_str()) {
        (&Method::GET, "/healthz" | "/livez") => text(StatusCode::OK, "ok"),
        (&Method::GET, "/readyz") => ready(state).await,
        (&Method::GET, "/metrics") => {
            let mut response = text(StatusCode::OK, state.metrics.render());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        _ => match parse_target(&path) {
            Some(target) => resource(state, target, request).await,
            None => status_response(&Status::failure(
                404,
                "NotFound",
                format!(
                    "the server could not find the requested resource: {path:?} is not an API path (try /api/v1/namespaces/NS/pods)"
                ),
            )),
        },
    }
}

/// Ready when the store answers a read.
async fn ready(state: &State) -> Response<Body> {
    match state
        .registry
        .registry()
        .store()
        .get("/registry/readyz")
        .await
    {
        Ok(_) => text(StatusCode::OK, "ok"),
        Err(err) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the store is not ready: {err}"),
        ),
    }
}

/// A resource request: dispatch, count, answer.
async fn resource(
    state: &Arc<State>,
    target: Target,
    request: Request<Incoming>,
) -> Response<Body> {
    let Some(ops) = state
        .registry
        .ops_by_plural(&target.api_version, &target.plural)
        .copied()
    else {
        return status_response(&Status::failure(
            404,
            "NotFound",
            format!(
                "the server could not find the requested resource: no resource {:?} in {}",
                target.plural, target.api_version
            ),
        ));
    };
    let info = ops.info();
    if let Err(status) = authorize(state, &info, &target, &request) {
        let verb = if status.code == 401 {
            "unknown"
        } else {
            "forbidden"
        };
        state.metrics.record("http", verb, info.kind, status.code);
        return status_response(&status);
    }
    let mut verb = "unknown";
    let response = match route(state, &ops, &target, request, &mut verb).await {
        Ok(response) => response,
        Err(status) => status_response(&status),
    };
    state
        .metrics
        .record("http", verb, info.kind, response.status().as_u16());
    response
}

/// Asks the authorizer about the request (a request no operation matches is left to the
/// router, which refuses it without doing anything).
fn authorize(
    state: &State,
    info: &TypeInfo,
    target: &Target,
    request: &Request<Incoming>,
) -> Result<(), Fail> {
    let Some(user) = request.extensions().get::<UserInfo>() else {
        return Err(fail(
            401,
            "Unauthorized",
            "Unauthorized: the request has no user",
        ));
    };
    let query = parse_query(request.uri().query()).ok();
    let watch = query
        .as_ref()
        .and_then(|query| is_true(query, "watch").ok())
        .unwrap_or(false);
    let Some(verb) = authz::rest_verb(request.method(), target, watch) else {
        return Ok(());
    };
    let selector = query.as_ref().and_then(|q| q.get("fieldSelector"));
    let selected = authz::selected_name(verb, selector.map(String::as_str));
    let name = target.name.as_deref().or(selected.as_deref());
    authz::check(
        state,
        "http",
        user,
        authz::Request {
            verb,
            api_version: info.api_version,
            resource: info.plural,
            subresource: target.subresource.as_deref(),
            namespace: target.namespace.as_deref(),
            name,
        },
    )
    .map_err(|err| Box::new(Status::from_error(&err)))
}

/// Chooses the operation from method, path and query.
async fn route(
    state: &Arc<State>,
    ops: &DynOps,
    target: &Target,
    request: Request<Incoming>,
    verb: &mut &'static str,
) -> Result<Response<Body>, Fail> {
    let info = ops.info();
    check_scope(&info, target)?;
    let query = parse_query(request.uri().query()).map_err(bad_request)?;
    let method = request.method().clone();
    let name = target.name.as_deref();
    let sub = target.subresource.as_deref();
    match (&method, name, sub) {
        (&Method::GET, None, None) if is_true(&query, "watch")? => {
            *verb = "watch";
            let permit = match request.extensions().get::<UserInfo>() {
                Some(user) => state.limiters.open_watch(user).inspect_err(|_| {
                    state.metrics.throttled("http", "watches");
                })?,
                None => None,
            };
            watch(state, &info, target, &query, permit).await
        }
        (&Method::GET, None, None) => {
            *verb = "list";
            list(state, &info, target, &query).await
        }
        (&Method::GET, Some(name), None | Some("status")) => {
            *verb = "get";
            let object = state
                .registry
                .get(info.api_version, info.kind, namespace(target), name)
                .await?;
            object_response(StatusCode::OK, object.as_ref(), &[])
        }
        (&Method::POST, None, None) => {
            *verb = "create";
            let body = read_json(state, request).await?;
            let (object, warnings) = decode(ops, target, body, &query)?;
            let created = state.registry.create(object).await?;
            object_response(StatusCode::CREATED, created.as_ref(), &warnings)
        }
        (&Method::POST, Some(name), Some("binding")) if info.kind == "Pod" => {
            *verb = "bind";
            let body = read_json(state, request).await?;
            bind(state, target, name, body).await
        }
        (&Method::POST, Some(name), Some("token")) if info.kind == "ServiceAccount" => {
            *verb = "token";
            let user = request.extensions().get::<UserInfo>().cloned();
            let body = read_json(state, request).await?;
            let body: crate::resources::TokenRequest = serde_json::from_value(body)
                .map_err(|err| bad_request(format!("the body is not a TokenRequest: {err}")))?;
            let user = user.unwrap_or_else(super::insecure_user);
            let issued =
                super::token::request_token(state, None, &user, namespace(target), name, &body)
                    .await?;
            Ok(json_response(StatusCode::CREATED, &issued))
        }
        (&Method::GET, Some(name), Some("log")) if info.kind == "Pod" => {
            *verb = "log";
            super::logs::rest(state, namespace(target), name, &query)
                .await
                .map_err(Into::into)
        }
        (&Method::PUT, Some(_), None | Some("status")) => {
            *verb = if sub.is_some() {
                "update_status"
            } else {
                "update"
            };
            let body = read_json(state, request).await?;
            let (object, warnings) = decode(ops, target, body, &query)?;
            let stored = if sub.is_some() {
                state.registry.update_status(object).await?
            } else {
                state.registry.update(object).await?
            };
            object_response(StatusCode::OK, stored.as_ref(), &warnings)
        }
        (&Method::PUT, Some(name), Some("finalize")) if info == Namespace::type_info() => {
            *verb = "finalize";
            let body = read_json(state, request).await?;
            let (object, _) = decode(ops, target, body, &query)?;
            let Some(namespace) = object.downcast_ref::<Namespace>() else {
                return Err(bad_request("the body of /finalize must be a v1 Namespace"));
            };
            let finalizers = namespace
                .spec
                .as_ref()
                .map(|spec| spec.finalizers.clone())
                .unwrap_or_default();
            let stored = state
                .registry
                .registry()
                .finalize_namespace(name, finalizers, &namespace.metadata.resource_version)
                .await?;
            object_response(StatusCode::OK, stored.into_dyn().as_ref(), &[])
        }
        (&Method::PATCH, Some(name), None) => {
            *verb = "patch";
            check_patch_type(&request)?;
            let patch = read_json(state, request).await?;
            let object = state
                .registry
                .patch(info.api_version, info.kind, namespace(target), name, &patch)
                .await?;
            object_response(StatusCode::OK, object.as_ref(), &[])
        }
        (&Method::DELETE, Some(name), None) => {
            *verb = "delete";
            delete(state, &info, target, name, &query, request).await
        }
        (_, _, Some(sub))
            if !matches!(sub, "status" | "binding" | "finalize" | "log" | "token") =>
        {
            Err(fail(
                404,
                "NotFound",
                format!(
                    "the server could not find the requested resource: {} has no subresource {sub:?}",
                    info.kind
                ),
            ))
        }
        _ => Err(fail(
            405,
            "MethodNotAllowed",
            format!(
                "{method} is not supported on {}: use GET/POST on a collection, GET/PUT/PATCH/DELETE on an object, PUT on /status, POST on pods' /binding, GET on pods' /log, POST on serviceaccounts' /token",
                describe(target)
            ),
        )),
    }
}

fn describe(target: &Target) -> String {
    let mut text = target.plural.clone();
    if let Some(name) = &target.name {
        text.push('/');
        text.push_str(name);
    }
    if let Some(sub) = &target.subresource {
        text.push('/');
        text.push_str(sub);
    }
    text
}

/// A namespaced object needs a namespace in its path; a cluster-scoped one has none.
fn check_scope(info: &TypeInfo, target: &Target) -> Result<(), Fail> {
    if !info.namespaced && target.namespace.is_some() {
        return Err(fail(
            404,
            "NotFound",
            format!(
                "{} is cluster-scoped: its path has no namespace (/{}...)",
                info.kind, info.plural
            ),
        ));
    }
    if info.namespaced && target.namespace.is_none() && target.name.is_some() {
        return Err(fail(
            404,
            "NotFound",
            format!(
                "{} is namespaced: address one by .../namespaces/NAMESPACE/{}/NAME",
                info.kind, info.plural
            ),
        ));
    }
    Ok(())
}

fn namespace(target: &Target) -> &str {
    target.namespace.as_deref().unwrap_or_default()
}

fn bad_request(message: impl Into<String>) -> Fail {
    Box::new(Status::from_error(&ApiError::BadRequest(message.into())))
}

/// A failed request's `Status`, boxed (it is large, and failures are the rare path).
type Fail = Box<Status>;

fn fail(code: u16, reason: &str, message: impl Into<String>) -> Fail {
    Box::new(Status::failure(code, reason, message))
}

/// A boolean query parameter: absent is false; `true`/`1`/empty is true.
fn is_true(query: &Query, key: &str) -> Result<bool, Fail> {
    match query.get(key).map(String::as_str) {
        None | Some("false" | "0") => Ok(false),
        Some("true" | "1" | "") => Ok(true),
        Some(other) => Err(bad_request(format!(
            "query parameter {key}={other:?} is not a boolean (true or false)"
        ))),
    }
}

fn number<T: std::str::FromStr>(query: &Query, key: &str) -> Result<Option<T>, Fail> {
    query
        .get(key)
        .map(|text| {
            text.parse::<T>().map_err(|_| {
                bad_request(format!(
                    "query parameter {key}={text:?} is not a non-negative integer"
                ))
            })
        })
        .transpose()
}

async fn list(
    state: &State,
    info: &TypeInfo,
    target: &Target,
    query: &Query,
) -> Result<Response<Body>, Fail> {
    let options = ListOptions {
        label_selector: wire::parse_label_selector(
            query.get("labelSelector").map_or("", String::as_str),
        )?,
        field_selector: wire::parse_field_selector(
            query.get("fieldSelector").map_or("", String::as_str),
        )?,
        limit: state.limiters.page(number(query, "limit")?.unwrap_or(0)),
        continue_token: query.get("continue").filter(|t| !t.is_empty()).cloned(),
        resource_version: query.get("resourceVersion").cloned(),
    };
    let list = super::watch_cache::list(
        &state.registry,
        state.cache.as_ref(),
        info.api_version,
        info.kind,
        target.namespace.as_deref(),
        &options,
    )
    .await?;
    let items = list
        .items
        .iter()
        .map(|item| to_json(item.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    let mut metadata = Map::new();
    metadata.insert("resourceVersion".into(), list.resource_version.into());
    if let Some(token) = list.continue_token {
        metadata.insert("continue".into(), token.into());
    }
    let body = json!({
        "apiVersion": info.api_version,
        "kind": format!("{}List", info.kind),
        "metadata": metadata,
        "items": items,
    });
    Ok(json_response(StatusCode::OK, &body))
}

async fn watch(
    state: &Arc<State>,
    info: &TypeInfo,
    target: &Target,
    query: &Query,
    permit: Option<WatchPermit>,
) -> Result<Response<Body>, Fail> {
    let options = WatchOptions {
        label_selector: wire::parse_label_selector(
            query.get("labelSelector").map_or("", String::as_str),
        )?,
        field_selector: wire::parse_field_selector(
            query.get("fieldSelector").map_or("", String::as_str),
        )?,
        resource_version: query.get("resourceVersion").cloned(),
        bookmark_interval: is_true(query, "allowWatchBookmarks")?
            .then_some(state.options.bookmark_interval),
    };
    let timeout: Option<u64> = number(query, "timeoutSeconds")?;
    let events = super::watch_cache::open(
        &state.registry,
        state.cache.as_ref(),
        info.api_version,
        info.kind,
        target.namespace.as_deref(),
        &options,
    )
    .await?;
    // The permit counts the watch against its user until the stream ends.
    let guard = (state.metrics.watch_opened(), permit);
    let info = *info;
    // One JSON line per event; the first error is sent as an ERROR event and ends the stream.
    let lines = futures::stream::unfold(Some((events, guard)), move |stream| async move {
        let (mut events, guard) = stream?;
        let (line, more) = match events.next().await? {
            Ok(event) => (event_line(&info, event), true),
            Err(err) => (error_line(&err), false),
        };
        Some((line, more.then_some((events, guard))))
    })
    .take_until(state.shutdown_signal());
    let deadline = tokio::time::sleep(timeout.map_or(Duration::MAX / 4, Duration::from_secs));
    let frames = lines
        .take_until(deadline)
        .map(|line| Ok::<_, Infallible>(Frame::data(line)));
    let mut response = Response::new(Body::new(StreamBody::new(frames)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

/// `{"type":"ADDED","object":{...}}` and a newline (the object's JSON spliced in as the cache
/// encoded it).
fn event_line(info: &TypeInfo, event: CacheEvent) -> Bytes {
    match event {
        CacheEvent::Object { kind, json, .. } => {
            let mut bytes = Vec::with_capacity(json.len() + 32);
            bytes.extend_from_slice(b"{\"type\":\"");
            bytes.extend_from_slice(kind.as_bytes());
            bytes.extend_from_slice(b"\",\"object\":");
            bytes.extend_from_slice(&json);
            bytes.extend_from_slice(b"}\n");
            Bytes::from(bytes)
        }
        CacheEvent::Bookmark(rv) => line(&json!({
            "type": "BOOKMARK",
            "object": {
                "apiVersion": info.api_version,
                "kind": info.kind,
                "metadata": {"resourceVersion": rv},
            },
        })),
    }
}

fn error_line(err: &ApiError) -> Bytes {
    line(&json!({"type": "ERROR", "object": Status::from_error(err)}))
}

fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

/// Kubernetes' `Binding`: the pod (metadata.name) and the node (target.name).
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Binding {
    metadata: BindingMeta,
    target: BindingTarget,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BindingMeta {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct BindingTarget {
    kind: String,
    name: String,
}

async fn bind(
    state: &State,
    target: &Target,
    pod: &str,
    body: Value,
) -> Result<Response<Body>, Fail> {
    let binding: Binding = serde_json::from_value(body)
        .map_err(|err| bad_request(format!("the body is not a Binding: {err}")))?;
    if !binding.metadata.name.is_empty() && binding.metadata.name != pod {
        return Err(bad_request(format!(
            "the Binding's metadata.name {:?} does not match the pod {pod:?} in the path",
            binding.metadata.name
        )));
    }
    if !binding.target.kind.is_empty() && binding.target.kind != "Node" {
        return Err(bad_request(format!(
            "Binding target.kind {:?}: only Node is supported",
            binding.target.kind
        )));
    }
    if binding.target.name.is_empty() {
        return Err(bad_request(
            "Binding target.name: Required value: the node to bind to",
        ));
    }
    state
        .registry
        .registry()
        .bind(namespace(target), pod, &binding.target.name)
        .await?;
    Ok(json_response(StatusCode::CREATED, &Status::success(201)))
}

/// Kubernetes' `DeleteOptions` body.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct DeleteBody {
    grace_period_seconds: Option<i64>,
    propagation_policy: Option<String>,
    preconditions: Preconditions,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Preconditions {
    resource_version: Option<String>,
}

async fn delete(
    state: &State,
    info: &TypeInfo,
    target: &Target,
    name: &str,
    query: &Query,
    request: Request<Incoming>,
) -> Result<Response<Body>, Fail> {
    let bytes = read_body(state, request).await?;
    let body: DeleteBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        DeleteBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|err| bad_request(format!("the body is not DeleteOptions: {err}")))?
    };
    let policy = query
        .get("propagationPolicy")
        .cloned()
        .or(body.propagation_policy)
        .unwrap_or_default();
    let options = DeleteOptions {
        grace_period_seconds: number(query, "gracePeriodSeconds")?.or(body.grace_period_seconds),
        propagation_policy: propagation_policy(&policy)?,
        resource_version: body.preconditions.resource_version,
    };
    let outcome = state
        .registry
        .delete(
            info.api_version,
            info.kind,
            namespace(target),
            name,
            &options,
        )
        .await?;
    match &outcome {
        DeleteOutcome::Deleted(object) => object_response(StatusCode::OK, object.as_ref(), &[]),
        // Kubernetes answers 202 while finalizers hold the object.
        DeleteOutcome::Pending(object) => {
            object_response(StatusCode::ACCEPTED, object.as_ref(), &[])
        }
    }
}

/// Only JSON merge patches (RFC 7386) are supported.
fn check_patch_type(request: &Request<Incoming>) -> Result<(), Fail> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/merge-patch+json");
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if matches!(media, "application/merge-patch+json" | "application/json") {
        Ok(())
    } else {
        Err(fail(
            415,
            "UnsupportedMediaType",
            format!(
                "patch type {media:?} is not supported: send a JSON merge patch with Content-Type: application/merge-patch+json"
            ),
        ))
    }
}

/// The request body, at most `max_body_bytes`.
async fn read_body(state: &State, request: Request<Incoming>) -> Result<Bytes, Fail> {
    let limit = state.options.max_body_bytes;
    let too_large = || {
        fail(
            413,
            "RequestEntityTooLarge",
            format!("the request body is over the limit of {limit} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    match Limited::new(request.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(err) => Err(bad_request(format!(
            "reading the request body failed: {err}"
        ))),
    }
}

async fn read_json(state: &State, request: Request<Incoming>) -> Result<Value, Fail> {
    let bytes = read_body(state, request).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_request(
            "the request has no body: send the object as JSON",
        ));
    }
    serde_json::from_slice(&bytes)
        .map_err(|err| bad_request(format!("the request body is not valid JSON: {err}")))
}

/// Decodes a request's object of the path's kind: the path's namespace and name are filled in
/// when absent and must match when present; unknown fields are warnings, or errors with
/// `?fieldValidation=Strict`.
fn decode(
    ops: &DynOps,
    target: &Target,
    mut body: Value,
    query: &Query,
) -> Result<(Object, Vec<String>), Fail> {
    let info = ops.info();
    let Value::Object(map) = &mut body else {
        return Err(bad_request(format!(
            "the request body must be a JSON object (a {} {})",
            info.api_version, info.kind
        )));
    };
    let metadata = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(metadata) = metadata else {
        return Err(bad_request("metadata: must be an object"));
    };
    if let Some(ns) = &target.namespace {
        fill_or_match(metadata, "namespace", ns)?;
    }
    if let Some(name) = &target.name {
        fill_or_match(metadata, "name", name)?;
    }
    let decoded = ops
        .decode(body)
        .map_err(|err| bad_request(err.to_string()))?;
    let strict = query
        .get("fieldValidation")
        .is_some_and(|v| v.eq_ignore_ascii_case("strict"));
    if strict && !decoded.unknown_fields.is_empty() {
        return Err(bad_request(
            decoded
                .unknown_fields
                .iter()
                .map(|p| format!("{p}: unknown field"))
                .collect::<Vec<_>>()
                .join(", "),
        ));
    }
    Ok((decoded.object, decoded.unknown_fields))
}

fn fill_or_match(metadata: &mut Map<String, Value>, field: &str, want: &str) -> Result<(), Fail> {
    match metadata.get(field) {
        None | Some(Value::Null) => {
            metadata.insert(field.into(), want.into());
            Ok(())
        }
        Some(Value::String(have)) if have.is_empty() => {
            metadata.insert(field.into(), want.into());
            Ok(())
        }
        Some(Value::String(have)) if have == want => Ok(()),
        Some(have) => Err(bad_request(format!(
            "metadata.{field} {have} of the object does not match {want:?} in the request path"
        ))),
    }
}

fn to_json(object: &dyn DynResource) -> Result<Value, Fail> {
    to_json_api(object).map_err(|err| Box::new(Status::from(err)))
}

fn to_json_api(object: &dyn DynResource) -> Result<Value, ApiError> {
    object.to_json().map_err(|err| {
        ApiError::BadRequest(format!(
            "the {} does not encode as JSON: {err}",
            object.type_info()
        ))
    })
}

fn object_response(
    code: StatusCode,
    object: &dyn DynResource,
    warnings: &[String],
) -> Result<Response<Body>, Fail> {
    let mut response = json_response(code, &to_json(object)?);
    for field in warnings {
        // kube-apiserver's warning format; a path that is no valid header value is skipped.
        let warning = format!("299 - \"unknown field {:?}\"", field);
        if let Ok(value) = HeaderValue::from_str(&warning) {
            response.headers_mut().append(header::WARNING, value);
        }
    }
    Ok(response)
}

fn json_response(code: StatusCode, body: &impl serde::Serialize) -> Response<Body> {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = Response::new(Body::new(Full::new(Bytes::from(bytes))));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A failure's `Status` as the response body; a throttled request's also says in
/// `Retry-After` when to come back.
pub(crate) fn status_response(status: &Status) -> Response<Body> {
    let code = StatusCode::from_u16(status.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(code, status);
    if let Some(seconds) = status.details.as_ref().and_then(|d| d.retry_after_seconds) {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn text(code: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut response = Response::new(Body::new(Full::new(Bytes::from(body.into()))));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
