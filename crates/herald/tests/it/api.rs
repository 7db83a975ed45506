//! The REST API's resources, status codes and list shape.

use std::sync::Arc;
use std::time::Duration;

use herald_core::clock::ManualClock;
use herald_core::Clock;
use herald_test_support::{Api, TestServer, TestServerOptions};
use reqwest::Method;
use serde_json::json;

herald_test_support::test_on_both_backends! {
    async fn apps_are_created_read_updated_and_deleted_by_id_or_uid() {
        let server = TestServer::start().await;
        let api = &server.api;
        let app = api
            .post(
                "/api/v1/app",
                json!({"name": "Acme", "uid": "acme", "metadata": {"plan": "pro"}}),
                201,
            )
            .await;
        let id = app["id"].as_str().expect("id");
        assert!(id.starts_with("app_"));
        assert_eq!(app["uid"], "acme");
        assert_eq!(app["metadata"]["plan"], "pro");
        assert!(app["createdAt"].as_str().expect("createdAt").ends_with('Z'));

        assert_eq!(api.get(&format!("/api/v1/app/{id}")).await["name"], "Acme");
        assert_eq!(api.get("/api/v1/app/acme").await["id"], id);

        let (status, patched) = api
            .request(
                Method::PATCH,
                "/api/v1/app/acme",
                Some(json!({"name": "Acme Inc"})),
                &[],
            )
            .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(patched["name"], "Acme Inc");
        assert_eq!(patched["uid"], "acme", "a PATCH leaves absent fields alone");

        let (status, replaced) = api
            .request(
                Method::PUT,
                &format!("/api/v1/app/{id}"),
                Some(json!({"name": "Replaced"})),
                &[],
            )
            .await;
        assert_eq!(status, 200, "{replaced}");
        assert_eq!(
            replaced["uid"],
            serde_json::Value::Null,
            "a PUT replaces every field"
        );

        let (status, _) = api
            .request(Method::DELETE, &format!("/api/v1/app/{id}"), None, &[])
            .await;
        assert_eq!(status, 204);
        let (status, body) = api
            .request(Method::GET, &format!("/api/v1/app/{id}"), None, &[])
            .await;
        assert_eq!(status, 404);
        assert_eq!(body["code"], "not_found");
    }
}

herald_test_support::test_on_both_backends! {
    async fn a_duplicate_uid_conflicts_unless_get_if_exists_is_asked() {
        let server = TestServer::start().await;
        let api = &server.api;
        let first = api
            .post(
                "/api/v1/app",
                json!({"name": "One", "uid": "tenant-1"}),
                201,
            )
            .await;
        let conflict = api
            .post(
                "/api/v1/app",
                json!({"name": "Two", "uid": "tenant-1"}),
                409,
            )
            .await;
        assert_eq!(conflict["code"], "conflict");
        let existing = api
            .post(
                "/api/v1/app?get_if_exists=true",
                json!({"name": "Two", "uid": "tenant-1"}),
                200,
            )
            .await;
        assert_eq!(existing["id"], first["id"]);
        let list = api.get("/api/v1/app").await;
        assert_eq!(
            list["data"].as_array().expect("data").len(),
            1,
            "nothing was created twice"
        );
    }
}

herald_test_support::test_on_both_backends! {
    async fn requests_without_a_valid_token_are_refused() {
        let server = TestServer::start().await;
        let anonymous = herald_test_support::Api::new(server.api.base.clone(), "wrong-token");
        let (status, body) = anonymous
            .request(Method::GET, "/api/v1/app", None, &[])
            .await;
        assert_eq!(status, 401);
        assert_eq!(body["code"], "authentication_failed");
        let bare = reqwest::get(format!("{}/api/v1/app", server.api.base))
            .await
            .expect("reaches herald");
        assert_eq!(bare.status(), 401);
        let health = reqwest::get(format!("{}/api/v1/health", server.api.base))
            .await
            .expect("reaches herald");
        assert_eq!(health.status(), 200, "health needs no token");
    }
}

