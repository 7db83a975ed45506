//! Limits and the SSRF guard: blocked addresses are refused at the API and
//! at connect time, redirects are never followed, per-endpoint delivery
//! rates and per-app API rates hold.

use std::time::{Duration, Instant};

use herald_test_support::{eventually, Behaviour, Receiver, TestServer, TestServerOptions};
use reqwest::Method;
use serde_json::json;

use crate::DEADLINE;

/// A server whose guard opens nothing, not even loopback.
async fn guarded() -> TestServer {
    TestServer::start_with(TestServerOptions {
        ssrf_allowlist: Vec::new(),
        ..TestServerOptions::default()
    })
    .await
}

herald_test_support::test_on_both_backends! {
    async fn endpoints_at_blocked_literal_addresses_are_refused_with_422() {
        let server = guarded().await;
        let app = server.api.create_app("Tenant").await;
        let blocked = [
            "127.0.0.1",          // loopback
            "10.1.2.3",           // RFC 1918
            "172.16.5.4",         // RFC 1918
            "192.168.1.1",        // RFC 1918
            "100.64.0.1",         // CGNAT
            "169.254.169.254",    // link-local, cloud metadata
            "224.0.0.1",          // multicast
            "0.0.0.0",            // unspecified
            "[::1]",              // IPv6 loopback
            "[::]",               // IPv6 unspecified
            "[::ffff:127.0.0.1]", // IPv4-mapped loopback
            "[::ffff:10.0.0.1]",  // IPv4-mapped private
            "[fc00::1]",          // unique local
            "[fe80::1]",          // IPv6 link-local
            "[ff02::1]",          // IPv6 multicast
        ];
        for host in blocked {
            let url = format!("http://{host}:8080/hook");
            let (status, body) = server
                .api
                .request(
                    Method::POST,
                    &format!("/api/v1/app/{app}/endpoint"),
                    Some(json!({ "url": url })),
                    &[],
                )
                .await;
            assert_eq!(status, 422, "{url} was accepted: {body}");
            assert_eq!(body["detail"][0]["loc"], json!(["body", "url"]), "{body}");
            assert!(
                body["detail"][0]["msg"]
                    .as_str()
                    .is_some_and(|msg| msg.contains("not allowed")),
                "{body}"
            );
        }
        let listed = server.api.get(&format!("/api/v1/app/{app}/endpoint")).await;
        assert_eq!(
            listed["data"],
            json!([]),
            "a refused endpoint must not exist"
        );

        // A public address is fine, and editing it to a blocked one is refused.
        let (id, _) = server
            .api
            .create_endpoint(&app, json!({ "url": "https://93.184.216.34/hook" }))
            .await;
        let (status, _) = server
            .api
            .request(
                Method::PATCH,
                &format!("/api/v1/app/{app}/endpoint/{id}"),
                Some(json!({ "url": "http://169.254.169.254/latest/meta-data" })),
                &[],
            )
            .await;
        assert_eq!(status, 422);
        let endpoint = server
            .api
            .get(&format!("/api/v1/app/{app}/endpoint/{id}"))
            .await;
        assert_eq!(endpoint["url"], "https://93.184.216.34/hook", "unchanged");
    }
}

herald_test_support::test_on_both_backends! {
    async fn a_hostname_resolving_to_loopback_is_blocked_when_it_connects() {
        let server = guarded().await;
        let receiver = Receiver::start(Behaviour::Accept).await;
        let app = server.api.create_app("Tenant").await;
        let url = receiver.url("hook").replace("127.0.0.1", "localhost");
        server
            .api
            .create_endpoint(&app, json!({ "url": url }))
            .await;
        let msg = server.api.send(&app, "invoice.paid", json!({})).await;

        let attempts = eventually("an attempt is logged", DEADLINE, || async {
            let attempts = server.api.attempts_of(&app, &msg).await;
            (!attempts.is_empty()).then_some(attempts)
        })
        .await;
        assert_eq!(attempts[0]["errorKind"], "ssrf_blocked", "{attempts:?}");
        assert_eq!(attempts[0]["status"], 2, "a blocked attempt fails");
        assert!(receiver.received().is_empty(), "nothing may reach loopback");
    }
}

herald_test_support::test_on_both_backends! {
    async fn redirects_are_answers_never_followed() {
        // Only 127.0.0.1 is open: the redirect points at 127.0.0.2, a
        // blocked loopback address where a receiver would see a followed
        // redirect.
        let server = TestServer::start_with(TestServerOptions {
            ssrf_allowlist: vec!["127.0.0.1/32".parse().expect("cidr")],
            ..TestServerOptions::default()
        })
        .await;
        let target = Receiver::start_at(
            "127.0.0.2:0".parse().expect("address"),
            Behaviour::Accept,
        )
        .await;
        let redirecting = Receiver::start(Behaviour::Redirect {
            to: target.address(),
        })
        .await;
        let app_for_check = server.api.create_app("Check").await;
        let (status, _) = server
            .api
            .request(
                Method::POST,
                &format!("/api/v1/app/{app_for_check}/endpoint"),
                Some(json!({ "url": target.url("direct") })),
                &[],
            )
            .await;
        assert_eq!(status, 422, "the redirect's target is a blocked address");
        let app = server.api.create_app("Tenant").await;
        server
            .api
            .create_endpoint(&app, json!({ "url": redirecting.url("hook") }))
            .await;
        let msg = server.api.send(&app, "invoice.paid", json!({})).await;

        let attempts = eventually("the first attempt is logged", DEADLINE, || async {
            let attempts = server.api.attempts_of(&app, &msg).await;
            (!attempts.is_empty()).then_some(attempts)
        })
        .await;
        assert_eq!(attempts[0]["responseStatusCode"], 302);
        assert_eq!(attempts[0]["status"], 2, "a redirect is not a success");
        assert!(
            target.received().is_empty(),
            "the redirect's target (which could be any blocked address) must never be reached"
        );
    }
}

