//! Running the built `herald` binary, as users do.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A `herald serve` process; killed (SIGKILL) when dropped.
pub(crate) struct Herald {
    pub(crate) child: Child,
    pub(crate) base: String,
    /// What it printed before its address (the one-time token, if any).
    pub(crate) banner: Vec<String>,
}

impl Herald {
    /// Starts `herald serve` on port 0 with loopback deliveries allowed.
    pub(crate) fn start(database: &Path, args: &[&str], env: &[(&str, &str)]) -> Herald {
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--ssrf-allow",
                "127.0.0.0/8",
            ])
            .arg("--database")
            .arg(database)
            .args(args)
            .env_remove("HERALD_ADMIN_TOKEN")
            .env("HERALD_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("herald starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = Vec::new();
        let base = loop {
            let line = lines
                .next()
                .expect("herald prints its address before exiting")
                .expect("stdout is readable");
            if let Some(url) = line.strip_prefix("herald listening on ") {
                break url.trim().to_owned();
            }
            banner.push(line);
        };
        Herald {
            child,
            base,
            banner,
        }
    }

    /// Kills the process without warning, like `kill -9`.
    pub(crate) fn kill(mut self) {
        self.child.kill().expect("SIGKILL herald");
        self.child.wait().expect("herald is reaped");
    }
}

impl Drop for Herald {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
