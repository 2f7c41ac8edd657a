//! [`EtcdStore`]: the [`Store`] trait over etcd's v3 gRPC API.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use prost::Message;
use tokio::sync::watch as signal;
use tonic::Status;

use crate::error::StoreError;
use crate::etcd::connection::{Connection, Retry, RpcError, max_response_bytes, request};
use crate::etcd::convert;
use crate::etcd::error::{EtcdError, Failure, Refusal, classify, describe};
use crate::etcd::options::EtcdOptions;
use crate::etcd::proto::etcdserverpb as pb;
use crate::etcd::proto::etcdserverpb::kv_client::KvClient;
use crate::etcd::proto::etcdserverpb::lease_client::LeaseClient;
use crate::etcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use crate::etcd::watch;
use crate::limits::check_range;
use crate::store::Store;
use crate::types::{
    KeyRange, KvHash, LeaseId, LeaseStatus, Op, OpResponse, RangeRequest, RangeResponse, Revision,
    StoreStatus, Txn, TxnResponse, WatchRequest,
};
use crate::watch::WatchStream;

/// The longest TTL etcd grants, in seconds.
const MAX_TTL_SECS: u64 = 9_000_000_000;

/// The key the revision probes read: the smallest key there is (a probe only wants the
/// response header, or the error that the revision is compacted).
const PROBE_KEY: &[u8] = b"\0";

/// A [`Store`] backed by an etcd cluster (etcd 3.4 or later) through its v3 gRPC API.
///
/// Cheap to clone: clones share the connections. Dropping the last clone ends its watches.
/// See the [module docs](crate::etcd) for the mapping of etcd's semantics.
#[derive(Clone, Debug)]
pub struct EtcdStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    conn: Arc<Connection>,
    /// A lower bound of the compact revision (in the store's terms, see `compact_and_current`;
    /// the last one found or made: it only grows).
    known_compact: AtomicI64,
    /// Dropped with the store, which ends every watch.
    _shutdown: signal::Sender<()>,
    shutdown: signal::Receiver<()>,
}

/// One member's view of the cluster, from its Maintenance.Status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberStatus {
    /// The member's id.
    pub member_id: u64,
    /// The leader's id as this member sees it (0: none).
    pub leader: u64,
    /// The member's revision (its applied state, not a linearizable read).
    pub revision: Revision,
    /// The member's database size in bytes.
    pub db_size: u64,
    /// The member's etcd version.
    pub version: String,
}

impl MemberStatus {
    /// True when the member believes it is the leader.
    pub fn is_leader(&self) -> bool {
        self.member_id != 0 && self.member_id == self.leader
    }
}

