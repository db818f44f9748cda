//! What the sidecar's observability layers add to a request over a bare
//! `service_fn`: the tap, the access log, tracing, and the HTTP/2
//! downgrade that runs before them inbound.
//!
//! Every variant is one layer over the same `service_fn`, which answers
//! `ok`; every request is a copy of a template with three headers (`host`,
//! `user-agent`, `accept`) and a `ConnectionInfo` (a mutual-TLS peer), its
//! headers and extensions cloned in the timed loop, as a server builds
//! them fresh; each goes to a clone of the service, as hyper clones its
//! service per request, and each response body is read to its end.
//!
//! - `baseline`: the bare service. `baseline_traceparent`: the same with a
//!   `traceparent` header too, the baseline of the `trace_` variants that
//!   carry one.
//! - `tap_idle`: `TapLayer` with nobody tapping, the usual case.
//!   `tap_unmatched`: one tap open whose filter (`path=/web`) the request
//!   does not match. `tap_matched`: one tap that matches every request
//!   (`direction=inbound&path=/api`, `max_rps` at its highest, and a new
//!   subscription for each block, so that its rate gate admits every
//!   request): the request's three events are built and queued.
//! - `log_none`: `AccessLogLayer` without a log. `log_apache` and
//!   `log_json`: with a log in each format, whose writer runs as a task
//!   writing to `tokio::io::sink()`.
//! - `trace_none`: `TraceLayer` (inbound) without a tracer.
//!   `trace_no_headers`: with a tracer, the request carrying no trace
//!   context. `trace_unsampled` and `trace_sampled`: a `traceparent` with
//!   the sampled flag off, and on; the sampled span is queued to the
//!   exporter.
//! - `downgrade`: `DowngradeLayer` on an HTTP/1.1 request without the mark.
//! - `inbound_off`: the four as the sidecar composes them inbound
//!   (downgrade, trace, access log, tap), with no tracer, no log and
//!   nobody tapping: what every inbound request pays by default.
//!
//! Requests run in blocks of [`BLOCK`]. What a layer queued for a reader
//! in another task is taken away between blocks, outside the time: the
//! log's writer task runs, the tap's events are received, and the
//! sampled spans go with their tracer, a new one for each block (the
//! exporter sends batches of up to 512 spans, so it holds as many). No
//! queue ever fills, so no variant measures the path that drops: each
//! block checks that nothing was dropped. Before a variant is timed, one
//! request through it must be answered `200 ok` by the service, not by
//! the layer; and once, a sampled request must queue a span and an
//! unsampled one none, and a log's writer must write each request's line,
//! so that those variants do the work they are named for.
//!
//! ```text
//! cargo bench -p mesh-benches --bench observe
//! ```
//!
//! Each variant also has an `added_by_<variant>` bench: it and the
//! baseline in alternating blocks, reporting the variant's extra time per
//! request, which load that comes and goes falls on alike.
//!
//! With `MESH_BENCH_COUNT=<n>` in the environment, the binary instead runs
//! each variant named in `MESH_BENCH_ONLY` (all by default) `n` times and
//! exits, for an instruction count that load on the machine cannot
//! disturb: run it under `valgrind --tool=callgrind` with two values of `n`
//! and divide the difference in instructions by the difference in `n`. The
//! requests themselves run inside `observe::block`: its inclusive count
//! (`callgrind_annotate --inclusive=yes`) leaves out the readers' work
//! between blocks, which the total includes.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::{convert::Infallible, fmt::Debug, time::Duration};

use bytes::Bytes;
use criterion::{BenchmarkGroup, Criterion, criterion_group, measurement::WallTime};
use http::{HeaderValue, Request, Response, Uri, header};
use http_body_util::{BodyExt, Full};
use mesh_benches::Counting;
use mesh_core::{
    conn::{ConnectionInfo, Tls},
    proxy::orig_proto::DowngradeLayer,
};
use mesh_metrics::{
    Direction,
    access_log::{AccessLog, AccessLogFormat, AccessLogLayer},
    tap::{MAX_MAX_RPS, Subscription, Tap, TapFilter, TapLayer},
    trace::{QUEUE, TraceLayer, Tracer},
};
use tokio::{io::AsyncBufReadExt, runtime::Runtime, time::Instant};
use tower::{Layer, Service, ServiceExt, service_fn};

/// Requests per block: a tap's queue (1,024 events, three a request)
/// holds a block's events.
const BLOCK: u64 = 256;

const UNSAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
const SAMPLED: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// An inbound HTTP/1.1 request as the server hands it on, with
/// `traceparent` if given.
fn request(traceparent: Option<&'static str>) -> Request<()> {
    let mut req = Request::get(Uri::from_static("/api/list"))
        .header(header::HOST, HeaderValue::from_static("emoji:8080"))
        .header(header::USER_AGENT, HeaderValue::from_static("bench/1.0"))
        .header(header::ACCEPT, HeaderValue::from_static("*/*"));
    if let Some(value) = traceparent {
        req = req.header("traceparent", HeaderValue::from_static(value));
    }
    let mut req = req.body(()).unwrap();
    req.extensions_mut().insert(ConnectionInfo {
        local_addr: "127.0.0.1:4143".parse().unwrap(),
        remote_addr: ([10, 0, 0, 7], 51324).into(),
        tls: Tls::Mutual {
            peer: "spiffe://cluster.local/ns/emojivoto/sa/web"
                .parse()
                .unwrap(),
        },
    });
    req
}

/// A fresh request like `template`.
fn copy(template: &Request<()>) -> Request<()> {
    let mut req = Request::new(());
    *req.uri_mut() = template.uri().clone();
    *req.headers_mut() = template.headers().clone();
    *req.extensions_mut() = template.extensions().clone();
    req
}

async fn app(_req: Request<()>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::from("ok")))
}

/// `k` requests like `template` through clones of `svc`, each response
/// read to its end; the time they took.
#[inline(never)]
fn block<S, B>(rt: &Runtime, svc: &S, template: &Request<()>, k: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<B>> + Clone,
    S::Error: Debug,
    B: hyper::body::Body,
    B::Error: Debug,
{
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..k {
            let res = svc.clone().oneshot(copy(template)).await.unwrap();
            res.into_body().collect().await.unwrap();
        }
        start.elapsed()
    })
}

/// `iters` requests in blocks, each block through the service `start`
/// gives and followed, untimed, by what it gives to run after.
fn run<S, B, G>(
    rt: &Runtime,
    template: &Request<()>,
    iters: u64,
    start: &mut impl FnMut() -> (S, G),
) -> Duration
where
    S: Service<Request<()>, Response = Response<B>> + Clone,
    S::Error: Debug,
    B: hyper::body::Body,
    B::Error: Debug,
    G: FnOnce(u64),
{
    let (mut total, mut done) = (Duration::ZERO, 0);
    while done < iters {
        let k = BLOCK.min(iters - done);
        let (svc, after) = start();
        total += block(rt, &svc, template, k);
        drop(svc);
        after(k);
        done += k;
    }
    total
}

/// `iters` requests through the variant and as many through the bare
/// service, in alternating blocks; the variant's time beyond the bare
/// service's.
fn added<S, B, G>(
    rt: &Runtime,
    base: &Request<()>,
    template: &Request<()>,
    iters: u64,
    start: &mut impl FnMut() -> (S, G),
) -> Duration
where
    S: Service<Request<()>, Response = Response<B>> + Clone,
    S::Error: Debug,
    B: hyper::body::Body,
    B::Error: Debug,
    G: FnOnce(u64),
{
    let (mut bare, mut layered) = (Duration::ZERO, Duration::ZERO);
    let mut done = 0;
    while done < iters {
        let k = BLOCK.min(iters - done);
        // Alternate which goes first.
        if (done / BLOCK).is_multiple_of(2) {
            bare += block(rt, &service_fn(app), base, k);
            layered += run(rt, template, k, start);
        } else {
            layered += run(rt, template, k, start);
            bare += block(rt, &service_fn(app), base, k);
        }
        done += k;
    }
    // A sample in which noise made the layer look faster than the baseline
    // counts as (almost) free; criterion refuses a zero.
    layered.saturating_sub(bare).max(Duration::from_nanos(1))
}

/// What is done with each variant: benched, or counted.
trait Visit {
    /// `name`: requests like `template` through the services `start`
    /// gives; `base` is the baseline's request.
    fn visit<S, B, G>(
        &mut self,
        name: &str,
        base: &Request<()>,
        template: &Request<()>,
        start: impl FnMut() -> (S, G),
    ) where
        S: Service<Request<()>, Response = Response<B>> + Clone,
        S::Error: Debug,
        B: hyper::body::Body,
        B::Error: Debug,
        G: FnOnce(u64);
}

/// Nothing to do after a block.
fn nothing(_: u64) {}

