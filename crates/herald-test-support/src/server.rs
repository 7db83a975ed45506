//! Herald itself, started in-process on `127.0.0.1:0` with a fresh
//! database: a SQLite file in a temporary directory, or a new schema on the
//! test PostgreSQL (see [`crate::backend`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use herald_core::clock::ManualClock;
use herald_core::{Clock, RetrySchedule, SystemClock};
use herald_delivery::{DeliveryConfig, HealthConfig};
use herald_server::ServerConfig;
use herald_store::Store;
use herald_store_postgres::testing::TestSchema;
use herald_store_postgres::PostgresStore;
use herald_store_sqlite::SqliteStore;

use crate::Backend;
use reqwest::Method;
use serde_json::Value;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Connections a test server's PostgreSQL store keeps at most.
const TEST_POOL_SIZE: usize = 6;

/// The admin token every test server accepts.
pub const TEST_TOKEN: &str = "test-admin-token";

/// Knobs a test may turn.
#[derive(Debug, Clone)]
pub struct TestServerOptions {
    /// Fast by default so retries happen within a test.
    pub retry_schedule: RetrySchedule,
    pub request_timeout: Duration,
    pub max_payload_bytes: usize,
    pub per_endpoint_concurrency: usize,
    pub workers: usize,
    /// Private ranges deliveries may reach; loopback by default so tests'
    /// receivers on 127.0.0.1 are reachable.
    pub ssrf_allowlist: Vec<ipnet::IpNet>,
    pub health: HealthConfig,
    pub retry_after_cap: Duration,
    pub app_rate_limit: Option<u32>,
    /// Purged after this long (checked every 200 ms); `None` keeps all.
    pub retention: Option<Duration>,
    /// A clock the test moves by hand; the system's when `None`.
    pub clock: Option<Arc<ManualClock>>,
    /// How far ahead of an endpoint's pace it is claimed (the engine's
    /// default when `None`).
    pub claim_ahead: Option<Duration>,
}

impl Default for TestServerOptions {
    fn default() -> Self {
        Self {
            retry_schedule: RetrySchedule::new(
                vec![
                    Duration::from_millis(10),
                    Duration::from_millis(20),
                    Duration::from_millis(40),
                ],
                0.0,
            ),
            request_timeout: Duration::from_secs(5),
            max_payload_bytes: 1024 * 1024,
            per_endpoint_concurrency: 16,
            workers: 64,
            ssrf_allowlist: vec!["127.0.0.0/8".parse().expect("cidr")],
            health: HealthConfig::default(),
            retry_after_cap: Duration::from_secs(3600),
            app_rate_limit: None,
            retention: None,
            clock: None,
            claim_ahead: None,
        }
    }
}

/// A running Herald; stops when dropped.
pub struct TestServer {
    pub api: Api,
    pub address: SocketAddr,
    /// The SQLite file (used only on the SQLite backend).
    pub database: PathBuf,
    /// The backend this server stores its data in.
    pub backend: Backend,
    /// The server's store, for what a test does beside the API the way
    /// the CLI does (API tokens).
    pub store: Arc<dyn Store>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
    _dir: TempDir,
    /// Dropped (with its tables) after the server's other fields.
    _schema: Option<TestSchema>,
}

impl TestServer {
    /// Starts Herald with default test options.
    pub async fn start() -> TestServer {
        Self::start_with(TestServerOptions::default()).await
    }

