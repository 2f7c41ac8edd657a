//! The three measurements of one path: bulk throughput over one connection, latency at a fixed
//! open-loop rate, and max requests/s closed-loop.

use std::net::SocketAddr;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::bench::BenchError;
use crate::bench::proxy::io_error;
use crate::bench::report::{latency_histogram, merge, record};

/// Chunk size of the bulk writer and reader.
const CHUNK: usize = 256 * 1024;

/// Streams `bytes` through an echo connection to `addr` (written and read back concurrently)
/// and returns the elapsed time.
pub async fn bulk(addr: SocketAddr, bytes: u64) -> Result<Duration, BenchError> {
    let stream = connect(addr).await?;
    let (mut reader, mut writer) = stream.into_split();
    let started = Instant::now();
    let write = tokio::spawn(async move {
        let chunk = vec![0x5au8; CHUNK];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            writer.write_all(&chunk[..n]).await?;
            left -= n as u64;
        }
        // The writer stays open (no half-close) until everything is read back: proxies
        // differ in how they pass a half-close on.
        Ok::<_, std::io::Error>(writer)
    });
    let mut buf = vec![0u8; CHUNK];
    let mut received = 0u64;
    while received < bytes {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(io_error("reading the bulk echo"))?;
        if n == 0 {
            return Err(short("bulk", received, bytes));
        }
        received += n as u64;
    }
    let elapsed = started.elapsed();
    write
        .await
        .map_err(BenchError::Task)?
        .map_err(io_error("writing the bulk stream"))?;
    Ok(elapsed)
}

/// Sends `rate` requests per second for `duration`, spread over `connections` connections in
/// turn, each request at its scheduled time whatever happened before (open loop), and records
/// each latency from the scheduled time to the whole echo's arrival (so that a stall counts
/// for every request it delays: no coordinated omission).
pub async fn open_loop(
    addr: SocketAddr,
    rate: u32,
    connections: u32,
    size: usize,
    duration: Duration,
) -> Result<(Histogram<u64>, u64), BenchError> {
    let total = (f64::from(rate) * duration.as_secs_f64()).round() as u64;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::new();
    for c in 0..u64::from(connections) {
        let mut stream = connect(addr).await?;
        tasks.push(tokio::spawn(async move {
            let mut hist = latency_histogram()?;
            let request = vec![0x42u8; size];
            let mut reply = vec![0u8; size];
            let mut i = c;
            let mut done = 0u64;
            let mut previous_done = Instant::now();
            while i < total {
                let due = start + interval.mul_f64(i as f64);
                tokio::time::sleep_until(due).await;
                // Late because the previous request on this connection was slow: count from
                // the scheduled time (no coordinated omission). Late only because the timer
                // (1 ms granularity) woke us late: that is the generator's delay, not the
                // path's, so count from now.
                let sent = if previous_done > due {
                    due
                } else {
                    Instant::now()
                };
                round_trip(&mut stream, &request, &mut reply).await?;
                previous_done = Instant::now();
                record(&mut hist, previous_done - sent);
                done += 1;
                i += u64::from(connections);
            }
            Ok::<_, BenchError>((hist, done))
        }));
    }
    collect(tasks).await
}

/// Each of `connections` connections sends its next request as soon as the previous echo is
/// back, for `duration`; returns the latencies and the requests completed.
pub async fn closed_loop(
    addr: SocketAddr,
    connections: u32,
    size: usize,
    duration: Duration,
) -> Result<(Histogram<u64>, u64), BenchError> {
    let mut streams = Vec::new();
    for _ in 0..connections {
        streams.push(connect(addr).await?);
    }
    let end = Instant::now() + duration;
    let tasks = streams
        .into_iter()
        .map(|mut stream| {
            tokio::spawn(async move {
                let mut hist = latency_histogram()?;
                let request = vec![0x42u8; size];
                let mut reply = vec![0u8; size];
                let mut done = 0u64;
                while Instant::now() < end {
                    let one = Instant::now();
                    round_trip(&mut stream, &request, &mut reply).await?;
                    record(&mut hist, one.elapsed());
                    done += 1;
                }
                Ok::<_, BenchError>((hist, done))
            })
        })
        .collect();
    collect(tasks).await
}

/// What one load task measured: its latencies and completed requests.
type Measured = (Histogram<u64>, u64);

/// Merges the tasks' histograms and counts.
async fn collect(
    tasks: Vec<tokio::task::JoinHandle<Result<Measured, BenchError>>>,
) -> Result<Measured, BenchError> {
    let mut hist = latency_histogram()?;
    let mut done = 0;
    for task in tasks {
        let (h, n) = task.await.map_err(BenchError::Task)??;
        merge(&mut hist, &h)?;
        done += n;
    }
    Ok((hist, done))
}

/// One request and its whole echo.
async fn round_trip(
    stream: &mut TcpStream,
    request: &[u8],
    reply: &mut [u8],
) -> Result<(), BenchError> {
    stream
        .write_all(request)
        .await
        .map_err(io_error("sending a request"))?;
    stream
        .read_exact(reply)
        .await
        .map_err(io_error("reading a response"))?;
    Ok(())
}

/// A connection with Nagle off (requests are small and latency-bound).
async fn connect(addr: SocketAddr) -> Result<TcpStream, BenchError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(io_error("connecting"))?;
    stream
        .set_nodelay(true)
        .map_err(io_error("setting TCP_NODELAY"))?;
    Ok(stream)
}

/// The error for a stream that ended early.
fn short(what: &str, got: u64, want: u64) -> BenchError {
    BenchError::Proxy {
        what: format!("the {what} echo ended after {got} of {want} bytes"),
        source: Box::new(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)),
    }
}
