//! `inbound_http_errors_total` and `outbound_http_errors_total`, as
//! linkerd2-proxy writes them: a request the sidecar answered itself for
//! an error of its own is counted once, under Linkerd's `error` value
//! (`i/o` for an application or endpoint that refused the connection),
//! inbound with the target and the Server, outbound with the error alone.
//! A response of the application's, a `500` included, is not, and while
//! none failed the families are not written at all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use support::*;

const CLOSE: &str = "connection: close\r\n\r\n";

/// The `target_*` labels of `addr`, as Linkerd writes them.
fn target(addr: SocketAddr) -> String {
    format!(
        "target_addr=\"{addr}\",target_ip=\"{}\",target_port=\"{}\"",
        addr.ip(),
        addr.port()
    )
}

#[tokio::test]
async fn inbound_errors_are_the_sidecars_answers_with_the_target_and_server() {
    let app = ok_app(false).await;
    let sidecar = plain_inbound(app);
    let answer = raw_exchange(
        sidecar.inbound[0],
        &format!("GET / HTTP/1.1\r\nhost: emoji\r\n{CLOSE}"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let metrics = scrape(sidecar.admin).await;
    assert!(!metrics.contains("_http_errors_total"), "{metrics}");
    stop(sidecar).await;

    let app = refused_addr().await;
    let sidecar = plain_inbound(app);
    let inbound = sidecar.inbound[0];
    for _ in 0..2 {
        let answer = raw_exchange(
            inbound,
            &format!("GET / HTTP/1.1\r\nhost: emoji\r\n{CLOSE}"),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    }
    // Refused before authorization: no Server to name.
    let answer = raw_exchange(
        inbound,
        &format!("GET /a%zzb HTTP/1.1\r\nhost: emoji\r\n{CLOSE}"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");

    let metrics = scrape(sidecar.admin).await;
    let target = target(SocketAddr::new(inbound.ip(), app.port()));
    let unreachable = format!(
        "inbound_http_errors_total{{error=\"i/o\",{target},srv_group=\"\",srv_kind=\"default\",\
         srv_name=\"all-unauthenticated\",srv_port=\"{}\"}} 2\n",
        app.port()
    );
    assert!(
        metrics.contains(&unreachable),
        "no {unreachable} in {metrics}"
    );
    let invalid = format!("inbound_http_errors_total{{error=\"invalid request\",{target}}} 1\n");
    assert!(metrics.contains(&invalid), "no {invalid} in {metrics}");
    assert_eq!(
        series(&metrics, "inbound_http_errors_total", &[]),
        3,
        "{metrics}"
    );
    assert!(
        metrics.contains("# TYPE inbound_http_errors_total counter\n"),
        "{metrics}"
    );
    assert!(!metrics.contains("outbound_http_errors_total"), "{metrics}");
    stop(sidecar).await;
}

#[tokio::test]
async fn outbound_errors_carry_the_error_alone() {
    let app = ok_app(true).await;
    let endpoint = refused_addr().await;
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{app}]\n\
         \x20   - name: voting\n      endpoints: [{endpoint}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ));
    let outbound = sidecar.outbound;

    // The application's answers, its 500 included, are its own.
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let answer = raw_exchange(
            outbound,
            &format!("GET / HTTP/1.1\r\nhost: emoji\r\n{CLOSE}"),
        )
        .await;
        statuses.push(answer.get(9..12).unwrap_or_default().to_owned());
    }
    assert!(statuses.iter().any(|s| s == "500"), "{statuses:?}");
    let metrics = scrape(sidecar.admin).await;
    assert!(!metrics.contains("_http_errors_total"), "{metrics}");

    let answer = raw_exchange(
        outbound,
        &format!("GET / HTTP/1.1\r\nhost: voting\r\n{CLOSE}"),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    let metrics = scrape(sidecar.admin).await;
    assert!(
        metrics.contains("outbound_http_errors_total{error=\"i/o\"} 1\n"),
        "{metrics}"
    );
    assert_eq!(
        series(&metrics, "outbound_http_errors_total", &[]),
        1,
        "{metrics}"
    );
    assert!(!metrics.contains("inbound_http_errors_total"), "{metrics}");
    stop(sidecar).await;
}
