//! Herald's integration tests: the real server on an ephemeral port with a
//! fresh SQLite file, real receivers on loopback, and an independent
//! Standard Webhooks implementation (the `standardwebhooks` crate) to check
//! signatures.

mod api;
mod bad_input;
mod binary;
mod cli;
mod console;
mod console_browser;
mod delivery;
mod durability;
mod gateway;
mod python_sdk;
mod signing;

use std::time::Duration;

/// Generous: CI machines are slow, and waits end as soon as the condition holds.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);
