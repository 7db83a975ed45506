//! The delivery engine seen from the outside: fan-out, filters, retries,
//! failure, resend, recover, isolation.

use std::sync::Arc;
use std::time::Duration;

use herald_core::clock::ManualClock;
use herald_core::Clock;
use herald_test_support::{eventually, Behaviour, Receiver, TestServer, TestServerOptions};
use reqwest::Method;
use serde_json::{json, Value};

use crate::DEADLINE;

/// Waits until the message's delivery to `endpoint` reaches `status`
/// (0 success, 2 fail) and answers that destination entry.
async fn wait_for_status(
    server: &TestServer,
    app: &str,
    msg: &str,
    endpoint: &str,
    status: i64,
) -> Value {
    eventually(
        &format!("delivery of {msg} reaches status {status}"),
        DEADLINE,
        || async {
            server
                .api
                .destinations_of(app, msg)
                .await
                .into_iter()
                .find(|destination| {
                    destination["id"] == endpoint && destination["status"] == status
                })
        },
    )
    .await
}

herald_test_support::test_on_both_backends! {
    async fn endpoints_receive_only_the_types_and_channels_they_subscribe_to() {
        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::Accept).await;
        let api = &server.api;
        let app = api.create_app("filters").await;
        api.create_endpoint(&app, json!({"url": receiver.url("all")}))
            .await;
        api.create_endpoint(
            &app,
            json!({"url": receiver.url("paid"), "eventTypes": ["invoice.paid"]}),
        )
        .await;
        api.create_endpoint(&app, json!({"url": receiver.url("eu"), "channels": ["eu"]}))
            .await;
        api.create_endpoint(&app, json!({"url": receiver.url("off"), "disabled": true}))
            .await;

        let post = |body: Value| {
            let path = format!("/api/v1/app/{app}/msg");
            async move { api.post(&path, body, 202).await }
        };
        post(json!({"eventType": "invoice.paid", "payload": {"n": 1}})).await;
        post(json!({"eventType": "invoice.sent", "payload": {"n": 2}, "channels": ["eu"]})).await;
        post(json!({"eventType": "invoice.sent", "payload": {"n": 3}, "channels": ["us"]})).await;

        eventually("every matching delivery arrives", DEADLINE, || async {
            (receiver.received().len() >= 5).then_some(())
        })
        .await;
        let numbers = |path: &str| {
            let mut numbers: Vec<i64> = receiver
                .received_on(path)
                .iter()
                .map(|request| request.json()["n"].as_i64().expect("n"))
                .collect();
            numbers.sort_unstable();
            numbers
        };
        assert_eq!(numbers("all"), vec![1, 2, 3]);
        assert_eq!(numbers("paid"), vec![1]);
        assert_eq!(numbers("eu"), vec![2]);
        assert!(numbers("off").is_empty(), "disabled endpoints get nothing");
    }
}

herald_test_support::test_on_both_backends! {
    async fn a_failing_endpoint_is_retried_until_it_succeeds() {
        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::FailFirst {
            times: 2,
            status: 503,
        })
        .await;
        let api = &server.api;
        let app = api.create_app("flaky").await;
        let (endpoint, _) = api
            .create_endpoint(&app, json!({"url": receiver.url("hook")}))
            .await;
        let msg = api.send(&app, "a.b", json!({})).await;

        let destination = wait_for_status(&server, &app, &msg, &endpoint, 0).await;
        assert_eq!(destination["nextAttempt"], Value::Null);
        let attempts = api.attempts_of(&app, &msg).await;
        let codes: Vec<_> = attempts
            .iter()
            .map(|attempt| attempt["responseStatusCode"].clone())
            .collect();
        assert_eq!(
            codes,
            vec![json!(200), json!(503), json!(503)],
            "newest first"
        );
        assert_eq!(attempts[0]["status"], 0);
        assert_eq!(attempts[1]["status"], 2);
        assert_eq!(attempts[1]["triggerType"], 0);
        assert_eq!(receiver.received().len(), 3);

        // Svix's filters on the attempt lists narrow them; none is ignored.
        let count = |query: &str| {
            let path = format!("/api/v1/app/{app}/attempt/endpoint/{endpoint}?{query}");
            async move { api.get(&path).await["data"].as_array().expect("data").len() }
        };
        assert_eq!(count("status_code_class=500").await, 2);
        assert_eq!(count("status_code_class=200").await, 1);
        assert_eq!(count("status_code_class=400").await, 0);
        assert_eq!(count("tag=none").await, 0);
        assert_eq!(count("channel=none").await, 0);
        let sent = |query: &str| {
            let path = format!("/api/v1/app/{app}/endpoint/{endpoint}/msg?{query}");
            async move { api.get(&path).await["data"].as_array().expect("data").len() }
        };
        assert_eq!(sent("event_types=a.b").await, 1);
        assert_eq!(sent("event_types=c.d").await, 0);
        assert_eq!(sent("channel=none").await, 0);
        assert_eq!(sent("before=2000-01-01T00:00:00Z").await, 0);
        let (status, refused) = api
            .request(
                Method::GET,
                &format!("/api/v1/app/{app}/attempt/msg/{msg}?status_code_class=250"),
                None,
                &[],
            )
            .await;
        assert_eq!(status, 422, "{refused}");
    }
}

