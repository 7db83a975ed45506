//! Integration tests of the PostgreSQL backend: the shared conformance
//! suite, each case on a fresh schema, and what only several nodes on one
//! database can show.

use herald_store::conformance;
use herald_store_postgres::testing::TestSchema;
use herald_store_postgres::PostgresStore;

#[tokio::test]
async fn postgres_backend_passes_the_conformance_suite() {
    if TestSchema::create().await.is_none() {
        return;
    }
    let schemas = std::sync::Mutex::new(Vec::new());
    conformance::suite(|| async {
        let schema = TestSchema::create()
            .await
            .expect("PostgreSQL answered a moment ago");
        let store = PostgresStore::connect(&schema.url)
            .await
            .expect("cannot open a fresh PostgreSQL schema");
        schemas.lock().expect("schema list").push(schema);
        store
    })
    .await;
}

mod connecting;
mod nodes;
