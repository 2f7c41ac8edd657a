//! The three paths of the API benchmark behind one set of operations on pods.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use orchestra::api::registry::{ListOptions, WatchOptions};
use orchestra::api::resources::{Container, Pod, PodSpec};
use orchestra::api::{Client, LocalClient, ObjectMeta, Registry};
use orchestra::store::{CasOutcome, DiskStore, MemStore, Store, StoreExt, WatchRequest};

use crate::bench::BenchError;
use crate::cli::bench::{ApiPath, ApiStore};

/// The annotation carrying a watched write's start, in nanoseconds since the run's start.
pub const SENT_ANNOTATION: &str = "bench.orchestra.dev/sent-ns";

/// The name of the `index`th pre-populated pod.
pub fn pod_name(index: u32) -> String {
    format!("pod-{index:07}")
}

/// A small pod, as a Deployment's would be.
pub fn pod(namespace: &str, name: &str, sent_nanos: u64) -> Pod {
    let mut metadata = ObjectMeta::namespaced(namespace, name);
    metadata.labels.insert("app".into(), "bench".into());
    metadata
        .annotations
        .insert(SENT_ANNOTATION.into(), sent_nanos.to_string());
    Pod {
        metadata,
        spec: PodSpec {
            containers: vec![Container {
                name: "web".into(),
                image: "nginx:1.27".into(),
                ..Container::default()
            }],
            ..PodSpec::default()
        },
        ..Pod::default()
    }
}

/// The store key of a pod (the registry's layout).
pub fn key(namespace: &str, name: &str) -> String {
    format!("/registry/pods/{namespace}/{name}")
}

/// The key prefix of a namespace's pods.
pub fn prefix(namespace: &str) -> String {
    format!("/registry/pods/{namespace}/")
}

fn api_error(what: impl Into<String>) -> impl FnOnce(orchestra::api::ApiError) -> BenchError {
    let what = what.into();
    move |e| BenchError::Api {
        what,
        source: Box::new(e),
    }
}

fn store_error(what: impl Into<String>) -> impl FnOnce(orchestra::store::StoreError) -> BenchError {
    let what = what.into();
    move |e| BenchError::Api {
        what,
        source: Box::new(e),
    }
}

/// How the operations reach the objects.
#[derive(Clone)]
pub enum Via {
    /// The bare store.
    Store(Arc<dyn Store>),
    /// LocalClient.
    Local(LocalClient),
    /// RemoteClients, one per connection, used round-robin.
    #[cfg(feature = "server")]
    Remote(Arc<[orchestra::api::RemoteClient]>, Arc<AtomicUsize>),
}

/// One path on a fresh store (and, for `remote`, the API server serving it).
#[derive(Clone)]
pub struct Target {
    path: ApiPath,
    store_kind: ApiStore,
    via: Via,
    /// The embedded store's directory, removed when the last clone goes.
    _dir: Option<Arc<tempfile::TempDir>>,
    /// Stops the API server.
    stop: Option<Arc<tokio::sync::Notify>>,
    served: Option<Arc<tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>>,
}

