//! The Watch service: one bidirectional stream carries many watchers. A task per stream reads
//! the client's requests (create, cancel, progress); a task per watcher follows its store
//! [`WatchStream`](crate::WatchStream) and sends its events. All of them share one bounded
//! channel to the client, so a slow client slows its watchers, not the store.

use std::collections::HashMap;
use std::pin::Pin;

use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tonic::{Request, Response, Status, Streaming};

use super::Shared;
use super::kv::{key_range, key_value};
use super::status::{COMPACTED, FUTURE_REV, NO_KEY};
use crate::error::StoreError;
use crate::etcd::proto::etcdserverpb as pb;
use crate::etcd::proto::mvccpb;
use crate::types::{Event, EventKind, WatchRequest};

/// How many responses wait for the client before the watchers stop reading their stores.
const OUTBOUND: usize = 64;
/// The watch id of responses that concern the whole stream (progress answers), as etcd.
const STREAM_WATCH_ID: i64 = -1;

type Outbound = mpsc::Sender<Result<pb::WatchResponse, Status>>;

/// The Watch service.
pub(crate) struct WatchService {
    shared: Shared,
}

impl WatchService {
    pub(crate) fn new(shared: Shared) -> Self {
        WatchService { shared }
    }
}

#[async_trait::async_trait]
impl pb::watch_server::Watch for WatchService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let inbound = request.into_inner();
        let (out, rx) = mpsc::channel(OUTBOUND);
        let session = Session {
            shared: self.shared.clone(),
            out,
            watchers: HashMap::new(),
            tasks: JoinSet::new(),
            next_id: 0,
        };
        tokio::spawn(session.run(inbound));
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// One watch stream: its watchers and the channel to the client.
struct Session {
    shared: Shared,
    out: Outbound,
    watchers: HashMap<i64, AbortHandle>,
    tasks: JoinSet<i64>,
    next_id: i64,
}

impl Session {
    async fn run(mut self, mut inbound: Streaming<pb::WatchRequest>) {
        let mut open = true;
        loop {
            tokio::select! {
                message = inbound.message(), if open => match message {
                    Ok(Some(req)) => {
                        if !self.handle(req).await {
                            break;
                        }
                    }
                    // The client closed its side: keep serving the watchers (as etcd does)
                    // until it goes away.
                    Ok(None) => open = false,
                    Err(status) => {
                        tracing::debug!(%status, "etcd server: watch stream ended");
                        break;
                    }
                },
                ended = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Some(Ok(id)) = ended {
                        self.watchers.remove(&id);
                    }
                }
                () = self.out.closed() => break,
            }
        }
        // Dropping the join set aborts every watcher of the stream.
    }

    /// Handle one request; false when the client is gone.
    async fn handle(&mut self, req: pb::WatchRequest) -> bool {
        use pb::watch_request::RequestUnion;
        match req.request_union {
            Some(RequestUnion::CreateRequest(create)) => self.create(create).await,
            Some(RequestUnion::CancelRequest(cancel)) => {
                let id = cancel.watch_id;
                match self.watchers.remove(&id) {
                    Some(handle) => {
                        handle.abort();
                        let header = self.header().await;
                        self.send(pb::WatchResponse {
                            header,
                            watch_id: id,
                            canceled: true,
                            ..Default::default()
                        })
                        .await
                    }
                    // etcd ignores the cancel of a watcher it does not have.
                    None => {
                        tracing::debug!(watch_id = id, "etcd server: cancel of an unknown watch");
                        true
                    }
                }
            }
            Some(RequestUnion::ProgressRequest(_)) => {
                let header = self.header().await;
                self.send(pb::WatchResponse {
                    header,
                    watch_id: STREAM_WATCH_ID,
                    ..Default::default()
                })
                .await
            }
            // A request without a body: nothing to do, as etcd.
            None => true,
        }
    }

    async fn header(&self) -> Option<pb::ResponseHeader> {
        match self.shared.store.status().await {
            Ok(status) => self.shared.header(status.revision),
            Err(_) => self.shared.header(0),
        }
    }

    async fn send(&self, resp: pb::WatchResponse) -> bool {
        self.out.send(Ok(resp)).await.is_ok()
    }

    /// A created response that is also canceled, with etcd's reason.
    async fn refuse(&self, watch_id: i64, reason: &str) -> bool {
        let header = self.header().await;
        self.send(pb::WatchResponse {
            header,
            watch_id,
            created: true,
            canceled: true,
            cancel_reason: reason.to_string(),
            ..Default::default()
        })
        .await
    }

    fn choose_id(&mut self, asked: i64) -> Option<i64> {
        if asked != 0 {
            return (!self.watchers.contains_key(&asked)).then_some(asked);
        }
        while self.watchers.contains_key(&self.next_id) {
            self.next_id += 1;
        }
        let id = self.next_id;
        self.next_id += 1;
        Some(id)
    }

    async fn create(&mut self, create: pb::WatchCreateRequest) -> bool {
        let Some(id) = self.choose_id(create.watch_id) else {
            return self
                .refuse(
                    create.watch_id,
                    "mvcc: duplicate watch ID provided on the WatchStream",
                )
                .await;
        };
        if create.key.is_empty() && create.range_end.as_ref() != b"\0" {
            return self.refuse(id, NO_KEY).await;
        }
        let Some(range) = key_range(&create.key, &create.range_end) else {
            return self
                .refuse(id, "orchestra: the watch's range end is before its key")
                .await;
        };
        let filters = &create.filters;
        let noput = pb::watch_create_request::FilterType::Noput as i32;
        let nodelete = pb::watch_create_request::FilterType::Nodelete as i32;
        // From "now": the revision after the current one, which the created response names.
        let (start, created_revision) = if create.start_revision > 0 {
            let revision = match self.shared.store.status().await {
                Ok(status) => status.revision,
                Err(_) => 0,
            };
            (create.start_revision, revision)
        } else {
            match self.shared.store.status().await {
                Ok(status) => (status.revision + 1, status.revision),
                Err(err) => return self.refuse(id, &format!("orchestra: {err}")).await,
            }
        };
        let req = WatchRequest {
            range,
            start_revision: start,
            prev_kv: create.prev_kv,
            progress_notify: create.progress_notify,
            filter_puts: filters.contains(&noput),
            filter_deletes: filters.contains(&nodelete),
        };
        let stream = self.shared.store.watch(req).await;
        let created = pb::WatchResponse {
            header: self.shared.header(created_revision),
            watch_id: id,
            created: true,
            ..Default::default()
        };
        match stream {
            Ok(stream) => {
                if !self.send(created).await {
                    return false;
                }
                let watcher = Watcher {
                    shared: self.shared.clone(),
                    id,
                    out: self.out.clone(),
                };
                let handle = self.tasks.spawn(watcher.run(stream));
                self.watchers.insert(id, handle);
                true
            }
            Err(StoreError::Compacted {
                compact_revision, ..
            }) => {
                if !self.send(created).await {
                    return false;
                }
                self.send(compacted(
                    &self.shared,
                    id,
                    compact_revision,
                    created_revision,
                ))
                .await
            }
            Err(StoreError::FutureRevision { .. }) => self.refuse(id, FUTURE_REV).await,
            Err(err) => self.refuse(id, &format!("orchestra: {err}")).await,
        }
    }
}