/// Context for turning etcd's refusal of a request into a precise [`StoreError`].
enum Context<'a> {
    Range(&'a RangeRequest),
    Txn(&'a Txn),
    /// A compaction, or a HashKV, at a revision.
    Compact(Revision),
    Lease(LeaseId),
    Grant(LeaseId, Duration),
    Status,
}

impl EtcdStore {
    /// Connect to etcd: prepare channels to every endpoint and check that one answers.
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use orchestra_store::etcd::{EtcdOptions, EtcdStore};
    /// use orchestra_store::StoreExt;
    /// let store = EtcdStore::connect(EtcdOptions::new(["http://127.0.0.1:2379"])).await?;
    /// store.put("/hello", "world").await?;
    /// # Ok(()) }
    /// ```
    pub async fn connect(options: EtcdOptions) -> Result<EtcdStore, EtcdError> {
        let conn = Connection::connect(options).await?;
        let (shutdown_tx, shutdown) = signal::channel(());
        Ok(EtcdStore {
            inner: Arc::new(Inner {
                conn: Arc::new(conn),
                known_compact: AtomicI64::new(0),
                _shutdown: shutdown_tx,
                shutdown,
            }),
        })
    }

    /// The options the store was connected with.
    pub fn options(&self) -> &EtcdOptions {
        self.inner.conn.options()
    }

    /// The URL of the endpoint requests go to now.
    pub fn current_endpoint(&self) -> String {
        let (index, _) = self.inner.conn.unary();
        self.inner.conn.url(index).to_string()
    }

    /// Ask every endpoint for its status (like `etcdctl endpoint status`), each within the
    /// connect timeout; one result per endpoint, in the order of the options.
    pub async fn member_statuses(&self) -> Vec<(String, Result<MemberStatus, StoreError>)> {
        let conn = &self.inner.conn;
        let timeout = conn.options().connect_timeout;
        let mut statuses = Vec::new();
        for (index, slot) in conn.slots().iter().enumerate() {
            let mut client = MaintenanceClient::new(conn.unary_at(index));
            let answer =
                tokio::time::timeout(timeout, client.status(request(pb::StatusRequest {})));
            let status = match answer.await {
                Ok(Ok(resp)) => {
                    let resp = resp.into_inner();
                    Ok(MemberStatus {
                        member_id: resp.header.as_ref().map_or(0, |h| h.member_id),
                        leader: resp.leader,
                        revision: convert::header_revision(resp.header.as_ref()),
                        db_size: u64::try_from(resp.db_size).unwrap_or(0),
                        version: resp.version,
                    })
                }
                Ok(Err(status)) => Err(StoreError::Io(describe(&status))),
                Err(_) => Err(StoreError::Io(format!("no answer within {timeout:?}"))),
            };
            statuses.push((slot.url.clone(), status));
        }
        statuses
    }

    fn kv(channel: tonic::transport::Channel) -> KvClient<tonic::transport::Channel> {
        KvClient::new(channel).max_decoding_message_size(max_response_bytes())
    }

    /// Read the latest revision with a linearizable read.
    async fn current_revision(&self) -> Result<Revision, StoreError> {
        match self.probe(0).await? {
            Some(revision) => Ok(revision),
            None => Err(StoreError::Other(
                "etcd reported the latest revision as compacted".to_string(),
            )),
        }
    }

    /// Read at `revision` (0: the latest): `Some(current revision)` when it can be read,
    /// `None` when it has been compacted.
    async fn probe(&self, revision: Revision) -> Result<Option<Revision>, StoreError> {
        let req = pb::RangeRequest {
            key: Bytes::from_static(PROBE_KEY),
            revision,
            count_only: true,
            ..Default::default()
        };
        let result = self
            .inner
            .conn
            .call("range (revision probe)", Retry::Idempotent, |channel| {
                let req = req.clone();
                async move { Self::kv(channel).range(request(req)).await }
            })
            .await;
        match result {
            Ok(resp) => Ok(Some(convert::header_revision(resp.header.as_ref()))),
            Err(RpcError::Refused(status))
                if classify(&status) == Failure::Refused(Refusal::Compacted) =>
            {
                Ok(None)
            }
            Err(RpcError::Refused(status)) => Err(StoreError::Other(format!(
                "etcd refused a revision probe: {}",
                describe(&status)
            ))),
            Err(RpcError::Unavailable(why)) => Err(StoreError::Io(why)),
        }
    }

    /// The compact revision and the current revision.
    ///
    /// The store's compact revision is etcd's plus one. etcd keeps the state at its compact
    /// revision but drops the delete events of that very revision (their tombstones go with
    /// the compaction), so a watch from it would silently miss them; the store therefore
    /// treats that revision as compacted too: `compact(c)` compacts etcd at `c - 1`, reads and
    /// watches below `c` fail with `Compacted`, and a watch from `c` replays `c` exactly.
    ///
    /// etcd 3.4 does not report its compact revision, so it is found by reading at revisions:
    /// etcd's compact revision is the smallest one that can be read. It only grows, so the
    /// last one found is checked first (one read when nothing changed), then a binary search.
    /// (When that smallest revision is 1, etcd's compact revision is 0, 1 or nothing, which
    /// reads cannot tell apart; the store then reports the compaction it made itself, if any.)
    async fn compact_and_current(&self) -> Result<(Revision, Revision), StoreError> {
        let current = self.current_revision().await?;
        let known = self.inner.known_compact.load(Ordering::Relaxed);
        let low = (known - 1).clamp(1, current.max(1));
        let smallest = if self.probe(low).await?.is_some() {
            low
        } else {
            // Invariant: `bad` cannot be read, `good` can (the current revision always can).
            let (mut bad, mut good) = (low, current);
            while good - bad > 1 {
                let mid = bad + (good - bad) / 2;
                match self.probe(mid).await? {
                    Some(_) => good = mid,
                    None => bad = mid,
                }
            }
            good
        };
        let compact = if smallest > 1 {
            smallest + 1
        } else {
            known.clamp(0, 2)
        };
        self.inner
            .known_compact
            .fetch_max(compact, Ordering::Relaxed);
        Ok((compact.min(current), current))
    }

    /// The compact revision, or the last one known when etcd cannot be asked.
    async fn compact_revision(&self) -> Revision {
        match self.compact_and_current().await {
            Ok((compact, _)) => compact,
            Err(_) => self.inner.known_compact.load(Ordering::Relaxed),
        }
    }

    /// Turn a failed call into a [`StoreError`], asking etcd for what its error leaves out
    /// (the compact or current revision, the unknown lease).
    async fn error(&self, err: RpcError, context: Context<'_>) -> StoreError {
        let status = match err {
            RpcError::Unavailable(why) => return StoreError::Io(why),
            RpcError::Refused(status) => status,
        };
        let refusal = match classify(&status) {
            Failure::Refused(refusal) => refusal,
            _ => Refusal::Other,
        };
        let limits = self.inner.conn.options().limits;
        match (refusal, &context) {
            (Refusal::Compacted, _) => {
                let compact_revision = self.compact_revision().await;
                let requested = match context {
                    Context::Range(req) => req.revision,
                    Context::Compact(revision) => revision,
                    Context::Txn(txn) => txn_read_revisions(txn)
                        .filter(|&r| r < compact_revision)
                        .min()
                        .unwrap_or(0),
                    _ => 0,
                };
                StoreError::Compacted {
                    requested,
                    compact_revision,
                }
            }
            (Refusal::FutureRevision, _) => {
                let current = self.current_revision().await.unwrap_or(0);
                let requested = match context {
                    Context::Range(req) => req.revision,
                    Context::Compact(revision) => revision,
                    Context::Txn(txn) => txn_read_revisions(txn)
                        .filter(|&r| r > current)
                        .max()
                        .unwrap_or(0),
                    _ => 0,
                };
                StoreError::FutureRevision { requested, current }
            }
            (Refusal::LeaseNotFound, Context::Lease(id)) => StoreError::LeaseNotFound(*id),
            (Refusal::LeaseNotFound, Context::Txn(txn)) => {
                StoreError::LeaseNotFound(self.unknown_lease(txn).await)
            }
            (Refusal::TooLarge, _) => {
                let size = match context {
                    Context::Txn(txn) => convert::txn_request(txn).encoded_len(),
                    Context::Range(req) => convert::range_request(req).encoded_len(),
                    _ => 0,
                };
                // etcd does not say its limit; the configured one, unless the request was
                // within it (then the server's limit is lower than configured).
                let limit = if size > limits.max_request_bytes {
                    limits.max_request_bytes
                } else {
                    size.saturating_sub(1)
                };
                StoreError::RequestTooLarge { size, limit }
            }
            (Refusal::TooManyOps, Context::Txn(txn)) => {
                let ops = txn
                    .compares
                    .len()
                    .max(txn.success.len())
                    .max(txn.failure.len());
                StoreError::TooManyOps {
                    ops,
                    limit: limits.max_txn_ops.min(ops.saturating_sub(1)),
                }
            }
            (Refusal::DuplicateKey, _) => StoreError::DuplicateKey {
                key: "(etcd does not name the key)".to_string(),
            },
            (Refusal::EmptyKey, _) => StoreError::EmptyKey,
            (Refusal::TtlTooLarge, Context::Grant(_, ttl)) => invalid_ttl(*ttl),
            (Refusal::LeaseExists, Context::Grant(id, _)) => StoreError::LeaseExists(*id),
            _ => StoreError::Other(format!("etcd refused the request: {}", describe(&status))),
        }
    }

    /// Send a transaction as it is: `Err(Ok)` for a malformed answer, `Err(Err)` for a failed
    /// call (to be mapped with its context).
    async fn send_txn(
        &self,
        txn: &Txn,
        retry: Retry,
    ) -> Result<TxnResponse, Result<StoreError, RpcError>> {
        let message = convert::txn_request(txn);
        let result = self
            .inner
            .conn
            .call("txn", retry, |channel| {
                let message = message.clone();
                async move { Self::kv(channel).txn(request(message)).await }
            })
            .await;
        match result {
            Ok(resp) => convert::txn_response(txn, resp).map_err(Ok),
            Err(err) => Err(Err(err)),
        }
    }

    /// The lease a transaction names that etcd does not know (its error does not say which).
    async fn unknown_lease(&self, txn: &Txn) -> LeaseId {
        let mut leases: Vec<LeaseId> = txn
            .success
            .iter()
            .chain(&txn.failure)
            .filter_map(|op| match op {
                Op::Put(put) if put.lease != 0 => Some(put.lease),
                _ => None,
            })
            .collect();
        leases.dedup();
        for &id in &leases {
            if let Err(StoreError::LeaseNotFound(_)) = self.lease_time_to_live(id).await {
                return id;
            }
        }
        leases.first().copied().unwrap_or(0)
    }
}

/// A read of nothing at `revision`: it fails exactly when `revision` is compacted in etcd.
fn probe_at(revision: Revision) -> RangeRequest {
    RangeRequest {
        range: KeyRange::single(Bytes::from_static(PROBE_KEY)),
        revision,
        count_only: true,
        ..Default::default()
    }
}

/// The revisions a transaction's ranges read at (0s excluded: they read the latest).
fn txn_read_revisions(txn: &Txn) -> impl Iterator<Item = Revision> + '_ {
    txn.success
        .iter()
        .chain(&txn.failure)
        .filter_map(|op| match op {
            Op::Range(r) if r.revision > 0 => Some(r.revision),
            _ => None,
        })
}

