//! [`SplitFollower`]: keeps a [`MeshDirectory`]'s traffic splits in step with the API's
//! TrafficSplit objects (`mesh.orchestra.dev/v1alpha1`), as the
//! [`ProxyFollower`](crate::ProxyFollower) keeps its services in step with Services and
//! Endpoints: the shared watcher and a reflector cache, and after a change (debounced) the
//! whole set rebuilt by [`build_splits`] (pure) and applied. A weight change therefore applies
//! to the requests that follow it; requests on their way keep their backend. A deleted split
//! sends its apex service's requests back to the apex's own endpoints.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use orchestra_api::resources::TrafficSplit as TrafficSplitObject;
use orchestra_api::watcher::{self, WatcherConfig};
use orchestra_api::{Client, reflector};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::directory::{MeshDirectory, ServiceName};
use super::split::{TrafficSplit, WeightedBackend};
use crate::follower::FollowerConfig;
use crate::table::ServiceKey;

/// The splits built from the API's objects, and what was left out and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuiltSplits {
    /// Apex service -> its split (backend keys with an empty port: any port).
    pub splits: BTreeMap<ServiceName, TrafficSplit>,
    /// One line per object left out.
    pub warnings: Vec<String>,
}

/// The mesh's splits from TrafficSplit objects. Backends live in the object's namespace.
/// An object that the API would refuse (a negative weight, no weight, a backend twice) is
/// left out with a warning. When several objects split the same apex service, the oldest
/// (then the first by name) wins and the others are left out with a warning, so that every
/// sidecar chooses the same one.
pub fn build_splits<'a>(objects: impl IntoIterator<Item = &'a TrafficSplitObject>) -> BuiltSplits {
    let mut objects: Vec<&TrafficSplitObject> = objects.into_iter().collect();
    objects.sort_by(|a, b| {
        let key = |o: &TrafficSplitObject| {
            (
                o.metadata.creation_timestamp,
                o.metadata.namespace.clone(),
                o.metadata.name.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    let mut built = BuiltSplits::default();
    let mut owners: BTreeMap<ServiceName, String> = BTreeMap::new();
    for object in objects {
        let namespace = object.metadata.namespace.as_str();
        let name = format!("{namespace}/{}", object.metadata.name);
        let apex = ServiceName::new(namespace, object.spec.service.as_str());
        if let Some(owner) = owners.get(&apex) {
            built.warnings.push(format!(
                "traffic split {name} is ignored: service {apex} is already split by {owner}"
            ));
            continue;
        }
        let mut backends = Vec::with_capacity(object.spec.backends.len());
        for (i, backend) in object.spec.backends.iter().enumerate() {
            let Ok(weight) = u32::try_from(backend.weight) else {
                built.warnings.push(format!(
                    "traffic split {name} is ignored: spec.backends[{i}].weight is negative ({})",
                    backend.weight
                ));
                backends.clear();
                break;
            };
            backends.push(WeightedBackend {
                service: ServiceKey::new(namespace, backend.service.as_str(), ""),
                weight,
            });
        }
        if backends.is_empty() {
            if object.spec.backends.is_empty() {
                built.warnings.push(format!(
                    "traffic split {name} is ignored: it has no backend"
                ));
            }
            continue;
        }
        let split = TrafficSplit { backends };
        if let Err(error) = split.validate() {
            built
                .warnings
                .push(format!("traffic split {name} is ignored: {error}"));
            continue;
        }
        owners.insert(apex.clone(), name);
        built.splits.insert(apex, split);
    }
    built
}

/// Follows the API's TrafficSplits into a [`MeshDirectory`] (see the module docs). The
/// client needs `list` and `watch` on `trafficsplits` (`mesh.orchestra.dev`), cluster-wide.
pub struct SplitFollower<C> {
    client: C,
    directory: MeshDirectory,
    config: FollowerConfig,
    applied: watch::Sender<Option<Arc<BTreeMap<ServiceName, TrafficSplit>>>>,
}

impl<C: Client + Clone> SplitFollower<C> {
    /// A follower of `client`'s TrafficSplits feeding `directory` (its `debounce` is used;
    /// its `retry` is not: applying splits to the directory cannot fail once built).
    pub fn new(client: C, directory: MeshDirectory, config: FollowerConfig) -> Self {
        SplitFollower {
            client,
            directory,
            config,
            applied: watch::Sender::new(None),
        }
    }

    /// The splits applied last (`None` until the first complete list was applied), for
    /// readiness and tests.
    pub fn applied(&self) -> watch::Receiver<Option<Arc<BTreeMap<ServiceName, TrafficSplit>>>> {
        self.applied.subscribe()
    }

    /// Follows forever (drop the future, or abort its task, to stop).
    pub async fn run(self) {
        let (store, writer) = reflector::store::<TrafficSplitObject>();
        let mut events = std::pin::pin!(reflector::reflector(
            writer,
            watcher::watcher::<TrafficSplitObject, _>(
                self.client.clone(),
                WatcherConfig::default()
            ),
        ));
        let mut due: Option<Instant> = None;
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(_)) => {
                        due.get_or_insert_with(|| Instant::now() + self.config.debounce);
                    }
                    Some(Err(error)) => warn!(%error, "watching traffic splits failed; retrying"),
                    None => return,
                },
                () = sleep_until_due(due) => {
                    due = None;
                    if !store.is_ready() {
                        continue;
                    }
                    let objects = store.list();
                    let built = build_splits(objects.iter().map(|o| o.as_ref()));
                    for warning in &built.warnings {
                        warn!(%warning, "traffic splits");
                    }
                    debug!(splits = built.splits.len(), "applying traffic splits");
                    match self.directory.apply_splits(built.splits.clone()) {
                        Ok(()) => {
                            self.applied.send_replace(Some(Arc::new(built.splits)));
                        }
                        // build_splits validated each split; this would be a bug.
                        Err(error) => warn!(%error, "applying traffic splits failed"),
                    }
                }
            }
        }
    }
}

