//! The root CA publisher (Kubernetes' `root-ca-cert-publisher`): every namespace that is not
//! terminating holds a ConfigMap [`ROOT_CA_CONFIG_MAP`] (`kube-root-ca.crt`) whose only entry,
//! `ca.crt`, is the API server's CA bundle (PEM). Pods read it from their
//! `kube-api-access-*` volume (the ServiceAccount admission projects it next to the token at
//! `/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`) to verify the API server.
//!
//! A missing ConfigMap is created, a deleted one made again, and one whose entries were edited
//! is written back (other entries dropped, its labels and other annotations kept; an
//! `immutable` one cannot be updated, so it is deleted and made again). Other ConfigMaps are
//! never touched, and a terminating namespace gets nothing (the namespace controller is
//! emptying it, and the API refuses new objects in it).
//!
//! The CA is given to the controller (the controller manager's `--root-ca-file`, or the CA of
//! its credentials; `orchestra server` and `Cluster` pass their cluster CA). An `--insecure`
//! server has no CA, and this controller is then not started.
//!
//! The decision is [`plan`], a pure function of the namespace, the cached ConfigMap and the CA;
//! the reconciler carries it out.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use orchestra_api::reflector::ObjectKey;
use orchestra_api::registry::DeleteOptions;
use orchestra_api::resources::{ConfigMap, Namespace};
use orchestra_api::{ApiError, Client, ObjectMeta};

use super::service_account::is_terminating;
use crate::controller::Controller;
use crate::informer::{Informer, SharedInformers};
use crate::reconciler::{Action, Context, Reconciler};

/// The ConfigMap every namespace holds the CA in: the one the ServiceAccount admission
/// projects.
pub use orchestra_api::admission::service_account::ROOT_CA_CONFIG_MAP;

/// Its one entry: the CA bundle (PEM).
pub const CA_KEY: &str = "ca.crt";

/// The annotation saying what the ConfigMap is for.
pub const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";

/// Its value.
pub const DESCRIPTION: &str = "The CA bundle (PEM) that signed the API server's certificate, \
     for verifying the API server from inside the cluster (for example at \
     kubernetes.default.svc). Kept by the controller manager: edits are undone.";

/// What the namespace's `kube-root-ca.crt` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Publish {
    /// It is as it should be, or the namespace is terminating, or it is being deleted (its
    /// deletion brings the namespace back here).
    Nothing,
    /// Create this one.
    Create(ConfigMap),
    /// Write this one back (the cached object with its entries and description fixed).
    Update(ConfigMap),
    /// The cached one is immutable and wrong: delete it (at this resourceVersion), then create
    /// this one.
    Replace {
        /// The resourceVersion of the object to delete.
        resource_version: String,
        /// The object to create after.
        config_map: ConfigMap,
    },
}

/// The entries the ConfigMap must hold.
fn desired_data(ca: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(CA_KEY.to_owned(), ca.to_owned())])
}

/// Whether `config_map` holds exactly the CA and says what it is.
fn is_current(config_map: &ConfigMap, ca: &str) -> bool {
    config_map.data == desired_data(ca)
        && config_map.binary_data.is_empty()
        && config_map
            .metadata
            .annotations
            .get(DESCRIPTION_ANNOTATION)
            .is_some_and(|d| d == DESCRIPTION)
}

/// The ConfigMap as it is made in `namespace`.
pub fn desired(namespace: &str, ca: &str) -> ConfigMap {
    let mut metadata = ObjectMeta::namespaced(namespace, ROOT_CA_CONFIG_MAP);
    metadata
        .annotations
        .insert(DESCRIPTION_ANNOTATION.to_owned(), DESCRIPTION.to_owned());
    ConfigMap {
        metadata,
        data: desired_data(ca),
        ..ConfigMap::default()
    }
}

/// What `namespace`'s `kube-root-ca.crt` needs, given the cached one (`existing`) and the CA.
pub fn plan(namespace: &Namespace, existing: Option<&ConfigMap>, ca: &str) -> Publish {
    if is_terminating(namespace) {
        return Publish::Nothing;
    }
    let name = &namespace.metadata.name;
    let Some(existing) = existing else {
        return Publish::Create(desired(name, ca));
    };
    if existing.metadata.deletion_timestamp.is_some() || is_current(existing, ca) {
        return Publish::Nothing;
    }
    if existing.immutable == Some(true) {
        return Publish::Replace {
            resource_version: existing.metadata.resource_version.clone(),
            config_map: desired(name, ca),
        };
    }
    let mut fixed = existing.clone();
    fixed.data = desired_data(ca);
    fixed.binary_data.clear();
    fixed
        .metadata
        .annotations
        .insert(DESCRIPTION_ANNOTATION.to_owned(), DESCRIPTION.to_owned());
    Publish::Update(fixed)
}

