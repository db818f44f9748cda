//! What stops a retry: method, budget, deadline, body, readiness.

use super::*;

#[tokio::test(start_paused = true)]
async fn post_is_not_retried_by_default() {
    let h = Harness::new();
    let (svc, seen) = upstream(|_| status(503));
    let req = Request::post("/").body(full("order")).unwrap();
    let res = send(&h.layer(RetryPolicy::default(), unlimited()), svc, req)
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(h.not_retryable("non_idempotent"), 1);
}

#[tokio::test(start_paused = true)]
async fn grpc_calls_are_retried_only_when_the_route_marks_them() {
    let h = Harness::new();
    let call = || {
        Request::post("/p.S/M")
            .header("content-type", "application/grpc")
            .body(full("\0\0\0\0\0"))
            .unwrap()
    };
    let (svc, seen) = upstream(|_| grpc("14"));
    send(&h.layer(RetryPolicy::default(), unlimited()), svc, call())
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(h.not_retryable("non_idempotent"), 1);
    let (svc, seen) = upstream(|_| grpc("14"));
    let policy = RetryPolicy::default().with_grpc_requests(true);
    send(&h.layer(policy.clone(), unlimited()), svc, call())
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3);
    // Marking gRPC calls does not mark other POSTs.
    let (svc, seen) = upstream(|_| status(503));
    let post = Request::post("/form").body(full("a=1")).unwrap();
    send(&h.layer(policy, unlimited()), svc, post)
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn post_is_retried_when_the_route_marks_it_retryable() {
    let h = Harness::new();
    let (svc, seen) = upstream(|i| if i == 0 { status(503) } else { status(201) });
    let req = Request::post("/").body(full("order")).unwrap();
    let policy = RetryPolicy::default().with_any_method(true);
    let res = send(&h.layer(policy, unlimited()), svc, req).await.unwrap();
    assert_eq!(res.status(), 201);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|s| s.method == Method::POST && s.body == "order")
    );
}

