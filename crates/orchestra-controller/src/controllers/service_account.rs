//! The ServiceAccount controller: every namespace has a ServiceAccount named `default`
//! ([`DEFAULT_SERVICE_ACCOUNT`]), the account a pod that names none runs as (the API server's
//! ServiceAccount admission gives such pods `default`, and refuses pods naming an account
//! that does not exist). A `default` account that is deleted is made again; a terminating
//! namespace is left alone (the namespace controller is emptying it, and the API refuses new
//! objects in it anyway). As Kubernetes' `serviceaccount` controller does.
//!
//! The decision is [`missing_accounts`], a pure function of the namespace and the accounts
//! the cache holds; the reconciler creates what it returns.

use std::sync::Arc;

use async_trait::async_trait;
use orchestra_api::reflector::ObjectKey;
use orchestra_api::resources::{Namespace, NamespacePhase, ServiceAccount};
use orchestra_api::{ApiError, Client, ObjectMeta};

use crate::controller::Controller;
use crate::informer::{Informer, SharedInformers};
use crate::reconciler::{Action, Context, Reconciler};

/// The ServiceAccount every namespace has.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// The accounts every namespace must have.
pub const ACCOUNTS_TO_ENSURE: &[&str] = &[DEFAULT_SERVICE_ACCOUNT];

/// Whether `namespace` is being deleted (marked, or its phase `Terminating`).
pub fn is_terminating(namespace: &Namespace) -> bool {
    namespace.metadata.deletion_timestamp.is_some()
        || namespace.status.as_ref().and_then(|s| s.phase) == Some(NamespacePhase::Terminating)
}

/// The ServiceAccounts to create in `namespace`: those of [`ACCOUNTS_TO_ENSURE`] for which
/// `exists` says no; none in a terminating namespace.
pub fn missing_accounts(
    namespace: &Namespace,
    exists: impl Fn(&str) -> bool,
) -> Vec<ServiceAccount> {
    if is_terminating(namespace) {
        return Vec::new();
    }
    ACCOUNTS_TO_ENSURE
        .iter()
        .filter(|name| !exists(name))
        .map(|name| ServiceAccount {
            metadata: ObjectMeta::namespaced(&namespace.metadata.name, *name),
            ..ServiceAccount::default()
        })
        .collect()
}

/// Why a namespace's accounts could not be made (retried with backoff).
#[derive(Debug, thiserror::Error)]
#[error("could not create service account {namespace}/{name}: {source}")]
pub struct ServiceAccountError {
    /// The namespace.
    pub namespace: String,
    /// The account.
    pub name: String,
    /// The API's answer.
    #[source]
    pub source: ApiError,
}

/// The ServiceAccount reconciler (its object is the Namespace). Build a ready-to-run
/// controller with [`ServiceAccountController::controller`].
pub struct ServiceAccountController<C> {
    client: C,
    accounts: Informer<ServiceAccount>,
}

impl<C> std::fmt::Debug for ServiceAccountController<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountController")
            .finish_non_exhaustive()
    }
}

impl<C: Client> ServiceAccountController<C> {
    /// The reconciler, reading ServiceAccounts from `informers`.
    pub fn new(informers: &SharedInformers<C>) -> Self {
        ServiceAccountController {
            client: informers.client().clone(),
            accounts: informers.informer::<ServiceAccount>(),
        }
    }

    /// The controller: Namespaces; ServiceAccounts (mapped to their namespace, so that a
    /// deleted `default` is seen).
    pub fn controller(informers: &SharedInformers<C>) -> Controller<Self, C> {
        Controller::new(Self::new(informers), informers)
            .name("serviceaccount")
            .watches::<ServiceAccount, _>(|account| {
                if ACCOUNTS_TO_ENSURE.contains(&account.metadata.name.as_str()) {
                    vec![ObjectKey {
                        namespace: String::new(),
                        name: account.metadata.namespace.clone(),
                    }]
                } else {
                    Vec::new()
                }
            })
    }
}

#[async_trait]
impl<C: Client> Reconciler for ServiceAccountController<C> {
    type Object = Namespace;
    type Error = ServiceAccountError;

    async fn reconcile(
        &self,
        namespace: Arc<Namespace>,
        _ctx: &Context,
    ) -> Result<Action, Self::Error> {
        let store = self.accounts.store();
        let name = &namespace.metadata.name;
        for account in missing_accounts(&namespace, |account| store.get(name, account).is_some()) {
            match self.client.create(&account).await {
                Ok(_) => {
                    tracing::info!(namespace = %name, account = %account.metadata.name, "created service account");
                }
                // The cache is behind the store: it is there.
                Err(ApiError::AlreadyExists { .. }) => {}
                // The namespace went meanwhile: nothing to do. (A namespace that began
                // terminating refuses the create; the retry then finds it terminating.)
                Err(err) if err.is_not_found() => {}
                Err(source) => {
                    return Err(ServiceAccountError {
                        namespace: name.clone(),
                        name: account.metadata.name.clone(),
                        source,
                    });
                }
            }
        }
        Ok(Action::await_change())
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::resources::NamespaceStatus;

    use super::*;

    fn namespace(name: &str) -> Namespace {
        Namespace {
            metadata: ObjectMeta::named(name),
            ..Namespace::default()
        }
    }

    #[test]
    fn a_namespace_without_default_gets_one() {
        let missing = missing_accounts(&namespace("shop"), |_| false);
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].metadata.namespace, "shop");
        assert_eq!(missing[0].metadata.name, "default");
        assert!(missing_accounts(&namespace("shop"), |name| name == "default").is_empty());
    }

    #[test]
    fn a_terminating_namespace_gets_nothing() {
        let mut marked = namespace("shop");
        marked.metadata.deletion_timestamp = Some(orchestra_api::meta::Time::now());
        assert!(missing_accounts(&marked, |_| false).is_empty());
        let mut terminating = namespace("shop");
        terminating.status = Some(NamespaceStatus {
            phase: Some(NamespacePhase::Terminating),
        });
        assert!(missing_accounts(&terminating, |_| false).is_empty());
    }
}
