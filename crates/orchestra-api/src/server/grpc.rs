//! The gRPC service (`orchestra.api.v1.Api`): each call names a kind by apiVersion and kind
//! and is dispatched through the [`DynRegistry`](crate::registry::DynRegistry), so custom
//! kinds are served like the built-in ones. Objects are JSON bytes; errors are gRPC statuses
//! with the [`Status`](crate::wire::Status) JSON in their details.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tonic::{Request, Response};

use super::State;
use super::authz;
use super::watch_cache::CacheEvent;
use crate::auth::{GROUP_MASTERS, NAME_FIELD, UserInfo, Verb};
use crate::codec;
use crate::registry::{
    ApiError, DeleteOptions, DeleteOutcome, ListOptions, PropagationPolicy, WatchOptions,
};
use crate::scheme::DynResource;
use crate::wire::proto::{self, api_server::Api};
use crate::wire::{self, Status};

/// The gRPC service over the server's state.
#[derive(Clone, Debug)]
pub(crate) struct GrpcApi {
    pub(crate) state: Arc<State>,
}

type Object = Box<dyn DynResource>;

/// An object as JSON bytes.
pub(crate) fn encode(object: &dyn DynResource) -> Result<Bytes, ApiError> {
    let value = object.to_json().map_err(|err| {
        ApiError::BadRequest(format!(
            "the {} does not encode as JSON: {err}",
            object.type_info()
        ))
    })?;
    serde_json::to_vec(&value)
        .map(Bytes::from)
        .map_err(|err| ApiError::BadRequest(format!("the object does not encode as JSON: {err}")))
}

/// A policy by Kubernetes' name.
pub(crate) fn propagation_policy(text: &str) -> Result<Option<PropagationPolicy>, ApiError> {
    match text {
        "" => Ok(None),
        "Background" => Ok(Some(PropagationPolicy::Background)),
        "Foreground" => Ok(Some(PropagationPolicy::Foreground)),
        "Orphan" => Ok(Some(PropagationPolicy::Orphan)),
        other => Err(ApiError::BadRequest(format!(
            "invalid propagationPolicy {other:?}: use Background, Foreground or Orphan"
        ))),
    }
}

impl GrpcApi {
    /// Decodes a request's object strictly: a field the kind does not know is an error, never
    /// silently dropped.
    fn decode(&self, request: &proto::ObjectRequest) -> Result<Object, ApiError> {
        let ops = self
            .state
            .registry
            .ops(&request.api_version, &request.kind)?;
        if let Some(object) = ops.decode_known_fields(&request.object) {
            return Ok(object);
        }
        let value = serde_json::from_slice(&request.object)
            .map_err(|err| ApiError::BadRequest(format!("the object is not valid JSON: {err}")))?;
        ops.decode(value)
            .and_then(|decoded| decoded.strict())
            .map_err(|err| ApiError::BadRequest(err.to_string()))
    }

    /// Counts the call and turns the result into a gRPC response.
    fn finish<T>(
        &self,
        verb: &'static str,
        kind: &str,
        result: Result<T, ApiError>,
    ) -> Result<Response<T>, tonic::Status> {
        let code = match &result {
            Ok(_) => 200,
            Err(err) => err.code(),
        };
        self.state.metrics.record("grpc", verb, kind, code);
        result.map(Response::new).map_err(|err| wire::to_grpc(&err))
    }

    /// Asks the authorizer whether `user` may do `access` (an unknown kind is the
    /// registry's 404).
    fn authorize(&self, user: &UserInfo, access: Access<'_>) -> Result<(), ApiError> {
        let info = self
            .state
            .registry
            .ops(access.api_version, access.kind)?
            .info();
        authz::check(
            &self.state,
            "grpc",
            user,
            authz::Request {
                verb: access.verb,
                api_version: access.api_version,
                resource: info.plural,
                subresource: access.subresource,
                namespace: access.namespace,
                name: access.name,
            },
        )
    }

