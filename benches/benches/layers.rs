//! The cost of each mesh layer over a bare `service_fn`, called in process
//! with no I/O. Every layer's bench is compared with the `baseline` here,
//! measured in the same run.
//!
//! ```text
//! cargo bench -p mesh-benches --bench layers
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::convert::Infallible;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use tower::{ServiceExt, service_fn};

fn request() -> Request<()> {
    Request::get("http://emoji:8080/api/list").body(()).unwrap()
}

fn layers(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("layers");
    let baseline = service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
    group.bench_function("baseline", |b| {
        b.to_async(&rt).iter(|| baseline.oneshot(request()));
    });
    group.finish();
}

criterion_group!(benches, layers);
criterion_main!(benches);
