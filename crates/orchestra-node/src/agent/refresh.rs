//! Keeping a running pod's ConfigMap, Secret, downward API and projected volumes current, as
//! kubelet does with its `Watch` strategy: the agent's [object cache](super::objects) follows
//! each ConfigMap and Secret a pod's volumes project with a watch of its own, and a change
//! wakes the pod's worker, which rewrites the volumes whose content changed at once. Every
//! [`volume_refresh_interval`](super::AgentConfig) the worker also refreshes them for the
//! downward API and the service account tokens that are due (see [`tokens`](super::tokens));
//! the ConfigMaps and Secrets then come from the cache, so the API is not read again. The
//! volumes are rewritten through the atomic `..data` swap of [`volumes::write_projected`] (a
//! reader sees the old set of files or the new one). Only volumes a started container has set
//! up are refreshed. A read that fails, or a required object or key that is gone, keeps the
//! old files (kubelet keeps a volume it cannot set up as it was); an optional one that is gone
//! empties the volume. `subPath` mounts are [snapshots](volumes::subpath) and keep what they
//! had.

use orchestra_api::Client;
use orchestra_api::resources::{Pod, Volume};

use super::AgentConfig;
use super::prepare::fetch_volume_sources;
use super::resolve::PodContext;
use super::volumes::{self, VolumeContent};

/// Whether `pod` has volumes the agent refreshes.
pub fn has_refreshed_volumes(pod: &Pod) -> bool {
    pod.spec.volumes.iter().any(volumes::is_atomic)
}

/// Rewrites the pod's set-up atomic volumes whose content changed; returns their names. Errors
/// are logged and leave the volume as it was.
pub async fn refresh_volumes<C: Client>(
    client: &C,
    agent: &AgentConfig,
    pod: &Pod,
    pod_ip: &str,
) -> Vec<String> {
    let name = &pod.metadata.name;
    let Ok(pod_dir) = volumes::pod_dir(&agent.volumes_dir, &pod.metadata.uid) else {
        return Vec::new();
    };
    let set_up: Vec<&Volume> = pod
        .spec
        .volumes
        .iter()
        .filter(|v| volumes::is_atomic(v) && volumes::is_written(&pod_dir.join(&v.name)))
        .collect();
    if set_up.is_empty() {
        return Vec::new();
    }
    let fetched = async {
        let mut sources =
            fetch_volume_sources(client, &agent.objects, &pod.metadata.namespace, &set_up).await?;
        sources.tokens = agent
            .service_account_tokens
            .tokens_for(client, pod, &set_up)
            .await?;
        Ok::<_, super::resolve::ConfigError>(sources)
    };
    let sources = match fetched.await {
        Ok(sources) => sources,
        Err(err) => {
            tracing::warn!(pod = %name, %err, "reading the sources of the pod's volumes failed; keeping them as they are");
            return Vec::new();
        }
    };
    let ctx = PodContext {
        pod,
        pod_ip,
        host_ip: &agent.address,
        node_cpu: agent.cpu,
        node_memory: agent.memory,
    };
    let mut changed = Vec::new();
    for volume in set_up {
        let files = match volumes::volume_content(&ctx, volume, &sources) {
            Ok(VolumeContent::Projected(files)) => files,
            Ok(_) => continue,
            Err(err) => {
                tracing::warn!(pod = %name, %err, "keeping the volume as it is");
                continue;
            }
        };
        match volumes::write_projected(&pod_dir.join(&volume.name), &files) {
            Ok(true) => {
                tracing::info!(pod = %name, volume = %volume.name, "volume updated");
                changed.push(volume.name.clone());
            }
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(pod = %name, volume = %volume.name, %err, "rewriting the volume failed");
            }
        }
    }
    changed
}
