//! Endpoint health: `410 Gone` disables, `Retry-After` is obeyed, an
//! endpoint failing for too long is disabled, the circuit breaker stops
//! hammering a dead host, and operational endpoints (created through the
//! official SDK) hear about it, signed like any delivery.

use std::time::{Duration, Instant};

use herald_delivery::HealthConfig;
use herald_test_support::{
    eventually, Behaviour, Received, Receiver, TestServer, TestServerOptions,
};
use serde_json::{json, Value};
use standardwebhooks::Webhook;

use crate::python_sdk::{printed, run_python};
use crate::DEADLINE;

/// Options whose breaker never opens, so health tests see every attempt.
fn without_breaker() -> TestServerOptions {
    TestServerOptions {
        health: HealthConfig {
            breaker_threshold: 1_000_000,
            ..HealthConfig::default()
        },
        ..TestServerOptions::default()
    }
}

/// Creates an operational endpoint delivering to `url`; answers its secret.
async fn operational_endpoint(server: &TestServer, url: &str, types: &[&str]) -> String {
    let created = server
        .api
        .post(
            "/api/v1/operational-webhook/endpoint",
            json!({ "url": url, "filterTypes": types }),
            201,
        )
        .await;
    let id = created["id"].as_str().expect("endpoint id");
    let secret = server
        .api
        .get(&format!("/api/v1/operational-webhook/endpoint/{id}/secret"))
        .await;
    secret["key"].as_str().expect("secret").to_owned()
}

/// The first operational event of `event_type` the receiver got, checked
/// against `secret` by the Standard Webhooks library.
fn operational_event(receiver: &Receiver, secret: &str, event_type: &str) -> Option<Value> {
    receiver
        .received()
        .into_iter()
        .find_map(|request: Received| {
            let body = request.json();
            if body["type"] != event_type {
                return None;
            }
            Webhook::new(secret)
                .expect("operational secret parses")
                .verify(&request.body, &request.headers)
                .expect("operational events are signed with the endpoint's secret");
            Some(body)
        })
}

async fn endpoint(server: &TestServer, app: &str, endpoint: &str) -> Value {
    server
        .api
        .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}"))
        .await
}

herald_test_support::test_on_both_backends! {
    async fn gone_disables_the_endpoint_and_tells_the_operator() {
        let server = TestServer::start_with(without_breaker()).await;
        let gone = Receiver::start(Behaviour::AlwaysFail { status: 410 }).await;
        let operator = Receiver::start(Behaviour::Accept).await;
        let secret = operational_endpoint(&server, &operator.url("ops"), &["endpoint.disabled"]).await;
        let app = server.api.create_app("Tenant").await;
        let (endpoint_id, _) = server
            .api
            .create_endpoint(&app, json!({ "url": gone.url("hook") }))
            .await;
        let msg = server.api.send(&app, "invoice.paid", json!({})).await;

        let event = eventually(
            "endpoint.disabled reaches the operator",
            DEADLINE,
            || async { operational_event(&operator, &secret, "endpoint.disabled") },
        )
        .await;
        assert_eq!(event["data"]["appId"], app.as_str());
        assert_eq!(event["data"]["endpointId"], endpoint_id.as_str());
        assert_eq!(event["data"]["trigger"], "automatic");
        assert!(event["data"]["failSince"].is_string(), "{event}");
        assert_eq!(
            endpoint(&server, &app, &endpoint_id).await["disabled"],
            true
        );
        // A 410 is final: one attempt, no retries.
        let attempts = server.api.attempts_of(&app, &msg).await;
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(attempts[0]["responseStatusCode"], 410);
        assert_eq!(gone.received().len(), 1);

        // Turning it back on is an operator's act: endpoint.enabled is raised
        // only for subscribers, the endpoint works again.
        server
            .api
            .request(
                reqwest::Method::PATCH,
                &format!("/api/v1/app/{app}/endpoint/{endpoint_id}"),
                Some(json!({ "disabled": false })),
                &[],
            )
            .await;
        assert_eq!(
            endpoint(&server, &app, &endpoint_id).await["disabled"],
            false
        );
    }
}