herald_test_support::test_on_both_backends! {
    async fn an_endpoint_that_always_fails_ends_in_fail_with_every_attempt_logged() {
        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::AlwaysFail { status: 500 }).await;
        let api = &server.api;
        let app = api.create_app("broken").await;
        let (endpoint, _) = api
            .create_endpoint(&app, json!({"url": receiver.url("hook")}))
            .await;
        let msg = api.send(&app, "a.b", json!({})).await;

        let destination = wait_for_status(&server, &app, &msg, &endpoint, 2).await;
        assert_eq!(destination["nextAttempt"], Value::Null, "no retry is left");
        let attempts = api.attempts_of(&app, &msg).await;
        assert_eq!(attempts.len(), 4, "the first attempt and three retries");
        assert!(attempts
            .iter()
            .all(|attempt| attempt["status"] == 2 && attempt["responseStatusCode"] == 500));
        let by_endpoint = api
            .get(&format!("/api/v1/app/{app}/attempt/endpoint/{endpoint}"))
            .await;
        assert_eq!(by_endpoint["data"].as_array().expect("data").len(), 4);
        let stats = api
            .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}/stats"))
            .await;
        assert_eq!(stats["fail"], 1);
        assert_eq!(stats["success"], 0);
    }
}

herald_test_support::test_on_both_backends! {
    async fn unreachable_endpoints_log_the_connection_error() {
        let server = TestServer::start().await;
        let address = Receiver::unused_address().await;
        let api = &server.api;
        let app = api.create_app("unreachable").await;
        let (endpoint, _) = api
            .create_endpoint(&app, json!({"url": format!("http://{address}/hook")}))
            .await;
        let msg = api.send(&app, "a.b", json!({})).await;
        wait_for_status(&server, &app, &msg, &endpoint, 2).await;
        let attempts = api.attempts_of(&app, &msg).await;
        assert_eq!(attempts[0]["responseStatusCode"], 0);
        assert_eq!(attempts[0]["errorKind"], "connection_refused");
    }
}

herald_test_support::test_on_both_backends! {
    async fn resend_makes_one_manual_attempt() {
        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::AlwaysFail { status: 500 }).await;
        let api = &server.api;
        let app = api.create_app("resend").await;
        let (endpoint, _) = api
            .create_endpoint(&app, json!({"url": receiver.url("hook")}))
            .await;
        let msg = api.send(&app, "a.b", json!({"resent": true})).await;
        wait_for_status(&server, &app, &msg, &endpoint, 2).await;

        receiver.set_behaviour(Behaviour::Accept);
        let answer = api
            .post(
                &format!("/api/v1/app/{app}/msg/{msg}/endpoint/{endpoint}/resend"),
                json!(null),
                202,
            )
            .await;
        assert_eq!(answer, json!({}));
        wait_for_status(&server, &app, &msg, &endpoint, 0).await;
        let attempts = api.attempts_of(&app, &msg).await;
        assert_eq!(attempts.len(), 5);
        assert_eq!(
            attempts[0]["triggerType"], 1,
            "the resend is a manual attempt"
        );
        assert_eq!(attempts[0]["status"], 0);
    }
}