impl Target {
    /// A fresh store of `store_kind`, reached through `path`.
    pub async fn start(
        path: ApiPath,
        store_kind: ApiStore,
        connections: u32,
    ) -> Result<Self, BenchError> {
        let (store, dir): (Arc<dyn Store>, _) = match store_kind {
            ApiStore::Memory => (Arc::new(MemStore::new()), None),
            ApiStore::Embedded => {
                let dir = tempfile::tempdir().map_err(|source| BenchError::DataDir {
                    path: std::env::temp_dir(),
                    source,
                })?;
                let store = DiskStore::open(dir.path())
                    .await
                    .map_err(store_error("opening the embedded store"))?;
                (Arc::new(store), Some(Arc::new(dir)))
            }
        };
        let mut target = Target {
            path,
            store_kind,
            via: Via::Store(store.clone()),
            _dir: dir,
            stop: None,
            served: None,
        };
        match path {
            ApiPath::Store => {}
            ApiPath::Local => {
                target.via = Via::Local(LocalClient::from_registry(Registry::from_arc(store)));
            }
            #[cfg(feature = "server")]
            ApiPath::Remote => {
                use orchestra::api::registry::DynRegistry;
                use orchestra::api::server::ApiServer;
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .map_err(|e| BenchError::Api {
                        what: "binding a loopback port for the API server".into(),
                        source: Box::new(e),
                    })?;
                let addr = listener.local_addr().map_err(|e| BenchError::Api {
                    what: "reading the API server's address".into(),
                    source: Box::new(e),
                })?;
                let stop = Arc::new(tokio::sync::Notify::new());
                let stopped = stop.clone();
                let server = ApiServer::new(DynRegistry::new(Registry::from_arc(store)));
                let served = tokio::spawn(async move {
                    if let Err(e) = server
                        .serve(listener, async move { stopped.notified().await })
                        .await
                    {
                        tracing::error!("the benchmark's API server failed: {e}");
                    }
                });
                let url = format!("http://{addr}");
                let mut clients = Vec::new();
                for _ in 0..connections {
                    let client =
                        orchestra::api::RemoteClient::connect(&url)
                            .await
                            .map_err(|e| BenchError::Api {
                                what: format!("connecting to the API server at {url}"),
                                source: Box::new(e),
                            })?;
                    clients.push(client);
                }
                target.via = Via::Remote(clients.into(), Arc::new(AtomicUsize::new(0)));
                target.stop = Some(stop);
                target.served = Some(Arc::new(tokio::sync::Mutex::new(Some(served))));
            }
            #[cfg(not(feature = "server"))]
            ApiPath::Remote => {
                return Err(BenchError::Api {
                    what: "the remote path".into(),
                    source: "this build has no `server` feature".into(),
                });
            }
        }
        Ok(target)
    }

    /// Stops the API server, if any, and waits for it.
    pub async fn stop(&self) {
        if let Some(stop) = &self.stop {
            stop.notify_one();
        }
        if let Some(served) = &self.served
            && let Some(handle) = served.lock().await.take()
        {
            let _ = handle.await;
        }
    }

    /// The path.
    pub fn path(&self) -> ApiPath {
        self.path
    }

    /// The store underneath.
    pub fn store_kind(&self) -> ApiStore {
        self.store_kind
    }

    /// How the operations reach the objects.
    pub fn via(&self) -> Via {
        match &self.via {
            #[cfg(feature = "server")]
            Via::Remote(clients, next) => {
                // Spread callers over the connections.
                let i = next.fetch_add(1, Ordering::Relaxed) % clients.len();
                let one: Arc<[orchestra::api::RemoteClient]> = Arc::from(vec![clients[i].clone()]);
                Via::Remote(one, next.clone())
            }
            other => other.clone(),
        }
    }

    /// Creates `count` pods `pod_name(0..count)` in `namespace`, 64 at a time.
    pub async fn populate(&self, namespace: &str, count: u32) -> Result<(), BenchError> {
        let mut next = 0;
        while next < count {
            let batch = (next..count.min(next + 64)).map(|i| {
                let target = self.clone();
                let namespace = namespace.to_owned();
                async move { target.create(&namespace, &pod_name(i), 0).await }
            });
            for result in futures::future::join_all(batch).await {
                result?;
            }
            next += 64;
        }
        Ok(())
    }

    /// Creates one pod.
    pub async fn create(&self, namespace: &str, name: &str, sent: u64) -> Result<(), BenchError> {
        let pod = pod(namespace, name, sent);
        match self.via() {
            Via::Store(store) => {
                let bytes = orchestra::api::to_string(&pod).map_err(|e| BenchError::Api {
                    what: "encoding a pod".into(),
                    source: Box::new(e),
                })?;
                match store
                    .create(key(namespace, name), bytes)
                    .await
                    .map_err(store_error("creating a pod in the store"))?
                {
                    CasOutcome::Written(_) => Ok(()),
                    other => Err(BenchError::Api {
                        what: format!("creating {name} in the store"),
                        source: format!("it exists already: {other:?}").into(),
                    }),
                }
            }
            Via::Local(client) => client
                .create(&pod)
                .await
                .map(drop)
                .map_err(api_error("creating a pod")),
            #[cfg(feature = "server")]
            Via::Remote(clients, _) => clients[0]
                .create(&pod)
                .await
                .map(drop)
                .map_err(api_error("creating a pod")),
        }
    }

