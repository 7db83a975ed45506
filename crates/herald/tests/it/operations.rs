//! What operators rely on: `/metrics` in the Prometheus text format with
//! counters that match what happened, readiness, retention, and a SIGTERM
//! under load that loses nothing acknowledged.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald_test_support::{eventually, Api, Behaviour, Receiver, TestServer, TestServerOptions};
use serde_json::json;

use crate::binary::Herald;
use crate::DEADLINE;

/// Parses a scrape with an independent Prometheus text parser.
pub(crate) async fn scrape(base: &str) -> prometheus_parse::Scrape {
    let url = format!("{base}/metrics");
    let anonymous = reqwest::get(&url).await.expect("metrics answer");
    assert_eq!(
        anonymous.status(),
        401,
        "metrics name tenants: a token is needed"
    );
    let response = reqwest::Client::new()
        .get(&url)
        .bearer_auth(herald_test_support::TEST_TOKEN)
        .send()
        .await
        .expect("metrics answer");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("metrics body");
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("/metrics parses as Prometheus text")
}

/// The value of `name` whose labels include every pair of `labels`.
pub(crate) fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|sample| sample.metric == name)
        .filter(|sample| {
            labels
                .iter()
                .all(|(key, wanted)| sample.labels.get(key) == Some(*wanted))
        })
        .map(|sample| match sample.value {
            prometheus_parse::Value::Counter(value)
            | prometheus_parse::Value::Gauge(value)
            | prometheus_parse::Value::Untyped(value) => value,
            _ => 0.0,
        })
        .sum()
}

/// An app with an endpoint that accepts `invoice.paid` and one at a closed
/// port for `invoice.failed`; answers the app, the live receiver and the
/// dead endpoint's id.
async fn fine_and_down_endpoints(server: &TestServer) -> (String, Receiver, String) {
    let fine = Receiver::start(Behaviour::Accept).await;
    let down = Receiver::unused_address().await;
    let app = server.api.create_app("Tenant").await;
    server
        .api
        .create_endpoint(
            &app,
            json!({ "url": fine.url("fine"), "filterTypes": ["invoice.paid"] }),
        )
        .await;
    let (down_endpoint, _) = server
        .api
        .create_endpoint(
            &app,
            json!({ "url": format!("http://{down}/hook"), "filterTypes": ["invoice.failed"] }),
        )
        .await;
    (app, fine, down_endpoint)
}