herald_test_support::test_on_both_backends! {
    async fn an_idempotency_key_makes_a_retried_create_return_the_first_message() {
        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::Accept).await;
        let api = &server.api;
        let app = api.create_app("idempotent").await;
        api.create_endpoint(&app, json!({"url": receiver.url("hook")}))
            .await;
        let path = format!("/api/v1/app/{app}/msg");
        let body = json!({"eventType": "a.b", "payload": {"once": true}});
        let (status, first) = api
            .request(
                Method::POST,
                &path,
                Some(body.clone()),
                &[("idempotency-key", "key-1")],
            )
            .await;
        assert_eq!(status, 202);
        let (status, second) = api
            .request(
                Method::POST,
                &path,
                Some(body),
                &[("idempotency-key", "key-1")],
            )
            .await;
        assert_eq!(status, 202);
        assert_eq!(first["id"], second["id"]);
        assert_eq!(first, second, "the same answer");
        eventually("the delivery arrives", DEADLINE, || async {
            (!receiver.received().is_empty()).then_some(())
        })
        .await;
        let list = api.get(&path).await;
        assert_eq!(list["data"].as_array().expect("data").len(), 1);
        // Give a duplicate delivery every chance to show up before counting.
        let msg = first["id"].as_str().expect("id");
        eventually("the delivery is logged", DEADLINE, || async {
            (api.attempts_of(&app, msg).await.len() == 1).then_some(())
        })
        .await;
        assert_eq!(receiver.received().len(), 1);
    }
}

herald_test_support::test_on_both_backends! {
    async fn messages_are_found_by_event_id() {
        let server = TestServer::start().await;
        let api = &server.api;
        let app = api.create_app("event-ids").await;
        let sent = api
            .post(
                &format!("/api/v1/app/{app}/msg"),
                json!({"eventType": "a.b", "payload": {"x": 1}, "eventId": "evt-77"}),
                202,
            )
            .await;
        let found = api.get(&format!("/api/v1/app/{app}/msg/evt-77")).await;
        assert_eq!(found["id"], sent["id"]);
        assert_eq!(found["payload"], json!({"x": 1}));
        let without = api
            .get(&format!("/api/v1/app/{app}/msg/evt-77?with_content=false"))
            .await;
        assert_eq!(without["payload"], json!({}));
    }
}

herald_test_support::test_on_both_backends! {
    async fn send_example_reaches_only_that_endpoint() {
        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::Accept).await;
        let api = &server.api;
        let app = api.create_app("examples").await;
        api.post(
            "/api/v1/event-type",
            json!({"name": "order.placed", "description": "d", "schemas": {"1": {"type": "object", "examples": [{"order": 7}]}}}),
            201,
        )
        .await;
        let (target, _) = api
            .create_endpoint(&app, json!({"url": receiver.url("target")}))
            .await;
        api.create_endpoint(&app, json!({"url": receiver.url("other")}))
            .await;
        let message = api
            .post(
                &format!("/api/v1/app/{app}/endpoint/{target}/send-example"),
                json!({"eventType": "order.placed"}),
                202,
            )
            .await;
        assert_eq!(message["eventType"], "order.placed");
        let request = eventually("the example arrives", DEADLINE, || async {
            receiver.received_on("target").into_iter().next()
        })
        .await;
        assert_eq!(request.json(), json!({"order": 7}));
        wait_for_status(
            &server,
            &app,
            message["id"].as_str().expect("id"),
            &target,
            0,
        )
        .await;
        assert!(receiver.received_on("other").is_empty());
    }
}

herald_test_support::test_on_both_backends! {
    async fn recover_requeues_failed_deliveries() {
        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::AlwaysFail { status: 500 }).await;
        let api = &server.api;
        let app = api.create_app("recover").await;
        let (endpoint, _) = api
            .create_endpoint(&app, json!({"url": receiver.url("hook")}))
            .await;
        let first = api.send(&app, "a.b", json!({"n": 1})).await;
        let second = api.send(&app, "a.b", json!({"n": 2})).await;
        wait_for_status(&server, &app, &first, &endpoint, 2).await;
        wait_for_status(&server, &app, &second, &endpoint, 2).await;

        receiver.set_behaviour(Behaviour::Accept);
        let task = api
            .post(
                &format!("/api/v1/app/{app}/endpoint/{endpoint}/recover"),
                json!({"since": "2000-01-01T00:00:00Z"}),
                202,
            )
            .await;
        assert_eq!(task["task"], "endpoint.recover");
        wait_for_status(&server, &app, &first, &endpoint, 0).await;
        wait_for_status(&server, &app, &second, &endpoint, 0).await;
    }
}