/// Every `k` requests' three events, received as `/tap` would. An event
/// missing fails the bench rather than waiting for it forever.
fn drain(rt: &Runtime, mut sub: Subscription, k: u64) {
    rt.block_on(async {
        for n in 0..3 * k {
            tokio::time::timeout(Duration::from_secs(5), sub.next())
                .await
                .unwrap_or_else(|_| panic!("{n} of the block's {} events", 3 * k))
                .unwrap();
        }
    });
}

/// Untimed, before a variant is timed: one request like `template` through
/// the service `start` gives is answered `200 ok` by `app`, not by the
/// layer, and what follows a block runs for it.
fn first<S, B, G>(
    rt: &Runtime,
    name: &str,
    template: &Request<()>,
    start: &mut impl FnMut() -> (S, G),
) where
    S: Service<Request<()>, Response = Response<B>> + Clone,
    S::Error: Debug,
    B: hyper::body::Body,
    B::Error: Debug,
    G: FnOnce(u64),
{
    let (svc, after) = start();
    let (status, body) = rt.block_on(async {
        let res = svc.oneshot(copy(template)).await.unwrap();
        let status = res.status();
        (status, res.into_body().collect().await.unwrap().to_bytes())
    });
    assert_eq!(
        (status, &body[..]),
        (http::StatusCode::OK, &b"ok"[..]),
        "{name}"
    );
    after(1);
}

/// Untimed, once: a sampled request through the tracing layer queues a
/// span for the exporter and an unsampled one queues none (the queue holds
/// `QUEUE` spans: one request more drops one, or none); and a log's writer
/// writes a line for each request. So `trace_sampled` and `log_*` time
/// the work they claim to.
fn check_exports(rt: &Runtime, unsampled: &Request<()>, sampled: &Request<()>) {
    let collector: mesh_metrics::trace::Collector = "http://127.0.0.1:4318".parse().unwrap();
    for (template, spans) in [(sampled, 1), (unsampled, 0)] {
        let (tracer, _exporter) = Tracer::new(collector.clone(), Vec::new());
        let svc = TraceLayer::inbound(Some(tracer.clone())).layer(service_fn(app));
        block(rt, &svc, template, QUEUE as u64);
        assert_eq!(tracer.dropped(), 0);
        block(rt, &svc, template, 1);
        assert_eq!(tracer.dropped(), spans, "spans of a full queue dropped");
    }
    for format in [AccessLogFormat::Apache, AccessLogFormat::Json] {
        let (log, writer) = AccessLog::new(format);
        let (out, written) = tokio::io::duplex(1 << 16);
        let _writer = rt.spawn(writer.run(out));
        let svc = AccessLogLayer::new(Some(log)).layer(service_fn(app));
        block(rt, &svc, unsampled, 1);
        let mut line = String::new();
        rt.block_on(async {
            let mut written = tokio::io::BufReader::new(written);
            tokio::time::timeout(Duration::from_secs(5), written.read_line(&mut line))
                .await
                .expect("a line within 5 s")
                .unwrap();
        });
        assert!(line.contains("/api/list"), "{format:?}: {line:?}");
    }
}

/// Lets the access log's writer task write what is queued.
fn write_out(rt: &Runtime, log: &AccessLog) {
    rt.block_on(async {
        for _ in 0..4 {
            tokio::task::yield_now().await;
        }
    });
    assert_eq!(log.dropped(), 0, "the writer kept up");
}

fn filter(query: &str) -> TapFilter {
    TapFilter::from_query(query).unwrap()
}

