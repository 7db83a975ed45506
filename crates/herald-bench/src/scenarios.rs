//! The scenarios. Each starts a fresh herald (fresh database) and sink,
//! drives load through the public API only, and reports rows for the table.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::herald::{message_body, own_cpu_time, Herald};
use crate::load::{closed_loop, open_loop, Calls};
use crate::sink::{Arrivals, Sink};
use crate::stats::{millis, rate, Latency};

/// One line of the results table.
pub(crate) struct Row {
    pub(crate) scenario: &'static str,
    pub(crate) metric: String,
    pub(crate) value: String,
    pub(crate) target: String,
    pub(crate) met: Option<bool>,
}

impl Row {
    pub(crate) fn new(
        scenario: &'static str,
        metric: impl Into<String>,
        value: impl Into<String>,
    ) -> Row {
        Row {
            scenario,
            metric: metric.into(),
            value: value.into(),
            target: String::new(),
            met: None,
        }
    }

    fn target(mut self, target: impl Into<String>, met: bool) -> Row {
        self.target = target.into();
        self.met = Some(met);
        self
    }

    fn clear_target(&mut self) {
        self.target.clear();
        self.met = None;
    }
}

/// Settings shared by the scenarios.
pub(crate) struct Bench {
    pub(crate) herald: PathBuf,
    pub(crate) messages: usize,
    pub(crate) concurrency: usize,
    pub(crate) epoch: Instant,
    /// Deliveries per second of the same-run baseline, once measured.
    pub(crate) baseline_rate: Option<f64>,
}

const ANY_PORT: &str = "127.0.0.1:0";

pub(crate) async fn sink(arrivals: &Arc<Arrivals>) -> anyhow::Result<Sink> {
    Sink::start(ANY_PORT.parse()?, arrivals.clone()).await
}

