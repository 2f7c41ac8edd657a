//! [`AuthorizedClient`]: a [`Client`] that acts as one user. Every call is authorized, and
//! audited, as the API server would authorize the same request before it reaches the inner
//! client, so that a component running inside the server's process (the scheduler, the
//! controllers, a node agent of `orchestra cluster`) has its own identity and only the
//! rights its roles give it, exactly as it would over the network.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::enforce::enforce;
use super::{AuditSink, Authorizer, NAME_FIELD, RequestAttributes, UserInfo, Verb};
use crate::client::Client;
use crate::registry::{
    ApiError, DeleteOptions, DeleteOutcome, ListOptions, ObjectList, WatchEvents, WatchOptions,
};
use crate::resource::Resource;
use crate::resources::{Pod, ServiceAccount, TokenRequest};

/// A [`Client`] acting as `user`; see the [module docs](self). Cheap to clone.
#[derive(Clone, Debug)]
pub struct AuthorizedClient<C> {
    inner: C,
    user: Arc<UserInfo>,
    authorizer: Arc<dyn Authorizer>,
    audit: Option<Arc<dyn AuditSink>>,
}

impl<C: Client> AuthorizedClient<C> {
    /// `inner`, acting as `user`: each call is asked of `authorizer` and recorded in `audit`
    /// (writes and denials) first.
    pub fn new(
        inner: C,
        user: UserInfo,
        authorizer: Arc<dyn Authorizer>,
        audit: Option<Arc<dyn AuditSink>>,
    ) -> Self {
        AuthorizedClient {
            inner,
            user: Arc::new(user),
            authorizer,
            audit,
        }
    }

    /// The user this client acts as.
    pub fn user(&self) -> &UserInfo {
        &self.user
    }

    /// The client underneath.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// Authorizes `verb` on `R`'s objects (a subresource, a namespace, a name).
    fn check<R: Resource>(
        &self,
        verb: Verb,
        subresource: Option<&str>,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Result<(), ApiError> {
        let info = R::type_info();
        let request = RequestAttributes {
            user: (*self.user).clone(),
            verb,
            api_group: info
                .api_version
                .rsplit_once('/')
                .map_or("", |(group, _)| group)
                .to_owned(),
            resource: info.plural.to_owned(),
            subresource: subresource.map(str::to_owned),
            namespace: namespace
                .filter(|ns| info.namespaced && !ns.is_empty())
                .map(str::to_owned),
            name: name.filter(|n| !n.is_empty()).map(str::to_owned),
        };
        let decision = self.authorizer.authorize(&request);
        enforce(decision, request, self.audit.as_deref())
    }
}

#[async_trait]
impl<C: Client> Client for AuthorizedClient<C> {
    async fn get<R: Resource>(&self, namespace: &str, name: &str) -> Result<R, ApiError> {
        self.check::<R>(Verb::Get, None, Some(namespace), Some(name))?;
        self.inner.get(namespace, name).await
    }

    async fn list<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<R>, ApiError> {
        let name = options.field_selector.requires_exact_match(NAME_FIELD);
        self.check::<R>(Verb::List, None, namespace, name)?;
        self.inner.list(namespace, options).await
    }

    async fn list_shared<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &ListOptions,
    ) -> Result<ObjectList<std::sync::Arc<R>>, ApiError> {
        let name = options.field_selector.requires_exact_match(NAME_FIELD);
        self.check::<R>(Verb::List, None, namespace, name)?;
        self.inner.list_shared(namespace, options).await
    }

