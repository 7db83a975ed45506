//! Configuration: built-in defaults < TOML file < `HERALD_*` environment <
//! command-line flags, validated once at load.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use herald_core::retry_schedule::parse_duration;
use herald_core::RetrySchedule;
use herald_delivery::HealthConfig;
use ipnet::IpNet;
use serde::Deserialize;

/// The defaults, documented, shipped inside the binary.
pub(crate) const DEFAULTS: &str = include_str!("../config.default.toml");

/// One layer of settings; unset fields fall through to the layer below.
#[derive(Debug, Default, Clone, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub(crate) struct Layer {
    /// Address to listen on [default: 127.0.0.1:8071].
    #[arg(long, env = "HERALD_LISTEN")]
    pub(crate) listen: Option<String>,
    /// SQLite file path, or a postgres:// URL to share one PostgreSQL
    /// database between nodes [default: ./herald.db].
    #[arg(long, env = "HERALD_DATABASE")]
    pub(crate) database: Option<String>,
    /// A postgres:// URL; the same as giving it as --database.
    #[arg(long, env = "HERALD_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
    /// Most PostgreSQL connections a node keeps, the one it listens on
    /// aside; at least 6 [default: 16].
    #[arg(long, env = "HERALD_DATABASE_POOL_SIZE")]
    pub(crate) database_pool_size: Option<usize>,
    /// Attempts in flight at once [default: 128].
    #[arg(long, env = "HERALD_WORKERS")]
    pub(crate) workers: Option<usize>,
    /// Attempts in flight at once per endpoint [default: 16].
    #[arg(long, env = "HERALD_PER_ENDPOINT_CONCURRENCY")]
    pub(crate) per_endpoint_concurrency: Option<usize>,
    /// Retry delays, e.g. "5s, 5m, 30m" [default: Svix's schedule].
    #[arg(long, env = "HERALD_RETRY_SCHEDULE")]
    pub(crate) retry_schedule: Option<String>,
    /// Relative jitter of retry delays, 0 to 1 [default: 0.2].
    #[arg(long, env = "HERALD_RETRY_JITTER")]
    pub(crate) retry_jitter: Option<f64>,
    /// Time an endpoint has to answer [default: 15s].
    #[arg(long, env = "HERALD_REQUEST_TIMEOUT")]
    pub(crate) request_timeout: Option<String>,
    /// CIDR ranges deliveries may reach although private (repeatable or comma-separated).
    #[arg(
        long = "ssrf-allow",
        env = "HERALD_SSRF_ALLOWLIST",
        value_delimiter = ','
    )]
    pub(crate) ssrf_allowlist: Option<Vec<String>>,
    /// PEM files of authorities endpoints' certificates may come from,
    /// besides the public ones (repeatable or comma-separated).
    #[arg(long = "extra-ca", env = "HERALD_EXTRA_CA", value_delimiter = ',')]
    pub(crate) extra_ca: Option<Vec<String>>,
    /// Largest message payload in bytes [default: 1048576].
    #[arg(long, env = "HERALD_MAX_PAYLOAD_BYTES")]
    pub(crate) max_payload_bytes: Option<usize>,
    /// How long a rotated-out secret keeps signing [default: 24h].
    #[arg(long, env = "HERALD_ROTATION_GRACE")]
    pub(crate) rotation_grace: Option<String>,
    /// How long in-flight attempts may take on shutdown [default: 10s].
    #[arg(long, env = "HERALD_SHUTDOWN_GRACE")]
    pub(crate) shutdown_grace: Option<String>,
    /// "text" or "json" [default: text].
    #[arg(long, env = "HERALD_LOG_FORMAT")]
    pub(crate) log_format: Option<String>,
    /// Base URL providers reach Herald at, for sources' ingestUrl
    /// [default: http://{listen}].
    #[arg(long, env = "HERALD_PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
    /// Response bytes kept in the attempt log [default: 4096].
    #[arg(long, env = "HERALD_RESPONSE_BODY_CAP")]
    pub(crate) response_body_cap: Option<usize>,
    /// Longest Retry-After obeyed on a 429/503 [default: 1h].
    #[arg(long, env = "HERALD_RETRY_AFTER_CAP")]
    pub(crate) retry_after_cap: Option<String>,
    /// Disable an endpoint failing without a success this long [default: 5d].
    #[arg(long, env = "HERALD_DISABLE_FAILING_ENDPOINTS_AFTER")]
    pub(crate) disable_failing_endpoints_after: Option<String>,
    /// Consecutive failures that open an endpoint's circuit [default: 20].
    #[arg(long, env = "HERALD_CIRCUIT_BREAKER_FAILURES")]
    pub(crate) circuit_breaker_failures: Option<u32>,
    /// First cool-down of an open circuit, doubling per failed probe [default: 30s].
    #[arg(long, env = "HERALD_CIRCUIT_BREAKER_COOLDOWN")]
    pub(crate) circuit_breaker_cooldown: Option<String>,
    /// Longest cool-down of an open circuit [default: 10m].
    #[arg(long, env = "HERALD_CIRCUIT_BREAKER_MAX_COOLDOWN")]
    pub(crate) circuit_breaker_max_cooldown: Option<String>,
    /// Purge attempts and finished messages older than this; "off" keeps all [default: 90d].
    #[arg(long, env = "HERALD_RETENTION")]
    pub(crate) retention: Option<String>,
    /// Messages per second an app may create when it sets no rateLimit; 0 is unlimited [default: 0].
    #[arg(long, env = "HERALD_APP_RATE_LIMIT")]
    pub(crate) app_rate_limit: Option<u32>,
}

