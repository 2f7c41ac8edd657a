//! Watches over etcd: one gRPC watch stream per [`WatchStream`], followed by a task that
//! reconnects (to the next endpoint when there are several) and resumes where it left off.
//!
//! # Why each watch follows the whole keyspace
//! Every watch asks etcd for the events of *every* key and filters them here. Revisions are
//! dense (each revision after the first is one write transaction with at least one event), so
//! a watcher of every key knows exactly which revisions it has seen: after the events of
//! revision `r`, everything up to `r` has been delivered. That knowledge gives three
//! guarantees that etcd 3.4 alone does not:
//! - progress notifications that are never early: etcd 3.4 answers a `WatchProgressRequest`
//!   on its control path, possibly before events still queued for the watcher, and even to a
//!   watcher still catching up from history; here the answer (the revision etcd reports) is
//!   held back until every revision up to it has been seen;
//! - resumption without gap or duplicate: after a lost connection the watch is re-created
//!   from the last revision seen plus one, whatever the watch's own range;
//! - the exact revision a watcher missed when its history was compacted.
//!
//! The price is bandwidth: a watch receives the events of keys it does not select. A later
//! version can watch only the requested range on etcd releases whose progress requests are
//! ordered (3.4.25+ and 3.5.8+ fixed them).
//!
//! Flow control: the task forwards events into a small channel and stops reading from etcd
//! while that channel is full; the watch connection's small HTTP/2 stream window then makes
//! etcd, not this client, hold the backlog, so that etcd notices a watcher that fell behind
//! its compaction and cancels it with the compact revision, which ends the stream with
//! [`StoreError::Compacted`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch as signal};
use tokio::time::Instant;
use tonic::Streaming;

use crate::error::StoreError;
use crate::etcd::connection::{Connection, max_response_bytes, request};
use crate::etcd::convert;
use crate::etcd::error::describe;
use crate::etcd::proto::etcdserverpb as pb;
use crate::etcd::proto::etcdserverpb::watch_client::WatchClient;
use crate::limits::check_range;
use crate::types::{Revision, WatchRequest, WatchResponse};
use crate::watch::{WatchControl, WatchStream};

/// How many responses a watch buffers for its reader before it stops reading from etcd.
const BUFFERED_RESPONSES: usize = 8;
/// The watch id etcd uses for progress notifications that concern the whole stream.
const STREAM_WATCH_ID: i64 = -1;
/// The first and the longest pause between two reconnection attempts.
const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(20);
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

type Item = Result<WatchResponse, StoreError>;

/// A created etcd watcher: the request side of its stream, its responses, and where it is.
struct Established {
    requests: mpsc::UnboundedSender<pb::WatchRequest>,
    responses: Streaming<pb::WatchResponse>,
    /// The endpoint it is connected to.
    endpoint: usize,
    /// The store revision when it was created (it delivers from the one after, when asked to
    /// start "now").
    created_revision: Revision,
}

/// Why a watcher could not be created.
enum OpenError {
    /// The connection failed or timed out; try again, elsewhere.
    Transient(String),
    /// etcd refused to create it.
    Refused(String),
}