    async fn create<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        let meta = object.meta();
        // A create names its object: the Node authorizer tells a node's own Node and Lease
        // by the name.
        self.check::<R>(Verb::Create, None, Some(&meta.namespace), Some(&meta.name))?;
        self.inner.create(object).await
    }

    async fn update<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        let meta = object.meta();
        self.check::<R>(Verb::Update, None, Some(&meta.namespace), Some(&meta.name))?;
        self.inner.update(object).await
    }

    async fn update_status<R: Resource>(&self, object: &R) -> Result<R, ApiError> {
        let meta = object.meta();
        self.check::<R>(
            Verb::Update,
            Some("status"),
            Some(&meta.namespace),
            Some(&meta.name),
        )?;
        self.inner.update_status(object).await
    }

    async fn patch<R: Resource>(
        &self,
        namespace: &str,
        name: &str,
        patch: &Value,
    ) -> Result<R, ApiError> {
        self.check::<R>(Verb::Patch, None, Some(namespace), Some(name))?;
        self.inner.patch(namespace, name, patch).await
    }

    async fn delete<R: Resource>(
        &self,
        namespace: &str,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<DeleteOutcome<R>, ApiError> {
        self.check::<R>(Verb::Delete, None, Some(namespace), Some(name))?;
        self.inner.delete(namespace, name, options).await
    }

    async fn watch<R: Resource>(
        &self,
        namespace: Option<&str>,
        options: &WatchOptions,
    ) -> Result<WatchEvents<R>, ApiError> {
        let name = options.field_selector.requires_exact_match(NAME_FIELD);
        self.check::<R>(Verb::Watch, None, namespace, name)?;
        self.inner.watch(namespace, options).await
    }

    async fn bind(&self, namespace: &str, pod: &str, node: &str) -> Result<Pod, ApiError> {
        self.check::<Pod>(Verb::Create, Some("binding"), Some(namespace), Some(pod))?;
        self.inner.bind(namespace, pod, node).await
    }

    async fn request_token(
        &self,
        namespace: &str,
        name: &str,
        request: &TokenRequest,
    ) -> Result<TokenRequest, ApiError> {
        self.check::<ServiceAccount>(Verb::Create, Some("token"), Some(namespace), Some(name))?;
        super::token::restrict_node(&self.inner, &self.user, namespace, name, request).await?;
        self.inner.request_token(namespace, name, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LocalClient;
    use crate::auth::audit::MemoryAuditSink;
    use crate::auth::{Decision, GROUP_AUTHENTICATED};
    use crate::resources::Namespace;
    use orchestra_store::MemStore;

    /// Lets `reader` get and list, nothing else.
    #[derive(Debug)]
    struct ReadOnly;

    impl Authorizer for ReadOnly {
        fn authorize(&self, request: &RequestAttributes) -> Decision {
            if matches!(request.verb, Verb::Get | Verb::List | Verb::Watch) {
                Decision::Allow
            } else {
                Decision::NoOpinion
            }
        }
    }

    #[tokio::test]
    async fn calls_are_authorized_as_the_user_and_writes_audited() {
        let local = LocalClient::new(MemStore::new());
        let admin_made = local
            .create(&Namespace {
                metadata: crate::ObjectMeta::named("shop"),
                ..Namespace::default()
            })
            .await
            .unwrap();
        let audit = Arc::new(MemoryAuditSink::default());
        let reader = AuthorizedClient::new(
            local.clone(),
            UserInfo::new("reader", [GROUP_AUTHENTICATED]),
            Arc::new(ReadOnly),
            Some(audit.clone()),
        );
        let read: Namespace = reader.get("", "shop").await.unwrap();
        assert_eq!(read.metadata.uid, admin_made.metadata.uid);
        let refused = reader
            .delete::<Namespace>("", "shop", &DeleteOptions::default())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), 403);
        assert!(
            refused
                .to_string()
                .starts_with("user \"reader\" cannot delete resource \"namespaces\" named \"shop\" at the cluster scope"),
            "{refused}"
        );
        // Refused before it reached the store.
        let _: Namespace = local.get("", "shop").await.unwrap();
        let entries = audit.entries();
        assert_eq!(entries.len(), 1, "reads are not audited, the denial is");
        assert_eq!(entries[0].request.user.name, "reader");
        assert!(!entries[0].allowed);
        // A pod binding is a create on pods/binding.
        let bind = reader.bind("shop", "web", "n1").await.unwrap_err();
        assert!(
            bind.to_string()
                .contains("cannot create resource \"pods/binding\" named \"web\""),
            "{bind}"
        );
    }
}
