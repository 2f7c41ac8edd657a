//! Everything a container needs before the runtime can create it: the ConfigMaps and Secrets
//! it refers to (read through the agent's client, which the node authorizer lets read only
//! those of its own pods), the service account tokens of its projected volumes, its [resolved environment](super::resolve), its expanded command,
//! and its volumes [written to disk](super::volumes) as mounts.
//!
//! A failure is a [`PrepareError`] carrying kubelet's waiting reason: a missing env source is
//! `CreateContainerConfigError`, a volume that cannot be set up keeps the container in
//! `ContainerCreating` with the `MountVolume.SetUp failed ...` message. The worker retries
//! both, so the container starts once the object appears.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use orchestra_api::Client;
use orchestra_api::resources::{ConfigMap, Container, Pod, Secret, Volume};

use super::AgentConfig;
use super::objects::{Cached, Key, Kind, ObjectCache};
use super::resolve::{self, ConfigError, PodContext, Sources};
use super::volumes;
use crate::runtime::ContainerConfig;

/// Why a container could not be prepared, as the container's waiting state shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrepareError {
    /// Kubelet's reason: `CreateContainerConfigError` or `ContainerCreating`.
    pub reason: &'static str,
    /// The message (names what is missing; never a value).
    pub message: String,
}

impl From<ConfigError> for PrepareError {
    fn from(err: ConfigError) -> Self {
        PrepareError {
            reason: "CreateContainerConfigError",
            message: err.to_string(),
        }
    }
}

impl From<volumes::VolumeError> for PrepareError {
    fn from(err: volumes::VolumeError) -> Self {
        PrepareError {
            reason: "ContainerCreating",
            message: err.to_string(),
        }
    }
}

/// The pod's volumes that `container` mounts.
fn mounted_volumes<'a>(pod: &'a Pod, container: &Container) -> Vec<&'a Volume> {
    let names: BTreeSet<&str> = container
        .volume_mounts
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    pod.spec
        .volumes
        .iter()
        .filter(|v| names.contains(v.name.as_str()))
        .collect()
}

/// The ConfigMaps and Secrets `container` reads: env key references, `envFrom`, and the
/// volumes it mounts. (ConfigMaps, Secrets.)
pub fn container_refs(pod: &Pod, container: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut maps, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    for source in container.env.iter().filter_map(|e| e.value_from.as_ref()) {
        if let Some(r) = &source.config_map_key_ref {
            maps.insert(r.name.clone());
        }
        if let Some(r) = &source.secret_key_ref {
            secrets.insert(r.name.clone());
        }
    }
    for from in &container.env_from {
        if let Some(r) = &from.config_map_ref {
            maps.insert(r.name.clone());
        }
        if let Some(r) = &from.secret_ref {
            secrets.insert(r.name.clone());
        }
    }
    add_volume_refs(&mounted_volumes(pod, container), &mut maps, &mut secrets);
    (maps, secrets)
}

/// Adds the ConfigMaps and Secrets `volumes` project to `maps` and `secrets`.
fn add_volume_refs(
    volumes: &[&Volume],
    maps: &mut BTreeSet<String>,
    secrets: &mut BTreeSet<String>,
) {
    for volume in volumes {
        if let Some(source) = &volume.config_map {
            maps.insert(source.name.clone());
        }
        if let Some(source) = &volume.secret {
            secrets.insert(source.secret_name.clone());
        }
        for source in volume.projected.iter().flat_map(|p| &p.sources) {
            if let Some(map) = &source.config_map {
                maps.insert(map.name.clone());
            }
            if let Some(secret) = &source.secret {
                secrets.insert(secret.name.clone());
            }
        }
    }
}

