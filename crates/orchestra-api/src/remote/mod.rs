//! [`RemoteClient`]: the [`Client`] trait over the API server's gRPC service, so that a
//! scheduler, a controller or a node agent in another process behaves exactly as it does over
//! [`LocalClient`](crate::LocalClient): the same objects, the same [`ApiError`]s (rebuilt from
//! the `Status` the server sends), the same watch events, bookmarks and 410s.
//!
//! ```no_run
//! use orchestra_api::resources::Pod;
//! use orchestra_api::{Client, RemoteClient};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = RemoteClient::connect("http://127.0.0.1:7443").await?;
//! let pod: Pod = client.get("default", "web").await?;
//! println!("{} runs on {:?}", pod.metadata.name, pod.spec.node_name);
//! # Ok(())
//! # }
//! ```
//!
//! Against a secured server (`orchestra server`'s default), connect with a [`Credentials`]
//! file: [`RemoteClient::connect_with`] speaks TLS, trusts only the file's CA, and presents its
//! client certificate or bearer token.
//!
//! Objects travel as their JSON encoding (the kind named by apiVersion and kind), so custom
//! kinds registered on the server work with no generated code. For kinds known only at run
//! time (a manifest, a command line), the `*_json` methods take and return JSON values.
//!
//! A request the server refuses for its user's request rate (or open watches) is sent again
//! after the server's `retry-after` (and a random part of it, so that clients throttled
//! together do not come back together), a few times at most ([`RetryPolicy`]): the server's
//! limiters refuse before doing anything, so every call is safe to repeat then.
//!
//! # Layout
//! - this module: [`RemoteClient`] and its typed [`Client`] implementation.
//! - `json`: the same calls on JSON values, for kinds chosen at run time (`orchestra ctl`).
//! - [`retry`]: [`RetryPolicy`], which throttled calls are sent again and when.
//! - [`token`]: [`BearerToken`], the token sent with every call: fixed, or a token file read
//!   again as it is renewed (a pod's projected token).

mod json;
pub mod retry;
pub mod token;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use orchestra_store::StoreError;
use serde_json::Value;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::client::Client;
use crate::codec;
use crate::registry::{
    ApiError, DeleteOptions, DeleteOutcome, ListOptions, ObjectList, WatchEvent, WatchEvents,
    WatchOptions,
};
use crate::resource::Resource;
use crate::resources::Pod;
use crate::tls::Credentials;
use crate::wire::proto::{self, api_client::ApiClient};
use crate::wire::{self, Status};

pub use retry::RetryPolicy;
pub use token::{BearerToken, TokenError};

/// The largest response a client accepts (a list of many objects).
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;
/// The largest request a client sends: one object and some slack (the server refuses objects
/// over [`MAX_OBJECT_BYTES`](crate::registry::MAX_OBJECT_BYTES) with a precise error).
const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// Why a [`RemoteClient`] could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL does not parse.
    #[error("invalid API server URL {url:?}: {source}; expected http://HOST:PORT")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it was refused.
        #[source]
        source: tonic::transport::Error,
    },
    /// No connection could be made.
    #[error(
        "cannot connect to the API server at {url}: {source}; is `orchestra server` running there?"
    )]
    Connect {
        /// The URL given.
        url: String,
        /// The transport's error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The credentials cannot make a TLS configuration.
    #[error("the credentials for {url} are not usable: {message}")]
    Credentials {
        /// The server's URL.
        url: String,
        /// What is wrong.
        message: String,
    },
}

/// The API client type: the generated client through the token interceptor.
type Api = ApiClient<InterceptedService<Channel, BearerToken>>;

/// The [`Client`] over gRPC to an orchestra API server. Cheap to clone: clones share one
/// HTTP/2 connection.
#[derive(Clone, Debug)]
pub struct RemoteClient {
    api: Api,
    /// The interceptor's token too: after a 401 a token file is read again.
    token: BearerToken,
    retry: RetryPolicy,
}

