//! Running one test body against each storage backend.
//!
//! The backend is a task-local setting rather than an argument, so a test
//! body (and any fixture it calls) starts its servers with
//! [`crate::TestServer::start`] as usual and gets the backend of the variant
//! being run. [`test_on_both_backends!`](crate::test_on_both_backends)
//! writes the two variants.

use std::future::Future;

/// Where a test server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file (the default outside [`on_backend`]).
    Sqlite,
    /// A fresh schema on the test PostgreSQL.
    Postgres,
}

tokio::task_local! {
    static BACKEND: Backend;
}

/// Runs `test` with every server it starts on `backend`.
pub async fn on_backend<F: Future>(backend: Backend, test: F) -> F::Output {
    BACKEND.scope(backend, test).await
}

/// The backend of the running test.
pub fn current() -> Backend {
    BACKEND
        .try_with(|backend| *backend)
        .unwrap_or(Backend::Sqlite)
}

/// Whether the test PostgreSQL can be used; prints why not when it cannot
/// (and fails the test instead when `CI=true`).
pub async fn postgres_ready() -> bool {
    herald_store_postgres::testing::TestSchema::create()
        .await
        .is_some()
}

/// Writes each test twice, as `name::sqlite` and `name::postgres`: the same
/// body against servers on each backend, so the API behaves the same
/// whichever one a deployment uses. The PostgreSQL variant skips with the
/// reason printed when no PostgreSQL is reachable, except in CI.
#[macro_export]
macro_rules! test_on_both_backends {
    ($($(#[$meta:meta])* async fn $name:ident() $body:block)*) => {$(
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            $(#[$meta])*
            #[tokio::test]
            async fn sqlite() {
                $crate::on_backend($crate::Backend::Sqlite, async $body).await
            }

            $(#[$meta])*
            #[tokio::test]
            async fn postgres() {
                if !$crate::postgres_ready().await {
                    return;
                }
                $crate::on_backend($crate::Backend::Postgres, async $body).await
            }
        }
    )*};
}
