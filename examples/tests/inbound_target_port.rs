//! The inbound golden metrics' `target_*` labels name the application's
//! port, as Linkerd's name the original destination's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::Request;
use support::*;

#[tokio::test]
async fn inbound_requests_are_labelled_with_the_applications_port() {
    // Servers are matched against the application's port, and Linkerd's
    // `target_port` is that port (its original destination), so
    // `linkerd viz stat-inbound` shows one row per application port. The
    // listener's own port would label every application behind it alike.
    let app = ok_app(false).await;
    let sidecar = sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ));
    let inbound = sidecar.inbound[0];
    let res = http1()
        .request(
            Request::get(format!("http://{inbound}/"))
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    body_bytes(res).await;
    let text = scrape(sidecar.admin).await;
    let line = text
        .lines()
        .find(|l| l.starts_with("request_total{direction=\"inbound\""))
        .unwrap_or_else(|| panic!("no inbound request_total in {text}"));
    let port = app.port();
    assert!(
        line.contains(&format!(
            "target_addr=\"127.0.0.1:{port}\",target_ip=\"127.0.0.1\",target_port=\"{port}\""
        )),
        "{line}"
    );
    assert!(!line.contains(&format!(":{}\"", inbound.port())), "{line}");
    stop(sidecar).await;
}
