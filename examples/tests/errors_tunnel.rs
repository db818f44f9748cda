//! A `CONNECT` the sidecar's outbound listener could not tunnel is
//! answered by the sidecar itself, outside every metrics layer, and
//! counted in `outbound_http_errors_total`, as Linkerd counts a failed
//! `CONNECT`; a tunnel that opens is not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use support::*;

/// A sidecar with the services `db` at `db` and `cache` at `cache`.
fn web(db: SocketAddr, cache: SocketAddr) -> String {
    format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: db\n      endpoints: [{db}]\n\
         \x20   - name: cache\n      endpoints: [{cache}]\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n"
    )
}

#[tokio::test]
async fn a_connect_the_sidecar_could_not_tunnel_is_counted_as_its_error() {
    let (cache, _) = tcp_echo().await;
    let running = sidecar(&web(refused_addr().await, cache));

    let (_open, head) = connect_head(running.outbound, "cache:6379").await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let metrics = scrape(running.admin).await;
    assert!(!metrics.contains("outbound_http_errors_total"), "{metrics}");

    for _ in 0..2 {
        let (_conn, head) = connect_head(running.outbound, "db:5432").await;
        assert!(head.starts_with("HTTP/1.1 502 "), "{head}");
    }
    let metrics = scrape(running.admin).await;
    assert!(
        metrics.contains("outbound_http_errors_total{error=\"i/o\"} 2\n"),
        "{metrics}"
    );
    stop(running).await;
}