/// Why a namespace's CA ConfigMap could not be written (retried with backoff).
#[derive(Debug, thiserror::Error)]
#[error("could not publish the root CA in {ROOT_CA_CONFIG_MAP} of namespace {namespace}: {source}")]
pub struct RootCaError {
    /// The namespace.
    pub namespace: String,
    /// The API's answer.
    #[source]
    pub source: ApiError,
}

/// The root CA publisher (its object is the Namespace). Build a ready-to-run controller with
/// [`RootCaPublisher::controller`].
pub struct RootCaPublisher<C> {
    client: C,
    config_maps: Informer<ConfigMap>,
    ca: Arc<str>,
}

impl<C> std::fmt::Debug for RootCaPublisher<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootCaPublisher")
            .field("ca_bytes", &self.ca.len())
            .finish_non_exhaustive()
    }
}

impl<C: Client> RootCaPublisher<C> {
    /// The reconciler publishing `ca` (PEM), reading ConfigMaps from `informers`.
    pub fn new(informers: &SharedInformers<C>, ca: impl Into<Arc<str>>) -> Self {
        RootCaPublisher {
            client: informers.client().clone(),
            config_maps: informers.informer::<ConfigMap>(),
            ca: ca.into(),
        }
    }

    /// The controller: Namespaces; ConfigMaps named `kube-root-ca.crt` (mapped to their
    /// namespace, so that an edit or a deletion is seen).
    pub fn controller(
        informers: &SharedInformers<C>,
        ca: impl Into<Arc<str>>,
    ) -> Controller<Self, C> {
        Controller::new(Self::new(informers, ca), informers)
            .name("root-ca-cert-publisher")
            .watches::<ConfigMap, _>(|config_map| {
                if config_map.metadata.name == ROOT_CA_CONFIG_MAP {
                    vec![ObjectKey {
                        namespace: String::new(),
                        name: config_map.metadata.namespace.clone(),
                    }]
                } else {
                    Vec::new()
                }
            })
    }

