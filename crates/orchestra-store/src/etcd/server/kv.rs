//! The KV service: Range, Put, DeleteRange, Txn and Compact over a [`Store`](crate::Store).

use bytes::Bytes;
use prost::Message;
use tonic::{Request, Response, Status};

use super::Shared;
use super::status::{KEY_NOT_FOUND, TOO_LARGE, to_status, unsupported};
use crate::etcd::proto::etcdserverpb as pb;
use crate::etcd::proto::mvccpb;
use crate::types::{
    Compare, CompareOp, CompareTarget, DeleteRequest, KeyRange, KeyValue, Op, OpResponse,
    PutRequest, RangeRequest, RangeResponse, Revision, Txn, TxnResponse,
};

/// The KV service.
pub(crate) struct KvService {
    shared: Shared,
}

impl KvService {
    pub(crate) fn new(shared: Shared) -> Self {
        KvService { shared }
    }

    fn check_size(&self, size: usize) -> Result<(), Status> {
        if size > self.shared.options.limits.max_request_bytes {
            return Err(Status::invalid_argument(TOO_LARGE));
        }
        Ok(())
    }

    async fn run_txn(&self, txn: Txn) -> Result<TxnResponse, Status> {
        self.shared.store.txn(txn).await.map_err(to_status)
    }

    /// A put with ignore_value or ignore_lease: read the key, then write it with a compare on
    /// its mod revision, again until no other write came between.
    async fn put_keeping(&self, req: &pb::PutRequest) -> Result<pb::PutResponse, Status> {
        loop {
            let current = self
                .shared
                .store
                .range(RangeRequest::key(req.key.clone()))
                .await
                .map_err(to_status)?;
            let Some(kv) = current.kvs.into_iter().next() else {
                return Err(Status::invalid_argument(KEY_NOT_FOUND));
            };
            let put = PutRequest {
                key: req.key.clone(),
                value: if req.ignore_value {
                    kv.value.clone()
                } else {
                    req.value.clone()
                },
                lease: if req.ignore_lease {
                    kv.lease
                } else {
                    req.lease
                },
                prev_kv: req.prev_kv,
            };
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    req.key.clone(),
                    CompareOp::Equal,
                    kv.mod_revision,
                )])
                .and_then([Op::Put(put)]);
            let resp = self.run_txn(txn).await?;
            if resp.succeeded {
                return Ok(pb::PutResponse {
                    header: self.shared.header(resp.header_revision),
                    prev_kv: put_prev(&resp),
                });
            }
        }
    }
}