herald_test_support::test_on_both_backends! {
    async fn retry_after_delays_the_next_attempt() {
        let server = TestServer::start_with(without_breaker()).await;
        let busy = Receiver::start(Behaviour::RetryAfter {
            times: 1,
            status: 503,
            seconds: 2,
        })
        .await;
        let limited = Receiver::start(Behaviour::RetryAfter {
            times: 1,
            status: 429,
            seconds: 1,
        })
        .await;
        let app = server.api.create_app("Tenant").await;
        server
            .api
            .create_endpoint(&app, json!({ "url": busy.url("busy") }))
            .await;
        server
            .api
            .create_endpoint(&app, json!({ "url": limited.url("limited") }))
            .await;
        server.api.send(&app, "invoice.paid", json!({})).await;

        for (receiver, asked) in [(&busy, 2), (&limited, 1)] {
            let arrivals = eventually("the retry arrives", DEADLINE, || async {
                let received = receiver.received();
                (received.len() >= 2).then_some(received)
            })
            .await;
            // The schedule alone would retry after 10 ms.
            let gap = arrivals[1].at.duration_since(arrivals[0].at);
            assert!(
                gap >= Duration::from_secs(asked) - Duration::from_millis(20),
                "Retry-After: {asked} was not obeyed: retried after {gap:?}"
            );
        }
    }
}

herald_test_support::test_on_both_backends! {
    async fn an_endpoint_failing_for_the_configured_period_is_disabled() {
        let server = TestServer::start_with(TestServerOptions {
            health: HealthConfig {
                disable_after: Duration::from_secs(1),
                breaker_threshold: 1_000_000,
                ..HealthConfig::default()
            },
            ..TestServerOptions::default()
        })
        .await;
        let failing = Receiver::start(Behaviour::AlwaysFail { status: 500 }).await;
        let operator = Receiver::start(Behaviour::Accept).await;
        let secret = operational_endpoint(&server, &operator.url("ops"), &["endpoint.disabled"]).await;
        let app = server.api.create_app("Tenant").await;
        let (endpoint_id, _) = server
            .api
            .create_endpoint(&app, json!({ "url": failing.url("hook") }))
            .await;

        let started = Instant::now();
        let event = eventually("the failing endpoint is disabled", DEADLINE, || async {
            if let Some(event) = operational_event(&operator, &secret, "endpoint.disabled") {
                return Some(event);
            }
            // Keep it failing: every message fails all its attempts quickly.
            server.api.send(&app, "invoice.paid", json!({})).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            None
        })
        .await;
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "disabled before failing for the configured second"
        );
        assert_eq!(event["data"]["endpointId"], endpoint_id.as_str());
        assert_eq!(event["data"]["trigger"], "automatic");
        assert_eq!(
            endpoint(&server, &app, &endpoint_id).await["disabled"],
            true
        );
    }
}