    async fn create(&self, config_map: &ConfigMap) -> Result<(), ApiError> {
        match self.client.create(config_map).await {
            Ok(_) => {
                tracing::info!(namespace = %config_map.metadata.namespace, "published the root CA");
                Ok(())
            }
            // The cache is behind the store: the watch brings the object, and this namespace
            // back if it is wrong.
            Err(ApiError::AlreadyExists { .. }) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

#[async_trait]
impl<C: Client> Reconciler for RootCaPublisher<C> {
    type Object = Namespace;
    type Error = RootCaError;

    async fn reconcile(
        &self,
        namespace: Arc<Namespace>,
        _ctx: &Context,
    ) -> Result<Action, Self::Error> {
        let name = &namespace.metadata.name;
        let existing = self.config_maps.store().get(name, ROOT_CA_CONFIG_MAP);
        let result = match plan(&namespace, existing.as_deref(), &self.ca) {
            Publish::Nothing => Ok(()),
            Publish::Create(config_map) => self.create(&config_map).await,
            Publish::Update(config_map) => match self.client.update(&config_map).await {
                Ok(_) => {
                    tracing::info!(namespace = %name, "restored the root CA ConfigMap");
                    Ok(())
                }
                // A newer version is on its way through the watch, which requeues the
                // namespace; deleted meanwhile: its deletion does.
                Err(ApiError::Conflict(_)) => Ok(()),
                Err(err) => Err(err),
            },
            Publish::Replace {
                resource_version,
                config_map,
            } => {
                let options = DeleteOptions {
                    resource_version: Some(resource_version),
                    ..DeleteOptions::default()
                };
                match self
                    .client
                    .delete::<ConfigMap>(name, ROOT_CA_CONFIG_MAP, &options)
                    .await
                {
                    Ok(_) => self.create(&config_map).await,
                    Err(ApiError::Conflict(_)) => Ok(()),
                    Err(err) if err.is_not_found() => self.create(&config_map).await,
                    Err(err) => Err(err),
                }
            }
        };
        match result {
            Ok(()) => Ok(Action::await_change()),
            // The namespace went meanwhile (or began terminating, which refuses creates: the
            // retry finds it terminating).
            Err(err) if err.is_not_found() => Ok(Action::await_change()),
            Err(source) => Err(RootCaError {
                namespace: name.clone(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::resources::{ByteString, NamespacePhase, NamespaceStatus};

    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    fn namespace(name: &str) -> Namespace {
        Namespace {
            metadata: ObjectMeta::named(name),
            ..Namespace::default()
        }
    }

    #[test]
    fn a_namespace_without_it_gets_it() {
        let Publish::Create(made) = plan(&namespace("shop"), None, CA) else {
            panic!("expected a create");
        };
        assert_eq!(made.metadata.namespace, "shop");
        assert_eq!(made.metadata.name, "kube-root-ca.crt");
        assert_eq!(made.data, BTreeMap::from([("ca.crt".into(), CA.into())]));
        assert!(made.binary_data.is_empty());
        assert_eq!(
            made.metadata
                .annotations
                .get(DESCRIPTION_ANNOTATION)
                .map(String::as_str),
            Some(DESCRIPTION)
        );
        // As made, it needs nothing more.
        assert_eq!(plan(&namespace("shop"), Some(&made), CA), Publish::Nothing);
    }

    #[test]
    fn an_edited_one_is_written_back_keeping_its_metadata() {
        let mut edited = desired("shop", CA);
        edited.metadata.resource_version = "7".into();
        edited.metadata.labels.insert("team".into(), "a".into());
        edited
            .metadata
            .annotations
            .insert("note".into(), "x".into());
        edited.data.insert("ca.crt".into(), "not a CA".into());
        edited.data.insert("extra".into(), "y".into());
        edited
            .binary_data
            .insert("blob".into(), ByteString(vec![1]));
        let Publish::Update(fixed) = plan(&namespace("shop"), Some(&edited), CA) else {
            panic!("expected an update");
        };
        assert_eq!(fixed.data, desired_data(CA));
        assert!(fixed.binary_data.is_empty());
        assert_eq!(fixed.metadata.resource_version, "7", "a conditional write");
        assert_eq!(
            fixed.metadata.labels.get("team").map(String::as_str),
            Some("a")
        );
        assert_eq!(
            fixed.metadata.annotations.get("note").map(String::as_str),
            Some("x")
        );

        // A description removed is put back too.
        let mut undescribed = desired("shop", CA);
        undescribed.metadata.annotations.clear();
        assert!(matches!(
            plan(&namespace("shop"), Some(&undescribed), CA),
            Publish::Update(_)
        ));
        // A new CA (the controller restarted with another bundle) replaces the old one.
        assert!(matches!(
            plan(&namespace("shop"), Some(&desired("shop", "old")), CA),
            Publish::Update(fixed) if fixed.data == desired_data(CA)
        ));
    }

    #[test]
    fn an_immutable_wrong_one_is_replaced() {
        let mut frozen = desired("shop", "old");
        frozen.immutable = Some(true);
        frozen.metadata.resource_version = "9".into();
        assert_eq!(
            plan(&namespace("shop"), Some(&frozen), CA),
            Publish::Replace {
                resource_version: "9".into(),
                config_map: desired("shop", CA),
            }
        );
        // Immutable and right: left alone.
        let mut right = desired("shop", CA);
        right.immutable = Some(true);
        assert_eq!(plan(&namespace("shop"), Some(&right), CA), Publish::Nothing);
    }

    #[test]
    fn terminating_namespaces_and_deleting_config_maps_get_nothing() {
        let mut marked = namespace("shop");
        marked.metadata.deletion_timestamp = Some(orchestra_api::meta::Time::now());
        assert_eq!(plan(&marked, None, CA), Publish::Nothing);
        let mut terminating = namespace("shop");
        terminating.status = Some(NamespaceStatus {
            phase: Some(NamespacePhase::Terminating),
        });
        assert_eq!(
            plan(&terminating, Some(&desired("shop", "old")), CA),
            Publish::Nothing
        );
        let mut going = desired("shop", "old");
        going.metadata.deletion_timestamp = Some(orchestra_api::meta::Time::now());
        assert_eq!(plan(&namespace("shop"), Some(&going), CA), Publish::Nothing);
    }
}
