//! [`Balancer`]: the backend choice of one service port (round-robin, ClientIP affinity),
//! shared by [`MemoryProxy`](super::MemoryProxy) and [`TcpProxy`](super::TcpProxy) so that
//! both decide identically. Pure: the caller passes the time (tokio's, paused in tests).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use tokio::time::Instant;

use crate::table::Affinity;

/// Above this many remembered clients, a pick sweeps the expired ones (so that the map of a
/// busy service does not grow without bound, and small maps cost nothing).
const SWEEP_THRESHOLD: usize = 4096;

/// Chooses the backend of each new connection or flow of one service port.
#[derive(Clone, Debug, Default)]
pub struct Balancer {
    /// The ready backends, in table order.
    endpoints: Vec<SocketAddr>,
    /// The index of the next round-robin pick.
    next: usize,
    /// The affinity in force.
    affinity: Affinity,
    /// ClientIP affinity: each client's backend and when it was last seen.
    sticky: HashMap<IpAddr, (SocketAddr, Instant)>,
    /// The sticky map's size after the last sweep.
    swept_len: usize,
}

impl Balancer {
    /// A balancer over `endpoints` with `affinity`.
    pub fn new(endpoints: Vec<SocketAddr>, affinity: Affinity) -> Self {
        Balancer {
            endpoints,
            affinity,
            ..Balancer::default()
        }
    }

    /// The backends it chooses from.
    pub fn endpoints(&self) -> &[SocketAddr] {
        &self.endpoints
    }

    /// Replaces the backends and the affinity. Clients stuck to a backend that remains keep
    /// it; the others (and all of them when the affinity changes) choose afresh.
    pub fn update(&mut self, endpoints: Vec<SocketAddr>, affinity: Affinity) {
        if affinity != self.affinity {
            self.sticky.clear();
        } else {
            self.sticky
                .retain(|_, (backend, _)| endpoints.contains(backend));
        }
        self.swept_len = self.sticky.len();
        self.affinity = affinity;
        self.endpoints = endpoints;
    }

    /// The backend for a new connection from `client` at `now`, or `None` when there is no
    /// backend (the client must be refused).
    pub fn pick(&mut self, client: IpAddr, now: Instant) -> Option<SocketAddr> {
        if self.endpoints.is_empty() {
            return None;
        }
        match self.affinity {
            Affinity::None => Some(self.round_robin()),
            Affinity::ClientIp { timeout } => {
                if self.sticky.len() > SWEEP_THRESHOLD.max(self.swept_len * 2) {
                    self.sticky
                        .retain(|_, (_, seen)| now.saturating_duration_since(*seen) < timeout);
                    self.swept_len = self.sticky.len();
                }
                if let Some((backend, seen)) = self.sticky.get_mut(&client)
                    && now.saturating_duration_since(*seen) < timeout
                {
                    // The timeout counts from the client's last connection, not its first.
                    *seen = now;
                    return Some(*backend);
                }
                let backend = self.round_robin();
                self.sticky.insert(client, (backend, now));
                Some(backend)
            }
        }
    }

    /// The next backend in turn (there is at least one).
    fn round_robin(&mut self) -> SocketAddr {
        let backend = self.endpoints[self.next % self.endpoints.len()];
        self.next = (self.next + 1) % self.endpoints.len();
        backend
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn addrs(n: u16) -> Vec<SocketAddr> {
        (1..=n)
            .map(|i| SocketAddr::from(([10, 0, 0, 1], 8000 + i)))
            .collect()
    }

    fn client(i: u8) -> IpAddr {
        IpAddr::from([192, 168, 0, i])
    }

    #[test]
    fn round_robin_cycles_through_every_backend() {
        let now = Instant::now();
        let mut b = Balancer::new(addrs(3), Affinity::None);
        let picks: Vec<_> = (0..6).map(|_| b.pick(client(1), now).unwrap()).collect();
        let e = addrs(3);
        assert_eq!(picks, vec![e[0], e[1], e[2], e[0], e[1], e[2]]);
    }

    #[test]
    fn no_backend_means_none() {
        let mut b = Balancer::new(vec![], Affinity::None);
        assert_eq!(b.pick(client(1), Instant::now()), None);
        b.update(addrs(1), Affinity::None);
        assert_eq!(b.pick(client(1), Instant::now()), Some(addrs(1)[0]));
        b.update(vec![], Affinity::None);
        assert_eq!(b.pick(client(1), Instant::now()), None);
    }

    #[test]
    fn client_ip_affinity_sticks_until_the_client_is_idle_for_the_timeout() {
        let timeout = Duration::from_secs(10);
        let t0 = Instant::now();
        let mut b = Balancer::new(addrs(3), Affinity::ClientIp { timeout });
        let first = b.pick(client(1), t0).unwrap();
        let other = b.pick(client(2), t0).unwrap();
        assert_ne!(first, other);
        // Each use refreshes the timestamp: 9 s gaps never expire it.
        for i in 1..=5 {
            assert_eq!(
                b.pick(client(1), t0 + Duration::from_secs(9 * i)),
                Some(first)
            );
        }
        // Idle for the full timeout: a fresh round-robin choice.
        let later = t0 + Duration::from_secs(45 + 10);
        let again = b.pick(client(1), later).unwrap();
        assert_ne!(
            again, first,
            "round-robin moved on, so the new pick differs"
        );
    }

    #[test]
    fn a_removed_backend_releases_its_clients_and_others_keep_theirs() {
        let timeout = Duration::from_secs(100);
        let now = Instant::now();
        let e = addrs(3);
        let mut b = Balancer::new(e.clone(), Affinity::ClientIp { timeout });
        assert_eq!(b.pick(client(1), now), Some(e[0]));
        assert_eq!(b.pick(client(2), now), Some(e[1]));
        b.update(vec![e[1], e[2]], Affinity::ClientIp { timeout });
        assert_eq!(b.pick(client(2), now), Some(e[1]));
        let moved = b.pick(client(1), now).unwrap();
        assert_ne!(moved, e[0]);
        // Turning affinity off forgets everyone.
        b.update(vec![e[1], e[2]], Affinity::None);
        assert!(b.sticky.is_empty());
    }

    #[test]
    fn expired_clients_are_swept_once_the_map_is_large() {
        let timeout = Duration::from_secs(1);
        let t0 = Instant::now();
        let mut b = Balancer::new(addrs(2), Affinity::ClientIp { timeout });
        for i in 0..=SWEEP_THRESHOLD as u32 {
            b.pick(IpAddr::from(i.to_be_bytes()), t0);
        }
        b.pick(client(1), t0 + Duration::from_secs(5));
        assert_eq!(b.sticky.len(), 1);
    }
}