impl KvService {
    /// A transaction with nested transactions, as etcd runs it: every compare of the tree is
    /// evaluated against the state before the transaction, which picks one path through it;
    /// the path's operations then run in order as one flat transaction. The store's
    /// transactions are flat, so the compared keys are read first, the path is chosen here,
    /// and the flat transaction is guarded by those keys' mod revisions; when another write
    /// changed one of them in between, it is read and chosen again.
    async fn nested_txn(&self, req: &pb::TxnRequest) -> Result<pb::TxnResponse, Status> {
        let tree = plan_tree(req)?;
        let mut keys = Vec::new();
        tree.compared_keys(&mut keys);
        keys.sort();
        keys.dedup();
        loop {
            let read = Txn::new().and_then(
                keys.iter()
                    .map(|key| Op::Range(RangeRequest::key(key.clone()))),
            );
            let state = self.run_txn(read).await?;
            let mut seen = Vec::with_capacity(keys.len());
            for (key, response) in keys.iter().zip(state.responses) {
                let kv = match response {
                    OpResponse::Range(r) => r.kvs.into_iter().next(),
                    other => {
                        return Err(Status::internal(format!(
                            "orchestra: the store answered a read with {other:?}"
                        )));
                    }
                };
                seen.push((key.clone(), kv));
            }
            let path = tree.choose(&seen);
            let mut ops = Vec::new();
            path.flatten(&mut ops);
            let guard = seen.iter().map(|(key, kv)| {
                Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    kv.as_ref().map_or(0, |kv| kv.mod_revision),
                )
            });
            let resp = self.run_txn(Txn::new().when(guard).and_then(ops)).await?;
            if !resp.succeeded {
                continue;
            }
            let revision = resp.header_revision;
            let mut results = resp.responses.into_iter();
            let responses = self.respond(path.nodes, &mut results, revision)?;
            return Ok(pb::TxnResponse {
                header: self.shared.header(revision),
                succeeded: path.succeeded,
                responses,
            });
        }
    }

    /// etcd's responses for the operations of a chosen branch, from the store's responses to
    /// them (in order).
    fn respond(
        &self,
        nodes: Vec<Chosen>,
        results: &mut std::vec::IntoIter<OpResponse>,
        revision: Revision,
    ) -> Result<Vec<pb::ResponseOp>, Status> {
        use pb::response_op::Response as R;
        let mut responses = Vec::with_capacity(nodes.len());
        for node in nodes {
            let plan = match node {
                Chosen::Leaf(plan) => plan,
                Chosen::Txn(path) => {
                    let inner = self.respond(path.nodes, results, revision)?;
                    responses.push(pb::ResponseOp {
                        response: Some(R::ResponseTxn(pb::TxnResponse {
                            header: inner_header(revision),
                            succeeded: path.succeeded,
                            responses: inner,
                        })),
                    });
                    continue;
                }
            };
            let response = match plan {
                Planned::Empty(true) => R::ResponseRange(pb::RangeResponse {
                    header: inner_header(revision),
                    ..Default::default()
                }),
                Planned::Empty(false) => R::ResponseDeleteRange(pb::DeleteRangeResponse {
                    header: inner_header(revision),
                    ..Default::default()
                }),
                Planned::Op(_, original) => match (results.next(), original) {
                    (Some(OpResponse::Range(r)), Some(original)) => {
                        let mut r = finish_range(&self.shared, &original, r);
                        r.header = inner_header(revision);
                        R::ResponseRange(r)
                    }
                    (Some(OpResponse::Put { prev_kv }), _) => R::ResponsePut(pb::PutResponse {
                        header: inner_header(revision),
                        prev_kv: prev_kv.map(key_value),
                    }),
                    (Some(OpResponse::Delete { deleted, prev_kvs }), _) => {
                        R::ResponseDeleteRange(pb::DeleteRangeResponse {
                            header: inner_header(revision),
                            deleted: i64::try_from(deleted).unwrap_or(i64::MAX),
                            prev_kvs: prev_kvs.into_iter().map(key_value).collect(),
                        })
                    }
                    (other, _) => {
                        return Err(Status::internal(format!(
                            "orchestra: the store answered a transaction operation with {other:?}"
                        )));
                    }
                },
            };
            responses.push(pb::ResponseOp {
                response: Some(response),
            });
        }
        Ok(responses)
    }
}

/// A transaction whose branches may nest transactions.
struct Tree {
    compares: Vec<Compare>,
    success: Vec<Node>,
    failure: Vec<Node>,
}

/// One operation of a [`Tree`]'s branch.
enum Node {
    Leaf(Planned),
    Txn(Tree),
}

/// The branch a [`Tree`] takes, with the branches its nested transactions take.
struct Path {
    succeeded: bool,
    nodes: Vec<Chosen>,
}

/// One operation of a chosen branch.
enum Chosen {
    Leaf(Planned),
    Txn(Path),
}

/// The deepest nesting accepted (etcd sets no limit; this bounds the recursion).
const MAX_TXN_DEPTH: usize = 64;

/// Does any branch of `req` hold a nested transaction?
fn has_nested(req: &pb::TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .any(|op| matches!(op.request, Some(pb::request_op::Request::RequestTxn(_))))
}

fn plan_tree(req: &pb::TxnRequest) -> Result<Tree, Status> {
    plan_tree_at(req, 0)
}

fn plan_tree_at(req: &pb::TxnRequest, depth: usize) -> Result<Tree, Status> {
    if depth > MAX_TXN_DEPTH {
        return Err(Status::invalid_argument(format!(
            "orchestra: transactions nested deeper than {MAX_TXN_DEPTH}"
        )));
    }
    let branch = |ops: &[pb::RequestOp]| -> Result<Vec<Node>, Status> {
        ops.iter()
            .map(|op| match &op.request {
                Some(pb::request_op::Request::RequestTxn(inner)) => {
                    plan_tree_at(inner, depth + 1).map(Node::Txn)
                }
                _ => plan_op(op).map(Node::Leaf),
            })
            .collect()
    };
    Ok(Tree {
        compares: req
            .compare
            .iter()
            .map(compare)
            .collect::<Result<Vec<_>, _>>()?,
        success: branch(&req.success)?,
        failure: branch(&req.failure)?,
    })
}

impl Tree {
    /// Every key any compare of the tree reads.
    fn compared_keys(&self, keys: &mut Vec<Bytes>) {
        keys.extend(self.compares.iter().map(|c| c.key.clone()));
        for node in self.success.iter().chain(&self.failure) {
            if let Node::Txn(inner) = node {
                inner.compared_keys(keys);
            }
        }
    }