impl RemoteClient {
    /// Connects to the server at `url` (`http://127.0.0.1:7443`; a bare `host:port` means
    /// `http://`).
    pub async fn connect(url: &str) -> Result<Self, ConnectError> {
        let (url, endpoint) = endpoint(url)?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| ConnectError::Connect { url, source })?;
        Ok(Self::from_channel(channel))
    }

    /// A client that connects on its first request (and reconnects after failures).
    pub fn connect_lazy(url: &str) -> Result<Self, ConnectError> {
        let (_, endpoint) = endpoint(url)?;
        Ok(Self::from_channel(endpoint.connect_lazy()))
    }

    /// Connects to `credentials.server` over TLS, verifying the server against the
    /// credentials' CA and authenticating with their client certificate or token.
    pub async fn connect_with(credentials: &Credentials) -> Result<Self, ConnectError> {
        let (url, endpoint, token) = secure_endpoint(credentials)?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| ConnectError::Connect { url, source })?;
        Ok(Self::from_parts(channel, token))
    }

    /// [`connect_with`](Self::connect_with), connecting on the first request.
    pub fn connect_lazy_with(credentials: &Credentials) -> Result<Self, ConnectError> {
        let (_, endpoint, token) = secure_endpoint(credentials)?;
        Ok(Self::from_parts(endpoint.connect_lazy(), token))
    }

    /// [`connect_with`](Self::connect_with), authenticating with `token` (for example
    /// [`BearerToken::from_file`], a pod's mounted token) in place of the credentials' token;
    /// their client certificate, if any, is presented too.
    pub async fn connect_with_token(
        credentials: &Credentials,
        token: BearerToken,
    ) -> Result<Self, ConnectError> {
        let (url, endpoint, _) = secure_endpoint(credentials)?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|source| ConnectError::Connect { url, source })?;
        Ok(Self::from_parts(channel, token))
    }

    /// A client over an existing tonic channel (for TLS or custom timeouts).
    pub fn from_channel(channel: Channel) -> Self {
        Self::from_parts(channel, BearerToken::default())
    }

    /// A client over a channel, sending `token` on every call.
    pub fn from_parts(channel: Channel, token: BearerToken) -> Self {
        RemoteClient {
            api: ApiClient::with_interceptor(channel, token.clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES)
                .max_encoding_message_size(MAX_REQUEST_BYTES),
            token,
            retry: RetryPolicy::default(),
        }
    }

    /// This client retrying throttled calls by `policy` (default [`RetryPolicy::default`]).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Sends one call (`send` makes it again on a fresh handle each time) and returns its
    /// response, retrying it after the server's `retry-after` while [`RetryPolicy::delay`]
    /// says so. `kind` names the kind the call is about, for its errors.
    async fn call<T, F, Fut>(&self, kind: &'static str, mut send: F) -> Result<T, ApiError>
    where
        F: FnMut(Api) -> Fut + Send,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>> + Send,
        T: Send,
    {
        let mut retries = 0;
        let mut reauthenticated = false;
        loop {
            let sent = self.token.current();
            let error = match send(self.api.clone()).await {
                Ok(response) => return Ok(response.into_inner()),
                // Refused for its token: a token file may hold a newer one (the old one
                // expired or was revoked); if so, the call goes once more with it.
                Err(status)
                    if status.code() == tonic::Code::Unauthenticated
                        && !reauthenticated
                        && self.token.refresh_after_refusal(sent.as_ref()) =>
                {
                    tracing::debug!(
                        "the API server refused the token; retrying with the token file's new one"
                    );
                    reauthenticated = true;
                    continue;
                }
                Err(status) => wire::from_grpc(&status, kind),
            };
            let sample: f64 = rand::Rng::random(&mut rand::rng());
            let Some(wait) = self.retry.delay(&error, retries, sample) else {
                return Err(error);
            };
            tracing::debug!(%error, ?wait, retries, "throttled by the API server; retrying");
            tokio::time::sleep(wait).await;
            retries += 1;
        }
    }

    /// Asks the server to sign a node certificate for `node` from a certificate signing
    /// request (the agent's TLS bootstrap; the client must hold the join token). Returns the
    /// certificate chain (PEM).
    pub async fn issue_node_certificate(
        &self,
        node: &str,
        csr_pem: &str,
    ) -> Result<String, ApiError> {
        let request = proto::NodeCertificateRequest {
            node_name: node.to_owned(),
            csr_pem: csr_pem.to_owned(),
        };
        let response = self
            .call("Node", |mut api| {
                let request = request.clone();
                async move { api.issue_node_certificate(request).await }
            })
            .await?;
        Ok(response.certificate_chain_pem)
    }

    /// Asks the server's mesh identity service to sign a workload certificate for
    /// `request.identity` (the client's bearer token must be that service account's).
    pub async fn issue_workload_certificate(
        &self,
        request: &crate::auth::workload::WorkloadCertificateRequest,
    ) -> Result<crate::auth::workload::WorkloadCertificate, ApiError> {
        let request = proto::WorkloadCertificateRequest {
            identity: request.identity.clone(),
            csr_der: Bytes::from(request.csr_der.clone()),
        };
        let response = self
            .call("WorkloadCertificate", |mut api| {
                let request = request.clone();
                async move { api.issue_workload_certificate(request).await }
            })
            .await?;
        Ok(crate::auth::workload::WorkloadCertificate {
            chain_der: response
                .certificate_chain_der
                .into_iter()
                .map(|der| der.to_vec())
                .collect(),
            trust_roots_der: response
                .trust_roots_der
                .into_iter()
                .map(|der| der.to_vec())
                .collect(),
            valid_until: std::time::UNIX_EPOCH
                + std::time::Duration::from_secs(response.valid_until_unix),
        })
    }
}

