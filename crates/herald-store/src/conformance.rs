//! The backend conformance suite: every `Store` implementation runs it
//! against a fresh database from its own tests.
//!
//! Each invariant is one `async fn(&dyn Store)` whose name says what must
//! hold; [`suite`] runs them one after another, each against a store its
//! caller has just opened on an empty database. A fresh store per case, not
//! only fresh app ids, because the delivery queue (`claim_due`,
//! `next_due_at`, `release_leases`), the app list and the event types are
//! global: cases sharing a database would claim and count each other's work.
//!
//! Times are fixed instants chosen by the cases, never the wall clock, so due
//! times and leases are exact. Every assertion message says which promise of
//! [`Store`] broke.

use std::collections::BTreeMap;
use std::future::Future;

use herald_core::model::{
    App, Attempt, AttemptError, BackgroundTask, Delivery, DeliveryStatus, Endpoint, EventType,
    Message, Metadata, RetiredKey, TaskKind, TaskStatus, TriggerType,
};
use herald_core::{
    AppId, AttemptId, Channel, EndpointId, EndpointUrl, EventTypeName, InboundRequestId, MessageId,
    SigningKey, SourceId, TaskId, Timestamp, Uid,
};

use crate::{
    Accepted, ApiToken, AttemptFilter, Claim, Cursor, DedupeKey, DeliveryBucket, DeliveryStats,
    HandOffTerms, HandedOff, IdempotencyClaim, IdempotencyTerms, MessageFilter, Page, PageRequest,
    ReceivedRequest, Recorded, RequestOutcome, Source, Store, StoreError, TaskFilter,
};

/// Runs every case, each against a store returned by `fresh_store`, which
/// must open a new, empty database on every call.
pub async fn suite<S, F, Fut>(fresh_store: F)
where
    S: Store,
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
{
    macro_rules! run {
        ($($case:ident),* $(,)?) => {$(
            // Shown with the panic when a case fails, so the failing case is named.
            eprintln!("conformance case: {}", stringify!($case));
            // A block per case: each store (and its connections) goes
            // before the next is opened.
            {
                let store = fresh_store().await;
                $case(&store).await;
            }
        )*};
    }
    run!(
        apps_are_found_by_id_or_uid_and_uids_are_unique,
        event_types_round_trip_and_archived_ones_are_listed_only_when_asked,
        endpoints_are_found_by_id_or_uid_within_their_own_app,
        apps_page_oldest_first_in_both_directions,
        messages_page_newest_first_in_both_directions,
        message_lists_filter_by_type_channel_tag_and_time,
        fan_out_queues_one_due_delivery_per_matching_enabled_endpoint,
        a_test_message_goes_to_its_endpoint_whatever_the_filters,
        an_idempotency_key_answers_the_first_message_and_queues_nothing,
        a_failing_create_among_concurrent_ones_fails_alone,
        messages_are_found_by_id_or_event_id_within_their_app,
        large_payloads_round_trip_exactly,
        a_messages_content_can_be_deleted,
        payloads_are_deleted_once_their_own_retention_ends,
        deleting_a_payload_empties_the_logged_requests_it_came_from,
        an_attempts_response_body_can_be_deleted,
        expiring_portal_tokens_folds_each_order_into_the_last,
        expiring_a_sessions_portal_tokens_leaves_other_sessions_standing,
        portal_expiry_orders_are_forgotten_once_they_cover_no_live_token,
        claim_due_leases_the_oldest_due_deliveries_first_up_to_the_limit,
        claim_due_skips_saturated_endpoints,
        claim_due_caps_each_endpoint,
        claim_due_looks_past_a_saturated_backlog,
        a_hand_off_obeys_its_terms_and_is_not_claimed_again,
        a_stale_outcome_does_not_overwrite_the_delivery,
        an_attempt_ending_after_its_app_was_deleted_is_not_logged,
        a_resend_during_an_attempt_follows_it,
        an_endpoints_messages_are_listed_with_their_delivery,
        record_attempt_logs_the_attempt_and_moves_the_delivery,
        released_leases_can_be_claimed_again,
        resend_queues_a_manual_attempt,
        a_manual_delivery_put_off_without_an_attempt_stays_manual,
        recover_requeues_failed_deliveries_created_in_the_window,
        replay_queues_what_an_endpoint_missed_and_nothing_twice,
        endpoint_stats_count_deliveries_by_status,
        deleting_an_endpoint_fails_its_unfinished_deliveries,
        deleting_an_app_removes_everything_it_owns,
        next_due_at_is_the_earliest_pending_due_time,
        a_scheduled_message_waits_for_its_time,
        background_tasks_are_kept_updated_and_listed,
        an_idempotency_key_runs_its_request_once_and_answers_it_again,
        api_tokens_are_remembered_by_hash,
        sources_are_found_by_id_or_uid_with_their_backing_app,
        an_accepted_request_is_a_message_with_its_fan_out_and_a_log_entry,
        a_repeated_event_id_is_a_duplicate_until_its_key_expires,
        the_request_log_keeps_the_newest_requests_and_filters_by_outcome,
        deleting_a_source_removes_its_app_log_and_dedupe_keys,
        messages_are_found_by_delivery_status_each_once_within_their_app,
        the_delivery_histogram_counts_outcomes_by_message_time,
        an_instance_key_is_stored_once_and_answered_ever_after,
        an_endpoint_failure_streak_keeps_its_start_until_it_ends,
        disabling_an_endpoint_touches_nothing_else_and_happens_once,
        purging_removes_old_attempts_and_finished_messages_only,
        queue_depths_count_pending_deliveries_per_endpoint,
    );
}

// Fixtures.

/// The instant every case measures from (also the fixtures' creation time,
/// for backends' own tests).
pub const T0: Timestamp = Timestamp(1_700_000_000_000);

/// `T0` moved by `offset` milliseconds.
fn at(offset: i64) -> Timestamp {
    Timestamp(T0.0 + offset)
}

fn uid(text: &str) -> Uid {
    Uid::parse(text).expect("fixture uids are valid")
}

fn type_name(text: &str) -> EventTypeName {
    EventTypeName::parse(text).expect("fixture event type names are valid")
}

fn channel(text: &str) -> Channel {
    Channel::parse(text).expect("fixture channels are valid")
}

/// An app named Acme created at `T0`.
pub fn new_app(uid_text: Option<&str>) -> App {
    App {
        id: AppId::generate(),
        uid: uid_text.map(uid),
        name: "Acme".to_owned(),
        rate_limit: None,
        metadata: Metadata::new(),
        created_at: T0,
        updated_at: T0,
    }
}

fn new_event_type(name: &str) -> EventType {
    EventType {
        name: type_name(name),
        description: format!("{name} happened"),
        archived: false,
        deprecated: false,
        schemas: None,
        feature_flag: None,
        group_name: None,
        created_at: T0,
        updated_at: T0,
    }
}

/// An enabled endpoint of `app` with no filters, created at `T0`.
pub fn new_endpoint(app: &AppId) -> Endpoint {
    Endpoint {
        id: EndpointId::generate(),
        app_id: app.clone(),
        uid: None,
        url: EndpointUrl::parse("https://receiver.example/hook").expect("the fixture url is valid"),
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
    }
}

/// A message of `app` with a small payload and nothing optional set.
pub fn new_message(app: &AppId, event_type: &str, created_at: Timestamp) -> Message {
    Message {
        id: MessageId::generate(),
        app_id: app.clone(),
        event_type: type_name(event_type),
        event_id: None,
        payload: r#"{"invoice":42}"#.to_owned(),
        channels: Vec::new(),
        tags: Vec::new(),
        headers: BTreeMap::new(),
        created_at,
        deliver_at: None,
        content_expunged_at: None,
        payload_expires_at: None,
    }
}

/// Every item of a list on one page.
fn everything(newest_first: bool) -> PageRequest {
    PageRequest {
        limit: 1000,
        cursor: Cursor::Start,
        newest_first,
    }
}

/// Far enough ahead that no case sees a lease expire unless it means to.
const LEASE: i64 = 3_600_000;

// Steps every case uses, each failing with the name of the call that failed.

async fn add_app(store: &dyn Store) -> App {
    store
        .create_app(new_app(None))
        .await
        .expect("create_app failed")
}

async fn add_endpoint(store: &dyn Store, endpoint: Endpoint) -> Endpoint {
    store
        .create_endpoint(endpoint)
        .await
        .expect("create_endpoint failed")
}

async fn publish(store: &dyn Store, message: Message) -> Message {
    store
        .create_message(message, None)
        .await
        .expect("create_message failed")
        .message
}

async fn claim(store: &dyn Store, now: Timestamp, limit: usize) -> Vec<Claim> {
    store
        .claim_due(now, limit, limit, &[], Timestamp(now.0 + LEASE))
        .await
        .expect("claim_due failed")
}

async fn deliveries(store: &dyn Store, app: &AppId, msg: &MessageId) -> Vec<Delivery> {
    store
        .deliveries_of_message(app, msg)
        .await
        .expect("deliveries_of_message failed")
}

async fn delivery(
    store: &dyn Store,
    app: &AppId,
    msg: &MessageId,
    endpoint: &EndpointId,
) -> Delivery {
    deliveries(store, app, msg)
        .await
        .into_iter()
        .find(|delivery| &delivery.endpoint_id == endpoint)
        .unwrap_or_else(|| panic!("message {msg} has no delivery to endpoint {endpoint}"))
}

async fn attempts(store: &dyn Store, app: &AppId, filter: AttemptFilter) -> Vec<Attempt> {
    store
        .list_attempts(app, filter, everything(true))
        .await
        .expect("list_attempts failed")
        .items
}

/// Logs one attempt of `claim` and moves its delivery to `status`; the
/// attempt itself failed unless the delivery succeeded.
async fn settle(
    store: &dyn Store,
    claim: &Claim,
    status: DeliveryStatus,
    next_attempt_at: Option<Timestamp>,
    now: Timestamp,
) -> Attempt {
    settle_and_answer(store, claim, status, next_attempt_at, now)
        .await
        .0
}

/// [`settle`], with what the store said it did.
async fn settle_and_answer(
    store: &dyn Store,
    claim: &Claim,
    status: DeliveryStatus,
    next_attempt_at: Option<Timestamp>,
    now: Timestamp,
) -> (Attempt, Recorded) {
    let succeeded = status == DeliveryStatus::Success;
    let attempt = Attempt {
        id: AttemptId::generate(),
        app_id: claim.app_id.clone(),
        msg_id: claim.msg_id.clone(),
        endpoint_id: claim.endpoint_id.clone(),
        url: "https://receiver.example/hook".to_owned(),
        timestamp: now,
        status: if succeeded {
            DeliveryStatus::Success
        } else {
            DeliveryStatus::Fail
        },
        response_status_code: if succeeded { 200 } else { 503 },
        response: if succeeded { "ok" } else { "busy" }.to_owned(),
        response_duration_ms: 12,
        trigger: claim.trigger,
        error: None,
    };
    let outcome = claim.outcome(status, claim.attempt_count + 1, next_attempt_at, now);
    let recorded = store
        .record_attempt(Some(attempt.clone()), outcome)
        .await
        .expect("record_attempt failed");
    (attempt, recorded)
}

/// The claim for one (message, endpoint) pair.
fn claim_of<'a>(claims: &'a [Claim], msg: &MessageId, endpoint: &EndpointId) -> &'a Claim {
    claims
        .iter()
        .find(|claim| &claim.msg_id == msg && &claim.endpoint_id == endpoint)
        .unwrap_or_else(|| panic!("no claim for message {msg} to endpoint {endpoint}"))
}

/// What a claim list leased, in the order it came back.
fn leased(claims: &[Claim]) -> Vec<(MessageId, EndpointId)> {
    claims
        .iter()
        .map(|claim| (claim.msg_id.clone(), claim.endpoint_id.clone()))
        .collect()
}

/// What a claim list leased, order aside.
fn leased_set(claims: &[Claim]) -> Vec<(MessageId, EndpointId)> {
    let mut pairs = leased(claims);
    pairs.sort();
    pairs
}

fn pairs(list: &[(&Message, &Endpoint)]) -> Vec<(MessageId, EndpointId)> {
    let mut pairs: Vec<_> = list
        .iter()
        .map(|(message, endpoint)| (message.id.clone(), endpoint.id.clone()))
        .collect();
    pairs.sort();
    pairs
}

fn app_ids(page: Page<App>) -> (Vec<AppId>, bool) {
    (
        page.items.into_iter().map(|app| app.id).collect(),
        page.has_more,
    )
}

fn message_ids(page: Page<Message>) -> (Vec<MessageId>, bool) {
    (
        page.items.into_iter().map(|message| message.id).collect(),
        page.has_more,
    )
}

fn ids_of(messages: &[Message]) -> Vec<MessageId> {
    messages.iter().map(|message| message.id.clone()).collect()
}

// The cases.

async fn apps_are_found_by_id_or_uid_and_uids_are_unique(store: &dyn Store) {
    let app = new_app(Some("acme"));
    let created = store
        .create_app(app.clone())
        .await
        .expect("create_app failed");
    assert_eq!(created, app, "create_app must answer the app it stored");
    let by_id = store
        .app_by_ref(app.id.as_str())
        .await
        .expect("app_by_ref failed");
    assert_eq!(
        by_id,
        Some(app.clone()),
        "an app must read back by id as stored"
    );
    let by_uid = store.app_by_ref("acme").await.expect("app_by_ref failed");
    assert_eq!(by_uid, Some(app.clone()), "an app must be found by its uid");
    let unknown = store.app_by_ref("nobody").await.expect("app_by_ref failed");
    assert_eq!(unknown, None, "an unknown reference must find no app");

    for _ in 0..2 {
        store
            .create_app(new_app(None))
            .await
            .expect("apps without a uid must never conflict with each other");
    }
    let clash = store.create_app(new_app(Some("acme"))).await;
    assert!(
        matches!(clash, Err(StoreError::Conflict { .. })),
        "a second app with a taken uid must be a Conflict, got {clash:?}"
    );

    let mut renamed = app.clone();
    renamed.uid = Some(uid("acme-corp"));
    renamed.name = "Acme Corp".to_owned();
    renamed.rate_limit = Some(50);
    renamed.metadata.insert("plan".to_owned(), "pro".to_owned());
    renamed.updated_at = at(1000);
    let updated = store
        .update_app(renamed.clone())
        .await
        .expect("update_app failed");
    assert_eq!(updated, renamed, "update_app must answer the app it stored");
    let reread = store
        .app_by_ref(app.id.as_str())
        .await
        .expect("app_by_ref failed");
    assert_eq!(
        reread,
        Some(renamed.clone()),
        "update_app must replace every field"
    );
    let by_new_uid = store
        .app_by_ref("acme-corp")
        .await
        .expect("app_by_ref failed");
    assert_eq!(
        by_new_uid,
        Some(renamed.clone()),
        "the new uid must find the app"
    );
    let by_old_uid = store.app_by_ref("acme").await.expect("app_by_ref failed");
    assert_eq!(by_old_uid, None, "the old uid must no longer find the app");

    store
        .create_app(new_app(Some("acme")))
        .await
        .expect("a uid given up by an update must be free again");
    let mut taking = renamed.clone();
    taking.uid = Some(uid("acme"));
    let clash = store.update_app(taking).await;
    assert!(
        matches!(clash, Err(StoreError::Conflict { .. })),
        "updating an app to a taken uid must be a Conflict, got {clash:?}"
    );

    let missing = store.update_app(new_app(None)).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "updating an app that does not exist must be NotFound, got {missing:?}"
    );

    store.delete_app(&app.id).await.expect("delete_app failed");
    let gone = store
        .app_by_ref(app.id.as_str())
        .await
        .expect("app_by_ref failed");
    assert_eq!(gone, None, "a deleted app must not be found by id");
    let gone = store
        .app_by_ref("acme-corp")
        .await
        .expect("app_by_ref failed");
    assert_eq!(gone, None, "a deleted app must not be found by uid");
    let again = store.delete_app(&app.id).await;
    assert!(
        matches!(again, Err(StoreError::NotFound(_))),
        "deleting an app that does not exist must be NotFound, got {again:?}"
    );
}