/// Completes at `due`, never when there is nothing due.
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use orchestra_api::ObjectMeta;
    use orchestra_api::resources::{TrafficSplitBackend, TrafficSplitSpec};

    use super::*;

    fn object(
        namespace: &str,
        name: &str,
        created: u32,
        service: &str,
        backends: &[(&str, i32)],
    ) -> TrafficSplitObject {
        TrafficSplitObject {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: namespace.into(),
                creation_timestamp: Some(
                    format!("2026-01-01T00:00:{created:02}Z").parse().unwrap(),
                ),
                ..ObjectMeta::default()
            },
            spec: TrafficSplitSpec {
                service: service.into(),
                backends: backends
                    .iter()
                    .map(|(service, weight)| TrafficSplitBackend {
                        service: (*service).into(),
                        weight: *weight,
                    })
                    .collect(),
            },
        }
    }

    #[test]
    fn objects_become_splits_of_their_namespace() {
        let objects = [
            object(
                "shop",
                "canary",
                1,
                "web",
                &[("web-v1", 90), ("web-v2", 10)],
            ),
            object("data", "canary", 1, "web", &[("web-v2", 1)]),
        ];
        let built = build_splits(&objects);
        assert!(built.warnings.is_empty(), "{:?}", built.warnings);
        assert_eq!(
            built.splits[&ServiceName::new("shop", "web")],
            TrafficSplit {
                backends: vec![
                    WeightedBackend {
                        service: ServiceKey::new("shop", "web-v1", ""),
                        weight: 90
                    },
                    WeightedBackend {
                        service: ServiceKey::new("shop", "web-v2", ""),
                        weight: 10
                    },
                ]
            }
        );
        assert_eq!(
            built.splits[&ServiceName::new("data", "web")].backends[0].service,
            ServiceKey::new("data", "web-v2", "")
        );
    }

    #[test]
    fn the_oldest_split_of_a_service_wins_and_bad_ones_are_left_out() {
        let objects = [
            object("shop", "newer", 20, "web", &[("web-v2", 1)]),
            object("shop", "older", 10, "web", &[("web-v1", 1)]),
            object(
                "shop",
                "negative",
                1,
                "api",
                &[("api-v1", -1), ("api-v2", 5)],
            ),
            object("shop", "idle", 1, "db", &[("db-v1", 0)]),
            object("shop", "empty", 1, "cache", &[]),
        ];
        let built = build_splits(&objects);
        assert_eq!(built.splits.len(), 1, "{:?}", built.splits);
        assert_eq!(
            built.splits[&ServiceName::new("shop", "web")].backends[0].service,
            ServiceKey::new("shop", "web-v1", "")
        );
        assert_eq!(
            built.warnings,
            [
                "traffic split shop/empty is ignored: it has no backend",
                "traffic split shop/idle is ignored: the traffic split has no backend with a weight above 0",
                "traffic split shop/negative is ignored: spec.backends[0].weight is negative (-1)",
                "traffic split shop/newer is ignored: service shop/web is already split by shop/older",
            ]
        );
    }
}