    /// The path through the tree for the keys' values in `seen` (every compared key, `None`
    /// when absent).
    fn choose(&self, seen: &[(Bytes, Option<KeyValue>)]) -> Path {
        let current = |key: &Bytes| {
            seen.iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, kv)| kv.as_ref())
        };
        let succeeded = self.compares.iter().all(|c| c.holds(current(&c.key)));
        let branch = if succeeded {
            &self.success
        } else {
            &self.failure
        };
        let nodes = branch
            .iter()
            .map(|node| match node {
                Node::Leaf(plan) => Chosen::Leaf(plan.clone()),
                Node::Txn(inner) => Chosen::Txn(inner.choose(seen)),
            })
            .collect();
        Path { succeeded, nodes }
    }
}

impl Path {
    /// The store operations of the path, in order.
    fn flatten(&self, ops: &mut Vec<Op>) {
        for node in &self.nodes {
            match node {
                Chosen::Leaf(Planned::Op(op, _)) => ops.push(op.clone()),
                Chosen::Leaf(Planned::Empty(_)) => {}
                Chosen::Txn(inner) => inner.flatten(ops),
            }
        }
    }
}

fn put_prev(resp: &TxnResponse) -> Option<mvccpb::KeyValue> {
    match resp.responses.first() {
        Some(OpResponse::Put { prev_kv }) => prev_kv.clone().map(key_value),
        _ => None,
    }
}