async fn event_types_round_trip_and_archived_ones_are_listed_only_when_asked(store: &dyn Store) {
    let mut paid = new_event_type("invoice.paid");
    paid.schemas = Some(serde_json::json!({"1": {"type": "object"}}));
    paid.feature_flag = Some("beta".to_owned());
    paid.group_name = Some("invoice".to_owned());
    paid.deprecated = true;
    let mut sent = new_event_type("invoice.sent");
    sent.archived = true;
    let user = new_event_type("user.created");
    for event_type in [&user, &paid, &sent] {
        let created = store
            .create_event_type(event_type.clone())
            .await
            .expect("create_event_type failed");
        assert_eq!(
            &created, event_type,
            "create_event_type must answer what it stored"
        );
    }
    let clash = store
        .create_event_type(new_event_type("invoice.paid"))
        .await;
    assert!(
        matches!(clash, Err(StoreError::Conflict { .. })),
        "a second event type with a taken name must be a Conflict, got {clash:?}"
    );

    let found = store
        .event_type("invoice.paid")
        .await
        .expect("event_type failed");
    assert_eq!(
        found,
        Some(paid.clone()),
        "an event type must read back as stored"
    );
    let unknown = store
        .event_type("invoice.lost")
        .await
        .expect("event_type failed");
    assert_eq!(
        unknown, None,
        "an unknown event type name must find nothing"
    );

    let names = |page: Page<EventType>| -> Vec<String> {
        page.items
            .into_iter()
            .map(|event_type| event_type.name.as_str().to_owned())
            .collect()
    };
    let live = store
        .list_event_types(everything(false), false)
        .await
        .expect("list_event_types failed");
    assert_eq!(
        names(live),
        ["invoice.paid", "user.created"],
        "archived event types must be left out unless asked for, the rest listed by name"
    );
    let all = store
        .list_event_types(everything(false), true)
        .await
        .expect("list_event_types failed");
    assert_eq!(
        names(all),
        ["invoice.paid", "invoice.sent", "user.created"],
        "with include_archived every event type must be listed, by name"
    );
    let second = store
        .list_event_types(
            PageRequest {
                limit: 1,
                cursor: Cursor::After("invoice.paid".to_owned()),
                newest_first: false,
            },
            true,
        )
        .await
        .expect("list_event_types failed");
    assert_eq!(
        (names(second.clone()), second.has_more),
        (vec!["invoice.sent".to_owned()], true),
        "event types must page by name"
    );

    let mut retired_user = user.clone();
    retired_user.archived = true;
    retired_user.description = "no longer sent".to_owned();
    retired_user.updated_at = at(1000);
    let updated = store
        .update_event_type(retired_user.clone())
        .await
        .expect("update_event_type failed");
    assert_eq!(
        updated, retired_user,
        "update_event_type must answer what it stored"
    );
    let reread = store
        .event_type("user.created")
        .await
        .expect("event_type failed");
    assert_eq!(
        reread,
        Some(retired_user),
        "update_event_type must replace the fields"
    );
    let live = store
        .list_event_types(everything(false), false)
        .await
        .expect("list_event_types failed");
    assert_eq!(
        names(live),
        ["invoice.paid"],
        "an event type archived by an update must leave the default list"
    );
    let missing = store
        .update_event_type(new_event_type("invoice.lost"))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "updating a missing event type must be NotFound, got {missing:?}"
    );

    store
        .delete_event_type("invoice.sent")
        .await
        .expect("delete_event_type failed");
    let gone = store
        .event_type("invoice.sent")
        .await
        .expect("event_type failed");
    assert_eq!(gone, None, "a deleted event type must not be found");
    let all = store
        .list_event_types(everything(false), true)
        .await
        .expect("list_event_types failed");
    assert_eq!(
        names(all),
        ["invoice.paid", "user.created"],
        "a deleted event type must not be listed, even with archived ones"
    );
    let again = store.delete_event_type("invoice.sent").await;
    assert!(
        matches!(again, Err(StoreError::NotFound(_))),
        "deleting a missing event type must be NotFound, got {again:?}"
    );
}

async fn endpoints_are_found_by_id_or_uid_within_their_own_app(store: &dyn Store) {
    let app = add_app(store).await;
    let other_app = add_app(store).await;

    let mut hook = new_endpoint(&app.id);
    hook.uid = Some(uid("hook"));
    hook.description = "billing".to_owned();
    hook.version = 2;
    hook.filter_types = Some(vec![type_name("invoice.paid"), type_name("invoice.sent")]);
    hook.channels = Some(vec![channel("eu")]);
    hook.rate_limit = Some(10);
    hook.metadata
        .insert("team".to_owned(), "billing".to_owned());
    hook.headers
        .insert("x-tenant".to_owned(), "acme".to_owned());
    // Keys of either kind persist as text and read back equal, current or
    // retired (a rotation may change the kind).
    hook.retired_keys.push(RetiredKey {
        key: SigningKey::generate_ed25519(),
        expires_at: at(60_000),
    });
    let created = store
        .create_endpoint(hook.clone())
        .await
        .expect("create_endpoint failed");
    assert_eq!(created, hook, "create_endpoint must answer what it stored");
    let by_id = store
        .endpoint_by_ref(&app.id, hook.id.as_str())
        .await
        .expect("endpoint_by_ref failed");
    assert_eq!(
        by_id,
        Some(hook.clone()),
        "an endpoint must read back by id with every field"
    );
    let by_uid = store
        .endpoint_by_ref(&app.id, "hook")
        .await
        .expect("endpoint_by_ref failed");
    assert_eq!(
        by_uid,
        Some(hook.clone()),
        "an endpoint must be found by uid in its app"
    );

    let mut other_hook = new_endpoint(&other_app.id);
    other_hook.uid = Some(uid("hook"));
    let other_hook = store
        .create_endpoint(other_hook)
        .await
        .expect("the same endpoint uid in another app must be allowed");
    let by_uid = store
        .endpoint_by_ref(&other_app.id, "hook")
        .await
        .expect("endpoint_by_ref failed");
    assert_eq!(
        by_uid,
        Some(other_hook.clone()),
        "a uid must resolve within the app asked"
    );
    let across = store
        .endpoint_by_ref(&other_app.id, hook.id.as_str())
        .await
        .expect("endpoint_by_ref failed");
    assert_eq!(
        across, None,
        "an endpoint must not be found through another app"
    );

    let mut clash = new_endpoint(&app.id);
    clash.uid = Some(uid("hook"));
    let clash = store.create_endpoint(clash).await;
    assert!(
        matches!(clash, Err(StoreError::Conflict { .. })),
        "a second endpoint with a taken uid in one app must be a Conflict, got {clash:?}"
    );

    let plain = add_endpoint(store, new_endpoint(&app.id)).await;
    let listed = store
        .list_endpoints(&app.id, everything(false))
        .await
        .expect("list_endpoints failed");
    assert_eq!(
        listed.items,
        [hook.clone(), plain.clone()],
        "list_endpoints must list the app's own endpoints, oldest first"
    );
    assert!(
        !listed.has_more,
        "a list that fits one page must not claim more"
    );

    let mut edited = hook.clone();
    edited.uid = Some(uid("hook-2"));
    edited.url = EndpointUrl::parse("https://other.example/in").expect("the fixture url is valid");
    edited.disabled = true;
    edited.filter_types = None;
    edited.channels = None;
    edited.rate_limit = None;
    edited.headers.clear();
    edited.retired_keys = vec![RetiredKey {
        key: hook.key.clone(),
        expires_at: at(90_000),
    }];
    edited.key = SigningKey::generate_ed25519();
    edited.updated_at = at(5000);
    let updated = store
        .update_endpoint(edited.clone())
        .await
        .expect("update_endpoint failed");
    assert_eq!(
        updated, edited,
        "update_endpoint must answer what it stored"
    );
    let reread = store
        .endpoint_by_ref(&app.id, "hook-2")
        .await
        .expect("endpoint_by_ref failed");
    assert_eq!(
        reread,
        Some(edited.clone()),
        "update_endpoint must replace every field"
    );
    let by_old_uid = store
        .endpoint_by_ref(&app.id, "hook")
        .await
        .expect("endpoint_by_ref failed");
    assert_eq!(
        by_old_uid, None,
        "the old uid must no longer find the endpoint"
    );

    let mut taking = plain.clone();
    taking.uid = Some(uid("hook-2"));
    let clash = store.update_endpoint(taking).await;
    assert!(
        matches!(clash, Err(StoreError::Conflict { .. })),
        "updating an endpoint to a uid taken in its app must be a Conflict, got {clash:?}"
    );
    let missing = store.update_endpoint(new_endpoint(&app.id)).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "updating a missing endpoint must be NotFound, got {missing:?}"
    );

    let across = store
        .delete_endpoint(&other_app.id, &hook.id, at(6000))
        .await;
    assert!(
        matches!(across, Err(StoreError::NotFound(_))),
        "deleting an endpoint through another app must be NotFound, got {across:?}"
    );
    let still_there = store
        .endpoint_by_ref(&app.id, hook.id.as_str())
        .await
        .expect("endpoint_by_ref failed");
    assert!(
        still_there.is_some(),
        "a refused delete must leave the endpoint in place"
    );
    store
        .delete_endpoint(&app.id, &hook.id, at(6000))
        .await
        .expect("delete_endpoint failed");
    let gone = store
        .endpoint_by_ref(&app.id, hook.id.as_str())
        .await
        .expect("endpoint_by_ref failed");
    assert_eq!(gone, None, "a deleted endpoint must not be found");
    let again = store.delete_endpoint(&app.id, &hook.id, at(7000)).await;
    assert!(
        matches!(again, Err(StoreError::NotFound(_))),
        "deleting a missing endpoint must be NotFound, got {again:?}"
    );
    let listed = store
        .list_endpoints(&app.id, everything(false))
        .await
        .expect("list_endpoints failed");
    assert_eq!(
        listed.items,
        [plain],
        "a deleted endpoint must not be listed"
    );
}

async fn apps_page_oldest_first_in_both_directions(store: &dyn Store) {
    let mut apps = Vec::new();
    for _ in 0..7 {
        apps.push(add_app(store).await.id);
    }
    let page = |cursor: Cursor| PageRequest {
        limit: 3,
        cursor,
        newest_first: false,
    };
    let after = |index: usize| Cursor::After(apps[index].as_str().to_owned());
    let before = |index: usize| Cursor::Before(apps[index].as_str().to_owned());
    let cases = [
        (Cursor::Start, 0..3, true, "the first page"),
        (after(2), 3..6, true, "the page after the first"),
        (after(5), 6..7, false, "the last, partial page"),
        (
            after(3),
            4..7,
            false,
            "a page ending exactly at the last app",
        ),
        (after(6), 7..7, false, "the page after the last app"),
        (before(6), 3..6, true, "going back from the last app"),
        (before(3), 0..3, false, "going back to the first page"),
        (before(0), 0..0, false, "the page before the first app"),
    ];
    for (cursor, range, has_more, what) in cases {
        let listed = store
            .list_apps(page(cursor.clone()))
            .await
            .expect("list_apps failed");
        assert_eq!(
            app_ids(listed),
            (apps[range].to_vec(), has_more),
            "apps, oldest first, limit 3, {what} ({cursor:?}): wrong items or has_more"
        );
    }
}

async fn messages_page_newest_first_in_both_directions(store: &dyn Store) {
    let app = add_app(store).await;
    let other_app = add_app(store).await;
    let mut messages = Vec::new();
    for index in 0..7 {
        messages.push(
            publish(
                store,
                new_message(&app.id, "invoice.paid", at(index * 1000)),
            )
            .await,
        );
        // Another app's messages, interleaved, must never show up.
        publish(
            store,
            new_message(&other_app.id, "invoice.paid", at(index * 1000)),
        )
        .await;
    }
    // List order: newest first.
    let newest_first: Vec<MessageId> = ids_of(&messages).into_iter().rev().collect();
    let page = |cursor: Cursor| PageRequest {
        limit: 3,
        cursor,
        newest_first: true,
    };
    let after = |index: usize| Cursor::After(newest_first[index].as_str().to_owned());
    let before = |index: usize| Cursor::Before(newest_first[index].as_str().to_owned());
    let cases = [
        (Cursor::Start, 0..3, true, "the first page"),
        (after(2), 3..6, true, "the page after the first"),
        (after(5), 6..7, false, "the last, partial page"),
        (
            after(3),
            4..7,
            false,
            "a page ending exactly at the oldest message",
        ),
        (before(6), 3..6, true, "going back from the oldest message"),
        (before(3), 0..3, false, "going back to the first page"),
        (before(0), 0..0, false, "the page before the newest message"),
    ];
    for (cursor, range, has_more, what) in cases {
        let listed = store
            .list_messages(&app.id, MessageFilter::default(), page(cursor.clone()))
            .await
            .expect("list_messages failed");
        assert_eq!(
            message_ids(listed),
            (newest_first[range].to_vec(), has_more),
            "messages, newest first, limit 3, {what} ({cursor:?}): wrong items or has_more"
        );
    }
}

async fn message_lists_filter_by_type_channel_tag_and_time(store: &dyn Store) {
    let app = add_app(store).await;
    let paid = publish(store, new_message(&app.id, "invoice.paid", at(0))).await;
    let user = publish(store, new_message(&app.id, "user.created", at(1000))).await;
    let mut on_eu = new_message(&app.id, "invoice.paid", at(2000));
    on_eu.channels = vec![channel("us"), channel("eu")];
    let on_eu = publish(store, on_eu).await;
    let mut tagged = new_message(&app.id, "invoice.sent", at(3000));
    tagged.tags = vec!["vip".to_owned()];
    let tagged = publish(store, tagged).await;

    let all = store
        .list_messages(&app.id, MessageFilter::default(), everything(true))
        .await
        .expect("list_messages failed");
    assert_eq!(
        all.items,
        [tagged.clone(), on_eu.clone(), user.clone(), paid.clone()],
        "messages must read back as stored, newest first"
    );

    let cases = [
        (
            MessageFilter {
                event_types: vec!["invoice.paid".to_owned(), "invoice.sent".to_owned()],
                ..MessageFilter::default()
            },
            vec![&tagged, &on_eu, &paid],
            "event_types",
        ),
        (
            MessageFilter {
                channel: Some("eu".to_owned()),
                ..MessageFilter::default()
            },
            vec![&on_eu],
            "channel",
        ),
        (
            MessageFilter {
                tag: Some("vip".to_owned()),
                ..MessageFilter::default()
            },
            vec![&tagged],
            "tag",
        ),
        (
            MessageFilter {
                after: Some(at(1500)),
                ..MessageFilter::default()
            },
            vec![&tagged, &on_eu],
            "after",
        ),
        (
            MessageFilter {
                before: Some(at(1500)),
                ..MessageFilter::default()
            },
            vec![&user, &paid],
            "before",
        ),
    ];
    for (filter, expected, what) in cases {
        let listed = store
            .list_messages(&app.id, filter, everything(true))
            .await
            .expect("list_messages failed");
        let expected: Vec<MessageId> = expected.iter().map(|message| message.id.clone()).collect();
        assert_eq!(
            ids_of(&listed.items),
            expected,
            "list_messages filtered by {what} listed the wrong messages"
        );
    }
}

async fn fan_out_queues_one_due_delivery_per_matching_enabled_endpoint(store: &dyn Store) {
    let app = add_app(store).await;
    let other_app = add_app(store).await;
    let every = add_endpoint(store, new_endpoint(&app.id)).await;
    let mut paid_only = new_endpoint(&app.id);
    paid_only.filter_types = Some(vec![type_name("invoice.paid")]);
    let paid_only = add_endpoint(store, paid_only).await;
    let mut sent_only = new_endpoint(&app.id);
    sent_only.filter_types = Some(vec![type_name("invoice.sent")]);
    add_endpoint(store, sent_only).await;
    let mut eu = new_endpoint(&app.id);
    eu.channels = Some(vec![channel("eu")]);
    let eu = add_endpoint(store, eu).await;
    let mut us = new_endpoint(&app.id);
    us.channels = Some(vec![channel("us")]);
    add_endpoint(store, us).await;
    let mut paid_in_us = new_endpoint(&app.id);
    paid_in_us.filter_types = Some(vec![type_name("invoice.paid")]);
    paid_in_us.channels = Some(vec![channel("us")]);
    add_endpoint(store, paid_in_us).await;
    let mut disabled = new_endpoint(&app.id);
    disabled.disabled = true;
    add_endpoint(store, disabled).await;
    add_endpoint(store, new_endpoint(&other_app.id)).await;

    let mut message = new_message(&app.id, "invoice.paid", at(0));
    message.channels = vec![channel("eu")];
    let created = store
        .create_message(message.clone(), None)
        .await
        .expect("create_message failed");
    assert!(
        created.is_new,
        "a message without an idempotency key is always new"
    );
    assert_eq!(
        created.message, message,
        "create_message must answer the stored message"
    );
    let found = store
        .message_by_ref(&app.id, message.id.as_str())
        .await
        .expect("message_by_ref failed");
    assert_eq!(
        found,
        Some(message.clone()),
        "a message must read back as stored"
    );

    let queued = deliveries(store, &app.id, &message.id).await;
    let mut targets: Vec<EndpointId> = queued
        .iter()
        .map(|delivery| delivery.endpoint_id.clone())
        .collect();
    targets.sort();
    let mut expected = vec![every.id.clone(), paid_only.id.clone(), eu.id.clone()];
    expected.sort();
    assert_eq!(
        targets, expected,
        "fan-out must reach exactly the enabled endpoints of the app whose type and channel \
         filters both match"
    );
    assert_eq!(
        created.deliveries, 3,
        "CreatedMessage.deliveries must count the fan-out"
    );
    for delivery in &queued {
        assert_eq!(
            (
                delivery.status,
                delivery.attempt_count,
                delivery.next_attempt_at,
                delivery.trigger
            ),
            (
                DeliveryStatus::Pending,
                0,
                Some(message.created_at),
                TriggerType::Scheduled
            ),
            "a fanned-out delivery must be pending, unattempted, scheduled and due at the \
             message's creation"
        );
    }

    let mut no_channel = new_message(&app.id, "invoice.paid", at(10));
    no_channel.channels = Vec::new();
    let no_channel = store
        .create_message(no_channel, None)
        .await
        .expect("create_message failed");
    let mut targets: Vec<EndpointId> = deliveries(store, &app.id, &no_channel.message.id)
        .await
        .into_iter()
        .map(|delivery| delivery.endpoint_id)
        .collect();
    targets.sort();
    let mut expected = vec![every.id.clone(), paid_only.id.clone()];
    expected.sort();
    assert_eq!(
        targets, expected,
        "a message on no channel must not reach endpoints that filter on channels"
    );

    let early = claim(store, at(-1), 100).await;
    assert!(
        early.is_empty(),
        "nothing may be claimed before it is due, got {early:?}"
    );
    let due = claim(store, at(0), 100).await;
    assert_eq!(
        leased_set(&due),
        pairs(&[(&message, &every), (&message, &paid_only), (&message, &eu)]),
        "fanned-out deliveries must be due at once, at the message's creation time"
    );
}

