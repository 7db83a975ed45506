//! Several `herald serve` processes on one PostgreSQL: nothing acknowledged
//! is lost when one of them is killed mid-run, and a node that cannot use
//! its database says why and exits at once.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_store_postgres::testing::{server_url, TestSchema};
use herald_store_postgres::NODE_SILENCE;
use herald_test_support::{eventually, Api, Behaviour, Receiver};
use reqwest::Method;
use serde_json::json;

use crate::binary::Herald;
use crate::DEADLINE;

const TOKEN: &str = "cluster-token";
const MESSAGES: usize = 10_000;
/// Requests in flight from the test at once, over all nodes.
const SENDERS: usize = 24;
/// Attempts in flight per node: small, so the work a killed node leaves
/// behind (at most four claims per worker) is small too.
const WORKERS: usize = 16;

/// Node `index` on `url`, its database connections named after it so the
/// test can tell when a killed node's last statement has finished.
fn start_node(schema: &TestSchema, index: usize) -> Herald {
    Herald::start(
        Path::new(&format!(
            "{}&application_name={}",
            schema.url,
            node_name(schema, index)
        )),
        &[
            "--workers",
            &WORKERS.to_string(),
            // Other tests share the PostgreSQL server's 100 connections.
            "--database-pool-size",
            "6",
            // Leases last 6 × the timeout + 30 s, a minute here: a dead
            // node's deliveries must be taken over long before that (and an
            // attempt a store hiccup left unrecorded waits no longer).
            "--request-timeout",
            "5s",
        ],
        &[("HERALD_ADMIN_TOKEN", TOKEN)],
    )
}

/// Posts a message; a node that is gone answers no status.
async fn post_message(
    http: &reqwest::Client,
    api: &Api,
    app: &str,
    message: &serde_json::Value,
) -> (Option<u16>, serde_json::Value) {
    let sent = http
        .post(format!("{}/api/v1/app/{app}/msg", api.base))
        .bearer_auth(&api.token)
        .json(message)
        .send()
        .await;
    let Ok(response) = sent else {
        return (None, serde_json::Value::Null);
    };
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(serde_json::Value::Null);
    (Some(status), body)
}

