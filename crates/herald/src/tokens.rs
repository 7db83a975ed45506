//! `herald token …`: API tokens managed from the command line, beside
//! running servers — straight in the SQLite file or the shared PostgreSQL.

use std::path::PathBuf;

use anyhow::{bail, Context};
use herald_core::{Clock, SystemClock};
use herald_server::auth::{hash_token, new_api_token};
use herald_store::{ApiToken, Store};
use herald_store_postgres::PostgresStore;
use herald_store_sqlite::TokenFile;

use crate::config::{Config, Database, Layer};

/// How many hex digits of a token's hash make the id `token list` shows:
/// enough to tell thousands of tokens apart, short enough to type.
const ID_DIGITS: usize = 12;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a new API token and print it (it is shown only this once).
    Create {
        #[command(flatten)]
        database: DatabaseArgs,
        /// What the token is for, shown by `token list`.
        #[arg(long)]
        name: Option<String>,
    },
    /// List the stored tokens: id, name, last characters, creation time.
    List {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke a token, given the token itself or its id from `token list`;
    /// running servers refuse it within seconds.
    Revoke {
        #[command(flatten)]
        database: DatabaseArgs,
        /// The token (`hrld_…`) or its id.
        token: String,
    },
}

/// Where the tokens are: the same settings `serve` reads the database from.
#[derive(Debug, clap::Args)]
pub(crate) struct DatabaseArgs {
    /// A TOML configuration file (for the database location).
    #[arg(long, env = "HERALD_CONFIG")]
    config: Option<PathBuf>,
    /// SQLite file path or postgres:// URL [default: ./herald.db].
    #[arg(long, env = "HERALD_DATABASE")]
    database: Option<String>,
    /// A postgres:// URL; the same as giving it as --database.
    #[arg(long, env = "HERALD_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl DatabaseArgs {
    fn database(self) -> anyhow::Result<Database> {
        let flags = Layer {
            database: self.database,
            database_url: self.database_url,
            ..Layer::default()
        };
        Ok(Config::load(flags, self.config.as_deref())?.database)
    }
}

pub(crate) fn run(command: TokenCommand, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create { database, name } => {
            let tokens = runtime.block_on(Tokens::open(database.database()?, true))?;
            let (token, record) = new_api_token(name, SystemClock.now());
            runtime.block_on(tokens.add(&record))?;
            println!("{token}");
        }
        TokenCommand::List { database } => {
            let tokens = runtime.block_on(Tokens::open(database.database()?, false))?;
            let listed = runtime.block_on(tokens.list())?;
            println!(
                "{:<ID_DIGITS$}  {:<20}  {:<10}  CREATED",
                "ID", "NAME", "TOKEN"
            );
            for token in listed {
                println!(
                    "{:<ID_DIGITS$}  {:<20}  {:<10}  {}",
                    id(&token),
                    token.name.as_deref().unwrap_or("-"),
                    token
                        .hint
                        .as_ref()
                        .map_or_else(|| "-".to_owned(), |hint| format!("hrld_…{hint}")),
                    token.created_at.to_rfc3339(),
                );
            }
        }
        TokenCommand::Revoke { database, token } => {
            let tokens = runtime.block_on(Tokens::open(database.database()?, false))?;
            let hash = runtime.block_on(resolve(&tokens, &token))?;
            if !runtime.block_on(tokens.remove(&hash))? {
                bail!("no stored token matches; it may be revoked already");
            }
            println!("revoked {}", hash.get(..ID_DIGITS).unwrap_or(&hash));
            if runtime.block_on(tokens.list())?.is_empty() {
                eprintln!(
                    "that was the last stored token: a server started without \
                     HERALD_ADMIN_TOKEN will create a new one and print it"
                );
            }
        }
    }
    Ok(())
}

fn id(token: &ApiToken) -> &str {
    token.hash.get(..ID_DIGITS).unwrap_or(&token.hash)
}

/// The hash of the token `given` names: the token itself, or an id (any
/// unambiguous start of its hash).
async fn resolve(tokens: &Tokens, given: &str) -> anyhow::Result<String> {
    if given.starts_with("hrld_") {
        return Ok(hash_token(given));
    }
    let prefix = given.to_ascii_lowercase();
    if prefix.len() < 6 || !prefix.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        bail!("'{given}' is neither a token (hrld_…) nor a token id from `herald token list`");
    }
    let matching: Vec<ApiToken> = tokens
        .list()
        .await?
        .into_iter()
        .filter(|token| token.hash.starts_with(&prefix))
        .collect();
    match matching.as_slice() {
        [token] => Ok(token.hash.clone()),
        [] => bail!("no token has the id {given}"),
        _ => bail!("{given} is the start of several tokens' ids; give more of it"),
    }
}

/// The token table of the configured database.
enum Tokens {
    Sqlite(TokenFile, PathBuf),
    Postgres(PostgresStore),
}

impl Tokens {
    /// Opens the token table; `create` lets a missing SQLite file be made
    /// (creating a token), otherwise a mistyped path is an error, not an
    /// empty new database.
    async fn open(database: Database, create: bool) -> anyhow::Result<Self> {
        Ok(match database {
            Database::Sqlite(path) => {
                if !create && !path.exists() {
                    bail!("there is no database at {}", path.display());
                }
                let file = TokenFile::open(&path)
                    .with_context(|| format!("cannot open the database at {}", path.display()))?;
                Self::Sqlite(file, path)
            }
            Database::Postgres(url) => Self::Postgres(
                PostgresStore::connect(&url)
                    .await
                    .context("cannot start on PostgreSQL")?,
            ),
        })
    }

    async fn add(&self, token: &ApiToken) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(file, path) => file
                .add(token)
                .with_context(|| format!("cannot store the token in {}", path.display())),
            Self::Postgres(store) => store
                .add_api_token(token)
                .await
                .context("cannot store the token in PostgreSQL"),
        }
    }

    async fn list(&self) -> anyhow::Result<Vec<ApiToken>> {
        match self {
            Self::Sqlite(file, path) => file
                .list()
                .with_context(|| format!("cannot read the tokens in {}", path.display())),
            Self::Postgres(store) => store
                .list_api_tokens()
                .await
                .context("cannot read the tokens in PostgreSQL"),
        }
    }

    async fn remove(&self, hash: &str) -> anyhow::Result<bool> {
        match self {
            Self::Sqlite(file, path) => file
                .remove(hash)
                .with_context(|| format!("cannot revoke the token in {}", path.display())),
            Self::Postgres(store) => store
                .remove_api_token(hash)
                .await
                .context("cannot revoke the token in PostgreSQL"),
        }
    }
}
