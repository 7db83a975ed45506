//! A node that cannot use its database says why, within seconds.

use std::time::{Duration, Instant};

use herald_store_postgres::testing::{server_url, TestSchema};
use herald_store_postgres::{ConnectError, PostgresStore};

/// Connects to `url`, which must fail, within a few seconds.
async fn refused(url: &str) -> ConnectError {
    let started = Instant::now();
    let error = match PostgresStore::connect(url).await {
        Ok(_) => panic!("connecting to {url} must fail"),
        Err(error) => error,
    };
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "gave up only after {:?}",
        started.elapsed()
    );
    error
}

/// The test server's URL with `database` as its database.
fn with_database(database: &str) -> String {
    let server = server_url();
    let (base, query) = server.split_once('?').unwrap_or((&server, ""));
    let base = base.rsplit_once('/').map_or(base, |(host, _)| host);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{base}/{database}{query}")
}

#[tokio::test]
async fn an_unreachable_server_is_named() {
    // Port 1 on loopback: nothing listens there.
    let error = refused("postgres://postgres@127.0.0.1:1/test").await;
    assert!(
        matches!(error, ConnectError::Unreachable { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
}

#[tokio::test]
async fn a_missing_database_is_named() {
    if TestSchema::create().await.is_none() {
        return;
    }
    let error = refused(&with_database("herald_no_such_database")).await;
    assert!(
        matches!(error, ConnectError::MissingDatabase { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("herald_no_such_database"),
        "{error}"
    );
}

#[tokio::test]
async fn an_unknown_user_is_an_authentication_failure() {
    if TestSchema::create().await.is_none() {
        return;
    }
    let server = server_url();
    let url = server.replacen("://", "://herald_no_such_user@", 1);
    // Keep only the user added above when the URL named one already.
    let url = match url.split_once('@') {
        Some((head, rest)) if rest.contains('@') => {
            format!(
                "{head}@{}",
                rest.split_once('@').map_or(rest, |(_, host)| host)
            )
        }
        _ => url,
    };
    let error = refused(&url).await;
    assert!(
        matches!(error, ConnectError::Authentication { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("herald_no_such_user"), "{error}");
}

#[tokio::test]
async fn a_missing_schema_is_named() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let url = schema.url.replace(&schema.name, "herald_no_such_schema");
    let error = refused(&url).await;
    assert!(
        matches!(error, ConnectError::MissingSchema { .. }),
        "{error:?}"
    );
}