impl Layer {
    /// Fields set in `self` win over those of `below`.
    fn over(self, below: Layer) -> Layer {
        // One setting spelled two ways: a layer naming either replaces both
        // below it.
        let (database, database_url) = if self.database.is_some() || self.database_url.is_some() {
            (self.database, self.database_url)
        } else {
            (below.database, below.database_url)
        };
        Layer {
            database,
            database_url,
            listen: self.listen.or(below.listen),
            database_pool_size: self.database_pool_size.or(below.database_pool_size),
            workers: self.workers.or(below.workers),
            per_endpoint_concurrency: self
                .per_endpoint_concurrency
                .or(below.per_endpoint_concurrency),
            retry_schedule: self.retry_schedule.or(below.retry_schedule),
            retry_jitter: self.retry_jitter.or(below.retry_jitter),
            request_timeout: self.request_timeout.or(below.request_timeout),
            ssrf_allowlist: self.ssrf_allowlist.or(below.ssrf_allowlist),
            extra_ca: self.extra_ca.or(below.extra_ca),
            max_payload_bytes: self.max_payload_bytes.or(below.max_payload_bytes),
            rotation_grace: self.rotation_grace.or(below.rotation_grace),
            shutdown_grace: self.shutdown_grace.or(below.shutdown_grace),
            log_format: self.log_format.or(below.log_format),
            public_url: self.public_url.or(below.public_url),
            response_body_cap: self.response_body_cap.or(below.response_body_cap),
            retry_after_cap: self.retry_after_cap.or(below.retry_after_cap),
            disable_failing_endpoints_after: self
                .disable_failing_endpoints_after
                .or(below.disable_failing_endpoints_after),
            circuit_breaker_failures: self
                .circuit_breaker_failures
                .or(below.circuit_breaker_failures),
            circuit_breaker_cooldown: self
                .circuit_breaker_cooldown
                .or(below.circuit_breaker_cooldown),
            circuit_breaker_max_cooldown: self
                .circuit_breaker_max_cooldown
                .or(below.circuit_breaker_max_cooldown),
            retention: self.retention.or(below.retention),
            app_rate_limit: self.app_rate_limit.or(below.app_rate_limit),
        }
    }
}

/// Where Herald keeps its data.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Database {
    /// An embedded SQLite file, owned by this one process.
    Sqlite(PathBuf),
    /// A PostgreSQL database that any number of nodes share.
    Postgres(String),
}

impl Database {
    fn parse(text: String) -> Database {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Database::Postgres(text)
        } else {
            Database::Sqlite(PathBuf::from(text))
        }
    }
}

/// For logs: the path, or the URL without its password.
impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(text) => match url::Url::parse(text) {
                Ok(mut parsed) => {
                    if parsed.password().is_some() {
                        let _ = parsed.set_password(Some("***"));
                    }
                    write!(f, "{parsed}")
                }
                Err(_) => f.write_str("postgres://(unparsable URL)"),
            },
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Database({self})")
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) listen: SocketAddr,
    pub(crate) database: Database,
    /// Connections a PostgreSQL node pools (unused on SQLite).
    pub(crate) database_pool_size: usize,
    pub(crate) workers: usize,
    pub(crate) per_endpoint_concurrency: usize,
    pub(crate) retry_schedule: RetrySchedule,
    pub(crate) request_timeout: Duration,
    pub(crate) ssrf_allowlist: Vec<IpNet>,
    /// Certificates (DER) of `extra_ca`'s files.
    pub(crate) extra_roots: Vec<Vec<u8>>,
    pub(crate) max_payload_bytes: usize,
    pub(crate) rotation_grace: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) log_format: LogFormat,
    /// Without a trailing `/`; `None` derives it from the bound address
    /// (`http://{address}`, the real port when listening on port 0).
    pub(crate) public_url: Option<String>,
    pub(crate) response_body_cap: usize,
    pub(crate) retry_after_cap: Duration,
    pub(crate) health: HealthConfig,
    /// `None` keeps everything.
    pub(crate) retention: Option<Duration>,
    /// `None` is unlimited.
    pub(crate) app_rate_limit: Option<u32>,
}