#[tokio::test(start_paused = true)]
async fn an_empty_budget_returns_the_last_response_and_says_so() {
    let h = Harness::new();
    let empty = Arc::new(Budget::new(
        BudgetConfig::new(0.0, 0, Duration::from_secs(10)).unwrap(),
    ));
    let (svc, seen) = upstream(|_| status(502));
    let res = send(&h.layer(RetryPolicy::default(), empty), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(h.count("retry_budget_exhausted_total"), 1);
}

#[tokio::test(start_paused = true)]
async fn retry_after_is_waited_out_up_to_the_max() {
    let h = Harness::new();
    let (svc, _) = upstream(|i| {
        let mut res = status(if i == 0 { 503 } else { 200 })?;
        res.headers_mut()
            .insert("retry-after", "1".parse().unwrap());
        Ok(res)
    });
    let backoff = Backoff::new(Duration::from_millis(1), Duration::from_secs(5)).unwrap();
    let start = Instant::now();
    let policy = RetryPolicy::default().with_backoff(backoff);
    send(&h.layer(policy, unlimited()), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn a_retry_after_date_is_waited_out_up_to_the_max() {
    let h = Harness::new();
    let in_an_hour = std::time::SystemTime::now() + Duration::from_secs(3600);
    let date = httpdate::fmt_http_date(in_an_hour);
    let (svc, seen) = upstream(move |i| {
        let mut res = status(if i == 0 { 503 } else { 200 })?;
        res.headers_mut()
            .insert("retry-after", date.parse().unwrap());
        Ok(res)
    });
    let backoff = Backoff::new(Duration::from_millis(1), Duration::from_secs(5)).unwrap();
    let start = Instant::now();
    let policy = RetryPolicy::default().with_backoff(backoff);
    let res = send(&h.layer(policy, unlimited()), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(start.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn no_retry_starts_that_the_deadline_would_cut_short() {
    let h = Harness::new();
    // The upstream asks for a one-second wait; half a second is left.
    let (svc, seen) = upstream(|_| {
        let mut res = status(503)?;
        res.headers_mut()
            .insert("retry-after", "1".parse().unwrap());
        Ok(res)
    });
    let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5)).unwrap();
    let mut req = get("/");
    req.extensions_mut()
        .insert(Deadline::after(Duration::from_millis(500)));
    let policy = RetryPolicy::default().with_backoff(backoff);
    let res = send(&h.layer(policy, unlimited()), svc, req).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(h.count("retry_deadline_exceeded_total"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_body_is_replayed_byte_for_byte_with_its_trailers() {
    let h = Harness::new();
    let (svc, seen) = upstream(|i| if i == 0 { status(503) } else { status(200) });
    let payload: Bytes = (0..10 * 1024)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<_>>()
        .into();
    let mut trailers = HeaderMap::new();
    trailers.insert("checksum", "abc".parse().unwrap());
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(
        payload
            .chunks(1000)
            .map(|c| Ok::<_, BoxError>(http_body::Frame::data(Bytes::copy_from_slice(c))))
            .collect::<Vec<_>>()
            .into_iter()
            .chain([Ok(http_body::Frame::trailers(trailers.clone()))]),
    ));
    let req = Request::put("/")
        .body(mesh_core::body::boxed(body))
        .unwrap();
    send(&h.layer(RetryPolicy::default(), unlimited()), svc, req)
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    for attempt in seen.iter() {
        assert_eq!(attempt.body, payload);
        assert_eq!(attempt.trailers.as_ref(), Some(&trailers));
    }
}

#[tokio::test(start_paused = true)]
async fn a_known_length_over_the_cap_is_sent_once() {
    let h = Harness::new();
    let (svc, seen) = upstream(|_| status(503));
    let req = Request::put("/").body(full(vec![7; 100])).unwrap();
    let policy = RetryPolicy::default().with_max_replay_bytes(99);
    let res = send(&h.layer(policy, unlimited()), svc, req).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(seen.lock().unwrap()[0].body.len(), 100);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(h.not_retryable("body_too_large"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_policy_of_one_attempt_never_touches_the_budget() {
    let budget = Arc::new(Budget::default());
    let (svc, seen) = upstream(|_| status(503));
    let layer = RetryLayer::new(RetryPolicy::never(), budget.clone());
    send(&layer, svc, get("/")).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(budget.balance(), 100.0);
    assert_eq!(RetryPolicy::never().max_attempts(), NonZeroU32::MIN);
}

#[tokio::test(start_paused = true)]
async fn metrics_can_be_labelled_from_the_request() {
    let mut registry = Registry::default();
    let metrics = RetryMetrics::register(&mut registry);
    let budget = unlimited();
    metrics.observe_budget("emoji", &budget);
    let layer = RetryLayer::new(RetryPolicy::default(), budget).with_request_metrics(metrics);
    let (svc, _) = upstream(|i| if i == 0 { status(503) } else { status(200) });
    let mut req = get("/");
    req.extensions_mut()
        .insert(mesh_core::labels::DstService("emoji".into()));
    req.extensions_mut()
        .insert(mesh_core::route::RouteId::new("list"));
    send(&layer, svc, req).await.unwrap();
    let mut text = String::new();
    encode(&mut text, &registry).unwrap();
    assert_eq!(
        counter(
            &text,
            "retry_requests_total{service=\"emoji\",route=\"list\"}"
        ),
        1
    );
    assert!(
        text.contains("retry_budget_balance{service=\"emoji\"} 10999.0"),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn readiness_is_forwarded_and_each_retry_waits_for_it() {
    let (mock, mut handle) =
        tower_test::mock::pair::<Request<ReplayBody<BoxBody>>, Response<BoxBody>>();
    let layer = RetryLayer::new(
        RetryPolicy::default().with_backoff(Backoff::none()),
        unlimited(),
    );
    let mut svc = tower::Layer::layer(&layer, mock);

    handle.allow(0);
    let ready = std::future::poll_fn(|cx| std::task::Poll::Ready(svc.poll_ready(cx))).await;
    assert!(
        ready.is_pending(),
        "not ready while the inner service is not"
    );

    handle.allow(1);
    svc.ready().await.unwrap();
    let mut res = tokio::spawn(svc.call(get("/")));
    let (req, send) = handle.next_request().await.unwrap();
    assert!(req.headers().get(MESH_RETRY_ATTEMPT).is_none());
    send.send_response(status(503).unwrap());

    // The retry waits until the inner service is ready again.
    let waiting = tokio::time::timeout(Duration::from_secs(1), &mut res).await;
    assert!(
        waiting.is_err(),
        "no retry is sent to a service that is not ready"
    );
    handle.allow(1);
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(req.headers()[MESH_RETRY_ATTEMPT], "2");
    send.send_response(status(200).unwrap());
    assert_eq!(res.await.unwrap().unwrap().status(), 200);
}

#[tokio::test(start_paused = true)]
async fn a_request_the_mesh_refused_before_sending_is_retried_with_its_whole_body() {
    // The first attempt gets the mesh's own 503 (nowhere to send it: a
    // balancer with no endpoints fails it fast) without its body being
    // read; the second reaches the upstream.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let svc = service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        let log = log.clone();
        async move {
            if log.lock().unwrap().is_empty() {
                log.lock().unwrap().push(Bytes::new());
                return Ok::<_, BoxError>(
                    ProxyErrorKind::Unavailable
                        .response_with_reason(false, mesh_core::proxy::queue::IN_FAILFAST),
                );
            }
            let body = collect(req.into_body()).await?.to_bytes();
            log.lock().unwrap().push(body);
            status(200)
        }
    });
    let body = http_body_util::StreamBody::new(futures_util::stream::iter([
        Ok::<_, BoxError>(http_body::Frame::data(Bytes::from("part one, "))),
        Ok(http_body::Frame::data(Bytes::from("part two"))),
    ]));
    let req = Request::put("/doc")
        .body(mesh_core::body::boxed(body))
        .unwrap();
    let h = Harness::new();
    let policy = RetryPolicy::default().with_backoff(Backoff::none());
    let res = send(&h.layer(policy, unlimited()), svc, req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(h.not_retryable("streaming_response"), 0);
    assert_eq!(
        *seen.lock().unwrap(),
        [Bytes::new(), Bytes::from("part one, part two")]
    );
}

#[tokio::test(start_paused = true)]
async fn a_body_an_abandoned_attempt_still_holds_is_no_streaming_response() {
    // As hyper's HTTP/1 connection does: the attempt fails before any
    // response (here its connection resets) while the connection still
    // holds the request body it was sending, so it cannot be replayed yet.
    // The upstream never answered: that is not a streaming response.
    let held = Arc::new(Mutex::new(Vec::new()));
    let holder = held.clone();
    let svc = service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        holder.lock().unwrap().push(req.into_body());
        async {
            Err::<Response<BoxBody>, BoxError>(
                io::Error::from(io::ErrorKind::ConnectionReset).into(),
            )
        }
    });
    let body = http_body_util::StreamBody::new(futures_util::stream::iter([Ok::<_, BoxError>(
        http_body::Frame::data(Bytes::from("upload")),
    )]));
    let req = Request::put("/doc")
        .body(mesh_core::body::boxed(body))
        .unwrap();
    let h = Harness::new();
    let err = send(&h.layer(RetryPolicy::default(), unlimited()), svc, req)
        .await
        .unwrap_err();
    assert!(err.is::<io::Error>());
    assert_eq!(held.lock().unwrap().len(), 1, "not retried");
    assert_eq!(h.not_retryable("streaming_response"), 0);
    assert_eq!(h.not_retryable("body_in_use"), 1);
}

/// An upstream whose first attempt fails before any response while its
/// client still holds the request body, as hyper's does: the error comes
/// before the task that sends the body sees the reset and lets the body
/// go, 10 ms later here. Later attempts read the body and answer 200. It
/// keeps each body it read (the first as empty).
#[allow(clippy::type_complexity)]
fn releases_the_body_late() -> (
    impl Service<
        Request<ReplayBody<BoxBody>>,
        Response = Response<BoxBody>,
        Error = BoxError,
        Future = impl Send,
    > + Clone,
    Arc<Mutex<Vec<Bytes>>>,
) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let svc = service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        let log = log.clone();
        async move {
            if log.lock().unwrap().is_empty() {
                log.lock().unwrap().push(Bytes::new());
                let body = req.into_body();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    drop(body);
                });
                return Err::<Response<BoxBody>, BoxError>(
                    io::Error::from(io::ErrorKind::ConnectionReset).into(),
                );
            }
            let body = collect(req.into_body()).await?.to_bytes();
            log.lock().unwrap().push(body);
            status(200)
        }
    });
    (svc, seen)
}

fn two_part_put() -> Request<BoxBody> {
    let body = http_body_util::StreamBody::new(futures_util::stream::iter([
        Ok::<_, BoxError>(http_body::Frame::data(Bytes::from("part one, "))),
        Ok(http_body::Frame::data(Bytes::from("part two"))),
    ]));
    Request::put("/doc")
        .body(mesh_core::body::boxed(body))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_body_released_after_the_failure_is_replayed_by_the_retry() {
    let (svc, seen) = releases_the_body_late();
    let h = Harness::new();
    let policy = RetryPolicy::default().with_backoff(Backoff::none());
    let res = send(&h.layer(policy, unlimited()), svc, two_part_put()).await;
    assert_eq!(res.unwrap().status(), 200);
    assert_eq!(h.not_retryable("body_in_use"), 0);
    assert_eq!(
        *seen.lock().unwrap(),
        [Bytes::new(), Bytes::from("part one, part two")]
    );
}

#[tokio::test(start_paused = true)]
async fn the_route_stack_waits_for_a_body_released_after_the_failure_too() {
    let (svc, seen) = releases_the_body_late();
    let h = Harness::new();
    let policy = RetryPolicy::default().with_backoff(Backoff::none());
    let stack = crate::RouteStackLayer::new(policy, crate::Timeouts::default(), unlimited())
        .with_metrics(h.metrics.route("svc", "route"));
    let res = tower::Layer::layer(&stack, svc)
        .oneshot(two_part_put())
        .await;
    assert_eq!(res.unwrap().status(), 200);
    assert_eq!(h.not_retryable("body_in_use"), 0);
    assert_eq!(
        *seen.lock().unwrap(),
        [Bytes::new(), Bytes::from("part one, part two")]
    );
}
