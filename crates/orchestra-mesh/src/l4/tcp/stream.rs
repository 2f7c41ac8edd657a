//! TCP: the accept loop of one listening address, and the forwarding of one connection.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::copy_bidirectional_with_sizes;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, warn};

use super::port::{PortShared, drained};

/// Copy buffer per direction: large enough that bulk transfers move in few syscalls.
const COPY_BUFFER: usize = 64 * 1024;

/// Accepts connections forever, forwarding each in its own task. Dropping the future closes
/// the listener (new clients are then refused by the kernel); forwarded connections go on.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<PortShared>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(forward(stream, peer, shared.clone()));
            }
            Err(error) => {
                // Out of file descriptors and the like: back off a little instead of spinning.
                warn!(service = %shared.key, %error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// Forwards one client connection to a backend until either side closes, or until the drain
/// timeout after its backend was removed.
async fn forward(mut client: TcpStream, peer: SocketAddr, shared: Arc<PortShared>) {
    let Some(pick) = shared.pick(peer.ip()) else {
        // The last backend went away between accept and here: refuse as a closed port would.
        reset(client);
        return;
    };
    let connect = TcpStream::connect(pick.backend);
    let mut upstream = match tokio::time::timeout(shared.config.connect_timeout, connect).await {
        Ok(Ok(upstream)) => upstream,
        Ok(Err(error)) => {
            debug!(service = %shared.key, backend = %pick.backend, %error, "backend refused");
            reset(client);
            return;
        }
        Err(_) => {
            debug!(service = %shared.key, backend = %pick.backend, "backend connect timed out");
            reset(client);
            return;
        }
    };
    // Request/response traffic must not wait for Nagle; the two sides already batch.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    tokio::select! {
        result = copy_bidirectional_with_sizes(&mut client, &mut upstream, COPY_BUFFER, COPY_BUFFER) => {
            if let Err(error) = result {
                debug!(service = %shared.key, backend = %pick.backend, %error, "connection ended with an error");
            }
        }
        () = drained(pick.removed, shared.drain_timeout()) => {
            debug!(service = %shared.key, backend = %pick.backend, "closing a drained connection");
        }
    }
}

/// Closes `stream` with a reset (RST), so that the client sees the refusal at once instead of
/// an orderly end of a connection that never carried anything.
fn reset(stream: TcpStream) {
    // Zero linger makes close() send RST without blocking (nothing is left to flush).
    let _ = stream.set_zero_linger();
    drop(stream);
}
