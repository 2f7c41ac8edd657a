//! [`ServiceAccountAdmission`]: Kubernetes' `ServiceAccount` admission controller. On pod
//! creation:
//!
//! - a pod that names no account runs as `default` (`spec.serviceAccountName` is set);
//! - a pod whose account does not exist is refused (403, naming `spec.serviceAccountName`).
//!   Each namespace's `default` account is made by the controller manager's ServiceAccount
//!   controller just after the namespace: a pod asking for `default` waits for it a little
//!   (30 reads, 100 ms apart; Kubernetes reads 10 times, 100 to 200 ms apart, and a busy
//!   machine may start the controllers slower) before it is refused;
//! - unless `automountServiceAccountToken: false` (on the pod, or else on the account), every
//!   container and init container mounts, read-only at [`TOKEN_MOUNT_PATH`], a projected
//!   volume `kube-api-access-XXXXX` ([`api_access_volume`]): the pod's bound token
//!   (`token`, [`TOKEN_EXPIRATION_SECONDS`]), the cluster CA (`ca.crt`, from the ConfigMap
//!   [`ROOT_CA_CONFIG_MAP`] when there is one; see below) and the pod's `namespace`. A
//!   container that mounts something at that path already is left as it is.
//!
//! The CA: the controller manager's root CA publisher (orchestra-controller's
//! `controllers::root_ca`, as Kubernetes' `root-ca-cert-publisher`) keeps `kube-root-ca.crt` in
//! every namespace. A server without TLS has no CA and publishes none, so the projection is
//! marked `optional` (Kubernetes requires it): the file appears once the ConfigMap exists, and
//! its absence never holds a pod back.
//!
//! The decisions are pure functions ([`should_automount`], [`mount_api_access`]); the plug-in
//! only reads the account.

use std::time::Duration;

use async_trait::async_trait;

use super::{AdmissionPlugin, AdmissionRequest, Operation};
use crate::registry::{ApiError, Registry};
use crate::resources::{
    ConfigMapProjection, DownwardApiProjection, DownwardApiVolumeFile, KeyToPath,
    ObjectFieldSelector, Pod, ProjectedVolumeSource, ServiceAccount, ServiceAccountTokenProjection,
    Volume, VolumeMount, VolumeProjection,
};

/// The account of a pod that names none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Where containers find the token, the CA and the namespace.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The prefix of the token volume's name (five random characters follow).
pub const API_ACCESS_VOLUME_PREFIX: &str = "kube-api-access-";
/// The lifetime asked for the mounted token (Kubernetes' value: an hour and 7 seconds, so
/// that the token is recognisably one of these).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// The ConfigMap holding the cluster's CA certificate under `ca.crt`.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// How often a pod asking for `default` reads it before it is refused, and how long apart.
const DEFAULT_ACCOUNT_READS: u32 = 30;
const DEFAULT_ACCOUNT_INTERVAL: Duration = Duration::from_millis(100);

/// Whether `pod`, running as `account`, gets the token volume: the pod's
/// `automountServiceAccountToken` if set, else the account's, else yes.
pub fn should_automount(pod: &Pod, account: &ServiceAccount) -> bool {
    pod.spec
        .automount_service_account_token
        .or(account.automount_service_account_token)
        .unwrap_or(true)
}

/// The API server's CA bundle as `ca.crt`, from [`ROOT_CA_CONFIG_MAP`]; left out while
/// there is none (a server without TLS publishes none).
pub fn root_ca_projection() -> VolumeProjection {
    VolumeProjection {
        config_map: Some(ConfigMapProjection {
            name: ROOT_CA_CONFIG_MAP.into(),
            items: vec![KeyToPath {
                key: "ca.crt".into(),
                path: "ca.crt".into(),
                mode: None,
            }],
            optional: Some(true),
        }),
        ..VolumeProjection::default()
    }
}

/// The projected volume `name`: the token, the CA and the namespace (see the
/// [module docs](self)).
pub fn api_access_volume(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        projected: Some(ProjectedVolumeSource {
            sources: vec![
                VolumeProjection {
                    service_account_token: Some(ServiceAccountTokenProjection {
                        audience: String::new(),
                        expiration_seconds: Some(TOKEN_EXPIRATION_SECONDS),
                        path: "token".into(),
                    }),
                    ..VolumeProjection::default()
                },
                root_ca_projection(),
                VolumeProjection {
                    downward_api: Some(DownwardApiProjection {
                        items: vec![DownwardApiVolumeFile {
                            path: "namespace".into(),
                            field_ref: Some(ObjectFieldSelector {
                                api_version: "v1".into(),
                                field_path: "metadata.namespace".into(),
                            }),
                            ..DownwardApiVolumeFile::default()
                        }],
                    }),
                    ..VolumeProjection::default()
                },
            ],
            default_mode: Some(crate::resources::DEFAULT_VOLUME_MODE),
        }),
        ..Volume::default()
    }
}

