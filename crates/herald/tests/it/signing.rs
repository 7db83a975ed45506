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
        at: request.at,
    }
}

herald_test_support::test_on_both_backends! {
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
}

herald_test_support::test_on_both_backends! {
    async fn a_payload_is_delivered_and_answered_byte_for_byte_as_sent() {
        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::Accept).await;
        let api = &server.api;
        let app = api.create_app("verbatim").await;
        let (_, secret) = api
            .create_endpoint(&app, json!({"url": receiver.url("hook")}))
            .await;
        // Keys out of order, spacing, a number written with a trailing
        // zero and an escaped character: none of it may be rewritten.
        let payload = r#"{ "zeta": 1,  "alpha": [2.50, "caf\u00e9"], "mid": {} }"#;
        let body = format!(r#"{{"eventType": "order.paid", "payload": {payload} }}"#);
        let http = reqwest::Client::new();
        let answer = http
            .post(format!("{}/api/v1/app/{app}/msg", api.base))
            .bearer_auth(&api.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request reaches herald");
        assert_eq!(answer.status(), 202);
        let answered = answer.text().await.expect("answer");
        assert!(answered.contains(payload), "{answered}");

        let request = eventually("the delivery arrives", DEADLINE, || async {
            receiver.received().into_iter().next()
        })
        .await;
        assert_eq!(&request.body[..], payload.as_bytes());
        assert!(verifies(&secret, &request), "the bytes sent are the bytes signed");
    }
}

/// Keys are chosen when the attempt is made, so the grace period must outlast
/// a send and its first attempt on a loaded machine.
const GRACE_SECONDS: u64 = 3;

herald_test_support::test_on_both_backends! {
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
                json!({"gracePeriodSeconds": GRACE_SECONDS}),
                200,
            )
            .await;
        let grace_ends = std::time::Instant::now() + std::time::Duration::from_secs(GRACE_SECONDS);
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
}

herald_test_support::test_on_both_backends! {
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
}

/// A Python interpreter with PyNaCl (libsodium).
fn python_with_pynacl() -> std::path::PathBuf {
    crate::python_venv::python_with("pynacl-venv", "pynacl", "1.6.2")
}

/// Runs `tests/sdk/verify_v1a.py` with one JSON request.
async fn libsodium(request: serde_json::Value) -> serde_json::Value {
    use tokio::io::AsyncWriteExt as _;

    let python = python_with_pynacl();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk/verify_v1a.py");
    let mut child = tokio::process::Command::new(python)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the verifier runs");
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(request.to_string().as_bytes())
        .await
        .expect("the verifier reads its request");
    drop(stdin);
    let output = child.wait_with_output().await.expect("the verifier ends");
    assert!(
        output.status.success(),
        "verify_v1a.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the verifier answers JSON")
}

/// Whether libsodium verifies each request with only the given `whpk_` key.
async fn v1a_verifies(checks: &[(&str, &Received)]) -> Vec<bool> {
    use base64::Engine as _;

    let checks: Vec<serde_json::Value> = checks
        .iter()
        .map(|(public_key, request)| {
            let headers: serde_json::Map<String, serde_json::Value> = request
                .headers
                .iter()
                .filter_map(|(name, value)| Some((name.to_string(), json!(value.to_str().ok()?))))
                .collect();
            json!({
                "public_key": public_key,
                "headers": headers,
                "body_b64": base64::engine::general_purpose::STANDARD.encode(&request.body),
            })
        })
        .collect();
    let answer = libsodium(json!({ "checks": checks })).await;
    serde_json::from_value(answer["verified"].clone()).expect("one answer per check")
}

herald_test_support::test_on_both_backends! {
    async fn asymmetric_deliveries_verify_with_the_public_key_alone() {
        // Set up the verifier first: nothing else runs on this thread yet.
        python_with_pynacl();
        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::Accept).await;
        let api = &server.api;
        let app = api.create_app("asymmetric").await;
        let (_, public_key) = api
            .create_endpoint(
                &app,
                json!({"url": receiver.url("hook"), "keyType": "ed25519"}),
            )
            .await;
        assert!(
            public_key.starts_with("whpk_"),
            "the API answers the public key, never the secret one: {public_key}"
        );
        let msg = api.send(&app, "user.created", json!({"name": "Ada"})).await;

        let request = eventually("the delivery arrives", DEADLINE, || async {
            receiver.received().into_iter().next()
        })
        .await;
        assert_eq!(request.header("webhook-id"), msg);
        let signature = request.header("webhook-signature");
        assert!(signature.starts_with("v1a,"), "{signature}");
        assert_eq!(request.header("svix-signature"), signature);
        assert!(
            !verifies("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &request),
            "an HMAC library finds no v1 entry to accept"
        );

        let stranger = libsodium(json!({"generate": true})).await["public"]
            .as_str()
            .expect("a public key")
            .to_owned();
        let svix_copy = with_svix_headers_only(&request);
        assert_eq!(
            v1a_verifies(&[
                (&public_key, &request),
                (&public_key, &svix_copy),
                (&stranger, &request)
            ])
            .await,
            [true, true, false],
            "webhook-* and svix-* verify with the endpoint's public key, not another"
        );
    }
}

