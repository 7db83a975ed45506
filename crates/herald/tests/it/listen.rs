//! `herald listen` and the listen sessions it uses: an application's
//! deliveries reach a server on loopback through a relay URL, signed as
//! any delivery, and the local answer lands in the attempt log.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use herald_test_support::{eventually, Behaviour, Receiver, TestServer, TEST_TOKEN};
use reqwest::Method;
use serde_json::json;
use standardwebhooks::Webhook;

use crate::DEADLINE;

/// A running `herald listen`, and what it printed before forwarding.
struct Listening {
    child: Child,
    relay_url: String,
    endpoint: String,
    secret: String,
}

impl Listening {
    fn start(server: &TestServer, forward_to: &str, app: &str, extra: &[&str]) -> Listening {
        let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(["listen", forward_to, "--app", app])
            .args(extra)
            .arg("--server")
            .arg(format!("http://{}", server.address))
            .env("HERALD_TOKEN", TEST_TOKEN)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("herald listen starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        // Read on a thread of its own (it keeps draining what the command
        // prints per request, so it never blocks on a full pipe), and
        // waited for with a deadline.
        let (printed, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if printed.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + DEADLINE;
        let field = |prefix: &str| loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = lines
                .recv_timeout(left)
                .expect("herald listen prints its settings in time");
            if let Some(value) = line.strip_prefix(prefix) {
                break value.trim().to_owned();
            }
        };
        let relay_url = field("relay url:");
        let endpoint = field("endpoint:");
        let secret = field("secret:");
        field("forwarding to");
        std::thread::spawn(move || while lines.recv().is_ok() {});
        Listening {
            child,
            relay_url,
            endpoint,
            secret,
        }
    }

    /// Interrupts it as Ctrl-C does and waits for it to exit.
    fn interrupt(mut self) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                assert!(status.success(), "herald listen exits cleanly: {status}");
                return;
            }
            assert!(Instant::now() < deadline, "herald listen did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// Several threads: starting and stopping the command blocks on its process
// while the in-process server answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_deliveries_reach_a_local_server_through_herald_listen() {
    let server = TestServer::start().await;
    let local = Receiver::start(Behaviour::AcceptWith {
        body: "hello from localhost",
    })
    .await;
    let api = &server.api;
    let app = api.create_app("listen").await;
    let listening = Listening::start(&server, &local.url("webhooks?from=herald"), &app, &[]);
    assert!(listening.relay_url.contains("/listen/lsn_"));

    let msg = api
        .send(&app, "invoice.paid", json!({"invoice": "in_1"}))
        .await;
    eventually("the local server gets the delivery", DEADLINE, || async {
        (local.count() == 1).then_some(())
    })
    .await;
    let received = local.received().remove(0);
    assert_eq!(received.header("x-receiver-path"), "/webhooks");
    assert_eq!(received.header("webhook-id"), msg);
    assert_eq!(received.json(), json!({"invoice": "in_1"}));
    Webhook::new(&listening.secret)
        .expect("the printed secret parses")
        .verify(&received.body, &received.headers)
        .expect("the delivery verifies with the printed secret");

    // The local answer is what the attempt log shows.
    let attempt = eventually("the successful attempt is logged", DEADLINE, || async {
        api.attempts_of(&app, &msg)
            .await
            .into_iter()
            .find(|attempt| attempt["responseStatusCode"] == 200)
    })
    .await;
    assert_eq!(attempt["response"], "hello from localhost");
    assert_eq!(attempt["endpointId"], listening.endpoint.as_str());

    let endpoint_path = format!("/api/v1/app/{app}/endpoint/{}", listening.endpoint);
    let relay_url = listening.relay_url.clone();
    listening.interrupt();
    // Stopping removes the endpoint it added and closes the session.
    let (status, _) = api.request(Method::GET, &endpoint_path, None, &[]).await;
    assert_eq!(status, 404, "the endpoint is deleted");
    let relayed = reqwest::Client::new()
        .post(&relay_url)
        .body("{}")
        .send()
        .await
        .expect("relay answers");
    assert_eq!(relayed.status(), 404, "the session is closed");
}

// A run killed before it could clean up leaves its endpoint; the next run
// of the same session (and so the same relay URL) takes it over, secret
// and queue included, and it is found by the session's uid whatever
// became of the answer that made it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sessions_endpoint_left_by_a_killed_run_is_taken_over_by_the_next() {
    let server = TestServer::start().await;
    let local = Receiver::start(Behaviour::AcceptWith { body: "ok" }).await;
    let api = &server.api;
    let app = api.create_app("listen-again").await;
    let session = format!("lsn_{}", "k".repeat(32));
    let by_uid = format!("/api/v1/app/{app}/endpoint/herald-listen-{session}");
    let left = api
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({
                "url": local.url("stale"),
                "uid": format!("herald-listen-{session}"),
                "filterTypes": ["invoice.paid"],
            }),
            201,
        )
        .await;
    let left_id = left["id"].as_str().expect("an id");
    let left_secret = api
        .get(&format!("/api/v1/app/{app}/endpoint/{left_id}/secret"))
        .await;

    let extra = ["--session", session.as_str()];
    let listening = Listening::start(&server, &local.url("fresh"), &app, &extra);
    assert_eq!(
        listening.endpoint, left_id,
        "the endpoint left behind is taken over"
    );
    assert_eq!(
        listening.secret,
        left_secret["key"].as_str().expect("a key")
    );
    let found = api.get(&by_uid).await;
    assert_eq!(found["url"], listening.relay_url.as_str());
    assert_eq!(
        found["filterTypes"],
        json!(null),
        "this run's settings, not the last's"
    );

    listening.interrupt();
    let (status, _) = api.request(Method::GET, &by_uid, None, &[]).await;
    assert_eq!(status, 404, "deleted when the run stops");
}