fn parse_layer(text: &str, origin: &str) -> anyhow::Result<Layer> {
    toml::from_str(text).with_context(|| format!("invalid configuration in {origin}"))
}

fn duration(name: &str, text: Option<String>) -> anyhow::Result<Duration> {
    let text = text.with_context(|| format!("{name} is not set"))?;
    parse_duration(&text).map_err(|error| anyhow::anyhow!("{name}: {}", error.message))
}

impl Config {
    /// Layers `flags` (already merged with the environment by clap) over the
    /// optional TOML `file` over the built-in defaults, and validates.
    pub(crate) fn load(flags: Layer, file: Option<&Path>) -> anyhow::Result<Config> {
        let defaults = parse_layer(DEFAULTS, "the built-in defaults")?;
        let from_file = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                parse_layer(&text, &path.display().to_string())?
            }
            None => Layer::default(),
        };
        Self::validate(flags.over(from_file).over(defaults))
    }

    fn validate(layer: Layer) -> anyhow::Result<Config> {
        let listen_text = layer.listen.context("listen is not set")?;
        let listen = listen_text.parse().with_context(|| {
            format!("listen: '{listen_text}' is not an address like 127.0.0.1:8071")
        })?;
        let public_url = match layer.public_url {
            None => None,
            Some(text) => {
                let parsed = url::Url::parse(&text)
                    .with_context(|| format!("public_url: '{text}' is not an absolute URL"))?;
                if !matches!(parsed.scheme(), "http" | "https") {
                    bail!("public_url: '{text}' must use http or https");
                }
                Some(text.trim_end_matches('/').to_owned())
            }
        };
        let database = match (layer.database, layer.database_url) {
            (Some(_), Some(_)) => {
                bail!("database and database_url are both set; give one of them")
            }
            (_, Some(url)) => match Database::parse(url) {
                Database::Postgres(url) => Database::Postgres(url),
                Database::Sqlite(_) => bail!("database_url must be a postgres:// URL"),
            },
            (Some(text), None) => Database::parse(text),
            (None, None) => bail!("database is not set"),
        };
        let jitter = layer.retry_jitter.unwrap_or(0.2);
        if !(0.0..=1.0).contains(&jitter) {
            bail!("retry_jitter must be between 0 and 1");
        }
        let retry_schedule =
            RetrySchedule::parse(layer.retry_schedule.as_deref().unwrap_or_default(), jitter)
                .map_err(|error| anyhow::anyhow!("retry_schedule: {}", error.message))?;
        let ssrf_allowlist = layer
            .ssrf_allowlist
            .unwrap_or_default()
            .iter()
            .map(|cidr| {
                let cidr = cidr.trim();
                cidr.parse::<IpNet>()
                    .or_else(|_| cidr.parse::<std::net::IpAddr>().map(IpNet::from))
                    .with_context(|| format!("ssrf_allowlist: '{cidr}' is not a CIDR range"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut extra_roots = Vec::new();
        for path in layer.extra_ca.unwrap_or_default() {
            let path = path.trim();
            let pem =
                std::fs::read(path).with_context(|| format!("extra_ca: cannot read '{path}'"))?;
            let certificates = herald_delivery::certificates_in(&pem)
                .map_err(|error| anyhow::anyhow!("extra_ca: '{path}': {error}"))?;
            extra_roots.extend(certificates);
        }
        let database_pool_size = layer
            .database_pool_size
            .context("database_pool_size is not set")?;
        // Four group-commit writers may each hold one while claims and
        // reads need theirs. SQLite has no pool: the setting is unused.
        if database_pool_size < 6 && matches!(database, Database::Postgres(_)) {
            bail!("database_pool_size must be at least 6");
        }
        let workers = layer.workers.context("workers is not set")?;
        let per_endpoint_concurrency = layer
            .per_endpoint_concurrency
            .context("per_endpoint_concurrency is not set")?;
        if workers == 0 || per_endpoint_concurrency == 0 {
            bail!("workers and per_endpoint_concurrency must be at least 1");
        }
        let log_format = match layer.log_format.as_deref() {
            Some("json") => LogFormat::Json,
            Some("text") | None => LogFormat::Text,
            Some(other) => bail!("log_format: '{other}' is neither 'text' nor 'json'"),
        };
        let health = HealthConfig {
            disable_after: duration(
                "disable_failing_endpoints_after",
                layer.disable_failing_endpoints_after,
            )?,
            breaker_threshold: match layer.circuit_breaker_failures {
                Some(0) | None => bail!("circuit_breaker_failures must be at least 1"),
                Some(failures) => failures,
            },
            breaker_cooldown: duration("circuit_breaker_cooldown", layer.circuit_breaker_cooldown)?,
            breaker_cooldown_max: duration(
                "circuit_breaker_max_cooldown",
                layer.circuit_breaker_max_cooldown,
            )?,
            ..HealthConfig::default()
        };
        if health.breaker_cooldown.is_zero()
            || health.breaker_cooldown > health.breaker_cooldown_max
        {
            bail!(
                "circuit_breaker_cooldown must be above zero and at most circuit_breaker_max_cooldown"
            );
        }
        let retention = match layer.retention.as_deref().map(str::trim) {
            Some("off") => None,
            other => {
                let period = duration("retention", other.map(str::to_owned))?;
                // A typo like "0s" would purge every finished message at once.
                if period < Duration::from_secs(3600) {
                    bail!("retention: keep at least an hour, or say \"off\" to keep everything");
                }
                Some(period)
            }
        };
        Ok(Config {
            listen,
            database,
            database_pool_size,
            workers,
            per_endpoint_concurrency,
            retry_schedule,
            request_timeout: duration("request_timeout", layer.request_timeout)?,
            ssrf_allowlist,
            extra_roots,
            max_payload_bytes: layer
                .max_payload_bytes
                .context("max_payload_bytes is not set")?,
            rotation_grace: duration("rotation_grace", layer.rotation_grace)?,
            shutdown_grace: duration("shutdown_grace", layer.shutdown_grace)?,
            log_format,
            public_url,
            response_body_cap: layer
                .response_body_cap
                .context("response_body_cap is not set")?,
            retry_after_cap: duration("retry_after_cap", layer.retry_after_cap)?,
            health,
            retention,
            app_rate_limit: layer.app_rate_limit.filter(|limit| *limit > 0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_alone_are_valid() {
        let config = Config::load(Layer::default(), None).expect("defaults load");
        assert_eq!(config.listen, "127.0.0.1:8071".parse().expect("address"));
        assert_eq!(
            config.database,
            Database::Sqlite(PathBuf::from("./herald.db"))
        );
        assert_eq!(config.retry_schedule.max_attempts(), 8);
        assert_eq!(config.request_timeout, Duration::from_secs(15));
        assert!(config.ssrf_allowlist.is_empty());
        assert_eq!(config.public_url, None, "derived from the bound address");
        assert_eq!(
            config.database_pool_size,
            herald_store_postgres::DEFAULT_POOL_SIZE
        );
    }

    #[test]
    fn the_public_url_is_checked_and_loses_its_trailing_slash() {
        let flags = Layer {
            public_url: Some("https://hooks.example.com/".into()),
            ..Layer::default()
        };
        let config = Config::load(flags, None).expect("config loads");
        assert_eq!(
            config.public_url.as_deref(),
            Some("https://hooks.example.com")
        );

        let flags = Layer {
            public_url: Some("hooks.example.com".into()),
            ..Layer::default()
        };
        let error = Config::load(flags, None).expect_err("not a URL");
        assert!(error.to_string().contains("public_url"), "{error}");
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("herald.toml");
        std::fs::write(
            &file,
            "workers = 7\nrequest_timeout = \"3s\"\nssrf_allowlist = [\"127.0.0.0/8\"]\n",
        )
        .expect("write config");
        let flags = Layer {
            workers: Some(9),
            ..Layer::default()
        };
        let config = Config::load(flags, Some(&file)).expect("config loads");
        assert_eq!(config.workers, 9);
        assert_eq!(config.request_timeout, Duration::from_secs(3));
        assert_eq!(
            config.ssrf_allowlist,
            vec!["127.0.0.0/8".parse::<IpNet>().expect("cidr")]
        );
    }

    #[test]
    fn bad_values_are_named_in_the_error() {
        let flags = Layer {
            retry_schedule: Some("5s, soon".into()),
            ..Layer::default()
        };
        let error = Config::load(flags, None).expect_err("bad schedule");
        assert!(error.to_string().contains("retry_schedule"), "{error}");

        let flags = Layer {
            ssrf_allowlist: Some(vec!["not-a-range".into()]),
            ..Layer::default()
        };
        let error = Config::load(flags, None).expect_err("bad cidr");
        assert!(error.to_string().contains("ssrf_allowlist"), "{error}");

        let flags = Layer {
            database: Some("postgres://db/herald".into()),
            database_pool_size: Some(5),
            ..Layer::default()
        };
        let error = Config::load(flags, None).expect_err("a pool too small");
        assert!(error.to_string().contains("database_pool_size"), "{error}");
        let unused = Layer {
            database_pool_size: Some(5),
            ..Layer::default()
        };
        Config::load(unused, None).expect("SQLite has no pool to size");
    }

    #[test]
    fn extra_authorities_are_read_from_pem_files_and_bad_ones_named() {
        let authority = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../herald-delivery/testdata/ca.pem"
        );
        let flags = Layer {
            extra_ca: Some(vec![authority.into()]),
            ..Layer::default()
        };
        let config = Config::load(flags, None).expect("config loads");
        assert_eq!(config.extra_roots.len(), 1);
        assert!(Config::load(Layer::default(), None)
            .expect("defaults load")
            .extra_roots
            .is_empty());

        let dir = tempfile::tempdir().expect("temp dir");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "no certificate here").expect("write");
        for path in [junk.display().to_string(), "/nonexistent/ca.pem".into()] {
            let flags = Layer {
                extra_ca: Some(vec![path.clone()]),
                ..Layer::default()
            };
            let error = Config::load(flags, None).expect_err("not a usable PEM file");
            let message = format!("{error:#}");
            assert!(message.contains("extra_ca"), "{message}");
            assert!(message.contains(&path), "{message}");
        }
    }

    #[test]
    fn a_postgres_url_selects_postgres_by_either_name_and_hides_its_password() {
        let url = "postgres://herald:secret@db.internal:5432/herald";
        for flags in [
            Layer {
                database: Some(url.into()),
                ..Layer::default()
            },
            Layer {
                database_url: Some(url.into()),
                ..Layer::default()
            },
        ] {
            let config = Config::load(flags, None).expect("config loads");
            assert_eq!(config.database, Database::Postgres(url.into()));
            let shown = config.database.to_string();
            assert!(!shown.contains("secret"), "{shown}");
        }
    }

    #[test]
    fn a_database_url_in_the_file_gives_way_to_a_database_flag() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("herald.toml");
        std::fs::write(&file, "database_url = \"postgres://db/herald\"\n").expect("write config");
        let config = Config::load(Layer::default(), Some(&file)).expect("config loads");
        assert_eq!(
            config.database,
            Database::Postgres("postgres://db/herald".into())
        );
        let flags = Layer {
            database: Some("local.db".into()),
            ..Layer::default()
        };
        let config = Config::load(flags, Some(&file)).expect("config loads");
        assert_eq!(config.database, Database::Sqlite(PathBuf::from("local.db")));

        let both = Layer {
            database: Some("local.db".into()),
            database_url: Some("postgres://db/herald".into()),
            ..Layer::default()
        };
        let error = Config::load(both, None).expect_err("ambiguous");
        assert!(error.to_string().contains("database_url"), "{error}");
        let not_postgres = Layer {
            database_url: Some("herald.db".into()),
            ..Layer::default()
        };
        let error = Config::load(not_postgres, None).expect_err("not a URL");
        assert!(error.to_string().contains("postgres://"), "{error}");
    }

    #[test]
    fn retention_and_breaker_settings_are_bounded() {
        for (flags, named) in [
            (
                Layer {
                    retention: Some("0s".into()),
                    ..Layer::default()
                },
                "retention",
            ),
            (
                Layer {
                    circuit_breaker_cooldown: Some("0s".into()),
                    ..Layer::default()
                },
                "circuit_breaker_cooldown",
            ),
            (
                Layer {
                    circuit_breaker_cooldown: Some("1h".into()),
                    ..Layer::default()
                },
                "circuit_breaker_cooldown",
            ),
        ] {
            let error = Config::load(flags, None).expect_err("refused");
            assert!(error.to_string().contains(named), "{error}");
        }
        let off = Layer {
            retention: Some("off".into()),
            ..Layer::default()
        };
        assert_eq!(Config::load(off, None).expect("loads").retention, None);
    }

    #[test]
    fn unknown_file_settings_are_rejected() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("herald.toml");
        std::fs::write(&file, "wokers = 7\n").expect("write config");
        let error = Config::load(Layer::default(), Some(&file)).expect_err("typo rejected");
        assert!(format!("{error:#}").contains("wokers"), "{error:#}");
    }
}
