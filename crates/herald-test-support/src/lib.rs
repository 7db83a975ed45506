//! Dev-only support for Herald's integration tests: the real server on an
//! ephemeral port with a fresh database (SQLite or PostgreSQL, see
//! [`test_on_both_backends!`]), loopback receivers that record
//! what they get and can be told to fail, one generic API request helper,
//! and `eventually` for waiting on conditions with a deadline.

pub mod backend;
mod receiver;
mod server;
mod wait;

pub use backend::{on_backend, postgres_ready, Backend};
pub use receiver::{Behaviour, Received, Receiver};
pub use server::{Api, TestServer, TestServerOptions, TEST_TOKEN};
pub use wait::eventually;