/// (endpoint path, message id) → how many times it arrived.
fn arrivals(receivers: &[(&str, &Receiver)]) -> HashMap<(String, String), usize> {
    let mut counts = HashMap::new();
    for (path, receiver) in receivers {
        for request in receiver.received() {
            *counts
                .entry(((*path).to_owned(), request.header("webhook-id")))
                .or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_every_message_to_every_endpoint_when_one_is_killed_mid_run() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let nodes = [
        start_node(&schema, 0),
        start_node(&schema, 1),
        start_node(&schema, 2),
    ];
    let apis: Vec<Api> = nodes
        .iter()
        .map(|node| Api::new(node.base.clone(), TOKEN))
        .collect();

    // Three endpoints: one takes everything, two take one event type each,
    // so every message is owed to exactly two of them.
    // Each answer takes a moment, so the victim surely has attempts in
    // flight when it dies.
    let slow = Behaviour::Slow {
        delay: Duration::from_millis(10),
    };
    let everything = Receiver::start(slow).await;
    let created = Receiver::start(slow).await;
    let paid = Receiver::start(slow).await;
    let app = apis[0].create_app("cluster").await;
    apis[1]
        .create_endpoint(&app, json!({"url": everything.url("all")}))
        .await;
    apis[2]
        .create_endpoint(
            &app,
            json!({"url": created.url("created"), "filterTypes": ["order.created"]}),
        )
        .await;
    apis[0]
        .create_endpoint(
            &app,
            json!({"url": paid.url("paid"), "filterTypes": ["order.paid"]}),
        )
        .await;

    // Send through all three nodes; one is killed once a third of the
    // messages are in, while it is busy accepting and delivering.
    let next = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(tokio::sync::Notify::new());
    let kill_at = MESSAGES / 3;
    // Which node was killed (none yet: out of range).
    let victim = Arc::new(AtomicUsize::new(usize::MAX));
    let lost_answers = Arc::new(AtomicUsize::new(0));
    let mut senders = tokio::task::JoinSet::new();
    let http = reqwest::Client::new();
    for sender in 0..SENDERS {
        let lost_answers = lost_answers.clone();
        let (http, apis, next, app, killed, victim) = (
            http.clone(),
            apis.clone(),
            next.clone(),
            app.clone(),
            killed.clone(),
            victim.clone(),
        );
        senders.spawn(async move {
            let mut acknowledged = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= MESSAGES {
                    return acknowledged;
                }
                if index == kill_at {
                    killed.notify_one();
                }
                let event_type = if index % 2 == 0 {
                    "order.created"
                } else {
                    "order.paid"
                };
                let dead = victim.load(Ordering::Relaxed);
                let mut node = (index + sender) % apis.len();
                if node == dead {
                    node = (node + 1) % apis.len();
                }
                let survivor = (node + 1) % apis.len();
                let survivor = if survivor == dead {
                    (survivor + 1) % apis.len()
                } else {
                    survivor
                };
                let message = json!({"eventType": event_type, "payload": {"n": index}});
                let (status, body) = post_message(&http, &apis[node], &app, &message).await;
                match status {
                    Some(202) => acknowledged.push((
                        body["id"].as_str().expect("message id").to_owned(),
                        event_type,
                    )),
                    // Only the killed node may fail to answer. What it did
                    // not acknowledge is not owed, so it is sent again; it
                    // may still have been committed (and so delivered too).
                    None => {
                        lost_answers.fetch_add(1, Ordering::Relaxed);
                        let (status, body) =
                            post_message(&http, &apis[survivor], &app, &message).await;
                        assert_eq!(status, Some(202), "a live node answers: {body}");
                        acknowledged.push((
                            body["id"].as_str().expect("message id").to_owned(),
                            event_type,
                        ));
                    }
                    other => panic!("node {node} did not accept message {index}: {other:?} {body}"),
                }
            }
        });
    }
    killed.notified().await;
    // The victim is the node holding the most leases right now, so the
    // kill surely cuts attempts off in the middle.
    let database = connect_to(&schema.url).await;
    let pids: Vec<u32> = nodes.iter().map(|node| node.child.id()).collect();
    let (index, held) = eventually("a node holds leases", Duration::from_secs(60), || async {
        let rows = database
            .query(
                "SELECT lease_owner, COUNT(*) FROM deliveries WHERE status = 3
                     GROUP BY lease_owner ORDER BY COUNT(*) DESC LIMIT 1",
                &[],
            )
            .await
            .expect("lease counts");
        let row = rows.first()?;
        let owner: String = row.get(0);
        let held: i64 = row.get(1);
        let pid: u32 = owner.strip_prefix("pid")?.split('-').next()?.parse().ok()?;
        let index = pids.iter().position(|known| *known == pid)?;
        Some((index, held))
    })
    .await;
    assert!(
        connections_of(&database, &schema, index).await > 0,
        "the nodes' connections carry their names"
    );
    victim.store(index, Ordering::Relaxed);
    let mut nodes: Vec<Option<Herald>> = nodes.into_iter().map(Some).collect();
    nodes[index].take().expect("the victim runs").kill();
    let killed_at = Instant::now();
    // Every attempt the victim made began before this moment.
    let killed_ms = unix_millis();
    // A statement the victim sent before it died still runs to its end (a
    // claim, a recorded attempt, a delivery handed back): only once the
    // database has closed its last connection is what it held final.
    eventually(
        "the killed node's connections are closed",
        DEADLINE,
        || async { (connections_of(&database, &schema, index).await == 0).then_some(()) },
    )
    .await;
    // What the victim held when it died: it can record nothing from now on.
    let orphans = leases_of(&database, pids[index]).await;
    assert!(
        !orphans.is_empty(),
        "the victim held {held} leases a moment before the kill and none at it"
    );

    let mut acknowledged = Vec::new();
    while let Some(sent) = senders.join_next().await {
        acknowledged.extend(sent.expect("a sender finished"));
    }
    assert_eq!(
        acknowledged.len(),
        MESSAGES,
        "every message was acknowledged once"
    );

    let expected: Vec<(String, String)> = acknowledged
        .iter()
        .flat_map(|(msg, event_type)| {
            let typed = if *event_type == "order.created" {
                "created"
            } else {
                "paid"
            };
            [
                ("all".to_owned(), msg.clone()),
                (typed.to_owned(), msg.clone()),
            ]
        })
        .collect();
    let receivers = [("all", &everything), ("created", &created), ("paid", &paid)];
    // The survivors free a dead node's leases once it has been silent for
    // `NODE_SILENCE`, and take its deliveries over.
    let (counts, taken_over) = eventually(
        "every acknowledged message reaches every matching endpoint",
        Duration::from_secs(300),
        || async {
            let arrived = everything.count() + created.count() + paid.count();
            if arrived < expected.len() {
                return None;
            }
            let counts = arrivals(&receivers);
            if !expected.iter().all(|pair| counts.contains_key(pair)) {
                return None;
            }
            // An orphan whose request had reached its receiver before the
            // kill is there already; its survivor's attempt comes later.
            let attempts = attempts_since(&database, &orphans, killed_ms).await;
            (attempts.len() == orphans.len()).then_some((counts, attempts))
        },
    )
    .await;
    let delivered: usize = counts.values().sum();
    let duplicates = delivered - counts.len();
    let unacknowledged = counts.len() - expected.len();
    let lost_answers = lost_answers.load(Ordering::Relaxed);
    // When the orphans were taken over, in seconds after the kill.
    let seconds_after_kill =
        |at: Option<&i64>| at.map_or(f64::NAN, |at| (at - killed_ms) as f64 / 1000.0);
    let first_takeover = seconds_after_kill(taken_over.values().min());
    let last_takeover = seconds_after_kill(taken_over.values().max());
    eprintln!(
        "cluster: {} messages acknowledged, {} deliveries owed, {} requests received, \
         {} duplicates ({:.3}%), {} deliveries of {} creates whose answer the kill cut off; \
         the killed node held {} leases, its {} orphans were taken over {:.1}–{:.1}s after \
         the kill, and everything had arrived {:.1}s after it",
        acknowledged.len(),
        expected.len(),
        delivered,
        duplicates,
        100.0 * duplicates as f64 / expected.len() as f64,
        unacknowledged,
        lost_answers,
        held,
        orphans.len(),
        first_takeover,
        last_takeover,
        killed_at.elapsed().as_secs_f64()
    );
    // A create the victim committed but could not answer was sent again
    // elsewhere: both copies are delivered, nothing else is.
    assert!(
        unacknowledged <= 2 * lost_answers,
        "{unacknowledged} deliveries of messages nobody sent"
    );
    // At-least-once: only what the killed node had leased (and perhaps sent
    // without recording it) may arrive twice, and it held at most four
    // claims per worker.
    assert!(
        orphans.len() <= WORKERS * 4,
        "the killed node held {} leases, more than its claims allow",
        orphans.len()
    );
    // An attempt that failed (an answer slowed past the request timeout on
    // a loaded machine) may have arrived all the same; its retry is another
    // copy that the kill did not cause.
    let retries: i64 = database
        .query_one(
            "SELECT COUNT(*) - COUNT(DISTINCT (msg_id, endpoint_id)) FROM attempts",
            &[],
        )
        .await
        .expect("attempt counts")
        .get(0);
    let retries = usize::try_from(retries).expect("a count");
    assert!(
        duplicates <= orphans.len() + retries,
        "{duplicates} duplicates: more than the {} deliveries the killed node held \
         and the {retries} retries",
        orphans.len()
    );
    // A dead node's leases are freed once the database has not heard from
    // it for `NODE_SILENCE`, not before (it might only have been slow), and
    // long before they would have run out.
    let last_beat: i64 = database
        .query_one(
            "SELECT heartbeat_at FROM nodes WHERE id LIKE $1",
            &[&format!("pid{}-%", pids[index])],
        )
        .await
        .expect("the killed node beat while it ran")
        .get(0);
    let silence = i64::try_from(NODE_SILENCE.as_millis()).expect("milliseconds");
    // Beats carry the database's clock, attempts the nodes'; both run on
    // this machine, but the two readings may round apart.
    let clocks = 100;
    for (delivery, lease_until) in &orphans {
        let first = taken_over[delivery];
        assert!(
            first + clocks >= last_beat + silence,
            "{delivery:?} was attempted at {first}, before its node had been silent for \
             {silence} ms (last beat {last_beat})"
        );
        assert!(
            first < *lease_until,
            "{delivery:?} waited for its dead node's lease to run out at {lease_until}"
        );
    }
    drop(nodes);
}

/// The name node `index` gives its database connections: the schema's
/// name makes it unique among tests running at once.
fn node_name(schema: &TestSchema, index: usize) -> String {
    format!("{}-node-{index}", schema.name)
}

/// How many connections node `index` has open to the database.
async fn connections_of(
    database: &tokio_postgres::Client,
    schema: &TestSchema,
    index: usize,
) -> i64 {
    database
        .query_one(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = $1",
            &[&node_name(schema, index)],
        )
        .await
        .expect("the database's connections")
        .get(0)
}

/// A delivery: (message id, endpoint id).
type Delivery = (String, String);

/// The deliveries a node (by process id) leases now, with when each lease
/// runs out (milliseconds since the epoch).
async fn leases_of(database: &tokio_postgres::Client, pid: u32) -> HashMap<Delivery, i64> {
    database
        .query(
            "SELECT msg_id, endpoint_id, lease_until FROM deliveries
             WHERE status = 3 AND lease_owner LIKE $1",
            &[&format!("pid{pid}-%")],
        )
        .await
        .expect("the victim's leases")
        .iter()
        .map(|row| ((row.get(0), row.get(1)), row.get(2)))
        .collect()
}

/// When each of these deliveries was first attempted at or after `since`
/// (milliseconds since the epoch), for those attempted then at all. (One
/// may have been tried before too: an answer slowed past the request
/// timeout on a loaded machine fails the attempt, and the retry is what
/// the victim held.)
async fn attempts_since(
    database: &tokio_postgres::Client,
    deliveries: &HashMap<Delivery, i64>,
    since: i64,
) -> HashMap<Delivery, i64> {
    let (messages, endpoints): (Vec<&str>, Vec<&str>) = deliveries
        .keys()
        .map(|(msg, endpoint)| (msg.as_str(), endpoint.as_str()))
        .unzip();
    database
        .query(
            "SELECT a.msg_id, a.endpoint_id, MIN(a.timestamp) FROM attempts a
             JOIN UNNEST($1::text[], $2::text[]) AS d(msg_id, endpoint_id)
               ON a.msg_id = d.msg_id AND a.endpoint_id = d.endpoint_id
             WHERE a.timestamp >= $3
             GROUP BY a.msg_id, a.endpoint_id",
            &[&messages, &endpoints, &since],
        )
        .await
        .expect("the orphans' attempts")
        .iter()
        .map(|row| ((row.get(0), row.get(1)), row.get(2)))
        .collect()
}

fn unix_millis() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970");
    i64::try_from(since_epoch.as_millis()).expect("milliseconds fit in i64")
}

