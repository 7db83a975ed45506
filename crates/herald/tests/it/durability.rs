//! Nothing acknowledged is lost: the built binary is killed with SIGKILL
//! while deliveries are pending, restarted on the same database, and every
//! acknowledged message still arrives.
//!
//! SQLite only: this is one node restarted on its own file. On PostgreSQL
//! several nodes share the database and a killed node's work is taken over
//! by the others without a restart, which `cluster.rs` shows.

use herald_test_support::{eventually, Api, Behaviour, Receiver};
use serde_json::json;

use crate::binary::Herald;
use crate::DEADLINE;

const TOKEN: &str = "durability-token";

fn start(database: &std::path::Path) -> Herald {
    // Retries every second for long enough that nothing fails for good
    // while the receiver is down.
    let schedule = ["1s"; 30].join(",");
    Herald::start(
        database,
        // The receiver is down on purpose: no circuit breaker, or deliveries
        // would be put off past the test's deadline.
        &[
            "--retry-schedule",
            &schedule,
            "--circuit-breaker-failures",
            "1000000",
        ],
        &[("HERALD_ADMIN_TOKEN", TOKEN)],
    )
}

#[tokio::test]
async fn acknowledged_messages_survive_kill_9_and_are_delivered_after_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("herald.db");
    let receiver_address = Receiver::unused_address().await;

    let first = start(&database);
    let api = Api::new(first.base.clone(), TOKEN);
    let app = api.create_app("durable").await;
    let (endpoint, _) = api
        .create_endpoint(
            &app,
            json!({"url": format!("http://{receiver_address}/hook")}),
        )
        .await;
    let mut acknowledged = Vec::new();
    for index in 0..50 {
        acknowledged.push(api.send(&app, "a.b", json!({"n": index})).await);
    }
    // Let the first run log a failed attempt of every message (the receiver
    // is down); counting attempts is not enough, as early messages may be
    // retried before the last one is first tried ...
    eventually(
        "the first run logs every message's attempt",
        DEADLINE,
        || async {
            let attempts = api
                .get(&format!(
                    "/api/v1/app/{app}/attempt/endpoint/{endpoint}?limit=250"
                ))
                .await;
            let tried: std::collections::HashSet<&str> = attempts["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|attempt| attempt["msgId"].as_str())
                .collect();
            acknowledged
                .iter()
                .all(|msg| tried.contains(msg.as_str()))
                .then_some(())
        },
    )
    .await;
    // ... then kill it without any chance to clean up.
    first.kill();

    let receiver = Receiver::start_at(receiver_address, Behaviour::Accept).await;
    let second = start(&database);
    let api = Api::new(second.base.clone(), TOKEN);
    eventually("every acknowledged message arrives", DEADLINE, || async {
        let counts = receiver.count_by_message();
        acknowledged
            .iter()
            .all(|msg| counts.contains_key(msg))
            .then_some(())
    })
    .await;
    for msg in &acknowledged {
        let attempts = eventually("the success is logged", DEADLINE, || async {
            let attempts = api.attempts_of(&app, msg).await;
            (attempts.first().is_some_and(|newest| newest["status"] == 0)).then_some(attempts)
        })
        .await;
        assert!(
            attempts.iter().any(|attempt| attempt["status"] == 2),
            "{msg}: failed attempts of the first run are still in the log"
        );
    }
    second.kill();
}