herald_test_support::test_on_both_backends! {
    async fn lists_page_forwards_and_backwards_with_iterators() {
        let server = TestServer::start().await;
        let api = &server.api;
        let mut created = Vec::new();
        for index in 0..7 {
            created.push(api.create_app(&format!("app {index}")).await);
        }
        let mut seen = Vec::new();
        let mut iterator: Option<String> = None;
        let mut pages = 0;
        loop {
            let path = match &iterator {
                Some(iterator) => format!("/api/v1/app?limit=3&iterator={iterator}"),
                None => "/api/v1/app?limit=3".to_owned(),
            };
            let page = api.get(&path).await;
            pages += 1;
            for app in page["data"].as_array().expect("data") {
                seen.push(app["id"].as_str().expect("id").to_owned());
            }
            if page["done"].as_bool().expect("done") {
                break;
            }
            iterator = Some(page["iterator"].as_str().expect("iterator").to_owned());
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, created, "apps list oldest first, each exactly once");

        // From the last page, prevIterator leads back to the page before it.
        let last = api
            .get(&format!("/api/v1/app?limit=3&iterator={}", created[5]))
            .await;
        assert_eq!(last["data"][0]["id"], created[6].as_str());
        let previous = last["prevIterator"].as_str().expect("prevIterator");
        let back = api
            .get(&format!("/api/v1/app?limit=3&iterator={previous}"))
            .await;
        let back_ids: Vec<_> = back["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|app| app["id"].clone())
            .collect();
        assert_eq!(
            back_ids,
            vec![json!(created[3]), json!(created[4]), json!(created[5])]
        );
    }
}

herald_test_support::test_on_both_backends! {
    async fn messages_page_newest_first() {
        let server = TestServer::start().await;
        let api = &server.api;
        let app = api.create_app("pager").await;
        let mut sent = Vec::new();
        for index in 0..5 {
            sent.push(api.send(&app, "page.test", json!({"index": index})).await);
        }
        let first = api.get(&format!("/api/v1/app/{app}/msg?limit=2")).await;
        assert_eq!(first["data"][0]["id"], sent[4].as_str());
        assert_eq!(first["data"][1]["id"], sent[3].as_str());
        assert_eq!(first["done"], false);
        let next = api
            .get(&format!(
                "/api/v1/app/{app}/msg?limit=2&iterator={}",
                first["iterator"].as_str().expect("iterator")
            ))
            .await;
        assert_eq!(next["data"][0]["id"], sent[2].as_str());
        let last = api
            .get(&format!(
                "/api/v1/app/{app}/msg?limit=2&iterator={}",
                next["iterator"].as_str().expect("iterator")
            ))
            .await;
        assert_eq!(last["data"].as_array().expect("data").len(), 1);
        assert_eq!(last["done"], true);
    }
}

herald_test_support::test_on_both_backends! {
    async fn a_messages_destinations_page_like_every_other_list() {
        let server = TestServer::start().await;
        let api = &server.api;
        let app = api.create_app("fan-out").await;
        let mut endpoints = Vec::new();
        for _ in 0..3 {
            let body = json!({"url": "http://127.0.0.1:9/hook"});
            endpoints.push(api.create_endpoint(&app, body).await.0);
        }
        endpoints.sort();
        let msg = api.send(&app, "fan.out", json!({})).await;
        let ids = |page: &serde_json::Value| -> Vec<String> {
            let data = page["data"].as_array().expect("data");
            data.iter()
                .map(|entry| entry["id"].as_str().expect("endpoint id").to_owned())
                .collect()
        };
        let path = format!("/api/v1/app/{app}/msg/{msg}/endpoint");

        let first = api.get(&format!("{path}?limit=2")).await;
        assert_eq!(ids(&first), endpoints[..2], "{first}");
        assert_eq!(first["done"], false);
        let iterator = first["iterator"].as_str().expect("iterator");
        let second = api.get(&format!("{path}?limit=2&iterator={iterator}")).await;
        assert_eq!(ids(&second), endpoints[2..], "{second}");
        assert_eq!(second["done"], true);
        let back = second["prevIterator"].as_str().expect("prevIterator");
        let again = api.get(&format!("{path}?limit=2&iterator={back}")).await;
        assert_eq!(ids(&again), endpoints[..2], "{again}");

        let (status, refused) = api
            .request(Method::GET, &format!("{path}?limit=0"), None, &[])
            .await;
        assert_eq!(status, 422, "{refused}");
    }
}

herald_test_support::test_on_both_backends! {
    async fn event_types_are_managed_and_archived_on_delete() {
        let server = TestServer::start().await;
        let api = &server.api;
        let created = api
            .post(
                "/api/v1/event-type",
                json!({"name": "invoice.paid", "description": "An invoice was paid"}),
                201,
            )
            .await;
        assert_eq!(created["deprecated"], false);
        api.post(
            "/api/v1/event-type",
            json!({"name": "invoice.paid", "description": "again"}),
            409,
        )
        .await;
        let (status, patched) = api
            .request(
                Method::PATCH,
                "/api/v1/event-type/invoice.paid",
                Some(json!({"deprecated": true})),
                &[],
            )
            .await;
        assert_eq!(status, 200);
        assert_eq!(patched["deprecated"], true);
        assert_eq!(patched["description"], "An invoice was paid");
        let (status, _) = api
            .request(Method::DELETE, "/api/v1/event-type/invoice.paid", None, &[])
            .await;
        assert_eq!(status, 204);
        let listed = api.get("/api/v1/event-type").await;
        assert_eq!(
            listed["data"].as_array().expect("data").len(),
            0,
            "archived types are hidden"
        );
        let all = api.get("/api/v1/event-type?include_archived=true").await;
        assert_eq!(all["data"][0]["archived"], true);
    }
}

herald_test_support::test_on_both_backends! {
    async fn endpoints_accept_both_filter_spellings_and_answer_with_both() {
        let server = TestServer::start().await;
        let api = &server.api;
        let app = api.create_app("filters").await;
        let endpoint = api
            .post(
                &format!("/api/v1/app/{app}/endpoint"),
                json!({"url": "https://example.com/hook", "filterTypes": ["a.b"], "rateLimit": 5, "uid": "main"}),
                201,
            )
            .await;
        assert_eq!(endpoint["eventTypes"], json!(["a.b"]));
        assert_eq!(endpoint["filterTypes"], json!(["a.b"]));
        assert_eq!(endpoint["throttleRate"], 5);
        assert_eq!(endpoint["description"], "");

        let (status, patched) = api
            .request(
                Method::PATCH,
                &format!("/api/v1/app/{app}/endpoint/main"),
                Some(json!({"eventTypes": null, "channels": ["eu"]})),
                &[],
            )
            .await;
        assert_eq!(status, 200, "{patched}");
        assert_eq!(
            patched["eventTypes"],
            serde_json::Value::Null,
            "null clears the filter"
        );
        assert_eq!(patched["channels"], json!(["eu"]));
        assert_eq!(patched["url"], "https://example.com/hook");

        api.post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": "https://x.test", "uid": "main"}),
            409,
        )
        .await;
    }
}