fn endpoint(url: &str) -> Result<(String, Endpoint), ConnectError> {
    let url = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let endpoint =
        Endpoint::from_shared(url.clone()).map_err(|source| ConnectError::InvalidUrl {
            url: url.clone(),
            source,
        })?;
    let endpoint = endpoint
        .tcp_nodelay(true)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW);
    Ok((url, endpoint))
}

/// HTTP/2 flow control of what the server sends on one stream (one watch, one response):
/// hyper's default, 2 MiB. This bounds what one watch whose caller does not read holds in
/// this process; the server cuts such a watch off once its own queue for it is full.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;

/// HTTP/2 flow control of the whole connection: the largest window HTTP/2 allows
/// (2^31 - 1 bytes), so that it is never the window that binds.
///
/// Every watch and request of a `RemoteClient` shares one connection, and h2 gives the
/// connection's window back only as callers read. With hyper's default (5 MiB), three
/// watches whose callers were behind by 2 MiB each used it up, and the server could then
/// send nothing on the connection, not even the answer to a create, until a watcher read:
/// a few slow watchers stalled every request on their connection (issue #4: the watch
/// fan-out benchmark's writer shares its connections with 250 watches each). With this
/// window, unread data fills only its own stream's window; the server's default of 1,000
/// streams per connection times [`STREAM_WINDOW`] (2,000 MiB) stays below it, so the
/// connection's window cannot run out while every stream still has room. golang.org/x/net/http2, which Kubernetes' clients
/// use, makes the same choice (1 GiB per connection, 4 MiB per stream).
const CONNECTION_WINDOW: u32 = (1 << 31) - 1;

/// A TLS endpoint for the credentials, and their token.
fn secure_endpoint(
    credentials: &Credentials,
) -> Result<(String, Endpoint, BearerToken), ConnectError> {
    let url = if credentials.server.contains("://") {
        credentials.server.clone()
    } else {
        format!("https://{}", credentials.server)
    };
    let unusable = |message: String| ConnectError::Credentials {
        url: url.clone(),
        message,
    };
    if !url.starts_with("https://") {
        return Err(unusable(format!(
            "the server URL must be https:// (TLS), not {url:?}"
        )));
    }
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&credentials.certificate_authority));
    if let (Some(cert), Some(key)) = (&credentials.client_certificate, &credentials.client_key) {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let token = match &credentials.token {
        Some(token) => BearerToken::fixed(token).map_err(|err| unusable(err.to_string()))?,
        None => BearerToken::default(),
    };
    let (url, endpoint) = endpoint(&url)?;
    let endpoint = endpoint
        .tls_config(tls)
        .map_err(|source| ConnectError::InvalidUrl {
            url: url.clone(),
            source,
        })?;
    Ok((url, endpoint, token))
}

/// The object as JSON bytes for a request.
fn encode<R: Resource>(object: &R) -> Result<Bytes, ApiError> {
    codec::to_string(object).map(Bytes::from).map_err(|err| {
        ApiError::BadRequest(format!("the {} does not encode as JSON: {err}", R::KIND))
    })
}