#[tokio::test]
async fn a_relayed_request_reaches_the_poller_whole_and_its_reply_reaches_the_sender() {
    let server = TestServer::start().await;
    let api = &server.api;
    let http = reqwest::Client::new();
    let (status, session) = api
        .request(Method::POST, "/api/v1/listen", Some(json!({})), &[])
        .await;
    assert_eq!(status, 201);
    let id = session["id"].as_str().expect("session id").to_owned();
    let url = session["url"].as_str().expect("relay url").to_owned();
    assert_eq!(url, format!("http://{}/listen/{id}", server.address));

    let poll_path = format!("/api/v1/listen/{id}/request?wait=0");
    let (status, polled) = api.request(Method::GET, &poll_path, None, &[]).await;
    assert_eq!((status, polled), (200, json!({"data": []})));

    let body: &[u8] = &[0, 159, 146, 150, b'{'];
    let sending = tokio::spawn({
        let http = http.clone();
        let url = format!("{url}?attempt=1");
        async move {
            http.post(url)
                .header("x-custom", "kept")
                .header("cookie", "herald_console=operator-session")
                .body(body)
                .send()
                .await
                .expect("relay answers")
        }
    });
    let poll_path = format!("/api/v1/listen/{id}/request?wait=10");
    let (status, polled) = api.request(Method::GET, &poll_path, None, &[]).await;
    assert_eq!(status, 200);
    let relayed = &polled["data"][0];
    assert_eq!(relayed["method"], "POST");
    assert_eq!(relayed["query"], "attempt=1");
    let headers: Vec<(String, String)> =
        serde_json::from_value(relayed["headers"].clone()).expect("header pairs");
    assert!(headers.contains(&("x-custom".into(), "kept".into())));
    assert!(
        !headers
            .iter()
            .any(|(name, _)| ["host", "content-length", "cookie"].contains(&name.as_str())),
        "hop headers and this origin's cookies are not passed on: {headers:?}"
    );
    let engine = base64::engine::general_purpose::STANDARD;
    assert_eq!(
        engine
            .decode(relayed["body"].as_str().expect("body"))
            .expect("base64"),
        body
    );

    let request = relayed["id"].as_str().expect("request id");
    let reply_path = format!("/api/v1/listen/{id}/request/{request}/reply");
    let (status, error) = api
        .request(Method::POST, &reply_path, Some(json!({"status": 101})), &[])
        .await;
    assert_eq!(status, 422, "{error}");
    let (status, _) = api
        .request(
            Method::POST,
            &reply_path,
            Some(json!({"status": 200, "body": "not base64!"})),
            &[],
        )
        .await;
    assert_eq!(status, 422);
    let reply = json!({
        "status": 202,
        "headers": [
            ["x-local", "yes"],
            ["content-length", "999"],
            ["Set-Cookie", "herald_console=planted; Path=/console"],
            ["clear-site-data", "\"cookies\""],
            ["location", "https://elsewhere.example/"],
            ["content-type", "text/html"],
        ],
        "body": engine.encode("done"),
    });
    let (status, _) = api
        .request(Method::POST, &reply_path, Some(reply.clone()), &[])
        .await;
    assert_eq!(status, 204);
    let answer = sending.await.expect("sender joins");
    assert_eq!(answer.status(), 202);
    assert_eq!(answer.headers()["x-local"], "yes");
    // Served from the console's origin: it may neither set cookies there
    // nor run as a page.
    for acting in ["set-cookie", "clear-site-data", "location"] {
        assert!(answer.headers().get(acting).is_none(), "{acting} passed");
    }
    assert_eq!(answer.headers()["content-type"], "text/html");
    assert_eq!(
        answer.headers()["content-security-policy"],
        "sandbox; default-src 'none'"
    );
    assert_eq!(answer.headers()["x-content-type-options"], "nosniff");
    assert_eq!(answer.text().await.expect("body"), "done");
    // Answered once only.
    let (status, _) = api
        .request(Method::POST, &reply_path, Some(reply), &[])
        .await;
    assert_eq!(status, 404);

    // The same session can be taken back; ids it did not give cannot.
    let (status, again) = api
        .request(Method::POST, "/api/v1/listen", Some(json!({"id": id})), &[])
        .await;
    assert_eq!((status, again["url"].as_str()), (200, Some(url.as_str())));
    let (status, error) = api
        .request(
            Method::POST,
            "/api/v1/listen",
            Some(json!({"id": "lsn_guessed"})),
            &[],
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(error["detail"][0]["loc"], json!(["body", "id"]));

    // Polling and answering need a token; the relay does not.
    let anonymous = http
        .get(format!(
            "http://{}/api/v1/listen/{id}/request?wait=0",
            server.address
        ))
        .send()
        .await
        .expect("answers");
    assert_eq!(anonymous.status(), 401);

    let (status, _) = api
        .request(Method::DELETE, &format!("/api/v1/listen/{id}"), None, &[])
        .await;
    assert_eq!(status, 204);
    let closed = http.post(&url).body("{}").send().await.expect("relay");
    assert_eq!(closed.status(), 404);
    let (status, _) = api
        .request(
            Method::GET,
            &format!("/api/v1/listen/{id}/request?wait=0"),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404);
}
