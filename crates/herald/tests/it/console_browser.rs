//! The console in a real browser: Playwright (`playwright-core` from npm)
//! drives Debian's Chromium through `tests/console/console_e2e.cjs`
//! against a real Herald seeded here through the API, with loopback
//! receivers. The script saves screenshots of the main pages; their folder
//! is printed.
//!
//! Needs `node`, `/usr/bin/chromium` (or `HERALD_CHROMIUM`) and
//! playwright-core under `HERALD_NODE_MODULES` (default
//! `~/.cache/herald-node/node_modules`, where `.ci/run` installs it). In
//! CI (`CI=true`) a missing piece fails the test; elsewhere it is skipped
//! with the reason printed.

use std::io::Write;
use std::path::{Path, PathBuf};

use herald_test_support::{eventually, Behaviour, Receiver, TestServer, TEST_TOKEN};
use serde_json::json;

use crate::DEADLINE;

/// Printed past the test harness's capture, so it shows in any run.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// What the browser test needs, or why it cannot run here.
fn toolchain() -> Result<(PathBuf, PathBuf), String> {
    let node_ok = std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !node_ok {
        return Err("node is not installed".to_owned());
    }
    let chromium = PathBuf::from(
        std::env::var("HERALD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()),
    );
    if !chromium.exists() {
        return Err(format!(
            "{} is missing (apt-get install chromium)",
            chromium.display()
        ));
    }
    let modules = std::env::var("HERALD_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default())
                .join(".cache/herald-node/node_modules")
        });
    if !modules.join("playwright-core").exists() {
        return Err(format!(
            "playwright-core is not in {} (npm install --prefix {} playwright-core)",
            modules.display(),
            modules.parent().unwrap_or(&modules).display()
        ));
    }
    Ok((chromium, modules))
}

#[tokio::test]
async fn an_operator_and_a_tenant_use_the_console_in_chromium() {
    let (chromium, modules) = match toolchain() {
        Ok(found) => found,
        Err(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("the console browser test cannot run in CI: {reason}")
        }
        Err(reason) => {
            say(&format!("skipping the console browser test: {reason}"));
            return;
        }
    };
    let server = TestServer::start().await;
    let api = &server.api;
    let good = Receiver::start(Behaviour::Accept).await;
    let flaky = Receiver::start(Behaviour::AlwaysFail { status: 500 }).await;

    api.post(
        "/api/v1/event-type",
        json!({
            "name": "invoice.paid",
            "description": "An invoice was paid",
            "schemas": { "1": { "type": "object", "properties": { "amount": { "type": "integer" } },
                                "examples": [{ "invoice": "in_example", "amount": 4200 }] } }
        }),
        201,
    )
    .await;
    api.post(
        "/api/v1/event-type",
        json!({ "name": "order.created", "description": "An order was placed" }),
        201,
    )
    .await;

    let acme = api.create_app("Acme").await;
    api.create_endpoint(
        &acme,
        json!({ "url": good.url("acme"), "eventTypes": ["invoice.paid"] }),
    )
    .await;
    let (flaky_endpoint, _) = api
        .create_endpoint(
            &acme,
            json!({ "url": flaky.url("orders"), "eventTypes": ["order.created"] }),
        )
        .await;
    for amount in 1..=5 {
        api.send(
            &acme,
            "invoice.paid",
            json!({ "invoice": format!("in_{amount}"), "amount": amount * 100 }),
        )
        .await;
    }
    let failed = api
        .send(
            &acme,
            "order.created",
            json!({ "order": "ord_1", "note": "<script>alert(1)</script>" }),
        )
        .await;
    eventually("the order's delivery fails for good", DEADLINE, || async {
        let destinations = api.destinations_of(&acme, &failed).await;
        destinations
            .iter()
            .any(|delivery| delivery["status"] == 2 && delivery["nextAttempt"].is_null())
            .then_some(())
    })
    .await;
    // From now on the endpoint works: the resend pressed in the browser succeeds.
    flaky.set_behaviour(Behaviour::Accept);

    let globex = api.create_app("Globex").await;
    let (globex_endpoint, _) = api
        .create_endpoint(&globex, json!({ "url": good.url("globex") }))
        .await;
    let globex_msg = api
        .send(&globex, "invoice.paid", json!({ "invoice": "in_globex" }))
        .await;

    let source = api
        .post(
            "/ingest/api/v1/source",
            json!({ "name": "Payments", "type": "svix",
                    "config": { "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" } }),
            201,
        )
        .await;
    let ingest_url = source["ingestUrl"].as_str().expect("ingestUrl");
    let rejected = reqwest::Client::new()
        .post(ingest_url)
        .body(r#"{"type":"payment.succeeded"}"#)
        .send()
        .await
        .expect("the gateway answers");
    assert_eq!(rejected.status(), 401, "an unsigned request is rejected");

    let link = api
        .post(
            &format!("/api/v1/auth/app-portal-access/{acme}"),
            json!({}),
            200,
        )
        .await;
    let secret_path = format!("/api/v1/app/{acme}/endpoint/{flaky_endpoint}/secret");
    let secret_before = api.get(&secret_path).await["key"].clone();

    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&screenshots).expect("the screenshot folder can be made");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/console/console_e2e.cjs");
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .env("NODE_PATH", &modules)
        .env("HERALD_CHROMIUM", &chromium)
        .env("HERALD_URL", &api.base)
        .env("HERALD_TOKEN", TEST_TOKEN)
        .env("ACME_APP", &acme)
        .env("FAILED_MSG", &failed)
        .env("FLAKY_ENDPOINT", &flaky_endpoint)
        .env("PORTAL_URL", link["url"].as_str().expect("url"))
        .env("OTHER_APP", &globex)
        .env("OTHER_ENDPOINT", &globex_endpoint)
        .env("OTHER_MSG", &globex_msg)
        .env("SCREENSHOT_DIR", &screenshots)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the browser script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    say(&format!("console screenshots: {}", screenshots.display()));

    // What the browser did, seen through the API.
    let attempts = api.attempts_of(&acme, &failed).await;
    assert!(
        attempts
            .iter()
            .any(|attempt| attempt["status"] == 0 && attempt["triggerType"] == 1),
        "the resend made a successful manual attempt: {attempts:?}"
    );
    assert_ne!(
        api.get(&secret_path).await["key"],
        secret_before,
        "the secret was rotated"
    );
    eventually("the test event reaches the endpoint", DEADLINE, || async {
        flaky
            .received()
            .iter()
            .any(|request| request.json()["invoice"] == "in_example")
            .then_some(())
    })
    .await;
}
