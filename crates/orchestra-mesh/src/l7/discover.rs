//! [`EndpointDiscover`]: a service's ready endpoints as a `tower::discover::Discover` stream.
//!
//! The source is a `watch` channel holding the current endpoint list (fed by
//! [`MeshDirectory`](super::MeshDirectory), which the same [`ProxyFollower`](crate::ProxyFollower)
//! that drives the L4 proxy keeps up to date, or by a test directly). Each new value is
//! compared with the previous one and turned into `Change::Insert` for every added address and
//! `Change::Remove` for every removed one, so that a balancer keeps the connections and load
//! estimates of the endpoints that stayed.
//!
//! [`EndpointDiscover::targets`] follows [`EndpointTarget`]s instead (an address and the
//! identity its server must prove): an address whose identity changed (the endpoint changed
//! hands) is inserted again, so the balancer replaces its service, and with it the
//! connections made to the previous owner.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tower::discover::Change;

use super::directory::EndpointTarget;

/// The difference between two endpoint sets: what to remove, then what to insert (both sorted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointDiff {
    /// Addresses in the old set only.
    pub removed: Vec<SocketAddr>,
    /// Addresses in the new set only.
    pub added: Vec<SocketAddr>,
}

/// Compares two endpoint sets (a pure function: the heart of [`EndpointDiscover`]).
pub fn diff_endpoints(old: &BTreeSet<SocketAddr>, new: &BTreeSet<SocketAddr>) -> EndpointDiff {
    EndpointDiff {
        removed: old.difference(new).copied().collect(),
        added: new.difference(old).copied().collect(),
    }
}

type Changes<S> = Pin<Box<dyn Stream<Item = Change<SocketAddr, S>> + Send>>;

/// The endpoints of one service as a [`tower::discover::Discover`] stream of
/// `Change<SocketAddr, S>`, where `S` is the service built for each endpoint by the `make`
/// function given to [`EndpointDiscover::new`].
///
/// The stream starts with an insert for every endpoint present when it is created, and ends
/// when the sending half of the watch channel is dropped (the service is gone).
pub struct EndpointDiscover<S> {
    changes: Changes<S>,
}

impl<S: Send + 'static> EndpointDiscover<S> {
    /// Discovers the endpoints published on `endpoints`, building each one's service with
    /// `make`.
    pub fn new<F>(endpoints: watch::Receiver<Vec<SocketAddr>>, mut make: F) -> Self
    where
        F: FnMut(SocketAddr) -> S + Send + 'static,
    {
        EndpointDiscover {
            changes: changes(endpoints, |addr| *addr, move |addr| make(*addr)),
        }
    }

    /// Discovers the endpoint targets published on `targets` (see the module docs),
    /// building each one's service with `make`; a target whose account changed is inserted
    /// again under its address.
    pub fn targets<F>(targets: watch::Receiver<Vec<EndpointTarget>>, make: F) -> Self
    where
        F: FnMut(&EndpointTarget) -> S + Send + 'static,
    {
        EndpointDiscover {
            changes: changes(targets, |target| target.addr, make),
        }
    }

    /// A fixed set of endpoints that never changes (for tests and static configuration).
    /// The stream stays open, as a live service's would.
    pub fn fixed<F>(endpoints: Vec<SocketAddr>, make: F) -> Self
    where
        F: FnMut(SocketAddr) -> S + Send + 'static,
    {
        let (tx, rx) = watch::channel(endpoints);
        let discover = EndpointDiscover::new(rx, make);
        // Keep the sender alive for as long as the stream, so that it never ends.
        let changes = discover.changes.chain(futures::stream::pending().map(
            move |never: Change<SocketAddr, S>| {
                let _keep = &tx;
                never
            },
        ));
        EndpointDiscover {
            changes: Box::pin(changes),
        }
    }
}