/// The ConfigMaps and Secrets the pod's refreshed (atomic) volumes project: the objects the
/// agent's [cache](super::objects) follows for it.
pub fn volume_object_keys(pod: &Pod) -> BTreeSet<Key> {
    let atomic: Vec<&Volume> = pod
        .spec
        .volumes
        .iter()
        .filter(|v| volumes::is_atomic(v))
        .collect();
    let (mut maps, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    add_volume_refs(&atomic, &mut maps, &mut secrets);
    let namespace = &pod.metadata.namespace;
    let key = |kind, name| (kind, namespace.clone(), name);
    maps.into_iter()
        .map(|name| key(Kind::ConfigMap, name))
        .chain(secrets.into_iter().map(|name| key(Kind::Secret, name)))
        .collect()
}

/// Reads the ConfigMaps and Secrets `volumes` project (for their [refresh](super::refresh)).
pub async fn fetch_volume_sources<C: Client>(
    client: &C,
    cache: &ObjectCache,
    namespace: &str,
    volumes: &[&Volume],
) -> Result<Sources, ConfigError> {
    let (mut maps, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    add_volume_refs(volumes, &mut maps, &mut secrets);
    Ok(Sources {
        config_maps: fetch::<ConfigMap, C>(client, cache, "configmap", namespace, maps).await?,
        secrets: fetch::<Secret, C>(client, cache, "secret", namespace, secrets).await?,
        tokens: BTreeMap::new(),
    })
}

/// Reads the objects from `cache` where it has them (their watch has answered), from the
/// API otherwise.
async fn fetch<R: Cached, C: Client>(
    client: &C,
    cache: &ObjectCache,
    kind: &'static str,
    namespace: &str,
    names: BTreeSet<String>,
) -> Result<BTreeMap<String, Option<R>>, ConfigError> {
    let mut found = BTreeMap::new();
    for name in names {
        if let Some(object) = cache.get::<R>(namespace, &name) {
            found.insert(name, object);
            continue;
        }
        let object = match client.get::<R>(namespace, &name).await {
            Ok(object) => Some(object),
            Err(err) if err.is_not_found() => None,
            Err(err) => return Err(ConfigError::from_api(kind, &name, &err)),
        };
        found.insert(name, object);
    }
    Ok(found)
}

/// Reads what `container` refers to (see [`container_refs`]).
pub async fn fetch_sources<C: Client>(
    client: &C,
    cache: &ObjectCache,
    pod: &Pod,
    container: &Container,
) -> Result<Sources, ConfigError> {
    let namespace = &pod.metadata.namespace;
    let (maps, secrets) = container_refs(pod, container);
    Ok(Sources {
        config_maps: fetch::<ConfigMap, C>(client, cache, "configmap", namespace, maps).await?,
        secrets: fetch::<Secret, C>(client, cache, "secret", namespace, secrets).await?,
        tokens: BTreeMap::new(),
    })
}

/// Fills `base` (from [`container_config`](super::container_config)'s pod-only fields) with
/// the resolved environment (after `injected`), the expanded command and args, and the mounts
/// of the volumes it mounts, written under the agent's `volumes_dir`.
pub async fn prepare<C: Client>(
    client: &C,
    agent: &AgentConfig,
    pod: &Pod,
    container: &Container,
    pod_ip: &str,
    injected: Vec<(String, String)>,
    mut base: ContainerConfig,
) -> Result<ContainerConfig, PrepareError> {
    let mut sources = fetch_sources(client, &agent.objects, pod, container).await?;
    sources.tokens = agent
        .service_account_tokens
        .tokens_for(client, pod, &mounted_volumes(pod, container))
        .await?;
    let ctx = PodContext {
        pod,
        pod_ip,
        host_ip: &agent.address,
        node_cpu: agent.cpu,
        node_memory: agent.memory,
    };
    base.env = resolve::resolve_env(&ctx, container, &sources, injected)?;
    (base.command, base.args) = resolve::expand_command(container, &base.env);

    let volumes = mounted_volumes(pod, container);
    if !volumes.is_empty() {
        let pod_dir =
            volumes::pod_dir(&agent.volumes_dir, &pod.metadata.uid).map_err(|m| PrepareError {
                reason: "ContainerCreating",
                message: m,
            })?;
        let mut host_paths: BTreeMap<String, PathBuf> = BTreeMap::new();
        for volume in volumes {
            let content = volumes::volume_content(&ctx, volume, &sources)?;
            let path = volumes::materialize(&pod_dir, &volume.name, &content)?;
            host_paths.insert(volume.name.clone(), path);
        }
        let sub_paths =
            volumes::sub_paths(container, &base.env).map_err(|message| PrepareError {
                reason: "CreateContainerConfigError",
                message,
            })?;
        base.mounts = volumes::container_mounts(
            container,
            &pod.spec.volumes,
            &host_paths,
            &pod_dir,
            &sub_paths,
        )?;
    }
    Ok(base)
}
