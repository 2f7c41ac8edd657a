//! A concurrent workload to record: clients doing gets, puts, deletes and compare-and-swap
//! transactions on a few keys, with values unique in the history (so that each read names the
//! write it saw, which keeps the search small).

use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::history::Recorder;
use crate::store::Store;
use crate::types::{Compare, CompareOp, Op, PutRequest, RangeRequest, Txn};

/// The shape of a workload.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Concurrent clients.
    pub clients: usize,
    /// Operations each client makes.
    pub ops_per_client: usize,
    /// How many keys (few keys, many conflicts).
    pub keys: usize,
    /// The prefix of every key (keys are `{prefix}{n}`).
    pub prefix: String,
    /// Also run transactions that write two keys at once (joins the keys' partitions).
    pub cross_key_txns: bool,
    /// The seed of the clients' choices; it is part of every value written, so that runs
    /// with different seeds on one store write distinct values.
    pub seed: u64,
    /// How long a client waits after a failed call before the next (a server that is down).
    pub retry_pause: Duration,
}

impl Default for Workload {
    fn default() -> Self {
        Workload {
            clients: 4,
            ops_per_client: 50,
            keys: 3,
            prefix: "/lin/".into(),
            cross_key_txns: true,
            seed: 1,
            retry_pause: Duration::from_millis(20),
        }
    }
}

impl Workload {
    fn key(&self, n: usize) -> Bytes {
        Bytes::from(format!("{}{n}", self.prefix))
    }
}

/// Run the workload's clients concurrently on `store`, each on its own task, until each has
/// made its operations. Failed calls are recorded as operations without an answer.
pub async fn run<S: Store>(store: &Recorder<S>, workload: &Workload) {
    let tasks: Vec<_> = (0..workload.clients)
        .map(|client| {
            let store = store.clone();
            let workload = workload.clone();
            tokio::spawn(async move { run_client(&store, &workload, client).await })
        })
        .collect();
    for task in tasks {
        // A panicking client is a bug of the store under test: surface it.
        if let Err(err) = task.await
            && err.is_panic()
        {
            std::panic::resume_unwind(err.into_panic());
        }
    }
}

/// One client of the workload: `workload.ops_per_client` operations, numbered `client`.
pub async fn run_client<S: Store>(store: &S, workload: &Workload, client: usize) {
    let mut rng = StdRng::seed_from_u64(workload.seed.wrapping_mul(1_000_003) ^ client as u64);
    for n in 0..workload.ops_per_client {
        let keys = workload.keys.max(1);
        let k = rng.random_range(0..keys);
        let key = workload.key(k);
        let value = Bytes::from(format!("s{}c{client}-{n}", workload.seed));
        let ok = match rng.random_range(0..100) {
            0..35 => store.range(RangeRequest::key(key)).await.is_ok(),
            35..60 => store
                .put_one(PutRequest {
                    key,
                    value,
                    ..Default::default()
                })
                .await
                .is_ok(),
            60..70 => store
                .txn(Txn::new().and_then([Op::delete(key)]))
                .await
                .is_ok(),
            70..85 => {
                // Compare-and-swap on mod_revision, as the API server's updates do.
                match store.range(RangeRequest::key(key.clone())).await {
                    Ok(resp) => {
                        let rev = resp.kvs.first().map_or(0, |kv| kv.mod_revision);
                        store
                            .txn(
                                Txn::new()
                                    .when([Compare::mod_revision(
                                        key.clone(),
                                        CompareOp::Equal,
                                        rev,
                                    )])
                                    .and_then([Op::put(key.clone(), value)])
                                    .or_else([Op::get(key)]),
                            )
                            .await
                            .is_ok()
                    }
                    Err(_) => false,
                }
            }
            85..93 => {
                // Compare on the value: swap a value this client may have seen.
                let seen = Bytes::from(format!(
                    "s{}c{}-{}",
                    workload.seed,
                    rng.random_range(0..workload.clients.max(1)),
                    rng.random_range(0..n.max(1))
                ));
                store
                    .txn(
                        Txn::new()
                            .when([Compare::value(key.clone(), CompareOp::Equal, seen)])
                            .and_then([Op::put(key.clone(), value)])
                            .or_else([Op::get(key)]),
                    )
                    .await
                    .is_ok()
            }
            _ if workload.cross_key_txns && keys > 1 => {
                // Another key than `key`: a txn may not put one key twice.
                let other = workload.key((k + rng.random_range(1..keys)) % keys);
                let mut other_value = value.to_vec();
                other_value.extend_from_slice(b"+");
                store
                    .txn(
                        Txn::new()
                            .when([Compare::mod_revision(key.clone(), CompareOp::Greater, 0)])
                            .and_then([
                                Op::put(key.clone(), value),
                                Op::put(other.clone(), other_value),
                            ])
                            .or_else([Op::get(key), Op::get(other)]),
                    )
                    .await
                    .is_ok()
            }
            _ => store.range(RangeRequest::key(key)).await.is_ok(),
        };
        if !ok {
            tokio::time::sleep(workload.retry_pause).await;
        }
    }
}
