//! The in-process echo backend every path ends at.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::bench::BenchError;
use crate::bench::proxy::io_error;

/// Starts an echo server on 127.0.0.1 (it runs until the runtime stops) and returns its address.
pub async fn start() -> Result<SocketAddr, BenchError> {
    start_on(IpAddr::V4(Ipv4Addr::LOCALHOST)).await
}

/// Starts an echo server on `ip`, on a free port (it runs until the runtime stops), and
/// returns its address.
pub async fn start_on(ip: IpAddr) -> Result<SocketAddr, BenchError> {
    let listener = TcpListener::bind((ip, 0))
        .await
        .map_err(io_error("binding the echo backend"))?;
    let addr = listener
        .local_addr()
        .map_err(io_error("reading the echo backend's address"))?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let (mut r, mut w) = stream.split();
                // A large buffer so bulk echo moves in few syscalls.
                let mut r = tokio::io::BufReader::with_capacity(64 * 1024, &mut r);
                let _ = tokio::io::copy_buf(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    Ok(addr)
}