async fn a_test_message_goes_to_its_endpoint_whatever_the_filters(store: &dyn Store) {
    let app = add_app(store).await;
    let mut sent_only = new_endpoint(&app.id);
    sent_only.filter_types = Some(vec![type_name("invoice.sent")]);
    let sent_only = add_endpoint(store, sent_only).await;
    // An endpoint without filters, which the test message must still skip.
    add_endpoint(store, new_endpoint(&app.id)).await;

    let message = new_message(&app.id, "webhook.test", at(0));
    let created = store
        .create_message_for_endpoint(message.clone(), &sent_only.id)
        .await
        .expect("create_message_for_endpoint failed");
    assert_eq!(
        created.deliveries, 1,
        "a test message must queue exactly one delivery"
    );
    let queued = deliveries(store, &app.id, &message.id).await;
    assert_eq!(
        queued.len(),
        1,
        "a test message must not fan out, got {queued:?}"
    );
    assert_eq!(
        queued[0].endpoint_id, sent_only.id,
        "a test message must go to its endpoint even though its filters exclude the type"
    );
    assert_eq!(
        (queued[0].status, queued[0].next_attempt_at),
        (DeliveryStatus::Pending, Some(message.created_at)),
        "a test message's delivery must be pending and due at once"
    );
}

/// Creates that arrive together share a commit (both backends batch
/// them); one that fails, its id being taken, fails alone: every other is
/// stored with its delivery, and the message it clashed with is unchanged.
async fn a_failing_create_among_concurrent_ones_fails_alone(store: &dyn Store) {
    let app = add_app(store).await;
    add_endpoint(store, new_endpoint(&app.id)).await;
    let taken = new_message(&app.id, "invoice.paid", at(0));
    store
        .create_message(taken.clone(), None)
        .await
        .expect("create_message failed");

    let mut messages: Vec<Message> = (1..=32)
        .map(|n| new_message(&app.id, "invoice.paid", at(n)))
        .collect();
    let mut clash = new_message(&app.id, "order.created", at(100));
    clash.id = taken.id.clone();
    messages.insert(16, clash);
    let answers = futures_util::future::join_all(
        messages
            .iter()
            .map(|message| store.create_message(message.clone(), None)),
    )
    .await;

    for (message, answer) in messages.iter().zip(answers) {
        if message.id == taken.id {
            assert!(answer.is_err(), "a create whose id is taken must fail");
            continue;
        }
        let created = answer.expect("a create beside a failing one must succeed");
        assert!(created.is_new && created.deliveries == 1, "{created:?}");
        let stored = store
            .message_by_ref(&app.id, message.id.as_str())
            .await
            .expect("message_by_ref failed");
        assert_eq!(stored.as_ref(), Some(message));
        assert_eq!(deliveries(store, &app.id, &message.id).await.len(), 1);
    }
    let kept = store
        .message_by_ref(&app.id, taken.id.as_str())
        .await
        .expect("message_by_ref failed");
    assert_eq!(kept, Some(taken.clone()), "the clash must change nothing");
    assert_eq!(deliveries(store, &app.id, &taken.id).await.len(), 1);
}

async fn an_idempotency_key_answers_the_first_message_and_queues_nothing(store: &dyn Store) {
    let app = add_app(store).await;
    let endpoint = add_endpoint(store, new_endpoint(&app.id)).await;

    let first = new_message(&app.id, "invoice.paid", at(0));
    let created = store
        .create_message(first.clone(), Some("order-1".to_owned()))
        .await
        .expect("create_message failed");
    assert!(
        created.is_new,
        "the first use of an idempotency key must create the message"
    );
    assert_eq!(created.deliveries, 1);

    let mut repeat = new_message(&app.id, "invoice.paid", at(5000));
    repeat.payload = r#"{"invoice":43}"#.to_owned();
    let answered = store
        .create_message(repeat.clone(), Some("order-1".to_owned()))
        .await
        .expect("create_message failed");
    assert!(
        !answered.is_new,
        "a repeated idempotency key must answer is_new = false"
    );
    assert_eq!(
        answered.message, first,
        "a repeated idempotency key must answer the first message"
    );
    assert_eq!(
        answered.deliveries, 0,
        "a repeat must report no deliveries queued"
    );
    let stored = store
        .message_by_ref(&app.id, repeat.id.as_str())
        .await
        .expect("message_by_ref failed");
    assert_eq!(stored, None, "a repeat must not store the new message");
    assert!(
        deliveries(store, &app.id, &repeat.id).await.is_empty(),
        "a repeat must not queue deliveries"
    );
    assert_eq!(
        deliveries(store, &app.id, &first.id).await.len(),
        1,
        "a repeat must not queue another delivery of the first message"
    );
    let claims = claim(store, at(10_000), 100).await;
    assert_eq!(
        leased(&claims),
        [(first.id.clone(), endpoint.id.clone())],
        "only the first message's delivery may be in the queue"
    );

    let other_app = add_app(store).await;
    let elsewhere = store
        .create_message(
            new_message(&other_app.id, "invoice.paid", at(0)),
            Some("order-1".to_owned()),
        )
        .await
        .expect("create_message failed");
    assert!(
        elsewhere.is_new,
        "idempotency keys must be scoped to their app"
    );

    // Two creates racing with one key: exactly one wins, the other answers it.
    let (left, right) = (
        new_message(&app.id, "invoice.paid", at(100)),
        new_message(&app.id, "invoice.paid", at(100)),
    );
    let (left, right) = tokio::join!(
        store.create_message(left, Some("order-2".to_owned())),
        store.create_message(right, Some("order-2".to_owned())),
    );
    let (left, right) = (
        left.expect("create_message failed"),
        right.expect("create_message failed"),
    );
    assert!(
        left.is_new != right.is_new,
        "of two concurrent creates with one key exactly one must be new \
         (left new: {}, right new: {})",
        left.is_new,
        right.is_new
    );
    let (winner, loser) = if left.is_new {
        (left, right)
    } else {
        (right, left)
    };
    assert_eq!(
        loser.message, winner.message,
        "the losing concurrent create must answer the winner's message"
    );
    let listed = store
        .list_messages(&app.id, MessageFilter::default(), everything(true))
        .await
        .expect("list_messages failed");
    assert_eq!(
        ids_of(&listed.items),
        [winner.message.id.clone(), first.id.clone()],
        "idempotent creates must store each message once"
    );
}

