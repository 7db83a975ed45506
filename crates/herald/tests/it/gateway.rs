//! The inbound gateway end to end: sources created through the ingest API,
//! requests signed the way each provider documents it by an independent
//! implementation (Python's standard library, `tests/sdk/sign_inbound.py`,
//! or the `standardwebhooks` crate for Svix), posted to `/in/{source}`, and
//! forwarded to a loopback receiver that checks Herald's own Standard
//! Webhooks signature.
//!
//! "Not forwarded" is shown without sleeping: after the requests that must
//! not arrive, a valid one is sent; once it has arrived, the receiver's
//! count shows the others did not (a rejected or duplicate request is
//! never stored as a message, so there is nothing left that could follow).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use herald_test_support::{eventually, Behaviour, Received, Receiver, TestServer};
use reqwest::Method;
use serde_json::{json, Value};
use standardwebhooks::Webhook;

use crate::DEADLINE;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as i64
}

/// Headers a provider would send, computed by `tests/sdk/sign_inbound.py`
/// (also what `herald verify` is checked against, in `cli.rs`).
pub(crate) fn provider_headers(
    scheme: &str,
    secret: &str,
    body: &[u8],
    extra: Value,
) -> Vec<(String, String)> {
    let mut input = json!({
        "scheme": scheme,
        "secret": secret,
        "body_b64": base64::engine::general_purpose::STANDARD.encode(body),
        "timestamp": now_secs(),
    });
    if let (Some(input), Some(extra)) = (input.as_object_mut(), extra.as_object()) {
        input.extend(extra.clone());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk/sign_inbound.py");
    let mut child =
        Command::new(std::env::var("HERALD_PYTHON").unwrap_or_else(|_| "python3".into()))
            .arg(&script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(input.to_string().as_bytes())
        .expect("the signer reads its input");
    let output = child.wait_with_output().expect("the signer finishes");
    assert!(output.status.success(), "the signer failed");
    let headers: serde_json::Map<String, Value> =
        serde_json::from_slice(&output.stdout).expect("the signer prints JSON");
    headers
        .into_iter()
        .map(|(name, value)| (name, value.as_str().unwrap_or_default().to_owned()))
        .collect()
}

/// A source with one destination on `receiver`.
struct Fixture {
    server: TestServer,
    receiver: Receiver,
    source: Value,
    destination_secret: String,
}

impl Fixture {
    async fn new(source_type: &str, config: Value) -> Fixture {
        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::Accept).await;
        let source = server
            .api
            .post(
                "/ingest/api/v1/source",
                json!({"name": format!("{source_type} source"), "type": source_type,
                       "config": config}),
                201,
            )
            .await;
        let id = source["id"].as_str().expect("source id").to_owned();
        let destination = server
            .api
            .post(
                &format!("/ingest/api/v1/source/{id}/endpoint"),
                json!({"url": receiver.url("inbound")}),
                201,
            )
            .await;
        let secret = server
            .api
            .get(&format!(
                "/ingest/api/v1/source/{id}/endpoint/{}/secret",
                destination["id"].as_str().expect("destination id")
            ))
            .await;
        Fixture {
            server,
            receiver,
            source,
            destination_secret: secret["key"].as_str().expect("secret").to_owned(),
        }
    }

    fn id(&self) -> &str {
        self.source["id"].as_str().expect("source id")
    }

    fn ingest_url(&self) -> &str {
        self.source["ingestUrl"].as_str().expect("ingestUrl")
    }

    /// Posts `body` with `headers` to the source's ingest URL.
    async fn post(
        &self,
        body: &[u8],
        headers: &[(String, String)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = reqwest::Client::new()
            .post(self.ingest_url())
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let response = request.send().await.expect("herald answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("answer body");
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, json)
    }

    /// Waits until the receiver has `count` deliveries; answers them.
    async fn delivered(&self, count: usize) -> Vec<Received> {
        eventually(
            &format!("{count} deliveries reach the destination"),
            DEADLINE,
            || async {
                let received = self.receiver.received();
                (received.len() >= count).then_some(received)
            },
        )
        .await
    }

    /// The source's request log, optionally of one outcome.
    async fn log(&self, outcome: Option<&str>) -> Vec<Value> {
        let query = outcome.map_or_else(String::new, |outcome| format!("?outcome={outcome}"));
        let list = self
            .server
            .api
            .get(&format!(
                "/ingest/api/v1/source/{}/request{query}",
                self.id()
            ))
            .await;
        list["data"].as_array().cloned().unwrap_or_default()
    }

    /// Herald's signature on a delivery verifies with the destination's
    /// secret, using the standardwebhooks crate.
    fn assert_signed_by_herald(&self, delivery: &Received) {
        Webhook::new(&self.destination_secret)
            .expect("the destination secret parses")
            .verify(&delivery.body, &delivery.headers)
            .expect("Herald's signature verifies with a Standard Webhooks library");
    }
}

/// A request before signing: body and the provider's unsigned headers.
type Unsigned = (Vec<u8>, Vec<(&'static str, String)>);

/// One provider's case: how to build its n-th distinct request and sign it.
struct Case {
    source_type: &'static str,
    config: Value,
    scheme: &'static str,
    secret: &'static str,
    /// Extra inputs of the signer (header names, algorithm, URL…).
    signer: Value,
    /// Whether the scheme signs the body (so a tampered body is refused).
    signs_body: bool,
    /// The n-th distinct request: body and unsigned headers.
    request: fn(usize) -> Unsigned,
    expected_event_type: &'static str,
}

/// Valid → 200 and forwarded, signed by Herald; wrong secret, missing
/// signature and (where signed) tampered body → 401, logged with a reason,
/// never forwarded.
async fn provider_round_trip(case: Case) {
    let fixture = Fixture::new(case.source_type, case.config.clone()).await;
    let mut signer = case.signer.clone();
    if let Some(signer) = signer.as_object_mut() {
        signer
            .entry("url")
            .or_insert_with(|| json!(fixture.ingest_url()));
    }
    let request = |n: usize, secret: &str| {
        let (body, unsigned) = (case.request)(n);
        let mut headers = provider_headers(case.scheme, secret, &body, signer.clone());
        headers.extend(
            unsigned
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value)),
        );
        (body, headers)
    };

    let (body, headers) = request(1, case.secret);
    let (status, _, answer) = fixture.post(&body, &headers).await;
    assert_eq!(
        status, 200,
        "a correctly signed request is accepted: {answer}"
    );
    let delivery = fixture.delivered(1).await.remove(0);
    fixture.assert_signed_by_herald(&delivery);
    // The provider retries the same event: acknowledged, not forwarded again
    // (the final count below shows it).
    let (status, _, answer) = fixture.post(&body, &headers).await;
    assert_eq!(status, 200, "a repeated event is acknowledged: {answer}");
    let message = fixture
        .server
        .api
        .get(&format!(
            "/api/v1/app/{}/msg/{}?with_content=true",
            fixture.source["appId"].as_str().expect("appId"),
            answer["msgId"].as_str().expect("msgId")
        ))
        .await;
    assert_eq!(message["eventType"], case.expected_event_type);
    if serde_json::from_slice::<Value>(&body).is_ok_and(|value| value.is_object()) {
        assert_eq!(
            delivery.body.as_ref(),
            body.as_slice(),
            "a JSON object body is forwarded byte for byte"
        );
    }

    let (body, headers) = request(2, "the-wrong-secret");
    let (status, _, answer) = fixture.post(&body, &headers).await;
    assert_eq!(status, 401, "a wrong secret is refused: {answer}");

    let (body, headers) = request(3, case.secret);
    let signature_names: Vec<String> =
        provider_headers(case.scheme, case.secret, &body, signer.clone())
            .into_iter()
            .map(|(name, _)| name.to_ascii_lowercase())
            .collect();
    let unsigned: Vec<_> = headers
        .iter()
        .filter(|(name, _)| !signature_names.contains(&name.to_ascii_lowercase()))
        .cloned()
        .collect();
    let (status, _, _) = fixture.post(&body, &unsigned).await;
    assert_eq!(status, 401, "a request without its signature is refused");

    if case.signs_body {
        let (mut body, headers) = request(4, case.secret);
        body.extend_from_slice(b" ");
        let (status, _, _) = fixture.post(&body, &headers).await;
        assert_eq!(status, 401, "a tampered body is refused");
    }

    let (body, headers) = request(5, case.secret);
    let (status, _, _) = fixture.post(&body, &headers).await;
    assert_eq!(status, 200, "the next valid request is accepted");
    let deliveries = fixture.delivered(2).await;
    assert_eq!(
        deliveries.len(),
        2,
        "only the two valid requests were forwarded"
    );

    let rejected = fixture.log(Some("rejected")).await;
    assert_eq!(
        rejected.len(),
        if case.signs_body { 3 } else { 2 },
        "every rejection is in the request log"
    );
    for entry in &rejected {
        assert_eq!(entry["statusCode"], 401);
        let reason = entry["reason"].as_str().expect("a rejection has a reason");
        assert!(
            ["bad_signature", "missing_header", "malformed_header"]
                .iter()
                .any(|code| reason.starts_with(code)),
            "{reason}"
        );
    }
    assert_eq!(fixture.log(Some("accepted")).await.len(), 2);
    assert_eq!(
        fixture.log(Some("duplicate")).await.len(),
        1,
        "the repeated event is logged as a duplicate"
    );
}

fn stripe_event(n: usize) -> Unsigned {
    let body = json!({"id": format!("evt_{n}"), "object": "event", "type": "invoice.paid",
                      "data": {"object": {"id": "in_1", "amount_paid": 4200}}});
    (body.to_string().into_bytes(), Vec::new())
}

herald_test_support::test_on_both_backends! {
    async fn stripe_requests_are_verified_and_forwarded() {
        provider_round_trip(Case {
            source_type: "stripe",
            config: json!({"secret": "whsec_stripe_test_secret"}),
            scheme: "stripe",
            secret: "whsec_stripe_test_secret",
            signer: json!({}),
            signs_body: true,
            request: stripe_event,
            expected_event_type: "invoice.paid",
        })
        .await;
    }
}

herald_test_support::test_on_both_backends! {
    async fn github_requests_are_verified_and_forwarded() {
        provider_round_trip(Case {
            source_type: "github",
            config: json!({"secret": "It's a Secret to Everybody"}),
            scheme: "github",
            secret: "It's a Secret to Everybody",
            signer: json!({}),
            signs_body: true,
            request: |n| {
                let body = json!({"action": "opened", "issue": {"number": n}});
                (
                    body.to_string().into_bytes(),
                    vec![
                        ("X-GitHub-Event", "issues".to_owned()),
                        ("X-GitHub-Delivery", format!("delivery-{n}")),
                    ],
                )
            },
            expected_event_type: "issues.opened",
        })
        .await;
    }
}

herald_test_support::test_on_both_backends! {
    async fn slack_requests_are_verified_and_forwarded() {
        provider_round_trip(Case {
            source_type: "slack",
            config: json!({"secret": "8f742231b10e8888abcd99yyyzzz85a5"}),
            scheme: "slack",
            secret: "8f742231b10e8888abcd99yyyzzz85a5",
            signer: json!({}),
            signs_body: true,
            request: |n| {
                let body = json!({"type": "event_callback", "event_id": format!("Ev{n}"),
                                  "event": {"type": "app_mention", "text": "hi"}});
                (body.to_string().into_bytes(), Vec::new())
            },
            expected_event_type: "app_mention",
        })
        .await;
    }
}

herald_test_support::test_on_both_backends! {
    async fn shopify_requests_are_verified_and_forwarded() {
        provider_round_trip(Case {
            source_type: "shopify",
            config: json!({"secret": "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"}),
            scheme: "shopify",
            secret: "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",
            signer: json!({}),
            signs_body: true,
            request: |n| {
                let body = json!({"id": n, "email": "ada@example.com"});
                (
                    body.to_string().into_bytes(),
                    vec![
                        ("X-Shopify-Topic", "orders/create".to_owned()),
                        ("X-Shopify-Webhook-Id", format!("webhook-{n}")),
                    ],
                )
            },
            expected_event_type: "orders.create",
        })
        .await;
    }
}

herald_test_support::test_on_both_backends! {
    async fn twilio_form_posts_are_verified_against_the_public_url_and_wrapped() {
        provider_round_trip(Case {
            source_type: "generic-webhook",
            config: json!({"verifier": {"type": "twilio", "secret": "twilio-auth-token"}}),
            scheme: "twilio",
            secret: "twilio-auth-token",
            signer: json!({}),
            signs_body: true,
            request: |n| {
                (
                    format!("CallSid=CA{n}&From=%2B14158675310&To=%2B18005551212").into_bytes(),
                    vec![(
                        "Content-Type",
                        "application/x-www-form-urlencoded".to_owned(),
                    )],
                )
            },
            expected_event_type: "webhook.received",
        })
        .await;
    }
}

herald_test_support::test_on_both_backends! {
    async fn twilio_signatures_cover_the_configured_url_when_a_proxy_changes_it() {
        provider_round_trip(Case {
            source_type: "generic-webhook",
            config: json!({"verifier": {"type": "twilio", "secret": "twilio-auth-token",
                                        "url": "https://hooks.example.com/twilio/sms"}}),
            scheme: "twilio",
            secret: "twilio-auth-token",
            signer: json!({"url": "https://hooks.example.com/twilio/sms"}),
            signs_body: true,
            request: |n| {
                (
                    format!("MessageSid=SM{n}&Body=Hello").into_bytes(),
                    vec![(
                        "Content-Type",
                        "application/x-www-form-urlencoded".to_owned(),
                    )],
                )
            },
            expected_event_type: "webhook.received",
        })
        .await;
    }
}

herald_test_support::test_on_both_backends! {
    async fn gitlab_tokens_are_checked() {
        provider_round_trip(Case {
            source_type: "generic-webhook",
            config: json!({"verifier": {"type": "gitlab", "secret": "gitlab-token"},
                           "eventTypeHeader": "X-Gitlab-Event"}),
            scheme: "gitlab",
            secret: "gitlab-token",
            signer: json!({}),
            signs_body: false,
            request: |n| {
                let body = json!({"object_kind": "push", "checkout_sha": format!("{n:040}")});
                (
                    body.to_string().into_bytes(),
                    vec![("X-Gitlab-Event", "Push Hook".to_owned())],
                )
            },
            expected_event_type: "Push_Hook",
        })
        .await;
    }
}

herald_test_support::test_on_both_backends! {
    async fn generic_hmac_signatures_are_verified() {
        provider_round_trip(Case {
            source_type: "generic-webhook",
            config: json!({"verifier": {"type": "hmac", "secret": "hmac-secret", "header": "X-Signature",
                                        "algorithm": "sha512", "encoding": "base64", "prefix": "sha512="}}),
            scheme: "hmac",
            secret: "hmac-secret",
            signer: json!({"header": "X-Signature", "algorithm": "sha512", "encoding": "base64",
                           "prefix": "sha512="}),
            signs_body: true,
            request: |n| {
                let body = json!({"type": "build.finished", "build": n});
                (body.to_string().into_bytes(), Vec::new())
            },
            expected_event_type: "build.finished",
        })
        .await;
    }
}

herald_test_support::test_on_both_backends! {
    async fn basic_auth_and_api_keys_are_checked() {
        provider_round_trip(Case {
            source_type: "generic-webhook",
            config: json!({"verifier": {"type": "basic-auth", "username": "herald",
                                        "password": "correct horse"}}),
            scheme: "basic-auth",
            secret: "herald:correct horse",
            signer: json!({}),
            signs_body: false,
            request: |n| (json!({"n": n}).to_string().into_bytes(), Vec::new()),
            expected_event_type: "webhook.received",
        })
        .await;
        provider_round_trip(Case {
            source_type: "generic-webhook",
            config: json!({"verifier": {"type": "api-key", "header": "X-Api-Key", "value": "key-123"}}),
            scheme: "api-key",
            secret: "key-123",
            signer: json!({"header": "X-Api-Key"}),
            signs_body: false,
            request: |n| (json!({"n": n}).to_string().into_bytes(), Vec::new()),
            expected_event_type: "webhook.received",
        })
        .await;
    }
}

/// The Standard Webhooks signature of a sender, made by the standardwebhooks crate.
fn svix_headers(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let signature = Webhook::new(secret)
        .expect("secret parses")
        .sign(id, timestamp, body)
        .expect("the library signs");
    vec![
        ("webhook-id".to_owned(), id.to_owned()),
        ("webhook-timestamp".to_owned(), timestamp.to_string()),
        ("webhook-signature".to_owned(), signature),
    ]
}

const SENDER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

herald_test_support::test_on_both_backends! {
    async fn standard_webhooks_requests_are_verified_deduplicated_and_stale_ones_refused() {
        let fixture = Fixture::new("svix", json!({"secret": SENDER_SECRET})).await;
        let body = br#"{"type":"user.created","data":{"id":1}}"#;
        let headers = svix_headers(SENDER_SECRET, "msg_sender_1", now_secs(), body);
        let (status, _, first) = fixture.post(body, &headers).await;
        assert_eq!(status, 200, "{first}");
        let (status, _, repeat) = fixture.post(body, &headers).await;
        assert_eq!(status, 200, "a repeat is acknowledged: {repeat}");
        assert_eq!(repeat["duplicate"], true);
        assert_eq!(
            repeat["msgId"], first["msgId"],
            "a repeat names the first message"
        );

        let stale = svix_headers(SENDER_SECRET, "msg_sender_2", now_secs() - 600, body);
        let (status, _, _) = fixture.post(body, &stale).await;
        assert_eq!(status, 401, "a stale timestamp is refused");

        let svix_named: Vec<(String, String)> =
            svix_headers(SENDER_SECRET, "msg_sender_3", now_secs(), body)
                .into_iter()
                .map(|(name, value)| (name.replace("webhook-", "svix-"), value))
                .collect();
        let (status, _, _) = fixture.post(body, &svix_named).await;
        assert_eq!(status, 200, "svix-* headers are accepted too");

        let deliveries = fixture.delivered(2).await;
        assert_eq!(
            deliveries.len(),
            2,
            "the duplicate and the stale request are not forwarded"
        );
        for delivery in &deliveries {
            fixture.assert_signed_by_herald(delivery);
            assert_eq!(delivery.json()["type"], "user.created");
        }
        let stale_entry = fixture.log(Some("rejected")).await;
        assert_eq!(stale_entry.len(), 1);
        assert!(
            stale_entry[0]["reason"]
                .as_str()
                .is_some_and(|reason| reason.starts_with("stale_timestamp")),
            "{}",
            stale_entry[0]
        );
        assert_eq!(fixture.log(Some("duplicate")).await.len(), 1);
    }
}

herald_test_support::test_on_both_backends! {
    async fn a_repeated_stripe_event_is_forwarded_once() {
        let fixture = Fixture::new("stripe", json!({"secret": "whsec_stripe"})).await;
        let (body, _) = stripe_event(7);
        for _ in 0..3 {
            let headers = provider_headers("stripe", "whsec_stripe", &body, json!({}));
            let (status, _, _) = fixture.post(&body, &headers).await;
            assert_eq!(status, 200);
        }
        let (next, _) = stripe_event(8);
        let headers = provider_headers("stripe", "whsec_stripe", &next, json!({}));
        assert_eq!(fixture.post(&next, &headers).await.0, 200);
        let deliveries = fixture.delivered(2).await;
        let mut ids: Vec<String> = deliveries
            .iter()
            .map(|delivery| {
                delivery.json()["id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect();
        ids.sort();
        assert_eq!(ids, ["evt_7", "evt_8"], "evt_7 is forwarded once");
    }
}

herald_test_support::test_on_both_backends! {
    async fn stale_stripe_and_slack_timestamps_are_refused() {
        for (source_type, secret, body) in [
            ("stripe", "whsec_stripe", stripe_event(1).0),
            (
                "slack",
                "slack-secret",
                br#"{"type":"event_callback","event_id":"Ev1"}"#.to_vec(),
            ),
        ] {
            let fixture = Fixture::new(source_type, json!({"secret": secret})).await;
            let headers = provider_headers(
                source_type,
                secret,
                &body,
                json!({"timestamp": now_secs() - 3600}),
            );
            let (status, _, _) = fixture.post(&body, &headers).await;
            assert_eq!(
                status, 401,
                "{source_type}: an hour-old timestamp is refused"
            );
            let log = fixture.log(Some("rejected")).await;
            assert!(
                log[0]["reason"]
                    .as_str()
                    .is_some_and(|reason| reason.starts_with("stale_timestamp")),
                "{source_type}: {}",
                log[0]
            );
        }
    }
}

herald_test_support::test_on_both_backends! {
    async fn slack_url_verification_is_answered_with_its_challenge() {
        let fixture = Fixture::new("slack", json!({"secret": "slack-secret"})).await;
        let body = br#"{"token":"x","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let headers = provider_headers("slack", "slack-secret", body, json!({}));
        let (status, _, answer) = fixture.post(body, &headers).await;
        assert_eq!(status, 200);
        assert_eq!(
            answer["challenge"],
            "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
        );
        let unsigned = fixture.post(body, &[]).await;
        assert_eq!(unsigned.0, 401, "the challenge is only answered to Slack");
    }
}

herald_test_support::test_on_both_backends! {
    async fn guards_refuse_oversized_bodies_foreign_addresses_and_floods() {
        let oversized = Fixture::new("generic-webhook", json!({"maxBodyBytes": 64})).await;
        let (status, _, answer) = oversized.post(&[b'x'; 65], &[]).await;
        assert_eq!(status, 413, "{answer}");
        assert_eq!(oversized.post(&[b'x'; 64], &[]).await.0, 200);

        let foreign = Fixture::new("generic-webhook", json!({"allowedIps": ["10.0.0.0/8"]})).await;
        assert_eq!(foreign.post(b"{}", &[]).await.0, 403);
        let local = Fixture::new("generic-webhook", json!({"allowedIps": ["127.0.0.1/32"]})).await;
        assert_eq!(local.post(b"{}", &[]).await.0, 200);

        let limited = Fixture::new("generic-webhook", json!({"rateLimit": 2})).await;
        let mut statuses = Vec::new();
        let mut retry_after = None;
        for _ in 0..4 {
            let (status, headers, _) = limited.post(b"{}", &[]).await;
            statuses.push(status);
            if status == 429 {
                retry_after = headers
                    .get("retry-after")
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
            }
        }
        assert_eq!(&statuses[..2], &[200, 200], "a burst of `rateLimit` passes");
        assert!(statuses.contains(&429), "{statuses:?}");
        assert_eq!(retry_after.as_deref(), Some("1"), "429 says when to retry");

        for (fixture, status, reason) in [
            (&oversized, 413, "body_too_large"),
            (&foreign, 403, "ip_not_allowed"),
            (&limited, 429, "rate_limited"),
        ] {
            let log = fixture.log(Some("rejected")).await;
            assert!(
                log.iter().any(|entry| entry["statusCode"] == status
                    && entry["reason"]
                        .as_str()
                        .is_some_and(|text| text.starts_with(reason))),
                "{reason} is logged: {log:?}"
            );
        }
    }
}

herald_test_support::test_on_both_backends! {
    async fn chosen_headers_are_passed_through_and_non_json_bodies_wrapped() {
        let fixture = Fixture::new(
            "generic-webhook",
            json!({"forwardHeaders": ["X-Request-Id", "webhook-signature"]}),
        )
        .await;
        let headers = vec![
            ("X-Request-Id".to_owned(), "req-42".to_owned()),
            ("X-Other".to_owned(), "not forwarded".to_owned()),
            ("Content-Type".to_owned(), "text/plain".to_owned()),
        ];
        assert_eq!(fixture.post(b"hello", &headers).await.0, 200);
        let delivery = fixture.delivered(1).await.remove(0);
        fixture.assert_signed_by_herald(&delivery);
        assert_eq!(delivery.header("x-request-id"), "req-42");
        assert_eq!(delivery.header("x-other"), "");
        assert_eq!(
            delivery.json(),
            json!({"body": "hello", "bodyEncoding": "utf8", "contentType": "text/plain"})
        );
        let log = fixture.log(None).await;
        assert_eq!(
            log[0]["body"], "hello",
            "the raw body is in the request log"
        );
        assert_eq!(log[0]["outcome"], "accepted");
    }
}

herald_test_support::test_on_both_backends! {
    async fn sources_are_managed_by_id_or_uid_and_bad_configs_are_named() {
        let server = TestServer::start().await;
        let api = &server.api;
        let source = api
            .post(
                "/ingest/api/v1/source",
                json!({"name": "Payments", "uid": "payments", "type": "stripe",
                       "config": {"secret": "whsec_x", "rateLimit": 10}, "metadata": {"team": "billing"}}),
                201,
            )
            .await;
        let id = source["id"].as_str().expect("id");
        assert!(id.starts_with("src_"), "{id}");
        assert_eq!(
            source["ingestUrl"],
            format!("{}/in/{id}", api.base),
            "ingestUrl is the public receiver"
        );
        assert_eq!(
            source["config"],
            json!({"rateLimit": 10}),
            "secrets are not echoed"
        );
        let by_uid = api.get("/ingest/api/v1/source/payments").await;
        assert_eq!(by_uid["id"], id);
        let app = api
            .get(&format!(
                "/api/v1/app/{}",
                source["appId"].as_str().expect("appId")
            ))
            .await;
        assert_eq!(app["name"], "Payments", "the source is backed by an app");
        let (status, answer) = api
            .request(
                Method::DELETE,
                &format!("/api/v1/app/{}", source["appId"].as_str().expect("appId")),
                None,
                &[],
            )
            .await;
        assert_eq!(
            status, 409,
            "a source's backing app is deleted with the source, not alone: {answer}"
        );

        for (body, field) in [
            (json!({"name": "x", "type": "cron", "config": {}}), "type"),
            (
                json!({"name": "x", "type": "stripe", "config": {}}),
                "secret",
            ),
            (
                json!({"name": "x", "type": "generic-webhook",
                       "config": {"verifier": {"type": "hmac", "secret": "s", "header": "X", "algorithm": "md5"}}}),
                "algorithm",
            ),
        ] {
            let (status, answer) = api
                .request(Method::POST, "/ingest/api/v1/source", Some(body), &[])
                .await;
            assert_eq!(status, 422, "{answer}");
            let location = &answer["detail"][0]["loc"];
            assert_eq!(
                location.as_array().and_then(|parts| parts.last()),
                Some(&json!(field)),
                "{answer}"
            );
        }

        let (status, updated) = api
            .request(
                Method::PUT,
                "/ingest/api/v1/source/payments",
                Some(json!({"name": "Payments (live)", "type": "github", "config": {"secret": "s"}})),
                &[],
            )
            .await;
        assert_eq!(status, 200, "{updated}");
        assert_eq!(updated["type"], "github");
        let list = api.get("/ingest/api/v1/source").await;
        assert_eq!(list["data"].as_array().map(Vec::len), Some(1));

        let (status, _) = api
            .request(
                Method::DELETE,
                &format!("/ingest/api/v1/source/{id}"),
                None,
                &[],
            )
            .await;
        assert_eq!(status, 204);
        let (status, _) = api
            .request(
                Method::GET,
                &format!("/ingest/api/v1/source/{id}"),
                None,
                &[],
            )
            .await;
        assert_eq!(status, 404);
        let unknown = reqwest::Client::new()
            .post(format!("{}/in/{id}", api.base))
            .body("{}")
            .send()
            .await
            .expect("herald answers");
        assert_eq!(
            unknown.status().as_u16(),
            404,
            "a deleted source's URL is gone"
        );
    }
}

// SQLite only: a single node restarted on its file. PostgreSQL's kill -9
// story (several nodes, one killed) is `cluster.rs`.
#[tokio::test]
async fn an_acknowledged_inbound_event_survives_kill_9_and_is_forwarded_after_restart() {
    const TOKEN: &str = "gateway-durability-token";
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("herald.db");
    let receiver_address = Receiver::unused_address().await;
    let start = || {
        crate::binary::Herald::start(
            &database,
            // The receiver is down on purpose: no circuit breaker, or deliveries
            // would be put off past the test's deadline.
            &[
                "--retry-schedule",
                &["1s"; 30].join(","),
                "--circuit-breaker-failures",
                "1000000",
            ],
            &[("HERALD_ADMIN_TOKEN", TOKEN)],
        )
    };

    let first = start();
    let api = herald_test_support::Api::new(first.base.clone(), TOKEN);
    let source = api
        .post(
            "/ingest/api/v1/source",
            json!({"name": "durable", "type": "stripe", "config": {"secret": "whsec_durable"}}),
            201,
        )
        .await;
    let id = source["id"].as_str().expect("source id");
    assert_eq!(source["ingestUrl"], format!("{}/in/{id}", first.base));
    api.post(
        &format!("/ingest/api/v1/source/{id}/endpoint"),
        json!({"url": format!("http://{receiver_address}/hook")}),
        201,
    )
    .await;
    let (body, _) = stripe_event(1);
    let headers = provider_headers("stripe", "whsec_durable", &body, json!({}));
    let mut request = reqwest::Client::new()
        .post(source["ingestUrl"].as_str().expect("ingestUrl"))
        .body(body.clone());
    for (name, value) in &headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let answer = request.send().await.expect("herald answers");
    assert_eq!(answer.status().as_u16(), 200);
    let msg: Value = answer.json().await.expect("JSON answer");
    // Killed right after the 2xx, before any delivery could succeed.
    first.kill();

    let receiver = Receiver::start_at(receiver_address, Behaviour::Accept).await;
    let second = start();
    let msg_id = msg["msgId"].as_str().expect("msgId").to_owned();
    let delivered = eventually("the acknowledged event is forwarded", DEADLINE, || async {
        receiver
            .received()
            .into_iter()
            .find(|request| request.header("webhook-id") == msg_id)
    })
    .await;
    assert_eq!(delivered.body.as_ref(), body.as_slice());
    second.kill();
}
