//! The official Svix Python SDK, installed from PyPI, used as a client of
//! Herald. The virtualenv is created on first run under Cargo's target
//! directory; `HERALD_PYTHON` points at an existing interpreter instead.

use std::path::{Path, PathBuf};
use std::process::Command;

use herald_test_support::{eventually, Behaviour, Receiver, TestServer, TEST_TOKEN};

use crate::DEADLINE;

/// The SDK version this test pins: the one DESIGN.md names.
const SVIX_VERSION: &str = "svix==2.9.1";

fn run(command: &mut Command) {
    let status = command
        .status()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(status.success(), "{command:?} failed with {status}");
}

/// A Python interpreter with the svix package importable.
fn python_with_svix() -> PathBuf {
    if let Ok(python) = std::env::var("HERALD_PYTHON") {
        return PathBuf::from(python);
    }
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("svix-venv");
    let python = venv.join("bin").join("python");
    let ready = Command::new(&python)
        .args([
            "-c",
            "import svix, importlib.metadata as m; assert m.version('svix') == '2.9.1'",
        ])
        .status()
        .is_ok_and(|status| status.success());
    if !ready {
        run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
        run(Command::new(&python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            SVIX_VERSION,
        ]));
    }
    python
}

#[tokio::test]
async fn the_official_python_sdk_drives_herald() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk/svix_python.py");
    let python = python_with_svix();
    let output = tokio::process::Command::new(python)
        .arg(&script)
        .env("HERALD_URL", &server.api.base)
        .env("HERALD_TOKEN", TEST_TOKEN)
        .env("HERALD_RECEIVER_URL", receiver.url("sdk"))
        .output()
        .await
        .expect("the SDK script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "SDK script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let msg = stdout
        .lines()
        .find_map(|line| line.strip_prefix("delivered "))
        .expect("the script names the message it sent")
        .trim()
        .to_owned();
    eventually(
        "the SDK's message reaches the receiver",
        DEADLINE,
        || async { receiver.count_by_message().contains_key(&msg).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn the_official_python_sdk_manages_sources_and_destinations() {
    let server = TestServer::start().await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/sdk/svix_python_ingest.py");
    let python = python_with_svix();
    let output = tokio::process::Command::new(python)
        .arg(&script)
        .env("HERALD_URL", &server.api.base)
        .env("HERALD_TOKEN", TEST_TOKEN)
        .env("HERALD_RECEIVER_URL", receiver.url("ingest"))
        .output()
        .await
        .expect("the SDK script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "SDK ingest script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let msg = stdout
        .lines()
        .find_map(|line| line.strip_prefix("ingested "))
        .expect("the script names the message it ingested")
        .trim()
        .to_owned();
    eventually(
        "the ingested Stripe event reaches the destination",
        DEADLINE,
        || async { receiver.count_by_message().contains_key(&msg).then_some(()) },
    )
    .await;
}