/// An object of kind `R` from the server's JSON bytes: straight into the type, as the
/// registry reads what it stored ([`codec::decode_stored`]); a client ignores fields it does
/// not know, so a newer server is no error. Only bytes that do not decode that way take the
/// full path, for an error that names the field.
fn decode<R: Resource>(bytes: &[u8]) -> Result<R, ApiError> {
    if let Some(object) = codec::decode_stored::<R>(bytes) {
        return Ok(object);
    }
    let broken = |err: &dyn std::fmt::Display| {
        ApiError::Internal(StoreError::Other(format!(
            "the API server sent a {} that does not decode: {err}",
            R::KIND
        )))
    };
    let value: Value = serde_json::from_slice(bytes).map_err(|err| broken(&err))?;
    codec::decode::<R>(value)
        .map(|decoded| decoded.object)
        .map_err(|err| broken(&err))
}

fn error<R: Resource>(status: tonic::Status) -> ApiError {
    wire::from_grpc(&status, R::KIND)
}

/// `RemoteClient::call` with `$request` sent by `$method`, about the kind `$kind`.
macro_rules! call {
    ($client:expr, $kind:expr, $method:ident, $request:expr) => {{
        let request = $request;
        $client
            .call($kind, |mut api| {
                let request = request.clone();
                async move { api.$method(request).await }
            })
            .await
    }};
}
pub(crate) use call;

fn target<R: Resource>(namespace: &str, name: &str) -> proto::ObjectRef {
    proto::ObjectRef {
        api_version: R::API_VERSION.to_owned(),
        kind: R::KIND.to_owned(),
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    }
}

fn object_request<R: Resource>(object: &R) -> Result<proto::ObjectRequest, ApiError> {
    Ok(proto::ObjectRequest {
        api_version: R::API_VERSION.to_owned(),
        kind: R::KIND.to_owned(),
        object: encode(object)?,
    })
}

/// One watch event from the wire; `Err` ends the stream.
fn watch_event<R: Resource>(event: proto::WatchEvent) -> Result<WatchEvent<R>, ApiError> {
    match event.r#type.as_str() {
        "ADDED" => decode(&event.object).map(|o| WatchEvent::Added(Arc::new(o))),
        "MODIFIED" => decode(&event.object).map(|o| WatchEvent::Modified(Arc::new(o))),
        "DELETED" => decode(&event.object).map(|o| WatchEvent::Deleted(Arc::new(o))),
        "BOOKMARK" => Ok(WatchEvent::Bookmark(event.resource_version)),
        "ERROR" => Err(match serde_json::from_slice::<Status>(&event.object) {
            Ok(status) => status.into_error(R::KIND),
            Err(err) => ApiError::Internal(StoreError::Other(format!(
                "the API server ended the watch with an error that does not decode: {err}"
            ))),
        }),
        other => Err(ApiError::Internal(StoreError::Other(format!(
            "the API server sent a watch event of unknown type {other:?}"
        )))),
    }
}

#[async_trait]
impl Client for RemoteClient {
    async fn get<R: Resource>(&self, namespace: &str, name: &str) -> Result<R, ApiError> {
        let response = call!(self, R::KIND, get, target::<R>(namespace, name))?;
        decode(&response.object)
    }

    async fn list<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<R>, ApiError> {
        let request = proto::ListRequest {
            api_version: R::API_VERSION.to_owned(),
            kind: R::KIND.to_owned(),
            namespace: namespace.unwrap_or_default().to_owned(),
            all_namespaces: namespace.is_none(),
            label_selector: wire::label_selector_text(&options.label_selector),
            field_selector: options.field_selector.to_string(),
            limit: options.limit as u64,
            continue_token: options.continue_token.clone(),
            resource_version: options.resource_version.clone(),
        };
        let response = call!(self, R::KIND, list, request)?;
        Ok(ObjectList {
            items: response
                .items
                .iter()
                .map(|item| decode(item))
                .collect::<Result<_, _>>()?,
            resource_version: response.resource_version,
            continue_token: response.continue_token,
        })
    }

