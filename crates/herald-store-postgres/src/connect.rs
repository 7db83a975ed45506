//! Connecting to PostgreSQL, with failures a person can act on: the server
//! cannot be reached, it refused the credentials, the database does not
//! exist. A node meant to share a database must not limp along without it,
//! so connecting gives up after a few seconds instead of retrying.

use std::time::Duration;

use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

/// How long a node waits for PostgreSQL to answer at start (and each pooled
/// connection later) unless the URL says otherwise (`connect_timeout`).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a node could not start on its PostgreSQL database.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL does not parse.
    #[error("invalid PostgreSQL URL: {0}")]
    InvalidUrl(String),
    /// Nothing answered at the address (refused, timed out, unknown host).
    #[error("cannot reach PostgreSQL at {target}: {detail}")]
    Unreachable { target: String, detail: String },
    /// The server refused the user or its password.
    #[error("PostgreSQL at {target} refused user {user:?}: {detail}")]
    Authentication {
        target: String,
        user: String,
        detail: String,
    },
    /// The server is there but the database is not.
    #[error("database {database:?} does not exist on PostgreSQL at {target}")]
    MissingDatabase { target: String, database: String },
    /// The schema named by the URL's `search_path` does not exist.
    #[error("schema {schema:?} does not exist in database {database:?} at {target}; create it or fix search_path")]
    MissingSchema {
        target: String,
        database: String,
        schema: String,
    },
    /// Anything else the server said while connecting or migrating.
    #[error("PostgreSQL at {target}: {detail}")]
    Server { target: String, detail: String },
}

/// Where a URL points, for messages: host, port and database, never the
/// password.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) address: String,
    pub(crate) user: String,
    pub(crate) database: String,
}

impl Target {
    pub(crate) fn of(config: &Config) -> Target {
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let host = match config.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            #[cfg(unix)]
            Some(Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_owned(),
        };
        let user = config.get_user().unwrap_or("(none)").to_owned();
        Target {
            address: format!("{host}:{port}"),
            database: config.get_dbname().unwrap_or(&user).to_owned(),
            user,
        }
    }

    /// Sorts a failure to connect into what the operator has to fix.
    pub(crate) fn classify(&self, error: &tokio_postgres::Error) -> ConnectError {
        let target = self.address.clone();
        let Some(db) = error.as_db_error() else {
            return ConnectError::Unreachable {
                target,
                detail: crate::error::describe(error),
            };
        };
        let detail = db.message().to_owned();
        match *db.code() {
            SqlState::INVALID_PASSWORD | SqlState::INVALID_AUTHORIZATION_SPECIFICATION => {
                ConnectError::Authentication {
                    target,
                    user: self.user.clone(),
                    detail,
                }
            }
            SqlState::INVALID_CATALOG_NAME => ConnectError::MissingDatabase {
                target,
                database: self.database.clone(),
            },
            _ => ConnectError::Server { target, detail },
        }
    }

    pub(crate) fn server_error(&self, detail: impl std::fmt::Display) -> ConnectError {
        ConnectError::Server {
            target: self.address.clone(),
            detail: detail.to_string(),
        }
    }
}

/// Parses `url`, bounding the connect time unless the URL sets its own.
pub(crate) fn parse(url: &str) -> Result<Config, ConnectError> {
    let mut config: Config = url
        .parse()
        .map_err(|error: tokio_postgres::Error| ConnectError::InvalidUrl(error.to_string()))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("herald");
    }
    Ok(config)
}

/// One connection outside the pool (for migrations and the listener); its
/// driver runs on a task that ends when the connection does.
pub(crate) async fn open(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %crate::error::describe(&error), "postgres connection ended");
        }
    });
    Ok(client)
}
