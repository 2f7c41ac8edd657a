//! UDP: one listening socket per address, one backend flow per client address, closed after
//! an idle timeout or when its backend leaves the table.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::debug;

use super::port::{Pick, PortShared};

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// Replies waiting for the listening socket, per service port.
const REPLY_QUEUE: usize = 1024;

/// A client's flow: its socket towards the backend and the task relaying replies.
struct Flow {
    /// Connected to the backend.
    upstream: Arc<UdpSocket>,
    /// When the flow last carried a datagram either way.
    last_seen: Arc<Mutex<Instant>>,
    /// Relays the backend's replies; aborted with the flow.
    task: JoinHandle<()>,
    /// Tells this flow from a later one of the same client.
    id: u64,
}

/// The flows of one listening socket; dropping it (with the loop) ends every flow at once.
#[derive(Default)]
struct Flows {
    /// By client address.
    by_client: HashMap<SocketAddr, Flow>,
    /// The id of the next flow.
    next_id: u64,
}

impl Drop for Flows {
    fn drop(&mut self) {
        for flow in self.by_client.values() {
            flow.task.abort();
        }
    }
}

/// What a flow's relay task sends to the loop.
enum Relay {
    /// A reply for the client.
    Reply(SocketAddr, Vec<u8>),
    /// The flow ended (idle or backend removed).
    Ended(SocketAddr, u64),
}

/// Relays datagrams between clients and backends forever. Only this task owns the listening
/// socket, so dropping the future closes it and clients are refused (ICMP port unreachable).
pub(crate) async fn datagram_loop(socket: UdpSocket, shared: Arc<PortShared>) {
    let (tx, mut rx) = mpsc::channel::<Relay>(REPLY_QUEUE);
    let mut flows = Flows::default();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let (n, client) = match received {
                    Ok(received) => received,
                    Err(error) => {
                        // ICMP errors of earlier replies surface here; they concern one client only.
                        debug!(service = %shared.key, %error, "receive failed");
                        continue;
                    }
                };
                if !flows.by_client.contains_key(&client) {
                    let Some(pick) = shared.pick(client.ip()) else { continue };
                    match open_flow(pick, client, &shared, tx.clone(), flows.next_id).await {
                        Ok(flow) => {
                            flows.next_id += 1;
                            flows.by_client.insert(client, flow);
                        }
                        Err(error) => {
                            debug!(service = %shared.key, %error, "opening a flow failed");
                            continue;
                        }
                    }
                }
                if let Some(flow) = flows.by_client.get(&client) {
                    *flow.last_seen.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
                    if let Err(error) = flow.upstream.send(&buf[..n]).await {
                        debug!(service = %shared.key, %error, "sending to the backend failed");
                    }
                }
            }
            Some(relay) = rx.recv() => match relay {
                Relay::Reply(client, data) => {
                    if let Err(error) = socket.send_to(&data, client).await {
                        debug!(service = %shared.key, %error, "sending to the client failed");
                    }
                }
                Relay::Ended(client, id) => {
                    if flows.by_client.get(&client).is_some_and(|f| f.id == id) {
                        flows.by_client.remove(&client);
                    }
                }
            }
        }
    }
}

/// Opens a client's flow to the backend `pick` chose.
async fn open_flow(
    pick: Pick,
    client: SocketAddr,
    shared: &Arc<PortShared>,
    tx: mpsc::Sender<Relay>,
    id: u64,
) -> std::io::Result<Flow> {
    let any: IpAddr = match pick.backend {
        SocketAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        SocketAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let upstream = UdpSocket::bind((any, 0)).await?;
    upstream.connect(pick.backend).await?;
    let upstream = Arc::new(upstream);
    let last_seen = Arc::new(Mutex::new(Instant::now()));
    let task = tokio::spawn(relay(
        upstream.clone(),
        client,
        last_seen.clone(),
        pick,
        shared.config.udp_idle_timeout,
        tx,
        id,
    ));
    Ok(Flow {
        upstream,
        last_seen,
        task,
        id,
    })
}

/// Relays the backend's replies to the client until the flow is idle for `idle`, or its
/// backend is removed.
async fn relay(
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    last_seen: Arc<Mutex<Instant>>,
    mut pick: Pick,
    idle: std::time::Duration,
    tx: mpsc::Sender<Relay>,
    id: u64,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let deadline = *last_seen.lock().unwrap_or_else(PoisonError::into_inner) + idle;
        tokio::select! {
            received = upstream.recv(&mut buf) => match received {
                Ok(n) => {
                    *last_seen.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
                    if tx.send(Relay::Reply(client, buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
                // The backend's port is closed (ICMP unreachable): the flow is useless.
                Err(_) => break,
            },
            () = tokio::time::sleep_until(deadline) => {
                let seen = *last_seen.lock().unwrap_or_else(PoisonError::into_inner);
                if Instant::now() >= seen + idle {
                    break;
                }
            }
            // UDP has no connection to finish: a removed backend's flows end at once, so
            // that the client's next datagram picks a current backend.
            () = removed(&mut pick) => break,
        }
    }
    let _ = tx.send(Relay::Ended(client, id)).await;
}

/// Completes once the flow's backend is removed.
async fn removed(pick: &mut Pick) {
    // The guard `wait_for` returns is dropped here: it must not live across an await.
    let _ = pick.removed.wait_for(|removed| *removed).await;
}
