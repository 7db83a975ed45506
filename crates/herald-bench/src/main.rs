//! `herald-bench`: measures a real Herald through its public API and prints
//! a Markdown table. See BENCHMARKS.md for what each figure means.

mod herald;
mod load;
mod postgres;
mod relay;
mod scenarios;
mod sink;
mod stats;

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;

use crate::scenarios::{Bench, Row};

/// Benchmark scenarios against a herald binary.
#[derive(Debug, Parser)]
#[command(name = "herald-bench")]
struct Args {
    /// The herald binary to start [default: the one next to this binary].
    #[arg(long)]
    herald: Option<PathBuf>,
    /// Messages in the ingest and end-to-end scenarios.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Concurrent API callers.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Scenarios to run (comma-separated): baseline, ingest, e2e, low-load,
    /// fan-out, isolation, backlog, postgres, ceiling (end-to-end through a
    /// relay that stores nothing).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "baseline,ingest,e2e,ceiling,low-load,fan-out,isolation"
    )]
    only: Vec<String>,
    /// Messages in the backlog scenario (run it with `--only backlog`).
    #[arg(long, default_value_t = 1_000_000)]
    backlog: usize,
    /// The PostgreSQL server of the `postgres` scenario (run it with
    /// `--only postgres`); each run uses a fresh schema, dropped after.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some(relay::SUBCOMMAND) {
        return relay::serve().await;
    }
    let args = Args::parse();
    let herald = match args.herald {
        Some(path) => path,
        None => herald::sibling_binary()?,
    };
    let mut bench = Bench {
        herald,
        messages: args.messages,
        concurrency: args.concurrency,
        epoch: Instant::now(),
        baseline_rate: None,
    };
    let mut rows: Vec<Row> = Vec::new();
    for scenario in &args.only {
        eprintln!("running {scenario} …");
        let result = match scenario.as_str() {
            "baseline" => bench.baseline().await,
            "ingest" => bench.ingest().await,
            "e2e" => bench.end_to_end().await,
            "low-load" => bench.low_load().await,
            "fan-out" => bench.fan_out().await,
            "isolation" => bench.isolation().await,
            "backlog" => bench.backlog(args.backlog).await,
            "postgres" => bench.postgres(&args.postgres).await,
            "ceiling" => bench.ceiling().await,
            other => anyhow::bail!("unknown scenario '{other}'"),
        };
        rows.extend(result?);
    }
    println!("| scenario | metric | result | target | met |");
    println!("|---|---|---|---|---|");
    for row in rows {
        let met = match row.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        println!(
            "| {} | {} | {} | {} | {met} |",
            row.scenario, row.metric, row.value, row.target
        );
    }
    Ok(())
}