herald_test_support::test_on_both_backends! {
    async fn metrics_parse_and_count_what_happened() {
        // After its first failure, a delivery to the dead endpoint waits ten
        // minutes for its retry, so its backlog holds still to be measured.
        let server = TestServer::start_with(TestServerOptions {
            retry_schedule: herald_core::RetrySchedule::new(vec![Duration::from_secs(600)], 0.0),
            ..TestServerOptions::default()
        })
        .await;
        let (app, _fine, down_endpoint) = fine_and_down_endpoints(&server).await;
        for n in 0..7 {
            server
                .api
                .send(&app, "invoice.paid", json!({ "n": n }))
                .await;
        }
        for n in 0..3 {
            server
                .api
                .send(&app, "invoice.failed", json!({ "n": n }))
                .await;
        }
        // An inbound request with a bad signature is rejected and counted.
        let source = server
            .api
            .post(
                "/ingest/api/v1/source",
                json!({ "name": "Stripe", "type": "stripe", "config": { "secret": "whsec_c3RyaXBlLXRlc3Qtc2VjcmV0" } }),
                201,
            )
            .await;
        let rejected = reqwest::Client::new()
            .post(source["ingestUrl"].as_str().expect("ingest url"))
            .header("stripe-signature", "t=1,v1=00")
            .body("{}")
            .send()
            .await
            .expect("inbound request");
        assert_eq!(rejected.status(), 401);

        // Deliveries to the fine endpoint and attempts at the dead one run
        // independently, so both are waited for before anything is compared.
        let scraped = eventually(
            "seven deliveries and three failed attempts are counted",
            DEADLINE,
            || async {
                let scraped = scrape(&server.api.base).await;
                (value(
                    &scraped,
                    "herald_deliveries_total",
                    &[("outcome", "delivered")],
                ) >= 7.0
                    && value(&scraped, "herald_attempts_total", &[("outcome", "failure")]) >= 3.0)
                    .then_some(scraped)
            },
        )
        .await;
        assert_eq!(
            value(
                &scraped,
                "herald_messages_accepted_total",
                &[("source", "api")]
            ),
            10.0
        );
        assert_eq!(
            value(
                &scraped,
                "herald_deliveries_total",
                &[("outcome", "delivered")]
            ),
            7.0
        );
        assert_eq!(
            value(&scraped, "herald_attempts_total", &[("outcome", "success")]),
            7.0
        );
        assert_eq!(
            value(&scraped, "herald_attempts_total", &[("outcome", "failure")]),
            3.0,
            "one failed attempt per message to the dead endpoint, its retry ten minutes away"
        );
        assert_eq!(
            value(
                &scraped,
                "herald_inbound_requests_total",
                &[("outcome", "rejected"), ("reason", "bad_signature")]
            ),
            1.0,
            "{:?}",
            scraped
                .samples
                .iter()
                .filter(|s| s.metric.starts_with("herald_inbound"))
                .collect::<Vec<_>>()
        );
        assert!(
            value(&scraped, "herald_attempt_duration_seconds_count", &[]) >= 10.0,
            "the latency histogram counts every attempt"
        );
        assert!(
            value(
                &scraped,
                "herald_store_operation_duration_seconds_count",
                &[("operation", "create_message")]
            ) >= 10.0
        );

        // The dead endpoint's backlog shows once its retries are pending.
        let scraped = eventually(
            "the backlog gauge shows the dead endpoint",
            DEADLINE,
            || async {
                let scraped = scrape(&server.api.base).await;
                (value(
                    &scraped,
                    "herald_queue_depth",
                    &[("endpoint_id", &down_endpoint)],
                ) == 3.0)
                    .then_some(scraped)
            },
        )
        .await;
        assert!(
            value(
                &scraped,
                "herald_backlog_age_seconds",
                &[("endpoint_id", &down_endpoint)]
            ) >= 0.0
        );
    }
}

herald_test_support::test_on_both_backends! {
    async fn readiness_answers_while_the_database_does() {
        let server = TestServer::start().await;
        let response = reqwest::get(format!("{}/api/v1/health/ready", server.api.base))
            .await
            .expect("readiness answers");
        assert_eq!(response.status(), 200);
    }
}

herald_test_support::test_on_both_backends! {
    async fn finished_messages_past_retention_are_purged_and_owed_ones_kept() {
        let server = TestServer::start_with(TestServerOptions {
            retention: Some(Duration::from_millis(500)),
            retry_schedule: herald_core::RetrySchedule::new(vec![Duration::from_secs(600)], 0.0),
            ..TestServerOptions::default()
        })
        .await;
        let (app, fine, _) = fine_and_down_endpoints(&server).await;
        let delivered = server.api.send(&app, "invoice.paid", json!({})).await;
        let owed = server.api.send(&app, "invoice.failed", json!({})).await;
        eventually("the delivered message is purged", DEADLINE, || async {
            let (status, _) = server
                .api
                .request(
                    reqwest::Method::GET,
                    &format!("/api/v1/app/{app}/msg/{delivered}"),
                    None,
                    &[],
                )
                .await;
            (status == 404).then_some(())
        })
        .await;
        assert_eq!(fine.received().len(), 1);
        // The owed message (waiting ten minutes for a retry) stays, its old
        // attempt goes.
        let message = server
            .api
            .get(&format!("/api/v1/app/{app}/msg/{owed}"))
            .await;
        assert_eq!(message["id"], owed.as_str());
        // Its attempt was made (the log may already have lost it) ...
        eventually("the owed message's attempt is counted", DEADLINE, || async {
            let scraped = scrape(&server.api.base).await;
            (value(&scraped, "herald_attempts_total", &[("outcome", "failure")]) >= 1.0)
                .then_some(())
        })
        .await;
        // ... and is gone from the log.
        eventually(
            "the owed message's old attempt is purged",
            DEADLINE,
            || async {
                server
                    .api
                    .attempts_of(&app, &owed)
                    .await
                    .is_empty()
                    .then_some(())
            },
        )
        .await;
    }
}