herald_test_support::test_on_both_backends! {
    async fn endpoint_headers_are_replaced_patched_and_sensitive_values_withheld() {
        let server = TestServer::start().await;
        let api = &server.api;
        let app = api.create_app("headers").await;
        let (endpoint, _) = api
            .create_endpoint(&app, json!({"url": "https://example.com"}))
            .await;
        let path = format!("/api/v1/app/{app}/endpoint/{endpoint}/headers");
        let (status, _) = api
            .request(
                Method::PUT,
                &path,
                Some(json!({"headers": {"X-Team": "core", "Authorization": "Bearer s3cret"}})),
                &[],
            )
            .await;
        assert_eq!(status, 204);
        let headers = api.get(&path).await;
        assert_eq!(headers["headers"], json!({"X-Team": "core"}));
        assert_eq!(headers["sensitive"], json!(["Authorization"]));
        let (status, _) = api
            .request(
                Method::PATCH,
                &path,
                Some(json!({"headers": {"X-Team": null, "X-New": "1"}})),
                &[],
            )
            .await;
        assert_eq!(status, 204);
        assert_eq!(api.get(&path).await["headers"], json!({"X-New": "1"}));
        let (status, error) = api
            .request(
                Method::PUT,
                &path,
                Some(json!({"headers": {"webhook-id": "forged"}})),
                &[],
            )
            .await;
        assert_eq!(
            status, 422,
            "signature headers cannot be overridden: {error}"
        );
    }
}