/// A plain connection to the test database, to look at the leases.
async fn connect_to(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("the test connects to its schema");
    tokio::spawn(connection);
    client
}

/// `herald serve` on `database`; answers its exit status, what it printed
/// and how long it took, killing it if it is still up after 20 s.
fn serve_briefly(database: &str) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database", database])
        .env_remove("HERALD_ADMIN_TOKEN")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald starts");
    let deadline = started + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("herald can be waited on") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    (status, stderr, started.elapsed())
}

/// The test server's URL with another user or database.
fn variant_of_test_server(user: Option<&str>, database: Option<&str>) -> String {
    let server = server_url();
    let mut url = url::Url::parse(&server).expect("the test URL parses");
    if let Some(user) = user {
        url.set_username(user)
            .expect("a URL with a host takes a user");
    }
    if let Some(database) = database {
        url.set_path(database);
    }
    url.to_string()
}

#[tokio::test]
async fn a_node_that_cannot_use_its_database_exits_at_once_saying_why() {
    let mut cases = vec![(
        "postgres://postgres@127.0.0.1:1/test".to_owned(),
        "cannot reach PostgreSQL at 127.0.0.1:1",
    )];
    if herald_test_support::postgres_ready().await {
        cases.push((
            variant_of_test_server(None, Some("herald_no_such_database")),
            "database \"herald_no_such_database\" does not exist",
        ));
        cases.push((
            variant_of_test_server(Some("herald_no_such_user"), None),
            "refused user \"herald_no_such_user\"",
        ));
    }
    for (database, reason) in cases {
        let (status, stderr, took) = serve_briefly(&database);
        assert!(
            status.is_some_and(|code| code != 0),
            "{database}: herald must exit with an error, got {status:?}\n{stderr}"
        );
        assert!(
            took < Duration::from_secs(10),
            "{database}: took {took:?} to give up"
        );
        assert!(
            stderr.contains(reason),
            "{database}: the message must say {reason:?}, got:\n{stderr}"
        );
    }
}

#[tokio::test]
async fn a_token_made_with_the_cli_works_on_every_node_until_revoked() {
    let Some(schema) = TestSchema::create().await else {
        return;
    };
    let nodes = [start_node(&schema, 0), start_node(&schema, 1)];
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["token", "create", "--database", &schema.url])
        .output()
        .expect("herald token create runs");
    assert!(output.status.success(), "{output:?}");
    let token = String::from_utf8(output.stdout).expect("utf-8");
    let token = token.trim();
    for node in &nodes {
        let api = Api::new(node.base.clone(), token);
        api.get("/api/v1/app").await;
    }
    let revoked = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["token", "revoke", token, "--database", &schema.url])
        .output()
        .expect("herald token revoke runs");
    assert!(revoked.status.success(), "{revoked:?}");
    for node in &nodes {
        let api = Api::new(node.base.clone(), token);
        eventually("every node refuses the revoked token", DEADLINE, || async {
            let (status, _) = api.request(Method::GET, "/api/v1/app", None, &[]).await;
            (status == 401).then_some(())
        })
        .await;
    }
}