herald_test_support::test_on_both_backends! {
    async fn a_deleted_endpoint_stops_being_retried() {
        let server = TestServer::start_with(TestServerOptions {
            retry_schedule: herald_core::RetrySchedule::new(vec![Duration::from_secs(3600)], 0.0),
            ..TestServerOptions::default()
        })
        .await;
        let receiver = Receiver::start(Behaviour::AlwaysFail { status: 500 }).await;
        let api = &server.api;
        let app = api.create_app("deleted").await;
        let (endpoint, _) = api
            .create_endpoint(&app, json!({"url": receiver.url("hook")}))
            .await;
        let msg = api.send(&app, "a.b", json!({})).await;
        eventually("the first attempt is logged", DEADLINE, || async {
            (api.attempts_of(&app, &msg).await.len() == 1).then_some(())
        })
        .await;
        wait_for_status(&server, &app, &msg, &endpoint, 1).await;
        let (status, _) = api
            .request(
                Method::DELETE,
                &format!("/api/v1/app/{app}/endpoint/{endpoint}"),
                None,
                &[],
            )
            .await;
        assert_eq!(status, 204);
        let stats = api
            .get(&format!("/api/v1/app/{app}/attempt/msg/{msg}"))
            .await;
        assert_eq!(
            stats["data"].as_array().expect("data").len(),
            1,
            "the attempt log stays"
        );
        assert!(api.destinations_of(&app, &msg).await.is_empty());
    }
}

herald_test_support::test_on_both_backends! {
    async fn a_slow_endpoint_does_not_hold_up_the_others() {
        let server = TestServer::start_with(TestServerOptions {
            per_endpoint_concurrency: 1,
            request_timeout: Duration::from_secs(90),
            ..TestServerOptions::default()
        })
        .await;
        // Slower than the test's whole deadline, so its first request is
        // still open whatever the fast endpoint's pace.
        let slow = Receiver::start(Behaviour::Slow {
            delay: Duration::from_secs(60),
        })
        .await;
        let fast = Receiver::start(Behaviour::Accept).await;
        let api = &server.api;
        let app = api.create_app("isolation").await;
        api.create_endpoint(&app, json!({"url": slow.url("slow")}))
            .await;
        api.create_endpoint(&app, json!({"url": fast.url("fast")}))
            .await;
        for index in 0..20 {
            api.send(&app, "a.b", json!({"n": index})).await;
        }
        eventually("the fast endpoint gets all 20", DEADLINE, || async {
            (fast.received().len() == 20).then_some(())
        })
        .await;
        assert!(
            slow.received().len() <= 1,
            "the slow endpoint is limited to one attempt at a time, got {}",
            slow.received().len()
        );
    }
}

herald_test_support::test_on_both_backends! {
    async fn claims_queued_behind_an_endpoint_that_turned_slow_are_handed_back_not_lost() {
        let server = TestServer::start_with(TestServerOptions {
            per_endpoint_concurrency: 1,
            // Claims wait at most two timeouts (2 s) for the endpoint.
            request_timeout: Duration::from_secs(1),
            // Any pace a loopback receiver has, even on a loaded machine,
            // gets the deepest queue.
            claim_ahead: Some(Duration::from_secs(10)),
            health: herald_delivery::HealthConfig {
                breaker_threshold: u32::MAX,
                ..herald_delivery::HealthConfig::default()
            },
            ..TestServerOptions::default()
        })
        .await;
        // Fast at first, so the endpoint is claimed many rounds deep; then
        // three requests in a row run into the timeout, and the claims
        // queued behind them wait past the gate's limit.
        let receiver = Receiver::start(Behaviour::Stall {
            after: 3,
            times: 3,
            delay: Duration::from_secs(30),
        })
        .await;
        let api = &server.api;
        let app = api.create_app("turned-slow").await;
        api.create_endpoint(&app, json!({"url": receiver.url("hook")}))
            .await;
        const MESSAGES: usize = 24;
        let mut messages = Vec::new();
        for index in 0..MESSAGES {
            messages.push(api.send(&app, "a.b", json!({"n": index})).await);
        }

        eventually("every message is delivered", DEADLINE, || async {
            for msg in &messages {
                let delivered = api
                    .destinations_of(&app, msg)
                    .await
                    .iter()
                    .any(|destination| destination["status"] == 0);
                if !delivered {
                    return None;
                }
            }
            Some(())
        })
        .await;
        let scrape = crate::operations::scrape(&format!("http://{}", server.address)).await;
        let handed_back = crate::operations::value(
            &scrape,
            "herald_deliveries_total",
            &[("outcome", "deferred")],
        );
        assert!(
            handed_back >= 1.0,
            "claims queued behind the stalled requests were handed back"
        );
        // A handed-back claim sent nothing and used up no retry: only the
        // three stalled requests were tried twice.
        assert_eq!(receiver.count(), MESSAGES + 3);
        let mut attempts = 0;
        for msg in &messages {
            attempts += api.attempts_of(&app, msg).await.len();
        }
        assert_eq!(attempts, MESSAGES + 3, "one attempt logged per request");
    }
}

