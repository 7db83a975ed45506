//! Herald's integration tests: the real server on an ephemeral port with a
//! fresh SQLite file, real receivers on loopback, and implementations
//! independent of Herald's to check signatures: the `standardwebhooks` crate
//! for `v1` (HMAC) and libsodium through PyNaCl (`tests/sdk/verify_v1a.py`)
//! for `v1a` (ed25519), which no Standard Webhooks library verifies yet.

mod api;
mod bad_input;
mod binary;
mod cli;
mod cluster;
mod console;
mod console_browser;
mod delivery;
mod durability;
mod endpoint_health;
mod gateway;
mod limits;
mod listen;
mod openapi;
mod operations;
mod python_sdk;
mod python_venv;
mod signing;

use std::time::Duration;

/// Generous: CI machines are slow, and waits end as soon as the condition holds.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);