fn variants(rt: &Runtime, v: &mut impl Visit) {
    let plain = &request(None);
    let unsampled = &request(Some(UNSAMPLED));
    let sampled = &request(Some(SAMPLED));
    check_exports(rt, unsampled, sampled);
    let bare = service_fn(app);
    v.visit("baseline", plain, plain, || (bare, nothing));
    v.visit("baseline_traceparent", sampled, sampled, || (bare, nothing));

    let tap = Tap::new();
    let tapped = TapLayer::new(&tap, Direction::Inbound).layer(bare);
    v.visit("tap_idle", plain, plain, || (tapped.clone(), nothing));
    {
        let _open = tap.subscribe(filter("path=/web")).unwrap();
        v.visit("tap_unmatched", plain, plain, || (tapped.clone(), nothing));
    }
    let matching = filter(&format!(
        "direction=inbound&path=/api&max_rps={MAX_MAX_RPS}"
    ));
    v.visit("tap_matched", plain, plain, || {
        let sub = tap.subscribe(matching.clone()).unwrap();
        (tapped.clone(), move |k| drain(rt, sub, k))
    });
    assert_eq!(tap.open(), 0);

    let unlogged = AccessLogLayer::new(None).layer(bare);
    v.visit("log_none", plain, plain, || (unlogged.clone(), nothing));
    for (name, format) in [
        ("log_apache", AccessLogFormat::Apache),
        ("log_json", AccessLogFormat::Json),
    ] {
        let (log, writer) = AccessLog::new(format);
        let _writer = rt.spawn(writer.run(tokio::io::sink()));
        let logged = AccessLogLayer::new(Some(log.clone())).layer(bare);
        let log = &log;
        v.visit(name, plain, plain, || {
            (logged.clone(), move |_| write_out(rt, log))
        });
    }

    let untraced = TraceLayer::inbound(None).layer(bare);
    v.visit("trace_none", plain, plain, || (untraced.clone(), nothing));
    let collector: mesh_metrics::trace::Collector = "http://127.0.0.1:4318".parse().unwrap();
    // The exporter never runs: nothing is queued but sampled spans.
    let (tracer, _exporter) = Tracer::new(collector.clone(), Vec::new());
    let traced = TraceLayer::inbound(Some(tracer.clone())).layer(bare);
    v.visit("trace_no_headers", plain, plain, || {
        (traced.clone(), nothing)
    });
    v.visit("trace_unsampled", unsampled, unsampled, || {
        (traced.clone(), nothing)
    });
    assert_eq!(tracer.dropped(), 0);
    v.visit("trace_sampled", sampled, sampled, || {
        let (tracer, exporter) = Tracer::new(collector.clone(), Vec::new());
        let svc = TraceLayer::inbound(Some(tracer.clone())).layer(bare);
        (svc, move |_| {
            assert_eq!(tracer.dropped(), 0, "every span queued");
            // The queued spans go with it.
            drop(exporter);
        })
    });

    let downgrade = DowngradeLayer::new().layer(bare);
    v.visit("downgrade", plain, plain, || (downgrade.clone(), nothing));

    // As the sidecar composes them inbound, each off.
    let off = TapLayer::new(&tap, Direction::Inbound).layer(bare);
    let off = AccessLogLayer::new(None).layer(off);
    let off = TraceLayer::inbound(None).layer(off);
    let off = DowngradeLayer::new().layer(off);
    v.visit("inbound_off", plain, plain, || (off.clone(), nothing));
}

struct Bench<'a, 'c> {
    rt: &'a Runtime,
    group: BenchmarkGroup<'c, WallTime>,
}

impl Visit for Bench<'_, '_> {
    fn visit<S, B, G>(
        &mut self,
        name: &str,
        base: &Request<()>,
        template: &Request<()>,
        mut start: impl FnMut() -> (S, G),
    ) where
        S: Service<Request<()>, Response = Response<B>> + Clone,
        S::Error: Debug,
        B: hyper::body::Body,
        B::Error: Debug,
        G: FnOnce(u64),
    {
        let rt = self.rt;
        first(rt, name, template, &mut start);
        self.group.bench_function(name, |b| {
            b.iter_custom(|iters| run(rt, template, iters, &mut start));
        });
        if !name.starts_with("baseline") {
            self.group.bench_function(format!("added_by_{name}"), |b| {
                b.iter_custom(|iters| added(rt, base, template, iters, &mut start));
            });
        }
    }
}

fn observe(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut bench = Bench {
        rt: &rt,
        group: c.benchmark_group("observe"),
    };
    variants(&rt, &mut bench);
    bench.group.finish();
}

impl Visit for (&Runtime, &Counting) {
    fn visit<S, B, G>(
        &mut self,
        name: &str,
        _base: &Request<()>,
        template: &Request<()>,
        mut start: impl FnMut() -> (S, G),
    ) where
        S: Service<Request<()>, Response = Response<B>> + Clone,
        S::Error: Debug,
        B: hyper::body::Body,
        B::Error: Debug,
        G: FnOnce(u64),
    {
        if self.1.wants(name) {
            first(self.0, name, template, &mut start);
            run(self.0, template, self.1.n, &mut start);
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = observe
}

fn main() {
    if let Some(counting) = Counting::from_env() {
        let rt = counting.runtime();
        variants(&rt, &mut (&rt, &counting));
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
