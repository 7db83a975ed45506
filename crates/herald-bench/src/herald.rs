//! The Herald under test: a `herald serve` process on a fresh database, and
//! the few API calls the scenarios need.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const TOKEN: &str = "bench-token";

/// A running herald process; killed when dropped.
pub(crate) struct Herald {
    child: Child,
    pub(crate) api: Api,
    dir: TempDir,
}

impl Herald {
    /// Starts `binary serve` on a fresh SQLite file with `extra` flags.
    pub(crate) async fn start(binary: &Path, extra: &[String]) -> anyhow::Result<Herald> {
        Self::start_on(binary, None, extra).await
    }

    /// Starts `binary serve` on `database` (a PostgreSQL URL several nodes
    /// may share), or on a fresh SQLite file when `None`.
    pub(crate) async fn start_on(
        binary: &Path,
        database: Option<&str>,
        extra: &[String],
    ) -> anyhow::Result<Herald> {
        let dir = tempfile::tempdir()?;
        let database = match database {
            Some(url) => std::ffi::OsString::from(url),
            None => dir.path().join("herald.db").into_os_string(),
        };
        let mut command = Command::new(binary);
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--ssrf-allow",
                "127.0.0.0/8",
            ])
            .arg("--database")
            .arg(database)
            .args(extra);
        Self::spawn(command, dir)
            .await
            .with_context(|| format!("cannot start {}", binary.display()))
    }

    /// Starts this binary as the store-less relay of [`crate::relay`].
    pub(crate) async fn start_relay() -> anyhow::Result<Herald> {
        let mut command = Command::new(std::env::current_exe()?);
        command.arg(crate::relay::SUBCOMMAND);
        Self::spawn(command, tempfile::tempdir()?).await
    }

    async fn spawn(mut command: Command, dir: TempDir) -> anyhow::Result<Herald> {
        let mut child = command
            .env("HERALD_ADMIN_TOKEN", TOKEN)
            .env("HERALD_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("stdout is piped")?;
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let Some(line) = lines.next_line().await? else {
                bail!("exited before listening");
            };
            if let Some(url) = line.strip_prefix("herald listening on ") {
                break url.trim().to_owned();
            }
        };
        Ok(Herald {
            child,
            api: Api::new(base),
            dir,
        })
    }

    /// Peak resident memory of the process so far (VmHWM), in bytes.
    pub(crate) fn peak_rss(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// CPU time the process has used so far (user and system, all threads).
    /// A steadier figure than throughput on a shared virtual machine: it
    /// counts the work done, not how long other tenants kept the cores.
    pub(crate) fn cpu_time(&self) -> Option<Duration> {
        let pid = self.child.id()?;
        cpu_of(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }

    /// CPU time of the SQLite writer thread: the one part of the engine that
    /// cannot spread over cores.
    pub(crate) fn writer_cpu_time(&self) -> Option<Duration> {
        let pid = self.child.id()?;
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
            .find(|stat| stat.contains("(herald-sqlite-w)"))
            .and_then(|stat| cpu_of(&stat))
    }

    /// Bytes the database takes on disk (main file and WAL).
    pub(crate) fn database_size(&self) -> u64 {
        ["herald.db", "herald.db-wal"]
            .iter()
            .filter_map(|name| std::fs::metadata(self.dir.path().join(name)).ok())
            .map(|metadata| metadata.len())
            .sum()
    }
}

/// CPU time this process (load generator and sink) has used so far.
pub(crate) fn own_cpu_time() -> Option<Duration> {
    cpu_of(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// User plus system time from a `/proc/.../stat` line.
fn cpu_of(stat: &str) -> Option<Duration> {
    // Fields after the command name (which may hold spaces) start at the
    // state, field 3; utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    // /proc counts clock ticks of USER_HZ, 100 per second on Linux.
    Some(Duration::from_millis((user + system) * 10))
}

/// The `herald` binary next to this one (both are built together).
pub(crate) fn sibling_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let binary = me.with_file_name("herald");
    if !binary.exists() {
        bail!(
            "{} not found: build it first (cargo build --release) or pass --herald",
            binary.display()
        );
    }
    Ok(binary)
}

/// A thin API client over one pooled connection set.
#[derive(Clone)]
pub(crate) struct Api {
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
}

impl Api {
    fn new(base: String) -> Api {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("a default client builds");
        Api { base, http }
    }

    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await?;
        if !status.is_success() {
            bail!("POST {path} answered {status}: {answer}");
        }
        Ok(answer)
    }

    /// Creates an app; answers its id.
    pub(crate) async fn create_app(&self, name: &str) -> anyhow::Result<String> {
        let app = self.post("/api/v1/app", json!({ "name": name })).await?;
        app["id"].as_str().map(str::to_owned).context("app id")
    }

    /// Creates an endpoint delivering to `url`; answers its id.
    pub(crate) async fn create_endpoint(&self, app: &str, url: &str) -> anyhow::Result<String> {
        let endpoint = self
            .post(
                &format!("/api/v1/app/{app}/endpoint"),
                json!({ "url": url }),
            )
            .await?;
        endpoint["id"]
            .as_str()
            .map(str::to_owned)
            .context("endpoint id")
    }

    /// Deliveries of an endpoint not yet settled: pending or being sent.
    pub(crate) async fn unsettled(&self, app: &str, endpoint: &str) -> anyhow::Result<u64> {
        let response = self
            .http
            .get(format!(
                "{}/api/v1/app/{app}/endpoint/{endpoint}/stats",
                self.base
            ))
            .bearer_auth(TOKEN)
            .send()
            .await?
            .error_for_status()?;
        let stats: Value = response.json().await?;
        let count = |field: &str| stats[field].as_u64().context("endpoint stats");
        Ok(count("pending")? + count("sending")?)
    }

    /// Re-queues every failed delivery of an endpoint.
    pub(crate) async fn recover(&self, app: &str, endpoint: &str) -> anyhow::Result<()> {
        self.post(
            &format!("/api/v1/app/{app}/endpoint/{endpoint}/recover"),
            json!({ "since": "2000-01-01T00:00:00Z" }),
        )
        .await?;
        Ok(())
    }

    /// Sends one message carrying `seq`; answers whether Herald accepted it.
    pub(crate) async fn send(&self, app: &str, seq: usize) -> anyhow::Result<()> {
        let response = self
            .http
            .post(format!("{}/api/v1/app/{app}/msg", self.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(message_body(seq))
            .send()
            .await?;
        if response.status() != reqwest::StatusCode::ACCEPTED {
            bail!("message {seq} answered {}", response.status());
        }
        Ok(())
    }
}

/// A message of about 300 bytes, like a typical small webhook.
pub(crate) fn message_body(seq: usize) -> String {
    format!(
        r#"{{"eventType":"invoice.paid","payload":{{"seq":{seq},"invoice":"in_{seq:012}","customer":"cus_0000000042","amount":4200,"currency":"eur","lines":[{{"sku":"plan-pro","quantity":1}}],"note":"benchmark payload padding to a realistic size ............."}}}}"#
    )
}