/// Backends may store large payloads compressed; what comes back is the
/// payload as sent, byte for byte, repetitive or not.
async fn large_payloads_round_trip_exactly(store: &dyn Store) {
    let app = add_app(store).await;
    let repetitive: String = (0..2_000)
        .map(|n| format!(r#"{{"line":{n},"text":"ünïcode ✓"}},"#))
        .collect();
    // Characters from a simple generator: nothing for a compressor to find.
    let mut state: u32 = 0x9e37_79b9;
    let varied: String = (0..20_000)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            char::from(b'a' + ((state >> 24) % 26) as u8)
        })
        .collect();
    for (offset, body) in [repetitive, varied].into_iter().enumerate() {
        let mut message = new_message(&app.id, "invoice.paid", at(offset as i64));
        message.payload = format!(r#"{{"items":"{}"}}"#, body.replace('"', "'"));
        let message = publish(store, message).await;
        let found = store
            .message_by_ref(&app.id, message.id.as_str())
            .await
            .expect("message_by_ref failed")
            .expect("the message must be found");
        assert_eq!(
            found.payload,
            message.payload,
            "a payload of {} bytes must come back whole",
            message.payload.len()
        );
    }
}

async fn messages_are_found_by_id_or_event_id_within_their_app(store: &dyn Store) {
    let app = add_app(store).await;
    let other_app = add_app(store).await;
    let mut message = new_message(&app.id, "invoice.paid", at(0));
    message.event_id = Some("evt-42".to_owned());
    let message = publish(store, message).await;
    publish(store, new_message(&app.id, "invoice.paid", at(1))).await;

    let by_id = store
        .message_by_ref(&app.id, message.id.as_str())
        .await
        .expect("message_by_ref failed");
    assert_eq!(
        by_id,
        Some(message.clone()),
        "a message must be found by its id"
    );
    let by_event_id = store
        .message_by_ref(&app.id, "evt-42")
        .await
        .expect("message_by_ref failed");
    assert_eq!(
        by_event_id,
        Some(message.clone()),
        "a message must be found by its event id"
    );
    for (reference, what) in [(message.id.as_str(), "id"), ("evt-42", "event id")] {
        let across = store
            .message_by_ref(&other_app.id, reference)
            .await
            .expect("message_by_ref failed");
        assert_eq!(
            across, None,
            "a message must not be found by {what} through another app"
        );
    }
    let unknown = store
        .message_by_ref(&app.id, "evt-43")
        .await
        .expect("message_by_ref failed");
    assert_eq!(unknown, None, "an unknown reference must find no message");
}

async fn a_messages_content_can_be_deleted(store: &dyn Store) {
    let app = add_app(store).await;
    let other = add_app(store).await;
    let message = publish(store, new_message(&app.id, "invoice.paid", at(0))).await;
    assert!(
        !store
            .expunge_content(&other.id, &message.id, at(5))
            .await
            .expect("expunge_content failed"),
        "another app's message is not found"
    );
    assert!(store
        .expunge_content(&app.id, &message.id, at(5))
        .await
        .expect("expunge_content failed"));
    let found = store
        .message_by_ref(&app.id, message.id.as_str())
        .await
        .expect("message_by_ref failed")
        .expect("the message stays");
    assert_eq!(found.payload, "{}");
    assert_eq!(found.content_expunged_at, Some(at(5)));
    assert_eq!(found.event_type, message.event_type, "the rest stays");
}

async fn payloads_are_deleted_once_their_own_retention_ends(store: &dyn Store) {
    let app = add_app(store).await;
    let expiring = |expires_at: i64| Message {
        payload_expires_at: Some(at(expires_at)),
        ..new_message(&app.id, "invoice.paid", at(0))
    };
    let soon = publish(store, expiring(10)).await;
    let later = publish(store, expiring(20)).await;
    let kept = publish(store, new_message(&app.id, "invoice.paid", at(0))).await;
    let asked = publish(store, expiring(10)).await;
    assert!(store
        .expunge_content(&app.id, &asked.id, at(5))
        .await
        .expect("expunge_content failed"));
    let expunge = |now: i64, limit: usize| async move {
        store
            .expunge_expired_payloads(at(now), limit)
            .await
            .expect("expunge_expired_payloads failed")
    };
    let found = |message: &Message| {
        let id = message.id.clone();
        let app = app.id.clone();
        async move {
            store
                .message_by_ref(&app, id.as_str())
                .await
                .expect("message_by_ref failed")
                .expect("the message stays")
        }
    };
    assert_eq!(expunge(9, 100).await, 0, "nothing has expired yet");
    assert_eq!(
        expunge(15, 100).await,
        1,
        "one payload expired; one deleted on request already is not counted again"
    );
    let gone = found(&soon).await;
    assert_eq!(gone.payload, "{}");
    assert_eq!(gone.content_expunged_at, Some(at(15)));
    assert_eq!(found(&asked).await.content_expunged_at, Some(at(5)));
    assert_eq!(found(&later).await.payload, later.payload);
    assert_eq!(expunge(15, 100).await, 0, "an expunged payload is done");
    assert_eq!(expunge(1_000_000, 100).await, 1);
    assert_eq!(found(&later).await.payload, "{}");
    let untouched = found(&kept).await;
    assert_eq!(untouched.payload, kept.payload, "no retention, no expiry");
    assert_eq!(untouched.content_expunged_at, None);
    assert_eq!(untouched.payload_expires_at, None);

    // A batch is bounded; the caller repeats.
    for _ in 0..3 {
        publish(store, expiring(30)).await;
    }
    assert_eq!(expunge(40, 2).await, 2);
    assert_eq!(expunge(40, 2).await, 1);
    assert_eq!(expunge(40, 2).await, 0);
}

async fn claim_due_leases_the_oldest_due_deliveries_first_up_to_the_limit(store: &dyn Store) {
    let app = add_app(store).await;
    let endpoint = add_endpoint(store, new_endpoint(&app.id)).await;
    // Created in id order but due in the opposite order, so "oldest due" and
    // "oldest id" pick different deliveries.
    let mut messages = Vec::new();
    for due in [30_000, 20_000, 10_000, 0] {
        messages.push(publish(store, new_message(&app.id, "invoice.paid", at(due))).await);
    }
    let (due_30, due_20, due_10, due_0) = (&messages[0], &messages[1], &messages[2], &messages[3]);

    let early = claim(store, at(-1), 100).await;
    assert!(
        early.is_empty(),
        "nothing may be claimed before it is due, got {early:?}"
    );

    let first = claim(store, at(15_000), 100).await;
    assert_eq!(
        leased_set(&first),
        pairs(&[(due_0, &endpoint), (due_10, &endpoint)]),
        "claim_due must lease every delivery due by `now` and none due later"
    );
    assert_eq!(
        leased(&first),
        pairs(&[(due_0, &endpoint)])
            .into_iter()
            .chain(pairs(&[(due_10, &endpoint)]))
            .collect::<Vec<_>>(),
        "claims must come back oldest due first"
    );
    let lease = claim_of(&first, &due_0.id, &endpoint.id);
    assert_eq!(
        (&lease.app_id, lease.attempt_count, lease.trigger),
        (&app.id, 0, TriggerType::Scheduled),
        "a claim must carry its app, attempts so far and trigger"
    );
    let leased_delivery = delivery(store, &app.id, &due_0.id, &endpoint.id).await;
    assert_eq!(
        leased_delivery.status,
        DeliveryStatus::Sending,
        "a leased delivery must show as sending"
    );
    let waiting = delivery(store, &app.id, &due_20.id, &endpoint.id).await;
    assert_eq!(
        waiting.status,
        DeliveryStatus::Pending,
        "a delivery not yet due must stay pending"
    );

    let one = claim(store, at(100_000), 1).await;
    assert_eq!(
        leased(&one),
        pairs(&[(due_20, &endpoint)]),
        "with limit 1 claim_due must lease only the oldest due delivery"
    );
    let rest = claim(store, at(100_000), 100).await;
    assert_eq!(
        leased(&rest),
        pairs(&[(due_30, &endpoint)]),
        "claim_due must lease what is left and nothing leased before"
    );
    let none = claim(store, at(200_000), 100).await;
    assert!(
        none.is_empty(),
        "leased deliveries must not be claimed again, got {none:?}"
    );
}

async fn claim_due_skips_saturated_endpoints(store: &dyn Store) {
    let app = add_app(store).await;
    let busy = add_endpoint(store, new_endpoint(&app.id)).await;
    let idle = add_endpoint(store, new_endpoint(&app.id)).await;
    let first = publish(store, new_message(&app.id, "invoice.paid", at(0))).await;
    let second = publish(store, new_message(&app.id, "invoice.paid", at(10))).await;

    let lease_until = at(LEASE);
    let claims = store
        .claim_due(
            at(100),
            100,
            100,
            std::slice::from_ref(&busy.id),
            lease_until,
        )
        .await
        .expect("claim_due failed");
    assert_eq!(
        leased_set(&claims),
        pairs(&[(&first, &idle), (&second, &idle)]),
        "claim_due must skip the saturated endpoint and lease the others"
    );
    let claims = store
        .claim_due(
            at(100),
            100,
            100,
            &[busy.id.clone(), idle.id.clone()],
            lease_until,
        )
        .await
        .expect("claim_due failed");
    assert!(
        claims.is_empty(),
        "with every endpoint saturated nothing may be leased"
    );
    let still = delivery(store, &app.id, &first.id, &busy.id).await;
    assert_eq!(
        still.status,
        DeliveryStatus::Pending,
        "a skipped delivery must stay pending"
    );
    let claims = claim(store, at(100), 100).await;
    assert_eq!(
        leased_set(&claims),
        pairs(&[(&first, &busy), (&second, &busy)]),
        "once no longer saturated, the skipped endpoint's deliveries must be leased"
    );
}

/// A claim given back without an attempt (it waited too long for its
/// endpoint, or a circuit or rate limit put it off) keeps its trigger: the
/// manual resend it was is still manual when it is finally attempted. An
/// attempt that fails makes the next one a scheduled retry.
async fn a_manual_delivery_put_off_without_an_attempt_stays_manual(store: &dyn Store) {
    let app = add_app(store).await;
    let endpoint = add_endpoint(store, new_endpoint(&app.id)).await;
    let message = publish(store, new_message(&app.id, "invoice.paid", at(0))).await;
    let first = claim(store, at(0), 100).await;
    settle(store, &first[0], DeliveryStatus::Fail, None, at(10)).await;
    store
        .resend(&app.id, &message.id, &endpoint.id, at(100))
        .await
        .expect("resend failed");
    let resent = claim(store, at(100), 100).await;
    assert_eq!(resent[0].trigger, TriggerType::Manual);

    let put_off = resent[0].outcome(
        DeliveryStatus::Pending,
        resent[0].attempt_count,
        Some(at(200)),
        at(150),
    );
    let recorded = store
        .record_attempt(None, put_off)
        .await
        .expect("record_attempt failed");
    assert_eq!(recorded, Recorded::Applied);
    let waiting = delivery(store, &app.id, &message.id, &endpoint.id).await;
    assert_eq!(
        (waiting.status, waiting.next_attempt_at, waiting.trigger),
        (DeliveryStatus::Pending, Some(at(200)), TriggerType::Manual),
        "a manual delivery put off without an attempt is still manual"
    );
    let again = claim(store, at(200), 100).await;
    assert_eq!(
        again[0].trigger,
        TriggerType::Manual,
        "and is claimed as manual"
    );

    settle(
        store,
        &again[0],
        DeliveryStatus::Pending,
        Some(at(300)),
        at(250),
    )
    .await;
    let retry = delivery(store, &app.id, &message.id, &endpoint.id).await;
    assert_eq!(
        (retry.status, retry.trigger),
        (DeliveryStatus::Pending, TriggerType::Scheduled),
        "after a failed attempt, the next is a scheduled retry"
    );
}

async fn record_attempt_logs_the_attempt_and_moves_the_delivery(store: &dyn Store) {
    let app = add_app(store).await;
    let flaky = add_endpoint(store, new_endpoint(&app.id)).await;
    let healthy = add_endpoint(store, new_endpoint(&app.id)).await;
    let mut tagged = new_message(&app.id, "invoice.paid", at(0));
    tagged.channels = vec![Channel::parse("eu").expect("a valid channel")];
    tagged.tags = vec!["vip".to_owned()];
    let message = publish(store, tagged).await;
    let other_message = publish(store, new_message(&app.id, "invoice.paid", at(1))).await;
    let claims = claim(store, at(0), 100).await;
    assert_eq!(
        claims.len(),
        2,
        "both deliveries of the message must be claimed"
    );

    let failed = Attempt {
        id: AttemptId::generate(),
        app_id: app.id.clone(),
        msg_id: message.id.clone(),
        endpoint_id: flaky.id.clone(),
        url: flaky.url.as_str().to_owned(),
        timestamp: at(100),
        status: DeliveryStatus::Fail,
        response_status_code: 0,
        response: String::new(),
        response_duration_ms: 15_000,
        trigger: TriggerType::Scheduled,
        error: Some(AttemptError::Timeout),
    };
    store
        .record_attempt(
            Some(failed.clone()),
            claim_of(&claims, &message.id, &flaky.id).outcome(
                DeliveryStatus::Pending,
                1,
                Some(at(60_000)),
                at(100),
            ),
        )
        .await
        .expect("record_attempt failed");
    let succeeded = settle(
        store,
        claim_of(&claims, &message.id, &healthy.id),
        DeliveryStatus::Success,
        None,
        at(200),
    )
    .await;
    let found = store
        .attempt(&app.id, &message.id, &succeeded.id)
        .await
        .expect("attempt failed");
    assert_eq!(
        found.as_ref(),
        Some(&succeeded),
        "an attempt must be found by id"
    );
    let elsewhere = store
        .attempt(&AppId::generate(), &message.id, &succeeded.id)
        .await
        .expect("attempt failed");
    assert_eq!(
        elsewhere, None,
        "an attempt must not be found through another app"
    );

    let retrying = delivery(store, &app.id, &message.id, &flaky.id).await;
    assert_eq!(
        (
            retrying.status,
            retrying.attempt_count,
            retrying.next_attempt_at,
            retrying.updated_at
        ),
        (DeliveryStatus::Pending, 1, Some(at(60_000)), at(100)),
        "record_attempt must move the delivery to the outcome given"
    );
    let done = delivery(store, &app.id, &message.id, &healthy.id).await;
    assert_eq!(
        (done.status, done.attempt_count, done.next_attempt_at),
        (DeliveryStatus::Success, 1, None),
        "a successful delivery must be done, with no next attempt"
    );

    let logged = attempts(
        store,
        &app.id,
        AttemptFilter {
            msg_id: Some(message.id.clone()),
            ..AttemptFilter::default()
        },
    )
    .await;
    assert_eq!(
        logged,
        [succeeded.clone(), failed.clone()],
        "both attempts must be logged as given, newest first"
    );
    let cases = [
        (
            AttemptFilter {
                endpoint_id: Some(flaky.id.clone()),
                ..AttemptFilter::default()
            },
            vec![&failed],
            "endpoint",
        ),
        (
            AttemptFilter {
                msg_id: Some(message.id.clone()),
                status: Some(DeliveryStatus::Success),
                ..AttemptFilter::default()
            },
            vec![&succeeded],
            "message and status success",
        ),
        (
            AttemptFilter {
                status: Some(DeliveryStatus::Fail),
                ..AttemptFilter::default()
            },
            vec![&failed],
            "status fail",
        ),
        (
            AttemptFilter {
                msg_id: Some(other_message.id.clone()),
                ..AttemptFilter::default()
            },
            vec![],
            "a message with no attempts",
        ),
        (
            AttemptFilter {
                status_code_class: Some(200),
                ..AttemptFilter::default()
            },
            vec![&succeeded],
            "status code class 2xx",
        ),
        (
            AttemptFilter {
                status_code_class: Some(0),
                ..AttemptFilter::default()
            },
            vec![&failed],
            "no answer (status code class 0)",
        ),
        (
            AttemptFilter {
                status_code_class: Some(500),
                ..AttemptFilter::default()
            },
            vec![],
            "status code class 5xx",
        ),
        (
            AttemptFilter {
                channel: Some("eu".to_owned()),
                tag: Some("vip".to_owned()),
                ..AttemptFilter::default()
            },
            vec![&succeeded, &failed],
            "the message's channel and tag",
        ),
        (
            AttemptFilter {
                channel: Some("us".to_owned()),
                ..AttemptFilter::default()
            },
            vec![],
            "another channel",
        ),
        (
            AttemptFilter {
                tag: Some("other".to_owned()),
                ..AttemptFilter::default()
            },
            vec![],
            "another tag",
        ),
    ];
    for (filter, expected, what) in cases {
        let listed = attempts(store, &app.id, filter).await;
        let expected: Vec<Attempt> = expected.into_iter().cloned().collect();
        assert_eq!(
            listed, expected,
            "list_attempts filtered by {what} listed the wrong attempts"
        );
    }
    let newest = store
        .list_attempts(
            &app.id,
            AttemptFilter::default(),
            PageRequest {
                limit: 1,
                cursor: Cursor::Start,
                newest_first: true,
            },
        )
        .await
        .expect("list_attempts failed");
    assert_eq!(
        (newest.items, newest.has_more),
        (vec![succeeded], true),
        "attempts must page newest first"
    );

    assert_eq!(
        store.next_due_at().await.expect("next_due_at failed"),
        Some(at(1)),
        "the other message's delivery, still pending, is due first"
    );
    let other_claims = claim(store, at(1), 100).await;
    assert_eq!(other_claims.len(), 2);
    assert_eq!(
        store.next_due_at().await.expect("next_due_at failed"),
        Some(at(60_000)),
        "the retry must be due when the outcome said"
    );
    let early = claim(store, at(59_999), 100).await;
    assert!(
        early.is_empty(),
        "a retry must not be claimed before it is due, got {early:?}"
    );
    let retry = claim(store, at(60_000), 100).await;
    assert_eq!(
        leased(&retry),
        pairs(&[(&message, &flaky)]),
        "the retry must be claimable once due"
    );
    assert_eq!(
        retry[0].attempt_count, 1,
        "a retry's claim must count the earlier attempt"
    );

    // Giving up without an attempt: the delivery moves, the log does not grow.
    store
        .record_attempt(
            None,
            retry[0].outcome(DeliveryStatus::Fail, 1, None, at(60_001)),
        )
        .await
        .expect("record_attempt failed");
    let given_up = delivery(store, &app.id, &message.id, &flaky.id).await;
    assert_eq!(
        (given_up.status, given_up.next_attempt_at),
        (DeliveryStatus::Fail, None),
        "an outcome without an attempt must still move the delivery"
    );
    let logged = attempts(store, &app.id, AttemptFilter::default()).await;
    assert_eq!(
        logged.len(),
        2,
        "an outcome without an attempt must log no attempt"
    );
}

async fn released_leases_can_be_claimed_again(store: &dyn Store) {
    let app = add_app(store).await;
    let endpoint = add_endpoint(store, new_endpoint(&app.id)).await;
    let message = publish(store, new_message(&app.id, "invoice.paid", at(0))).await;
    let expected = pairs(&[(&message, &endpoint)]);

    let claims = store
        .claim_due(at(0), 100, 100, &[], at(30_000))
        .await
        .expect("claim_due failed");
    assert_eq!(leased(&claims), expected);
    let released = store
        .release_leases(at(29_999), false)
        .await
        .expect("release_leases failed");
    assert_eq!(
        released, 0,
        "a lease that has not ended must not be released"
    );
    assert!(
        claim(store, at(29_999), 100).await.is_empty(),
        "a live lease must keep its delivery from being claimed"
    );
    let released = store
        .release_leases(at(30_001), false)
        .await
        .expect("release_leases failed");
    assert_eq!(released, 1, "an ended lease must be released and counted");
    let back = delivery(store, &app.id, &message.id, &endpoint.id).await;
    assert_eq!(
        back.status,
        DeliveryStatus::Pending,
        "a released delivery must be pending again"
    );
    let again = store
        .claim_due(at(30_001), 100, 100, &[], at(90_000))
        .await
        .expect("claim_due failed");
    assert_eq!(
        leased(&again),
        expected,
        "a released delivery must be claimable at once"
    );

    let released = store
        .release_leases(at(30_002), true)
        .await
        .expect("release_leases failed");
    assert_eq!(
        released, 1,
        "release_leases(all) must release live leases too"
    );
    let again = claim(store, at(30_002), 100).await;
    assert_eq!(
        leased(&again),
        expected,
        "a delivery released by release_leases(all) must be claimable again"
    );
    assert_eq!(
        again[0].attempt_count, 0,
        "a release must not count as an attempt"
    );
}

async fn resend_queues_a_manual_attempt(store: &dyn Store) {
    let app = add_app(store).await;
    let mut paid_only = new_endpoint(&app.id);
    paid_only.filter_types = Some(vec![type_name("invoice.paid")]);
    let paid_only = add_endpoint(store, paid_only).await;
    let mut sent_only = new_endpoint(&app.id);
    sent_only.filter_types = Some(vec![type_name("invoice.sent")]);
    let sent_only = add_endpoint(store, sent_only).await;
    let message = publish(store, new_message(&app.id, "invoice.paid", at(0))).await;
    let claims = claim(store, at(0), 100).await;
    settle(store, &claims[0], DeliveryStatus::Success, None, at(10)).await;

    store
        .resend(&app.id, &message.id, &paid_only.id, at(5000))
        .await
        .expect("resend failed");
    let queued = delivery(store, &app.id, &message.id, &paid_only.id).await;
    assert_eq!(
        (queued.status, queued.next_attempt_at, queued.trigger),
        (DeliveryStatus::Pending, Some(at(5000)), TriggerType::Manual),
        "resend must queue the delivery again, due now, as a manual attempt"
    );
    assert!(
        claim(store, at(4999), 100).await.is_empty(),
        "a resend must not be due before the time it was asked"
    );
    let resent = claim(store, at(5000), 100).await;
    assert_eq!(leased(&resent), pairs(&[(&message, &paid_only)]));
    assert_eq!(
        resent[0].trigger,
        TriggerType::Manual,
        "a resent delivery must be claimed as a manual attempt"
    );

    // Resending what is already pending only brings it forward: the retry
    // schedule stays, so a failed resend does not end the delivery early.
    let pending = publish(store, new_message(&app.id, "invoice.paid", at(5500))).await;
    store
        .resend(&app.id, &pending.id, &paid_only.id, at(5600))
        .await
        .expect("resend failed");
    let brought_forward = delivery(store, &app.id, &pending.id, &paid_only.id).await;
    assert_eq!(
        (brought_forward.status, brought_forward.trigger),
        (DeliveryStatus::Pending, TriggerType::Scheduled),
        "a pending delivery keeps its retry schedule when resent"
    );
    assert!(brought_forward.next_attempt_at <= Some(at(5600)));

    store
        .resend(&app.id, &message.id, &sent_only.id, at(6000))
        .await
        .expect("resend to an endpoint the message never went to failed");
    let created = delivery(store, &app.id, &message.id, &sent_only.id).await;
    assert_eq!(
        (created.status, created.next_attempt_at, created.trigger),
        (DeliveryStatus::Pending, Some(at(6000)), TriggerType::Manual),
        "resend to a new endpoint must create a manual delivery due now"
    );

    let missing = store
        .resend(&app.id, &MessageId::generate(), &paid_only.id, at(7000))
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "resending a missing message must be NotFound, got {missing:?}"
    );
    let other_app = add_app(store).await;
    let across = store
        .resend(&other_app.id, &message.id, &paid_only.id, at(7000))
        .await;
    assert!(
        matches!(across, Err(StoreError::NotFound(_))),
        "resending through another app must be NotFound, got {across:?}"
    );
}

async fn recover_requeues_failed_deliveries_created_in_the_window(store: &dyn Store) {
    let app = add_app(store).await;
    let mut endpoint = new_endpoint(&app.id);
    endpoint.filter_types = Some(vec![type_name("invoice.paid")]);
    let endpoint = add_endpoint(store, endpoint).await;
    let mut neighbour = new_endpoint(&app.id);
    neighbour.filter_types = Some(vec![type_name("invoice.sent")]);
    let neighbour = add_endpoint(store, neighbour).await;

    let mut failed = Vec::new();
    for created in [0, 1000, 2000, 3000] {
        failed.push(publish(store, new_message(&app.id, "invoice.paid", at(created))).await);
    }
    let delivered = publish(store, new_message(&app.id, "invoice.paid", at(1500))).await;
    let neighbours = publish(store, new_message(&app.id, "invoice.sent", at(1500))).await;
    let claims = claim(store, at(3000), 100).await;
    assert_eq!(claims.len(), 6, "every delivery must have been claimed");
    for claim in &claims {
        let status = if claim.msg_id == delivered.id {
            DeliveryStatus::Success
        } else {
            DeliveryStatus::Fail
        };
        settle(store, claim, status, None, at(4000)).await;
    }

    let recovered = store
        .recover(&endpoint.id, at(1000), Some(at(3000)), at(10_000))
        .await
        .expect("recover failed");
    assert_eq!(
        recovered, 2,
        "recover must count the failed deliveries created in [since, until)"
    );
    for (message, requeued) in [
        (&failed[0], false),
        (&failed[1], true),
        (&failed[2], true),
        (&failed[3], false),
    ] {
        let state = delivery(store, &app.id, &message.id, &endpoint.id).await;
        if requeued {
            assert_eq!(
                (state.status, state.next_attempt_at, state.trigger),
                (
                    DeliveryStatus::Pending,
                    Some(at(10_000)),
                    TriggerType::Manual
                ),
                "a recovered delivery must be pending, due now, as a manual attempt"
            );
        } else {
            assert_eq!(
                state.status,
                DeliveryStatus::Fail,
                "a failed delivery created outside [since, until) must stay failed"
            );
        }
    }
    let success = delivery(store, &app.id, &delivered.id, &endpoint.id).await;
    assert_eq!(
        success.status,
        DeliveryStatus::Success,
        "recover must leave successful deliveries alone"
    );
    let other = delivery(store, &app.id, &neighbours.id, &neighbour.id).await;
    assert_eq!(
        other.status,
        DeliveryStatus::Fail,
        "recover must leave other endpoints' deliveries alone"
    );

    let open_ended = store
        .recover(&endpoint.id, at(3000), None, at(11_000))
        .await
        .expect("recover failed");
    assert_eq!(
        open_ended, 1,
        "recover without `until` must run to the present"
    );
    let requeued = claim(store, at(11_000), 100).await;
    assert_eq!(
        leased_set(&requeued),
        pairs(&[
            (&failed[1], &endpoint),
            (&failed[2], &endpoint),
            (&failed[3], &endpoint)
        ]),
        "recovered deliveries must be claimable"
    );
    assert!(
        requeued
            .iter()
            .all(|claim| claim.trigger == TriggerType::Manual),
        "recovered deliveries must be claimed as manual attempts, got {requeued:?}"
    );
}

/// Replaying to an endpoint queues the messages of the window that it
/// subscribes to and never got: not those outside the window or its
/// filter, not those it has a delivery for, and nothing on a second run.
async fn replay_queues_what_an_endpoint_missed_and_nothing_twice(store: &dyn Store) {
    let app = add_app(store).await;
    // Ids carry their creation time, and a replay walks ids: fix both.
    let message_at = |event_type: &str, offset: i64| {
        let mut message = new_message(&app.id, event_type, at(offset));
        message.id = MessageId::first_at(at(offset));
        message
    };
    let early = publish(store, message_at("a.b", 1_000)).await;
    let unwanted = publish(store, message_at("x.y", 2_000)).await;
    let later = publish(store, message_at("c.d", 3_000)).await;
    let outside = publish(store, message_at("a.b", 10_000)).await;
    let mut scheduled = message_at("a.b", 4_500);
    scheduled.deliver_at = Some(at(50_000));
    let scheduled = publish(store, scheduled).await;
    let mut endpoint = new_endpoint(&app.id);
    endpoint.filter_types = Some(vec![type_name("a.b"), type_name("c.d")]);
    let endpoint = add_endpoint(store, endpoint).await;
    let sent = message_at("a.b", 4_000);
    store
        .create_message_for_endpoint(sent.clone(), &endpoint.id)
        .await
        .expect("create_message_for_endpoint failed");
    let settled = claim(store, at(4_000), 10).await;
    assert_eq!(settled.len(), 1);
    settle(store, &settled[0], DeliveryStatus::Success, None, at(4_001)).await;

    let replayed = store
        .replay_missing(&endpoint, at(0), Some(at(5_000)), at(20_000))
        .await
        .expect("replay_missing failed");
    assert_eq!(replayed, 3, "the three subscribed messages of the window");
    assert_eq!(
        delivery(store, &app.id, &scheduled.id, &endpoint.id)
            .await
            .next_attempt_at,
        Some(at(50_000)),
        "a scheduled message keeps its time"
    );
    for message in [&early, &later] {
        let queued = delivery(store, &app.id, &message.id, &endpoint.id).await;
        assert_eq!(queued.status, DeliveryStatus::Pending);
        assert_eq!(queued.next_attempt_at, Some(at(20_000)));
    }
    for message in [&unwanted, &outside] {
        assert!(
            deliveries(store, &app.id, &message.id).await.is_empty(),
            "{} was replayed",
            message.event_type
        );
    }
    assert_eq!(
        delivery(store, &app.id, &sent.id, &endpoint.id)
            .await
            .status,
        DeliveryStatus::Success,
        "a delivery the endpoint had is left alone"
    );
    let again = store
        .replay_missing(&endpoint, at(0), None, at(30_000))
        .await
        .expect("replay_missing failed");
    assert_eq!(again, 1, "only the message after the first window is new");
    assert_eq!(
        delivery(store, &app.id, &outside.id, &endpoint.id)
            .await
            .next_attempt_at,
        Some(at(30_000))
    );
    let mut disabled = endpoint.clone();
    disabled.disabled = true;
    store
        .update_endpoint(disabled.clone())
        .await
        .expect("update_endpoint failed");
    let unsent = publish(store, message_at("a.b", 40_000)).await;
    let none = store
        .replay_missing(&disabled, at(0), None, at(41_000))
        .await
        .expect("replay_missing failed");
    assert_eq!(none, 0, "a disabled endpoint is not replayed to");
    assert!(deliveries(store, &app.id, &unsent.id).await.is_empty());
}