// On the binary's default backend (SQLite): the shutdown path is the
// engine's and the server's, whatever stores the data; the cluster test
// kills PostgreSQL nodes.
#[tokio::test]
async fn sigterm_under_load_exits_cleanly_and_loses_nothing_acknowledged() {
    const TOKEN: &str = "sigterm-token";
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("herald.db");
    let receiver = Receiver::start(Behaviour::Slow {
        delay: Duration::from_millis(50),
    })
    .await;
    let first = Herald::start(&database, &[], &[("HERALD_ADMIN_TOKEN", TOKEN)]);
    let api = Api::new(first.base.clone(), TOKEN);
    let app = api.create_app("Tenant").await;
    api.create_endpoint(&app, json!({ "url": receiver.url("hook") }))
        .await;

    // Four producers post until the server stops answering.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let mut producers = Vec::new();
    for producer in 0..4 {
        let (base, app, acknowledged) = (first.base.clone(), app.clone(), acknowledged.clone());
        producers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for n in 0.. {
                let sent = client
                    .post(format!("{base}/api/v1/app/{app}/msg"))
                    .bearer_auth(TOKEN)
                    .json(
                        &json!({ "eventType": "load.test", "payload": { "p": producer, "n": n } }),
                    )
                    .send()
                    .await;
                let Ok(response) = sent else { break };
                if response.status() != 202 {
                    break;
                }
                let Ok(body) = response.json::<serde_json::Value>().await else {
                    break;
                };
                if let Some(id) = body["id"].as_str() {
                    acknowledged.lock().expect("lock").push(id.to_owned());
                }
            }
        }));
    }
    eventually("load is flowing", DEADLINE, || async {
        (acknowledged.lock().expect("lock").len() >= 200).then_some(())
    })
    .await;

    let pid = first.child.id().to_string();
    let signalled = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(signalled.success());
    let child = Arc::new(Mutex::new(first));
    let status = eventually("herald exits after SIGTERM", DEADLINE, || {
        let child = child.clone();
        async move {
            child
                .lock()
                .expect("lock")
                .child
                .try_wait()
                .expect("wait on herald")
        }
    })
    .await;
    assert!(
        status.success(),
        "SIGTERM must end in a clean exit, got {status}"
    );
    for producer in producers {
        producer.await.expect("producer ends");
    }

    // Everything acknowledged before the stop is delivered after a restart.
    let acknowledged: HashSet<String> =
        acknowledged.lock().expect("lock").iter().cloned().collect();
    let _second = Herald::start(&database, &[], &[("HERALD_ADMIN_TOKEN", TOKEN)]);
    receiver.set_behaviour(Behaviour::Accept);
    eventually(
        "every acknowledged message arrives",
        Duration::from_secs(60),
        || async {
            let seen: HashSet<String> = receiver.count_by_message().into_keys().collect();
            acknowledged.is_subset(&seen).then_some(())
        },
    )
    .await;
}

// Logging does not depend on the backend: one run on the default.
#[tokio::test]
async fn json_logs_are_one_object_per_line_without_secrets() {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().expect("temp dir");
    const TOKEN: &str = "json-log-token-must-not-appear";
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--database")
        .arg(dir.path().join("herald.db"))
        .env("HERALD_ADMIN_TOKEN", TOKEN)
        .env("HERALD_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("herald starts");
    let stderr = child.stderr.take().expect("stderr is piped");
    let started = BufReader::new(stderr)
        .lines()
        .map(|line| line.expect("stderr is readable"))
        .find_map(|line| {
            assert!(!line.contains(TOKEN), "a secret reached the log: {line}");
            let entry: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
            (entry["fields"]["message"] == "herald started").then_some(entry)
        })
        .expect("herald logs its start");
    assert_eq!(started["level"], "INFO");
    assert!(started["timestamp"].is_string(), "{started}");
    assert!(started["fields"]["address"].is_string(), "{started}");
    let _ = child.kill();
    let _ = child.wait();
}
