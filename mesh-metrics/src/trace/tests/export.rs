//! The exporter against collectors on 127.0.0.1.

use super::*;

/// A collector on 127.0.0.1 that answers `status` and keeps each body.
async fn collector(status: StatusCode) -> (Collector, Arc<Mutex<Vec<Value>>>) {
    collector_answering(status, "").await
}

/// A collector on 127.0.0.1 that answers `status` with `answer` and keeps
/// each body.
async fn collector_answering(
    status: StatusCode,
    answer: &'static str,
) -> (Collector, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let kept = bodies.clone();
    tokio::spawn(async move {
        loop {
            let (io, _) = listener.accept().await.unwrap();
            let kept = kept.clone();
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let kept = kept.clone();
                async move {
                    assert_eq!(req.uri().path(), "/v1/traces");
                    assert_eq!(req.headers()["content-type"], "application/json");
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    kept.lock()
                        .await
                        .push(serde_json::from_slice(&body).unwrap());
                    let mut res = Response::new(Full::new(Bytes::from(answer)));
                    *res.status_mut() = status;
                    Ok::<_, Infallible>(res)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), svc),
            );
        }
    });
    (format!("http://{addr}").parse().unwrap(), bodies)
}

fn spans_in(body: &Value) -> &Vec<Value> {
    body["resourceSpans"][0]["scopeSpans"][0]["spans"]
        .as_array()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn spans_reach_a_real_collector_in_one_batch_with_the_resource() {
    let (collector, bodies) = collector(StatusCode::OK).await;
    let resource = vec![("service.name".to_owned(), "web".to_owned())];
    let (tracer, exporter) = Tracer::new(collector, resource);
    let export = tokio::spawn(exporter.run());

    let svc = TraceLayer::inbound(Some(tracer.clone())).layer(app(StatusCode::OK));
    for caller in ["1111111111111111", "2222222222222222", "3333333333333333"] {
        let traceparent = format!("00-{TRACE}-{caller}-01");
        svc.clone()
            .oneshot(request(Some(&traceparent)))
            .await
            .unwrap();
    }
    let counts = tracer.counts.clone();
    drop((svc, tracer));
    // Every handle gone: the exporter sends what it holds and returns.
    export.await.unwrap();

    let bodies = bodies.lock().await;
    assert_eq!(bodies.len(), 1, "one batch: {bodies:?}");
    let body = &bodies[0];
    assert_eq!(
        body["resourceSpans"][0]["resource"]["attributes"][0],
        serde_json::json!({ "key": "service.name", "value": { "stringValue": "web" } })
    );
    let parents: Vec<&str> = spans_in(body)
        .iter()
        .map(|s| s["parentSpanId"].as_str().unwrap())
        .collect();
    assert_eq!(
        parents,
        ["1111111111111111", "2222222222222222", "3333333333333333"]
    );
    assert!(
        spans_in(body)
            .iter()
            .all(|s| s["traceId"] == TRACE && s["kind"] == 2)
    );
    assert_eq!((counts.exported.get(), counts.failed.get()), (3, 0));
}

#[tokio::test(start_paused = true)]
async fn spans_a_collector_refuses_are_counted_as_failed() {
    let (collector, bodies) = collector(StatusCode::INTERNAL_SERVER_ERROR).await;
    let (tracer, exporter) = Tracer::new(collector, Vec::new());
    let export = tokio::spawn(exporter.run());
    let svc = TraceLayer::outbound(Some(tracer.clone())).layer(app(StatusCode::OK));
    svc.oneshot(request(Some(&format!("00-{TRACE}-{CALLER}-01"))))
        .await
        .unwrap();
    let counts = tracer.counts.clone();
    drop(tracer);
    export.await.unwrap();
    assert_eq!(bodies.lock().await.len(), 1);
    assert_eq!((counts.exported.get(), counts.failed.get()), (0, 1));
}

#[tokio::test(start_paused = true)]
async fn a_batch_waits_for_the_flush_interval_then_goes() {
    let (collector, bodies) = collector(StatusCode::OK).await;
    let (tracer, exporter) = Tracer::new(collector, Vec::new());
    tokio::spawn(exporter.run());
    let svc = TraceLayer::inbound(Some(tracer.clone())).layer(app(StatusCode::OK));
    svc.clone()
        .oneshot(request(Some(&format!("00-{TRACE}-{CALLER}-01"))))
        .await
        .unwrap();
    tokio::time::sleep(FLUSH_INTERVAL / 2).await;
    assert!(bodies.lock().await.is_empty(), "sent before the interval");
    svc.oneshot(request(Some(&format!("00-{TRACE}-{CALLER}-01"))))
        .await
        .unwrap();
    while tracer.exported() < 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bodies = bodies.lock().await;
    assert_eq!(bodies.len(), 1);
    assert_eq!(spans_in(&bodies[0]).len(), 2);
}

/// `n` sampled requests through an inbound layer on `tracer`.
async fn traced_requests(tracer: &Tracer, n: usize) {
    let svc = TraceLayer::inbound(Some(tracer.clone())).layer(app(StatusCode::OK));
    for _ in 0..n {
        svc.clone()
            .oneshot(request(Some(&format!("00-{TRACE}-{CALLER}-01"))))
            .await
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn spans_a_collector_rejects_in_a_partial_success_are_counted_as_failed() {
    let answer = r#"{"partialSuccess":{"rejectedSpans":"2","errorMessage":"too old"}}"#;
    let (collector, bodies) = collector_answering(StatusCode::OK, answer).await;
    let (tracer, exporter) = Tracer::new(collector, Vec::new());
    let export = tokio::spawn(exporter.run());
    traced_requests(&tracer, 3).await;
    let counts = tracer.counts.clone();
    drop(tracer);
    export.await.unwrap();
    assert_eq!(bodies.lock().await.len(), 1);
    assert_eq!((counts.exported.get(), counts.failed.get()), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn a_stopped_exporter_sends_what_is_queued_at_once_though_tracers_live_on() {
    let (collector, bodies) = collector(StatusCode::OK).await;
    let (tracer, exporter) = Tracer::new(collector, Vec::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let export = tokio::spawn(exporter.run_until(async {
        let _ = stopped.await;
    }));
    traced_requests(&tracer, 2).await;
    let stopping = tokio::time::Instant::now();
    drop(stop);
    export.await.unwrap();
    assert!(stopping.elapsed() < FLUSH_INTERVAL, "waited for the batch");
    assert_eq!(spans_in(&bodies.lock().await[0]).len(), 2);
    assert_eq!(tracer.exported(), 2);

    // The tracer lives on; what it reports now is dropped and counted.
    traced_requests(&tracer, 1).await;
    assert_eq!(tracer.dropped(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_hung_collector_holds_a_stopping_exporter_for_one_export_timeout() {
    // Accepts connections and never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((io, _)) = listener.accept().await {
            held.push(io);
        }
    });
    let (tracer, exporter) = Tracer::new(format!("http://{addr}").parse().unwrap(), Vec::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let export = tokio::spawn(exporter.run_until(async {
        let _ = stopped.await;
    }));
    traced_requests(&tracer, 1).await;
    let stopping = tokio::time::Instant::now();
    drop(stop);
    export.await.unwrap();
    assert_eq!(stopping.elapsed(), EXPORT_TIMEOUT);
    assert_eq!(tracer.failed(), 1);
}

/// A collector that answers its requests with `answers` in turn, a status
/// and a `Retry-After`, then with 200; when each request came.
async fn scripted_collector(
    answers: Vec<(StatusCode, Option<&'static str>)>,
) -> (Collector, Arc<Mutex<Vec<tokio::time::Instant>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let times = Arc::new(Mutex::new(Vec::new()));
    let answers = Arc::new(Mutex::new(answers.into_iter()));
    let kept = times.clone();
    tokio::spawn(async move {
        loop {
            let (io, _) = listener.accept().await.unwrap();
            let (kept, answers) = (kept.clone(), answers.clone());
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (kept, answers) = (kept.clone(), answers.clone());
                async move {
                    kept.lock().await.push(tokio::time::Instant::now());
                    req.into_body().collect().await.unwrap();
                    let (status, retry_after) = answers
                        .lock()
                        .await
                        .next()
                        .unwrap_or((StatusCode::OK, None));
                    let mut res = Response::new(Full::new(Bytes::new()));
                    *res.status_mut() = status;
                    if let Some(after) = retry_after {
                        res.headers_mut()
                            .insert("retry-after", after.parse().unwrap());
                    }
                    Ok::<_, Infallible>(res)
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(io), svc),
            );
        }
    });
    (format!("http://{addr}").parse().unwrap(), times)
}

#[tokio::test(start_paused = true)]
async fn an_overloaded_collector_gets_the_batch_once_more_after_its_retry_after() {
    let overloaded = StatusCode::SERVICE_UNAVAILABLE;
    for (answers, exported, failed) in [
        (vec![(overloaded, Some("5"))], 2, 0),
        (vec![(overloaded, Some("5")), (overloaded, Some("5"))], 0, 2),
    ] {
        let (collector, times) = scripted_collector(answers).await;
        let (tracer, exporter) = Tracer::new(collector, Vec::new());
        let export = tokio::spawn(exporter.run());
        traced_requests(&tracer, 2).await;
        let counts = tracer.counts.clone();
        drop(tracer);
        export.await.unwrap();
        let times = times.lock().await;
        assert_eq!(times.len(), 2, "sent once, and once more");
        let waited = times[1] - times[0];
        assert!(
            (Duration::from_secs(5)..Duration::from_secs(6)).contains(&waited),
            "{waited:?}"
        );
        assert_eq!(
            (counts.exported.get(), counts.failed.get()),
            (exported, failed)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_too_many_requests_without_retry_after_waits_a_second() {
    let (collector, times) = scripted_collector(vec![(StatusCode::TOO_MANY_REQUESTS, None)]).await;
    let (tracer, exporter) = Tracer::new(collector, Vec::new());
    let export = tokio::spawn(exporter.run());
    traced_requests(&tracer, 1).await;
    let counts = tracer.counts.clone();
    drop(tracer);
    export.await.unwrap();
    let times = times.lock().await;
    assert_eq!(times.len(), 2);
    let waited = times[1] - times[0];
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(2)).contains(&waited),
        "{waited:?}"
    );
    assert_eq!(counts.exported.get(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_of_an_hour_waits_thirty_seconds() {
    // Spans an hour old are of little use, and the queue drops the newer
    // ones meanwhile: the wait has a ceiling, whatever the collector asks.
    let overloaded = (StatusCode::SERVICE_UNAVAILABLE, Some("3600"));
    let (collector, times) = scripted_collector(vec![overloaded]).await;
    let (tracer, exporter) = Tracer::new(collector, Vec::new());
    let export = tokio::spawn(exporter.run());
    traced_requests(&tracer, 1).await;
    let counts = tracer.counts.clone();
    drop(tracer);
    export.await.unwrap();
    let times = times.lock().await;
    assert_eq!(times.len(), 2);
    let waited = times[1] - times[0];
    assert!(
        (Duration::from_secs(30)..Duration::from_secs(40)).contains(&waited),
        "{waited:?}"
    );
    assert_eq!(counts.exported.get(), 1);
}

/// A collector that accepts connections, counts them, and never answers.
async fn hung_collector() -> (Collector, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((io, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            held.push(io);
        }
    });
    (format!("http://{addr}").parse().unwrap(), accepted)
}

fn a_span() -> span::Span {
    span::Span {
        trace_id: context::TraceId([0xab; 16]),
        span_id: context::SpanId([1; 8]),
        parent: context::SpanId([2; 8]),
        name: std::borrow::Cow::Borrowed("GET"),
        kind: SpanKind::Server,
        start: 1,
        end: 2,
        attributes: Vec::new(),
        trace_state: None,
        error: None,
    }
}

#[tokio::test(start_paused = true)]
async fn a_hung_collector_has_one_batch_in_flight_and_the_queue_drops_the_rest() {
    use std::sync::atomic::Ordering::SeqCst;
    let (collector, accepted) = hung_collector().await;
    let (tracer, exporter) = Tracer::new(collector, Vec::new());
    tokio::spawn(exporter.run());
    for _ in 0..MAX_BATCH {
        tracer.report(a_span());
    }
    // A full batch goes at once; the clock stands still meanwhile.
    while accepted.load(SeqCst) < 1 {
        tokio::task::yield_now().await;
    }
    for _ in 0..QUEUE + 3 {
        tracer.report(a_span());
    }
    assert_eq!(tracer.dropped(), 3, "the queue holds QUEUE spans, no more");

    while tracer.failed() == 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(tracer.failed(), MAX_BATCH as u64);
    while accepted.load(SeqCst) < 2 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(EXPORT_TIMEOUT / 2).await;
    assert_eq!(accepted.load(SeqCst), 2, "one batch in flight at a time");
}
