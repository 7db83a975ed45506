//! Several stores on one schema behave as several Herald nodes on one
//! database: what one node leases, commits or announces, the others see.

use std::collections::BTreeMap;
use std::time::Duration;

use herald_core::model::{App, DeliveryStatus, Endpoint, Message, Metadata};
use herald_core::{
    AppId, EndpointId, EndpointUrl, EventTypeName, MessageId, SigningKey, Timestamp,
};
use herald_store::{RateToken, Store};
use herald_store_postgres::testing::TestSchema;
use herald_store_postgres::PostgresStore;

const T0: Timestamp = Timestamp(1_700_000_000_000);
const LEASE: i64 = 60_000;

/// A schema with `count` stores (nodes) on it, or `None` when skipping.
async fn nodes(count: usize) -> Option<(TestSchema, Vec<PostgresStore>)> {
    let schema = TestSchema::create().await?;
    let mut stores = Vec::new();
    for _ in 0..count {
        stores.push(
            PostgresStore::connect(&schema.url)
                .await
                .expect("a node connects"),
        );
    }
    Some((schema, stores))
}

async fn app_with_endpoints(store: &PostgresStore, endpoints: usize) -> (App, Vec<Endpoint>) {
    let app = App {
        id: AppId::generate(),
        uid: None,
        name: "Acme".to_owned(),
        rate_limit: None,
        metadata: Metadata::new(),
        created_at: T0,
        updated_at: T0,
    };
    store.create_app(app.clone()).await.expect("create_app");
    let mut created = Vec::new();
    for _ in 0..endpoints {
        let endpoint = Endpoint {
            id: EndpointId::generate(),
            app_id: app.id.clone(),
            uid: None,
            url: EndpointUrl::parse("https://receiver.example/hook").expect("valid url"),
            description: String::new(),
            version: 1,
            disabled: false,
            filter_types: None,
            channels: None,
            rate_limit: None,
            metadata: Metadata::new(),
            headers: BTreeMap::new(),
            key: SigningKey::generate(),
            retired_keys: Vec::new(),
            created_at: T0,
            updated_at: T0,
        };
        created.push(
            store
                .create_endpoint(endpoint)
                .await
                .expect("create_endpoint"),
        );
    }
    (app, created)
}

fn message(app: &AppId, offset: i64) -> Message {
    Message {
        id: MessageId::generate(),
        app_id: app.clone(),
        event_type: EventTypeName::parse("invoice.paid").expect("valid type"),
        event_id: None,
        payload: "{}".to_owned(),
        channels: Vec::new(),
        tags: Vec::new(),
        headers: BTreeMap::new(),
        created_at: Timestamp(T0.0 + offset),
        deliver_at: None,
        content_expunged_at: None,
        payload_expires_at: None,
    }
}

#[tokio::test]
async fn nodes_started_together_migrate_once_and_share_the_data() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let (first, second, third) = tokio::join!(
        PostgresStore::connect(&schema.url),
        PostgresStore::connect(&schema.url),
        PostgresStore::connect(&schema.url),
    );
    let (first, second, third) = (
        first.expect("first node"),
        second.expect("second node"),
        third.expect("third node"),
    );
    let (app, _) = app_with_endpoints(&first, 0).await;
    for node in [&second, &third] {
        assert_eq!(
            node.app_by_ref(app.id.as_str()).await.expect("app_by_ref"),
            Some(app.clone()),
            "every node reads what one node wrote"
        );
    }
}