/// Mounts the token volume at [`TOKEN_MOUNT_PATH`] in every container and init container
/// that mounts nothing there yet, adding the volume (named by `new_name`, unless the pod has
/// a `kube-api-access-` volume already) when one of them needs it.
pub fn mount_api_access(pod: &mut Pod, new_name: impl FnOnce() -> String) {
    let mounted = |c: &crate::resources::Container| {
        c.volume_mounts
            .iter()
            .any(|m| m.mount_path == TOKEN_MOUNT_PATH)
    };
    let spec = &mut pod.spec;
    if spec
        .init_containers
        .iter()
        .chain(&spec.containers)
        .all(mounted)
    {
        return;
    }
    let name = match spec
        .volumes
        .iter()
        .find(|v| v.name.starts_with(API_ACCESS_VOLUME_PREFIX))
    {
        Some(existing) => existing.name.clone(),
        None => {
            let name = new_name();
            spec.volumes.push(api_access_volume(&name));
            name
        }
    };
    for container in spec
        .init_containers
        .iter_mut()
        .chain(spec.containers.iter_mut())
    {
        if !mounted(container) {
            container.volume_mounts.push(VolumeMount {
                name: name.clone(),
                mount_path: TOKEN_MOUNT_PATH.into(),
                read_only: true,
                ..VolumeMount::default()
            });
        }
    }
}

/// Kubernetes' `ServiceAccount` admission controller (see the [module docs](self)).
#[derive(Clone, Copy, Debug)]
pub struct ServiceAccountAdmission {
    /// Whether pods get the token volume (Kubernetes' `MountServiceAccountToken`; off where
    /// the server issues no tokens).
    pub mount_tokens: bool,
}

impl Default for ServiceAccountAdmission {
    fn default() -> Self {
        ServiceAccountAdmission { mount_tokens: true }
    }
}

/// The account `namespace/name`; for `default`, read again a few times while it is missing
/// (its controller makes it just after the namespace). `None`: it does not exist.
async fn find_account(
    registry: &Registry,
    namespace: &str,
    name: &str,
) -> Result<Option<ServiceAccount>, ApiError> {
    let reads = if name == DEFAULT_SERVICE_ACCOUNT {
        DEFAULT_ACCOUNT_READS
    } else {
        1
    };
    for read in 1..=reads {
        match registry.get::<ServiceAccount>(namespace, name).await {
            Ok(account) => return Ok(Some(account)),
            Err(err) if err.is_not_found() => {
                if read < reads {
                    tokio::time::sleep(DEFAULT_ACCOUNT_INTERVAL).await;
                }
            }
            Err(err) => return Err(err),
        }
    }
    Ok(None)
}

/// Whether `namespace` exists and is not terminating (else NamespaceLifecycle refuses the
/// pod, and waiting for its `default` account is pointless).
/// A system namespace counts as existing before it is stored, as NamespaceLifecycle has it.
async fn namespace_active(registry: &Registry, namespace: &str) -> bool {
    match registry
        .get::<crate::resources::Namespace>("", namespace)
        .await
    {
        Ok(found) => found.metadata.deletion_timestamp.is_none(),
        Err(_) => crate::resources::SYSTEM_NAMESPACES.contains(&namespace),
    }
}

