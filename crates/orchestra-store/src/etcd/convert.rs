//! Conversions between the store's types and etcd's messages. The shapes are etcd's already
//! (key ranges, compares, transactions), so each conversion is one to one; what comes from the
//! network is checked, never unwrapped.

use crate::error::StoreError;
use crate::etcd::proto::etcdserverpb as pb;
use crate::etcd::proto::mvccpb;
use crate::types::{
    Compare, CompareOp, CompareTarget, DeleteRequest, Event, EventKind, KeyValue, Op, OpResponse,
    PutRequest, RangeRequest, RangeResponse, Revision, Txn, TxnResponse,
};

/// A count or limit from the store's `usize` to etcd's `i64`.
fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A count from etcd's `i64` (never negative from a sane server) to `usize`.
fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

/// The header revision of a response, or 0 when the server left the header out.
pub(crate) fn header_revision(header: Option<&pb::ResponseHeader>) -> Revision {
    header.map_or(0, |h| h.revision)
}

pub(crate) fn range_request(req: &RangeRequest) -> pb::RangeRequest {
    pb::RangeRequest {
        key: req.range.key.clone(),
        range_end: req.range.range_end.clone(),
        limit: to_i64(req.limit),
        revision: req.revision,
        keys_only: req.keys_only,
        count_only: req.count_only,
        ..Default::default()
    }
}

pub(crate) fn key_value(kv: mvccpb::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key,
        value: kv.value,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        lease: kv.lease,
    }
}

/// A range response; `outer` is the header revision to use when the response has none (the
/// ranges inside a transaction).
pub(crate) fn range_response(resp: pb::RangeResponse, outer: Revision) -> RangeResponse {
    let header = header_revision(resp.header.as_ref());
    RangeResponse {
        header_revision: if header > 0 { header } else { outer },
        kvs: resp.kvs.into_iter().map(key_value).collect(),
        more: resp.more,
        count: to_usize(resp.count),
    }
}

fn put_request(put: &PutRequest) -> pb::PutRequest {
    pb::PutRequest {
        key: put.key.clone(),
        value: put.value.clone(),
        lease: put.lease,
        prev_kv: put.prev_kv,
        ..Default::default()
    }
}

fn delete_request(delete: &DeleteRequest) -> pb::DeleteRangeRequest {
    pb::DeleteRangeRequest {
        key: delete.range.key.clone(),
        range_end: delete.range.range_end.clone(),
        prev_kv: delete.prev_kv,
    }
}

fn request_op(op: &Op) -> pb::RequestOp {
    use pb::request_op::Request;
    let request = match op {
        Op::Range(r) => Request::RequestRange(range_request(r)),
        Op::Put(p) => Request::RequestPut(put_request(p)),
        Op::Delete(d) => Request::RequestDeleteRange(delete_request(d)),
    };
    pb::RequestOp {
        request: Some(request),
    }
}

fn compare(cmp: &Compare) -> pb::Compare {
    use pb::compare::{CompareResult, CompareTarget as Target, TargetUnion};
    let result = match cmp.op {
        CompareOp::Equal => CompareResult::Equal,
        CompareOp::NotEqual => CompareResult::NotEqual,
        CompareOp::Greater => CompareResult::Greater,
        CompareOp::Less => CompareResult::Less,
    };
    let (target, operand) = match &cmp.target {
        CompareTarget::Version(v) => (Target::Version, TargetUnion::Version(*v)),
        CompareTarget::CreateRevision(r) => (Target::Create, TargetUnion::CreateRevision(*r)),
        CompareTarget::ModRevision(r) => (Target::Mod, TargetUnion::ModRevision(*r)),
        CompareTarget::Value(v) => (Target::Value, TargetUnion::Value(v.clone())),
        CompareTarget::Lease(l) => (Target::Lease, TargetUnion::Lease(*l)),
    };
    pb::Compare {
        result: result as i32,
        target: target as i32,
        key: cmp.key.clone(),
        range_end: Default::default(),
        target_union: Some(operand),
    }
}

pub(crate) fn txn_request(txn: &Txn) -> pb::TxnRequest {
    pb::TxnRequest {
        compare: txn.compares.iter().map(compare).collect(),
        success: txn.success.iter().map(request_op).collect(),
        failure: txn.failure.iter().map(request_op).collect(),
    }
}