async fn endpoint_stats_count_deliveries_by_status(store: &dyn Store) {
    let app = add_app(store).await;
    let endpoint = add_endpoint(store, new_endpoint(&app.id)).await;
    let neighbour = add_endpoint(store, new_endpoint(&app.id)).await;
    let succeeded = publish(store, new_message(&app.id, "invoice.paid", at(0))).await;
    let failed = publish(store, new_message(&app.id, "invoice.paid", at(1000))).await;
    let sending = publish(store, new_message(&app.id, "invoice.paid", at(2000))).await;
    publish(store, new_message(&app.id, "invoice.paid", at(3000))).await;

    let claims = claim(store, at(2000), 100).await;
    assert_eq!(
        claims.len(),
        6,
        "three messages to two endpoints must be due"
    );
    settle(
        store,
        claim_of(&claims, &succeeded.id, &endpoint.id),
        DeliveryStatus::Success,
        None,
        at(2500),
    )
    .await;
    settle(
        store,
        claim_of(&claims, &failed.id, &endpoint.id),
        DeliveryStatus::Fail,
        None,
        at(2500),
    )
    .await;
    for message in [&succeeded, &failed, &sending] {
        settle(
            store,
            claim_of(&claims, &message.id, &neighbour.id),
            DeliveryStatus::Success,
            None,
            at(2500),
        )
        .await;
    }

    let stats = store
        .endpoint_stats(&endpoint.id, None, None)
        .await
        .expect("endpoint_stats failed");
    assert_eq!(
        stats,
        DeliveryStats {
            success: 1,
            pending: 1,
            sending: 1,
            fail: 1
        },
        "endpoint_stats must count the endpoint's deliveries by status"
    );
    let window = store
        .endpoint_stats(&endpoint.id, Some(at(1000)), Some(at(3000)))
        .await
        .expect("endpoint_stats failed");
    assert_eq!(
        window,
        DeliveryStats {
            success: 0,
            pending: 0,
            sending: 1,
            fail: 1
        },
        "endpoint_stats must count only messages created in [since, until)"
    );
    let other = store
        .endpoint_stats(&neighbour.id, None, None)
        .await
        .expect("endpoint_stats failed");
    assert_eq!(
        other,
        DeliveryStats {
            success: 3,
            pending: 1,
            sending: 0,
            fail: 0
        },
        "endpoint_stats must count only the endpoint asked about"
    );
    let unknown = store
        .endpoint_stats(&EndpointId::generate(), None, None)
        .await
        .expect("endpoint_stats failed");
    assert_eq!(
        unknown,
        DeliveryStats::default(),
        "an endpoint without deliveries counts zero"
    );
}

async fn deleting_an_endpoint_fails_its_unfinished_deliveries(store: &dyn Store) {
    let app = add_app(store).await;
    let doomed = add_endpoint(store, new_endpoint(&app.id)).await;
    let survivor = add_endpoint(store, new_endpoint(&app.id)).await;
    let delivered = publish(store, new_message(&app.id, "invoice.paid", at(0))).await;
    let in_flight = publish(store, new_message(&app.id, "invoice.paid", at(1000))).await;
    let waiting = publish(store, new_message(&app.id, "invoice.paid", at(5000))).await;
    let claims = claim(store, at(1000), 100).await;
    assert_eq!(claims.len(), 4, "two messages to two endpoints must be due");
    settle(
        store,
        claim_of(&claims, &delivered.id, &doomed.id),
        DeliveryStatus::Success,
        None,
        at(1500),
    )
    .await;

    store
        .delete_endpoint(&app.id, &doomed.id, at(2000))
        .await
        .expect("delete_endpoint failed");
    let kept = delivery(store, &app.id, &delivered.id, &doomed.id).await;
    assert_eq!(
        kept.status,
        DeliveryStatus::Success,
        "deleting an endpoint must not rewrite its finished deliveries"
    );
    for (message, was) in [(&in_flight, "leased"), (&waiting, "pending")] {
        let ended = delivery(store, &app.id, &message.id, &doomed.id).await;
        assert_eq!(
            (ended.status, ended.next_attempt_at),
            (DeliveryStatus::Fail, None),
            "deleting an endpoint must fail its {was} deliveries with no next attempt"
        );
    }
    let untouched = delivery(store, &app.id, &waiting.id, &survivor.id).await;
    assert_eq!(
        untouched.status,
        DeliveryStatus::Pending,
        "deleting an endpoint must leave other endpoints' deliveries alone"
    );
    let released = store
        .release_leases(at(3000), true)
        .await
        .expect("release_leases failed");
    assert_eq!(
        released, 2,
        "only the surviving endpoint's leases may remain after the delete"
    );
    let claims = claim(store, at(100_000), 100).await;
    assert_eq!(
        leased_set(&claims),
        pairs(&[
            (&delivered, &survivor),
            (&in_flight, &survivor),
            (&waiting, &survivor)
        ]),
        "nothing may be claimed for a deleted endpoint"
    );
}

async fn deleting_an_app_removes_everything_it_owns(store: &dyn Store) {
    let doomed = store
        .create_app(new_app(Some("tenant")))
        .await
        .expect("create_app failed");
    let survivor = add_app(store).await;
    let mut owned = Vec::new();
    for app in [&doomed, &survivor] {
        let mut endpoint = new_endpoint(&app.id);
        endpoint.uid = Some(uid("hook"));
        let endpoint = add_endpoint(store, endpoint).await;
        let mut message = new_message(&app.id, "invoice.paid", at(0));
        message.event_id = Some("evt-1".to_owned());
        let message = publish(store, message).await;
        let retry = publish(store, new_message(&app.id, "invoice.paid", at(50_000))).await;
        owned.push((endpoint, message, retry));
    }
    let claims = claim(store, at(0), 100).await;
    assert_eq!(claims.len(), 2);
    for claim in &claims {
        settle(
            store,
            claim,
            DeliveryStatus::Pending,
            Some(at(60_000)),
            at(100),
        )
        .await;
    }

    store
        .delete_app(&doomed.id)
        .await
        .expect("delete_app failed");
    let (endpoint, message, retry) = &owned[0];
    assert_eq!(
        store
            .app_by_ref(doomed.id.as_str())
            .await
            .expect("app_by_ref failed"),
        None,
        "a deleted app must be gone"
    );
    assert_eq!(
        store
            .endpoint_by_ref(&doomed.id, endpoint.id.as_str())
            .await
            .expect("endpoint_by_ref failed"),
        None,
        "a deleted app's endpoints must be gone"
    );
    let endpoints = store
        .list_endpoints(&doomed.id, everything(false))
        .await
        .expect("list_endpoints failed");
    assert!(
        endpoints.items.is_empty(),
        "a deleted app must list no endpoints"
    );
    for reference in [message.id.as_str(), "evt-1"] {
        assert_eq!(
            store
                .message_by_ref(&doomed.id, reference)
                .await
                .expect("message_by_ref failed"),
            None,
            "a deleted app's messages must be gone"
        );
    }
    let messages = store
        .list_messages(&doomed.id, MessageFilter::default(), everything(true))
        .await
        .expect("list_messages failed");
    assert!(
        messages.items.is_empty(),
        "a deleted app must list no messages"
    );
    for msg in [&message.id, &retry.id] {
        assert!(
            deliveries(store, &doomed.id, msg).await.is_empty(),
            "a deleted app's deliveries must be gone"
        );
    }
    assert!(
        attempts(store, &doomed.id, AttemptFilter::default())
            .await
            .is_empty(),
        "a deleted app's attempts must be gone"
    );
    assert_eq!(
        store
            .endpoint_stats(&endpoint.id, None, None)
            .await
            .expect("endpoint_stats failed"),
        DeliveryStats::default(),
        "a deleted app's endpoints must have no deliveries left"
    );

    let (endpoint, message, retry) = &owned[1];
    let claims = claim(store, at(100_000), 100).await;
    assert_eq!(
        leased_set(&claims),
        pairs(&[(message, endpoint), (retry, endpoint)]),
        "only the surviving app's deliveries may be left in the queue"
    );
    assert_eq!(
        store
            .message_by_ref(&survivor.id, "evt-1")
            .await
            .expect("message_by_ref failed"),
        Some(message.clone()),
        "deleting one app must leave another's messages alone"
    );
    assert_eq!(
        attempts(store, &survivor.id, AttemptFilter::default())
            .await
            .len(),
        1,
        "deleting one app must leave another's attempts alone"
    );
    store
        .create_app(new_app(Some("tenant")))
        .await
        .expect("a deleted app's uid must be free again");
}

async fn next_due_at_is_the_earliest_pending_due_time(store: &dyn Store) {
    assert_eq!(
        store.next_due_at().await.expect("next_due_at failed"),
        None,
        "an empty queue has nothing due"
    );
    let app = add_app(store).await;
    add_endpoint(store, new_endpoint(&app.id)).await;
    publish(store, new_message(&app.id, "invoice.paid", at(50_000))).await;
    publish(store, new_message(&app.id, "invoice.paid", at(20_000))).await;
    assert_eq!(
        store.next_due_at().await.expect("next_due_at failed"),
        Some(at(20_000)),
        "next_due_at must be the earliest due time, not the newest message's"
    );
    let claims = claim(store, at(100_000), 100).await;
    assert_eq!(claims.len(), 2);
    assert_eq!(
        store.next_due_at().await.expect("next_due_at failed"),
        None,
        "leased deliveries are not pending and must not count as due"
    );
    settle(
        store,
        &claims[0],
        DeliveryStatus::Pending,
        Some(at(500_000)),
        at(100_001),
    )
    .await;
    settle(
        store,
        &claims[1],
        DeliveryStatus::Success,
        None,
        at(100_001),
    )
    .await;
    assert_eq!(
        store.next_due_at().await.expect("next_due_at failed"),
        Some(at(500_000)),
        "a scheduled retry must be what is due next"
    );
}

/// A message with `deliver_at` keeps it, and its deliveries are pending
/// until then: not handed off, not claimable, and what is due next.
async fn a_scheduled_message_waits_for_its_time(store: &dyn Store) {
    let app = add_app(store).await;
    let endpoint = add_endpoint(store, new_endpoint(&app.id)).await;
    let mut scheduled = new_message(&app.id, "invoice.due", at(0));
    scheduled.deliver_at = Some(at(60_000));
    let terms = HandOffTerms {
        max: 10,
        busy: Vec::new(),
        lease_until: at(LEASE),
    };
    let (created, handed) = store
        .create_message_handing_off(scheduled.clone(), None, terms)
        .await
        .expect("create_message_handing_off failed");
    assert_eq!(created.deliveries, 1);
    assert!(handed.is_empty(), "a scheduled delivery was handed off");
    let found = store
        .message_by_ref(&app.id, scheduled.id.as_str())
        .await
        .expect("message_by_ref failed");
    assert_eq!(found, Some(scheduled.clone()), "deliver_at must round-trip");
    let shown = delivery(store, &app.id, &scheduled.id, &endpoint.id).await;
    assert_eq!(shown.status, DeliveryStatus::Pending);
    assert_eq!(shown.next_attempt_at, Some(at(60_000)));
    assert_eq!(
        store.next_due_at().await.expect("next_due_at failed"),
        Some(at(60_000))
    );
    assert!(
        claim(store, at(59_999), 10).await.is_empty(),
        "claimed before its time"
    );
    let claims = claim(store, at(60_000), 10).await;
    assert_eq!(claims.len(), 1, "not claimed at its time");
    assert_eq!(claims[0].msg_id, scheduled.id);

    // A time not after the creation changes nothing: due at once.
    let mut past = new_message(&app.id, "invoice.due", at(1_000));
    past.deliver_at = Some(at(500));
    publish(store, past.clone()).await;
    let shown = delivery(store, &app.id, &past.id, &endpoint.id).await;
    assert_eq!(shown.next_attempt_at, Some(at(1_000)));
}

async fn background_tasks_are_kept_updated_and_listed(store: &dyn Store) {
    let task = |kind: TaskKind, status: TaskStatus, at_ms: i64| BackgroundTask {
        id: TaskId::generate(),
        kind,
        status,
        data: serde_json::Map::new(),
        created_at: at(at_ms),
        updated_at: at(at_ms),
    };
    let mut recover = task(TaskKind::EndpointRecover, TaskStatus::Running, 0);
    let replay = task(TaskKind::EndpointReplay, TaskStatus::Finished, 10);
    for task in [&recover, &replay] {
        store.record_task(task).await.expect("record_task failed");
    }
    recover.status = TaskStatus::Finished;
    recover.data.insert("messagesSent".into(), 3.into());
    recover.updated_at = at(20);
    store
        .record_task(&recover)
        .await
        .expect("record_task failed");
    assert_eq!(
        store
            .task_by_id(&recover.id)
            .await
            .expect("task_by_id failed"),
        Some(recover.clone()),
        "a task recorded again keeps its new state"
    );
    assert_eq!(
        store
            .task_by_id(&TaskId::generate())
            .await
            .expect("task_by_id failed"),
        None
    );
    let newest_first = store
        .list_tasks(TaskFilter::default(), everything(true))
        .await
        .expect("list_tasks failed");
    assert_eq!(newest_first.items, vec![replay.clone(), recover.clone()]);
    let recovers = store
        .list_tasks(
            TaskFilter {
                kind: Some(TaskKind::EndpointRecover),
                status: Some(TaskStatus::Finished),
            },
            everything(true),
        )
        .await
        .expect("list_tasks failed");
    assert_eq!(recovers.items, vec![recover]);
    let running = store
        .list_tasks(
            TaskFilter {
                kind: None,
                status: Some(TaskStatus::Running),
            },
            everything(true),
        )
        .await
        .expect("list_tasks failed");
    assert!(running.items.is_empty(), "{running:?}");
}

async fn an_idempotency_key_runs_its_request_once_and_answers_it_again(store: &dyn Store) {
    let terms = |now: i64| IdempotencyTerms {
        now: at(now),
        expired_before: at(now - 86_400_000),
        abandoned_before: at(now - 60_000),
    };
    let claim = |key: &'static str, fingerprint: &'static str, now: i64| async move {
        store
            .claim_idempotency_key(key, fingerprint, &format!("claim-{now}"), terms(now))
            .await
            .expect("claim_idempotency_key failed")
    };
    assert_eq!(claim("k1", "a", 100_000).await, IdempotencyClaim::Fresh);
    assert_eq!(
        claim("k1", "a", 100_001).await,
        IdempotencyClaim::InProgress,
        "a retry while the request runs"
    );
    assert_eq!(claim("k1", "b", 100_001).await, IdempotencyClaim::Mismatch);
    store
        .complete_idempotency_key("k1", "claim-100000", 201, b"{\"id\":1}".to_vec())
        .await
        .expect("complete_idempotency_key failed");
    assert_eq!(
        claim("k1", "a", 100_002).await,
        IdempotencyClaim::Replay {
            status: 201,
            body: b"{\"id\":1}".to_vec()
        }
    );
    assert_eq!(
        claim("k1", "a", 100_000 + 86_400_001).await,
        IdempotencyClaim::Fresh,
        "an answer older than a day is forgotten"
    );

    assert_eq!(claim("k2", "a", 100_000).await, IdempotencyClaim::Fresh);
    store
        .release_idempotency_key("k2", "claim-100000")
        .await
        .expect("release_idempotency_key failed");
    assert_eq!(
        claim("k2", "a", 100_001).await,
        IdempotencyClaim::Fresh,
        "a released key is free"
    );
    assert_eq!(
        claim("k2", "a", 100_001 + 60_001).await,
        IdempotencyClaim::Fresh,
        "a claim never answered (a crash) is given up after a minute"
    );
    // The claim it was taken from settles nothing any more.
    store
        .complete_idempotency_key("k2", "claim-100001", 500, Vec::new())
        .await
        .expect("complete_idempotency_key failed");
    store
        .release_idempotency_key("k2", "claim-100001")
        .await
        .expect("release_idempotency_key failed");
    assert_eq!(
        claim("k2", "a", 160_003).await,
        IdempotencyClaim::InProgress,
        "the claim that took the key over still holds it"
    );
}