herald_test_support::test_on_both_backends! {
    async fn an_open_circuit_stops_attempts_without_using_up_retries() {
        let server = TestServer::start_with(TestServerOptions {
            per_endpoint_concurrency: 1,
            health: HealthConfig {
                breaker_threshold: 3,
                breaker_cooldown: Duration::from_secs(600),
                ..HealthConfig::default()
            },
            ..TestServerOptions::default()
        })
        .await;
        let dead = Receiver::start(Behaviour::AlwaysFail { status: 500 }).await;
        let app = server.api.create_app("Tenant").await;
        server
            .api
            .create_endpoint(&app, json!({ "url": dead.url("hook") }))
            .await;
        let mut messages = Vec::new();
        for n in 0..10 {
            messages.push(
                server
                    .api
                    .send(&app, "invoice.paid", json!({ "n": n }))
                    .await,
            );
        }
        // Every delivery ends up waiting for the circuit to close, far ahead.
        eventually("every delivery waits for the circuit", DEADLINE, || async {
            let horizon = chrono::Utc::now() + chrono::Duration::seconds(300);
            for msg in &messages {
                let destinations = server.api.destinations_of(&app, msg).await;
                let waiting = destinations.iter().all(|destination| {
                    destination["status"] == 1
                        && destination["nextAttempt"]
                            .as_str()
                            .and_then(|at| chrono::DateTime::parse_from_rfc3339(at).ok())
                            .is_some_and(|at| at > horizon)
                });
                if !waiting {
                    return None;
                }
            }
            Some(())
        })
        .await;
        // Three failures open it. The breaker hears of each answer before the
        // endpoint's slot (one here) is freed, however slow the commit of its
        // outcome: the claims queued behind them are put off, not sent.
        let attempts = dead.received().len();
        assert_eq!(
            attempts, 3,
            "{attempts} requests reached a dead endpoint behind an open circuit"
        );
    }
}

herald_test_support::test_on_both_backends! {
    async fn exhausted_retries_reach_an_operational_endpoint_created_with_the_official_sdk() {
        let server = TestServer::start_with(without_breaker()).await;
        let failing = Receiver::start(Behaviour::AlwaysFail { status: 500 }).await;
        let operator = Receiver::start(Behaviour::Accept).await;
        let stdout = run_python(
            &server,
            "svix_python_operational.py",
            &[
                ("HERALD_RECEIVER_URL", operator.url("ops")),
                ("HERALD_FAILING_URL", failing.url("hook")),
            ],
        )
        .await;
        let (secret, msg) = (
            printed(&stdout, "operational-secret "),
            printed(&stdout, "exhausted "),
        );

        let event = eventually("message.attempt.exhausted arrives", DEADLINE, || async {
            operational_event(&operator, &secret, "message.attempt.exhausted")
        })
        .await;
        assert_eq!(event["data"]["msgId"], msg.as_str());
        assert_eq!(event["data"]["lastAttempt"]["responseStatusCode"], 500);
        // The test schedule has three retries after the first attempt.
        assert_eq!(failing.received().len(), 4);
        let request = operator
            .received()
            .into_iter()
            .find(|request| request.json()["type"] == "message.attempt.exhausted")
            .expect("the event request");
        assert_eq!(
            request.header("x-team"),
            "payments",
            "the SDK set this header"
        );
        // Only the subscribed type was sent (no failing/disabled events).
        assert!(operator
            .received()
            .iter()
            .all(|request| request.json()["type"] == "message.attempt.exhausted"));
    }
}

herald_test_support::test_on_both_backends! {
    async fn a_delivery_failing_four_times_then_succeeding_raises_failing_then_recovered() {
        let server = TestServer::start_with(TestServerOptions {
            retry_schedule: herald_core::RetrySchedule::new(vec![Duration::from_millis(10); 6], 0.0),
            ..without_breaker()
        })
        .await;
        let flaky = Receiver::start(Behaviour::FailFirst {
            times: 4,
            status: 500,
        })
        .await;
        let operator = Receiver::start(Behaviour::Accept).await;
        let secret = operational_endpoint(
            &server,
            &operator.url("ops"),
            &["message.attempt.failing", "message.attempt.recovered"],
        )
        .await;
        let app = server.api.create_app("Tenant").await;
        server
            .api
            .create_endpoint(&app, json!({ "url": flaky.url("hook") }))
            .await;
        let msg = server.api.send(&app, "invoice.paid", json!({})).await;

        // The two events are separate messages with deliveries of their own,
        // so either may arrive first.
        let (failing, recovered) = eventually("failing and recovered arrive", DEADLINE, || async {
            Some((
                operational_event(&operator, &secret, "message.attempt.failing")?,
                operational_event(&operator, &secret, "message.attempt.recovered")?,
            ))
        })
        .await;
        assert_eq!(failing["data"]["msgId"], msg.as_str());
        assert_eq!(failing["data"]["lastAttempt"]["responseStatusCode"], 500);
        assert_eq!(recovered["data"]["msgId"], msg.as_str());
        assert_eq!(recovered["data"]["lastAttempt"]["responseStatusCode"], 200);
        assert_eq!(flaky.received().len(), 5);
        assert_eq!(operator.received().len(), 2, "one of each, nothing else");
    }
}

