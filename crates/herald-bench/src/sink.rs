//! The loopback sink deliveries go to. It records when each message (by the
//! `seq` in its payload) first arrived on each lane (the number ending the
//! URL path, one per endpoint), counts duplicates, and can be made slow per
//! path.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Arrivals shared between the sink and the scenario reading them.
pub(crate) struct Arrivals {
    epoch: Instant,
    lanes: usize,
    /// Nanoseconds since `epoch` + 1 of the first arrival per (seq, lane);
    /// 0 = none yet.
    first: Vec<AtomicU64>,
    /// Nanoseconds since `epoch` of the latest arrival.
    pub(crate) last: AtomicU64,
    pub(crate) total: AtomicUsize,
    pub(crate) duplicates: AtomicUsize,
    /// Requests whose path starts with `/slow` sleep this long first.
    slow_delay: Duration,
}

impl Arrivals {
    pub(crate) fn new(
        epoch: Instant,
        seqs: usize,
        lanes: usize,
        slow_delay: Duration,
    ) -> Arc<Arrivals> {
        Arc::new(Arrivals {
            epoch,
            lanes,
            first: (0..seqs * lanes).map(|_| AtomicU64::new(0)).collect(),
            last: AtomicU64::new(0),
            total: AtomicUsize::new(0),
            duplicates: AtomicUsize::new(0),
            slow_delay,
        })
    }

    /// When `seq` first arrived on `lane`, as nanoseconds since the epoch.
    pub(crate) fn arrival(&self, seq: usize, lane: usize) -> Option<u64> {
        match self
            .first
            .get(seq * self.lanes + lane)?
            .load(Ordering::Acquire)
        {
            0 => None,
            stamp => Some(stamp - 1),
        }
    }

    /// Distinct (seq, lane) pairs that arrived.
    pub(crate) fn distinct(&self) -> usize {
        self.total.load(Ordering::Relaxed) - self.duplicates.load(Ordering::Relaxed)
    }

    fn record(&self, seq: usize, lane: usize) {
        let now = self.epoch.elapsed().as_nanos() as u64;
        self.last.fetch_max(now, Ordering::AcqRel);
        let stamp = now + 1;
        if lane >= self.lanes {
            return;
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = self.first.get(seq * self.lanes + lane) {
            if slot
                .compare_exchange(0, stamp, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                self.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A running sink.
pub(crate) struct Sink {
    pub(crate) address: SocketAddr,
    task: JoinHandle<()>,
}

impl Sink {
    /// Starts the sink on `address` (port 0 for any).
    pub(crate) async fn start(
        address: SocketAddr,
        arrivals: Arc<Arrivals>,
    ) -> anyhow::Result<Sink> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let app = Router::new().fallback(receive).with_state(arrivals);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Sink { address, task })
    }

    /// The URL of `lane`; slow lanes answer after the sink's delay.
    pub(crate) fn url(&self, lane: usize, slow: bool) -> String {
        let prefix = if slow { "slow/" } else { "" };
        format!("http://{}/{prefix}lane/{lane}", self.address)
    }

    /// Stops accepting connections.
    pub(crate) fn stop(self) {
        self.task.abort();
    }
}

async fn receive(State(arrivals): State<Arc<Arrivals>>, uri: Uri, body: Bytes) -> StatusCode {
    if uri.path().starts_with("/slow") {
        tokio::time::sleep(arrivals.slow_delay).await;
    }
    let lane = uri
        .path()
        .rsplit('/')
        .next()
        .and_then(|last| last.parse().ok())
        .unwrap_or(0);
    match seq_of(&body) {
        Some(seq) => {
            arrivals.record(seq, lane);
            StatusCode::OK
        }
        None => StatusCode::BAD_REQUEST,
    }
}

/// The `seq` field of a `{"seq": N, …}` payload, found without a full parse.
pub(crate) fn seq_of(body: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("\"seq\":")? + 6;
    let digits: String = text[start..]
        .chars()
        .skip_while(|c| c.is_whitespace())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_is_read_from_the_payload() {
        assert_eq!(seq_of(br#"{"seq":42,"pad":"x"}"#), Some(42));
        assert_eq!(seq_of(br#"{"pad":"x", "seq": 7}"#), Some(7));
        assert_eq!(seq_of(b"{}"), None);
    }
}