herald_test_support::test_on_both_backends! {
    async fn secrets_can_be_supplied_read_and_rotated() {
        let server = TestServer::start().await;
        let api = &server.api;
        let app = api.create_app("secrets").await;
        let supplied = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let (endpoint, secret) = api
            .create_endpoint(
                &app,
                json!({"url": "https://example.com", "secret": supplied}),
            )
            .await;
        assert_eq!(secret, supplied);
        let rotated = api
            .post(
                &format!("/api/v1/app/{app}/endpoint/{endpoint}/secret/rotate"),
                json!({}),
                200,
            )
            .await;
        let new_key = rotated["key"]
            .as_str()
            .expect("rotation answers the new key");
        assert!(new_key.starts_with("whsec_"));
        assert_ne!(new_key, supplied);
        let current = api
            .get(&format!("/api/v1/app/{app}/endpoint/{endpoint}/secret"))
            .await;
        assert_eq!(current["key"], new_key);
    }
}

herald_test_support::test_on_both_backends! {
    async fn an_applications_portal_token_reaches_that_application_alone() {
        let server = TestServer::start().await;
        let admin = &server.api;
        let acme = admin.create_app("acme").await;
        let other = admin.create_app("other").await;
        admin
            .post("/api/v1/event-type", json!({"name": "invoice.paid", "description": "x"}), 201)
            .await;
        let portal = |read_only: bool| {
            let path = format!("/api/v1/auth/app-portal-access/{acme}");
            async move {
                let access = admin.post(&path, json!({"readOnly": read_only}), 200).await;
                Api::new(admin.base.clone(), access["token"].as_str().expect("token"))
            }
        };
        let tenant = portal(false).await;
        let status = |api: &Api, method: Method, path: String, body: Option<serde_json::Value>| {
            let api = api.clone();
            async move { api.request(method, &path, body, &[]).await }
        };

        // Its own application: read and write.
        let own = [
            (Method::GET, format!("/api/v1/app/{acme}"), None),
            (Method::GET, format!("/api/v1/app/{acme}/endpoint"), None),
            (Method::GET, format!("/api/v1/app/{acme}/msg"), None),
            (Method::GET, "/api/v1/event-type".to_owned(), None),
        ];
        for (method, path, body) in own {
            let (code, answer) = status(&tenant, method, path.clone(), body).await;
            assert_eq!(code, 200, "{path}: {answer}");
        }
        let (code, created) = status(
            &tenant,
            Method::POST,
            format!("/api/v1/app/{acme}/endpoint"),
            Some(json!({"url": "https://receiver.example/hook"})),
        )
        .await;
        assert_eq!(code, 201, "{created}");

        // Anything else: 403, with the error shape of every answer.
        let elsewhere = [
            (Method::GET, format!("/api/v1/app/{other}"), None),
            (Method::GET, format!("/api/v1/app/{other}/msg"), None),
            (Method::GET, "/api/v1/app".to_owned(), None),
            (Method::DELETE, format!("/api/v1/app/{acme}"), None),
            (Method::PATCH, format!("/api/v1/app/{acme}"), Some(json!({"name": "x"}))),
            (
                Method::POST,
                "/api/v1/event-type".to_owned(),
                Some(json!({"name": "a.b", "description": "x"})),
            ),
            (Method::POST, format!("/api/v1/auth/app-portal-access/{acme}"), None),
            (Method::GET, "/api/v1/background-task".to_owned(), None),
            (
                Method::POST,
                format!("/api/v1/app/{acme}/msg"),
                Some(json!({"eventType": "invoice.paid", "payload": {}})),
            ),
            (Method::GET, "/ingest/api/v1/source".to_owned(), None),
            (Method::GET, "/metrics".to_owned(), None),
        ];
        for (method, path, body) in elsewhere {
            let (code, answer) = status(&tenant, method.clone(), path.clone(), body).await;
            assert_eq!(code, 403, "{method} {path}: {answer}");
            assert_eq!(answer["code"], "forbidden", "{path}");
        }

        let reader = portal(true).await;
        let (code, _) = status(&reader, Method::GET, format!("/api/v1/app/{acme}/endpoint"), None).await;
        assert_eq!(code, 200);
        let (code, answer) = status(
            &reader,
            Method::POST,
            format!("/api/v1/app/{acme}/msg"),
            Some(json!({"eventType": "invoice.paid", "payload": {}})),
        )
        .await;
        assert_eq!(code, 403, "a read-only token writes nothing: {answer}");

        let forged = Api::new(admin.base.clone(), "not-a-token");
        let (code, _) = status(&forged, Method::GET, format!("/api/v1/app/{acme}"), None).await;
        assert_eq!(code, 401);
    }
}