/// A store key-value as etcd's message.
pub(crate) fn key_value(kv: KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

/// An etcd key range as the store's; `None` when etcd reads it as empty (an end before the
/// key).
pub(crate) fn key_range(key: &Bytes, range_end: &Bytes) -> Option<KeyRange> {
    // etcd reads an empty key with the end "\0" as every key.
    let key = if key.is_empty() && range_end.as_ref() == b"\0" {
        Bytes::from_static(b"\0")
    } else {
        key.clone()
    };
    let range = KeyRange {
        key,
        range_end: range_end.clone(),
    };
    match range.end_bound() {
        Some(end) if end <= range.key.as_ref() && !range.key.is_empty() => None,
        _ => Some(range),
    }
}

/// True when the range needs work here: sorting or revision filters (then the store reads
/// everything and the limit is applied here).
fn post_processed(req: &pb::RangeRequest) -> bool {
    req.sort_order != pb::range_request::SortOrder::None as i32
        || req.sort_target != pb::range_request::SortTarget::Key as i32
        || req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0
}

/// The store's read for an etcd range request.
fn store_range(req: &pb::RangeRequest, range: KeyRange) -> RangeRequest {
    let post = post_processed(req);
    RangeRequest {
        range,
        revision: req.revision,
        limit: if post {
            0
        } else {
            usize::try_from(req.limit.max(0)).unwrap_or(usize::MAX)
        },
        keys_only: req.keys_only,
        count_only: req.count_only && !post,
    }
}

/// etcd's range response from the store's, with filters, sorting and the limit applied as
/// etcd applies them (count is the count before filtering, as in etcd).
fn finish_range(shared: &Shared, req: &pb::RangeRequest, resp: RangeResponse) -> pb::RangeResponse {
    use pb::range_request::{SortOrder, SortTarget};
    let count = i64::try_from(resp.count).unwrap_or(i64::MAX);
    if !post_processed(req) {
        return pb::RangeResponse {
            header: shared.header(resp.header_revision),
            kvs: resp.kvs.into_iter().map(key_value).collect(),
            more: resp.more,
            count,
        };
    }
    let mut kvs: Vec<KeyValue> = resp
        .kvs
        .into_iter()
        .filter(|kv| {
            (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
                && (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
                && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
                && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
        })
        .collect();
    let mut order = SortOrder::try_from(req.sort_order).unwrap_or(SortOrder::None);
    let target = SortTarget::try_from(req.sort_target).unwrap_or(SortTarget::Key);
    if target != SortTarget::Key && order == SortOrder::None {
        order = SortOrder::Ascend;
    }
    if order != SortOrder::None {
        kvs.sort_by(|a, b| match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        });
        if order == SortOrder::Descend {
            kvs.reverse();
        }
    }
    let mut more = false;
    if let Ok(limit) = usize::try_from(req.limit)
        && limit > 0
        && kvs.len() > limit
    {
        kvs.truncate(limit);
        more = true;
    }
    if req.count_only {
        kvs.clear();
    }
    pb::RangeResponse {
        header: shared.header(resp.header_revision),
        kvs: kvs.into_iter().map(key_value).collect(),
        more,
        count,
    }
}

/// The header of a response inside a transaction: etcd sets only the revision there.
fn inner_header(revision: Revision) -> Option<pb::ResponseHeader> {
    Some(pb::ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// How one operation of a transaction maps: the store's op, and what etcd's response needs.
#[derive(Clone)]
enum Planned {
    /// A store op; for ranges, the etcd request to finish the response with.
    Op(Op, Option<Box<pb::RangeRequest>>),
    /// A range or delete that etcd reads as empty (its end is before its key).
    Empty(bool),
}

fn plan_op(op: &pb::RequestOp) -> Result<Planned, Status> {
    use pb::request_op::Request;
    match &op.request {
        Some(Request::RequestRange(r)) => Ok(match key_range(&r.key, &r.range_end) {
            Some(range) => Planned::Op(Op::Range(store_range(r, range)), Some(Box::new(r.clone()))),
            None => Planned::Empty(true),
        }),
        Some(Request::RequestPut(p)) => {
            if p.ignore_value || p.ignore_lease {
                return Err(unsupported(
                    "ignore_value or ignore_lease inside a transaction (use them in a plain Put)",
                ));
            }
            Ok(Planned::Op(
                Op::Put(PutRequest {
                    key: p.key.clone(),
                    value: p.value.clone(),
                    lease: p.lease,
                    prev_kv: p.prev_kv,
                }),
                None,
            ))
        }
        Some(Request::RequestDeleteRange(d)) => Ok(match key_range(&d.key, &d.range_end) {
            Some(range) => Planned::Op(
                Op::Delete(DeleteRequest {
                    range,
                    prev_kv: d.prev_kv,
                }),
                None,
            ),
            None => Planned::Empty(false),
        }),
        // Nested transactions are planned by `plan_tree`.
        Some(Request::RequestTxn(_)) => Err(Status::internal(
            "orchestra: a nested transaction reached the flat planner (a bug)",
        )),
        None => Err(Status::invalid_argument(
            "orchestra: a transaction operation without a request",
        )),
    }
}

fn compare(cmp: &pb::Compare) -> Result<Compare, Status> {
    use pb::compare::{CompareResult, CompareTarget as Target, TargetUnion};
    if !cmp.range_end.is_empty() {
        return Err(unsupported("a compare over a key range (range_end)"));
    }
    let op = match CompareResult::try_from(cmp.result) {
        Ok(CompareResult::Equal) => CompareOp::Equal,
        Ok(CompareResult::NotEqual) => CompareOp::NotEqual,
        Ok(CompareResult::Greater) => CompareOp::Greater,
        Ok(CompareResult::Less) => CompareOp::Less,
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "orchestra: unknown compare result {}",
                cmp.result
            )));
        }
    };
    let union = cmp.target_union.clone();
    let target = match Target::try_from(cmp.target) {
        Ok(Target::Version) => CompareTarget::Version(match union {
            Some(TargetUnion::Version(v)) => v,
            _ => 0,
        }),
        Ok(Target::Create) => CompareTarget::CreateRevision(match union {
            Some(TargetUnion::CreateRevision(v)) => v,
            _ => 0,
        }),
        Ok(Target::Mod) => CompareTarget::ModRevision(match union {
            Some(TargetUnion::ModRevision(v)) => v,
            _ => 0,
        }),
        Ok(Target::Value) => CompareTarget::Value(match union {
            Some(TargetUnion::Value(v)) => v,
            _ => Bytes::new(),
        }),
        Ok(Target::Lease) => CompareTarget::Lease(match union {
            Some(TargetUnion::Lease(v)) => v,
            _ => 0,
        }),
        Err(_) => {
            return Err(Status::invalid_argument(format!(
                "orchestra: unknown compare target {}",
                cmp.target
            )));
        }
    };
    Ok(Compare {
        key: cmp.key.clone(),
        target,
        op,
    })
}

#[async_trait::async_trait]
impl pb::kv_server::Kv for KvService {
    async fn range(
        &self,
        request: Request<pb::RangeRequest>,
    ) -> Result<Response<pb::RangeResponse>, Status> {
        let req = request.into_inner();
        if req.key.is_empty() && req.range_end.is_empty() {
            return Err(Status::invalid_argument(super::status::NO_KEY));
        }
        let Some(range) = key_range(&req.key, &req.range_end) else {
            let header = self.shared.current_header().await?;
            return Ok(Response::new(pb::RangeResponse {
                header,
                ..Default::default()
            }));
        };
        let resp = self
            .shared
            .store
            .range(store_range(&req, range))
            .await
            .map_err(to_status)?;
        Ok(Response::new(finish_range(&self.shared, &req, resp)))
    }

