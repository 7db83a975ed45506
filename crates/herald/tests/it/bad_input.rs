//! Bad input gets a specific answer and changes nothing.

use herald_test_support::{TestServer, TestServerOptions};
use reqwest::Method;
use serde_json::json;

async fn raw_post(server: &TestServer, path: &str, body: &'static str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{}", server.api.base, path))
        .bearer_auth(&server.api.token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("reaches herald");
    let status = response.status().as_u16();
    (
        status,
        response.json().await.expect("error bodies are JSON"),
    )
}

fn location(error: &serde_json::Value) -> serde_json::Value {
    error["detail"][0]["loc"].clone()
}

herald_test_support::test_on_both_backends! {
    async fn malformed_json_is_a_bad_request() {
        let server = TestServer::start().await;
        let (status, body) = raw_post(&server, "/api/v1/app", "{\"name\": ").await;
        assert_eq!(status, 400);
        assert_eq!(body["code"], "bad_request");
        assert!(server.api.get("/api/v1/app").await["data"]
            .as_array()
            .expect("data")
            .is_empty());
    }
}

herald_test_support::test_on_both_backends! {
    async fn unknown_missing_and_mistyped_fields_are_named() {
        let server = TestServer::start().await;
        let api = &server.api;
        let error = api
            .post("/api/v1/app", json!({"name": "x", "nmae": "typo"}), 422)
            .await;
        assert_eq!(location(&error), json!(["body", "nmae"]));
        let error = api.post("/api/v1/app", json!({}), 422).await;
        assert_eq!(location(&error), json!(["body", "name"]));
        let error = api.post("/api/v1/app", json!({"name": 5}), 422).await;
        assert_eq!(location(&error), json!(["body", "name"]));
        assert!(api.get("/api/v1/app").await["data"]
            .as_array()
            .expect("data")
            .is_empty());
    }
}

herald_test_support::test_on_both_backends! {
    async fn invalid_endpoint_urls_and_secrets_are_rejected() {
        let server = TestServer::start().await;
        let api = &server.api;
        let app = api.create_app("urls").await;
        let path = format!("/api/v1/app/{app}/endpoint");
        for url in ["not a url", "ftp://example.com/x", "/relative", "http://"] {
            let error = api.post(&path, json!({"url": url}), 422).await;
            assert_eq!(location(&error), json!(["body", "url"]), "{url}: {error}");
        }
        let error = api
            .post(
                &path,
                json!({"url": "https://example.com", "secret": "whsec_short"}),
                422,
            )
            .await;
        assert_eq!(location(&error), json!(["body", "secret"]));
        let error = api
            .post(
                &path,
                json!({"url": "https://example.com", "filterTypes": ["bad type"]}),
                422,
            )
            .await;
        assert_eq!(location(&error), json!(["body", "filterTypes"]));
        assert!(api.get(&path).await["data"]
            .as_array()
            .expect("data")
            .is_empty());
    }
}

herald_test_support::test_on_both_backends! {
    async fn payloads_must_be_json_objects() {
        let server = TestServer::start().await;
        let api = &server.api;
        let app = api.create_app("payloads").await;
        let path = format!("/api/v1/app/{app}/msg");
        for payload in [json!("text"), json!([1, 2]), json!(null), json!(3)] {
            let error = api
                .post(&path, json!({"eventType": "a.b", "payload": payload}), 422)
                .await;
            assert_eq!(location(&error), json!(["body", "payload"]), "{payload}");
        }
        let error = api
            .post(
                &path,
                json!({"eventType": "not valid!", "payload": {}}),
                422,
            )
            .await;
        assert_eq!(location(&error), json!(["body", "eventType"]));
        assert!(api.get(&path).await["data"]
            .as_array()
            .expect("data")
            .is_empty());
    }
}

herald_test_support::test_on_both_backends! {
    async fn oversized_payloads_are_refused_with_413() {
        let server = TestServer::start_with(TestServerOptions {
            max_payload_bytes: 1024,
            ..TestServerOptions::default()
        })
        .await;
        let api = &server.api;
        let app = api.create_app("big").await;
        let path = format!("/api/v1/app/{app}/msg");
        let error = api
            .post(
                &path,
                json!({"eventType": "a.b", "payload": {"blob": "x".repeat(2000)}}),
                413,
            )
            .await;
        assert_eq!(error["code"], "payload_too_large");
        // Far past the limit, the body is cut off before it is even parsed.
        let error = api
            .post(
                &path,
                json!({"eventType": "a.b", "payload": {"blob": "x".repeat(200_000)}}),
                413,
            )
            .await;
        assert_eq!(error["code"], "payload_too_large");
        api.post(
            &path,
            json!({"eventType": "a.b", "payload": {"blob": "x".repeat(500)}}),
            202,
        )
        .await;
        assert_eq!(
            api.get(&path).await["data"].as_array().expect("data").len(),
            1
        );
    }
}

herald_test_support::test_on_both_backends! {
    async fn unknown_apps_endpoints_and_messages_are_404() {
        let server = TestServer::start().await;
        let api = &server.api;
        let (status, body) = api
            .request(
                Method::POST,
                "/api/v1/app/nope/msg",
                Some(json!({"eventType": "a.b", "payload": {}})),
                &[],
            )
            .await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
        let app = api.create_app("present").await;
        for path in [
            format!("/api/v1/app/{app}/endpoint/ep_missing"),
            format!("/api/v1/app/{app}/msg/msg_missing"),
            format!("/api/v1/app/{app}/attempt/msg/msg_missing"),
        ] {
            let (status, _) = api.request(Method::GET, &path, None, &[]).await;
            assert_eq!(status, 404, "{path}");
        }
    }
}

herald_test_support::test_on_both_backends! {
    async fn zero_rates_and_endless_grace_periods_are_refused() {
        let server = TestServer::start().await;
        let api = &server.api;
        let error = api
            .post("/api/v1/app", json!({"name": "x", "throttleRate": 0}), 422)
            .await;
        assert_eq!(location(&error), json!(["body", "throttleRate"]));
        let app = api.create_app("grace").await;
        let (endpoint, secret) = api
            .create_endpoint(&app, json!({"url": "https://example.com"}))
            .await;
        let error = api
            .post(
                &format!("/api/v1/app/{app}/endpoint/{endpoint}/secret/rotate"),
                json!({"gracePeriodSeconds": 100_000_000u64}),
                422,
            )
            .await;
        assert_eq!(location(&error), json!(["body", "gracePeriodSeconds"]));
        let unchanged = api
            .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}/secret"))
            .await;
        assert_eq!(
            unchanged["key"],
            secret.as_str(),
            "a refused rotation changes nothing"
        );
    }
}