// SQLite only: the test damages the row through the SQLite file itself. The
// engine's handling of an undecodable row is the same on both backends.
#[tokio::test]
async fn a_delivery_whose_endpoint_row_is_unreadable_fails_instead_of_looping() {
    let server = TestServer::start().await;
    let api = &server.api;
    let app = api.create_app("corrupt").await;
    let (endpoint, _) = api
        .create_endpoint(&app, json!({"url": "https://example.com/hook"}))
        .await;
    // Damage the stored row behind Herald's back, as a bad migration or a
    // hand edit would.
    let database = rusqlite::Connection::open(&server.database).expect("open the database");
    database
        .execute(
            "UPDATE endpoints SET url = 'not a url' WHERE id = ?1",
            [endpoint.as_str()],
        )
        .expect("corrupt the endpoint");

    let msg = api.send(&app, "a.b", json!({})).await;
    // The API cannot show this delivery either (its endpoint does not
    // decode), so the database is asked directly.
    let (status, next_attempt) = eventually("the delivery ends", DEADLINE, || async {
        let row: (i64, Option<i64>) = database
            .query_row(
                "SELECT status, next_attempt_at FROM deliveries WHERE msg_id = ?1",
                [msg.as_str()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .expect("the delivery exists");
        (row.0 == 2).then_some(row)
    })
    .await;
    assert_eq!(
        (status, next_attempt),
        (2, None),
        "failed for good, not leased again"
    );
    assert!(
        api.attempts_of(&app, &msg).await.is_empty(),
        "no HTTP attempt was made"
    );
}

herald_test_support::test_on_both_backends! {
    async fn a_scheduled_message_is_delivered_at_its_time_not_before() {
        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::Accept).await;
        let api = &server.api;
        let app = api.create_app("scheduled").await;
        let (endpoint, _) = api
            .create_endpoint(&app, json!({"url": receiver.url("hook")}))
            .await;
        let due = chrono::Utc::now() + chrono::Duration::seconds(5);
        let due_text = due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let created = api
            .post(
                &format!("/api/v1/app/{app}/msg"),
                json!({"eventType": "invoice.due", "payload": {"n": 1}, "deliverAt": due_text}),
                202,
            )
            .await;
        assert_eq!(created["deliverAt"], due_text.as_str(), "{created}");
        let msg = created["id"].as_str().expect("id");

        // Read before the time (checked after reading, so a slow machine
        // skips the check rather than fail it), nothing has gone out.
        let waiting = api.destinations_of(&app, msg).await;
        let arrived_early = receiver.count();
        assert_eq!(waiting.len(), 1, "{waiting:?}");
        if chrono::Utc::now() < due {
            assert_eq!(waiting[0]["status"], 1, "{waiting:?}");
            assert_eq!(waiting[0]["nextAttempt"], due_text.as_str());
            assert_eq!(arrived_early, 0, "delivered before its time");
        }
        let shown = api.get(&format!("/api/v1/app/{app}/msg/{msg}")).await;
        assert_eq!(shown["deliverAt"], due_text.as_str());

        wait_for_status(&server, &app, msg, &endpoint, 0).await;
        let arrived = receiver.received();
        assert_eq!(arrived.len(), 1);
        let signed_at: i64 = arrived[0]
            .header("webhook-timestamp")
            .parse()
            .expect("unix seconds");
        assert!(
            signed_at >= due.timestamp(),
            "sent at {signed_at}, scheduled for {}",
            due.timestamp()
        );

        // A message without deliverAt answers none.
        let now = api.send(&app, "invoice.paid", json!({})).await;
        let plain = api.get(&format!("/api/v1/app/{app}/msg/{now}")).await;
        assert!(plain.get("deliverAt").is_none(), "{plain}");
    }
}

herald_test_support::test_on_both_backends! {
    async fn a_schedule_that_is_not_a_time_or_too_far_ahead_is_refused() {
        let server = TestServer::start().await;
        let api = &server.api;
        let app = api.create_app("scheduled").await;
        let far = chrono::Utc::now() + chrono::Duration::days(31);
        for deliver_at in [json!("tomorrow"), json!(far.to_rfc3339())] {
            let (status, refused) = api
                .request(
                    Method::POST,
                    &format!("/api/v1/app/{app}/msg"),
                    Some(json!({"eventType": "a.b", "payload": {}, "deliverAt": deliver_at})),
                    &[],
                )
                .await;
            assert_eq!(status, 422, "{refused}");
            assert_eq!(refused["detail"][0]["loc"], json!(["body", "deliverAt"]));
        }
        let listed = api.get(&format!("/api/v1/app/{app}/msg")).await;
        assert_eq!(listed["data"], json!([]), "a refused message was stored");
    }
}

herald_test_support::test_on_both_backends! {
    async fn replay_sends_an_endpoint_what_it_missed_once_and_tasks_are_kept() {
        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::Accept).await;
        let api = &server.api;
        let app = api.create_app("replay").await;
        let before = api.send(&app, "invoice.paid", json!({"n": 1})).await;
        let (endpoint, _) = api
            .create_endpoint(&app, json!({"url": receiver.url("late")}))
            .await;
        let after = api.send(&app, "invoice.paid", json!({"n": 2})).await;
        wait_for_status(&server, &app, &after, &endpoint, 0).await;
        assert!(
            api.destinations_of(&app, &before).await.is_empty(),
            "sent before the endpoint existed"
        );

        let since = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
        let path = format!("/api/v1/app/{app}/endpoint/{endpoint}/replay-missing");
        let replay = api.post(&path, json!({"since": since}), 202).await;
        assert_eq!(replay["task"], "endpoint.replay", "{replay}");
        assert_eq!(replay["status"], "finished");
        assert_eq!(replay["replayed"], 1);
        assert_eq!(replay["data"], json!({"messagesSent": 1}));
        wait_for_status(&server, &app, &before, &endpoint, 0).await;
        let again = api.post(&path, json!({"since": since}), 202).await;
        assert_eq!(again["replayed"], 0, "nothing is replayed twice");
        let numbers: Vec<i64> = receiver
            .received()
            .iter()
            .map(|request| request.json()["n"].as_i64().expect("n"))
            .collect();
        assert_eq!(numbers.iter().filter(|n| **n == 1).count(), 1, "{numbers:?}");

        // Every task answered can be looked up afterwards.
        let task_id = replay["id"].as_str().expect("task id");
        assert!(task_id.starts_with("qtask_"));
        let task = api.get(&format!("/api/v1/background-task/{task_id}")).await;
        assert_eq!(task["task"], "endpoint.replay");
        assert_eq!(task["data"], json!({"messagesSent": 1}));
        let recover = api
            .post(
                &format!("/api/v1/app/{app}/endpoint/{endpoint}/recover"),
                json!({"since": since}),
                202,
            )
            .await;
        let recover_id = recover["id"].as_str().expect("task id");
        let listed = api
            .get("/api/v1/background-task?task=endpoint.replay&limit=10")
            .await;
        let ids: Vec<&str> = listed["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|task| task["id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, [again["id"].as_str().expect("id"), task_id]);
        let recovered = api.get(&format!("/api/v1/background-task/{recover_id}")).await;
        assert_eq!(recovered["task"], "endpoint.recover");

        let (status, _) = api
            .request(Method::GET, "/api/v1/background-task/qtask_nothing", None, &[])
            .await;
        assert_eq!(status, 404);
        let (status, refused) = api
            .request(Method::GET, "/api/v1/background-task?task=everything", None, &[])
            .await;
        assert_eq!(status, 422, "{refused}");
    }
}