/// Waits until `arrivals` holds `expected` distinct arrivals or `limit` passes.
pub(crate) async fn drained(
    arrivals: &Arrivals,
    expected: usize,
    limit: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while arrivals.distinct() < expected {
        if started.elapsed() > limit {
            bail!(
                "only {} of {expected} deliveries arrived within {limit:?}",
                arrivals.distinct()
            );
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(())
}

/// Call-to-arrival latencies of `lanes` for the calls made.
pub(crate) fn end_to_end(
    calls: &Calls,
    arrivals: &Arrivals,
    first_seq: usize,
    lanes: std::ops::Range<usize>,
) -> Vec<u64> {
    let mut samples = Vec::new();
    for (index, started) in calls.started.iter().enumerate() {
        for lane in lanes.clone() {
            if let Some(arrived) = arrivals.arrival(first_seq + index, lane) {
                samples.push(arrived.saturating_sub(*started));
            }
        }
    }
    samples
}

pub(crate) fn first_start(calls: &Calls) -> u64 {
    calls.started.iter().copied().min().unwrap_or(0)
}

impl Bench {
    /// The same load generator posting straight to the sink: the loopback ceiling.
    pub(crate) async fn baseline(&mut self) -> anyhow::Result<Vec<Row>> {
        let arrivals = Arrivals::new(self.epoch, self.messages, 1, Duration::ZERO);
        let sink = sink(&arrivals).await?;
        let url = sink.url(0, false);
        let http = reqwest::Client::new();
        let calls = closed_loop(self.epoch, 0..self.messages, self.concurrency, move |seq| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.post(&url)
                    .body(message_body(seq))
                    .send()
                    .await?
                    .error_for_status()?;
                Ok(())
            }
        })
        .await;
        sink.stop();
        let per_second = rate(self.messages - calls.failures, calls.elapsed);
        self.baseline_rate = Some(per_second);
        let latency = Latency::of(calls.latency);
        Ok(vec![
            Row::new(
                "baseline",
                "posts/s straight to the sink (c=32)",
                format!("{per_second:.0}"),
            ),
            Row::new(
                "baseline",
                "post latency p50 / p99",
                format!("{} / {}", millis(latency.p50), millis(latency.p99)),
            ),
        ])
    }

    async fn herald_with_lanes(
        &self,
        arrivals: &Arc<Arrivals>,
        lanes: &[bool],
        extra: &[String],
    ) -> anyhow::Result<(Herald, Sink, String)> {
        let herald = Herald::start(&self.herald, extra).await?;
        self.lanes_of(herald, arrivals, lanes).await
    }

    /// An app on `herald` with one endpoint per lane of a new sink.
    async fn lanes_of(
        &self,
        herald: Herald,
        arrivals: &Arc<Arrivals>,
        lanes: &[bool],
    ) -> anyhow::Result<(Herald, Sink, String)> {
        let sink = sink(arrivals).await?;
        let app = herald.api.create_app("bench").await?;
        for (lane, slow) in lanes.iter().enumerate() {
            herald
                .api
                .create_endpoint(&app, &sink.url(lane, *slow))
                .await?;
        }
        Ok((herald, sink, app))
    }

    async fn send_all(&self, herald: &Herald, app: &str, seqs: std::ops::Range<usize>) -> Calls {
        let api = herald.api.clone();
        let app = app.to_owned();
        closed_loop(self.epoch, seqs, self.concurrency, move |seq| {
            let (api, app) = (api.clone(), app.clone());
            async move { api.send(&app, seq).await }
        })
        .await
    }

    /// Messages accepted per second (each durable before its 202).
    pub(crate) async fn ingest(&self) -> anyhow::Result<Vec<Row>> {
        let arrivals = Arrivals::new(self.epoch, self.messages, 1, Duration::ZERO);
        let (herald, sink, app) = self.herald_with_lanes(&arrivals, &[false], &[]).await?;
        let calls = self.send_all(&herald, &app, 0..self.messages).await;
        let accepted = self.messages - calls.failures;
        let per_second = rate(accepted, calls.elapsed);
        let latency = Latency::of(calls.latency);
        drop(herald);
        sink.stop();
        Ok(vec![
            Row::new(
                "ingest",
                format!(
                    "messages accepted/s (c={}, 1 endpoint delivering)",
                    self.concurrency
                ),
                format!("{per_second:.0}"),
            )
            .target("≥ 10,000", per_second >= 10_000.0),
            Row::new(
                "ingest",
                "API latency p50 / p99",
                format!("{} / {}", millis(latency.p50), millis(latency.p99)),
            ),
            Row::new("ingest", "failed calls", calls.failures.to_string()),
        ])
    }

    /// Deliveries per second until every message arrived, and latency.
    pub(crate) async fn end_to_end(&self) -> anyhow::Result<Vec<Row>> {
        let herald = Herald::start(&self.herald, &[]).await?;
        self.end_to_end_through(herald, "end-to-end").await
    }

    /// The end-to-end scenario through the relay of [`crate::relay`], which
    /// stores nothing: the share of the baseline that the HTTP exchanges
    /// alone leave for any design.
    pub(crate) async fn ceiling(&self) -> anyhow::Result<Vec<Row>> {
        let relay = Herald::start_relay().await?;
        let mut rows = self.end_to_end_through(relay, "relay ceiling").await?;
        // The targets are Herald's, not the relay's.
        for row in &mut rows {
            row.clear_target();
        }
        Ok(rows)
    }

    async fn end_to_end_through(
        &self,
        herald: Herald,
        scenario: &'static str,
    ) -> anyhow::Result<Vec<Row>> {
        let arrivals = Arrivals::new(self.epoch, self.messages, 1, Duration::ZERO);
        let (herald, sink, app) = self.lanes_of(herald, &arrivals, &[false]).await?;
        let cpu_before = (herald.cpu_time(), herald.writer_cpu_time(), own_cpu_time());
        let calls = self.send_all(&herald, &app, 0..self.messages).await;
        drained(
            &arrivals,
            self.messages - calls.failures,
            Duration::from_secs(120),
        )
        .await?;
        let spent = |before: Option<Duration>, after: Option<Duration>| {
            before
                .zip(after)
                .map(|(before, after)| after.saturating_sub(before))
        };
        let cpu = (
            spent(cpu_before.0, herald.cpu_time()),
            spent(cpu_before.1, herald.writer_cpu_time()),
            spent(cpu_before.2, own_cpu_time()),
        );
        let elapsed =
            Duration::from_nanos(arrivals.last.load(Ordering::Acquire) - first_start(&calls));
        let per_second = rate(arrivals.distinct(), elapsed);
        let latency = Latency::of(end_to_end(&calls, &arrivals, 0, 0..1));
        let duplicates = arrivals.duplicates.load(Ordering::Relaxed);
        drop(herald);
        sink.stop();
        let mut rows = vec![
            Row::new(
                scenario,
                format!("deliveries/s, {} messages", self.messages),
                format!("{per_second:.0}"),
            )
            .target("≥ 5,000", per_second >= 5_000.0),
            Row::new(
                scenario,
                "call→arrival p50 / p99 / max",
                format!(
                    "{} / {} / {}",
                    millis(latency.p50),
                    millis(latency.p99),
                    millis(latency.max)
                ),
            ),
            Row::new(scenario, "duplicate deliveries", duplicates.to_string()),
        ];
        let per_message = |time: Option<Duration>| {
            time.map_or("—".to_owned(), |time| {
                let micros = time.as_secs_f64() * 1e6 / arrivals.distinct().max(1) as f64;
                format!("{micros:.0} µs")
            })
        };
        rows.push(Row::new(
            scenario,
            "CPU time per message: server / its SQLite writer thread / herald-bench",
            format!(
                "{} / {} / {}",
                per_message(cpu.0),
                per_message(cpu.1),
                per_message(cpu.2)
            ),
        ));
        if let Some(baseline) = self.baseline_rate {
            let share = per_second / baseline * 100.0;
            rows.push(
                Row::new(
                    scenario,
                    "share of the same-run baseline",
                    format!("{share:.0} %"),
                )
                .target("≥ 30 %", share >= 30.0),
            );
        }
        Ok(rows)
    }

    /// 100 messages per second for 20 seconds.
    pub(crate) async fn low_load(&self) -> anyhow::Result<Vec<Row>> {
        let count = 2_000;
        let arrivals = Arrivals::new(self.epoch, count, 1, Duration::ZERO);
        let (herald, sink, app) = self.herald_with_lanes(&arrivals, &[false], &[]).await?;
        let api = herald.api.clone();
        let calls = open_loop(self.epoch, 0..count, 100, move |seq| {
            let (api, app) = (api.clone(), app.clone());
            async move { api.send(&app, seq).await }
        })
        .await;
        drained(&arrivals, count - calls.failures, Duration::from_secs(30)).await?;
        let latency = Latency::of(end_to_end(&calls, &arrivals, 0, 0..1));
        drop(herald);
        sink.stop();
        Ok(vec![Row::new(
            "low load",
            "call→arrival p50 / p99 at 100 msg/s",
            format!("{} / {}", millis(latency.p50), millis(latency.p99)),
        )
        .target(
            "p99 ≤ 10 ms",
            latency.p99 <= Duration::from_millis(10),
        )])
    }

    /// One message to 100 endpoints, repeated.
    pub(crate) async fn fan_out(&self) -> anyhow::Result<Vec<Row>> {
        let (endpoints, messages) = (100, 100);
        let arrivals = Arrivals::new(self.epoch, messages, endpoints, Duration::ZERO);
        let (herald, sink, app) = self
            .herald_with_lanes(&arrivals, &vec![false; endpoints], &[])
            .await?;
        let calls = self.send_all(&herald, &app, 0..messages).await;
        drained(
            &arrivals,
            (messages - calls.failures) * endpoints,
            Duration::from_secs(120),
        )
        .await?;
        let elapsed =
            Duration::from_nanos(arrivals.last.load(Ordering::Acquire) - first_start(&calls));
        let per_second = rate(arrivals.distinct(), elapsed);
        drop(herald);
        sink.stop();
        Ok(vec![Row::new(
            "fan-out",
            format!("deliveries/s, {messages} messages × {endpoints} endpoints"),
            format!("{per_second:.0}"),
        )
        .target("≥ 10,000", per_second >= 10_000.0)])
    }

    async fn fast_lane_p99(&self, lanes: &[bool]) -> anyhow::Result<Duration> {
        let count = 2_000;
        let arrivals = Arrivals::new(self.epoch, count, lanes.len(), Duration::from_secs(2));
        let (herald, sink, app) = self
            .herald_with_lanes(&arrivals, lanes, &["--request-timeout".into(), "5s".into()])
            .await?;
        let api = herald.api.clone();
        let calls = open_loop(self.epoch, 0..count, 200, move |seq| {
            let (api, app) = (api.clone(), app.clone());
            async move { api.send(&app, seq).await }
        })
        .await;
        let fast: Vec<usize> = (0..lanes.len()).filter(|lane| !lanes[*lane]).collect();
        let expected = (count - calls.failures) * fast.len();
        let started = Instant::now();
        loop {
            let arrived: usize = (0..count)
                .map(|seq| {
                    fast.iter()
                        .filter(|lane| arrivals.arrival(seq, **lane).is_some())
                        .count()
                })
                .sum();
            if arrived >= expected {
                break;
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("fast endpoints got {arrived} of {expected}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut samples = Vec::new();
        for lane in fast {
            samples.extend(end_to_end(&calls, &arrivals, 0, lane..lane + 1));
        }
        drop(herald);
        sink.stop();
        Ok(Latency::of(samples).p99)
    }

    /// 9 fast endpoints beside one that answers after 2 s.
    pub(crate) async fn isolation(&self) -> anyhow::Result<Vec<Row>> {
        let all_fast = self.fast_lane_p99(&[false; 10]).await?;
        let mut lanes = [false; 10];
        lanes[9] = true;
        let with_slow = self.fast_lane_p99(&lanes).await?;
        let ratio = with_slow.as_secs_f64() / all_fast.as_secs_f64().max(1e-9);
        Ok(vec![
            Row::new(
                "isolation",
                "fast endpoints p99, all 10 fast (200 msg/s)",
                millis(all_fast),
            ),
            Row::new(
                "isolation",
                "fast endpoints p99, beside one 2 s endpoint",
                millis(with_slow),
            )
            .target("≤ 2× all-fast", ratio <= 2.0),
        ])
    }

    /// `count` messages accepted while the sink is down, then drained.
    ///
    /// With no retries configured, each delivery fails once (connection
    /// refused) while the sink is down; once it is up, one `recover` call
    /// re-queues them all, so the drain measures the engine, not the retry
    /// schedule.
    pub(crate) async fn backlog(&self, count: usize) -> anyhow::Result<Vec<Row>> {
        let arrivals = Arrivals::new(self.epoch, count, 1, Duration::ZERO);
        // Reserve an address, leave it closed until the backlog is in.
        let address: SocketAddr = {
            let probe = std::net::TcpListener::bind(ANY_PORT)?;
            probe.local_addr()?
        };
        // No circuit breaker: it would put the backlog off (pending, for a
        // cool-down) instead of failing it, and the drain would measure the
        // cool-down rather than the engine.
        let herald = Herald::start(
            &self.herald,
            &[
                "--retry-schedule".into(),
                String::new(),
                "--circuit-breaker-failures".into(),
                u32::MAX.to_string(),
            ],
        )
        .await?;
        let app = herald.api.create_app("backlog").await?;
        let endpoint = herald
            .api
            .create_endpoint(&app, &format!("http://{address}/lane/0"))
            .await?;
        let calls = self.send_all(&herald, &app, 0..count).await;
        let accept_rate = rate(count - calls.failures, calls.elapsed);
        // Every delivery tried and failed before the sink comes up: one
        // still in flight then would fail after the recovery began and be
        // left out of it.
        let deadline = Instant::now() + Duration::from_secs(1800);
        while herald.api.unsettled(&app, &endpoint).await? > 0 {
            if Instant::now() > deadline {
                bail!("the backlog's first attempts did not finish in time");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let size = herald.database_size();
        let sink = Sink::start(address, arrivals.clone())
            .await
            .context("sink comes up")?;
        let up = Instant::now();
        herald.api.recover(&app, &endpoint).await?;
        drained(&arrivals, count - calls.failures, Duration::from_secs(1800)).await?;
        let drain_rate = rate(count - calls.failures, up.elapsed());
        let rss = herald.peak_rss().unwrap_or(0);
        drop(herald);
        sink.stop();
        Ok(vec![
            Row::new(
                "backlog",
                format!("{count} messages accepted while the sink is down"),
                format!("{accept_rate:.0}/s"),
            ),
            Row::new(
                "backlog",
                "database size after ingest",
                format!("{:.0} MiB", size as f64 / 1048576.0),
            ),
            Row::new(
                "backlog",
                "peak server RSS",
                format!("{:.0} MiB", rss as f64 / 1048576.0),
            )
            .target("≤ 256 MiB", rss <= 256 * 1024 * 1024),
            Row::new(
                "backlog",
                "drain rate once the sink is up",
                format!("{drain_rate:.0}/s"),
            ),
        ])
    }
}
