//! Group commit: how many messages (each with its fan-out delivery) the
//! SQLite store makes durable per second when many callers write at once,
//! compared with one caller at a time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use herald_core::model::{App, Endpoint, Message, Metadata};
use herald_core::{
    AppId, EndpointId, EndpointUrl, EventTypeName, MessageId, SigningKey, Timestamp,
};
use herald_store::Store;
use herald_store_sqlite::SqliteStore;

fn message(app: &AppId) -> Message {
    Message {
        id: MessageId::generate(),
        app_id: app.clone(),
        event_type: EventTypeName::parse("invoice.paid").expect("valid name"),
        event_id: None,
        payload: r#"{"invoice":"in_000000000042","amount":4200,"currency":"eur"}"#.to_owned(),
        channels: Vec::new(),
        tags: Vec::new(),
        headers: Default::default(),
        created_at: Timestamp(1_700_000_000_000),
        deliver_at: None,
        content_expunged_at: None,
        payload_expires_at: None,
    }
}

async fn store_with_app(dir: &std::path::Path) -> (Arc<SqliteStore>, AppId) {
    let store = Arc::new(SqliteStore::open(dir.join("bench.db")).expect("store opens"));
    let app = App {
        id: AppId::generate(),
        uid: None,
        name: "bench".into(),
        rate_limit: None,
        metadata: Metadata::new(),
        created_at: Timestamp(0),
        updated_at: Timestamp(0),
    };
    let app = store.create_app(app).await.expect("app");
    let endpoint = Endpoint {
        id: EndpointId::generate(),
        app_id: app.id.clone(),
        uid: None,
        url: EndpointUrl::parse("https://example.com/hook").expect("url"),
        description: String::new(),
        version: 1,
        disabled: false,
        filter_types: None,
        channels: None,
        rate_limit: None,
        metadata: Metadata::new(),
        headers: Default::default(),
        key: SigningKey::generate(),
        retired_keys: Vec::new(),
        created_at: Timestamp(0),
        updated_at: Timestamp(0),
    };
    store.create_endpoint(endpoint).await.expect("endpoint");
    (store, app.id)
}

fn message_commit(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("create_message");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    for callers in [1usize, 32, 256] {
        let batch = 2_048;
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(
            BenchmarkId::new("concurrent callers", callers),
            &callers,
            |b, &callers| {
                let dir = tempfile::tempdir().expect("temp dir");
                let (store, app) = runtime.block_on(store_with_app(dir.path()));
                b.iter_custom(|iterations| {
                    runtime.block_on(async {
                        let started = Instant::now();
                        for _ in 0..iterations {
                            let mut tasks = Vec::with_capacity(callers);
                            for _ in 0..callers {
                                let (store, app) = (store.clone(), app.clone());
                                tasks.push(tokio::spawn(async move {
                                    for _ in 0..batch / callers {
                                        store
                                            .create_message(message(&app), None)
                                            .await
                                            .expect("commit");
                                    }
                                }));
                            }
                            for task in tasks {
                                task.await.expect("task");
                            }
                        }
                        started.elapsed()
                    })
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, message_commit);
criterion_main!(benches);