herald_test_support::test_on_both_backends! {
    async fn a_post_retried_with_its_idempotency_key_is_done_once() {
        let server = TestServer::start().await;
        let api = &server.api;
        let create = |body: serde_json::Value, key: &'static str| {
            let api = api.clone();
            async move {
                api.request(Method::POST, "/api/v1/app", Some(body), &[("idempotency-key", key)])
                    .await
            }
        };
        let (status, first) = create(json!({"name": "once"}), "k-1").await;
        assert_eq!(status, 201, "{first}");
        let (status, again) = create(json!({"name": "once"}), "k-1").await;
        assert_eq!(status, 201, "{again}");
        assert_eq!(again["id"], first["id"], "the retry answers the first app");
        let listed = api.get("/api/v1/app").await;
        assert_eq!(listed["data"].as_array().expect("data").len(), 1, "{listed}");

        let (status, refused) = create(json!({"name": "other"}), "k-1").await;
        assert_eq!(status, 422, "{refused}");
        assert_eq!(refused["detail"][0]["loc"], json!(["header", "idempotency-key"]));

        // A key is scoped to its path; another key is another request.
        let (status, _) = api
            .request(
                Method::POST,
                "/api/v1/event-type",
                Some(json!({"name": "a.b", "description": "x"})),
                &[("idempotency-key", "k-1")],
            )
            .await;
        assert_eq!(status, 201);
        let (status, second) = create(json!({"name": "once"}), "k-2").await;
        assert_eq!(status, 201);
        assert_ne!(second["id"], first["id"]);

        // The answer that is given again is the first one, refusals included.
        let (status, _) = create(json!({"name": ""}), "k-3").await;
        assert_eq!(status, 422);
        let (status, _) = create(json!({"name": ""}), "k-3").await;
        assert_eq!(status, 422);
    }
}

/// A server whose clock moves only when the test moves it.
async fn server_on_a_manual_clock() -> (TestServer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(herald_core::SystemClock.now()));
    let server = TestServer::start_with(TestServerOptions {
        clock: Some(clock.clone()),
        ..TestServerOptions::default()
    })
    .await;
    (server, clock)
}

/// A portal link to `app` made with `body`: its token as an API client,
/// and its console URL.
async fn portal_link(admin: &Api, app: &str, body: serde_json::Value) -> (Api, String) {
    let access = admin
        .post(&format!("/api/v1/auth/app-portal-access/{app}"), body, 200)
        .await;
    let url = access["url"].as_str().expect("url").to_owned();
    let token = access["token"].as_str().expect("token");
    (Api::new(admin.base.clone(), token), url)
}

/// Whether a portal link still works; the API and the console's portal
/// page must agree.
async fn portal_link_works(app: &str, (tenant, url): &(Api, String)) -> bool {
    let path = format!("/api/v1/app/{app}");
    let (api, _) = tenant.request(Method::GET, &path, None, &[]).await;
    let page = reqwest::get(url)
        .await
        .expect("the console answers")
        .status();
    match (api, page.as_u16()) {
        (200, 200) => true,
        (401, 401) => false,
        other => panic!("the API and the portal page disagree: {other:?}"),
    }
}

herald_test_support::test_on_both_backends! {
    async fn expiring_an_applications_portal_tokens_ends_them_after_their_grace() {
        let (server, clock) = server_on_a_manual_clock().await;
        let admin = &server.api;
        let acme = admin.create_app("acme").await;
        let issue = || portal_link(admin, &acme, json!({}));
        let expire_path = format!("/api/v1/auth/app/{acme}/expire-all");
        let expire_all =
            |body: serde_json::Value| admin.request(Method::POST, &expire_path, Some(body), &[]);

        let first = issue().await;
        assert!(portal_link_works(&acme, &first).await);
        clock.advance(Duration::from_millis(5));
        let (status, _) = expire_all(json!({})).await;
        assert_eq!(status, 204);
        assert!(!portal_link_works(&acme, &first).await, "ended at once by default");

        clock.advance(Duration::from_millis(5));
        let second = issue().await;
        assert!(portal_link_works(&acme, &second).await, "issued afterwards");
        clock.advance(Duration::from_millis(5));
        let (status, _) = expire_all(json!({"expiry": 60, "sessionIds": []})).await;
        assert_eq!(status, 204);
        assert!(portal_link_works(&acme, &second).await, "within its grace");
        clock.advance(Duration::from_secs(61));
        assert!(!portal_link_works(&acme, &second).await, "after its grace");
        assert!(!portal_link_works(&acme, &first).await, "and the first stays ended");

        // Bad input changes nothing; a tenant cannot end its own tokens.
        let third = issue().await;
        clock.advance(Duration::from_millis(5));
        let (status, refused) = expire_all(json!({"expiry": 40_000_000})).await;
        assert_eq!(status, 422, "{refused}");
        assert!(refused.to_string().contains("expiry"), "{refused}");
        let (status, _) = admin
            .request(Method::POST, "/api/v1/auth/app/app_nothing/expire-all", None, &[])
            .await;
        assert_eq!(status, 404);
        let (status, _) = third
            .0
            .request(
                Method::POST,
                &format!("/api/v1/auth/app/{acme}/expire-all"),
                Some(json!({})),
                &[],
            )
            .await;
        assert_eq!(status, 403);
        assert!(portal_link_works(&acme, &third).await);
    }
}

