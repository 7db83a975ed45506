//! Signing and verification cost per message: what every delivery and every
//! inbound request pays.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use herald_core::{HmacKey, SigningKey};
use herald_signing::verifiers::{InboundRequest, StandardWebhooksConfig, Verifier};
use herald_signing::{signature_header, SignedContent};

fn payload() -> Vec<u8> {
    let mut body = br#"{"type":"invoice.paid","data":{"pad":""#.to_vec();
    body.extend(std::iter::repeat_n(b'x', 1024 - body.len() - 3));
    body.extend(br#""}}"#);
    body
}

fn signing(c: &mut Criterion) {
    let body = payload();
    let current = SigningKey::generate();
    let retired = SigningKey::generate();
    let content = SignedContent {
        id: "msg_01JBENCHMARK0000000000000",
        timestamp: 1_700_000_000,
        body: &body,
    };
    let mut group = c.benchmark_group("sign 1 KiB");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("one key", |b| {
        b.iter(|| signature_header([&current], std::hint::black_box(content)))
    });
    group.bench_function("two keys (during rotation)", |b| {
        b.iter(|| signature_header([&current, &retired], std::hint::black_box(content)))
    });
    let asymmetric = SigningKey::generate_ed25519();
    group.bench_function("one ed25519 key (v1a)", |b| {
        b.iter(|| signature_header([&asymmetric], std::hint::black_box(content)))
    });
    group.finish();

    let header = signature_header([&current], content);
    let timestamp = content.timestamp.to_string();
    let headers = vec![
        ("webhook-id", content.id),
        ("webhook-timestamp", timestamp.as_str()),
        ("webhook-signature", header.as_str()),
    ];
    let verifier = Verifier::StandardWebhooks(StandardWebhooksConfig {
        secret: HmacKey::parse(&current.expose()).expect("a generated key parses"),
    });
    c.bench_function("verify 1 KiB (Standard Webhooks)", |b| {
        b.iter(|| {
            let request = InboundRequest {
                body: &body,
                headers: &headers,
                public_url: "https://herald.example/in/src_1",
            };
            verifier.verify(std::hint::black_box(&request), content.timestamp)
        })
    });
}

criterion_group!(benches, signing);
criterion_main!(benches);