/// A transaction's response; checks that etcd answered each operation of the branch that ran
/// with a response of the operation's kind.
pub(crate) fn txn_response(txn: &Txn, resp: pb::TxnResponse) -> Result<TxnResponse, StoreError> {
    use pb::response_op::Response;
    let header = header_revision(resp.header.as_ref());
    let branch = if resp.succeeded {
        &txn.success
    } else {
        &txn.failure
    };
    if branch.len() != resp.responses.len() {
        return Err(StoreError::Other(format!(
            "etcd answered a transaction branch of {} operations with {} responses",
            branch.len(),
            resp.responses.len()
        )));
    }
    let mut responses = Vec::with_capacity(branch.len());
    for (op, response) in branch.iter().zip(resp.responses) {
        let converted = match (op, response.response) {
            (Op::Range(_), Some(Response::ResponseRange(r))) => {
                OpResponse::Range(range_response(r, header))
            }
            (Op::Put(_), Some(Response::ResponsePut(p))) => OpResponse::Put {
                prev_kv: p.prev_kv.map(key_value),
            },
            (Op::Delete(_), Some(Response::ResponseDeleteRange(d))) => OpResponse::Delete {
                deleted: to_usize(d.deleted),
                prev_kvs: d.prev_kvs.into_iter().map(key_value).collect(),
            },
            (op, other) => {
                return Err(StoreError::Other(format!(
                    "etcd answered operation {op:?} with a response of another kind: {other:?}"
                )));
            }
        };
        responses.push(converted);
    }
    Ok(TxnResponse {
        header_revision: header,
        succeeded: resp.succeeded,
        responses,
    })
}

/// One watch event; a malformed one (without a key) is an error.
pub(crate) fn event(event: mvccpb::Event) -> Result<Event, StoreError> {
    let kind = match mvccpb::event::EventType::try_from(event.r#type) {
        Ok(mvccpb::event::EventType::Put) => EventKind::Put,
        Ok(mvccpb::event::EventType::Delete) => EventKind::Delete,
        Err(_) => {
            return Err(StoreError::Other(format!(
                "etcd sent a watch event of unknown type {}",
                event.r#type
            )));
        }
    };
    let Some(kv) = event.kv else {
        return Err(StoreError::Other(
            "etcd sent a watch event without its key".to_string(),
        ));
    };
    Ok(Event {
        kind,
        kv: key_value(kv),
        prev_kv: event.prev_kv.map(key_value),
    })
}

/// True when the transaction writes in either branch (so it is not safe to send twice).
pub(crate) fn writes(txn: &Txn) -> bool {
    txn.success
        .iter()
        .chain(&txn.failure)
        .any(|op| !matches!(op, Op::Range(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::KeyRange;

    #[test]
    fn transactions_map_one_to_one() {
        let txn = Txn::new()
            .when([Compare::value("k", CompareOp::NotEqual, "v")])
            .and_then([Op::put("k", "v"), Op::delete_range(KeyRange::prefix("p/"))])
            .or_else([Op::get("k")]);
        let req = txn_request(&txn);
        assert_eq!(req.compare.len(), 1);
        assert_eq!(
            req.compare[0].result,
            pb::compare::CompareResult::NotEqual as i32
        );
        assert_eq!(
            req.compare[0].target,
            pb::compare::CompareTarget::Value as i32
        );
        assert_eq!(req.success.len(), 2);
        match &req.success[1].request {
            Some(pb::request_op::Request::RequestDeleteRange(d)) => {
                assert_eq!(d.range_end.as_ref(), b"p0");
            }
            other => panic!("expected a delete range, got {other:?}"),
        }
        assert!(writes(&txn));
        assert!(!writes(&Txn::new().and_then([Op::get("k")])));
    }

    #[test]
    fn a_response_of_the_wrong_kind_is_an_error() {
        let txn = Txn::new().and_then([Op::put("k", "v")]);
        let resp = pb::TxnResponse {
            header: None,
            succeeded: true,
            responses: vec![pb::ResponseOp {
                response: Some(pb::response_op::Response::ResponseRange(Default::default())),
            }],
        };
        assert!(txn_response(&txn, resp).is_err());
        let empty = pb::TxnResponse {
            succeeded: true,
            ..Default::default()
        };
        assert!(txn_response(&txn, empty).is_err());
    }
}