    async fn put(
        &self,
        request: Request<pb::PutRequest>,
    ) -> Result<Response<pb::PutResponse>, Status> {
        let req = request.into_inner();
        self.check_size(req.encoded_len())?;
        if req.key.is_empty() {
            return Err(Status::invalid_argument(super::status::NO_KEY));
        }
        if req.ignore_value || req.ignore_lease {
            return self.put_keeping(&req).await.map(Response::new);
        }
        let resp = self
            .shared
            .store
            .put_one(PutRequest {
                key: req.key,
                value: req.value,
                lease: req.lease,
                prev_kv: req.prev_kv,
            })
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::PutResponse {
            header: self.shared.header(resp.header_revision),
            prev_kv: resp.prev_kv.map(key_value),
        }))
    }

    async fn delete_range(
        &self,
        request: Request<pb::DeleteRangeRequest>,
    ) -> Result<Response<pb::DeleteRangeResponse>, Status> {
        let req = request.into_inner();
        self.check_size(req.encoded_len())?;
        if req.key.is_empty() && req.range_end.is_empty() {
            return Err(Status::invalid_argument(super::status::NO_KEY));
        }
        let Some(range) = key_range(&req.key, &req.range_end) else {
            let header = self.shared.current_header().await?;
            return Ok(Response::new(pb::DeleteRangeResponse {
                header,
                ..Default::default()
            }));
        };
        let txn = Txn::new().and_then([Op::Delete(DeleteRequest {
            range,
            prev_kv: req.prev_kv,
        })]);
        let resp = self.run_txn(txn).await?;
        let (deleted, prev_kvs) = match resp.responses.into_iter().next() {
            Some(OpResponse::Delete { deleted, prev_kvs }) => (deleted, prev_kvs),
            _ => (0, Vec::new()),
        };
        Ok(Response::new(pb::DeleteRangeResponse {
            header: self.shared.header(resp.header_revision),
            deleted: i64::try_from(deleted).unwrap_or(i64::MAX),
            prev_kvs: prev_kvs.into_iter().map(key_value).collect(),
        }))
    }

    async fn txn(
        &self,
        request: Request<pb::TxnRequest>,
    ) -> Result<Response<pb::TxnResponse>, Status> {
        let req = request.into_inner();
        self.check_size(req.encoded_len())?;
        let limits = self.shared.options.limits;
        let ops = req
            .compare
            .len()
            .max(req.success.len())
            .max(req.failure.len());
        if ops > limits.max_txn_ops {
            return Err(Status::invalid_argument(
                "etcdserver: too many operations in txn request",
            ));
        }
        if has_nested(&req) {
            return self.nested_txn(&req).await.map(Response::new);
        }
        let compares = req
            .compare
            .iter()
            .map(compare)
            .collect::<Result<Vec<_>, _>>()?;
        let success = req
            .success
            .iter()
            .map(plan_op)
            .collect::<Result<Vec<_>, _>>()?;
        let failure = req
            .failure
            .iter()
            .map(plan_op)
            .collect::<Result<Vec<_>, _>>()?;
        let store_ops = |plans: &[Planned]| -> Vec<Op> {
            plans
                .iter()
                .filter_map(|p| match p {
                    Planned::Op(op, _) => Some(op.clone()),
                    Planned::Empty(_) => None,
                })
                .collect()
        };
        let txn = Txn {
            compares,
            success: store_ops(&success),
            failure: store_ops(&failure),
        };
        let resp = self.run_txn(txn).await?;
        let plans = if resp.succeeded { success } else { failure };
        let revision = resp.header_revision;
        let mut results = resp.responses.into_iter();
        let nodes = plans.into_iter().map(Chosen::Leaf).collect();
        let responses = self.respond(nodes, &mut results, revision)?;
        Ok(Response::new(pb::TxnResponse {
            header: self.shared.header(revision),
            succeeded: resp.succeeded,
            responses,
        }))
    }

    async fn compact(
        &self,
        request: Request<pb::CompactionRequest>,
    ) -> Result<Response<pb::CompactionResponse>, Status> {
        let req = request.into_inner();
        self.shared
            .store
            .compact(req.revision)
            .await
            .map_err(to_status)?;
        let header = self.shared.current_header().await?;
        Ok(Response::new(pb::CompactionResponse { header }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverted_ranges_read_as_empty_and_empty_key_with_zero_end_is_everything() {
        assert!(key_range(&Bytes::from("b"), &Bytes::from("a")).is_none());
        let all = key_range(&Bytes::new(), &Bytes::from_static(b"\0")).expect("every key");
        assert_eq!(all.key.as_ref(), b"\0");
        assert!(key_range(&Bytes::from("a"), &Bytes::from("b")).is_some());
    }
}