#[async_trait]
impl AdmissionPlugin for ServiceAccountAdmission {
    fn name(&self) -> &'static str {
        "ServiceAccount"
    }

    async fn mutate(&self, request: &mut AdmissionRequest<'_>) -> Result<(), ApiError> {
        if request.operation() != Operation::Create || !request.subresource().is_empty() {
            return Ok(());
        }
        let registry = request.registry();
        let namespace = request.namespace().to_owned();
        let Some(pod) = request.object_mut().and_then(|o| o.downcast_mut::<Pod>()) else {
            return Ok(());
        };
        if pod.spec.service_account_name.is_empty() {
            pod.spec.service_account_name = DEFAULT_SERVICE_ACCOUNT.to_owned();
        }
        if !self.mount_tokens || !namespace_active(registry, &namespace).await {
            return Ok(());
        }
        // A missing account is refused in the validating phase, after NamespaceLifecycle's.
        if let Some(account) =
            find_account(registry, &namespace, &pod.spec.service_account_name).await?
            && should_automount(pod, &account)
        {
            mount_api_access(pod, || {
                crate::registry::generate_name(API_ACCESS_VOLUME_PREFIX)
            });
        }
        Ok(())
    }

    async fn validate(&self, request: &AdmissionRequest<'_>) -> Result<(), ApiError> {
        if request.operation() != Operation::Create || !request.subresource().is_empty() {
            return Ok(());
        }
        let Some(pod) = request.object().and_then(|o| o.downcast_ref::<Pod>()) else {
            return Ok(());
        };
        let namespace = request.namespace();
        let account = &pod.spec.service_account_name;
        match request
            .registry()
            .get::<ServiceAccount>(namespace, account)
            .await
        {
            Ok(_) => Ok(()),
            Err(err) if err.is_not_found() => Err(ApiError::Forbidden(format!(
                "pods {:?} is forbidden: spec.serviceAccountName: service account {namespace}/{account} does not exist; create it first",
                request.name()
            ))),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Container;

    fn pod() -> Pod {
        let mut pod = Pod::default();
        pod.spec.containers = vec![Container {
            name: "web".into(),
            image: "nginx".into(),
            ..Container::default()
        }];
        pod.spec.init_containers = vec![Container {
            name: "setup".into(),
            image: "busybox".into(),
            ..Container::default()
        }];
        pod
    }

    fn mounts(container: &Container) -> Vec<(&str, &str, bool)> {
        container
            .volume_mounts
            .iter()
            .map(|m| (m.name.as_str(), m.mount_path.as_str(), m.read_only))
            .collect()
    }

    #[test]
    fn every_container_mounts_the_token_volume_read_only() {
        let mut pod = pod();
        mount_api_access(&mut pod, || "kube-api-access-abcde".into());
        let expected = [("kube-api-access-abcde", TOKEN_MOUNT_PATH, true)];
        assert_eq!(mounts(&pod.spec.containers[0]), expected);
        assert_eq!(mounts(&pod.spec.init_containers[0]), expected);
        assert_eq!(
            pod.spec.volumes,
            [api_access_volume("kube-api-access-abcde")]
        );
        let sources = &pod.spec.volumes[0].projected.as_ref().unwrap().sources;
        let token = sources[0].service_account_token.as_ref().unwrap();
        assert_eq!(
            (token.path.as_str(), token.expiration_seconds),
            ("token", Some(3607))
        );
        let ca = sources[1].config_map.as_ref().unwrap();
        assert_eq!(
            (ca.name.as_str(), ca.items[0].path.as_str()),
            ("kube-root-ca.crt", "ca.crt")
        );
        let namespace = &sources[2].downward_api.as_ref().unwrap().items[0];
        assert_eq!(namespace.path, "namespace");
        assert_eq!(
            namespace.field_ref.as_ref().unwrap().field_path,
            "metadata.namespace"
        );
        // The volume passes the pod's own validation.
        pod.metadata = crate::ObjectMeta::namespaced("shop", "web");
        let errors = crate::resource::Resource::validate(&pod);
        assert!(errors.is_empty(), "{errors}");
    }

    #[test]
    fn a_container_with_its_own_mount_there_is_left_alone() {
        let mut pod = pod();
        pod.spec.containers[0].volume_mounts.push(VolumeMount {
            name: "mine".into(),
            mount_path: TOKEN_MOUNT_PATH.into(),
            ..VolumeMount::default()
        });
        mount_api_access(&mut pod, || "kube-api-access-abcde".into());
        assert_eq!(
            mounts(&pod.spec.containers[0]),
            [("mine", TOKEN_MOUNT_PATH, false)]
        );
        assert_eq!(pod.spec.init_containers[0].volume_mounts.len(), 1);
        assert_eq!(pod.spec.volumes.len(), 1);

        // Every container has its own: no volume is added.
        let mut all_own = pod.clone();
        all_own.spec.volumes.clear();
        all_own.spec.init_containers[0].volume_mounts[0].name = "mine".into();
        mount_api_access(&mut all_own, || unreachable!("no name is needed"));
        assert!(all_own.spec.volumes.is_empty());
    }

    #[test]
    fn an_existing_api_access_volume_is_reused() {
        let mut pod = pod();
        pod.spec
            .volumes
            .push(api_access_volume("kube-api-access-xyz12"));
        mount_api_access(&mut pod, || "kube-api-access-other".into());
        assert_eq!(pod.spec.volumes.len(), 1);
        assert_eq!(
            pod.spec.containers[0].volume_mounts[0].name,
            "kube-api-access-xyz12"
        );
    }

    #[test]
    fn automount_follows_the_pod_then_the_account() {
        let mut pod = pod();
        let mut account = ServiceAccount::default();
        assert!(should_automount(&pod, &account));
        account.automount_service_account_token = Some(false);
        assert!(!should_automount(&pod, &account));
        pod.spec.automount_service_account_token = Some(true);
        assert!(should_automount(&pod, &account));
        account.automount_service_account_token = None;
        pod.spec.automount_service_account_token = Some(false);
        assert!(!should_automount(&pod, &account));
    }
}
