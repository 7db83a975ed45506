//! Integration tests of the SQLite backend: the shared conformance suite, run
//! on a fresh database file per case, and what only a file on disk can show.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use herald_core::model::{DeliveryStatus, Message};
use herald_core::{EndpointId, EventTypeName, MessageId, Timestamp};
use herald_store::{conformance, ApiToken, Store};
use herald_store_sqlite::SqliteStore;
use tempfile::TempDir;

#[tokio::test]
async fn sqlite_backend_passes_the_conformance_suite() {
    let dir = TempDir::new().expect("cannot create a temporary directory");
    let opened = AtomicUsize::new(0);
    conformance::suite(|| {
        let case = opened.fetch_add(1, Ordering::Relaxed);
        let path = dir.path().join(format!("case-{case}.db"));
        async move { SqliteStore::open(path).expect("cannot open a fresh sqlite database") }
    })
    .await;
}

#[tokio::test]
async fn acknowledged_writes_survive_dropping_the_store_and_reopening_the_file() {
    let dir = TempDir::new().expect("cannot create a temporary directory");
    let path = dir.path().join("herald.db");
    let created_at = conformance::T0;

    let store = SqliteStore::open(&path).expect("cannot open the database");
    let app = conformance::new_app(Some("acme"));
    let endpoint = conformance::new_endpoint(&app.id);
    let message = Message {
        id: MessageId::generate(),
        app_id: app.id.clone(),
        event_type: EventTypeName::parse("invoice.paid").expect("valid event type"),
        event_id: Some("evt-1".to_owned()),
        payload: r#"{"invoice":42}"#.to_owned(),
        channels: Vec::new(),
        tags: Vec::new(),
        headers: BTreeMap::from([("x-request-id".to_owned(), "r-1".to_owned())]),
        created_at,
        deliver_at: None,
        content_expunged_at: None,
        payload_expires_at: None,
    };
    add_app_and_endpoint(&store, &app, &endpoint).await;
    let created = store
        .create_message(message.clone(), Some("order-1".to_owned()))
        .await
        .expect("create_message failed");
    assert_eq!(created.deliveries, 1);
    store
        .add_api_token(&ApiToken {
            hash: "token-hash".to_owned(),
            name: None,
            hint: None,
            created_at,
        })
        .await
        .expect("add_api_token failed");
    // Every write above was acknowledged; nothing is flushed or closed by hand.
    drop(store);

    let reopened = SqliteStore::open(&path).expect("cannot reopen the database");
    assert_eq!(
        reopened
            .app_by_ref("acme")
            .await
            .expect("app_by_ref failed"),
        Some(app.clone()),
        "an acknowledged app must survive a reopen"
    );
    assert_eq!(
        reopened
            .endpoint_by_ref(&app.id, endpoint.id.as_str())
            .await
            .expect("endpoint_by_ref failed"),
        Some(endpoint.clone()),
        "an acknowledged endpoint must survive a reopen"
    );
    assert_eq!(
        reopened
            .message_by_ref(&app.id, "evt-1")
            .await
            .expect("message_by_ref failed"),
        Some(message.clone()),
        "an acknowledged message must survive a reopen"
    );
    let deliveries = reopened
        .deliveries_of_message(&app.id, &message.id)
        .await
        .expect("deliveries_of_message failed");
    assert_eq!(
        deliveries.len(),
        1,
        "a message's fan-out must survive with it"
    );
    assert_eq!(deliveries[0].endpoint_id, endpoint.id);
    assert_eq!(deliveries[0].status, DeliveryStatus::Pending);
    assert_eq!(
        reopened.next_due_at().await.expect("next_due_at failed"),
        Some(created_at),
        "the reopened queue must still hold the pending delivery"
    );
    let repeat = reopened
        .create_message(
            Message {
                id: MessageId::generate(),
                ..message.clone()
            },
            Some("order-1".to_owned()),
        )
        .await
        .expect("create_message failed");
    assert!(
        !repeat.is_new && repeat.message == message,
        "an idempotency key must still answer its first message after a reopen"
    );
    assert!(
        reopened
            .api_token_exists("token-hash")
            .await
            .expect("api_token_exists failed"),
        "an acknowledged API token must survive a reopen"
    );
}

