//! The command line: first-start token, `herald token create`, config
//! errors, `herald verify`.
//!
//! These run the binary on SQLite files (one of them is about the SQLite
//! file lock); what the binary does with a PostgreSQL URL is in
//! `cluster.rs`.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use herald_test_support::{eventually, Api, Behaviour, Receiver, TestServer};
use reqwest::Method;
use serde_json::json;

use crate::binary::Herald;
use crate::gateway::provider_headers;
use crate::DEADLINE;

#[tokio::test]
async fn the_first_start_prints_a_working_admin_token_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("herald.db");

    let first = Herald::start(&database, &[], &[]);
    let token = first
        .banner
        .iter()
        .map(|line| line.trim())
        .find(|line| line.starts_with("hrld_"))
        .expect("the first start prints a token")
        .to_owned();
    let (status, _) = Api::new(first.base.clone(), &token)
        .request(Method::GET, "/api/v1/app", None, &[])
        .await;
    assert_eq!(status, 200);
    first.kill();

    let second = Herald::start(&database, &[], &[]);
    assert!(
        !second.banner.iter().any(|line| line.contains("hrld_")),
        "the token is shown only once: {:?}",
        second.banner
    );
    let (status, _) = Api::new(second.base.clone(), &token)
        .request(Method::GET, "/api/v1/app", None, &[])
        .await;
    assert_eq!(status, 200, "the stored token still works");

    let created = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["token", "create", "--database"])
        .arg(&database)
        .output()
        .expect("herald token create runs");
    assert!(created.status.success());
    let another = String::from_utf8(created.stdout)
        .expect("utf-8")
        .trim()
        .to_owned();
    assert!(another.starts_with("hrld_") && another != token);
    let (status, _) = Api::new(second.base.clone(), &another)
        .request(Method::GET, "/api/v1/app", None, &[])
        .await;
    assert_eq!(
        status, 200,
        "a token made by `herald token create` works on a running server"
    );
}

#[tokio::test]
async fn an_explicit_admin_token_suppresses_the_generated_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let herald = Herald::start(
        &dir.path().join("herald.db"),
        &[],
        &[("HERALD_ADMIN_TOKEN", "mine")],
    );
    assert!(herald.banner.iter().all(|line| !line.contains("hrld_")));
    let (status, _) = Api::new(herald.base.clone(), "mine")
        .request(Method::GET, "/api/v1/app", None, &[])
        .await;
    assert_eq!(status, 200);
}

#[test]
fn invalid_configuration_fails_fast_with_a_clear_message() {
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args([
            "serve",
            "--retry-schedule",
            "5s, whenever",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("herald runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("retry_schedule"), "{stderr}");
}

#[tokio::test]
async fn a_second_server_on_the_same_database_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("herald.db");
    let _first = Herald::start(&database, &[], &[("HERALD_ADMIN_TOKEN", "t")]);
    let second = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", "127.0.0.1:0", "--database"])
        .arg(&database)
        .env("HERALD_ADMIN_TOKEN", "t")
        .output()
        .expect("herald runs");
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("in use by another herald process"),
        "{stderr}"
    );
}

/// Runs `herald verify` with `args`, the body on standard input.
fn verify(args: &[String], body: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("verify")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("herald verify runs");
    let written = child.stdin.take().expect("stdin is piped").write_all(body);
    // Unusable input ends the command before it reads the body.
    if let Err(error) = written {
        assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
    }
    child.wait_with_output().expect("herald verify finishes")
}

fn header_args(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .flat_map(|(name, value)| ["-H".to_owned(), format!("{name}: {value}")])
        .collect()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn herald_verify_accepts_a_delivery_herald_made_and_nothing_altered() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let app = server.api.create_app("verify").await;
    let (_, secret) = server
        .api
        .create_endpoint(&app, json!({"url": receiver.url("hook")}))
        .await;
    server
        .api
        .send(&app, "invoice.paid", json!({"amount": 42}))
        .await;
    let delivery = eventually("the delivery arrives", DEADLINE, || async {
        receiver.received().pop()
    })
    .await;
    let names = ["webhook-id", "webhook-timestamp", "webhook-signature"];
    let headers: Vec<(String, String)> = names
        .iter()
        .map(|name| (name.to_string(), delivery.header(name)))
        .collect();
    let mut args = vec!["--secret".to_owned(), secret];
    args.extend(header_args(&headers));

    let verified = verify(&args, &delivery.body);
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(said.starts_with("verified:"), "{said}");

    let mut altered = delivery.body.to_vec();
    altered.push(b' ');
    let refused = verify(&args, &altered);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("webhook-signature does not match"),
        "{}",
        stderr(&refused)
    );

    // Checked as of an hour later, the signed timestamp is too old.
    let timestamp: i64 = delivery
        .header("webhook-timestamp")
        .parse()
        .expect("seconds");
    let mut later = args.clone();
    later.extend(["--at".to_owned(), (timestamp + 3600).to_string()]);
    let stale = verify(&later, &delivery.body);
    assert_eq!(stale.status.code(), Some(1));
    assert!(stderr(&stale).contains("tolerance"), "{}", stderr(&stale));
}

