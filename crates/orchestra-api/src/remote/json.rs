//! [`RemoteClient`]'s calls on JSON values, for kinds chosen at run time by `apiVersion` and
//! `kind` (what `orchestra ctl` needs: a manifest's objects, `get KIND` from a command line).
//! The server checks, defaults and validates each object as its registered kind.

use bytes::Bytes;
use serde_json::Value;

use super::{RemoteClient, call};
use crate::registry::{ApiError, ListOptions, ObjectList};
use crate::wire::{self, proto};

/// The kind an error names when the kind is chosen at run time: the wire's, when it is a
/// built-in one, else none (the error's message still comes from the server's).
const RUNTIME_KIND: &str = "";

fn to_value(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::Internal(orchestra_store::StoreError::Other(format!(
            "the API server sent an object that is not JSON: {err}"
        )))
    })
}

/// The `apiVersion` and `kind` of an object, or a bad request.
fn type_of(object: &Value) -> Result<(String, String), ApiError> {
    let field = |name: &str| {
        object
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "{name}: Required value: every object must set apiVersion and kind"
                ))
            })
    };
    Ok((field("apiVersion")?, field("kind")?))
}

fn object_request(object: &Value) -> Result<proto::ObjectRequest, ApiError> {
    let (api_version, kind) = type_of(object)?;
    let bytes = serde_json::to_vec(object)
        .map_err(|err| ApiError::BadRequest(format!("the object does not encode: {err}")))?;
    Ok(proto::ObjectRequest {
        api_version,
        kind,
        object: Bytes::from(bytes),
    })
}

impl RemoteClient {
    /// Reads one object of the kind `api_version`/`kind`.
    pub async fn get_json(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, ApiError> {
        let request = proto::ObjectRef {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        let response = call!(self, RUNTIME_KIND, get, request)?;
        to_value(&response.object)
    }

    /// Lists objects of the kind `api_version`/`kind` in one namespace (`None`: all).
    pub async fn list_json(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<Value>, ApiError> {
        let request = proto::ListRequest {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.unwrap_or_default().to_owned(),
            all_namespaces: namespace.is_none(),
            label_selector: wire::label_selector_text(&options.label_selector),
            field_selector: options.field_selector.to_string(),
            limit: options.limit as u64,
            continue_token: options.continue_token.clone(),
            resource_version: options.resource_version.clone(),
        };
        let response = call!(self, RUNTIME_KIND, list, request)?;
        Ok(ObjectList {
            items: response
                .items
                .iter()
                .map(|item| to_value(item))
                .collect::<Result<_, _>>()?,
            resource_version: response.resource_version,
            continue_token: response.continue_token,
        })
    }

    /// Creates an object of the kind its `apiVersion` and `kind` name.
    pub async fn create_json(&self, object: &Value) -> Result<Value, ApiError> {
        let response = call!(self, RUNTIME_KIND, create, object_request(object)?)?;
        to_value(&response.object)
    }

    /// Updates an object (spec and metadata; a set resourceVersion is a precondition).
    pub async fn update_json(&self, object: &Value) -> Result<Value, ApiError> {
        let response = call!(self, RUNTIME_KIND, update, object_request(object)?)?;
        to_value(&response.object)
    }
}
