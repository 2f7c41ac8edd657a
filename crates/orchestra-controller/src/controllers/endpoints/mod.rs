//! The Endpoints controller: for each Service with a selector, an Endpoints object of the same
//! name listing the ready and not-ready addresses and ports of its pods ([`plan::subsets`]),
//! rewritten whenever a pod or the service changes, reverted when someone else edits it, and
//! deleted with the service.

pub mod plan;

use std::sync::Arc;

use async_trait::async_trait;
use orchestra_api::reflector::ObjectKey;
use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{Endpoints, Pod, Service};
use orchestra_api::{ApiError, Client, ObjectMeta, Selector, SelectorError};

use crate::controller::Controller;
use crate::controllers::replica_set::{NAMESPACE_INDEX, pods_by_namespace};
use crate::informer::{Informer, SharedInformers};
use crate::reconciler::{Action, Context, Reconciler};

/// Why an Endpoints sync failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    /// The service's selector does not parse (validation should have refused it).
    #[error("service {name:?} has an invalid selector: {source}")]
    Selector {
        /// `namespace/name`.
        name: String,
        /// What is wrong.
        #[source]
        source: SelectorError,
    },
    /// Writing the Endpoints failed.
    #[error("could not write the endpoints of service {name:?}: {source}")]
    Api {
        /// `namespace/name`.
        name: String,
        /// The API's answer.
        #[source]
        source: ApiError,
    },
}

/// The Endpoints reconciler. Build a ready-to-run controller with
/// [`EndpointsController::controller`].
pub struct EndpointsController<C> {
    client: C,
    pods: Informer<Pod>,
    endpoints: Informer<Endpoints>,
}

impl<C> std::fmt::Debug for EndpointsController<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointsController")
            .finish_non_exhaustive()
    }
}

impl<C: Client> EndpointsController<C> {
    /// The reconciler, reading pods and endpoints from `informers`.
    pub fn new(informers: &SharedInformers<C>) -> Self {
        let pods = informers.informer::<Pod>();
        pods_by_namespace(&pods);
        EndpointsController {
            client: informers.client().clone(),
            pods,
            endpoints: informers.informer::<Endpoints>(),
        }
    }

    /// The controller: Services; pods (mapped to every service of their namespace whose
    /// selector matches them, before or after the change); Endpoints (mapped to the service of
    /// the same name).
    pub fn controller(informers: &SharedInformers<C>) -> Controller<Self, C> {
        let services = informers.store::<Service>();
        Controller::new(Self::new(informers), informers)
            .name("endpoints")
            .watches::<Pod, _>(move |pod| {
                services
                    .list()
                    .iter()
                    .filter(|svc| svc.metadata.namespace == pod.metadata.namespace)
                    .filter(|svc| !svc.spec.selector.is_empty())
                    .filter(|svc| {
                        Selector::from_labels(&svc.spec.selector)
                            .is_ok_and(|s| s.matches(&pod.metadata.labels))
                    })
                    .map(|svc| ObjectKey::of(svc.as_ref()))
                    .collect()
            })
            .watches::<Endpoints, _>(|endpoints| vec![ObjectKey::of(endpoints)])
    }
}

#[async_trait]
impl<C: Client> Reconciler for EndpointsController<C> {
    type Object = Service;
    type Error = EndpointsError;

    async fn reconcile(&self, service: Arc<Service>, ctx: &Context) -> Result<Action, Self::Error> {
        let key = ctx.key();
        let name = format!("{}/{}", key.namespace, key.name);
        let pods = self
            .pods
            .store()
            .by_index(NAMESPACE_INDEX, &key.namespace)
            .unwrap_or_default();
        let subsets =
            plan::subsets(&service, &pods).map_err(|source| EndpointsError::Selector {
                name: name.clone(),
                source,
            })?;
        let Some(subsets) = subsets else {
            return Ok(Action::AwaitChange);
        };
        let api = |source| EndpointsError::Api {
            name: name.clone(),
            source,
        };
        match self.endpoints.store().get(&key.namespace, &key.name) {
            Some(current) => {
                if current.subsets == subsets && current.metadata.labels == service.metadata.labels
                {
                    return Ok(Action::AwaitChange);
                }
                let mut updated = (*current).clone();
                updated.subsets = subsets;
                updated.metadata.labels.clone_from(&service.metadata.labels);
                self.client.update(&updated).await.map_err(api)?;
            }
            None => {
                let endpoints = Endpoints {
                    metadata: ObjectMeta {
                        labels: service.metadata.labels.clone(),
                        ..ObjectMeta::namespaced(&key.namespace, &key.name)
                    },
                    subsets,
                };
                match self.client.create(&endpoints).await {
                    Ok(_) => {}
                    // The cache is behind: the next event brings it, and this key again.
                    Err(ApiError::AlreadyExists { .. }) => {}
                    Err(err) => return Err(api(err)),
                }
            }
        }
        Ok(Action::AwaitChange)
    }

    async fn deleted(&self, key: &ObjectKey, _ctx: &Context) -> Result<Action, Self::Error> {
        match self
            .client
            .delete::<Endpoints>(&key.namespace, &key.name, &DeleteOptions::default())
            .await
        {
            Ok(_) => Ok(Action::AwaitChange),
            Err(err) if err.is_not_found() => Ok(Action::AwaitChange),
            Err(source) => Err(EndpointsError::Api {
                name: format!("{}/{}", key.namespace, key.name),
                source,
            }),
        }
    }
}