herald_test_support::test_on_both_backends! {
    async fn a_message_whose_content_was_deleted_is_not_sent_again() {
        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::AlwaysFail { status: 503 }).await;
        let api = &server.api;
        let app = api.create_app("expunge").await;
        let (endpoint, _) = api
            .create_endpoint(&app, json!({"url": receiver.url("hook")}))
            .await;
        let msg = api.send(&app, "a.b", json!({"card": "4242"})).await;
        eventually("the first attempt fails", DEADLINE, || async {
            (receiver.count() >= 1).then_some(())
        })
        .await;

        let path = format!("/api/v1/app/{app}/msg/{msg}/content");
        let (status, _) = api.request(Method::DELETE, &path, None, &[]).await;
        assert_eq!(status, 204);
        let shown = api.get(&format!("/api/v1/app/{app}/msg/{msg}")).await;
        assert_eq!(shown["payload"], json!({}), "{shown}");
        // Its retries end without a request, and it cannot be resent.
        wait_for_status(&server, &app, &msg, &endpoint, 2).await;
        let sent = receiver.count();
        let resend = format!("/api/v1/app/{app}/msg/{msg}/endpoint/{endpoint}/resend");
        let (status, refused) = api.request(Method::POST, &resend, None, &[]).await;
        assert_eq!(status, 409, "{refused}");
        assert!(
            receiver
                .received()
                .iter()
                .all(|request| request.json() == json!({"card": "4242"})),
            "nothing but the original content was ever sent"
        );
        assert_eq!(receiver.count(), sent);

        let (status, _) = api
            .request(
                Method::DELETE,
                &format!("/api/v1/app/{app}/msg/msg_nothing/content"),
                None,
                &[],
            )
            .await;
        assert_eq!(status, 404);
    }
}

