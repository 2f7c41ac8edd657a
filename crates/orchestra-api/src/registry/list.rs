//! get, and list: selectors applied in the registry, pages of `limit` objects that all read
//! the revision of the first page (the `continue` token carries it).

use orchestra_store::{KeyRange, RangeRequest, StoreExt, prefix_end};

use super::token::ContinueToken;
use super::{ApiError, ListOptions, Registry, decode_kv, display_name, list_prefix, object_key};
use crate::resource::Resource;
use crate::selector::{FieldSelector, Selector};

/// One page of a list.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectList<R> {
    /// The matching objects, in key order (namespace, then name).
    pub items: Vec<R>,
    /// The revision the list read: watch from here to see every later change.
    pub resource_version: String,
    /// Pass this as [`ListOptions::continue_token`] for the next page; `None` on the last.
    pub continue_token: Option<String>,
}

impl Registry {
    /// Reads one object ([`ApiError::NotFound`] if there is none). `namespace` is ignored for
    /// cluster-scoped kinds.
    pub async fn get<R: Resource>(&self, namespace: &str, name: &str) -> Result<R, ApiError> {
        let kv = self
            .store
            .get(object_key::<R>(namespace, name))
            .await?
            .ok_or_else(|| ApiError::NotFound {
                kind: R::KIND,
                name: display_name::<R>(namespace, name),
            })?;
        decode_kv(&kv)
    }

    /// Lists the objects of one namespace (or all, with `None`) that match both selectors. With
    /// a `limit`, a page holds at most that many and carries a `continue` token while more may
    /// follow; every page reads the first page's revision, and a token whose revision was
    /// compacted meanwhile is [`ApiError::Expired`].
    pub async fn list<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<R>, ApiError> {
        options
            .field_selector
            .check::<R>()
            .map_err(|err| ApiError::BadRequest(err.to_string()))?;
        if let Some(rv) = options
            .resource_version
            .as_deref()
            .filter(|rv| !rv.is_empty())
        {
            super::parse_resource_version(rv)?;
        }
        let prefix = list_prefix::<R>(namespace);
        let end = prefix_end(prefix.as_bytes());
        let (mut revision, mut start) = match options.continue_token.as_deref() {
            Some(token) => {
                let token = ContinueToken::decode(token)?;
                if !token.start_key.starts_with(prefix.as_bytes()) {
                    return Err(ApiError::BadRequest(format!(
                        "the continue token belongs to another list than {prefix}; list again without it"
                    )));
                }
                (token.revision, token.start_key)
            }
            None => (0, prefix.into_bytes()),
        };
        let mut items = Vec::new();
        loop {
            let request = RangeRequest::range(KeyRange::interval(start.clone(), end.clone()))
                .at_revision(revision)
                .with_limit(options.limit);
            let page = self.store.range(request).await?;
            if revision == 0 {
                revision = page.header_revision;
            }
            let count = page.kvs.len();
            for (index, kv) in page.kvs.iter().enumerate() {
                let object: R = decode_kv(kv)?;
                if matches(&object, &options.label_selector, &options.field_selector)? {
                    items.push(object);
                }
                let more = page.more || index + 1 < count;
                if options.limit > 0 && items.len() == options.limit && more {
                    let mut next = kv.key.to_vec();
                    next.push(0);
                    return Ok(ObjectList {
                        items,
                        resource_version: revision.to_string(),
                        continue_token: Some(
                            ContinueToken {
                                revision,
                                start_key: next,
                            }
                            .encode(),
                        ),
                    });
                }
            }
            match page.kvs.last() {
                Some(last) if page.more => {
                    start = last.key.to_vec();
                    start.push(0);
                }
                _ => {
                    return Ok(ObjectList {
                        items,
                        resource_version: revision.to_string(),
                        continue_token: None,
                    });
                }
            }
        }
    }
}

/// Whether `object` matches both selectors (an unknown field is a bad request).
pub(crate) fn matches<R: Resource>(
    object: &R,
    labels: &Selector,
    fields: &FieldSelector,
) -> Result<bool, ApiError> {
    if !labels.matches(&object.meta().labels) {
        return Ok(false);
    }
    fields
        .matches(object)
        .map_err(|err| ApiError::BadRequest(err.to_string()))
}