    async fn create<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        let response = call!(self, R::KIND, create, object_request(object)?)?;
        decode(&response.object)
    }

    async fn update<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        let response = call!(self, R::KIND, update, object_request(object)?)?;
        decode(&response.object)
    }

    async fn update_status<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        let response = call!(self, R::KIND, update_status, object_request(object)?)?;
        decode(&response.object)
    }

    async fn patch<R: Resource>(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<R, ApiError> {
        let patch = serde_json::to_vec(patch)
            .map_err(|err| ApiError::BadRequest(format!("the patch does not encode: {err}")))?;
        let request = proto::PatchRequest {
            target: Some(target::<R>(namespace, name)),
            patch: Bytes::from(patch),
        };
        let response = call!(self, R::KIND, patch, request)?;
        decode(&response.object)
    }

    async fn delete<R: Resource>(
        &self,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<DeleteOutcome<R>, ApiError> {
        let request = proto::DeleteRequest {
            target: Some(target::<R>(namespace, name)),
            grace_period_seconds: options.grace_period_seconds,
            propagation_policy: options
                .propagation_policy
                .map(|policy| policy.as_str().to_owned())
                .unwrap_or_default(),
            resource_version: options.resource_version.clone(),
        };
        let response = call!(self, R::KIND, delete, request)?;
        let object = decode(&response.object)?;
        Ok(if response.deleted {
            DeleteOutcome::Deleted(object)
        } else {
            DeleteOutcome::Pending(object)
        })
    }

    async fn watch<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &WatchOptions,
    ) -> Result<WatchEvents<R>, ApiError> {
        let request = proto::WatchRequest {
            api_version: R::API_VERSION.to_owned(),
            kind: R::KIND.to_owned(),
            namespace: namespace.unwrap_or_default().to_owned(),
            all_namespaces: namespace.is_none(),
            label_selector: wire::label_selector_text(&options.label_selector),
            field_selector: options.field_selector.to_string(),
            resource_version: options.resource_version.clone(),
            bookmark_interval_ms: options
                .bookmark_interval
                .map(|interval| (interval.as_millis() as u64).max(1))
                .unwrap_or(0),
        };
        // Opening is retried; once events flow, an error ends the stream (the caller
        // re-lists or resumes, as on any watch).
        let stream = call!(self, R::KIND, watch, request)?;
        // The first error ends the stream, as on the registry's own watches.
        let events = futures::stream::unfold(Some(stream), |stream| async move {
            let mut stream = stream?;
            let item = match stream.next().await? {
                Ok(event) => watch_event::<R>(event),
                Err(status) => Err(error::<R>(status)),
            };
            let rest = item.is_ok().then_some(stream);
            Some((item, rest))
        });
        Ok(Box::pin(events))
    }

    async fn pod_logs(
        &self,
        namespace: &str,
        name: &str,
        options: &crate::logs::PodLogOptions,
    ) -> Result<crate::logs::LogStream, ApiError> {
        let request = proto::PodLogsRequest {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            container: options.container.clone().unwrap_or_default(),
            follow: options.follow,
            tail_lines: options.tail_lines,
            previous: options.previous,
            limit_bytes: options.limit_bytes,
            since_seconds: options.since_seconds,
            since_time: options
                .since_time
                .map(|t| t.to_string())
                .unwrap_or_default(),
            timestamps: options.timestamps,
        };
        let stream = call!(self, Pod::KIND, pod_logs, request)?;
        // The first error ends the stream.
        let chunks = futures::stream::unfold(Some(stream), |stream| async move {
            let mut stream = stream?;
            match stream.next().await? {
                Ok(chunk) => Some((Ok(chunk.data), Some(stream))),
                Err(status) => Some((Err(error::<Pod>(status)), None)),
            }
        });
        Ok(Box::pin(chunks))
    }

    async fn bind(&self, namespace: &str, pod: &str, node: &str) -> Result<Pod, ApiError> {
        let request = proto::BindRequest {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            node: node.to_owned(),
        };
        let response = call!(self, Pod::KIND, bind, request)?;
        decode(&response.object)
    }

    async fn request_token(
        &self,
        namespace: &str,
        name: &str,
        request: &crate::resources::TokenRequest,
    ) -> Result<crate::resources::TokenRequest, ApiError> {
        let body = serde_json::to_vec(request).map_err(|err| {
            ApiError::BadRequest(format!("the TokenRequest does not encode: {err}"))
        })?;
        let call = proto::TokenRequestCall {
            namespace: namespace.to_owned(),
            service_account: name.to_owned(),
            token_request: body.into(),
        };
        let response = call!(self, "TokenRequest", request_token, call)?;
        serde_json::from_slice(&response.object).map_err(|err| {
            ApiError::BadRequest(format!("the server's TokenRequest does not decode: {err}"))
        })
    }
}