/// The changes of a watched list of `T`s keyed by address: a `Remove` for every address
/// gone, then an `Insert` for every address new or whose `T` changed, built with `make`.
fn changes<T, S, F>(
    rx: watch::Receiver<Vec<T>>,
    addr_of: fn(&T) -> SocketAddr,
    make: F,
) -> Changes<S>
where
    T: Clone + PartialEq + Send + Sync + 'static,
    S: Send + 'static,
    F: FnMut(&T) -> S + Send + 'static,
{
    struct State<T, F> {
        rx: watch::Receiver<Vec<T>>,
        current: BTreeMap<SocketAddr, T>,
        make: F,
        first: bool,
    }
    let state = State {
        rx,
        current: BTreeMap::new(),
        make,
        first: true,
    };
    let batches = futures::stream::unfold(state, move |mut state| async move {
        loop {
            if state.first {
                state.first = false;
            } else if state.rx.changed().await.is_err() {
                return None;
            }
            let mut new: BTreeMap<SocketAddr, T> = BTreeMap::new();
            for item in state.rx.borrow_and_update().iter() {
                // A duplicate address is one endpoint: the first listing stands.
                new.entry(addr_of(item)).or_insert_with(|| item.clone());
            }
            let old: BTreeSet<SocketAddr> = state.current.keys().copied().collect();
            let diff = diff_endpoints(&old, &new.keys().copied().collect());
            let changed: Vec<SocketAddr> = new
                .iter()
                .filter(|(addr, item)| state.current.get(addr).is_some_and(|old| old != *item))
                .map(|(addr, _)| *addr)
                .collect();
            if diff.removed.is_empty() && diff.added.is_empty() && changed.is_empty() {
                state.current = new;
                continue;
            }
            let mut inserted = diff.added;
            inserted.extend(changed);
            inserted.sort_unstable();
            let mut batch = Vec::with_capacity(diff.removed.len() + inserted.len());
            batch.extend(diff.removed.into_iter().map(Change::Remove));
            for addr in inserted {
                if let Some(item) = new.get(&addr) {
                    batch.push(Change::Insert(addr, (state.make)(item)));
                }
            }
            state.current = new;
            return Some((futures::stream::iter(batch), state));
        }
    });
    Box::pin(batches.flatten())
}

impl<S> fmt::Debug for EndpointDiscover<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointDiscover").finish_non_exhaustive()
    }
}

impl<S> Stream for EndpointDiscover<S> {
    type Item = Result<Change<SocketAddr, S>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.changes
            .poll_next_unpin(cx)
            .map(|change| change.map(Ok))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn describe(change: Change<SocketAddr, String>) -> String {
        match change {
            Change::Insert(addr, svc) => format!("+{} {svc}", addr.port()),
            Change::Remove(addr) => format!("-{}", addr.port()),
        }
    }

    #[test]
    fn diff_lists_removed_and_added() {
        let old: BTreeSet<_> = [addr(1), addr(2), addr(3)].into();
        let new: BTreeSet<_> = [addr(2), addr(4)].into();
        assert_eq!(
            diff_endpoints(&old, &new),
            EndpointDiff {
                removed: vec![addr(1), addr(3)],
                added: vec![addr(4)],
            }
        );
        assert_eq!(diff_endpoints(&new, &new), EndpointDiff::default());
    }

    #[tokio::test(start_paused = true)]
    async fn changes_follow_the_watch_channel() {
        let (tx, rx) = watch::channel(vec![addr(1), addr(2)]);
        let mut discover = EndpointDiscover::new(rx, |a: SocketAddr| format!("svc{}", a.port()));
        let mut next = async || describe(discover.next().await.unwrap().unwrap());
        assert_eq!(next().await, "+1 svc1");
        assert_eq!(next().await, "+2 svc2");
        // Unchanged sets yield nothing; a duplicate address is one endpoint.
        tx.send_replace(vec![addr(2), addr(1)]);
        tx.send_replace(vec![addr(2), addr(3), addr(3)]);
        assert_eq!(next().await, "-1");
        assert_eq!(next().await, "+3 svc3");
        drop(tx);
        assert!(
            discover.next().await.is_none(),
            "the stream ends with its source"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_target_whose_identity_changes_is_inserted_again() {
        use crate::table::ServiceAccountRef;
        let target = |port: u16, account: Option<&str>| EndpointTarget {
            addr: addr(port),
            account: account.map(|name| ServiceAccountRef::new("shop", name)),
        };
        let (tx, rx) = watch::channel(vec![target(1, Some("web")), target(2, None)]);
        let mut discover = EndpointDiscover::targets(rx, |t: &EndpointTarget| {
            let account = t
                .account
                .as_ref()
                .map_or("?".to_owned(), |a| a.name.clone());
            format!("svc{}:{account}", t.addr.port())
        });
        let mut next = async || describe(discover.next().await.unwrap().unwrap());
        assert_eq!(next().await, "+1 svc1:web");
        assert_eq!(next().await, "+2 svc2:?");
        // Unchanged targets yield nothing; 1 changing hands is inserted again (replacing
        // its service), 2 learning its identity too.
        tx.send_replace(vec![target(2, None), target(1, Some("web"))]);
        tx.send_replace(vec![target(1, Some("intruder")), target(2, Some("web"))]);
        assert_eq!(next().await, "+1 svc1:intruder");
        assert_eq!(next().await, "+2 svc2:web");
        tx.send_replace(vec![target(2, Some("web"))]);
        assert_eq!(next().await, "-1");
    }

    #[tokio::test(start_paused = true)]
    async fn fixed_inserts_once_and_stays_open() {
        let mut discover = EndpointDiscover::fixed(vec![addr(7)], |a: SocketAddr| a.to_string());
        assert_eq!(
            describe(discover.next().await.unwrap().unwrap()),
            "+7 127.0.0.1:7"
        );
        let more =
            tokio::time::timeout(std::time::Duration::from_secs(3600), discover.next()).await;
        assert!(more.is_err(), "a fixed source never ends nor changes");
    }
}
