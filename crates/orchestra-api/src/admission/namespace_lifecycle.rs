//! [`NamespaceLifecycle`]: objects are created only in namespaces that exist and are not
//! terminating; the system namespaces (`default`, `kube-system`, `kube-node-lease`) exist
//! from the start and cannot be deleted.

use async_trait::async_trait;

use super::{AdmissionPlugin, AdmissionRequest, Operation};
use crate::meta::ObjectMeta;
use crate::registry::{ApiError, Registry};
use crate::resource::Resource;
use crate::resources::{Namespace, SYSTEM_NAMESPACES};

/// Kubernetes' `NamespaceLifecycle` admission controller. See the [module docs](self).
///
/// A system namespace counts as existing even before it is stored, so a registry used
/// without [`Registry::initialize`] (a test over `LocalClient`) accepts objects in `default`.
#[derive(Clone, Copy, Debug, Default)]
pub struct NamespaceLifecycle;

#[async_trait]
impl AdmissionPlugin for NamespaceLifecycle {
    fn name(&self) -> &'static str {
        "NamespaceLifecycle"
    }

    async fn validate(&self, request: &AdmissionRequest<'_>) -> Result<(), ApiError> {
        let info = request.kind();
        match request.operation() {
            Operation::Delete if info == Namespace::type_info() => {
                if SYSTEM_NAMESPACES.contains(&request.name()) {
                    return Err(ApiError::Forbidden(format!(
                        "namespace {:?} is a system namespace and cannot be deleted",
                        request.name()
                    )));
                }
                Ok(())
            }
            Operation::Create if info.namespaced => {
                let namespace = request.namespace();
                match request.registry().get::<Namespace>("", namespace).await {
                    Ok(found) if found.metadata.deletion_timestamp.is_some() => {
                        Err(ApiError::Forbidden(format!(
                            "{} {:?} is forbidden: unable to create new content in namespace {namespace} because it is being terminated",
                            info.kind,
                            request.name()
                        )))
                    }
                    Ok(_) => Ok(()),
                    Err(err) if err.is_not_found() => {
                        if SYSTEM_NAMESPACES.contains(&namespace) {
                            return Ok(());
                        }
                        Err(ApiError::Forbidden(format!(
                            "{} {:?} is forbidden: namespace {namespace} does not exist; create it first",
                            info.kind,
                            request.name()
                        )))
                    }
                    Err(err) => Err(err),
                }
            }
            _ => Ok(()),
        }
    }

    async fn initialize(&self, registry: &Registry) -> Result<(), ApiError> {
        for name in SYSTEM_NAMESPACES {
            let namespace = Namespace {
                metadata: ObjectMeta::named(name),
                ..Namespace::default()
            };
            match registry.create(namespace).await {
                Ok(_) => {}
                Err(ApiError::AlreadyExists { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(())
    }
}