/// etcd's response to a watcher whose start (or next) revision was compacted.
fn compacted(shared: &Shared, id: i64, compact_revision: i64, revision: i64) -> pb::WatchResponse {
    pb::WatchResponse {
        header: shared.header(revision),
        watch_id: id,
        canceled: true,
        compact_revision: compact_revision.max(1),
        cancel_reason: COMPACTED.to_string(),
        ..Default::default()
    }
}

/// One watcher: follows its store stream and sends each response with its id.
struct Watcher {
    shared: Shared,
    id: i64,
    out: Outbound,
}

impl Watcher {
    async fn run(self, mut stream: crate::watch::WatchStream) -> i64 {
        while let Some(item) = stream.next().await {
            let resp = match item {
                Ok(resp) => pb::WatchResponse {
                    header: self.shared.header(resp.header_revision),
                    watch_id: self.id,
                    events: resp.events.iter().cloned().map(event).collect(),
                    ..Default::default()
                },
                Err(err) => {
                    let status = self.shared.store.status().await.unwrap_or_default();
                    let resp = match err {
                        StoreError::Compacted {
                            compact_revision, ..
                        } => compacted(&self.shared, self.id, compact_revision, status.revision),
                        StoreError::Lagged { .. } => compacted(
                            &self.shared,
                            self.id,
                            status.compact_revision,
                            status.revision,
                        ),
                        other => pb::WatchResponse {
                            header: self.shared.header(status.revision),
                            watch_id: self.id,
                            canceled: true,
                            cancel_reason: format!("orchestra: {other}"),
                            ..Default::default()
                        },
                    };
                    let _ = self.out.send(Ok(resp)).await;
                    return self.id;
                }
            };
            if self.out.send(Ok(resp)).await.is_err() {
                break;
            }
        }
        self.id
    }
}

fn event(event: Event) -> mvccpb::Event {
    let kind = match event.kind {
        EventKind::Put => mvccpb::event::EventType::Put,
        EventKind::Delete => mvccpb::event::EventType::Delete,
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(key_value(event.kv)),
        prev_kv: event.prev_kv.map(key_value),
    }
}