    /// Starts Herald with `options`.
    pub async fn start_with(options: TestServerOptions) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let database = dir.path().join("herald.db");
        let backend = crate::backend::current();
        let (store, schema): (Arc<dyn Store>, _) = match backend {
            Backend::Sqlite => (
                Arc::new(SqliteStore::open(&database).expect("store opens")),
                None,
            ),
            Backend::Postgres => {
                let schema = TestSchema::create()
                    .await
                    .expect("the test checked that PostgreSQL is there");
                // Tests run side by side on one server of 100 connections;
                // a test's few requests at a time need few.
                let store = PostgresStore::connect_with(&schema.url, TEST_POOL_SIZE)
                    .await
                    .expect("the store connects to its fresh schema");
                (Arc::new(store), Some(schema))
            }
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let shutdown = CancellationToken::new();
        let server = ServerConfig {
            max_payload_bytes: options.max_payload_bytes,
            admin_token: Some(TEST_TOKEN.into()),
            public_url: format!("http://{address}"),
            app_rate_limit: options.app_rate_limit,
            ..ServerConfig::default()
        };
        let delivery = DeliveryConfig {
            workers: options.workers,
            per_endpoint_concurrency: options.per_endpoint_concurrency,
            retry_schedule: options.retry_schedule,
            request_timeout: options.request_timeout,
            ssrf_allowlist: options.ssrf_allowlist,
            health: options.health,
            retry_after_cap: options.retry_after_cap,
            retention: options.retention,
            purge_interval: Duration::from_millis(200),
            claim_ahead: options
                .claim_ahead
                .unwrap_or(DeliveryConfig::default().claim_ahead),
            sweep_interval: Duration::from_millis(200),
            ..DeliveryConfig::default()
        };
        let clock: Arc<dyn Clock> = match options.clock {
            Some(clock) => clock,
            None => Arc::new(SystemClock),
        };
        let stop = shutdown.clone();
        let served = store.clone();
        let task = tokio::spawn(async move {
            herald_server::serve(
                served,
                clock,
                server,
                delivery,
                listener,
                stop,
                Duration::from_secs(2),
            )
            .await
            .expect("herald serves");
        });
        TestServer {
            api: Api::new(format!("http://{address}"), TEST_TOKEN),
            address,
            database,
            backend,
            store,
            shutdown,
            task: Some(task),
            _dir: dir,
            _schema: schema,
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            task.await.expect("server task ends cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A minimal API client: one generic request, answers as (status, JSON).
#[derive(Debug, Clone)]
pub struct Api {
    pub base: String,
    pub token: String,
    http: reqwest::Client,
}

impl Api {
    /// A client for the server at `base`.
    pub fn new(base: String, token: &str) -> Api {
        Api {
            base,
            token: token.to_owned(),
            http: reqwest::Client::new(),
        }
    }

    /// Sends `method path` with an optional JSON body and extra headers;
    /// answers the status and the body as JSON (`Null` when empty).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches herald");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("response body");
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("herald answers JSON")
        };
        (status, json)
    }

    /// GET, expecting 200.
    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.request(Method::GET, path, None, &[]).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// POST, expecting `expected`.
    pub async fn post(&self, path: &str, body: Value, expected: u16) -> Value {
        let (status, answer) = self.request(Method::POST, path, Some(body), &[]).await;
        assert_eq!(status, expected, "POST {path}: {answer}");
        answer
    }

    /// Creates an app named `name`; answers its id.
    pub async fn create_app(&self, name: &str) -> String {
        let app = self
            .post("/api/v1/app", serde_json::json!({ "name": name }), 201)
            .await;
        app["id"].as_str().expect("app id").to_owned()
    }

    /// Creates an endpoint; answers (id, secret).
    pub async fn create_endpoint(&self, app: &str, body: Value) -> (String, String) {
        let endpoint = self
            .post(&format!("/api/v1/app/{app}/endpoint"), body, 201)
            .await;
        let id = endpoint["id"].as_str().expect("endpoint id").to_owned();
        let secret = self
            .get(&format!("/api/v1/app/{app}/endpoint/{id}/secret"))
            .await;
        (id, secret["key"].as_str().expect("secret key").to_owned())
    }

    /// Sends a message; answers its id.
    pub async fn send(&self, app: &str, event_type: &str, payload: Value) -> String {
        let message = self
            .post(
                &format!("/api/v1/app/{app}/msg"),
                serde_json::json!({ "eventType": event_type, "payload": payload }),
                202,
            )
            .await;
        message["id"].as_str().expect("message id").to_owned()
    }

    /// The attempts of a message, newest first.
    pub async fn attempts_of(&self, app: &str, msg: &str) -> Vec<Value> {
        let list = self
            .get(&format!("/api/v1/app/{app}/attempt/msg/{msg}?limit=250"))
            .await;
        list["data"].as_array().cloned().unwrap_or_default()
    }

    /// The delivery statuses of a message, one per endpoint.
    pub async fn destinations_of(&self, app: &str, msg: &str) -> Vec<Value> {
        let list = self
            .get(&format!("/api/v1/app/{app}/msg/{msg}/endpoint"))
            .await;
        list["data"].as_array().cloned().unwrap_or_default()
    }
}