#[tokio::test]
async fn a_delivery_is_leased_to_one_node_at_a_time() {
    let Some((_schema, nodes)) = nodes(3).await else {
        return;
    };
    let (app, _) = app_with_endpoints(&nodes[0], 4).await;
    for offset in 0..50 {
        nodes[0]
            .create_message(message(&app.id, offset), None)
            .await
            .expect("create_message");
    }
    let now = Timestamp(T0.0 + 1000);
    let lease = Timestamp(now.0 + LEASE);
    let claims = futures_join3(
        nodes[0].claim_due(now, 500, 500, &[], lease),
        nodes[1].claim_due(now, 500, 500, &[], lease),
        nodes[2].claim_due(now, 500, 500, &[], lease),
    )
    .await;
    let mut leased: Vec<_> = claims
        .iter()
        .flatten()
        .map(|claim| (claim.msg_id.clone(), claim.endpoint_id.clone()))
        .collect();
    let total = leased.len();
    leased.sort();
    leased.dedup();
    assert_eq!(total, 200, "every delivery is leased once");
    assert_eq!(leased.len(), total, "no delivery is leased by two nodes");
    let mut tokens: Vec<i64> = claims
        .iter()
        .flatten()
        .map(|claim| claim.lease_token)
        .collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(
        tokens.len(),
        total,
        "every claim has a fencing token of its own"
    );
}

async fn futures_join3<F>(a: F, b: F, c: F) -> Vec<Vec<herald_store::Claim>>
where
    F: std::future::Future<Output = Result<Vec<herald_store::Claim>, herald_store::StoreError>>,
{
    let (a, b, c) = tokio::join!(a, b, c);
    vec![
        a.expect("claim_due"),
        b.expect("claim_due"),
        c.expect("claim_due"),
    ]
}

#[tokio::test]
async fn leases_held_by_other_nodes_count_toward_the_per_endpoint_cap() {
    let Some((_schema, nodes)) = nodes(2).await else {
        return;
    };
    let (app, endpoints) = app_with_endpoints(&nodes[0], 2).await;
    let (busy, idle) = (&endpoints[0], &endpoints[1]);
    for offset in 0..6 {
        nodes[0]
            .create_message_for_endpoint(message(&app.id, offset), &busy.id)
            .await
            .expect("create_message_for_endpoint");
    }
    let now = Timestamp(T0.0 + 1000);
    let lease = Timestamp(now.0 + LEASE);
    let first = nodes[0]
        .claim_due(now, 100, 3, &[], lease)
        .await
        .expect("claim_due");
    assert_eq!(first.len(), 3, "the first node takes the endpoint's share");
    let late = nodes[1]
        .create_message_for_endpoint(message(&app.id, 10), &idle.id)
        .await
        .expect("create_message_for_endpoint")
        .message;
    let second = nodes[1]
        .claim_due(now, 100, 3, &[], lease)
        .await
        .expect("claim_due");
    assert_eq!(
        second
            .iter()
            .map(|claim| (&claim.msg_id, &claim.endpoint_id))
            .collect::<Vec<_>>(),
        vec![(&late.id, &idle.id)],
        "the busy endpoint already has its cap in flight on another node; other endpoints still get theirs"
    );
    // The first node's leases run out (it died): the cap is free again.
    let later = Timestamp(lease.0 + 1);
    nodes[1]
        .release_leases(later, false)
        .await
        .expect("release_leases");
    let taken_over = nodes[1]
        .claim_due(later, 100, 3, &[], Timestamp(later.0 + LEASE))
        .await
        .expect("claim_due");
    assert_eq!(
        taken_over
            .iter()
            .filter(|claim| claim.endpoint_id == busy.id)
            .count(),
        3,
        "a dead node's deliveries are leased by another once its leases ran out"
    );
}

