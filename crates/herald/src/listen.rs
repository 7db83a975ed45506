//! `herald listen`: forwards what reaches a listen session's relay URL to a
//! server on this machine, and its answers back.
//!
//! With `--app`, the session's URL becomes an endpoint of that application
//! for as long as the command runs, so a tenant's deliveries (signed, with
//! the endpoint's secret printed for the local server to verify) arrive at
//! `localhost` while it is being written.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine as _;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

/// Local requests forwarded at once.
const CONCURRENCY: usize = 16;

/// How long the local server has to answer: inside the relay's own wait.
const LOCAL_TIMEOUT: Duration = Duration::from_secs(9);

/// What a poll asks the server to wait for, in seconds.
const POLL_WAIT: u64 = 25;

/// Local answers are passed back up to this size (the attempt log keeps
/// far less, and the reply, base64-encoded, must fit the server's limit).
const MAX_LOCAL_BODY: usize = 32 * 1024;

/// How long each clean-up call may take when the command stops.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(5);

/// Headers the local request gets from the HTTP client, not the relay.
const NOT_FORWARDED: [&str; 3] = ["host", "content-length", "connection"];

#[derive(Debug, clap::Args)]
pub(crate) struct ListenArgs {
    /// Where each request goes, e.g. http://localhost:3000/webhooks.
    forward_to: String,
    /// The Herald server to listen through.
    #[arg(long, env = "HERALD_SERVER", default_value = "http://127.0.0.1:8071")]
    server: String,
    /// An API token of that server.
    #[arg(long, env = "HERALD_TOKEN", hide_env_values = true)]
    token: String,
    /// Add an endpoint for the session's URL to this application (id or
    /// uid), deleted again when the command stops.
    #[arg(long)]
    app: Option<String>,
    /// With --app: the event types the endpoint receives (all when none).
    #[arg(long = "event-type", value_delimiter = ',')]
    event_types: Vec<String>,
    /// Take back a session of an earlier run, keeping its URL.
    #[arg(long)]
    session: Option<String>,
}

pub(crate) fn run(args: ListenArgs, runtime: &tokio::runtime::Runtime) -> anyhow::Result<()> {
    runtime.block_on(listen(args))
}

async fn listen(args: ListenArgs) -> anyhow::Result<()> {
    let target = url::Url::parse(&args.forward_to)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https"))
        .with_context(|| format!("{} is not an http(s) URL", args.forward_to))?;
    let api = Api {
        client: reqwest::Client::new(),
        base: format!("{}/api/v1", args.server.trim_end_matches('/')),
        token: args.token.clone(),
    };
    let local = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(LOCAL_TIMEOUT)
        .build()
        .context("cannot make an HTTP client")?;
    // Registered before anything is made on the server, so a Ctrl-C from
    // now on is answered by cleaning up, not by the default exit.
    let mut stop = Stop::register()?;
    // Nothing is made yet that needs cleaning up: a signal ends the wait
    // for a server that does not answer.
    let session = tokio::select! {
        session = api.open(args.session.as_deref()) => session?,
        () = stop.wait() => return Ok(()),
    };
    say(&format!("relay url: {}", session.url));
    let mut endpoint = None;
    let mut forwarded = Ok(());
    if let Some(app) = &args.app {
        // Not cut short by a signal: an endpoint made must be known to be
        // deleted again. Named by the session's uid, it can be even when
        // the answer that made it was lost.
        let uid = endpoint_uid(&session.id);
        match api
            .put_endpoint(app, &uid, &session.url, &args.event_types)
            .await
        {
            Ok(id) => endpoint = Some((app.clone(), id)),
            Err(error) => {
                // Refused, it was not made; with no answer (or a server
                // error) it may have been.
                let refused = answered(&error).is_some_and(|status| status.is_client_error());
                if !refused {
                    endpoint = Some((app.clone(), uid));
                }
                forwarded = Err(error);
            }
        }
    }
    if let (Some((app, id)), Ok(())) = (&endpoint, &forwarded) {
        match api.get(&format!("/app/{app}/endpoint/{id}/secret")).await {
            Ok(secret) => match secret["key"].as_str() {
                Some(key) => {
                    say(&format!("endpoint: {id}"));
                    say(&format!("secret: {key}"));
                }
                None => forwarded = Err(anyhow::anyhow!("the secret answer has no key")),
            },
            Err(error) => forwarded = Err(error),
        }
    }
    if forwarded.is_ok() {
        say(&format!("forwarding to {target} (Ctrl-C to stop)"));
        forwarded = tokio::select! {
            result = relay(&api, &session.id, &local, &target) => result,
            () = stop.wait() => Ok(()),
        };
    }
    // Clean up whatever ended the loop, briefly: a failure here is only
    // reported (an endpoint never made is not one).
    if let Some((app, id)) = endpoint {
        let path = format!("/app/{app}/endpoint/{id}");
        match api.delete_within(&path, CLEANUP_TIMEOUT).await {
            Err(error) if answered(&error) != Some(StatusCode::NOT_FOUND) => {
                complain(&format!("could not delete endpoint {id}: {error:#}"));
            }
            _ => {}
        }
    }
    let path = format!("/listen/{}", session.id);
    if let Err(error) = api.delete_within(&path, CLEANUP_TIMEOUT).await {
        complain(&format!("could not close the session: {error:#}"));
    }
    forwarded
}