async fn api_tokens_are_remembered_by_hash(store: &dyn Store) {
    assert_eq!(
        store
            .api_token_count()
            .await
            .expect("api_token_count failed"),
        0,
        "a fresh database has no API tokens"
    );
    let hash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    assert!(
        !store
            .api_token_exists(hash)
            .await
            .expect("api_token_exists failed"),
        "an unknown token hash must not exist"
    );
    let token = ApiToken {
        hash: hash.to_owned(),
        name: Some("ci".to_owned()),
        hint: Some("AbCd".to_owned()),
        created_at: at(0),
    };
    store
        .add_api_token(&token)
        .await
        .expect("add_api_token failed");
    assert!(
        store
            .api_token_exists(hash)
            .await
            .expect("api_token_exists failed"),
        "a recorded token hash must exist"
    );
    assert_eq!(
        store
            .api_token_count()
            .await
            .expect("api_token_count failed"),
        1,
        "api_token_count must count recorded tokens"
    );
    let other = ApiToken {
        hash: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752".to_owned(),
        name: None,
        hint: None,
        created_at: at(1),
    };
    store
        .add_api_token(&other)
        .await
        .expect("add_api_token failed");
    assert_eq!(
        store
            .list_api_tokens()
            .await
            .expect("list_api_tokens failed"),
        vec![token.clone(), other.clone()],
        "tokens are listed oldest first with their name and hint"
    );
    assert!(store
        .remove_api_token(hash)
        .await
        .expect("remove_api_token failed"));
    assert!(
        !store
            .api_token_exists(hash)
            .await
            .expect("api_token_exists failed"),
        "a removed token must be gone"
    );
    assert!(
        !store
            .remove_api_token(hash)
            .await
            .expect("remove_api_token failed"),
        "removing it again finds nothing"
    );
    assert_eq!(
        store
            .list_api_tokens()
            .await
            .expect("list_api_tokens failed"),
        vec![other],
        "removing one token leaves the others"
    );
}

async fn claim_due_caps_each_endpoint(store: &dyn Store) {
    let app = add_app(store).await;
    let busy = add_endpoint(store, new_endpoint(&app.id)).await;
    let mut messages = Vec::new();
    for index in 0..5 {
        messages.push(publish(store, new_message(&app.id, "invoice.paid", at(index))).await);
    }
    let claims = store
        .claim_due(at(100), 100, 2, &[], at(LEASE))
        .await
        .expect("claim_due failed");
    assert_eq!(
        leased(&claims),
        pairs(&[(&messages[0], &busy), (&messages[1], &busy)]),
        "claim_due must lease at most `per_endpoint` deliveries of one endpoint, oldest first"
    );
    let idle = add_endpoint(store, new_endpoint(&app.id)).await;
    let late = publish(store, new_message(&app.id, "invoice.paid", at(50))).await;
    let claims = store
        .claim_due(at(100), 100, 2, &[], at(LEASE))
        .await
        .expect("claim_due failed");
    assert_eq!(
        leased_set(&claims),
        pairs(&[(&messages[2], &busy), (&messages[3], &busy), (&late, &idle)]),
        "the cap applies per endpoint, so other endpoints still get their share"
    );
}

async fn claim_due_looks_past_a_saturated_backlog(store: &dyn Store) {
    let app = add_app(store).await;
    let busy = add_endpoint(store, new_endpoint(&app.id)).await;
    // A backlog for the busy endpoint alone, due before anything else and
    // far longer than any window a claim of two would look at.
    for index in 0..60 {
        publish(store, new_message(&app.id, "invoice.paid", at(index))).await;
    }
    let first_idle = add_endpoint(store, new_endpoint(&app.id)).await;
    let second_idle = add_endpoint(store, new_endpoint(&app.id)).await;
    let late = publish(store, new_message(&app.id, "invoice.paid", at(90))).await;

    let mut found = Vec::new();
    for _ in 0..2 {
        let claims = store
            .claim_due(at(100), 2, 1, std::slice::from_ref(&busy.id), at(LEASE))
            .await
            .expect("claim_due failed");
        assert!(
            claims.iter().all(|claim| claim.endpoint_id != busy.id),
            "a saturated endpoint must not be leased, got {claims:?}"
        );
        found.extend(leased(&claims));
    }
    found.sort();
    assert_eq!(
        found,
        pairs(&[(&late, &first_idle), (&late, &second_idle)]),
        "deliveries due behind a saturated endpoint's backlog must still be leased"
    );
}

/// Whatever a backend hands off (it may hand off nothing) keeps to the
/// terms: within `max`, never to a busy endpoint or past an endpoint's due
/// backlog, leased (sending, not claimed again), and settled by its claim.
async fn a_hand_off_obeys_its_terms_and_is_not_claimed_again(store: &dyn Store) {
    let app = add_app(store).await;
    let busy = add_endpoint(store, new_endpoint(&app.id)).await;
    let backlogged = add_endpoint(store, new_endpoint(&app.id)).await;
    let backlog = new_message(&app.id, "invoice.paid", at(0));
    store
        .create_message_for_endpoint(backlog, &backlogged.id)
        .await
        .expect("create_message_for_endpoint failed");
    let first_free = add_endpoint(store, new_endpoint(&app.id)).await;
    let second_free = add_endpoint(store, new_endpoint(&app.id)).await;
    let terms = HandOffTerms {
        max: 1,
        busy: vec![busy.id.clone()],
        lease_until: at(10 + LEASE),
    };
    let (created, handed) = store
        .create_message_handing_off(new_message(&app.id, "invoice.paid", at(10)), None, terms)
        .await
        .expect("create_message_handing_off failed");
    assert_eq!(
        created.deliveries, 4,
        "every matching endpoint gets a delivery"
    );
    assert!(
        handed.len() <= 1,
        "at most `max` handed off, got {handed:?}"
    );
    for HandedOff { claim, endpoint } in &handed {
        assert!(
            claim.endpoint_id == first_free.id || claim.endpoint_id == second_free.id,
            "handed off to a busy or backlogged endpoint: {claim:?}"
        );
        assert_eq!(endpoint.id, claim.endpoint_id, "the claim's own endpoint");
        assert_eq!(claim.msg_id, created.message.id);
        assert_eq!(claim.attempt_count, 0);
        let shown = delivery(store, &app.id, &claim.msg_id, &claim.endpoint_id).await;
        assert_eq!(
            shown.status,
            DeliveryStatus::Sending,
            "a hand-off is leased"
        );
    }
    let claimed = claim(store, at(20), 100).await;
    let mut expected = vec![(created.message.id.clone(), busy.id.clone())];
    expected.push((created.message.id.clone(), backlogged.id.clone()));
    for free in [&first_free, &second_free] {
        if handed
            .iter()
            .all(|handed| handed.claim.endpoint_id != free.id)
        {
            expected.push((created.message.id.clone(), free.id.clone()));
        }
    }
    expected.sort();
    let mut new_claims: Vec<_> = leased(&claimed)
        .into_iter()
        .filter(|(msg, _)| *msg == created.message.id)
        .collect();
    new_claims.sort();
    assert_eq!(
        new_claims, expected,
        "claims take exactly what was not handed off"
    );
    for HandedOff { claim, .. } in &handed {
        let (_, recorded) =
            settle_and_answer(store, claim, DeliveryStatus::Success, None, at(30)).await;
        assert_eq!(recorded, Recorded::Applied, "a hand-off's claim settles it");
        let shown = delivery(store, &app.id, &claim.msg_id, &claim.endpoint_id).await;
        assert_eq!(shown.status, DeliveryStatus::Success);
    }
}

async fn an_attempt_ending_after_its_app_was_deleted_is_not_logged(store: &dyn Store) {
    let app = add_app(store).await;
    add_endpoint(store, new_endpoint(&app.id)).await;
    publish(store, new_message(&app.id, "invoice.paid", at(0))).await;
    let claims = claim(store, at(0), 10).await;
    assert_eq!(claims.len(), 1);
    store.delete_app(&app.id).await.expect("delete_app failed");
    let (_, recorded) =
        settle_and_answer(store, &claims[0], DeliveryStatus::Success, None, at(10)).await;
    assert_eq!(recorded, Recorded::Stale, "the delivery went with its app");
    assert!(
        attempts(store, &app.id, AttemptFilter::default())
            .await
            .is_empty(),
        "an attempt of a deleted app's message must leave no row behind"
    );
}

async fn a_stale_outcome_does_not_overwrite_the_delivery(store: &dyn Store) {
    let app = add_app(store).await;
    let endpoint = add_endpoint(store, new_endpoint(&app.id)).await;
    let message = publish(store, new_message(&app.id, "invoice.paid", at(0))).await;
    let first = claim(store, at(0), 10).await;
    // The lease runs out and another worker claims the delivery.
    store
        .release_leases(at(LEASE + 1), false)
        .await
        .expect("release_leases failed");
    let second = claim(store, at(LEASE + 1), 10).await;
    assert_eq!(second.len(), 1);

    // The first worker finally reports: its attempt is logged, but the
    // delivery stays with the second worker.
    let (_, recorded) = settle_and_answer(
        store,
        &first[0],
        DeliveryStatus::Success,
        None,
        at(LEASE + 2),
    )
    .await;
    assert_eq!(
        recorded,
        Recorded::Stale,
        "record_attempt must say the outcome was stale"
    );
    let current = delivery(store, &app.id, &message.id, &endpoint.id).await;
    assert_eq!(
        current.status,
        DeliveryStatus::Sending,
        "an outcome from an expired lease must not move the delivery"
    );
    assert_eq!(
        attempts(store, &app.id, AttemptFilter::default())
            .await
            .len(),
        1
    );
    let (_, recorded) =
        settle_and_answer(store, &second[0], DeliveryStatus::Fail, None, at(LEASE + 3)).await;
    assert_eq!(recorded, Recorded::Applied);
    let current = delivery(store, &app.id, &message.id, &endpoint.id).await;
    assert_eq!(
        current.status,
        DeliveryStatus::Fail,
        "the lease holder's outcome applies"
    );

    // An endpoint deleted during an attempt keeps its delivery failed.
    let doomed = add_endpoint(store, new_endpoint(&app.id)).await;
    let other = publish(store, new_message(&app.id, "invoice.paid", at(LEASE + 4))).await;
    let claims = claim(store, at(LEASE + 4), 10).await;
    store
        .delete_endpoint(&app.id, &doomed.id, at(LEASE + 5))
        .await
        .expect("delete_endpoint failed");
    let doomed_claim = claim_of(&claims, &other.id, &doomed.id);
    settle(
        store,
        doomed_claim,
        DeliveryStatus::Pending,
        Some(at(LEASE + 100)),
        at(LEASE + 6),
    )
    .await;
    let ended = delivery(store, &app.id, &other.id, &doomed.id).await;
    assert_eq!(
        (ended.status, ended.next_attempt_at),
        (DeliveryStatus::Fail, None),
        "a late outcome must not revive a delivery whose endpoint was deleted"
    );
}

async fn a_resend_during_an_attempt_follows_it(store: &dyn Store) {
    let app = add_app(store).await;
    let endpoint = add_endpoint(store, new_endpoint(&app.id)).await;
    let message = publish(store, new_message(&app.id, "invoice.paid", at(0))).await;
    let claims = claim(store, at(0), 10).await;
    store
        .resend(&app.id, &message.id, &endpoint.id, at(5))
        .await
        .expect("resend failed");
    let during = delivery(store, &app.id, &message.id, &endpoint.id).await;
    assert_eq!(
        during.status,
        DeliveryStatus::Sending,
        "the attempt in flight keeps its lease"
    );
    assert!(
        claim(store, at(5), 10).await.is_empty(),
        "no second attempt runs beside it"
    );

    let (_, recorded) =
        settle_and_answer(store, &claims[0], DeliveryStatus::Fail, None, at(10)).await;
    assert_eq!(
        recorded,
        Recorded::ResendQueued,
        "record_attempt must say the resend took the outcome's place"
    );
    let after = delivery(store, &app.id, &message.id, &endpoint.id).await;
    assert_eq!(
        (after.status, after.trigger, after.next_attempt_at),
        (DeliveryStatus::Pending, TriggerType::Manual, Some(at(10))),
        "the resend asked for during the attempt must be queued when it ends"
    );
    let manual = claim(store, at(10), 10).await;
    assert_eq!(manual.len(), 1);
    assert_eq!(manual[0].trigger, TriggerType::Manual);
}

// The inbound gateway's storage (`SourceStore`).

/// A source of `type` backed by `app`, with a secret in its config.
fn new_source(app: &App, uid_text: Option<&str>) -> Source {
    Source {
        id: SourceId::generate(),
        app_id: app.id.clone(),
        uid: uid_text.map(uid),
        name: "Stripe payments".to_owned(),
        source_type: "stripe".to_owned(),
        config: serde_json::json!({ "secret": "whsec_fixture" }),
        metadata: Metadata::new(),
        created_at: T0,
        updated_at: T0,
    }
}

/// A request received by `source` at `received_at`, accepted unless the
/// store decides otherwise.
fn new_request(source: &SourceId, received_at: Timestamp) -> ReceivedRequest {
    ReceivedRequest {
        id: InboundRequestId::generate(),
        source_id: source.clone(),
        received_at,
        remote_addr: "203.0.113.7:50000".to_owned(),
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("stripe-signature".to_owned(), "t=1,v1=ab".to_owned()),
        ],
        body: b"{\"id\":\"evt_1\", \"type\":\"invoice.paid\"}\xff".to_vec(),
        outcome: RequestOutcome::Accepted,
        status_code: 200,
        reason: None,
        msg_id: None,
    }
}

fn rejected(source: &SourceId, received_at: Timestamp, reason: &str) -> ReceivedRequest {
    ReceivedRequest {
        outcome: RequestOutcome::Rejected,
        status_code: 401,
        reason: Some(reason.to_owned()),
        ..new_request(source, received_at)
    }
}

/// Creates a source with a fresh backing app.
async fn add_source(store: &dyn Store, uid_text: Option<&str>) -> Source {
    let app = new_app(None);
    store
        .create_source(new_source(&app, uid_text), app)
        .await
        .expect("create_source failed")
}

async fn requests(
    store: &dyn Store,
    source: &SourceId,
    outcome: Option<RequestOutcome>,
) -> Vec<ReceivedRequest> {
    store
        .list_requests(source, outcome, everything(true))
        .await
        .expect("list_requests failed")
        .items
}

fn dedupe(event_id: &str, expires_at: Timestamp) -> Option<DedupeKey> {
    Some(DedupeKey {
        event_id: event_id.to_owned(),
        expires_at,
    })
}

async fn sources_are_found_by_id_or_uid_with_their_backing_app(store: &dyn Store) {
    let source = add_source(store, Some("stripe-live")).await;
    let by_id = store
        .source_by_ref(source.id.as_str())
        .await
        .expect("source_by_ref failed");
    assert_eq!(by_id.as_ref(), Some(&source), "a source is found by its id");
    let by_uid = store
        .source_by_ref("stripe-live")
        .await
        .expect("source_by_ref failed");
    assert_eq!(
        by_uid.as_ref(),
        Some(&source),
        "a source is found by its uid"
    );
    assert!(
        store
            .app_by_ref(source.app_id.as_str())
            .await
            .expect("app_by_ref failed")
            .is_some(),
        "create_source must store the backing app in the same call"
    );

    let app = new_app(None);
    let taken = store
        .create_source(new_source(&app, Some("stripe-live")), app.clone())
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict { .. })),
        "a taken uid must be a Conflict, got {taken:?}"
    );
    assert!(
        store
            .app_by_ref(app.id.as_str())
            .await
            .expect("app_by_ref failed")
            .is_none(),
        "a refused source must not leave its app behind (one transaction)"
    );

    let mut renamed = source.clone();
    renamed.name = "Stripe (live)".to_owned();
    renamed.uid = None;
    renamed.config = serde_json::json!({ "secret": "whsec_other" });
    renamed.updated_at = at(1);
    store
        .update_source(renamed.clone())
        .await
        .expect("update_source failed");
    assert_eq!(
        store
            .source_by_ref(source.id.as_str())
            .await
            .expect("source_by_ref failed"),
        Some(renamed),
        "update_source replaces the fields"
    );
    let listed = store
        .list_sources(everything(false))
        .await
        .expect("list_sources failed");
    assert_eq!(listed.items.len(), 1, "list_sources lists every source");
}

async fn an_accepted_request_is_a_message_with_its_fan_out_and_a_log_entry(store: &dyn Store) {
    let source = add_source(store, None).await;
    let endpoint = add_endpoint(store, new_endpoint(&source.app_id)).await;
    let mut message = new_message(&source.app_id, "invoice.paid", at(0));
    message
        .headers
        .insert("x-request-id".to_owned(), "req-1".to_owned());
    let request = new_request(&source.id, at(0));
    let accepted = store
        .accept_request(
            request.clone(),
            message.clone(),
            dedupe("evt_1", at(1000)),
            10,
        )
        .await
        .expect("accept_request failed");
    match accepted {
        Accepted::Forwarded(created) => {
            assert_eq!(created.message, message, "the message is stored as given");
            assert_eq!(created.deliveries, 1, "the message is fanned out");
        }
        other => panic!("a first request must be forwarded, got {other:?}"),
    }
    let delivery = delivery(store, &source.app_id, &message.id, &endpoint.id).await;
    assert_eq!(delivery.status, DeliveryStatus::Pending);
    assert_eq!(
        store
            .message_by_ref(&source.app_id, message.id.as_str())
            .await
            .expect("message_by_ref failed"),
        Some(message.clone()),
        "the message reads back with the headers it forwards"
    );
    let logged = requests(store, &source.id, None).await;
    assert_eq!(logged.len(), 1, "the request is logged");
    assert_eq!(
        logged[0].body, request.body,
        "the raw body is kept byte for byte"
    );
    assert_eq!(
        logged[0].headers, request.headers,
        "headers are kept in order"
    );
    assert_eq!(logged[0].outcome, RequestOutcome::Accepted);
    assert_eq!(logged[0].msg_id.as_ref(), Some(&message.id));
}