#[tokio::test]
async fn a_silent_nodes_leases_are_freed_before_they_run_out() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    // Two nodes that run engines (they listen, and so beat), each on
    // connections named after it, and a third that only sweeps.
    let named = |name: &str| format!("{}&application_name={}-{name}", schema.url, schema.name);
    let mut engines = Vec::new();
    for name in ["first", "second"] {
        let node = PostgresStore::connect(&named(name))
            .await
            .expect("a node connects");
        let wakeups = node.remote_wakeups().expect("a shared store listens");
        tokio::time::timeout(Duration::from_secs(10), wakeups.notified())
            .await
            .expect("the listener starts");
        engines.push(node);
    }
    let sweeper = PostgresStore::connect(&schema.url)
        .await
        .expect("a node connects");
    let (app, endpoints) = app_with_endpoints(&sweeper, 1).await;
    for offset in 0..2 {
        sweeper
            .create_message(message(&app.id, offset), None)
            .await
            .expect("create_message");
    }
    let now = Timestamp(T0.0 + 1000);
    let lease = Timestamp(now.0 + LEASE);
    // The endpoint's cap (two) counts both nodes' leases.
    let mut held = Vec::new();
    for node in &engines {
        let claims = node
            .claim_due(now, 1, 2, &[], lease)
            .await
            .expect("claim_due");
        assert_eq!(claims.len(), 1, "each node leases one");
        held.extend(claims);
    }
    // Both have beaten without a gap for a minute, as far as the database
    // knows: each witnesses the other, and neither is silent.
    let (database, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    database
        .execute("UPDATE nodes SET since = since - 60000", &[])
        .await
        .expect("lengthen the runs of beats");
    assert_eq!(
        sweeper.release_leases(now, false).await.expect("sweep"),
        0,
        "live nodes keep their leases until they run out"
    );

    // Both stop beating: their tasks end with them, and their connections
    // close once the last statement they sent has run.
    drop(engines);
    eventually("the stopped nodes' connections close", || async {
        let open: i64 = database
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name LIKE $1",
                &[&format!("{}-%", schema.name)],
            )
            .await
            .expect("the database's connections")
            .get(0);
        (open == 0).then_some(())
    })
    .await;
    let mut owners = Vec::new();
    for claim in &held {
        let owner: String = database
            .query_one(
                "SELECT lease_owner FROM deliveries WHERE msg_id = $1",
                &[&claim.msg_id.as_str()],
            )
            .await
            .expect("the lease's owner")
            .get(0);
        owners.push(owner);
    }
    let silence =
        i64::try_from(herald_store_postgres::NODE_SILENCE.as_millis()).expect("milliseconds");
    // Sets, for each node, how many milliseconds ago (by the database's
    // clock) it last beat and since when it had beaten without a gap, then
    // sweeps.
    let beats = |first: (i64, i64), second: (i64, i64)| {
        let (database, owners, sweeper) = (&database, &owners, &sweeper);
        async move {
            for (owner, (last, since)) in owners.iter().zip([first, second]) {
                database
                    .execute(
                        "UPDATE nodes SET heartbeat_at = c.now - $2, since = c.now - $3
                         FROM (SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT
                             AS now) c
                         WHERE id = $1",
                        &[owner, &last, &since],
                    )
                    .await
                    .expect("set a node's beats");
            }
            sweeper.release_leases(now, false).await.expect("sweep")
        }
    };
    let long_ago = 10 * silence;
    assert_eq!(
        beats((silence + 3_000, long_ago), (silence + 3_000, long_ago)).await,
        0,
        "when every node fell silent at once the database was away, not the nodes"
    );
    assert_eq!(
        beats((silence + 3_000, long_ago), (0, 0)).await,
        0,
        "a node just back from such an outage judges nobody before the others had time to beat"
    );
    assert_eq!(
        beats((silence - 3_000, long_ago), (0, long_ago)).await,
        0,
        "a node a little less silent than allowed keeps its leases"
    );
    assert_eq!(
        beats((silence + 3_000, long_ago), (0, long_ago)).await,
        1,
        "a node silent for longer, while another beat all along, loses its lease"
    );
    let taken_over = sweeper
        .claim_due(now, 10, 10, &[], lease)
        .await
        .expect("claim_due");
    assert_eq!(
        taken_over
            .iter()
            .map(|claim| (&claim.msg_id, &claim.endpoint_id))
            .collect::<Vec<_>>(),
        vec![(&held[0].msg_id, &endpoints[0].id)],
        "the silent node's delivery is leased again long before its lease would have run out"
    );
}

