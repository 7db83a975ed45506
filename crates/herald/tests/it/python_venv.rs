//! Python virtualenvs for the interop tests, created on first use under
//! Cargo's target directory and kept between runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

/// Held while a virtualenv is checked or made: tests run in parallel, and two
/// `pip install`s into one directory break each other on a fresh machine.
static MAKING: Mutex<()> = Mutex::new(());

fn run(command: &mut Command) {
    let status = command
        .status()
        .unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(status.success(), "{command:?} failed with {status}");
}

/// The interpreter of virtualenv `name`, with `package` at exactly `version`
/// installed from PyPI.
pub(crate) fn python_with(name: &str, package: &str, version: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let python = venv.join("bin").join("python");
    let _making = MAKING.lock().unwrap_or_else(PoisonError::into_inner);
    let ready = Command::new(&python)
        .args([
            "-c",
            &format!(
                "import importlib.metadata as m; assert m.version('{package}') == '{version}'"
            ),
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
            &format!("{package}=={version}"),
        ]));
    }
    python
}
