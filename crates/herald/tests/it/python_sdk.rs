//! The official Svix Python SDK, installed from PyPI, used as a client of
//! Herald. The virtualenv is created on first run under Cargo's target
//! directory; `HERALD_PYTHON` points at an existing interpreter instead.

use std::path::{Path, PathBuf};

use herald_test_support::{eventually, Behaviour, Receiver, TestServer, TEST_TOKEN};

use crate::python_venv::python_with;
use crate::DEADLINE;

/// The SDK version this test pins: the one DESIGN.md names.
const SVIX_VERSION: &str = "2.9.1";

/// A Python interpreter with the svix package importable.
pub(crate) fn python_with_svix() -> PathBuf {
    if let Ok(python) = std::env::var("HERALD_PYTHON") {
        return PathBuf::from(python);
    }
    python_with("svix-venv", "svix", SVIX_VERSION)
}

/// Runs `tests/sdk/{script}` with the SDK against `server` (its URL and
/// token in `HERALD_URL`/`HERALD_TOKEN`, plus `env`); fails the test if the
/// script does, and answers what it printed.
pub(crate) async fn run_python(
    server: &TestServer,
    script: &str,
    env: &[(&str, String)],
) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/sdk")
        .join(script);
    let mut command = tokio::process::Command::new(python_with_svix());
    command
        .arg(&path)
        .env("HERALD_URL", &server.api.base)
        .env("HERALD_TOKEN", TEST_TOKEN);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().await.expect("the SDK script runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// What a script printed after `marker` on a line of its own.
pub(crate) fn printed(stdout: &str, marker: &str) -> String {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(marker))
        .unwrap_or_else(|| panic!("the script prints '{marker}'"))
        .trim()
        .to_owned()
}

/// Runs `tests/sdk/{script}` against a fresh Herald and a receiver (which
/// answers `thanks`), and waits until the message the script names after
/// `marker` arrives.
async fn run_sdk_script(script: &str, marker: &str) {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Behaviour::AcceptWith { body: "thanks" }).await;
    let stdout = run_python(
        &server,
        script,
        &[("HERALD_RECEIVER_URL", receiver.url("sdk"))],
    )
    .await;
    let msg = printed(&stdout, marker);
    eventually(
        "the script's message reaches the receiver",
        DEADLINE,
        || async { receiver.count_by_message().contains_key(&msg).then_some(()) },
    )
    .await;
}

herald_test_support::test_on_both_backends! {
    async fn the_official_python_sdk_drives_herald() {
        run_sdk_script("svix_python.py", "delivered ").await;
    }
}

herald_test_support::test_on_both_backends! {
    async fn the_official_python_sdk_manages_sources_and_destinations() {
        run_sdk_script("svix_python_ingest.py", "ingested ").await;
    }
}
