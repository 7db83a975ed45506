//! Load generators: closed loop (N workers, each sending as fast as answers
//! come back) and open loop (a fixed rate, whatever the answers do).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// When each call started and how long it took (ns since the epoch / ns).
#[derive(Debug, Default)]
pub(crate) struct Calls {
    pub(crate) started: Vec<u64>,
    pub(crate) latency: Vec<u64>,
    pub(crate) failures: usize,
    pub(crate) elapsed: Duration,
}

/// Runs `call(seq)` for every seq in `seqs` with `concurrency` workers.
pub(crate) async fn closed_loop<F, Fut>(
    epoch: Instant,
    seqs: std::ops::Range<usize>,
    concurrency: usize,
    call: F,
) -> Calls
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let count = seqs.len();
    let first = seqs.start;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(
        (0..count)
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect::<Vec<_>>(),
    );
    let latency = Arc::new(
        (0..count)
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect::<Vec<_>>(),
    );
    let failures = Arc::new(AtomicUsize::new(0));
    let call = Arc::new(call);
    let begin = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (next, started, latency, failures, call) = (
            next.clone(),
            started.clone(),
            latency.clone(),
            failures.clone(),
            call.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    break;
                }
                let start = Instant::now();
                started[index].store(
                    start.duration_since(epoch).as_nanos() as u64,
                    Ordering::Relaxed,
                );
                if call(first + index).await.is_err() {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                latency[index].store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    Calls {
        started: started
            .iter()
            .map(|value| value.load(Ordering::Relaxed))
            .collect(),
        latency: latency
            .iter()
            .map(|value| value.load(Ordering::Relaxed))
            .collect(),
        failures: failures.load(Ordering::Relaxed),
        elapsed: begin.elapsed(),
    }
}

/// Runs `call(seq)` at `per_second` for `seqs`, each call on its own task.
pub(crate) async fn open_loop<F, Fut>(
    epoch: Instant,
    seqs: std::ops::Range<usize>,
    per_second: u32,
    call: F,
) -> Calls
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let count = seqs.len();
    let results = Arc::new(Mutex::new(vec![(0u64, 0u64, true); count]));
    let call = Arc::new(call);
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / per_second.max(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let begin = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for (index, seq) in seqs.enumerate() {
        ticker.tick().await;
        let (results, call) = (results.clone(), call.clone());
        tasks.push(tokio::spawn(async move {
            let start = Instant::now();
            let ok = call(seq).await.is_ok();
            let entry = (
                start.duration_since(epoch).as_nanos() as u64,
                start.elapsed().as_nanos() as u64,
                ok,
            );
            if let Ok(mut results) = results.lock() {
                results[index] = entry;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    let results = results
        .lock()
        .map(|results| results.clone())
        .unwrap_or_default();
    Calls {
        started: results.iter().map(|entry| entry.0).collect(),
        latency: results.iter().map(|entry| entry.1).collect(),
        failures: results.iter().filter(|entry| !entry.2).count(),
        elapsed: begin.elapsed(),
    }
}