herald_test_support::test_on_both_backends! {
    async fn the_operational_app_is_herald_own() {
        let server = TestServer::start().await;
        let operator = Receiver::start(Behaviour::Accept).await;
        operational_endpoint(&server, &operator.url("ops"), &["endpoint.disabled"]).await;
        let uid = herald_delivery::operational::OPERATIONAL_APP_UID;
        let (status, body) = server
            .api
            .request(
                reqwest::Method::POST,
                "/api/v1/app",
                Some(json!({ "name": "Impostor", "uid": uid })),
                &[],
            )
            .await;
        assert_eq!(status, 409, "{body}");
        for method in [reqwest::Method::DELETE, reqwest::Method::PATCH] {
            let (status, body) = server
                .api
                .request(
                    method.clone(),
                    &format!("/api/v1/app/{uid}"),
                    Some(json!({})),
                    &[],
                )
                .await;
            assert_eq!(status, 409, "{method} on the operational app: {body}");
        }
        let listed = server.api.get("/api/v1/operational-webhook/endpoint").await;
        assert_eq!(
            listed["data"].as_array().map(Vec::len),
            Some(1),
            "still there"
        );
    }
}

herald_test_support::test_on_both_backends! {
    async fn the_operator_hears_of_endpoint_changes_and_finished_tasks() {
        let server = TestServer::start().await;
        let operator = Receiver::start(Behaviour::Accept).await;
        let kinds = [
            "endpoint.created",
            "endpoint.updated",
            "endpoint.deleted",
            "background_task.finished",
        ];
        let secret = operational_endpoint(&server, &operator.url("ops"), &kinds).await;
        let api = &server.api;
        let app = api.create_app("Tenant").await;
        let (endpoint_id, _) = api
            .create_endpoint(&app, json!({ "url": "https://receiver.example/hook" }))
            .await;
        let path = format!("/api/v1/app/{app}/endpoint/{endpoint_id}");
        let (status, _) = api
            .request(reqwest::Method::PATCH, &path, Some(json!({"description": "billing"})), &[])
            .await;
        assert_eq!(status, 200);
        let since = "2000-01-01T00:00:00Z";
        let recovered = api
            .post(&format!("{path}/recover"), json!({ "since": since }), 202)
            .await;
        let (status, _) = api.request(reqwest::Method::DELETE, &path, None, &[]).await;
        assert_eq!(status, 204);

        for kind in ["endpoint.created", "endpoint.updated", "endpoint.deleted"] {
            let event = eventually(&format!("{kind} reaches the operator"), DEADLINE, || async {
                operational_event(&operator, &secret, kind)
            })
            .await;
            assert_eq!(event["data"]["appId"], app.as_str(), "{event}");
            assert_eq!(event["data"]["endpointId"], endpoint_id.as_str(), "{event}");
        }
        let finished = eventually("background_task.finished reaches the operator", DEADLINE, || async {
            operational_event(&operator, &secret, "background_task.finished")
        })
        .await;
        assert_eq!(finished["data"]["taskId"], recovered["id"], "{finished}");
        assert_eq!(finished["data"]["task"], "endpoint.recover");
        assert_eq!(finished["data"]["status"], "finished");
        assert_eq!(finished["data"]["data"], json!({"messagesSent": 0}));
    }
}
