//! [`Drain`]: the graceful end of a listener. Once [`Drain::start`] is called, accept loops
//! stop taking connections, HTTP connections are asked to finish (hyper's graceful
//! shutdown: HTTP/1 closes after the response in flight, HTTP/2 sends GOAWAY), and
//! [`Drain::idle`] completes when the last tracked connection has ended, so that a sidecar
//! exits without cutting requests short.

use std::sync::Arc;

use tokio::sync::watch;

#[derive(Debug)]
struct Inner {
    draining: watch::Sender<bool>,
    live: watch::Sender<usize>,
}

/// A drain signal and a count of the connections still open (cheap to clone; every clone
/// shares them).
#[derive(Clone, Debug)]
pub struct Drain {
    inner: Arc<Inner>,
}

impl Default for Drain {
    fn default() -> Self {
        Drain::new()
    }
}

/// One tracked connection: counted from [`Drain::track`] until dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    inner: Arc<Inner>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.inner.live.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Drain {
    /// A drain that has not started, with no connection.
    pub fn new() -> Self {
        Drain {
            inner: Arc::new(Inner {
                draining: watch::Sender::new(false),
                live: watch::Sender::new(0),
            }),
        }
    }

    /// Starts draining (idempotent).
    pub fn start(&self) {
        self.inner.draining.send_if_modified(|draining| {
            let changed = !*draining;
            *draining = true;
            changed
        });
    }

    /// Whether [`start`](Self::start) was called.
    pub fn is_draining(&self) -> bool {
        *self.inner.draining.borrow()
    }

    /// Completes once draining has started (at once if it has).
    pub async fn draining(&self) {
        let mut rx = self.inner.draining.subscribe();
        // The sender lives in `self`: `wait_for` cannot fail while we hold it.
        let _ = rx.wait_for(|draining| *draining).await;
    }

    /// Counts a connection until the guard is dropped.
    pub fn track(&self) -> ConnectionGuard {
        self.inner.live.send_modify(|n| *n += 1);
        ConnectionGuard {
            inner: self.inner.clone(),
        }
    }

    /// The connections open now.
    pub fn live(&self) -> usize {
        *self.inner.live.borrow()
    }

    /// Completes when no tracked connection is open.
    pub async fn idle(&self) {
        let mut rx = self.inner.live.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// Serves `connection` (a hyper server connection) to its end, or, once `drain` starts,
/// asks it to finish gracefully and waits for that.
pub(crate) async fn serve_draining<C, E>(
    connection: C,
    drain: &Drain,
    graceful: impl FnOnce(std::pin::Pin<&mut C>),
) -> Result<(), E>
where
    C: std::future::Future<Output = Result<(), E>>,
{
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        done = connection.as_mut() => done,
        () = drain.draining() => {
            graceful(connection.as_mut());
            connection.await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn idle_waits_for_the_last_connection() {
        let drain = Drain::new();
        assert!(!drain.is_draining());
        let first = drain.track();
        let second = drain.track();
        assert_eq!(drain.live(), 2);
        drain.start();
        drain.start();
        assert!(drain.is_draining());
        drain.draining().await;
        drop(first);
        assert_eq!(drain.live(), 1);
        let idle = tokio::spawn({
            let drain = drain.clone();
            async move { drain.idle().await }
        });
        tokio::task::yield_now().await;
        assert!(!idle.is_finished());
        drop(second);
        idle.await.unwrap();
        assert_eq!(drain.live(), 0);
    }
}