herald_test_support::test_on_both_backends! {
    async fn a_payload_is_deleted_when_its_own_retention_ends() {
        let clock = Arc::new(ManualClock::new(herald_core::SystemClock.now()));
        let server = TestServer::start_with(TestServerOptions {
            clock: Some(clock.clone()),
            ..TestServerOptions::default()
        })
        .await;
        let receiver = Receiver::start(Behaviour::Accept).await;
        let api = &server.api;
        let app = api.create_app("retention").await;
        api.create_endpoint(&app, json!({"url": receiver.url("hook")}))
            .await;
        let app = app.as_str();
        let create = |body: serde_json::Value| async move {
            let created = api
                .post(&format!("/api/v1/app/{app}/msg"), body, 202)
                .await;
            created["id"].as_str().expect("message id").to_owned()
        };
        let hours = create(json!({
            "eventType": "a.b", "payload": {"card": "4242"}, "payloadRetentionHours": 1
        }))
        .await;
        let days = create(json!({
            "eventType": "a.b", "payload": {"card": "4343"}, "payloadRetentionPeriod": 5
        }))
        .await;
        let kept = create(json!({"eventType": "a.b", "payload": {"card": "4444"}})).await;
        eventually("all three are delivered", DEADLINE, || async {
            (receiver.count() == 3).then_some(())
        })
        .await;
        let payload = |msg: String| async move {
            api.get(&format!("/api/v1/app/{app}/msg/{msg}")).await["payload"].clone()
        };
        assert_eq!(payload(hours.clone()).await, json!({"card": "4242"}));

        clock.advance(Duration::from_secs(2 * 3600));
        eventually("the one-hour payload is deleted", DEADLINE, || async {
            (payload(hours.clone()).await == json!({})).then_some(())
        })
        .await;
        assert_eq!(payload(days.clone()).await, json!({"card": "4343"}));
        clock.advance(Duration::from_secs(5 * 24 * 3600));
        eventually("the five-day payload is deleted", DEADLINE, || async {
            (payload(days.clone()).await == json!({})).then_some(())
        })
        .await;
        assert_eq!(payload(kept).await, json!({"card": "4444"}), "no retention asked");
        // Deleted as on request: the message stays, and is not sent again.
        let endpoint_list = api.get(&format!("/api/v1/app/{app}/endpoint")).await;
        let endpoint = endpoint_list["data"][0]["id"].as_str().expect("endpoint id");
        let resend = format!("/api/v1/app/{app}/msg/{hours}/endpoint/{endpoint}/resend");
        let (status, refused) = api.request(Method::POST, &resend, None, &[]).await;
        assert_eq!(status, 409, "{refused}");
        assert_eq!(receiver.count(), 3);
    }
}