herald_test_support::test_on_both_backends! {
    async fn a_rotation_from_whsec_to_whsk_sends_both_signatures_during_grace() {
        python_with_pynacl();
        // A key pair made by libsodium, not by Herald: Herald must read its
        // `whsk_` layout and answer the same `whpk_`.
        let pair = libsodium(json!({"generate": true})).await;
        let new_secret = pair["secret"].as_str().expect("whsk_").to_owned();
        let new_public = pair["public"].as_str().expect("whpk_").to_owned();

        let server = TestServer::start().await;
        let receiver = Receiver::start(Behaviour::Accept).await;
        let api = &server.api;
        let app = api.create_app("rotate-to-ed25519").await;
        let (endpoint, old_secret) = api
            .create_endpoint(&app, json!({"url": receiver.url("hook")}))
            .await;
        assert!(old_secret.starts_with("whsec_"));
        let rotated = api
            .post(
                &format!("/api/v1/app/{app}/endpoint/{endpoint}/secret/rotate"),
                json!({"key": new_secret, "gracePeriodSeconds": 3600}),
                200,
            )
            .await;
        assert_eq!(rotated["key"], new_public.as_str());
        let fetched = api
            .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}/secret"))
            .await;
        assert_eq!(
            fetched["key"],
            new_public.as_str(),
            "the secret endpoint answers the public key, not the whsk_ it was given"
        );

        api.send(&app, "during.grace", json!({"n": 1})).await;
        let during = eventually("the delivery arrives", DEADLINE, || async {
            receiver.received().into_iter().next()
        })
        .await;
        let signature = during.header("webhook-signature");
        let versions: Vec<&str> = signature
            .split(' ')
            .filter_map(|entry| entry.split_once(',').map(|(version, _)| version))
            .collect();
        assert_eq!(versions, ["v1a", "v1"], "{signature}");
        assert_eq!(during.header("svix-signature"), signature);
        assert!(
            verifies(&old_secret, &during),
            "the old whsec_ still verifies during the grace period"
        );
        assert_eq!(
            v1a_verifies(&[(&new_public, &during)]).await,
            [true],
            "the new whpk_ verifies"
        );
    }
}

herald_test_support::test_on_both_backends! {
    async fn bad_signing_keys_are_refused_naming_the_field() {
        use base64::Engine as _;

        let server = TestServer::start().await;
        let api = &server.api;
        let app = api.create_app("bad-keys").await;
        let path = format!("/api/v1/app/{app}/endpoint");
        let url = "https://example.com/hook";
        let base64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let public_key = herald_core::SigningKey::generate_ed25519().receiver_key();
        // A valid seed followed by a public key that is not its own.
        let mismatched = format!("whsk_{}", base64(&[7u8; 64]));
        let cases = [
            json!({"url": url, "secret": "whsk_garbage!"}),
            json!({"url": url, "secret": format!("whsk_{}", base64(&[7u8; 32]))}),
            json!({"url": url, "secret": mismatched}),
            json!({"url": url, "secret": public_key}),
        ];
        for body in cases {
            let error = api.post(&path, body.clone(), 422).await;
            assert_eq!(
                error["detail"][0]["loc"],
                json!(["body", "secret"]),
                "{body}: {error}"
            );
        }
        let error = api
            .post(
                &path,
                json!({"url": url, "keyType": "ed25519", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
                422,
            )
            .await;
        assert_eq!(
            error["detail"][0]["loc"],
            json!(["body", "keyType"]),
            "{error}"
        );
        let error = api
            .post(&path, json!({"url": url, "keyType": "rsa"}), 422)
            .await;
        assert_eq!(
            error["detail"][0]["loc"],
            json!(["body", "keyType"]),
            "{error}"
        );
        assert!(api.get(&path).await["data"]
            .as_array()
            .expect("data")
            .is_empty());

        let (endpoint, secret) = api.create_endpoint(&app, json!({"url": url})).await;
        let rotate = format!("{path}/{endpoint}/secret/rotate");
        let error = api.post(&rotate, json!({"key": public_key}), 422).await;
        assert_eq!(error["detail"][0]["loc"], json!(["body", "key"]), "{error}");
        let error = api.post(&rotate, json!({"key": "whsk_AAAA"}), 422).await;
        assert_eq!(error["detail"][0]["loc"], json!(["body", "key"]), "{error}");
        let unchanged = api.get(&format!("{path}/{endpoint}/secret")).await;
        assert_eq!(
            unchanged["key"],
            secret.as_str(),
            "a refused rotation changes nothing"
        );
    }
}