#[tokio::test]
async fn a_nodes_run_of_beats_goes_on_through_beats_and_starts_again_after_a_gap() {
    let Some((schema, nodes)) = nodes(1).await else {
        return;
    };
    let wakeups = nodes[0].remote_wakeups().expect("a shared store listens");
    tokio::time::timeout(Duration::from_secs(10), wakeups.notified())
        .await
        .expect("the listener starts");
    let (database, connection) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(connection);
    let (first, since) = beats(&database).await;
    let (_, still) = beats_until(&database, "the next beat", |(last, _)| last > first).await;
    assert_eq!(still, since, "beats every two seconds are one run");

    // Nothing heard from the node for 20 s, as far as the database knows.
    let rewound: i64 = database
        .query_one(
            "UPDATE nodes SET heartbeat_at = c.now - 20000, since = c.now - 60000
             FROM (SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT AS now) c
             RETURNING heartbeat_at",
            &[],
        )
        .await
        .expect("make a gap")
        .get(0);
    let (_, since) = beats_until(&database, "a beat after the gap", |(last, _)| {
        last > rewound + 10_000
    })
    .await;
    assert!(
        since > rewound + 10_000,
        "a beat after a gap starts a new run: it began at {since}, the gap at {rewound}"
    );
}

/// The only node's (last beat, start of its run of beats), in milliseconds
/// by the database's clock.
async fn beats(database: &tokio_postgres::Client) -> (i64, i64) {
    let row = database
        .query_one("SELECT heartbeat_at, since FROM nodes", &[])
        .await
        .expect("the node's row");
    (row.get(0), row.get(1))
}

/// [`beats`] once they are `done`.
async fn beats_until(
    database: &tokio_postgres::Client,
    what: &str,
    done: impl Fn((i64, i64)) -> bool,
) -> (i64, i64) {
    eventually(what, || async {
        let now = beats(database).await;
        done(now).then_some(now)
    })
    .await
}

/// What `check` answers once it answers something, asked every 50 ms for
/// at most 20 s.
async fn eventually<T, Fut: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> Fut,
) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_outcome_is_fenced_even_when_two_nodes_pick_the_same_lease_end() {
    let Some((_schema, nodes)) = nodes(2).await else {
        return;
    };
    let (app, endpoints) = app_with_endpoints(&nodes[0], 1).await;
    let sent = nodes[0]
        .create_message(message(&app.id, 0), None)
        .await
        .expect("create_message")
        .message;
    let lease = Timestamp(T0.0 + LEASE);
    let first = nodes[0]
        .claim_due(T0, 10, 10, &[], lease)
        .await
        .expect("claim_due");
    // The lease is taken back and the other node, configured with a
    // shorter lease, claims the delivery with the very same lease end.
    nodes[1]
        .release_leases(Timestamp(lease.0 + 1), true)
        .await
        .expect("release_leases");
    let second = nodes[1]
        .claim_due(Timestamp(T0.0 + 10), 10, 10, &[], lease)
        .await
        .expect("claim_due");
    assert_eq!((first.len(), second.len()), (1, 1));
    assert_eq!(first[0].lease_until, second[0].lease_until);

    let stale = first[0].outcome(DeliveryStatus::Success, 1, None, Timestamp(T0.0 + 20));
    nodes[0]
        .record_attempt(None, stale)
        .await
        .expect("record_attempt");
    let state = nodes[0]
        .deliveries_of_message(&app.id, &sent.id)
        .await
        .expect("deliveries_of_message");
    assert_eq!(
        (state[0].endpoint_id.clone(), state[0].status),
        (endpoints[0].id.clone(), DeliveryStatus::Sending),
        "the first node's late outcome must not end the second node's attempt"
    );
    let current = second[0].outcome(DeliveryStatus::Fail, 1, None, Timestamp(T0.0 + 30));
    nodes[1]
        .record_attempt(None, current)
        .await
        .expect("record_attempt");
    let state = nodes[0]
        .deliveries_of_message(&app.id, &sent.id)
        .await
        .expect("deliveries_of_message");
    assert_eq!(
        state[0].status,
        DeliveryStatus::Fail,
        "the lease holder's outcome applies"
    );
}