/// Start a watch: create the etcd watcher (retrying and failing over within the request
/// timeout), then hand it to a task.
pub(crate) async fn open(
    conn: Arc<Connection>,
    req: WatchRequest,
    shutdown: signal::Receiver<()>,
) -> Result<WatchStream, StoreError> {
    check_range(&req.range)?;
    let timeout = conn.options().request_timeout;
    let deadline = Instant::now() + timeout;
    let start = req.start_revision.max(0);
    let mut backoff = RECONNECT_BACKOFF_MIN;
    // From a revision `r`, etcd is asked for `r - 1` on and the events of `r - 1` are dropped:
    // etcd then refuses exactly when `r` is compacted in the store's terms (the store's compact
    // revision is etcd's plus one, see `EtcdStore`'s `compact_and_current`).
    let from = if start > 1 { start - 1 } else { start };
    let established = loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let (endpoint, _) = conn.watch();
        match create(&conn, endpoint, from, &req, remaining).await {
            Ok(established) => break established,
            Err(OpenError::Refused(reason)) => {
                return Err(StoreError::Other(format!(
                    "etcd refused to create the watch: {reason}"
                )));
            }
            Err(OpenError::Transient(reason)) => {
                conn.fail_over(endpoint);
                if Instant::now() + backoff >= deadline {
                    return Err(StoreError::Io(format!(
                        "etcd watch: could not create it within {timeout:?}: {reason}"
                    )));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
            }
        }
    };
    let seen = if start > 0 {
        start - 1
    } else {
        established.created_revision
    };
    let (out, items) = mpsc::channel(BUFFERED_RESPONSES);
    let (control, progress_requests) = mpsc::unbounded_channel();
    let task = Follower {
        conn,
        request: req,
        seen,
        targets: VecDeque::new(),
        unanswered: 0,
        out,
        progress_requests,
        shutdown,
    };
    tokio::spawn(task.run(established));
    let stream = futures::stream::unfold(items, |mut items| async move {
        items.recv().await.map(|item| (item, items))
    });
    Ok(WatchStream::new(stream, Control(control)))
}

/// Asks the follower task for progress notifications.
struct Control(mpsc::UnboundedSender<()>);

impl WatchControl for Control {
    fn request_progress(&self) {
        // Fails only when the task has ended, and then the stream has ended too.
        let _ = self.0.send(());
    }
}

/// Create an etcd watcher of every key from `start` (0: now) on endpoint `endpoint`.
async fn create(
    conn: &Connection,
    endpoint: usize,
    start: Revision,
    req: &WatchRequest,
    timeout: Duration,
) -> Result<Established, OpenError> {
    let attempt = async {
        let (requests, outbound) = mpsc::unbounded_channel();
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    // Every key: from the zero byte on, without end.
                    key: bytes::Bytes::from_static(b"\0"),
                    range_end: bytes::Bytes::from_static(b"\0"),
                    start_revision: start,
                    progress_notify: req.progress_notify,
                    prev_kv: req.prev_kv,
                    ..Default::default()
                },
            )),
        };
        // The receiver lives in `outbound` below; this send cannot fail.
        let _ = requests.send(create);
        let outbound = futures::stream::unfold(outbound, |mut rx| async move {
            rx.recv().await.map(|message| (message, rx))
        });
        let channel = conn.watch_at(endpoint);
        let mut client = WatchClient::new(channel).max_decoding_message_size(max_response_bytes());
        let response = client
            .watch(request(outbound))
            .await
            .map_err(|status| OpenError::Transient(describe(&status)))?;
        let mut responses = response.into_inner();
        loop {
            match responses.message().await {
                Ok(Some(resp)) if resp.created => {
                    if resp.canceled {
                        return Err(OpenError::Refused(resp.cancel_reason));
                    }
                    return Ok(Established {
                        requests,
                        responses,
                        endpoint,
                        created_revision: convert::header_revision(resp.header.as_ref()),
                    });
                }
                // Nothing else can come before the created response; skip it if it does.
                Ok(Some(_)) => continue,
                Ok(None) => {
                    return Err(OpenError::Transient(
                        "etcd closed the watch stream before creating the watcher".to_string(),
                    ));
                }
                Err(status) => return Err(OpenError::Transient(describe(&status))),
            }
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(OpenError::Transient(format!(
            "{}: no answer within {timeout:?}",
            conn.url(endpoint)
        ))),
    }
}

/// What to do after a stream stopped.
enum Next {
    /// The watch is over (it delivered its error, or nobody reads it any more).
    End,
    /// The stream broke; create the watcher again.
    Reconnect(String),
}

