//! Nothing acknowledged is lost: the built binary is killed with SIGKILL
//! while deliveries are pending, restarted on the same database, and every
//! acknowledged message still arrives.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use herald_test_support::{eventually, Api, Behaviour, Receiver};
use serde_json::json;

use crate::DEADLINE;

const TOKEN: &str = "durability-token";

/// Starts `herald serve` on port 0 and answers the process with its base URL.
fn start_herald(database: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--ssrf-allow",
            "127.0.0.0/8",
        ])
        .arg("--database")
        .arg(database)
        // Long enough that nothing fails for good while the receiver is down.
        .args(["--retry-schedule", &["1s"; 30].join(",")])
        .env("HERALD_ADMIN_TOKEN", TOKEN)
        .env("HERALD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("herald starts");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("herald prints its address before exiting")
            .expect("stdout is readable");
        if let Some(url) = line.strip_prefix("herald listening on ") {
            break url.trim().to_owned();
        }
    };
    (child, base)
}

#[tokio::test]
async fn acknowledged_messages_survive_kill_9_and_are_delivered_after_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("herald.db");
    let receiver_address = Receiver::unused_address().await;

    let (mut first, base) = start_herald(&database);
    let api = Api::new(base, TOKEN);
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
    // Let the first run log failed attempts (the receiver is down) ...
    eventually("the first run logs attempts", DEADLINE, || async {
        let attempts = api
            .get(&format!(
                "/api/v1/app/{app}/attempt/endpoint/{endpoint}?limit=250"
            ))
            .await;
        (attempts["data"].as_array().map_or(0, Vec::len) >= 50).then_some(())
    })
    .await;
    // ... then kill it without any chance to clean up.
    first.kill().expect("SIGKILL herald");
    first.wait().expect("herald is reaped");
    let receiver = Receiver::start_at(receiver_address, Behaviour::Accept).await;
    let (mut second, base) = start_herald(&database);
    let api = Api::new(base, TOKEN);
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
    second.kill().expect("kill herald");
    second.wait().expect("herald is reaped");
}