/// Prints a line; a closed terminal (after SIGHUP) is not an error.
fn say(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// Prints a line to standard error, as [`say`] does.
fn complain(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// The signals that stop the command: Ctrl-C, SIGTERM, and the terminal
/// closing (SIGHUP).
struct Stop {
    #[cfg(unix)]
    signals: [tokio::signal::unix::Signal; 3],
}

impl Stop {
    fn register() -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let signals = [
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ];
            let [interrupt, terminate, hangup] = signals;
            Ok(Self {
                signals: [
                    interrupt.context("cannot listen for Ctrl-C")?,
                    terminate.context("cannot listen for SIGTERM")?,
                    hangup.context("cannot listen for SIGHUP")?,
                ],
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    async fn wait(&mut self) {
        #[cfg(unix)]
        {
            let [interrupt, terminate, hangup] = &mut self.signals;
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
                _ = hangup.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Polls for requests and forwards each; returns only on an error that
/// retrying cannot mend (a token the server refuses).
async fn relay(
    api: &Api,
    session: &str,
    local: &reqwest::Client,
    target: &url::Url,
) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let mut backoff = Duration::from_millis(500);
    loop {
        let requests = match api.poll(session).await {
            Ok(requests) => requests,
            Err(Failure::Refused(status)) => bail!("the server refused the token ({status})"),
            Err(Failure::Gone) => {
                // The server restarted (sessions live in its memory), or
                // the poll reached another node: open the same session
                // again, so the URL keeps working, and not in a tight loop.
                if let Err(error) = api.open(Some(session)).await {
                    complain(&format!("cannot reopen the session: {error:#}"));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(Failure::Other(error)) => {
                complain(&format!("cannot reach the server: {error:#}; retrying"));
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        backoff = Duration::from_millis(500);
        for request in requests {
            let permit = slots
                .clone()
                .acquire_owned()
                .await
                .context("forwarding stopped")?;
            let (api, local, target) = (api.clone(), local.clone(), target.clone());
            let session = session.to_owned();
            tokio::spawn(async move {
                let _permit = permit;
                forward(&api, &session, &local, &target, request).await;
            });
        }
    }
}

/// Sends one relayed request to the local server and its answer back.
async fn forward(
    api: &Api,
    session: &str,
    local: &reqwest::Client,
    target: &url::Url,
    request: Relayed,
) {
    let started = Instant::now();
    let label = request
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("webhook-id"))
        .map(|(_, value)| format!(" {value}"))
        .unwrap_or_default();
    let answer = match send_locally(local, target, &request).await {
        Ok(answer) => {
            say(&format!(
                "{} {target} -> {} ({} ms){label}",
                request.method,
                answer.0,
                started.elapsed().as_millis()
            ));
            answer
        }
        Err(error) => {
            say(&format!(
                "{} {target} -> failed: {error:#}{label}",
                request.method
            ));
            let body = format!("herald listen could not reach {target}: {error:#}");
            (
                StatusCode::BAD_GATEWAY.as_u16(),
                Vec::new(),
                body.into_bytes(),
            )
        }
    };
    let (status, headers, body) = answer;
    let reply = json!({
        "status": status,
        "headers": headers,
        "body": base64::engine::general_purpose::STANDARD.encode(body),
    });
    let path = format!("/listen/{session}/request/{}/reply", request.id);
    if let Err(error) = api.post(&path, &reply).await {
        complain(&format!("could not pass the answer back: {error:#}"));
    }
}

type Answer = (u16, Vec<(String, String)>, Vec<u8>);

async fn send_locally(
    local: &reqwest::Client,
    target: &url::Url,
    request: &Relayed,
) -> anyhow::Result<Answer> {
    let mut url = target.clone();
    if let Some(query) = request.query.as_deref().filter(|query| !query.is_empty()) {
        let joined = match target.query().filter(|own| !own.is_empty()) {
            Some(own) => format!("{own}&{query}"),
            None => query.to_owned(),
        };
        url.set_query(Some(&joined));
    }
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .with_context(|| format!("{} is not an HTTP method", request.method))?;
    let body = base64::engine::general_purpose::STANDARD
        .decode(&request.body)
        .context("the server sent a body that is not base64")?;
    let mut outgoing = local.request(method, url).body(body);
    for (name, value) in &request.headers {
        if !NOT_FORWARDED.contains(&name.to_ascii_lowercase().as_str()) {
            outgoing = outgoing.header(name, value);
        }
    }
    let response = outgoing.send().await?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
        .collect();
    // Read up to the cap only: a local server streaming a large answer is
    // not held in memory.
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_LOCAL_BODY - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_LOCAL_BODY {
            break;
        }
    }
    Ok((status, headers, body))
}

#[derive(Debug, Deserialize)]
struct Session {
    id: String,
    url: String,
}

#[derive(Debug, Deserialize)]
struct Relayed {
    id: String,
    method: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: String,
}

#[derive(Debug, Deserialize)]
struct Polled {
    data: Vec<Relayed>,
}

/// Why a call to the server failed.
enum Failure {
    /// 401 or 403: the token is wrong.
    Refused(StatusCode),
    /// 404: the server does not know the session.
    Gone,
    Other(anyhow::Error),
}

/// A call the server answered with something other than success.
#[derive(Debug)]
struct Answered {
    status: StatusCode,
    text: String,
}

impl std::fmt::Display for Answered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server answered {}: {}", self.status, self.text)
    }
}

impl std::error::Error for Answered {}

/// The status the server answered a failed call with, if it answered.
fn answered(error: &anyhow::Error) -> Option<StatusCode> {
    error.downcast_ref::<Answered>().map(|answer| answer.status)
}

/// The uid of the endpoint a session adds: one per session, so the
/// endpoint can be found without its id.
fn endpoint_uid(session: &str) -> String {
    format!("herald-listen-{session}")
}

/// The server's API, as this command uses it.
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    async fn open(&self, session: Option<&str>) -> anyhow::Result<Session> {
        let body = session.map_or_else(|| json!({}), |id| json!({ "id": id }));
        let answer = self.post("/listen", &body).await?;
        serde_json::from_value(answer).context("the server's session answer is not one")
    }

    /// Creates the session's endpoint, named `uid`, or takes over the one
    /// an earlier run of the same session left behind (killed before it
    /// could clean up), keeping its id, secret and queued deliveries, since
    /// its relay URL is the same.
    async fn put_endpoint(
        &self,
        app: &str,
        uid: &str,
        url: &str,
        event_types: &[String],
    ) -> anyhow::Result<String> {
        // A replacement keeps only the uid it is given.
        let mut body = json!({ "url": url, "uid": uid, "description": "herald listen" });
        if !event_types.is_empty() {
            body["filterTypes"] = json!(event_types);
        }
        let request = self
            .client
            .put(format!("{}/app/{app}/endpoint/{uid}", self.base))
            .json(&body);
        let endpoint = self.call(request).await?;
        let id = endpoint["id"]
            .as_str()
            .context("the endpoint answer has no id")?;
        Ok(id.to_owned())
    }

    async fn poll(&self, session: &str) -> Result<Vec<Relayed>, Failure> {
        let url = format!("{}/listen/{session}/request?wait={POLL_WAIT}", self.base);
        let response = self
            .client
            .get(url)
            .bearer_auth(&self.token)
            .timeout(Duration::from_secs(POLL_WAIT + 15))
            .send()
            .await
            .map_err(|error| Failure::Other(error.into()))?;
        match response.status() {
            status if status.is_success() => response
                .json::<Polled>()
                .await
                .map(|polled| polled.data)
                .map_err(|error| Failure::Other(error.into())),
            StatusCode::NOT_FOUND => Err(Failure::Gone),
            status @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) => {
                Err(Failure::Refused(status))
            }
            status => Err(Failure::Other(anyhow::anyhow!(
                "the server answered {status}"
            ))),
        }
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let request = self.client.get(format!("{}{path}", self.base));
        self.call(request).await
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let request = self.client.post(format!("{}{path}", self.base)).json(body);
        self.call(request).await
    }

    async fn delete_within(&self, path: &str, timeout: Duration) -> anyhow::Result<Value> {
        let request = self
            .client
            .delete(format!("{}{path}", self.base))
            .timeout(timeout);
        self.call(request).await
    }

    /// Sends `request` with the token (within 30 s unless it has a
    /// timeout of its own); answers its JSON, `Null` when empty.
    async fn call(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let (client, request) = request.bearer_auth(&self.token).build_split();
        let mut request = request?;
        if request.timeout().is_none() {
            *request.timeout_mut() = Some(Duration::from_secs(30));
        }
        let response = client.execute(request).await?;
        let status = response.status();
        let text = response.text().await?;
        if !status.is_success() {
            return Err(Answered { status, text }.into());
        }
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).context("the server's answer is not JSON")
    }
}
