//! `GET /api/v1/openapi.json`: the document describes the API DESIGN.md
//! lists, every operation it describes is routed and guarded as it says,
//! and libraries from PyPI (`openapi-core`, with `openapi-spec-validator`)
//! find it valid and find Herald's real answers matching it.

use std::collections::BTreeSet;
use std::path::Path;

use herald_test_support::{Behaviour, Receiver, TestServer, TEST_TOKEN};
use reqwest::Method;
use serde_json::Value;

use crate::python_venv::python_with;

/// The openapi-core version this test pins (it brings
/// openapi-spec-validator).
const OPENAPI_CORE_VERSION: &str = "0.23.1";

/// Operations DESIGN.md §3 promises, as the document must name them.
const PROMISED: &[(&str, &str)] = &[
    ("get", "/metrics"),
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
    (
        "post",
        "/api/v1/app/{app}/endpoint/{endpoint}/replay-missing",
    ),
    ("get", "/api/v1/background-task"),
    ("get", "/api/v1/background-task/{task_id}"),
    ("post", "/api/v1/app/{app}/endpoint/{endpoint}/send-example"),
    ("get", "/api/v1/app/{app}/endpoint/{endpoint}/stats"),
    ("post", "/api/v1/app/{app}/msg"),
    ("get", "/api/v1/app/{app}/msg"),
    ("get", "/api/v1/app/{app}/msg/{msg}"),
    ("get", "/api/v1/app/{app}/msg/{msg}/endpoint"),
    ("delete", "/api/v1/app/{app}/msg/{msg}/content"),
    (
        "delete",
        "/api/v1/app/{app}/msg/{msg}/attempt/{attempt}/content",
    ),
    ("get", "/api/v1/app/{app}/attempt/msg/{msg}"),
    ("get", "/api/v1/app/{app}/attempt/endpoint/{endpoint}"),
    (
        "post",
        "/api/v1/app/{app}/msg/{msg}/endpoint/{endpoint}/resend",
    ),
    ("get", "/api/v1/operational-webhook/endpoint"),
    ("post", "/api/v1/operational-webhook/endpoint"),
    ("get", "/api/v1/operational-webhook/endpoint/{endpoint}"),
    ("put", "/api/v1/operational-webhook/endpoint/{endpoint}"),
    ("delete", "/api/v1/operational-webhook/endpoint/{endpoint}"),
    (
        "get",
        "/api/v1/operational-webhook/endpoint/{endpoint}/secret",
    ),
    (
        "post",
        "/api/v1/operational-webhook/endpoint/{endpoint}/secret/rotate",
    ),
    (
        "get",
        "/api/v1/operational-webhook/endpoint/{endpoint}/headers",
    ),
    (
        "put",
        "/api/v1/operational-webhook/endpoint/{endpoint}/headers",
    ),
    ("post", "/api/v1/auth/app-portal-access/{app}"),
    ("post", "/api/v1/auth/app/{app}/expire-all"),
    ("get", "/ingest/api/v1/source"),
    ("post", "/ingest/api/v1/source"),
    ("get", "/ingest/api/v1/source/{source}"),
    ("put", "/ingest/api/v1/source/{source}"),
    ("delete", "/ingest/api/v1/source/{source}"),
    ("get", "/ingest/api/v1/source/{source}/endpoint"),
    ("post", "/ingest/api/v1/source/{source}/endpoint"),
    ("get", "/ingest/api/v1/source/{source}/endpoint/{endpoint}"),
    ("put", "/ingest/api/v1/source/{source}/endpoint/{endpoint}"),
    (
        "delete",
        "/ingest/api/v1/source/{source}/endpoint/{endpoint}",
    ),
    (
        "get",
        "/ingest/api/v1/source/{source}/endpoint/{endpoint}/secret",
    ),
    (
        "post",
        "/ingest/api/v1/source/{source}/endpoint/{endpoint}/secret/rotate",
    ),
    (
        "get",
        "/ingest/api/v1/source/{source}/endpoint/{endpoint}/headers",
    ),
    (
        "put",
        "/ingest/api/v1/source/{source}/endpoint/{endpoint}/headers",
    ),
    ("get", "/ingest/api/v1/source/{source}/request"),
    ("get", "/api/v1/health"),
    ("get", "/api/v1/health/ready"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/in/{source}"),
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

/// Whether the document says `method path` needs no token.
fn is_open(document: &Value, method: &str, path: &str) -> bool {
    document["paths"][path][method]["security"] == serde_json::json!([{}])
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
    for (method, open) in [
        ("get", "/api/v1/health"),
        ("get", "/api/v1/openapi.json"),
        ("post", "/in/{source}"),
    ] {
        assert_eq!(
            document["paths"][open][method]["security"],
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
    // Summaries are one line; a longer doc comment is the description.
    for (method, path) in &described {
        let operation = &document["paths"][path][method];
        let summary = operation["summary"].as_str().unwrap_or_default();
        assert!(
            !summary.is_empty() && !summary.contains('\n'),
            "{method} {path}: {summary:?}"
        );
    }
    let rotate = &document["paths"]["/api/v1/app/{app}/endpoint/{endpoint}/secret/rotate"]["post"];
    assert_eq!(rotate["summary"], "Replaces the signing secret.");
    assert!(rotate["description"]
        .as_str()
        .unwrap()
        .ends_with("Answers what receivers verify the new key with."));
}

/// Each operation described is routed and guarded as described: called
/// with made-up ids and no body it answers as a handler does (a success,
/// or an error with a JSON `code`), never the router's empty 404 or 405;
/// without a token it answers 401 unless the document says it is open.
#[tokio::test]
async fn every_described_operation_is_served() {
    let server = TestServer::start().await;
    let document = document(&server).await;
    let described = operations(&document);
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
        let open = is_open(&document, method, path);
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let anonymous = client
            .request(method.clone(), format!("{}{concrete}", server.api.base))
            .send()
            .await
            .expect("herald answers");
        assert_eq!(
            anonymous.status() == 401,
            !open,
            "{method} {path} without a token: {}",
            anonymous.status()
        );
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

/// openapi-core and openapi-spec-validator, which nobody here wrote, find
/// the document valid and Herald's answers to a run through the API —
/// successes and errors — matching it (`tests/openapi/validate.py`).
#[tokio::test]
async fn independent_validators_accept_the_document_and_the_answers() {
    let server = TestServer::start().await;
    let sink = Receiver::start(Behaviour::Accept).await;
    let python = python_with("openapi-venv", "openapi-core", OPENAPI_CORE_VERSION);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/openapi/validate.py");
    let output = tokio::process::Command::new(python)
        .arg(script)
        .env("HERALD_URL", &server.api.base)
        .env("HERALD_TOKEN", TEST_TOKEN)
        .env("HERALD_SINK", sink.url("openapi"))
        .output()
        .await
        .expect("the validators run");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the validators refused:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let paths = operations(&document(&server).await)
        .into_iter()
        .map(|(_, path)| path)
        .collect::<BTreeSet<_>>()
        .len();
    let line = stdout.trim();
    assert!(line.starts_with(&format!("valid 3.1.0 {paths} ")), "{line}");
    let exchanges: usize = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(exchanges >= 30, "{line}");
}