    /// Reads one pod.
    pub async fn get(&self, namespace: &str, name: &str) -> Result<(), BenchError> {
        match self.via() {
            Via::Store(store) => match store
                .get(key(namespace, name))
                .await
                .map_err(store_error("getting a pod from the store"))?
            {
                Some(_) => Ok(()),
                None => Err(BenchError::Api {
                    what: format!("getting {name} from the store"),
                    source: "not found".into(),
                }),
            },
            Via::Local(client) => client
                .get::<Pod>(namespace, name)
                .await
                .map(drop)
                .map_err(api_error("getting a pod")),
            #[cfg(feature = "server")]
            Via::Remote(clients, _) => clients[0]
                .get::<Pod>(namespace, name)
                .await
                .map(drop)
                .map_err(api_error("getting a pod")),
        }
    }

    /// Lists one namespace's pods.
    pub async fn list(&self, namespace: &str) -> Result<(), BenchError> {
        match self.via() {
            Via::Store(store) => store
                .list_prefix(prefix(namespace))
                .await
                .map(drop)
                .map_err(store_error("listing pods in the store")),
            Via::Local(client) => client
                .list::<Pod>(Some(namespace), &ListOptions::default())
                .await
                .map(drop)
                .map_err(api_error("listing pods")),
            #[cfg(feature = "server")]
            Via::Remote(clients, _) => clients[0]
                .list::<Pod>(Some(namespace), &ListOptions::default())
                .await
                .map(drop)
                .map_err(api_error("listing pods")),
        }
    }

    /// A stream of the `sent` annotation of each pod created in `namespace` from now on.
    pub async fn watch(
        &self,
        namespace: &str,
    ) -> Result<futures::stream::BoxStream<'static, Result<u64, BenchError>>, BenchError> {
        use futures::StreamExt;
        fn sent(pod: &Pod) -> u64 {
            pod.metadata
                .annotations
                .get(SENT_ANNOTATION)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        }
        Ok(match self.via() {
            Via::Store(store) => {
                let revision = store
                    .status()
                    .await
                    .map_err(store_error("reading the store's revision"))?
                    .revision;
                let stream = store
                    .watch(WatchRequest::prefix(prefix(namespace)).from_revision(revision + 1))
                    .await
                    .map_err(store_error("watching the store"))?;
                stream
                    .flat_map(|response| {
                        let sents: Vec<Result<u64, BenchError>> = match response {
                            Ok(response) => response
                                .events
                                .iter()
                                .map(|event| {
                                    let pod: Pod = serde_json::from_slice(&event.kv.value)
                                        .map_err(|e| BenchError::Api {
                                            what: "decoding a watched pod".into(),
                                            source: Box::new(e),
                                        })?;
                                    Ok(sent(&pod))
                                })
                                .collect(),
                            Err(e) => vec![Err(store_error("watching the store")(e))],
                        };
                        futures::stream::iter(sents)
                    })
                    .boxed()
            }
            Via::Local(client) => client_watch(client, namespace, sent).await?,
            #[cfg(feature = "server")]
            Via::Remote(clients, _) => client_watch(clients[0].clone(), namespace, sent).await?,
        })
    }
}

/// A client's watch of `namespace`'s pods, as `sent` annotations of added pods.
async fn client_watch<C: Client>(
    client: C,
    namespace: &str,
    sent: fn(&Pod) -> u64,
) -> Result<futures::stream::BoxStream<'static, Result<u64, BenchError>>, BenchError> {
    use futures::StreamExt;
    use orchestra::api::WatchEvent;
    let events = client
        .watch::<Pod>(Some(namespace), &WatchOptions::default())
        .await
        .map_err(api_error("watching pods"))?;
    Ok(events
        .filter_map(move |event| {
            futures::future::ready(match event {
                Ok(WatchEvent::Added(pod)) => Some(Ok(sent(&pod))),
                Ok(_) => None,
                Err(e) => Some(Err(api_error("watching pods")(e))),
            })
        })
        .boxed())
}
