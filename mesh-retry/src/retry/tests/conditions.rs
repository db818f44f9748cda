//! Which outcomes are retried, and what the caller gets.

use super::*;

#[tokio::test(start_paused = true)]
async fn a_5xx_is_retried_until_it_succeeds() {
    let h = Harness::new();
    let (svc, seen) = upstream(|i| if i < 2 { status(503) } else { status(200) });
    let res = send(&h.layer(RetryPolicy::default(), unlimited()), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = seen.lock().unwrap();
    let attempts: Vec<_> = seen
        .iter()
        .map(|s| s.headers.get(MESH_RETRY_ATTEMPT).cloned())
        .collect();
    assert_eq!(
        attempts,
        [None, Some("2".parse().unwrap()), Some("3".parse().unwrap())]
    );
    assert_eq!(h.count("retry_requests_total"), 2);
    assert_eq!(h.count("retry_successes_total"), 1);
}

#[tokio::test(start_paused = true)]
async fn the_caller_gets_the_last_real_response_when_attempts_run_out() {
    let h = Harness::new();
    let (svc, seen) = upstream(|i| {
        let mut res = status(500)?;
        res.headers_mut().insert("x-attempt", i.into());
        Ok(res)
    });
    let res = send(&h.layer(RetryPolicy::default(), unlimited()), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(res.status(), 500);
    assert_eq!(
        res.headers()["x-attempt"],
        "2",
        "the third attempt's own response"
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(h.count("retry_limit_exceeded_total"), 1);
    assert_eq!(h.count("retry_successes_total"), 0);
}

#[tokio::test(start_paused = true)]
async fn successes_and_client_errors_are_not_retried() {
    let h = Harness::new();
    for code in [200, 404, 429] {
        let (svc, seen) = upstream(move |_| status(code));
        let res = send(&h.layer(RetryPolicy::default(), unlimited()), svc, get("/"))
            .await
            .unwrap();
        assert_eq!(res.status(), code);
        assert_eq!(seen.lock().unwrap().len(), 1, "{code}");
    }
    assert_eq!(h.count("retry_requests_total"), 0);
}

#[tokio::test(start_paused = true)]
async fn only_the_configured_statuses_are_retried() {
    let h = Harness::new();
    let policy = RetryPolicy::default().with_http_statuses("gateway-error".parse().unwrap());
    let (svc, seen) = upstream(|_| status(500));
    send(&h.layer(policy.clone(), unlimited()), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1, "500 is not a gateway error");
    let (svc, seen) = upstream(|_| status(504));
    send(&h.layer(policy, unlimited()), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn grpc_unavailable_in_a_trailers_only_response_is_retried() {
    let h = Harness::new();
    let (svc, seen) = upstream(|i| if i == 0 { grpc("14") } else { grpc("0") });
    let req = Request::post("/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .body(full("\0\0\0\0\0"))
        .unwrap();
    // gRPC methods are POSTs: the route marks gRPC calls retryable.
    let policy = RetryPolicy::default().with_grpc_requests(true);
    let res = send(&h.layer(policy, unlimited()), svc, req).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "0");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn grpc_codes_outside_the_set_and_streamed_statuses_are_not_retried() {
    let h = Harness::new();
    let policy = RetryPolicy::default().with_any_method(true);
    for script in [grpc("5"), grpc("3")] {
        let script = Arc::new(Mutex::new(Some(script)));
        let (svc, seen) = upstream(move |_| script.lock().unwrap().take().unwrap());
        let req = Request::post("/p.S/M")
            .header("content-type", "application/grpc")
            .body(mesh_core::body::empty())
            .unwrap();
        send(&h.layer(policy.clone(), unlimited()), svc, req)
            .await
            .unwrap();
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
    // The status is in the trailers: the response has started streaming.
    let (svc, seen) = upstream(|_| {
        Ok(Response::builder()
            .header("content-type", "application/grpc")
            .body(full("data"))
            .unwrap())
    });
    let req = Request::post("/p.S/M")
        .header("content-type", "application/grpc")
        .body(mesh_core::body::empty())
        .unwrap();
    send(&h.layer(policy, unlimited()), svc, req).await.unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn connection_errors_before_a_response_are_retried() {
    let h = Harness::new();
    let (svc, seen) = upstream(|i| match i {
        0 => Err(io::Error::from(io::ErrorKind::ConnectionRefused).into()),
        1 => Ok(ProxyErrorKind::UpstreamUnreachable.response(&get("/"))),
        _ => status(200),
    });
    // Even a policy that retries no status retries these.
    let policy = RetryPolicy::default().with_http_statuses(StatusRanges::empty());
    let res = send(&h.layer(policy, unlimited()), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn other_errors_are_returned_at_once() {
    let h = Harness::new();
    let (svc, seen) = upstream(|_| Err(io::Error::other("bug").into()));
    let err = send(&h.layer(RetryPolicy::default(), unlimited()), svc, get("/"))
        .await
        .unwrap_err();
    assert!(err.is::<io::Error>());
    assert_eq!(seen.lock().unwrap().len(), 1);
    let (svc, seen) = upstream(|_| Err(io::Error::from(io::ErrorKind::ConnectionReset).into()));
    let policy = RetryPolicy::default().with_connection_errors(false);
    send(&h.layer(policy, unlimited()), svc, get("/"))
        .await
        .unwrap_err();
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retried_grpc_call_answered_with_a_stream_counts_as_a_success() {
    let h = Harness::new();
    // The usual successful gRPC response: a message, and its status in the
    // trailers, unknown when the retry layer hands the response on.
    let (svc, seen) = upstream(|i| {
        if i == 0 {
            return grpc("14");
        }
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "0".parse().unwrap());
        let body = http_body_util::StreamBody::new(futures_util::stream::iter([
            Ok::<_, BoxError>(http_body::Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
            Ok(http_body::Frame::trailers(trailers)),
        ]));
        Ok(Response::builder()
            .header("content-type", "application/grpc")
            .body(mesh_core::body::boxed(body))
            .unwrap())
    });
    let req = Request::post("/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .body(full("\0\0\0\0\0"))
        .unwrap();
    let policy = RetryPolicy::default().with_grpc_requests(true);
    let res = send(&h.layer(policy, unlimited()), svc, req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(h.count("retry_requests_total"), 1);
    assert_eq!(h.count("retry_successes_total"), 1);
}

/// A gRPC call the default retry policy sends once more after an
/// `UNAVAILABLE`, whose retry is answered `code`, which reaches the caller.
async fn unavailable_then(code: &'static str) -> Harness {
    let h = Harness::new();
    let (svc, _) = upstream(move |i| if i == 0 { grpc("14") } else { grpc(code) });
    let req = Request::post("/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .body(full("\0\0\0\0\0"))
        .unwrap();
    let policy = RetryPolicy::default().with_grpc_requests(true);
    let res = send(&h.layer(policy, unlimited()), svc, req).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], code);
    h
}

#[tokio::test(start_paused = true)]
async fn a_retry_answered_with_a_failure_it_does_not_retry_is_no_success() {
    // PERMISSION_DENIED: a failure by the default classifier (Linkerd's
    // codes), which the default retry codes leave alone.
    let h = unavailable_then("7").await;
    assert_eq!(h.count("retry_requests_total"), 1);
    assert_eq!(
        h.count("retry_successes_total"),
        0,
        "PERMISSION_DENIED failed"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retry_answered_unimplemented_is_a_success_as_linkerd_counts_it() {
    // UNIMPLEMENTED is no failure in Linkerd's default codes, so the retry
    // that got it succeeded, as the metrics count its response.
    let h = unavailable_then("12").await;
    assert_eq!(h.count("retry_requests_total"), 1);
    assert_eq!(h.count("retry_successes_total"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_retried_grpc_call_answered_by_a_page_that_is_not_grpc_is_no_success() {
    // A `200` that is not gRPC fails the gRPC client that made the call
    // (UNKNOWN), so the retry that got it did not succeed.
    let h = Harness::new();
    let (svc, _) = upstream(|i| {
        if i == 0 {
            return grpc("14");
        }
        let mut res = status(200)?;
        res.headers_mut()
            .insert("content-type", "text/html".parse().unwrap());
        Ok(res)
    });
    let req = Request::post("/pkg.Svc/Method")
        .header("content-type", "application/grpc")
        .body(full("\0\0\0\0\0"))
        .unwrap();
    let policy = RetryPolicy::default().with_grpc_requests(true);
    let res = send(&h.layer(policy, unlimited()), svc, req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(h.count("retry_requests_total"), 1);
    assert_eq!(h.count("retry_successes_total"), 0, "not a gRPC answer");
}