#[tokio::test]
async fn an_idempotency_key_raced_by_two_nodes_makes_one_message() {
    let Some((_schema, nodes)) = nodes(2).await else {
        return;
    };
    let (app, _) = app_with_endpoints(&nodes[0], 2).await;
    for round in 0..20 {
        let key = format!("order-{round}");
        let (first, second) = tokio::join!(
            nodes[0].create_message(message(&app.id, round), Some(key.clone())),
            nodes[1].create_message(message(&app.id, round), Some(key)),
        );
        let (first, second) = (first.expect("first create"), second.expect("second create"));
        assert_eq!(
            first.message.id, second.message.id,
            "both nodes answer the same message"
        );
        assert!(
            first.is_new != second.is_new,
            "exactly one create is new: {} {}",
            first.is_new,
            second.is_new
        );
        let fanned_out = first.deliveries + second.deliveries;
        assert_eq!(fanned_out, 2, "the fan-out happens once");
    }
}

#[tokio::test]
async fn a_node_is_woken_when_another_commits_due_work() {
    let Some((_schema, nodes)) = nodes(2).await else {
        return;
    };
    let wakeups = nodes[1]
        .remote_wakeups()
        .expect("a shared store delivers other nodes' wake-ups");
    assert!(nodes[1].is_shared());
    // The listener wakes once as it starts (to look for work announced
    // before it listened); take that one first.
    tokio::time::timeout(Duration::from_secs(10), wakeups.notified())
        .await
        .expect("the listener starts");
    let (app, _) = app_with_endpoints(&nodes[0], 1).await;
    nodes[0]
        .create_message(message(&app.id, 0), None)
        .await
        .expect("create_message");
    tokio::time::timeout(Duration::from_secs(10), wakeups.notified())
        .await
        .expect("the other node is woken by the new message");
}

#[tokio::test]
async fn an_endpoints_rate_slots_are_shared_by_every_node() {
    let Some((_schema, nodes)) = nodes(2).await else {
        return;
    };
    let (_, endpoints) = app_with_endpoints(&nodes[0], 2).await;
    let (limited, other) = (&endpoints[0].id, &endpoints[1].id);
    let now = T0.0 * 1000;
    let horizon = now + 1_000_000;
    // Ten per second, taken by the two nodes in turn, at the same moment:
    // one slot every 100 ms, whichever node takes it.
    let mut slots = Vec::new();
    for turn in 0..6 {
        let slot = nodes[turn % 2]
            .take_rate_slot(limited, 10, now, horizon)
            .await
            .expect("take_rate_slot")
            .expect("a shared store keeps slots");
        assert!(slot.taken);
        slots.push(slot.at_micros - now);
    }
    assert_eq!(slots, [0, 100_000, 200_000, 300_000, 400_000, 500_000]);

    // Another endpoint has slots of its own.
    let first = nodes[1]
        .take_rate_slot(other, 10, now, horizon)
        .await
        .expect("take_rate_slot")
        .expect("a slot");
    assert_eq!((first.at_micros, first.taken), (now, true));

    // Past the horizon nothing is taken; the answer says when to come back.
    let near = now + 550_000;
    let refused = nodes[0]
        .take_rate_slot(limited, 10, now, near)
        .await
        .expect("take_rate_slot")
        .expect("a slot");
    assert_eq!((refused.at_micros, refused.taken), (now + 600_000, false));
    let taken = nodes[1]
        .take_rate_slot(limited, 10, now, horizon)
        .await
        .expect("take_rate_slot")
        .expect("a slot");
    assert_eq!((taken.at_micros, taken.taken), (now + 600_000, true));

    // Once time has passed the slots taken, the next is now again.
    let later = now + 5_000_000;
    let fresh = nodes[0]
        .take_rate_slot(limited, 10, later, later + 1_000_000)
        .await
        .expect("take_rate_slot")
        .expect("a slot");
    assert_eq!((fresh.at_micros, fresh.taken), (later, true));

    // Deleting the endpoint deletes its slots with it (the row refers to
    // the endpoint: without the cascade this delete would fail).
    nodes[0]
        .delete_endpoint(&endpoints[0].app_id, limited, T0)
        .await
        .expect("delete_endpoint");
}

