//! Failures the upstream did not process: retried whatever the method,
//! within everything else that bounds a retry.

use mesh_core::error::Unprocessed;

use super::*;

/// The mesh's 502 for a request the upstream did not process, as
/// mesh-core's `Forward` answers it.
fn unprocessed() -> Result<Response<BoxBody>, BoxError> {
    let mut res: Response<BoxBody> = ProxyErrorKind::UpstreamUnreachable.response_for(false);
    res.extensions_mut().insert(Unprocessed);
    Ok(res)
}

/// The mesh's 502 for a connection that broke: the upstream may have
/// processed the request.
fn unreachable() -> Result<Response<BoxBody>, BoxError> {
    Ok(ProxyErrorKind::UpstreamUnreachable.response_for(false))
}

fn order() -> Request<BoxBody> {
    Request::post("/orders").body(full("one order")).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_post_the_upstream_did_not_process_is_sent_again_whole() {
    let h = Harness::new();
    let (svc, seen) = upstream(|i| if i == 0 { unprocessed() } else { status(201) });
    let res = send(&h.layer(RetryPolicy::default(), unlimited()), svc, order())
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|s| s.method == Method::POST && s.body == "one order")
    );
    assert_eq!(seen[1].headers[MESH_RETRY_ATTEMPT], "2");
    assert_eq!(h.count("retry_requests_total"), 1);
    assert_eq!(h.count("retry_successes_total"), 1);
    assert_eq!(h.not_retryable("non_idempotent"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_grpc_call_the_upstream_did_not_process_is_sent_again() {
    let h = Harness::new();
    let (svc, seen) = upstream(|i| if i == 0 { unprocessed() } else { grpc("0") });
    let call = Request::post("/p.S/M")
        .header("content-type", "application/grpc")
        .body(full("\0\0\0\0\x01x"))
        .unwrap();
    let res = send(&h.layer(RetryPolicy::default(), unlimited()), svc, call)
        .await
        .unwrap();
    assert_eq!(res.headers()["grpc-status"], "0");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].body, &b"\0\0\0\0\x01x"[..]);
}

#[tokio::test(start_paused = true)]
async fn a_post_whose_connection_broke_or_that_failed_is_not_sent_again() {
    let h = Harness::new();
    for (answer, name) in [
        (unreachable as fn() -> _, "a broken connection"),
        (|| status(503), "a 503"),
    ] {
        let (svc, seen) = upstream(move |_| answer());
        send(&h.layer(RetryPolicy::default(), unlimited()), svc, order())
            .await
            .unwrap();
        assert_eq!(seen.lock().unwrap().len(), 1, "{name}");
    }
    assert_eq!(h.not_retryable("non_idempotent"), 2);
    assert_eq!(h.count("retry_requests_total"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_request_hyper_canceled_before_sending_it_is_sent_again() {
    let h = Harness::new();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let svc = service_fn(move |req: Request<ReplayBody<BoxBody>>| {
        let n = counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        async move {
            let body = collect(req.into_body()).await?.to_bytes();
            assert_eq!(body, "one order");
            if n > 0 {
                return status(201);
            }
            // A connection that went before the request was written to
            // it: hyper cancels the request.
            let (io, _peer) = tokio::io::duplex(1024);
            let (mut send, conn) = hyper::client::conn::http1::handshake::<_, BoxBody>(
                hyper_util::rt::TokioIo::new(io),
            )
            .await?;
            drop(conn);
            let canceled = send.send_request(Request::new(full(""))).await.unwrap_err();
            assert!(canceled.is_canceled());
            Err(BoxError::from(canceled))
        }
    });
    let res = send(
        &h.layer(RetryPolicy::default(), unlimited()),
        BoxCloneService::new(svc),
        order(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[tokio::test(start_paused = true)]
async fn the_option_off_or_a_policy_that_never_retries_sends_a_post_once() {
    let h = Harness::new();
    let (svc, seen) = upstream(|_| unprocessed());
    let off = RetryPolicy::default().with_unprocessed(false);
    let res = send(&h.layer(off, unlimited()), svc, order())
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(h.not_retryable("non_idempotent"), 1);

    let (svc, seen) = upstream(|_| unprocessed());
    send(&h.layer(RetryPolicy::never(), unlimited()), svc, order())
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    // A policy that never retries counts nothing.
    assert_eq!(h.not_retryable("non_idempotent"), 1);
    assert_eq!(h.count("retry_limit_exceeded_total"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_get_is_sent_again_even_where_connection_errors_are_not() {
    let h = Harness::new();
    let policy = RetryPolicy::default().with_connection_errors(false);
    let (svc, seen) = upstream(|i| if i == 0 { unprocessed() } else { status(200) });
    send(&h.layer(policy.clone(), unlimited()), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 2);
    let (svc, seen) = upstream(|i| if i == 0 { unreachable() } else { status(200) });
    send(&h.layer(policy, unlimited()), svc, get("/"))
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn attempts_and_the_budget_bound_it_as_any_retry() {
    let h = Harness::new();
    let (svc, seen) = upstream(|_| unprocessed());
    let res = send(&h.layer(RetryPolicy::default(), unlimited()), svc, order())
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(seen.lock().unwrap().len(), 3);
    assert_eq!(h.count("retry_limit_exceeded_total"), 1);

    let empty = Arc::new(Budget::new(
        BudgetConfig::new(0.0, 0, Duration::from_secs(10)).unwrap(),
    ));
    let (svc, seen) = upstream(|_| unprocessed());
    send(&h.layer(RetryPolicy::default(), empty), svc, order())
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(h.count("retry_budget_exhausted_total"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_post_too_large_to_replay_is_not_sent_again_and_says_why() {
    let h = Harness::new();
    let policy = RetryPolicy::default().with_max_replay_bytes(4);
    let (svc, seen) = upstream(|_| unprocessed());
    send(&h.layer(policy.clone(), unlimited()), svc, order())
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(h.not_retryable("body_too_large"), 1);
    // Any other failure of a POST is one for its method, as before.
    let (svc, _) = upstream(|_| status(503));
    send(&h.layer(policy, unlimited()), svc, order())
        .await
        .unwrap();
    assert_eq!(h.not_retryable("body_too_large"), 1);
    assert_eq!(h.not_retryable("non_idempotent"), 1);
}
