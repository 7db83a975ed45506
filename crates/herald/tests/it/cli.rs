//! The command line: first-start token, `herald token create`, config errors.
//!
//! These run the binary on SQLite files (one of them is about the SQLite
//! file lock); what the binary does with a PostgreSQL URL is in
//! `cluster.rs`.

use std::process::Command;

use herald_test_support::Api;
use reqwest::Method;

use crate::binary::Herald;

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