#[tokio::test]
async fn a_rate_bucket_is_shared_by_every_node() {
    let Some((_schema, nodes)) = nodes(2).await else {
        return;
    };
    let take = |node: usize, now: i64| {
        let node = &nodes[node];
        async move {
            node.take_rate_token("app:app_1", 3, now)
                .await
                .expect("take_rate_token")
                .expect("a shared store keeps buckets")
        }
    };
    let now = T0.0 * 1000;
    // Three a second: a burst of three over both nodes, then empty.
    for turn in 0..3 {
        assert_eq!(take(turn % 2, now).await, RateToken::Taken, "token {turn}");
    }
    assert_eq!(
        take(1, now).await,
        RateToken::Empty {
            wait_micros: 333_334
        },
        "the next token comes a third of a second later"
    );
    // A third of a second on, one more.
    assert_eq!(take(0, now + 340_000).await, RateToken::Taken);

    // A node whose clock lags half a second neither refills the bucket
    // backwards nor moves its refill time back.
    let skewed = |node: usize, at: i64| {
        let node = &nodes[node];
        async move {
            node.take_rate_token("app:app_2", 2, at)
                .await
                .expect("take_rate_token")
                .expect("a bucket")
        }
    };
    assert_eq!(skewed(0, now + 1_000_000).await, RateToken::Taken);
    assert_eq!(skewed(1, now + 500_000).await, RateToken::Taken);
    assert_eq!(
        skewed(0, now + 1_000_000).await,
        RateToken::Empty {
            wait_micros: 500_000
        }
    );

    // Taken at the same moment by both nodes, a burst gets exactly the
    // bucket's tokens.
    let burst = |node: usize| {
        let node = &nodes[node];
        async move {
            node.take_rate_token("source:src_burst", 4, now)
                .await
                .expect("take_rate_token")
                .expect("a bucket")
        }
    };
    let taken = tokio::join!(
        burst(0),
        burst(1),
        burst(0),
        burst(1),
        burst(0),
        burst(1),
        burst(0),
        burst(1)
    );
    let taken = [
        taken.0, taken.1, taken.2, taken.3, taken.4, taken.5, taken.6, taken.7,
    ];
    let granted = taken
        .iter()
        .filter(|token| **token == RateToken::Taken)
        .count();
    assert_eq!(granted, 4, "{taken:?}");
    // Other keys have buckets of their own.
    assert_eq!(
        nodes[1]
            .take_rate_token("source:src_1", 1, now)
            .await
            .expect("take_rate_token"),
        Some(RateToken::Taken)
    );
}

#[tokio::test]
async fn a_deleted_apps_rate_bucket_goes_with_it() {
    let Some((_schema, nodes)) = nodes(1).await else {
        return;
    };
    let store = &nodes[0];
    let (app, _) = app_with_endpoints(store, 0).await;
    let key = format!("app:{}", app.id);
    let now = T0.0 * 1000;
    let take = || async {
        store
            .take_rate_token(&key, 1, now)
            .await
            .expect("take_rate_token")
            .expect("a bucket")
    };
    assert_eq!(take().await, RateToken::Taken);
    assert!(matches!(take().await, RateToken::Empty { .. }));
    store.delete_app(&app.id).await.expect("delete_app");
    assert_eq!(take().await, RateToken::Taken, "a fresh bucket");
}