async fn deleting_a_payload_empties_the_logged_requests_it_came_from(store: &dyn Store) {
    let source = add_source(store, None).await;
    let app = source.app_id.clone();
    let accept = |message: Message, event_id: &'static str, received: i64| {
        let request = new_request(&source.id, at(received));
        async move {
            store
                .accept_request(request, message, dedupe(event_id, at(1000)), 10)
                .await
                .expect("accept_request failed");
        }
    };
    let asked = new_message(&app, "invoice.paid", at(0));
    let expiring = Message {
        payload_expires_at: Some(at(10)),
        ..new_message(&app, "invoice.paid", at(1))
    };
    let kept = new_message(&app, "invoice.paid", at(2));
    accept(asked.clone(), "evt_asked", 0).await;
    // A repeat is logged against the first message: the same content.
    accept(new_message(&app, "invoice.paid", at(3)), "evt_asked", 3).await;
    accept(expiring.clone(), "evt_expiring", 1).await;
    accept(kept.clone(), "evt_kept", 2).await;
    let bodies = || async {
        let mut bodies: Vec<(MessageId, bool)> = requests(store, &source.id, None)
            .await
            .into_iter()
            .map(|request| {
                let id = request
                    .msg_id
                    .expect("every request here made or met a message");
                (id, request.body.is_empty())
            })
            .collect();
        bodies.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        bodies
    };
    // `asked_logged` requests name `asked`, one names each of the others.
    let emptied = |asked_logged: usize, asked_gone: bool, expiring_gone: bool| {
        let mut expected = vec![(asked.id.clone(), asked_gone); asked_logged];
        expected.push((expiring.id.clone(), expiring_gone));
        expected.push((kept.id.clone(), false));
        expected.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        expected
    };
    assert_eq!(bodies().await, emptied(2, false, false));
    assert!(store
        .expunge_content(&app, &asked.id, at(5))
        .await
        .expect("expunge_content failed"));
    assert_eq!(
        bodies().await,
        emptied(2, true, false),
        "the request and its repeat lose their bodies with the message's payload"
    );
    // A repeat arriving afterwards is logged without its body too.
    accept(new_message(&app, "invoice.paid", at(6)), "evt_asked", 6).await;
    let repeats: Vec<bool> = requests(store, &source.id, None)
        .await
        .into_iter()
        .filter(|request| request.msg_id.as_ref() == Some(&asked.id))
        .map(|request| request.body.is_empty())
        .collect();
    assert_eq!(repeats, [true, true, true]);
    assert_eq!(
        store
            .expunge_expired_payloads(at(20), 100)
            .await
            .expect("expunge_expired_payloads failed"),
        1
    );
    assert_eq!(bodies().await, emptied(3, true, true));
}

async fn an_attempts_response_body_can_be_deleted(store: &dyn Store) {
    let app = add_app(store).await;
    let other = add_app(store).await;
    add_endpoint(store, new_endpoint(&app.id)).await;
    let message = publish(store, new_message(&app.id, "invoice.paid", at(0))).await;
    let claims = claim(store, at(0), 10).await;
    let first = settle(store, &claims[0], DeliveryStatus::Success, None, at(1)).await;
    let read = || async {
        store
            .attempt(&app.id, &message.id, &first.id)
            .await
            .expect("attempt failed")
            .expect("the attempt stays")
    };
    assert_eq!(read().await.response, "ok");
    let expunge = |app: AppId, msg: MessageId, id: AttemptId| async move {
        store
            .expunge_attempt_content(&app, &msg, &id)
            .await
            .expect("expunge_attempt_content failed")
    };
    assert!(
        !expunge(other.id.clone(), message.id.clone(), first.id.clone()).await,
        "another app's attempt is not found"
    );
    assert!(
        !expunge(app.id.clone(), MessageId::generate(), first.id.clone()).await,
        "nor one of another message"
    );
    assert_eq!(read().await.response, "ok");
    assert!(expunge(app.id.clone(), message.id.clone(), first.id.clone()).await);
    let after = read().await;
    assert_eq!(after.response, "", "the body is gone");
    assert_eq!(
        (after.response_status_code, after.status, after.timestamp),
        (first.response_status_code, first.status, first.timestamp),
        "the rest of the attempt stays"
    );
}

async fn expiring_portal_tokens_folds_each_order_into_the_last(store: &dyn Store) {
    let app = add_app(store).await;
    let other = add_app(store).await;
    let expire = |now: i64, until: i64| {
        let app = app.id.clone();
        async move {
            store
                .expire_portal_tokens(&app, &[], at(now), at(until))
                .await
                .expect("expire_portal_tokens failed");
        }
    };
    let expiry = |app: AppId| async move {
        let mut orders = store
            .portal_expiry(&app, None)
            .await
            .expect("portal_expiry failed");
        assert!(orders.len() <= 1, "one order for all tokens: {orders:?}");
        orders.pop()
    };
    assert_eq!(expiry(app.id.clone()).await, None, "never ordered");

    // Tokens issued before 100 last until 160, a token of old (read as
    // issued at 0) too; one issued in the order's millisecond counts as
    // after it.
    expire(100, 160).await;
    let first = expiry(app.id.clone()).await.expect("ordered");
    assert!(first.allows(at(0), at(159)));
    assert!(first.allows(at(99), at(159)));
    assert!(!first.allows(at(0), at(160)));
    assert!(!first.allows(at(99), at(160)));
    assert!(first.allows(at(100), at(10_000)), "issued at the order");
    assert_eq!(
        expiry(other.id.clone()).await,
        None,
        "another app is untouched"
    );

    // A second order while that grace runs cannot lengthen it.
    expire(120, 500).await;
    let second = expiry(app.id.clone()).await.expect("ordered");
    assert!(!second.allows(at(99), at(160)));
    assert!(second.allows(at(110), at(159)));
    assert!(
        !second.allows(at(110), at(160)),
        "capped at the running grace"
    );
    assert!(second.allows(at(120), at(10_000)));

    // Once a grace is over, what it covered stays void whatever comes next.
    expire(200, 900).await;
    let third = expiry(app.id.clone()).await.expect("ordered");
    assert!(!third.allows(at(0), at(201)));
    assert!(!third.allows(at(119), at(201)));
    assert!(third.allows(at(120), at(899)), "issued at the second order");
    assert!(third.allows(at(150), at(899)));
    assert!(!third.allows(at(150), at(900)));
    assert!(third.allows(at(200), at(10_000)));

    store.delete_app(&app.id).await.expect("delete_app failed");
    assert_eq!(expiry(app.id.clone()).await, None, "deleted with its app");
}

async fn expiring_a_sessions_portal_tokens_leaves_other_sessions_standing(store: &dyn Store) {
    let app = add_app(store).await;
    let other = add_app(store).await;
    let sessions = |names: &[&str]| {
        names
            .iter()
            .map(|name| name.to_string())
            .collect::<Vec<_>>()
    };
    let expire = |app: AppId, names: Vec<String>, now: i64, until: i64| async move {
        store
            .expire_portal_tokens(&app, &names, at(now), at(until))
            .await
            .expect("expire_portal_tokens failed");
    };
    // Whether a token of `session` issued at `issued` stands at `now`.
    let stands = |app: AppId, session: Option<&'static str>, issued: i64, now: i64| async move {
        store
            .portal_expiry(&app, session)
            .await
            .expect("portal_expiry failed")
            .iter()
            .all(|order| order.allows(at(issued), at(now)))
    };

    // Named twice, a session is expired once (PostgreSQL refuses to
    // update one row twice in a statement).
    expire(app.id.clone(), sessions(&["s-2", "s-1", "s-2"]), 100, 100).await;
    assert!(!stands(app.id.clone(), Some("s-1"), 50, 100).await);
    assert!(!stands(app.id.clone(), Some("s-2"), 50, 100).await);
    assert!(
        stands(app.id.clone(), Some("s-3"), 50, 100).await,
        "another session"
    );
    assert!(
        stands(app.id.clone(), None, 50, 100).await,
        "a token without a session"
    );
    assert!(
        stands(app.id.clone(), Some("s-1"), 100, 100).await,
        "issued at the order"
    );
    assert!(
        stands(other.id.clone(), Some("s-1"), 50, 100).await,
        "the same session name in another app"
    );
    assert_eq!(
        store
            .portal_expiry(&app.id, None)
            .await
            .expect("portal_expiry failed"),
        vec![],
        "no order for all tokens"
    );

    // A session's grace folds like the app's, and an order for all
    // tokens reaches every session's too.
    expire(app.id.clone(), sessions(&["s-3"]), 200, 300).await;
    expire(app.id.clone(), sessions(&["s-3"]), 250, 900).await;
    assert!(stands(app.id.clone(), Some("s-3"), 240, 299).await);
    assert!(
        !stands(app.id.clone(), Some("s-3"), 240, 300).await,
        "capped at the running grace"
    );
    expire(app.id.clone(), vec![], 400, 400).await;
    assert!(!stands(app.id.clone(), Some("s-4"), 350, 400).await);
    assert!(!stands(app.id.clone(), None, 350, 400).await);
    assert!(stands(app.id.clone(), Some("s-1"), 400, 10_000).await);

    store.delete_app(&app.id).await.expect("delete_app failed");
    assert!(
        stands(app.id.clone(), Some("s-1"), 50, 100).await,
        "deleted with their app"
    );
}

async fn a_repeated_event_id_is_a_duplicate_until_its_key_expires(store: &dyn Store) {
    let source = add_source(store, None).await;
    let first = new_message(&source.app_id, "invoice.paid", at(0));
    store
        .accept_request(
            new_request(&source.id, at(0)),
            first.clone(),
            dedupe("evt_1", at(1000)),
            10,
        )
        .await
        .expect("accept_request failed");

    let again = new_message(&source.app_id, "invoice.paid", at(500));
    let repeat = store
        .accept_request(
            new_request(&source.id, at(500)),
            again.clone(),
            dedupe("evt_1", at(1500)),
            10,
        )
        .await
        .expect("accept_request failed");
    assert_eq!(
        repeat,
        Accepted::Duplicate {
            msg_id: first.id.clone()
        },
        "a repeat within the window answers the first message"
    );
    assert!(
        store
            .message_by_ref(&source.app_id, again.id.as_str())
            .await
            .expect("message_by_ref failed")
            .is_none(),
        "a duplicate must not be stored as a message"
    );
    let duplicates = requests(store, &source.id, Some(RequestOutcome::Duplicate)).await;
    assert_eq!(duplicates.len(), 1, "the duplicate is logged as such");
    assert_eq!(duplicates[0].msg_id.as_ref(), Some(&first.id));

    let other_source = add_source(store, None).await;
    let elsewhere = store
        .accept_request(
            new_request(&other_source.id, at(600)),
            new_message(&other_source.app_id, "invoice.paid", at(600)),
            dedupe("evt_1", at(1600)),
            10,
        )
        .await
        .expect("accept_request failed");
    assert!(
        matches!(elsewhere, Accepted::Forwarded(_)),
        "event ids are deduplicated per source"
    );

    let late = store
        .accept_request(
            new_request(&source.id, at(1000)),
            new_message(&source.app_id, "invoice.paid", at(1000)),
            dedupe("evt_1", at(2000)),
            10,
        )
        .await
        .expect("accept_request failed");
    assert!(
        matches!(late, Accepted::Forwarded(_)),
        "a repeat after the key expired is a new event"
    );
}

async fn the_request_log_keeps_the_newest_requests_and_filters_by_outcome(store: &dyn Store) {
    let source = add_source(store, None).await;
    let mut logged = Vec::new();
    for offset in 0..5 {
        let request = rejected(&source.id, at(offset), "bad_signature");
        store
            .log_request(request.clone(), 3)
            .await
            .expect("log_request failed");
        logged.push(request.id);
    }
    store
        .accept_request(
            new_request(&source.id, at(10)),
            new_message(&source.app_id, "invoice.paid", at(10)),
            None,
            3,
        )
        .await
        .expect("accept_request failed");
    let all = requests(store, &source.id, None).await;
    assert_eq!(
        all.len(),
        3,
        "the log keeps only the newest `log_cap` requests"
    );
    assert_eq!(all[0].outcome, RequestOutcome::Accepted, "newest first");
    assert_eq!(
        all[1..]
            .iter()
            .map(|request| request.id.clone())
            .collect::<Vec<_>>(),
        vec![logged[4].clone(), logged[3].clone()],
        "the oldest requests are the ones dropped"
    );
    let refused = requests(store, &source.id, Some(RequestOutcome::Rejected)).await;
    assert_eq!(refused.len(), 2, "the outcome filter selects rejections");
    assert_eq!(refused[0].reason.as_deref(), Some("bad_signature"));
    assert_eq!(refused[0].status_code, 401);
}

async fn deleting_a_source_removes_its_app_log_and_dedupe_keys(store: &dyn Store) {
    let source = add_source(store, Some("doomed")).await;
    let kept = add_source(store, None).await;
    store
        .accept_request(
            new_request(&source.id, at(0)),
            new_message(&source.app_id, "invoice.paid", at(0)),
            dedupe("evt_1", at(1000)),
            10,
        )
        .await
        .expect("accept_request failed");
    store
        .log_request(rejected(&kept.id, at(0), "bad_signature"), 10)
        .await
        .expect("log_request failed");
    store
        .delete_source(&source.id)
        .await
        .expect("delete_source failed");
    assert!(
        store
            .source_by_ref("doomed")
            .await
            .expect("source_by_ref failed")
            .is_none(),
        "a deleted source is gone"
    );
    assert!(
        store
            .app_by_ref(source.app_id.as_str())
            .await
            .expect("app_by_ref failed")
            .is_none(),
        "its backing app goes with it"
    );
    assert!(
        requests(store, &source.id, None).await.is_empty(),
        "its request log goes with it"
    );
    assert_eq!(
        requests(store, &kept.id, None).await.len(),
        1,
        "other sources keep their log"
    );
    let missing = store.delete_source(&source.id).await;
    assert!(
        matches!(missing, Err(StoreError::NotFound(_))),
        "deleting a missing source is NotFound, got {missing:?}"
    );
}

async fn an_endpoints_messages_are_listed_with_their_delivery(store: &dyn Store) {
    let app = add_app(store).await;
    let endpoint = add_endpoint(store, new_endpoint(&app.id)).await;
    let other = add_endpoint(store, new_endpoint(&app.id)).await;
    let older = publish(store, new_message(&app.id, "invoice.paid", at(0))).await;
    let newer = publish(store, new_message(&app.id, "invoice.paid", at(10))).await;
    let claims = claim(store, at(100), 10).await;
    settle(
        store,
        claim_of(&claims, &older.id, &endpoint.id),
        DeliveryStatus::Success,
        None,
        at(101),
    )
    .await;

    let listed = store
        .list_endpoint_messages(
            &app.id,
            &endpoint.id,
            None,
            MessageFilter::default(),
            everything(true),
        )
        .await
        .expect("list_endpoint_messages failed");
    let seen: Vec<(MessageId, EndpointId)> = listed
        .items
        .iter()
        .map(|(message, delivery)| (message.id.clone(), delivery.endpoint_id.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (newer.id.clone(), endpoint.id.clone()),
            (older.id.clone(), endpoint.id.clone())
        ],
        "an endpoint's messages are listed newest first, with that endpoint's delivery"
    );
    let succeeded = store
        .list_endpoint_messages(
            &app.id,
            &endpoint.id,
            Some(DeliveryStatus::Success),
            MessageFilter::default(),
            everything(true),
        )
        .await
        .expect("list_endpoint_messages failed");
    assert_eq!(
        succeeded.items.len(),
        1,
        "the status filter keeps only deliveries in that status"
    );
    assert_eq!(succeeded.items[0].0.id, older.id);
    let after_older = store
        .list_endpoint_messages(
            &app.id,
            &endpoint.id,
            None,
            MessageFilter {
                after: Some(at(5)),
                ..MessageFilter::default()
            },
            everything(true),
        )
        .await
        .expect("list_endpoint_messages failed");
    let ids: Vec<&MessageId> = after_older.items.iter().map(|(m, _)| &m.id).collect();
    assert_eq!(ids, [&newer.id], "the message filters apply");
    let on_a_channel = store
        .list_endpoint_messages(
            &app.id,
            &endpoint.id,
            None,
            MessageFilter {
                channel: Some("eu".to_owned()),
                ..MessageFilter::default()
            },
            everything(true),
        )
        .await
        .expect("list_endpoint_messages failed");
    assert!(
        on_a_channel.items.is_empty(),
        "no message is on that channel"
    );
    let elsewhere = store
        .list_endpoint_messages(
            &AppId::generate(),
            &other.id,
            None,
            MessageFilter::default(),
            everything(true),
        )
        .await
        .expect("list_endpoint_messages failed");
    assert!(elsewhere.items.is_empty(), "another app sees nothing");
}

