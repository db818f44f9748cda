//! A request to a port no Server covers is counted under the default
//! server of that port, the application's, in the golden families and the
//! authorization families alike, as linkerd2-proxy labels every server's
//! series with the port the connection came to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::Request;
use support::*;

#[tokio::test]
async fn the_default_servers_series_carry_the_applications_port() {
    let app = ok_app(false).await;
    let sidecar = plain_inbound(app);
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
    let port = app.port();
    let server = format!(
        "srv_group=\"\",srv_kind=\"default\",srv_name=\"all-unauthenticated\",srv_port=\"{port}\","
    );
    for family in [
        "request_total{direction=\"inbound\"",
        "inbound_http_authz_allow_total{",
    ] {
        let line = text
            .lines()
            .find(|l| {
                l.starts_with(family)
                    && l.contains("route_name=\"default\"")
                    && l.contains("tls=\"no_identity\"")
            })
            .unwrap_or_else(|| panic!("no {family} in {text}"));
        assert!(line.contains(&server), "{line}");
        assert!(line.ends_with(" 1"), "{line}");
    }
    // The golden series' target is that port too, so the two agree.
    let golden = text
        .lines()
        .find(|l| l.starts_with("request_total{direction=\"inbound\""))
        .unwrap();
    assert!(
        golden.contains(&format!("target_port=\"{port}\"")),
        "{golden}"
    );
    assert!(
        !text.contains(&format!("srv_port=\"{}\"", inbound.port())),
        "{text}"
    );
    stop(sidecar).await;
}
