//! The `pods/log` subresource on both protocols: `GET
//! /api/v1/namespaces/{ns}/pods/{name}/log?container=&follow=&tailLines=&previous=` (plain
//! text) and the gRPC `PodLogs` stream. Authorization (`get` on `pods/log`) happens before;
//! here the pod and its node are looked up and the node agent's stream is relayed chunk by
//! chunk, until it ends, the reader goes away or the server shuts down.

use std::convert::Infallible;
use std::sync::Arc;

use futures::StreamExt;
use http::{HeaderValue, Response, header};
use http_body_util::StreamBody;
use hyper::body::Frame;

use super::{Body, State};
use crate::LocalClient;
use crate::logs::{self, HttpNodeConnector, LogStream, NodeConnector, PodLogOptions};
use crate::registry::ApiError;

/// The connector the server reaches agents with: the configured one, else plain HTTP.
fn connector(state: &State) -> Arc<dyn NodeConnector> {
    state
        .options
        .node_connector
        .clone()
        .unwrap_or_else(|| Arc::new(HttpNodeConnector::plain()))
}

/// Opens the log stream of `namespace/name`, ending when the server shuts down.
pub(crate) async fn open(
    state: &State,
    namespace: &str,
    name: &str,
    options: &PodLogOptions,
) -> Result<LogStream, ApiError> {
    let client = LocalClient::from_registry(state.registry.registry().clone());
    let connector = connector(state);
    let stream = logs::pod_logs(&client, connector.as_ref(), namespace, name, options).await?;
    Ok(Box::pin(stream.take_until(state.shutdown_signal())))
}

/// The REST answer: the log as `text/plain`, streamed. An error after the first byte ends the
/// body (the status line is sent by then); it is logged.
pub(crate) async fn rest(
    state: &State,
    namespace: &str,
    name: &str,
    query: &std::collections::BTreeMap<String, String>,
) -> Result<Response<Body>, ApiError> {
    let options = PodLogOptions::from_query(query).map_err(ApiError::BadRequest)?;
    let stream = open(state, namespace, name, &options).await?;
    let pod = format!("{namespace}/{name}");
    let frames = stream
        .take_while(move |chunk| {
            if let Err(error) = chunk {
                tracing::warn!(pod = %pod, %error, "relaying a container log failed");
            }
            std::future::ready(chunk.is_ok())
        })
        .filter_map(|chunk| std::future::ready(chunk.ok()))
        .map(|data| Ok::<_, Infallible>(Frame::data(data)));
    let mut response = Response::new(Body::new(StreamBody::new(frames)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}
