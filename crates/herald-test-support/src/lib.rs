//! Dev-only support for Herald's integration tests: the real server on an
//! ephemeral port with a fresh SQLite file, loopback receivers that record
//! what they get and can be told to fail, one generic API request helper,
//! and `eventually` for waiting on conditions with a deadline.

mod receiver;
mod server;
mod wait;

pub use receiver::{Behaviour, Received, Receiver};
pub use server::{Api, TestServer, TestServerOptions, TEST_TOKEN};
pub use wait::eventually;
