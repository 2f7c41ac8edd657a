//! [`EndpointDiscover`]: a service's ready endpoints as a `tower::discover::Discover` stream.
//!
//! The source is a `watch` channel holding the current endpoint list (fed by
//! [`MeshDirectory`](super::MeshDirectory), which the same [`ProxyFollower`](crate::ProxyFollower)
//! that drives the L4 proxy keeps up to date, or by a test directly). Each new value is
//! compared with the previous one and turned into `Change::Insert` for every added address and
//! `Change::Remove` for every removed one, so that a balancer keeps the connections and load
//! estimates of the endpoints that stayed.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tower::discover::Change;

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
    pub fn new<F>(endpoints: watch::Receiver<Vec<SocketAddr>>, make: F) -> Self
    where
        F: FnMut(SocketAddr) -> S + Send + 'static,
    {
        struct State<F> {
            rx: watch::Receiver<Vec<SocketAddr>>,
            current: BTreeSet<SocketAddr>,
            make: F,
            first: bool,
        }
        let state = State {
            rx: endpoints,
            current: BTreeSet::new(),
            make,
            first: true,
        };
        let batches = futures::stream::unfold(state, |mut state| async move {
            loop {
                if state.first {
                    state.first = false;
                } else if state.rx.changed().await.is_err() {
                    return None;
                }
                let new: BTreeSet<SocketAddr> =
                    state.rx.borrow_and_update().iter().copied().collect();
                let diff = diff_endpoints(&state.current, &new);
                state.current = new;
                if diff.removed.is_empty() && diff.added.is_empty() {
                    continue;
                }
                let mut batch = Vec::with_capacity(diff.removed.len() + diff.added.len());
                batch.extend(diff.removed.into_iter().map(Change::Remove));
                for addr in diff.added {
                    batch.push(Change::Insert(addr, (state.make)(addr)));
                }
                return Some((futures::stream::iter(batch), state));
            }
        });
        EndpointDiscover {
            changes: Box::pin(batches.flatten()),
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
