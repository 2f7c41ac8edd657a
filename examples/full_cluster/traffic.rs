//! The demo's client: sends HTTP requests to a [`Target`] (a Service's ClusterIP, or the mesh
//! proxy naming the service) at a steady pace and counts which pods answered and how many
//! requests failed, so each step of the demo can say what a user of the service would have seen.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Where requests go: an address, and the `Host` they name there.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The address dialled.
    pub address: SocketAddr,
    /// The request's `Host` header (the mesh routes by it; a ClusterIP ignores it).
    pub host: &'static str,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (Host: {})", self.address, self.host)
    }
}

/// What the client saw.
#[derive(Clone, Debug, Default)]
pub struct TrafficStats {
    /// Answers per `pod=NAME version=V` body.
    pub answers: BTreeMap<String, u64>,
    /// Requests that failed, with the first few reasons.
    pub failures: u64,
    /// Up to five failure reasons, for the report.
    pub failure_samples: Vec<String>,
}

impl TrafficStats {
    /// Requests sent in all.
    pub fn sent(&self) -> u64 {
        self.answers.values().sum::<u64>() + self.failures
    }

    /// How many distinct pods answered.
    pub fn pods(&self) -> usize {
        self.answers
            .keys()
            .filter_map(|body| body.split_whitespace().next())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    }

    /// Answers whose body names `version`.
    pub fn answers_of(&self, version: &str) -> u64 {
        let needle = format!("version={version}");
        self.answers
            .iter()
            .filter(|(body, _)| body.contains(&needle))
            .map(|(_, n)| n)
            .sum()
    }

    fn record(&mut self, outcome: Result<String, String>) {
        match outcome {
            Ok(body) => *self.answers.entry(body).or_default() += 1,
            Err(reason) => {
                self.failures += 1;
                if self.failure_samples.len() < 5 {
                    self.failure_samples.push(reason);
                }
            }
        }
    }
}

/// A client sending one request every `interval` until stopped.
pub struct Traffic {
    stats: Arc<Mutex<TrafficStats>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Traffic {
    /// Start sending to `target`.
    pub fn start(target: Target, interval: Duration) -> Self {
        let stats = Arc::new(Mutex::new(TrafficStats::default()));
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn({
            let stats = stats.clone();
            async move {
                let mut ticker = tokio::time::interval(interval);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        _ = stopped.changed() => return,
                        _ = ticker.tick() => {
                            let outcome = request(target).await;
                            stats.lock().record(outcome);
                        }
                    }
                }
            }
        });
        Traffic { stats, stop, task }
    }

    /// Stop and return everything seen.
    pub async fn stop(self) -> TrafficStats {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        self.stats.lock().clone()
    }
}

/// Send `count` requests one after the other and return what answered.
pub async fn burst(target: Target, count: usize) -> TrafficStats {
    let mut stats = TrafficStats::default();
    for _ in 0..count {
        stats.record(request(target).await);
    }
    stats
}

/// One `GET /` on a new connection; the body's first line, or why it failed.
pub async fn request(target: Target) -> Result<String, String> {
    let exchange = async {
        let mut stream = TcpStream::connect(target.address)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let head = format!(
            "GET / HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            target.host
        );
        stream
            .write_all(head.as_bytes())
            .await
            .map_err(|e| format!("send: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("receive: {e}"))?;
        let text = String::from_utf8_lossy(&response);
        if !text.starts_with("HTTP/1.1 200") {
            return Err(format!(
                "unexpected answer: {:?}",
                text.lines().next().unwrap_or("")
            ));
        }
        text.split("\r\n\r\n")
            .nth(1)
            .map(|body| body.trim().to_owned())
            .filter(|body| !body.is_empty())
            .ok_or_else(|| "empty body".to_owned())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")))
}
