//! Periodic compaction of a store's history, as kube-apiserver does it for etcd: without it,
//! every revision ever written stays readable and the store grows without bound.
//!
//! Each round compacts to the revision that was the latest one round earlier, so clients
//! always have at least one interval (5 minutes by default) of history to resume watches
//! from; an older resume gets `Compacted` and relists. Several API servers may share one
//! store: a round first moves the key [`COMPACT_REV_KEY`] with a compare-and-swap on its
//! version, and only the server whose swap succeeded compacts, so the store is compacted
//! once per interval however many servers run. A server that lost the swap adopts the
//! winner's version and tries again next round.

use std::time::Duration;

use bytes::Bytes;

use crate::error::StoreError;
use crate::store::Store;
use crate::types::{Compare, CompareOp, Op, OpResponse, Revision, Txn};

/// The key whose version orders the compactions of all servers sharing a store (the name
/// kube-apiserver uses, so that orchestra and Kubernetes servers on one etcd agree).
pub const COMPACT_REV_KEY: &[u8] = b"compact_rev_key";

/// kube-apiserver's default interval (`--etcd-compaction-interval`).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(300);

/// What a compactor knows between rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompactorState {
    /// The version of [`COMPACT_REV_KEY`] this compactor expects (0: absent).
    pub key_version: i64,
    /// The store's latest revision at the previous round (0: none yet): the next round
    /// compacts to it.
    pub previous_revision: Revision,
}

/// What one round did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundOutcome {
    /// This compactor won the swap and compacted to the revision.
    Compacted(Revision),
    /// This compactor won the swap; there was nothing to compact yet (the first round).
    Recorded,
    /// Another server moved the key since this compactor's last round: it compacts.
    Lost,
}

/// One round: swap [`COMPACT_REV_KEY`], and compact to `state.previous_revision` if the swap
/// won. Returns the state for the next round.
pub async fn compact_round<S: Store + ?Sized>(
    store: &S,
    state: CompactorState,
) -> Result<(CompactorState, RoundOutcome), StoreError> {
    let key = Bytes::from_static(COMPACT_REV_KEY);
    let swap = Txn::new()
        .when([Compare::version(
            key.clone(),
            CompareOp::Equal,
            state.key_version,
        )])
        .and_then([Op::put(
            key.clone(),
            Bytes::from(state.previous_revision.to_string()),
        )])
        .or_else([Op::get(key)]);
    let response = store.txn(swap).await?;
    let latest = response.header_revision;
    if !response.succeeded {
        let key_version = match response.responses.first() {
            Some(OpResponse::Range(range)) => range.kvs.first().map_or(0, |kv| kv.version),
            _ => 0,
        };
        let next = CompactorState {
            key_version,
            previous_revision: latest,
        };
        return Ok((next, RoundOutcome::Lost));
    }
    let next = CompactorState {
        key_version: state.key_version + 1,
        previous_revision: latest,
    };
    if state.previous_revision == 0 {
        return Ok((next, RoundOutcome::Recorded));
    }
    match store.compact(state.previous_revision).await {
        // Compacted already (by hand, or by an older round): nothing is lost by skipping.
        Ok(()) | Err(StoreError::Compacted { .. }) => {
            Ok((next, RoundOutcome::Compacted(state.previous_revision)))
        }
        Err(err) => Err(err),
    }
}

/// Run rounds every `interval` until `shutdown` resolves. Errors are logged and the round
/// is retried at the next tick: compaction is housekeeping and must never stop a server.
pub async fn run<S: Store + ?Sized>(
    store: &S,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = CompactorState::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = ticks.tick() => {}
        }
        match compact_round(store, state).await {
            Ok((next, outcome)) => {
                tracing::debug!(
                    ?outcome,
                    revision = next.previous_revision,
                    "compaction round"
                );
                state = next;
            }
            Err(error) => {
                tracing::warn!(%error, "compacting the store failed; retrying next round")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStore;
    use crate::ext::StoreExt;
    use crate::types::RangeRequest;

    #[tokio::test]
    async fn each_round_compacts_to_the_revision_of_the_round_before() {
        let store = MemStore::new();
        store.put("/a", "1").await.unwrap();
        let (state, outcome) = compact_round(&store, CompactorState::default())
            .await
            .unwrap();
        assert_eq!(outcome, RoundOutcome::Recorded);
        let first_round = state.previous_revision;
        store.put("/a", "2").await.unwrap();
        store.put("/a", "3").await.unwrap();
        let (state, outcome) = compact_round(&store, state).await.unwrap();
        assert_eq!(outcome, RoundOutcome::Compacted(first_round));
        assert_eq!(store.status().await.unwrap().compact_revision, first_round);
        // History after the compacted revision is still readable; before it, not.
        let mut at = RangeRequest::key("/a");
        at.revision = first_round + 1;
        assert_eq!(&store.range(at).await.unwrap().kvs[0].value[..], b"2");
        let mut before = RangeRequest::key("/a");
        before.revision = first_round - 1;
        assert!(matches!(
            store.range(before).await,
            Err(StoreError::Compacted { .. })
        ));
        assert_eq!(state.key_version, 2);
    }

    #[tokio::test]
    async fn of_two_servers_on_one_store_one_compacts_per_round() {
        let store = MemStore::new();
        store.put("/a", "1").await.unwrap();
        let (a, outcome_a) = compact_round(&store, CompactorState::default())
            .await
            .unwrap();
        let (b, outcome_b) = compact_round(&store, CompactorState::default())
            .await
            .unwrap();
        assert_eq!(
            (outcome_a, outcome_b),
            (RoundOutcome::Recorded, RoundOutcome::Lost)
        );
        // B adopted A's version: next round, whichever goes first wins and the other loses.
        assert_eq!(b.key_version, a.key_version);
        store.put("/a", "2").await.unwrap();
        let (_, outcome_b) = compact_round(&store, b).await.unwrap();
        let (_, outcome_a) = compact_round(&store, a).await.unwrap();
        assert!(
            matches!(outcome_b, RoundOutcome::Compacted(_)),
            "{outcome_b:?}"
        );
        assert_eq!(outcome_a, RoundOutcome::Lost);
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_compacts_every_interval_and_stops_on_shutdown() {
        let store = std::sync::Arc::new(MemStore::new());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = {
            let store = store.clone();
            tokio::spawn(async move {
                run(&*store, Duration::from_secs(300), async {
                    let _ = stopped.await;
                })
                .await;
            })
        };
        store.put("/a", "1").await.unwrap();
        // First round at 300 s records; the second at 600 s compacts to the first's revision.
        tokio::time::sleep(Duration::from_secs(301)).await;
        let recorded = store.status().await.unwrap().revision;
        store.put("/a", "2").await.unwrap();
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert_eq!(store.status().await.unwrap().compact_revision, recorded);
        stop.send(()).unwrap();
        running.await.unwrap();
    }
}