/// Two endpoints; message `failed_twice` fails at both, `failed_once` at
/// one, `delivered` at none, `waiting` is still pending; another app's
/// failure must not show.
async fn messages_are_found_by_delivery_status_each_once_within_their_app(store: &dyn Store) {
    let app = add_app(store).await;
    let first = add_endpoint(store, new_endpoint(&app.id)).await;
    let second = add_endpoint(store, new_endpoint(&app.id)).await;
    let other_app = add_app(store).await;
    add_endpoint(store, new_endpoint(&other_app.id)).await;
    let failed_twice = publish(store, new_message(&app.id, "invoice.paid", at(0))).await;
    let delivered = publish(store, new_message(&app.id, "invoice.paid", at(1))).await;
    let failed_once = publish(store, new_message(&app.id, "invoice.voided", at(2))).await;
    let elsewhere = publish(store, new_message(&other_app.id, "invoice.paid", at(3))).await;

    let claims = claim(store, at(10), 100).await;
    for (message, endpoint, status) in [
        (&failed_twice, &first, DeliveryStatus::Fail),
        (&failed_twice, &second, DeliveryStatus::Fail),
        (&delivered, &first, DeliveryStatus::Success),
        (&delivered, &second, DeliveryStatus::Success),
        (&failed_once, &first, DeliveryStatus::Success),
        (&failed_once, &second, DeliveryStatus::Fail),
    ] {
        settle(
            store,
            claim_of(&claims, &message.id, &endpoint.id),
            status,
            None,
            at(20),
        )
        .await;
    }
    let elsewhere_claim = claims
        .iter()
        .find(|claim| claim.msg_id == elsewhere.id)
        .expect("the other app's message was claimed");
    settle(store, elsewhere_claim, DeliveryStatus::Fail, None, at(20)).await;
    let waiting = publish(store, new_message(&app.id, "invoice.paid", at(30))).await;

    let with_status = |status: DeliveryStatus, filter: MessageFilter, page: PageRequest| {
        let app = app.id.clone();
        async move {
            store
                .list_messages_with_status(&app, status, filter, page)
                .await
                .expect("list_messages_with_status failed")
        }
    };
    let failed = with_status(
        DeliveryStatus::Fail,
        MessageFilter::default(),
        everything(true),
    )
    .await;
    assert_eq!(
        message_ids(failed),
        (vec![failed_once.id.clone(), failed_twice.id.clone()], false),
        "list_messages_with_status must list each message with a failed delivery once, newest first, only of its app"
    );
    let succeeded = with_status(
        DeliveryStatus::Success,
        MessageFilter::default(),
        everything(true),
    )
    .await;
    assert_eq!(
        message_ids(succeeded),
        (vec![failed_once.id.clone(), delivered.id.clone()], false),
        "a message with deliveries in several states is found by each of them"
    );
    let pending = with_status(
        DeliveryStatus::Pending,
        MessageFilter::default(),
        everything(true),
    )
    .await;
    assert_eq!(
        message_ids(pending),
        (vec![waiting.id.clone()], false),
        "pending deliveries are found too"
    );
    let voided = with_status(
        DeliveryStatus::Fail,
        MessageFilter {
            event_types: vec!["invoice.voided".to_owned()],
            ..MessageFilter::default()
        },
        everything(true),
    )
    .await;
    assert_eq!(
        message_ids(voided),
        (vec![failed_once.id.clone()], false),
        "list_messages_with_status must apply the filter's event types"
    );
    let early = with_status(
        DeliveryStatus::Fail,
        MessageFilter {
            before: Some(at(1)),
            ..MessageFilter::default()
        },
        everything(true),
    )
    .await;
    assert_eq!(
        message_ids(early),
        (vec![failed_twice.id.clone()], false),
        "list_messages_with_status must apply the filter's time bounds"
    );
    let first_page = with_status(
        DeliveryStatus::Fail,
        MessageFilter::default(),
        PageRequest {
            limit: 1,
            cursor: Cursor::Start,
            newest_first: true,
        },
    )
    .await;
    assert_eq!(
        message_ids(first_page),
        (vec![failed_once.id.clone()], true),
        "a page of one says more follow"
    );
    let second_page = with_status(
        DeliveryStatus::Fail,
        MessageFilter::default(),
        PageRequest {
            limit: 1,
            cursor: Cursor::After(failed_once.id.to_string()),
            newest_first: true,
        },
    )
    .await;
    assert_eq!(
        message_ids(second_page),
        (vec![failed_twice.id.clone()], false),
        "the next page continues after the cursor"
    );
}

async fn the_delivery_histogram_counts_outcomes_by_message_time(store: &dyn Store) {
    let app = add_app(store).await;
    let endpoint = add_endpoint(store, new_endpoint(&app.id)).await;
    let neighbour = add_endpoint(store, new_endpoint(&app.id)).await;
    let other_app = add_app(store).await;
    add_endpoint(store, new_endpoint(&other_app.id)).await;
    // Buckets of one second from T0: messages at 0.1 s, 0.2 s, 2.5 s, and
    // one at 5 s that lies past `until`.
    let early = publish(store, new_message(&app.id, "invoice.paid", at(100))).await;
    let also_early = publish(store, new_message(&app.id, "invoice.paid", at(200))).await;
    let later = publish(store, new_message(&app.id, "invoice.paid", at(2500))).await;
    publish(store, new_message(&app.id, "invoice.paid", at(5000))).await;
    publish(store, new_message(&other_app.id, "invoice.paid", at(100))).await;

    let claims = claim(store, at(3000), 100).await;
    for (message, target, status) in [
        (&early, &endpoint, DeliveryStatus::Success),
        (&early, &neighbour, DeliveryStatus::Fail),
        (&also_early, &endpoint, DeliveryStatus::Fail),
    ] {
        settle(
            store,
            claim_of(&claims, &message.id, &target.id),
            status,
            None,
            at(3000),
        )
        .await;
    }
    // also_early → neighbour stays sending; later → both stay sending.
    let _ = later;

    let whole_app = store
        .delivery_histogram(&app.id, None, T0, at(4000), 1000)
        .await
        .expect("delivery_histogram failed");
    assert_eq!(
        whole_app,
        vec![
            DeliveryBucket {
                start: T0,
                succeeded: 1,
                failed: 2,
                waiting: 1
            },
            DeliveryBucket {
                start: at(2000),
                succeeded: 0,
                failed: 0,
                waiting: 2
            },
        ],
        "delivery_histogram must count an app's deliveries by outcome per bucket of message time, leaving out empty buckets and what lies outside [since, until)"
    );
    let one_endpoint = store
        .delivery_histogram(&app.id, Some(&endpoint.id), T0, at(4000), 1000)
        .await
        .expect("delivery_histogram failed");
    assert_eq!(
        one_endpoint,
        vec![
            DeliveryBucket {
                start: T0,
                succeeded: 1,
                failed: 1,
                waiting: 0
            },
            DeliveryBucket {
                start: at(2000),
                succeeded: 0,
                failed: 0,
                waiting: 1
            },
        ],
        "delivery_histogram of one endpoint must count only its deliveries"
    );
    let foreign_endpoint = store
        .delivery_histogram(&other_app.id, Some(&endpoint.id), T0, at(4000), 1000)
        .await
        .expect("delivery_histogram failed");
    assert!(
        foreign_endpoint.is_empty(),
        "an endpoint of another app counts nothing: {foreign_endpoint:?}"
    );
}

async fn an_instance_key_is_stored_once_and_answered_ever_after(store: &dyn Store) {
    let first = store
        .instance_key("console", vec![1, 2, 3])
        .await
        .expect("instance_key failed");
    assert_eq!(first, vec![1, 2, 3], "the first candidate is stored");
    let again = store
        .instance_key("console", vec![9, 9, 9])
        .await
        .expect("instance_key failed");
    assert_eq!(
        again,
        vec![1, 2, 3],
        "instance_key must answer the stored key, not a later candidate"
    );
    let other = store
        .instance_key("portal", vec![4])
        .await
        .expect("instance_key failed");
    assert_eq!(other, vec![4], "keys are kept by name");
}

// Endpoint health and housekeeping.

async fn an_endpoint_failure_streak_keeps_its_start_until_it_ends(store: &dyn Store) {
    let app = add_app(store).await;
    let endpoint = add_endpoint(store, new_endpoint(&app.id)).await;
    // Failures more than this apart are separate streaks.
    let gap = std::time::Duration::from_millis(100);
    let failing = |failure_at: Option<Timestamp>| {
        let id = endpoint.id.clone();
        async move {
            store
                .set_endpoint_failing(&id, failure_at, gap)
                .await
                .expect("set_endpoint_failing failed")
        }
    };
    assert_eq!(failing(Some(at(1))).await, Some(at(1)), "a streak starts");
    assert_eq!(
        failing(Some(at(5))).await,
        Some(at(1)),
        "a running streak must keep its start"
    );
    assert_eq!(failing(None).await, None, "a success ends the streak");
    assert_eq!(
        failing(Some(at(9))).await,
        Some(at(9)),
        "a new streak starts afresh"
    );
    assert_eq!(
        failing(Some(at(90))).await,
        Some(at(9)),
        "failures keep coming"
    );
    assert_eq!(
        failing(Some(at(500))).await,
        Some(at(500)),
        "a failure after a quiet gap starts a new streak"
    );
    assert_eq!(
        store
            .set_endpoint_failing(&EndpointId::generate(), Some(at(1)), gap)
            .await
            .expect("set_endpoint_failing failed"),
        None,
        "an unknown endpoint has no streak"
    );
}

async fn purging_removes_old_attempts_and_finished_messages_only(store: &dyn Store) {
    let app = add_app(store).await;
    let endpoint = add_endpoint(store, new_endpoint(&app.id)).await;
    // Ids carry their creation time, and purges cut on ids: fix both.
    let message_at = |offset: i64| {
        let mut message = new_message(&app.id, "invoice.paid", at(offset));
        message.id = MessageId::first_at(at(offset));
        message
    };
    let old_done = publish(store, message_at(1)).await;
    let old_done_too = publish(store, message_at(4)).await;
    let old_owed = publish(store, message_at(2)).await;
    let new_done = publish(store, message_at(10_000)).await;
    let claims = claim(store, at(20_000), 10).await;
    settle(
        store,
        claim_of(&claims, &old_done.id, &endpoint.id),
        DeliveryStatus::Success,
        None,
        at(20_001),
    )
    .await;
    settle(
        store,
        claim_of(&claims, &old_done_too.id, &endpoint.id),
        DeliveryStatus::Success,
        None,
        at(20_001),
    )
    .await;
    settle(
        store,
        claim_of(&claims, &new_done.id, &endpoint.id),
        DeliveryStatus::Success,
        None,
        at(20_001),
    )
    .await;
    // The owed message failed once long ago and waits for a retry.
    let owed_claim = claim_of(&claims, &old_owed.id, &endpoint.id);
    let mut old_attempt = settle(
        store,
        owed_claim,
        DeliveryStatus::Pending,
        Some(at(90_000)),
        at(3),
    )
    .await;
    old_attempt.id = AttemptId::first_at(at(3));
    store
        .record_attempt(
            Some(old_attempt.clone()),
            owed_claim.outcome(DeliveryStatus::Pending, 1, Some(at(90_000)), at(3)),
        )
        .await
        .expect("record_attempt failed");

    let task_at = |offset: i64| BackgroundTask {
        id: TaskId::first_at(at(offset)),
        kind: TaskKind::EndpointRecover,
        status: TaskStatus::Finished,
        data: serde_json::Map::new(),
        created_at: at(offset),
        updated_at: at(offset),
    };
    let (old_task, new_task) = (task_at(1), task_at(10_000));
    for task in [&old_task, &new_task] {
        store.record_task(task).await.expect("record_task failed");
    }

    let mut batches = 0;
    loop {
        let removed = store
            .purge_before(at(5_000), 1)
            .await
            .expect("purge_before failed");
        if removed == 0 {
            break;
        }
        batches += 1;
        assert!(batches < 100, "purge_before never finishes");
    }
    assert!(batches > 1, "purge_before must honour its batch limit");

    let app_id = app.id.clone();
    let found = |id: MessageId| {
        let app_id = app_id.clone();
        async move {
            store
                .message_by_ref(&app_id, id.as_str())
                .await
                .expect("message_by_ref failed")
        }
    };
    assert_eq!(
        found(old_done.id.clone()).await,
        None,
        "an old finished message is purged"
    );
    assert_eq!(
        found(old_done_too.id.clone()).await,
        None,
        "every old finished message is purged"
    );
    assert!(
        deliveries(store, &app.id, &old_done.id).await.is_empty(),
        "a purged message's deliveries go with it"
    );
    assert!(
        attempts(
            store,
            &app.id,
            AttemptFilter {
                msg_id: Some(old_done.id.clone()),
                ..AttemptFilter::default()
            }
        )
        .await
        .is_empty(),
        "a purged message's attempts go with it"
    );
    assert!(
        found(old_owed.id.clone()).await.is_some(),
        "a message still owed must stay"
    );
    assert_eq!(
        store
            .task_by_id(&old_task.id)
            .await
            .expect("task_by_id failed"),
        None,
        "an old background task is purged"
    );
    assert_eq!(
        store
            .task_by_id(&new_task.id)
            .await
            .expect("task_by_id failed"),
        Some(new_task),
        "a recent background task stays"
    );
    assert_eq!(
        delivery(store, &app.id, &old_owed.id, &endpoint.id)
            .await
            .status,
        DeliveryStatus::Pending,
        "an owed delivery must survive a purge"
    );
    let owed_attempts = attempts(
        store,
        &app.id,
        AttemptFilter {
            msg_id: Some(old_owed.id.clone()),
            ..AttemptFilter::default()
        },
    )
    .await;
    assert!(
        owed_attempts
            .iter()
            .all(|attempt| attempt.id != old_attempt.id),
        "an attempt logged before the cut-off is purged"
    );
    assert_eq!(
        owed_attempts.len(),
        1,
        "a newer attempt of an owed message stays"
    );
    assert!(
        found(new_done.id.clone()).await.is_some(),
        "a newer message stays"
    );
}

async fn queue_depths_count_pending_deliveries_per_endpoint(store: &dyn Store) {
    let app = add_app(store).await;
    let busy = add_endpoint(store, new_endpoint(&app.id)).await;
    let mut quiet = new_endpoint(&app.id);
    quiet.filter_types = Some(vec![type_name("invoice.paid")]);
    let quiet = add_endpoint(store, quiet).await;
    for offset in [5, 1, 3] {
        publish(store, new_message(&app.id, "user.created", at(offset))).await;
    }
    publish(store, new_message(&app.id, "invoice.paid", at(7))).await;
    // Owed from its scheduled time, not from its creation.
    let mut scheduled = new_message(&app.id, "invoice.paid", at(0));
    scheduled.deliver_at = Some(at(9));
    publish(store, scheduled).await;
    let depths = store
        .queue_depths(10, at(8))
        .await
        .expect("queue_depths failed");
    let summary: Vec<(EndpointId, u64, Timestamp)> = depths
        .iter()
        .map(|depth| {
            (
                depth.endpoint_id.clone(),
                depth.pending,
                depth.oldest_created_at,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![(busy.id.clone(), 5, at(1)), (quiet.id.clone(), 2, at(7))],
        "depths come deepest first with the time the oldest became owed"
    );
    assert!(depths.iter().all(|depth| depth.app_id == app.id));
    assert_eq!(
        store
            .queue_depths(1, at(8))
            .await
            .expect("queue_depths failed")
            .len(),
        1,
        "queue_depths honours its limit"
    );
    let leased = claim(store, at(10), 10).await;
    assert_eq!(leased.len(), 7, "every delivery is due by then");
    assert!(
        store
            .queue_depths(10, at(10))
            .await
            .expect("queue_depths failed")
            .is_empty(),
        "leased deliveries are not waiting"
    );
}

async fn disabling_an_endpoint_touches_nothing_else_and_happens_once(store: &dyn Store) {
    let app = add_app(store).await;
    let endpoint = add_endpoint(store, new_endpoint(&app.id)).await;
    // An operator's edit lands between the engine's read and its disable.
    let mut edited = endpoint.clone();
    edited.url = EndpointUrl::parse("https://fixed.example/hook").expect("valid url");
    store
        .update_endpoint(edited)
        .await
        .expect("update_endpoint failed");
    let disabled = store
        .disable_endpoint(&app.id, &endpoint.id, at(50))
        .await
        .expect("disable_endpoint failed")
        .expect("an enabled endpoint is disabled");
    assert!(disabled.disabled);
    assert_eq!(disabled.updated_at, at(50));
    assert_eq!(
        disabled.url.as_str(),
        "https://fixed.example/hook",
        "disabling must keep an edit made meanwhile"
    );
    let stored = store
        .endpoint_by_ref(&app.id, endpoint.id.as_str())
        .await
        .expect("endpoint_by_ref failed")
        .expect("the endpoint exists");
    assert_eq!(stored, disabled);
    assert_eq!(
        store
            .disable_endpoint(&app.id, &endpoint.id, at(60))
            .await
            .expect("disable_endpoint failed"),
        None,
        "an endpoint already off is not disabled again"
    );
    let other_app = add_app(store).await;
    let elsewhere = add_endpoint(store, new_endpoint(&other_app.id)).await;
    assert_eq!(
        store
            .disable_endpoint(&app.id, &elsewhere.id, at(70))
            .await
            .expect("disable_endpoint failed"),
        None,
        "an endpoint of another app is out of reach"
    );
}

async fn portal_expiry_orders_are_forgotten_once_they_cover_no_live_token(store: &dyn Store) {
    let app = add_app(store).await;
    let expire = |sessions: Vec<String>, now: i64| {
        let app = app.id.clone();
        async move {
            store
                .expire_portal_tokens(&app, &sessions, at(now), at(now))
                .await
                .expect("expire_portal_tokens failed");
        }
    };
    let orders = |session: Option<&'static str>| {
        let app = app.id.clone();
        async move {
            store
                .portal_expiry(&app, session)
                .await
                .expect("portal_expiry failed")
                .len()
        }
    };
    expire(vec![], 100).await;
    expire(vec!["old".into()], 100).await;
    expire(vec!["new".into()], 300).await;
    assert_eq!(orders(Some("old")).await, 2);

    // One at a time, then none once only later orders are left.
    let forget = |cutoff: i64| async move {
        store
            .forget_portal_expiry_before(at(cutoff), 1)
            .await
            .expect("forget_portal_expiry_before failed")
    };
    assert_eq!(forget(99).await, 0, "every order is after the cutoff");
    assert_eq!(forget(100).await, 1);
    assert_eq!(forget(100).await, 1);
    assert_eq!(forget(100).await, 0);
    assert_eq!(orders(Some("old")).await, 0, "both orders of 100 went");
    assert_eq!(orders(Some("new")).await, 1, "the later one stays");
}