    async fn write(
        &self,
        verb: &'static str,
        user: UserInfo,
        request: proto::ObjectRequest,
    ) -> Result<Response<proto::ObjectResponse>, tonic::Status> {
        let result = async {
            let object = self.decode(&request)?;
            let meta = object.meta();
            let (rbac, sub) = match verb {
                "create" => (Verb::Create, None),
                "update" => (Verb::Update, None),
                _ => (Verb::Update, Some("status")),
            };
            self.authorize(
                &user,
                Access {
                    verb: rbac,
                    api_version: &request.api_version,
                    kind: &request.kind,
                    subresource: sub,
                    namespace: Some(&meta.namespace),
                    // A create names its object too: the Node authorizer lets a node create
                    // only its own Node and Lease, which it can tell only by the name.
                    name: Some(&meta.name),
                },
            )?;
            let registry = &self.state.registry;
            let stored = match verb {
                "create" => registry.create(object).await?,
                "update" => registry.update(object).await?,
                _ => registry.update_status(object).await?,
            };
            Ok(proto::ObjectResponse {
                object: encode(stored.as_ref())?,
            })
        }
        .await;
        self.finish(verb, &request.kind, result)
    }
}

/// What a call asks to do, in RBAC's terms, before the kind's resource name is looked up.
struct Access<'a> {
    verb: Verb,
    api_version: &'a str,
    kind: &'a str,
    subresource: Option<&'a str>,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
}

impl<'a> Access<'a> {
    /// `verb` on the object `target` names.
    fn object(verb: Verb, target: &'a proto::ObjectRef) -> Self {
        Access {
            verb,
            api_version: &target.api_version,
            kind: &target.kind,
            subresource: None,
            namespace: Some(&target.namespace),
            name: Some(&target.name),
        }
    }

    /// `verb` (list or watch) on a kind's objects in `namespace`, or in all of them; `name`
    /// when an exact `metadata.name` field selector restricts it to one object.
    fn collection(
        verb: Verb,
        api_version: &'a str,
        kind: &'a str,
        namespace: &'a str,
        all_namespaces: bool,
        name: Option<&'a str>,
    ) -> Self {
        Access {
            verb,
            api_version,
            kind,
            subresource: None,
            namespace: (!all_namespaces).then_some(namespace),
            name,
        }
    }
}

/// The user authentication attached to the request.
fn user_of<T>(request: &Request<T>) -> Result<UserInfo, tonic::Status> {
    request
        .extensions()
        .get::<UserInfo>()
        .cloned()
        .ok_or_else(|| tonic::Status::unauthenticated("Unauthorized: the request has no user"))
}

fn target(target: Option<proto::ObjectRef>) -> Result<proto::ObjectRef, ApiError> {
    target.ok_or_else(|| ApiError::BadRequest("the request names no object (target)".into()))
}

/// The gRPC stream of a container log.
type LogChunkStream = Pin<Box<dyn Stream<Item = Result<proto::LogChunk, tonic::Status>> + Send>>;