fn invalid_ttl(ttl: Duration) -> StoreError {
    StoreError::InvalidTtl {
        ttl_ms: ttl.as_millis(),
        min_ms: 1,
        max_ms: u128::from(MAX_TTL_SECS) * 1000,
    }
}

/// A TTL in etcd's whole seconds, rounded up so that a lease never expires before its TTL.
fn ttl_secs(ttl: Duration) -> Result<i64, StoreError> {
    let secs = ttl
        .as_secs()
        .saturating_add(u64::from(ttl.subsec_nanos() > 0));
    if ttl.is_zero() || secs > MAX_TTL_SECS {
        return Err(invalid_ttl(ttl));
    }
    i64::try_from(secs).map_err(|_| invalid_ttl(ttl))
}

fn secs(seconds: i64) -> Duration {
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

#[async_trait]
impl Store for EtcdStore {
    async fn range(&self, req: RangeRequest) -> Result<RangeResponse, StoreError> {
        check_range(&req.range)?;
        if req.revision > 1 {
            // A read at a past revision goes in a read-only transaction after a probe of the
            // revision before it, which fails when etcd compacted at the revision read (see
            // `compact_and_current`): one round trip, no race.
            let txn = Txn::new().and_then([
                Op::Range(probe_at(req.revision - 1)),
                Op::Range(req.clone()),
            ]);
            return match self.send_txn(&txn, Retry::Idempotent).await {
                Ok(resp) => match resp.responses.into_iter().nth(1) {
                    Some(OpResponse::Range(range)) => Ok(range),
                    other => Err(StoreError::Other(format!(
                        "etcd answered a read with {other:?}"
                    ))),
                },
                Err(Ok(err)) => Err(err),
                Err(Err(err)) => Err(self.error(err, Context::Range(&req)).await),
            };
        }
        let message = convert::range_request(&req);

        let result = self
            .inner
            .conn
            .call("range", Retry::Idempotent, |channel| {
                let message = message.clone();
                async move { Self::kv(channel).range(request(message)).await }
            })
            .await;
        match result {
            Ok(resp) => Ok(convert::range_response(resp, 0)),
            Err(err) => Err(self.error(err, Context::Range(&req)).await),
        }
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, StoreError> {
        let limits = self.inner.conn.options().limits;
        limits.check_txn(&txn)?;
        let retry = if convert::writes(&txn) {
            Retry::Once
        } else {
            Retry::Idempotent
        };
        // Reads at past revisions get a probe of the revision before the oldest of them, first
        // in their branch (see `range`); a branch with no room left is probed beforehand.
        let mut sent = txn.clone();
        let mut probed = [false, false];
        for (branch, probed) in [&mut sent.success, &mut sent.failure]
            .into_iter()
            .zip(&mut probed)
        {
            let oldest = branch
                .iter()
                .filter_map(|op| match op {
                    Op::Range(r) if r.revision > 1 => Some(r.revision),
                    _ => None,
                })
                .min();
            let Some(oldest) = oldest else { continue };
            if branch.len() < limits.max_txn_ops {
                branch.insert(0, Op::Range(probe_at(oldest - 1)));
                *probed = true;
            } else if self.probe(oldest - 1).await?.is_none() {
                let compact_revision = self.compact_revision().await;
                return Err(StoreError::Compacted {
                    requested: oldest,
                    compact_revision,
                });
            }
        }
        match self.send_txn(&sent, retry).await {
            Ok(mut resp) => {
                let ran = if resp.succeeded { probed[0] } else { probed[1] };
                if ran && !resp.responses.is_empty() {
                    resp.responses.remove(0);
                }
                Ok(resp)
            }
            Err(Ok(err)) => Err(err),
            Err(Err(err)) => Err(self.error(err, Context::Txn(&txn)).await),
        }
    }

    async fn watch(&self, req: WatchRequest) -> Result<WatchStream, StoreError> {
        watch::open(self.inner.conn.clone(), req, self.inner.shutdown.clone()).await
    }

    async fn compact(&self, revision: Revision) -> Result<(), StoreError> {
        // etcd would compact at `revision - 1` even when `revision` is one past its current
        // revision: refuse that here.
        let current = self.current_revision().await?;
        if revision > current {
            return Err(StoreError::FutureRevision {
                requested: revision,
                current,
            });
        }
        // The store's compact revision is etcd's plus one (see `compact_and_current`).
        let message = pb::CompactionRequest {
            revision: revision - 1,
            physical: true,
        };
        let result = self
            .inner
            .conn
            .call("compact", Retry::Once, |channel| async move {
                Self::kv(channel).compact(request(message)).await
            })
            .await;
        match result {
            Ok(_) => {
                self.inner
                    .known_compact
                    .fetch_max(revision, Ordering::Relaxed);
                Ok(())
            }
            Err(err) => Err(self.error(err, Context::Compact(revision)).await),
        }
    }

    async fn lease_grant(&self, ttl: Duration) -> Result<LeaseId, StoreError> {
        self.lease_grant_id(0, ttl).await
    }

    async fn lease_grant_id(&self, id: LeaseId, ttl: Duration) -> Result<LeaseId, StoreError> {
        let message = pb::LeaseGrantRequest {
            ttl: ttl_secs(ttl)?,
            id,
        };
        let result = self
            .inner
            .conn
            .call("lease grant", Retry::Once, |channel| async move {
                LeaseClient::new(channel)
                    .lease_grant(request(message))
                    .await
            })
            .await;
        match result {
            Ok(resp) if !resp.error.is_empty() => Err(StoreError::Other(format!(
                "etcd refused the lease: {}",
                resp.error
            ))),
            Ok(resp) => Ok(resp.id),
            Err(err) => Err(self.error(err, Context::Grant(id, ttl)).await),
        }
    }

    async fn lease_keep_alive(&self, id: LeaseId) -> Result<Duration, StoreError> {
        let result = self
            .inner
            .conn
            .call(
                "lease keep-alive",
                Retry::Idempotent,
                |channel| async move {
                    // One renewal on a stream of its own; the request side stays open until the
                    // answer is in (etcd ends its side when ours ends).
                    let outbound = futures::stream::iter([pb::LeaseKeepAliveRequest { id }])
                        .chain(futures::stream::pending());
                    let mut answers = LeaseClient::new(channel)
                        .lease_keep_alive(request(outbound))
                        .await?
                        .into_inner();
                    match answers.message().await? {
                        Some(answer) => Ok(tonic::Response::new(answer)),
                        None => Err(Status::unavailable(
                            "etcd ended the keep-alive stream without an answer",
                        )),
                    }
                },
            )
            .await;
        match result {
            Ok(resp) if resp.ttl <= 0 => Err(StoreError::LeaseNotFound(id)),
            Ok(resp) => Ok(secs(resp.ttl)),
            Err(err) => Err(self.error(err, Context::Lease(id)).await),
        }
    }

    async fn lease_revoke(&self, id: LeaseId) -> Result<(), StoreError> {
        let result = self
            .inner
            .conn
            .call("lease revoke", Retry::Once, |channel| async move {
                LeaseClient::new(channel)
                    .lease_revoke(request(pb::LeaseRevokeRequest { id }))
                    .await
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) => Err(self.error(err, Context::Lease(id)).await),
        }
    }

    async fn lease_time_to_live(&self, id: LeaseId) -> Result<LeaseStatus, StoreError> {
        let message = pb::LeaseTimeToLiveRequest { id, keys: true };
        let result = self
            .inner
            .conn
            .call(
                "lease time-to-live",
                Retry::Idempotent,
                |channel| async move {
                    LeaseClient::new(channel)
                        .max_decoding_message_size(max_response_bytes())
                        .lease_time_to_live(request(message))
                        .await
                },
            )
            .await;
        match result {
            // etcd answers an unknown lease with a TTL of -1.
            Ok(resp) if resp.ttl < 0 => Err(StoreError::LeaseNotFound(id)),
            Ok(resp) => Ok(LeaseStatus {
                id,
                granted_ttl: secs(resp.granted_ttl),
                remaining: secs(resp.ttl),
                keys: resp.keys,
            }),
            Err(err) => Err(self.error(err, Context::Lease(id)).await),
        }
    }

    async fn lease_list(&self) -> Result<Vec<LeaseId>, StoreError> {
        let result = self
            .inner
            .conn
            .call("lease list", Retry::Idempotent, |channel| async move {
                LeaseClient::new(channel)
                    .max_decoding_message_size(max_response_bytes())
                    .lease_leases(request(pb::LeaseLeasesRequest {}))
                    .await
            })
            .await;
        match result {
            Ok(resp) => {
                let mut ids: Vec<LeaseId> = resp.leases.into_iter().map(|l| l.id).collect();
                ids.sort_unstable();
                Ok(ids)
            }
            Err(err) => Err(self.error(err, Context::Status).await),
        }
    }

    async fn status(&self) -> Result<StoreStatus, StoreError> {
        let result = self
            .inner
            .conn
            .call("status", Retry::Idempotent, |channel| async move {
                MaintenanceClient::new(channel)
                    .status(request(pb::StatusRequest {}))
                    .await
            })
            .await;
        let db_size = match result {
            Ok(resp) => u64::try_from(resp.db_size).unwrap_or(0),
            Err(err) => return Err(self.error(err, Context::Status).await),
        };
        let (compact_revision, revision) = self.compact_and_current().await?;
        Ok(StoreStatus {
            revision,
            compact_revision,
            db_size,
        })
    }

    /// etcd's Maintenance.HashKV, as the server computes it.
    async fn hash_kv(&self, revision: Revision) -> Result<KvHash, StoreError> {
        let result = self
            .inner
            .conn
            .call("hash_kv", Retry::Idempotent, |channel| async move {
                MaintenanceClient::new(channel)
                    .hash_kv(request(pb::HashKvRequest { revision }))
                    .await
            })
            .await;
        match result {
            Ok(resp) => Ok(KvHash {
                hash: resp.hash,
                revision: resp.header.map_or(0, |h| h.revision),
                compact_revision: resp.compact_revision,
            }),
            Err(err) => Err(self.error(err, Context::Compact(revision)).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_round_up_to_whole_seconds() {
        assert_eq!(ttl_secs(Duration::from_secs(10)), Ok(10));
        assert_eq!(ttl_secs(Duration::from_millis(1500)), Ok(2));
        assert_eq!(ttl_secs(Duration::from_millis(1)), Ok(1));
        assert!(matches!(
            ttl_secs(Duration::ZERO),
            Err(StoreError::InvalidTtl { .. })
        ));
        assert!(matches!(
            ttl_secs(Duration::MAX),
            Err(StoreError::InvalidTtl { .. })
        ));
    }
}
