//! The `herald` binary: parses the command line, layers configuration,
//! chooses the storage backend and wires the library crates together.

mod config;
mod listen;
mod tokens;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use herald_core::{Clock, SystemClock};
use herald_delivery::DeliveryConfig;
use herald_server::auth::ensure_admin_token;
use herald_server::ServerConfig;
use herald_store::Store;
use herald_store_postgres::PostgresStore;
use herald_store_sqlite::SqliteStore;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Database, Layer, LogFormat};

/// Serving a request allocates and frees many small buffers across threads
/// (JSON, headers, rows); mimalloc's per-thread free lists handle that with
/// less contention than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Webhook infrastructure in one binary.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the API and the delivery engine.
    Serve {
        /// A TOML configuration file (see config.default.toml).
        #[arg(long, env = "HERALD_CONFIG")]
        config: Option<PathBuf>,
        /// An API token to accept besides the stored ones.
        #[arg(long, env = "HERALD_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        #[command(flatten)]
        settings: Box<Layer>,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: tokens::TokenCommand,
    },
    /// Check a received webhook's signature: the raw body from a file or
    /// standard input, its headers with -H. Exits 0 when it verifies, 1
    /// when it does not, 2 when the input cannot be used.
    Verify(verify::VerifyArgs),
    /// Forward what reaches a relay URL on a Herald server to a server on
    /// this machine (with --app, an application's deliveries), and its
    /// answers back.
    Listen(listen::ListenArgs),
}

fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")
    };
    match cli.command {
        Command::Serve {
            config,
            admin_token,
            settings,
        } => {
            let config = Config::load(*settings, config.as_deref())?;
            init_tracing(config.log_format);
            runtime()?.block_on(serve(config, admin_token))?;
        }
        Command::Token { command } => tokens::run(command, &runtime()?)?,
        Command::Verify(args) => return Ok(verify::run(args)),
        Command::Listen(args) => listen::run(args, &runtime()?)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Opens the configured backend, failing with the reason (a PostgreSQL
/// that cannot be reached or used is reported within seconds).
async fn open_store(config: &Config) -> anyhow::Result<Arc<dyn Store>> {
    match &config.database {
        Database::Sqlite(path) => {
            let store = SqliteStore::open(path)
                .with_context(|| format!("cannot open the database at {}", path.display()))?;
            Ok(Arc::new(store))
        }
        Database::Postgres(url) => {
            let store = PostgresStore::connect_with(url, config.database_pool_size)
                .await
                .context("cannot start on PostgreSQL")?;
            Ok(Arc::new(store))
        }
    }
}

async fn serve(config: Config, admin_token: Option<String>) -> anyhow::Result<()> {
    let store = open_store(&config).await?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if let Some(token) = ensure_admin_token(&*store, admin_token.as_deref(), clock.now()).await? {
        // Printed once, on first start; only its hash is stored.
        println!("Created an admin API token (it will not be shown again):\n\n    {token}\n");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr().context("listener has no address")?;
    println!("herald listening on http://{address}");
    tracing::info!(%address, database = %config.database, "herald started");

    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    let server = ServerConfig {
        max_payload_bytes: config.max_payload_bytes,
        rotation_grace: config.rotation_grace,
        admin_token,
        public_url: config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}")),
        app_rate_limit: config.app_rate_limit,
    };
    let delivery = DeliveryConfig {
        workers: config.workers,
        per_endpoint_concurrency: config.per_endpoint_concurrency,
        retry_schedule: config.retry_schedule,
        request_timeout: config.request_timeout,
        ssrf_allowlist: config.ssrf_allowlist,
        extra_roots: config.extra_roots,
        response_body_cap: config.response_body_cap,
        retry_after_cap: config.retry_after_cap,
        health: config.health,
        retention: config.retention,
        // Nodes sharing PostgreSQL never take each other's live leases.
        exclusive_store: matches!(config.database, Database::Sqlite(_)),
        ..DeliveryConfig::default()
    };
    herald_server::serve(
        store,
        clock,
        server,
        delivery,
        listener,
        shutdown,
        config.shutdown_grace,
    )
    .await?;
    tracing::info!("herald stopped");
    Ok(())
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn stop_on_signal(shutdown: CancellationToken) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGTERM");
                    let _ = interrupt.await;
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down");
    shutdown.cancel();
}