/// The gRPC stream of a watch.
type EventStream = Pin<Box<dyn Stream<Item = Result<proto::WatchEvent, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl Api for GrpcApi {
    async fn get(
        &self,
        request: Request<proto::ObjectRef>,
    ) -> Result<Response<proto::ObjectResponse>, tonic::Status> {
        let user = user_of(&request)?;
        let r = request.into_inner();
        let result = async {
            self.authorize(&user, Access::object(Verb::Get, &r))?;
            let object = self
                .state
                .registry
                .get(&r.api_version, &r.kind, &r.namespace, &r.name)
                .await?;
            Ok(proto::ObjectResponse {
                object: encode(object.as_ref())?,
            })
        }
        .await;
        self.finish("get", &r.kind, result)
    }

    async fn list(
        &self,
        request: Request<proto::ListRequest>,
    ) -> Result<Response<proto::ListResponse>, tonic::Status> {
        let user = user_of(&request)?;
        let r = request.into_inner();
        let result = async {
            let field_selector = wire::parse_field_selector(&r.field_selector)?;
            self.authorize(
                &user,
                Access::collection(
                    Verb::List,
                    &r.api_version,
                    &r.kind,
                    &r.namespace,
                    r.all_namespaces,
                    field_selector.requires_exact_match(NAME_FIELD),
                ),
            )?;
            let options = ListOptions {
                label_selector: wire::parse_label_selector(&r.label_selector)?,
                field_selector,
                limit: self
                    .state
                    .limiters
                    .page(usize::try_from(r.limit).unwrap_or(usize::MAX)),
                continue_token: r.continue_token.clone(),
                resource_version: r.resource_version.clone(),
            };
            let namespace = (!r.all_namespaces).then_some(r.namespace.as_str());
            let list = super::watch_cache::list(
                &self.state.registry,
                self.state.cache.as_ref(),
                &r.api_version,
                &r.kind,
                namespace,
                &options,
            )
            .await?;
            Ok(proto::ListResponse {
                items: list
                    .items
                    .iter()
                    .map(|item| encode(item.as_ref()))
                    .collect::<Result<_, _>>()?,
                resource_version: list.resource_version,
                continue_token: list.continue_token,
            })
        }
        .await;
        self.finish("list", &r.kind, result)
    }

    async fn create(
        &self,
        request: Request<proto::ObjectRequest>,
    ) -> Result<Response<proto::ObjectResponse>, tonic::Status> {
        let user = user_of(&request)?;
        self.write("create", user, request.into_inner()).await
    }

    async fn update(
        &self,
        request: Request<proto::ObjectRequest>,
    ) -> Result<Response<proto::ObjectResponse>, tonic::Status> {
        let user = user_of(&request)?;
        self.write("update", user, request.into_inner()).await
    }

    async fn update_status(
        &self,
        request: Request<proto::ObjectRequest>,
    ) -> Result<Response<proto::ObjectResponse>, tonic::Status> {
        let user = user_of(&request)?;
        self.write("update_status", user, request.into_inner())
            .await
    }

    async fn patch(
        &self,
        request: Request<proto::PatchRequest>,
    ) -> Result<Response<proto::ObjectResponse>, tonic::Status> {
        let user = user_of(&request)?;
        let r = request.into_inner();
        let kind = r
            .target
            .as_ref()
            .map(|t| t.kind.clone())
            .unwrap_or_default();
        let result = async {
            let t = target(r.target)?;
            self.authorize(&user, Access::object(Verb::Patch, &t))?;
            let patch = serde_json::from_slice(&r.patch).map_err(|err| {
                ApiError::BadRequest(format!("the patch is not valid JSON: {err}"))
            })?;
            let object = self
                .state
                .registry
                .patch(&t.api_version, &t.kind, &t.namespace, &t.name, &patch)
                .await?;
            Ok(proto::ObjectResponse {
                object: encode(object.as_ref())?,
            })
        }
        .await;
        self.finish("patch", &kind, result)
    }

    async fn delete(
        &self,
        request: Request<proto::DeleteRequest>,
    ) -> Result<Response<proto::DeleteResponse>, tonic::Status> {
        let user = user_of(&request)?;
        let r = request.into_inner();
        let kind = r
            .target
            .as_ref()
            .map(|t| t.kind.clone())
            .unwrap_or_default();
        let result = async {
            let t = target(r.target)?;
            self.authorize(&user, Access::object(Verb::Delete, &t))?;
            let options = DeleteOptions {
                grace_period_seconds: r.grace_period_seconds,
                propagation_policy: propagation_policy(&r.propagation_policy)?,
                resource_version: r.resource_version,
            };
            let outcome = self
                .state
                .registry
                .delete(&t.api_version, &t.kind, &t.namespace, &t.name, &options)
                .await?;
            Ok(proto::DeleteResponse {
                deleted: outcome.is_deleted(),
                object: match &outcome {
                    DeleteOutcome::Deleted(o) | DeleteOutcome::Pending(o) => encode(o.as_ref())?,
                },
            })
        }
        .await;
        self.finish("delete", &kind, result)
    }

    async fn bind(
        &self,
        request: Request<proto::BindRequest>,
    ) -> Result<Response<proto::ObjectResponse>, tonic::Status> {
        let user = user_of(&request)?;
        let r = request.into_inner();
        let result = async {
            self.authorize(
                &user,
                Access {
                    verb: Verb::Create,
                    api_version: "v1",
                    kind: "Pod",
                    subresource: Some("binding"),
                    namespace: Some(&r.namespace),
                    name: Some(&r.pod),
                },
            )?;
            let pod = self
                .state
                .registry
                .registry()
                .bind(&r.namespace, &r.pod, &r.node)
                .await?;
            let json = codec::to_string(&pod)
                .map_err(|err| ApiError::BadRequest(format!("the Pod does not encode: {err}")))?;
            Ok(proto::ObjectResponse {
                object: Bytes::from(json),
            })
        }
        .await;
        self.finish("bind", "Pod", result)
    }

    type WatchStream = EventStream;

    async fn watch(
        &self,
        request: Request<proto::WatchRequest>,
    ) -> Result<Response<EventStream>, tonic::Status> {
        let user = user_of(&request)?;
        let r = request.into_inner();
        let result = async {
            let field_selector = wire::parse_field_selector(&r.field_selector)?;
            self.authorize(
                &user,
                Access::collection(
                    Verb::Watch,
                    &r.api_version,
                    &r.kind,
                    &r.namespace,
                    r.all_namespaces,
                    field_selector.requires_exact_match(NAME_FIELD),
                ),
            )?;
            let options = WatchOptions {
                label_selector: wire::parse_label_selector(&r.label_selector)?,
                field_selector,
                resource_version: r.resource_version.clone(),
                bookmark_interval: (r.bookmark_interval_ms > 0)
                    .then(|| Duration::from_millis(r.bookmark_interval_ms)),
            };
            let namespace = (!r.all_namespaces).then_some(r.namespace.as_str());
            let permit = self.state.limiters.open_watch(&user).inspect_err(|_| {
                self.state.metrics.throttled("grpc", "watches");
            })?;
            let events = super::watch_cache::open(
                &self.state.registry,
                self.state.cache.as_ref(),
                &r.api_version,
                &r.kind,
                namespace,
                &options,
            )
            .await?;
            Ok((events, permit))
        }
        .await;
        let (events, permit) = self.finish("watch", &r.kind, result)?.into_inner();
        // The permit counts the watch against its user until the stream ends.
        let guard = (self.state.metrics.watch_opened(), permit);
        // Ends at the first error (sent as an ERROR event, as Kubernetes does) or when the
        // server shuts down.
        let stream = futures::stream::unfold(Some((events, guard)), |state| async move {
            let (mut events, guard) = state?;
            let event = match events.next().await? {
                Ok(event) => to_proto(event),
                Err(err) => error_event(&err),
            };
            let more = event.r#type != "ERROR";
            Some((Ok(event), more.then_some((events, guard))))
        })
        .take_until(self.state.shutdown_signal());
        Ok(Response::new(Box::pin(stream)))
    }

    async fn request_token(
        &self,
        request: Request<proto::TokenRequestCall>,
    ) -> Result<Response<proto::ObjectResponse>, tonic::Status> {
        let user = user_of(&request)?;
        let r = request.into_inner();
        let result = async {
            let body: crate::resources::TokenRequest = serde_json::from_slice(&r.token_request)
                .map_err(|err| {
                    ApiError::BadRequest(format!("the body is not a TokenRequest: {err}"))
                })?;
            let issued = super::token::request_token(
                &self.state,
                Some("grpc"),
                &user,
                &r.namespace,
                &r.service_account,
                &body,
            )
            .await?;
            let json = serde_json::to_vec(&issued).map_err(|err| {
                ApiError::BadRequest(format!("the TokenRequest does not encode: {err}"))
            })?;
            Ok(proto::ObjectResponse {
                object: Bytes::from(json),
            })
        }
        .await;
        self.finish("request_token", "ServiceAccount", result)
    }

    type PodLogsStream = LogChunkStream;

    async fn pod_logs(
        &self,
        request: Request<proto::PodLogsRequest>,
    ) -> Result<Response<LogChunkStream>, tonic::Status> {
        let user = user_of(&request)?;
        let r = request.into_inner();
        let result = async {
            self.authorize(
                &user,
                Access {
                    verb: Verb::Get,
                    api_version: "v1",
                    kind: "Pod",
                    subresource: Some("log"),
                    namespace: Some(&r.namespace),
                    name: Some(&r.name),
                },
            )?;
            let since_time = (!r.since_time.is_empty())
                .then(|| r.since_time.parse::<jiff::Timestamp>())
                .transpose()
                .map_err(|e| {
                    ApiError::BadRequest(format!(
                        "since_time {:?} is not an RFC 3339 time: {e}",
                        r.since_time
                    ))
                })?;
            if r.since_seconds == Some(0) {
                return Err(ApiError::BadRequest(
                    "since_seconds must be greater than 0".into(),
                ));
            }
            if r.since_seconds.is_some() && since_time.is_some() {
                return Err(ApiError::BadRequest(
                    "at most one of sinceTime or sinceSeconds may be specified".into(),
                ));
            }
            let options = crate::logs::PodLogOptions {
                container: (!r.container.is_empty()).then(|| r.container.clone()),
                follow: r.follow,
                tail_lines: r.tail_lines,
                previous: r.previous,
                limit_bytes: r.limit_bytes,
                since_seconds: r.since_seconds,
                since_time,
                timestamps: r.timestamps,
            };
            super::logs::open(&self.state, &r.namespace, &r.name, &options).await
        }
        .await;
        let chunks = self
            .finish("log", "Pod", result)?
            .into_inner()
            .map(|chunk| {
                chunk
                    .map(|data| proto::LogChunk { data })
                    .map_err(|err| wire::to_grpc(&err))
            });
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn issue_node_certificate(
        &self,
        request: Request<proto::NodeCertificateRequest>,
    ) -> Result<Response<proto::NodeCertificateResponse>, tonic::Status> {
        let user = user_of(&request)?;
        let r = request.into_inner();
        let result = (|| {
            // The join token's holders and administrators may have a node certificate signed.
            if !(user.in_group(super::authn::GROUP_BOOTSTRAPPERS) || user.in_group(GROUP_MASTERS)) {
                return Err(ApiError::Forbidden(format!(
                    "user \"{}\" cannot have node certificates signed: use the join token",
                    user.name
                )));
            }
            let errors = crate::validation::names::is_dns1123_subdomain(&r.node_name);
            if !errors.is_empty() {
                return Err(ApiError::BadRequest(format!(
                    "node name {:?}: {}",
                    r.node_name,
                    errors.join("; ")
                )));
            }
            let signer = self
                .state
                .options
                .authentication
                .as_ref()
                .and_then(|a| a.node_signer.as_ref())
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "this server has no CA to sign node certificates with".into(),
                    )
                })?;
            let chain = signer
                .sign_node_csr(&r.node_name, &r.csr_pem)
                .map_err(|err| ApiError::BadRequest(err.to_string()))?;
            tracing::info!(node = %r.node_name, "signed a node certificate for a join-token holder");
            Ok(proto::NodeCertificateResponse {
                certificate_chain_pem: chain,
                ca_pem: signer.ca_pem().to_owned(),
            })
        })();
        self.finish("issue_node_certificate", "Node", result)
    }

    async fn issue_workload_certificate(
        &self,
        request: Request<proto::WorkloadCertificateRequest>,
    ) -> Result<Response<proto::WorkloadCertificateResponse>, tonic::Status> {
        use crate::auth::workload::WorkloadCertificateRequest;
        // The bearer token (the pod's service account token) was verified by authentication,
        // like every call's: `user` is who the token says.
        let user = user_of(&request)?;
        let r = request.into_inner();
        let result = (|| {
            let signer = self.state.options.workload_signer.as_ref().ok_or_else(|| {
                ApiError::BadRequest(
                    "this server runs no mesh identity service (no mesh CA configured)".into(),
                )
            })?;
            let request = WorkloadCertificateRequest {
                identity: r.identity,
                csr_der: r.csr_der.to_vec(),
            };
            let signed = signer.sign(&user, &request, std::time::SystemTime::now())?;
            tracing::info!(user = %user.name, identity = %request.identity, "signed a mesh workload certificate");
            let valid_until_unix = signed
                .valid_until
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            Ok(proto::WorkloadCertificateResponse {
                certificate_chain_der: signed.chain_der.into_iter().map(Bytes::from).collect(),
                trust_roots_der: signed
                    .trust_roots_der
                    .into_iter()
                    .map(Bytes::from)
                    .collect(),
                valid_until_unix,
            })
        })();
        self.finish("issue_workload_certificate", "WorkloadCertificate", result)
    }
}

/// A watch event on the wire.
fn to_proto(event: CacheEvent) -> proto::WatchEvent {
    match event {
        CacheEvent::Object {
            kind,
            json,
            resource_version,
        } => proto::WatchEvent {
            r#type: kind.into(),
            object: json,
            resource_version,
        },
        CacheEvent::Bookmark(rv) => proto::WatchEvent {
            r#type: "BOOKMARK".into(),
            object: Bytes::new(),
            resource_version: rv,
        },
    }
}

/// The ERROR event that ends a watch.
fn error_event(err: &ApiError) -> proto::WatchEvent {
    proto::WatchEvent {
        r#type: "ERROR".into(),
        object: Bytes::from(serde_json::to_vec(&Status::from_error(err)).unwrap_or_default()),
        resource_version: String::new(),
    }
}