herald_test_support::test_on_both_backends! {
    async fn a_payload_retention_out_of_bounds_is_refused_and_creates_nothing() {
        let server = TestServer::start().await;
        let api = &server.api;
        let app = api.create_app("retention").await;
        for (body, field) in [
            (json!({"payloadRetentionHours": 2, "payloadRetentionPeriod": 5}), "payloadRetentionHours"),
            (json!({"payloadRetentionHours": 0}), "payloadRetentionHours"),
            (json!({"payloadRetentionHours": 2161}), "payloadRetentionHours"),
            (json!({"payloadRetentionPeriod": 4}), "payloadRetentionPeriod"),
            (json!({"payloadRetentionPeriod": 91}), "payloadRetentionPeriod"),
        ] {
            let mut message = json!({
                "eventType": "a.b",
                "payload": {},
                "application": {"name": "made on the fly", "uid": "fly"},
            });
            for (key, value) in body.as_object().expect("object") {
                message[key] = value.clone();
            }
            let (status, refused) = api
                .request(Method::POST, "/api/v1/app/fly/msg", Some(message.clone()), &[])
                .await;
            assert_eq!(status, 422, "{refused}");
            assert!(refused.to_string().contains(field), "{field}: {refused}");
            message.as_object_mut().expect("object").remove("application");
            let path = format!("/api/v1/app/{app}/msg");
            let (status, _) = api.request(Method::POST, &path, Some(message), &[]).await;
            assert_eq!(status, 422, "{field} in an existing app");
        }
        // A payload must outlast the message's scheduled time.
        let later = herald_core::Timestamp(herald_core::SystemClock.now().0 + 2 * 3600 * 1000);
        let (status, refused) = api
            .request(
                Method::POST,
                "/api/v1/app/fly/msg",
                Some(json!({
                    "eventType": "a.b",
                    "payload": {},
                    "application": {"name": "made on the fly", "uid": "fly"},
                    "deliverAt": later.to_rfc3339(),
                    "payloadRetentionHours": 1,
                })),
                &[],
            )
            .await;
        assert_eq!(status, 422, "{refused}");
        assert!(refused.to_string().contains("payloadRetentionHours"), "{refused}");
        let (status, _) = api.request(Method::GET, "/api/v1/app/fly", None, &[]).await;
        assert_eq!(status, 404, "a refused message creates no application");
        let listed = api.get(&format!("/api/v1/app/{app}/msg")).await;
        assert_eq!(listed["data"], json!([]), "and no message");
    }
}

herald_test_support::test_on_both_backends! {
    async fn an_attempts_response_body_can_be_deleted() {
        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::AcceptWith {
            body: "welcome back, card 4242",
        })
        .await;
        let api = &server.api;
        let app = api.create_app("attempt-expunge").await;
        api.create_endpoint(&app, json!({"url": receiver.url("hook")}))
            .await;
        let msg = api.send(&app, "a.b", json!({})).await;
        let attempt = eventually("the attempt is logged", DEADLINE, || async {
            let listed = api.get(&format!("/api/v1/app/{app}/attempt/msg/{msg}")).await;
            listed["data"][0]["id"].as_str().map(str::to_owned)
        })
        .await;
        let path = format!("/api/v1/app/{app}/msg/{msg}/attempt/{attempt}");
        assert_eq!(api.get(&path).await["response"], "welcome back, card 4242");

        let (status, _) = api
            .request(Method::DELETE, &format!("{path}/content"), None, &[])
            .await;
        assert_eq!(status, 204);
        let shown = api.get(&path).await;
        assert_eq!(shown["response"], "", "{shown}");
        assert_eq!(shown["responseStatusCode"], 200, "the rest stays: {shown}");
        let listed = api.get(&format!("/api/v1/app/{app}/attempt/msg/{msg}")).await;
        assert_eq!(listed["data"][0]["response"], "");

        for missing in [
            // A well-formed id no attempt has, so the store says "none".
            format!(
                "/api/v1/app/{app}/msg/{msg}/attempt/{}/content",
                herald_core::AttemptId::generate()
            ),
            format!("/api/v1/app/{app}/msg/msg_nothing/attempt/{attempt}/content"),
        ] {
            let (status, _) = api.request(Method::DELETE, &missing, None, &[]).await;
            assert_eq!(status, 404, "{missing}");
        }
    }
}
