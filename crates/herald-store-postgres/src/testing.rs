//! A fresh, empty schema per test on the PostgreSQL the tests use.
//!
//! The server is `postgres://postgres@127.0.0.1:5432/test` unless
//! `HERALD_TEST_POSTGRES_URL` names another. When it cannot be reached a
//! test skips with the reason printed, except in CI (`CI=true`), where a
//! missing PostgreSQL fails the test: CI must prove both backends.
//!
//! Schemas are dropped when their [`TestSchema`] is; any left behind by a
//! killed run are dropped by a later run once they are an hour old.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::NoTls;

/// The PostgreSQL the tests use when `HERALD_TEST_POSTGRES_URL` is unset.
pub const DEFAULT_TEST_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The variable naming another PostgreSQL for the tests.
pub const URL_VARIABLE: &str = "HERALD_TEST_POSTGRES_URL";

const PREFIX: &str = "herald_test_";

/// Schemas older than this are taken for leftovers of a killed run.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// The server URL the tests use.
pub fn server_url() -> String {
    std::env::var(URL_VARIABLE).unwrap_or_else(|_| DEFAULT_TEST_URL.to_owned())
}

/// One schema made for one test; dropped with it.
#[derive(Debug)]
pub struct TestSchema {
    /// The server URL with this schema as its `search_path`: what a store,
    /// or `herald serve --database`, connects to.
    pub url: String,
    /// The schema's name.
    pub name: String,
    server: String,
}

impl TestSchema {
    /// Makes a new empty schema, or answers `None` (having printed why) when
    /// no PostgreSQL can be reached outside CI. In CI it panics instead.
    pub async fn create() -> Option<TestSchema> {
        let server = server_url();
        match Self::try_create(&server).await {
            Ok(schema) => Some(schema),
            Err(error) => {
                let reason = format!("PostgreSQL at {server} is not usable: {error}");
                if std::env::var("CI").is_ok_and(|value| value == "true") {
                    panic!("{reason} (CI=true: the PostgreSQL tests must run)");
                }
                eprintln!(
                    "skipping a PostgreSQL test: {reason} (set {URL_VARIABLE} to use another)"
                );
                None
            }
        }
    }

    async fn try_create(server: &str) -> Result<TestSchema, String> {
        let config: tokio_postgres::Config = server.parse().map_err(|error| format!("{error}"))?;
        let (client, connection) =
            tokio::time::timeout(Duration::from_secs(5), config.connect(NoTls))
                .await
                .map_err(|_| "no answer within 5s".to_owned())?
                .map_err(|error| crate::error::describe(&error))?;
        tokio::spawn(connection);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        drop_stale(&client, now).await;
        let name = format!(
            "{PREFIX}{}_{}",
            now.as_millis(),
            ulid::Ulid::new().to_string().to_lowercase()
        );
        // An identifier cannot be a parameter; the name is made here of
        // digits, lowercase letters and underscores only.
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .map_err(|error| crate::error::describe(&error))?;
        let separator = if server.contains('?') { '&' } else { '?' };
        Ok(TestSchema {
            url: format!("{server}{separator}options=-csearch_path%3D{name}"),
            name,
            server: server.to_owned(),
        })
    }
}

/// Drops the schemas of runs that ended without dropping theirs.
async fn drop_stale(client: &tokio_postgres::Client, now: Duration) {
    let Ok(rows) = client
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE starts_with(nspname::text, $1)",
            &[&PREFIX],
        )
        .await
    else {
        return;
    };
    let cutoff = now.saturating_sub(STALE_AFTER).as_millis();
    for row in rows {
        let Ok(name) = row.try_get::<_, String>(0) else {
            continue;
        };
        let made_at = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|millis| millis.parse::<u128>().ok());
        if made_at.is_some_and(|made_at| made_at < cutoff) && is_plain(&name) {
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .await;
        }
    }
}

/// Whether `name` is safe to write into SQL unquoted (only what
/// [`TestSchema::create`] puts in names).
fn is_plain(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        if !is_plain(&name) {
            return;
        }
        // On a thread of its own: this may run inside the test's runtime,
        // which cannot block on a future. That runtime may also drive a
        // store still in the middle of a transaction on the schema, stuck
        // while this waits: the lock timeout bounds the wait, and a schema
        // left behind is dropped by a later run.
        let dropping = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(config) = server.parse::<tokio_postgres::Config>() else {
                    return;
                };
                let Ok((client, connection)) = config.connect(NoTls).await else {
                    return;
                };
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!(
                        "SET lock_timeout = '2s'; DROP SCHEMA IF EXISTS {name} CASCADE"
                    ))
                    .await;
            });
        });
        let _ = dropping.join();
    }
}
