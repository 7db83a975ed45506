//! The `postgres` scenario: the end-to-end run on PostgreSQL, with one node
//! and with three nodes sharing the database, messages spread over the
//! nodes and four endpoints so the per-endpoint cap is not the limit.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use tokio_postgres::NoTls;

use crate::herald::Herald;
use crate::load::closed_loop;
use crate::scenarios::{drained, end_to_end, first_start, sink, Bench, Row};
use crate::sink::Arrivals;
use crate::stats::{millis, rate, Latency};

/// Endpoints the messages fan out to.
const LANES: usize = 4;

/// A schema made for one run and dropped after it.
struct Schema {
    client: tokio_postgres::Client,
    name: String,
    url: String,
}

impl Schema {
    async fn create(server: &str) -> anyhow::Result<Schema> {
        let (client, connection) = tokio_postgres::connect(server, NoTls)
            .await
            .with_context(|| format!("cannot connect to {server}"))?;
        tokio::spawn(connection);
        let name = format!("herald_bench_{}", std::process::id());
        // Our own name (digits and letters): safe to write into the SQL.
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {name} CASCADE; CREATE SCHEMA {name}"
            ))
            .await?;
        let separator = if server.contains('?') { '&' } else { '?' };
        let url = format!("{server}{separator}options=-csearch_path%3D{name}");
        Ok(Schema { client, name, url })
    }

    async fn drop_now(self) -> anyhow::Result<()> {
        self.client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.name))
            .await?;
        Ok(())
    }
}

impl Bench {
    /// Deliveries per second and latency on PostgreSQL, 1 node and 3 nodes.
    pub(crate) async fn postgres(&self, server: &str) -> anyhow::Result<Vec<Row>> {
        let mut rows = Vec::new();
        for nodes in [1, 3] {
            rows.extend(self.postgres_nodes(server, nodes).await?);
        }
        Ok(rows)
    }

    async fn postgres_nodes(&self, server: &str, nodes: usize) -> anyhow::Result<Vec<Row>> {
        let schema = Schema::create(server).await?;
        let mut heralds = Vec::new();
        for _ in 0..nodes {
            heralds.push(Herald::start_on(&self.herald, Some(&schema.url), &[]).await?);
        }
        let arrivals = Arrivals::new(self.epoch, self.messages, LANES, Duration::ZERO);
        let sink = sink(&arrivals).await?;
        let app = heralds[0].api.create_app("bench").await?;
        for lane in 0..LANES {
            heralds[0]
                .api
                .create_endpoint(&app, &sink.url(lane, false))
                .await?;
        }
        let apis: Vec<_> = heralds.iter().map(|herald| herald.api.clone()).collect();
        let sending = app.clone();
        let calls = closed_loop(self.epoch, 0..self.messages, self.concurrency, move |seq| {
            let (api, app) = (apis[seq % apis.len()].clone(), sending.clone());
            async move { api.send(&app, seq).await }
        })
        .await;
        let accepted = self.messages - calls.failures;
        let ingest = rate(accepted, calls.elapsed);
        drained(&arrivals, accepted * LANES, Duration::from_secs(300)).await?;
        let elapsed =
            Duration::from_nanos(arrivals.last.load(Ordering::Acquire) - first_start(&calls));
        let per_second = rate(arrivals.distinct(), elapsed);
        let latency = Latency::of(end_to_end(&calls, &arrivals, 0, 0..LANES));
        let duplicates = arrivals.duplicates.load(Ordering::Relaxed);
        drop(heralds);
        sink.stop();
        schema.drop_now().await?;
        let scenario = if nodes == 1 {
            "postgres, 1 node"
        } else {
            "postgres, 3 nodes"
        };
        Ok(vec![
            Row::new(
                scenario,
                format!(
                    "messages accepted/s (c={}, {LANES} endpoints)",
                    self.concurrency
                ),
                format!("{ingest:.0}"),
            ),
            Row::new(
                scenario,
                format!("deliveries/s, {} messages × {LANES}", self.messages),
                format!("{per_second:.0}"),
            ),
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
            Row::new(scenario, "failed calls", calls.failures.to_string()),
        ])
    }
}
