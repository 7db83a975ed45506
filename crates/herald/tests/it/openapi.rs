//! `GET /api/v1/openapi.json`: the document is valid OpenAPI (checked by
//! `openapi-spec-validator` from PyPI), describes the API DESIGN.md lists,
//! and every operation it describes is one the server routes.

use std::collections::BTreeSet;
use std::path::Path;

use herald_test_support::{TestServer, TEST_TOKEN};
use reqwest::Method;
use serde_json::Value;

use crate::python_venv::python_with;

/// The validator version this test pins.
const VALIDATOR_VERSION: &str = "0.9.0";

/// Operations DESIGN.md §3 promises, as the document must name them.
const PROMISED: &[(&str, &str)] = &[
    ("post", "/api/v1/app"),
    ("get", "/api/v1/app"),
    ("get", "/api/v1/app/{app}"),
    ("put", "/api/v1/app/{app}"),
    ("patch", "/api/v1/app/{app}"),
    ("delete", "/api/v1/app/{app}"),
    ("post", "/api/v1/event-type"),
    ("get", "/api/v1/event-type"),
    ("get", "/api/v1/event-type/{name}"),
    ("put", "/api/v1/event-type/{name}"),
    ("patch", "/api/v1/event-type/{name}"),
    ("delete", "/api/v1/event-type/{name}"),
    ("post", "/api/v1/app/{app}/endpoint"),
    ("get", "/api/v1/app/{app}/endpoint"),
    ("get", "/api/v1/app/{app}/endpoint/{endpoint}"),
    ("put", "/api/v1/app/{app}/endpoint/{endpoint}"),
    ("patch", "/api/v1/app/{app}/endpoint/{endpoint}"),
    ("delete", "/api/v1/app/{app}/endpoint/{endpoint}"),
    ("get", "/api/v1/app/{app}/endpoint/{endpoint}/secret"),
    (
        "post",
        "/api/v1/app/{app}/endpoint/{endpoint}/secret/rotate",
    ),
    ("get", "/api/v1/app/{app}/endpoint/{endpoint}/headers"),
    ("put", "/api/v1/app/{app}/endpoint/{endpoint}/headers"),
    ("patch", "/api/v1/app/{app}/endpoint/{endpoint}/headers"),
    ("post", "/api/v1/app/{app}/endpoint/{endpoint}/recover"),
    ("post", "/api/v1/app/{app}/endpoint/{endpoint}/send-example"),
    ("get", "/api/v1/app/{app}/endpoint/{endpoint}/stats"),
    ("post", "/api/v1/app/{app}/msg"),
    ("get", "/api/v1/app/{app}/msg"),
    ("get", "/api/v1/app/{app}/msg/{msg}"),
    ("get", "/api/v1/app/{app}/msg/{msg}/endpoint"),
    ("get", "/api/v1/app/{app}/attempt/msg/{msg}"),
    ("get", "/api/v1/app/{app}/attempt/endpoint/{endpoint}"),
    (
        "post",
        "/api/v1/app/{app}/msg/{msg}/endpoint/{endpoint}/resend",
    ),
    ("get", "/api/v1/operational-webhook/endpoint"),
    ("post", "/api/v1/operational-webhook/endpoint"),
    ("post", "/api/v1/auth/app-portal-access/{app}"),
    ("get", "/ingest/api/v1/source"),
    ("post", "/ingest/api/v1/source"),
    ("get", "/ingest/api/v1/source/{source}/endpoint"),
    ("get", "/ingest/api/v1/source/{source}/request"),
    ("get", "/api/v1/health"),
    ("get", "/api/v1/openapi.json"),
];

async fn document(server: &TestServer) -> Value {
    // No token: tools fetch the description before they have one.
    let answer = reqwest::get(format!("{}/api/v1/openapi.json", server.api.base))
        .await
        .expect("herald answers");
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["content-type"], "application/json");
    answer.json().await.expect("the document is JSON")
}

/// Every (method, path) the document describes.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    let paths = document["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("a path item");
            item.keys()
                .filter(|key| ["get", "put", "post", "patch", "delete"].contains(&key.as_str()))
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect()
}

#[tokio::test]
async fn the_document_describes_the_promised_api() {
    let server = TestServer::start().await;
    let document = document(&server).await;
    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    let described = operations(&document);
    for (method, path) in PROMISED {
        assert!(
            described.contains(&(method.to_string(), path.to_string())),
            "{method} {path} is not described"
        );
    }
    // The API is behind a bearer token, except what must be open.
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(document["security"][0]["bearer"], serde_json::json!([]));
    for open in ["/api/v1/health", "/api/v1/openapi.json"] {
        assert_eq!(
            document["paths"][open]["get"]["security"],
            serde_json::json!([{}]),
            "{open} needs no token"
        );
    }
    // Bodies and answers are described, not left blank.
    let create = &document["paths"]["/api/v1/app/{app}/msg"]["post"];
    assert_eq!(
        create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/MessageIn"
    );
    assert_eq!(
        create["responses"]["202"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/MessageOut"
    );
    let message_in = &document["components"]["schemas"]["MessageIn"];
    assert_eq!(
        message_in["required"],
        serde_json::json!(["eventType", "payload"])
    );
    assert!(create["responses"]["4XX"]["content"]["application/json"].is_object());
}

/// Each operation described is routed: called with made-up ids and no
/// body it answers as a handler does (a success, or an error with a
/// JSON `code`), never the router's empty 404 or 405.
#[tokio::test]
async fn every_described_operation_is_served() {
    let server = TestServer::start().await;
    let described = operations(&document(&server).await);
    assert!(described.len() > 50, "{} operations", described.len());
    let client = reqwest::Client::new();
    for (method, path) in &described {
        let concrete: String = path
            .split('/')
            .map(|segment| {
                if segment.starts_with('{') {
                    "not_there"
                } else {
                    segment
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let answer = client
            .request(method.clone(), format!("{}{concrete}", server.api.base))
            .bearer_auth(TEST_TOKEN)
            .send()
            .await
            .expect("herald answers");
        let status = answer.status().as_u16();
        let body = answer.bytes().await.expect("a body");
        assert_ne!(status, 405, "{method} {path} is not routed");
        if status >= 400 {
            let error: Value = serde_json::from_slice(&body)
                .unwrap_or_else(|_| panic!("{method} {path}: {status} without a JSON error"));
            assert!(error["code"].is_string(), "{method} {path}: {error}");
        }
    }
}

/// openapi-spec-validator, which nobody here wrote, finds the document
/// valid: its references resolve and it follows the specification.
#[tokio::test]
async fn an_independent_validator_accepts_the_document() {
    let server = TestServer::start().await;
    let python = python_with("openapi-venv", "openapi-spec-validator", VALIDATOR_VERSION);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/openapi/validate.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .env("HERALD_URL", &server.api.base)
        .output()
        .await
        .expect("the validator runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the validator refused the document:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let paths = operations(&document(&server).await)
        .into_iter()
        .map(|(_, path)| path)
        .collect::<BTreeSet<_>>()
        .len();
    assert_eq!(stdout.trim(), format!("valid 3.1.0 {paths}"));
}
