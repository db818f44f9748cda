//! Every response the inbound side sends is counted, the `400`s it
//! answers itself included: Linkerd's `response_total` counts each
//! response its proxy writes, and a dashboard's request and success
//! rates must not lose the requests it refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use support::*;

/// The value of the inbound series of `family` whose labels hold every
/// one of `labels`, summed; 0 when there is none.
fn inbound_sum(text: &str, family: &str, labels: &[&str]) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")))
        .filter(|l| l.contains("direction=\"inbound\""))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}

#[tokio::test]
async fn requests_answered_400_by_the_sidecar_are_counted() {
    let (app, _) = backend().await;
    let sidecar = plain_inbound(app);
    let inbound = sidecar.inbound[0];
    let admin = sidecar.admin;

    // Two `Host` headers, a `Host` that is no host, a path that does not
    // decode: each is refused before the application sees it.
    for request in [
        "GET / HTTP/1.1\r\nhost: a.example\r\nhost: b.example\r\nconnection: close\r\n\r\n",
        "GET / HTTP/1.1\r\nhost: user@a.example\r\nconnection: close\r\n\r\n",
        "GET /a%zzb HTTP/1.1\r\nhost: a.example\r\nconnection: close\r\n\r\n",
    ] {
        let answer = raw_exchange(inbound, request).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{request:?}: {answer}");
    }
    // And one the application answers, to compare.
    let answer = raw_exchange(
        inbound,
        "GET / HTTP/1.1\r\nhost: a.example\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let text = scrape(admin).await;
    let refused = inbound_sum(
        &text,
        "response_total",
        &["status_code=\"400\"", "error=\"invalid_request\""],
    );
    assert_eq!(refused, 3, "{text}");
    assert_eq!(inbound_sum(&text, "response_total", &[]), 4, "{text}");
    assert_eq!(inbound_sum(&text, "request_total", &[]), 4, "{text}");
    stop(sidecar).await;
}

/// A gRPC caller refused for its `Host` is counted as the failure its
/// client reads: `grpc_status="13"`.
#[tokio::test]
async fn a_grpc_call_refused_for_its_host_is_counted_as_a_failure() {
    let (app, _) = backend().await;
    let sidecar = plain_inbound(app);
    let inbound = sidecar.inbound[0];
    let admin = sidecar.admin;
    let req = http::Request::post(format!("http://{inbound}/pkg.Svc/Method"))
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("host", "public.example, admin.example")
        .body(full(""))
        .unwrap();
    let res = h2_via(inbound, req).await.unwrap();
    assert_eq!(res.headers()["grpc-status"], "13");
    drop(body_bytes(res).await);

    let text = scrape(admin).await;
    let failed = inbound_sum(
        &text,
        "response_total",
        &[
            "grpc_status=\"13\"",
            "classification=\"failure\"",
            "error=\"invalid_request\"",
        ],
    );
    assert_eq!(failed, 1, "{text}");
    stop(sidecar).await;
}