#[tokio::test]
async fn new_deliveries_are_handed_off_when_the_terms_allow_and_resume_after_a_restart() {
    let dir = TempDir::new().expect("cannot create a temporary directory");
    let path = dir.path().join("herald.db");
    let now = conformance::T0;
    let store = SqliteStore::open(&path).expect("cannot open the database");
    let app = conformance::new_app(None);
    let endpoint = conformance::new_endpoint(&app.id);
    add_app_and_endpoint(&store, &app, &endpoint).await;
    let message =
        |offset: i64| conformance::new_message(&app.id, "invoice.paid", Timestamp(now.0 + offset));
    let terms = |busy: Vec<EndpointId>| herald_store::HandOffTerms {
        max: 4,
        busy,
        lease_until: Timestamp(now.0 + 60_000),
    };

    let (first, handed) = store
        .create_message_handing_off(message(0), None, terms(Vec::new()))
        .await
        .expect("create_message_handing_off failed");
    assert_eq!(handed.len(), 1, "a free endpoint's delivery is handed off");
    assert_eq!(handed[0].endpoint, endpoint, "with the endpoint as stored");
    let (_, handed) = store
        .create_message_handing_off(message(1), None, terms(vec![endpoint.id.clone()]))
        .await
        .expect("create_message_handing_off failed");
    assert!(
        handed.is_empty(),
        "nothing is handed off to a busy endpoint"
    );
    let (_, handed) = store
        .create_message_handing_off(message(2), None, terms(Vec::new()))
        .await
        .expect("create_message_handing_off failed");
    assert!(
        handed.is_empty(),
        "nothing is handed off past the endpoint's due backlog"
    );
    drop(store);

    // The process died mid-attempt: a restart of the single node frees
    // the hand-off's lease, and the delivery is claimed like any other.
    let reopened = SqliteStore::open(&path).expect("cannot reopen the database");
    assert!(
        reopened
            .release_leases(Timestamp(now.0 + 10), true)
            .await
            .expect("release_leases failed")
            >= 1
    );
    let claims = reopened
        .claim_due(
            Timestamp(now.0 + 10),
            10,
            10,
            &[],
            Timestamp(now.0 + 70_000),
        )
        .await
        .expect("claim_due failed");
    assert!(
        claims.iter().any(|claim| claim.msg_id == first.message.id),
        "the handed-off delivery is claimed after a restart, got {claims:?}"
    );
}

#[tokio::test]
async fn large_payloads_are_stored_compressed_and_read_back_whole() {
    let dir = TempDir::new().expect("cannot create a temporary directory");
    let path = dir.path().join("herald.db");
    let app = conformance::new_app(None);
    let endpoint = conformance::new_endpoint(&app.id);
    // An invoice with many lines: large and repetitive, as webhooks are.
    let lines: Vec<String> = (0..300)
        .map(|n| {
            format!(
                r#"{{"id":"il_{n:05}","amount":{},"currency":"eur"}}"#,
                n * 100
            )
        })
        .collect();
    let mut message = conformance::new_message(&app.id, "invoice.paid", conformance::T0);
    message.payload = format!(r#"{{"object":"invoice","lines":[{}]}}"#, lines.join(","));
    {
        let store = SqliteStore::open(&path).expect("cannot open the database");
        add_app_and_endpoint(&store, &app, &endpoint).await;
        store
            .create_message(message.clone(), None)
            .await
            .expect("create_message failed");
    }
    let (kind, stored): (String, usize) = rusqlite::Connection::open(&path)
        .expect("open the file")
        .query_row(
            "SELECT typeof(payload), length(payload) FROM messages WHERE id = ?1",
            [message.id.as_str()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .expect("the stored payload");
    assert_eq!(kind, "blob", "a large payload is stored compressed");
    assert!(
        stored * 3 < message.payload.len(),
        "{stored} bytes stored for a payload of {}",
        message.payload.len()
    );

    // Read back by a store that has nothing cached.
    let store = SqliteStore::open(&path).expect("cannot reopen the database");
    let found = store
        .message_by_ref(&app.id, message.id.as_str())
        .await
        .expect("message_by_ref failed")
        .expect("the message is there");
    assert_eq!(found.payload, message.payload);
    let claims = store
        .claim_due(
            Timestamp(conformance::T0.0 + 1),
            10,
            10,
            &[],
            Timestamp(conformance::T0.0 + 60_000),
        )
        .await
        .expect("claim_due failed");
    assert_eq!(claims.len(), 1, "its delivery is due");
    let (sent, _) = store
        .claim_target(&claims[0])
        .await
        .expect("claim_target failed")
        .expect("the message is there");
    assert_eq!(
        sent.payload, message.payload,
        "what is sent is the payload whole"
    );
}

#[tokio::test]
async fn a_database_from_a_newer_herald_is_refused_not_misread() {
    let dir = TempDir::new().expect("cannot create a temporary directory");
    let path = dir.path().join("herald.db");
    drop(SqliteStore::open(&path).expect("cannot open the database"));
    rusqlite::Connection::open(&path)
        .expect("open the file")
        .execute_batch("PRAGMA user_version = 999")
        .expect("pretend a newer version wrote it");
    let error = SqliteStore::open(&path)
        .err()
        .expect("a newer schema is refused");
    assert!(
        error.to_string().contains("newer Herald"),
        "the refusal says why: {error}"
    );
}

async fn add_app_and_endpoint(
    store: &SqliteStore,
    app: &herald_core::model::App,
    endpoint: &herald_core::model::Endpoint,
) {
    store
        .create_app(app.clone())
        .await
        .expect("create_app failed");
    store
        .create_endpoint(endpoint.clone())
        .await
        .expect("create_endpoint failed");
}