herald_test_support::test_on_both_backends! {
    async fn expiring_a_sessions_portal_tokens_ends_only_that_sessions_links() {
        let (server, clock) = server_on_a_manual_clock().await;
        let admin = &server.api;
        let acme = admin.create_app("acme").await;
        let access_path = format!("/api/v1/auth/app-portal-access/{acme}");
        let issue = |body: serde_json::Value| portal_link(admin, &acme, body);
        let expire_path = format!("/api/v1/auth/app/{acme}/expire-all");
        let expire_all =
            |body: serde_json::Value| admin.request(Method::POST, &expire_path, Some(body), &[]);

        let alice = issue(json!({"sessionId": "alice"})).await;
        let bob = issue(json!({"sessionId": "bob.example/1"})).await;
        let carol = issue(json!({"sessionId": "carol"})).await;
        let plain = issue(json!({})).await;
        clock.advance(Duration::from_millis(5));
        let (status, _) = expire_all(json!({"sessionIds": ["alice", "bob.example/1"]})).await;
        assert_eq!(status, 204);
        assert!(!portal_link_works(&acme, &alice).await, "alice's session ended");
        assert!(!portal_link_works(&acme, &bob).await, "bob's too");
        assert!(portal_link_works(&acme, &carol).await, "carol's was not named");
        assert!(portal_link_works(&acme, &plain).await, "a link without a session stays");
        let alice_again = issue(json!({"sessionId": "alice"})).await;
        assert!(portal_link_works(&acme, &alice_again).await, "a new link of an ended session works");
        let longest = issue(json!({"sessionId": "é".repeat(128)})).await;
        assert!(portal_link_works(&acme, &longest).await, "256 bytes is not too long");

        // Bad input names its field and changes nothing.
        let long = "s".repeat(257);
        for (body, field) in [
            (json!({"sessionIds": ["carol", ""]}), json!(["body", "sessionIds", "1"])),
            (json!({"sessionIds": ["carol\u{0}"]}), json!(["body", "sessionIds", "0"])),
            (json!({"sessionIds": [long.clone()]}), json!(["body", "sessionIds", "0"])),
            (
                json!({"sessionIds": (0..101).map(|i| format!("s{i}")).collect::<Vec<_>>()}),
                json!(["body", "sessionIds"]),
            ),
        ] {
            let (status, refused) = expire_all(body).await;
            assert_eq!(status, 422, "{refused}");
            assert_eq!(refused["detail"][0]["loc"], field, "{refused}");
        }
        assert!(portal_link_works(&acme, &carol).await, "no refused order touched carol");
        for session in [json!(""), json!(long), json!("tab\there")] {
            let (status, refused) = admin
                .request(Method::POST, &access_path, Some(json!({ "sessionId": session })), &[])
                .await;
            assert_eq!(status, 422, "{refused}");
            assert_eq!(refused["detail"][0]["loc"], json!(["body", "sessionId"]), "{refused}");
        }

        // An order for every token reaches every session.
        clock.advance(Duration::from_millis(5));
        let (status, _) = expire_all(json!({})).await;
        assert_eq!(status, 204);
        assert!(!portal_link_works(&acme, &carol).await && !portal_link_works(&acme, &plain).await && !portal_link_works(&acme, &alice_again).await);
    }
}