/// The task behind one [`WatchStream`].
struct Follower {
    conn: Arc<Connection>,
    /// The watch as the caller asked for it (range, filters, prev_kv, progress_notify).
    request: WatchRequest,
    /// Every revision up to here has been seen (and its selected events forwarded).
    seen: Revision,
    /// Progress answers from etcd waiting until every revision up to them has been seen.
    targets: VecDeque<Revision>,
    /// Progress requests sent on the current stream and not answered yet.
    unanswered: usize,
    out: mpsc::Sender<Item>,
    progress_requests: mpsc::UnboundedReceiver<()>,
    shutdown: signal::Receiver<()>,
}

impl Follower {
    async fn run(mut self, mut stream: Established) {
        loop {
            match self.follow(&mut stream).await {
                Next::End => return,
                Next::Reconnect(reason) => {
                    tracing::debug!(endpoint = %self.conn.url(stream.endpoint), %reason, resume_from = self.seen + 1, "etcd watch lost its stream");
                    self.conn.fail_over(stream.endpoint);
                    match self.reconnect(reason).await {
                        Some(next) => stream = next,
                        None => return,
                    }
                }
            }
        }
    }

    /// Follow one stream until it breaks or the watch is over.
    async fn follow(&mut self, stream: &mut Established) -> Next {
        loop {
            tokio::select! {
                () = self.out.closed() => return Next::End,
                changed = self.shutdown.changed() => {
                    if changed.is_err() {
                        return Next::End;
                    }
                }
                wanted = self.progress_requests.recv() => {
                    if wanted.is_none() {
                        return Next::End;
                    }
                    // Counted even when the stream is already gone: after reconnecting, every
                    // unanswered request is sent again.
                    let sent = stream.requests.send(progress_request()).is_ok();
                    self.unanswered += 1;
                    tracing::trace!(sent, unanswered = self.unanswered, "etcd watch: progress requested");
                }
                message = stream.responses.message() => match message {
                    Ok(Some(resp)) => {
                        if let Some(next) = self.handle(resp).await {
                            return next;
                        }
                    }
                    Ok(None) => return Next::Reconnect("etcd ended the watch stream".to_string()),
                    Err(status) => return Next::Reconnect(describe(&status)),
                },
            }
        }
    }

    /// Handle one response from etcd; `Some` when the stream is done with.
    async fn handle(&mut self, resp: pb::WatchResponse) -> Option<Next> {
        let header = convert::header_revision(resp.header.as_ref());
        tracing::trace!(
            watch_id = resp.watch_id,
            created = resp.created,
            canceled = resp.canceled,
            compact_revision = resp.compact_revision,
            events = resp.events.len(),
            header,
            seen = self.seen,
            "etcd watch response"
        );
        if resp.compact_revision != 0 {
            // The store's compact revision is etcd's plus one.
            let err = StoreError::Compacted {
                requested: self.seen + 1,
                compact_revision: resp.compact_revision + 1,
            };
            self.emit(Err(err)).await;
            return Some(Next::End);
        }
        if resp.canceled {
            // etcd cancels a watch whose member lost its leader (we asked with `hasleader`):
            // resume elsewhere. Any other reason is final.
            let reason = resp.cancel_reason;
            if reason.is_empty() || reason.contains("no leader") {
                return Some(Next::Reconnect(format!(
                    "etcd canceled the watch: {reason:?}"
                )));
            }
            self.emit(Err(StoreError::Other(format!(
                "etcd canceled the watch: {reason}"
            ))))
            .await;
            return Some(Next::End);
        }
        if resp.created {
            return None;
        }
        if resp.events.is_empty() {
            if resp.watch_id == STREAM_WATCH_ID {
                // The answer to a progress request: the store's revision then. It is sent on
                // etcd's control path, unordered with the events, so hold it back until every
                // revision up to it has been seen.
                self.unanswered = self.unanswered.saturating_sub(1);
                self.targets.push_back(header);
            } else {
                // A periodic notification of this watcher (progress_notify): etcd sends it in
                // order with the events and only once the watcher is in sync.
                self.seen = self.seen.max(header);
                if self.request.progress_notify
                    && !self
                        .emit(Ok(WatchResponse {
                            header_revision: header,
                            events: Vec::new().into(),
                        }))
                        .await
                {
                    return Some(Next::End);
                }
            }
            return self.answer_progress().await;
        }
        let before = self.seen;
        let mut last = before;
        let mut selected = Vec::new();
        for event in resp.events {
            let event = match convert::event(event) {
                Ok(event) => event,
                Err(err) => {
                    self.emit(Err(err)).await;
                    return Some(Next::End);
                }
            };
            let revision = event.kv.mod_revision;
            // Never deliver a revision twice, whatever the server sends.
            if revision <= before {
                continue;
            }
            last = last.max(revision);
            if self.request.matches(&event) {
                selected.push(event);
            }
        }
        if let Some(newest) = selected.last() {
            let response = WatchResponse {
                header_revision: newest.kv.mod_revision,
                events: selected.into(),
            };
            if !self.emit(Ok(response)).await {
                return Some(Next::End);
            }
        }
        self.seen = last;
        self.answer_progress().await
    }