#[tokio::test]
async fn herald_verify_checks_a_provider_signature_made_by_an_independent_signer() {
    let secret = "whsec_stripe_cli_secret";
    let body = br#"{"id":"evt_1","type":"invoice.paid"}"#;
    let headers = provider_headers("stripe", secret, body, json!({}));
    let args = |secret: &str| {
        let mut args = vec![
            "--type".to_owned(),
            "stripe".to_owned(),
            "--secret".to_owned(),
            secret.to_owned(),
        ];
        args.extend(header_args(&headers));
        args
    };
    let verified = verify(&args(secret), body);
    assert_eq!(verified.status.code(), Some(0), "{}", stderr(&verified));
    let wrong = verify(&args("whsec_another_secret"), body);
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains("Stripe-Signature"),
        "{}",
        stderr(&wrong)
    );
}

#[tokio::test]
async fn herald_verify_names_what_is_wrong_with_its_input() {
    let unknown = verify(&["--type".into(), "carrier-pigeon".into()], b"{}");
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("type"), "{}", stderr(&unknown));

    let no_secret = verify(&["--type".into(), "stripe".into()], b"{}");
    assert_eq!(no_secret.status.code(), Some(2));
    assert!(
        stderr(&no_secret).contains("config.secret"),
        "{}",
        stderr(&no_secret)
    );

    let args = ["--type", "github", "--secret", "s", "-H", "no colon"].map(String::from);
    let bad_header = verify(&args, b"{}");
    assert_eq!(bad_header.status.code(), Some(2));
    assert!(
        stderr(&bad_header).contains("no colon"),
        "{}",
        stderr(&bad_header)
    );
}

/// Runs `herald token …` on `database`; answers (success, stdout, stderr).
fn token_command(database: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .arg("token")
        .args(args)
        .arg("--database")
        .arg(database)
        .output()
        .expect("herald token runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn tokens_are_listed_by_name_and_a_revoked_one_stops_working_on_a_running_server() {
    let dir = tempfile::tempdir().expect("temp dir");
    let database = dir.path().join("herald.db");
    let server = Herald::start(&database, &[], &[]);

    let (created, token, _) = token_command(&database, &["create", "--name", "ci"]);
    assert!(created);
    let token = token.trim().to_owned();
    let api = Api::new(server.base.clone(), &token);
    let (status, _) = api.request(Method::GET, "/api/v1/app", None, &[]).await;
    assert_eq!(status, 200);

    let (listed, list, _) = token_command(&database, &["list"]);
    assert!(listed);
    assert!(list.contains("first start"), "{list}");
    let hint = &token[token.len() - 4..];
    let line = list
        .lines()
        .find(|line| line.contains(" ci "))
        .unwrap_or_else(|| panic!("no line for the ci token: {list}"));
    assert!(line.contains(&format!("hrld_…{hint}")), "{line}");
    assert!(!list.contains(&token), "a listing never shows a token");
    let id = line.split_whitespace().next().expect("an id column");

    let (revoked, said, problem) = token_command(&database, &["revoke", id]);
    assert!(revoked, "{problem}");
    assert_eq!(said.trim(), format!("revoked {id}"));
    eventually(
        "the running server refuses the revoked token",
        DEADLINE,
        || async {
            let (status, _) = api.request(Method::GET, "/api/v1/app", None, &[]).await;
            (status == 401).then_some(())
        },
    )
    .await;
    let (listed, list, _) = token_command(&database, &["list"]);
    assert!(listed && !list.contains(" ci "), "{list}");

    let (again, _, problem) = token_command(&database, &["revoke", id]);
    assert!(!again);
    assert!(problem.contains("no token has the id"), "{problem}");
    let (garbled, _, problem) = token_command(&database, &["revoke", "zz"]);
    assert!(!garbled);
    assert!(problem.contains("neither a token"), "{problem}");
    server.kill();
}
