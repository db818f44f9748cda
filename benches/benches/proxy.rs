//! A request through the sidecar's inbound hop versus straight to the same
//! backend, over one warm HTTP/1.1 connection, with 0 B, 1 KiB and 64 KiB
//! bodies echoed back.
//!
//! ```text
//! cargo bench -p mesh-benches --bench proxy
//! ```
//!
//! The ratio of the two medians in one run is the figure that matters: the
//! absolute times move with the machine's load.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mesh_benches::{check_round_trip, client, echo_backend, round_trip};
use mesh_examples::sidecar::{self, config::SidecarConfig};

fn proxy(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let backend = echo_backend();
    let yaml = format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {backend}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    );
    let running = sidecar::start(SidecarConfig::from_yaml(&yaml, "bench.yaml").unwrap()).unwrap();
    let through_sidecar = running.inbound[0];
    let direct_client = client();
    let sidecar_client = client();

    let mut group = c.benchmark_group("proxy_http1");
    for size in [0usize, 1024, 64 * 1024] {
        let body = Bytes::from(vec![b'x'; size]);
        rt.block_on(async {
            check_round_trip(&direct_client, backend, body.clone()).await;
            check_round_trip(&sidecar_client, through_sidecar, body.clone()).await;
        });
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("direct", size), &body, |b, body| {
            b.to_async(&rt)
                .iter(|| round_trip(&direct_client, backend, body.clone()));
        });
        group.bench_with_input(BenchmarkId::new("sidecar", size), &body, |b, body| {
            b.to_async(&rt)
                .iter(|| round_trip(&sidecar_client, through_sidecar, body.clone()));
        });
    }
    group.finish();
    running.shutdown();
    running.join();
}

criterion_group!(benches, proxy);
criterion_main!(benches);