    /// Deliver the progress answers that every revision seen so far now covers.
    async fn answer_progress(&mut self) -> Option<Next> {
        while let Some(&target) = self.targets.front() {
            if target > self.seen {
                break;
            }
            self.targets.pop_front();
            let progress = WatchResponse {
                header_revision: target,
                events: Vec::new().into(),
            };
            if !self.emit(Ok(progress)).await {
                return Some(Next::End);
            }
        }
        None
    }

    /// Hand an item to the reader; false when nobody reads any more.
    async fn emit(&self, item: Item) -> bool {
        self.out.send(item).await.is_ok()
    }

    /// Create the watcher again from the revision after the last one seen, on the current
    /// endpoint (failing over on each failure), until it works or the reconnect timeout runs
    /// out.
    async fn reconnect(&mut self, mut reason: String) -> Option<Established> {
        let options = self.conn.options().clone();
        let started = Instant::now();
        let mut backoff = RECONNECT_BACKOFF_MIN;
        loop {
            if started.elapsed() >= options.watch_reconnect_timeout {
                let err = StoreError::Io(format!(
                    "etcd watch lost its connection ({reason}) and could not resume from revision {} within {:?}",
                    self.seen + 1,
                    options.watch_reconnect_timeout
                ));
                self.emit(Err(err)).await;
                return None;
            }
            let (endpoint, _) = self.conn.watch();
            // From the last revision seen (its events are dropped as duplicates), so that etcd
            // refuses when the next one is compacted in the store's terms (see `open`).
            match create(
                &self.conn,
                endpoint,
                self.seen.max(1),
                &self.request,
                options.request_timeout,
            )
            .await
            {
                Ok(stream) => {
                    tracing::debug!(endpoint = %self.conn.url(endpoint), from = self.seen + 1, "etcd watch resumed");
                    // Progress requests of the broken stream will never be answered: ask again.
                    for _ in 0..self.unanswered {
                        let _ = stream.requests.send(progress_request());
                    }
                    return Some(stream);
                }
                Err(OpenError::Refused(why)) => {
                    self.emit(Err(StoreError::Other(format!(
                        "etcd refused to resume the watch from revision {}: {why}",
                        self.seen + 1
                    ))))
                    .await;
                    return None;
                }
                Err(OpenError::Transient(why)) => {
                    reason = why;
                    self.conn.fail_over(endpoint);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = self.out.closed() => return None,
                changed = self.shutdown.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                }
            }
            backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
        }
    }
}

fn progress_request() -> pb::WatchRequest {
    pb::WatchRequest {
        request_union: Some(pb::watch_request::RequestUnion::ProgressRequest(
            pb::WatchProgressRequest {},
        )),
    }
}
