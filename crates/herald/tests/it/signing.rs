//! Signatures checked by an independent Standard Webhooks implementation.

use herald_test_support::{eventually, Behaviour, Received, Receiver, TestServer};
use http::HeaderMap;
use serde_json::json;
use standardwebhooks::Webhook;

use crate::DEADLINE;

fn verifies(secret: &str, request: &Received) -> bool {
    Webhook::new(secret)
        .expect("secret parses")
        .verify(&request.body, &request.headers)
        .is_ok()
}

/// The request with its `svix-*` headers renamed to `webhook-*`, to check
/// that the Svix copies are right on their own.
fn with_svix_headers_only(request: &Received) -> Received {
    let mut headers = HeaderMap::new();
    for suffix in ["id", "timestamp", "signature"] {
        let value = request
            .headers
            .get(format!("svix-{suffix}"))
            .expect("svix header present");
        headers.insert(
            http::HeaderName::from_bytes(format!("webhook-{suffix}").as_bytes()).expect("name"),
            value.clone(),
        );
    }
    Received {
        headers,
        body: request.body.clone(),
    }
}

#[tokio::test]
async fn deliveries_verify_with_the_standard_webhooks_library() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let api = &server.api;
    let app = api.create_app("signed").await;
    let (_, secret) = api
        .create_endpoint(&app, json!({"url": receiver.url("hook")}))
        .await;
    let msg = api
        .send(&app, "user.created", json!({"name": "Ada", "emoji": "🦀"}))
        .await;

    let request = eventually("the delivery arrives", DEADLINE, || async {
        receiver.received().into_iter().next()
    })
    .await;
    assert_eq!(request.header("webhook-id"), msg);
    assert_eq!(request.header("content-type"), "application/json");
    assert_eq!(request.json(), json!({"name": "Ada", "emoji": "🦀"}));
    assert!(verifies(&secret, &request), "webhook-* headers verify");
    assert!(
        verifies(&secret, &with_svix_headers_only(&request)),
        "svix-* copies verify"
    );
    let stranger = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert!(
        !verifies(stranger, &request),
        "another secret does not verify"
    );
}

#[tokio::test]
async fn after_rotation_both_keys_sign_until_the_grace_period_ends() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let api = &server.api;
    let app = api.create_app("rotation").await;
    let (endpoint, old_secret) = api
        .create_endpoint(&app, json!({"url": receiver.url("hook")}))
        .await;
    let rotated = api
        .post(
            &format!("/api/v1/app/{app}/endpoint/{endpoint}/secret/rotate"),
            json!({"gracePeriodSeconds": 1}),
            200,
        )
        .await;
    let grace_ends = std::time::Instant::now() + std::time::Duration::from_secs(1);
    let new_secret = rotated["key"].as_str().expect("new key").to_owned();

    api.send(&app, "during.grace", json!({})).await;
    let during = eventually("the first delivery arrives", DEADLINE, || async {
        receiver.received().into_iter().next()
    })
    .await;
    assert_eq!(during.header("webhook-signature").split(' ').count(), 2);
    assert!(
        verifies(&old_secret, &during),
        "the old key still verifies during the grace period"
    );
    assert!(verifies(&new_secret, &during), "the new key verifies");

    // The grace period is wall-clock time: wait for it to pass, then send.
    eventually("the grace period ends", DEADLINE, || async {
        (std::time::Instant::now() > grace_ends).then_some(())
    })
    .await;
    api.send(&app, "after.grace", json!({})).await;
    let after = eventually("the second delivery arrives", DEADLINE, || async {
        receiver.received().into_iter().nth(1)
    })
    .await;
    assert_eq!(after.header("webhook-signature").split(' ').count(), 1);
    assert!(
        !verifies(&old_secret, &after),
        "the old key no longer signs"
    );
    assert!(verifies(&new_secret, &after));
}

#[tokio::test]
async fn endpoint_headers_are_sent_but_cannot_replace_signatures() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let api = &server.api;
    let app = api.create_app("custom-headers").await;
    let (_, secret) = api
        .create_endpoint(
            &app,
            json!({"url": receiver.url("hook"), "headers": {"X-Tenant": "42"}}),
        )
        .await;
    api.send(&app, "a.b", json!({"k": 1})).await;
    let request = eventually("delivery", DEADLINE, || async {
        receiver.received().into_iter().next()
    })
    .await;
    assert_eq!(request.header("x-tenant"), "42");
    assert!(verifies(&secret, &request));
}