herald_test_support::test_on_both_backends! {
    async fn an_endpoint_rate_limit_spaces_deliveries() {
        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::Accept).await;
        let app = server.api.create_app("Tenant").await;
        const RATE: f64 = 20.0;
        server
            .api
            .create_endpoint(
                &app,
                json!({ "url": receiver.url("hook"), "rateLimit": 20 }),
            )
            .await;
        const COUNT: usize = 61;
        // Sent at once, so the arrivals' pace is the limiter's, not the sender's.
        let mut sending = tokio::task::JoinSet::new();
        for n in 0..COUNT {
            let (api, app) = (server.api.clone(), app.clone());
            sending.spawn(async move { api.send(&app, "invoice.paid", json!({ "n": n })).await });
        }
        while let Some(sent) = sending.join_next().await {
            sent.expect("send task");
        }
        let arrivals = eventually("every message arrives", DEADLINE, || async {
            let received = receiver.received();
            (received.len() >= COUNT).then_some(received)
        })
        .await;
        let span = arrivals[COUNT - 1].at.duration_since(arrivals[0].at);
        let rate = (COUNT - 1) as f64 / span.as_secs_f64();
        assert!(
            rate <= RATE * 1.1,
            "{rate:.1} deliveries/s against a limit of {RATE}/s"
        );
        // Slower than the limit only if the machine stalls; far slower means
        // the limiter is wrong.
        assert!(
            rate >= RATE * 0.5,
            "{rate:.1} deliveries/s is far below the limit"
        );
        // No one-second window holds much more than the limit. Slots are
        // booked ahead, so a stall of the test's one thread (server, receiver
        // and test share it) lets the overdue ones go together; the bound
        // allows half a second of that and still fails an unlimited endpoint,
        // which would deliver all 61 within one second.
        for (index, first) in arrivals.iter().enumerate() {
            let within = arrivals[index..]
                .iter()
                .take_while(|later| later.at.duration_since(first.at) < Duration::from_secs(1))
                .count();
            assert!(within <= 32, "{within} deliveries within one second");
        }
    }
}

herald_test_support::test_on_both_backends! {
    async fn an_app_over_its_message_rate_gets_429_and_nothing_is_stored() {
        let server = TestServer::start().await;
        let app = server
            .api
            .post(
                "/api/v1/app",
                json!({ "name": "Chatty", "rateLimit": 5 }),
                201,
            )
            .await["id"]
            .as_str()
            .expect("app id")
            .to_owned();
        let mut accepted = 0;
        let mut refused = 0;
        let started = Instant::now();
        for n in 0..20 {
            let (status, body) = server
                .api
                .request(
                    Method::POST,
                    &format!("/api/v1/app/{app}/msg"),
                    Some(json!({ "eventType": "invoice.paid", "payload": { "n": n } })),
                    &[],
                )
                .await;
            match status {
                202 => accepted += 1,
                429 => {
                    refused += 1;
                    assert_eq!(body["code"], "rate_limited", "{body}");
                }
                other => panic!("unexpected {other}: {body}"),
            }
        }
        // A full bucket of five, plus what refilled while the requests ran (a
        // loaded machine may take a while over twenty of them).
        let most = 5 + (started.elapsed().as_secs_f64() * 5.0).ceil() as usize;
        assert!(refused > 0, "20 messages at once passed a limit of 5/s");
        assert!(
            (5..=most).contains(&accepted),
            "{accepted} accepted against a limit of 5/s (at most {most} here)"
        );
        let listed = server
            .api
            .get(&format!("/api/v1/app/{app}/msg?limit=100"))
            .await;
        assert_eq!(
            listed["data"].as_array().map(Vec::len),
            Some(accepted),
            "refused messages must not be stored"
        );
        // The answer says when to come back: the next token is less than a
        // second away, rounded up to whole seconds.
        let client = reqwest::Client::new();
        let mut refusal = None;
        for _ in 0..50 {
            let response = client
                .post(format!("{}/api/v1/app/{app}/msg", server.api.base))
                .bearer_auth(herald_test_support::TEST_TOKEN)
                .json(&json!({ "eventType": "invoice.paid", "payload": {} }))
                .send()
                .await
                .expect("request");
            if response.status() == 429 {
                refusal = Some(response);
                break;
            }
        }
        let refusal = refusal.expect("fifty messages in a row passed a limit of 5/s");
        let retry_after: u64 = refusal.headers()["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds");
        assert_eq!(retry_after, 1, "Retry-After: {retry_after}");
    }
}
