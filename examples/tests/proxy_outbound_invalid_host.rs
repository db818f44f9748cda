//! The outbound side refuses a request whose `Host` names no one
//! authority as the inbound side does: a gRPC caller in gRPC, and every
//! refusal counted as the mesh's own answer (`error="invalid_request"`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::{Request, StatusCode, Version};
use support::*;

fn outbound_yaml(endpoint: std::net::SocketAddr) -> String {
    format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{endpoint}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    )
}

#[tokio::test]
async fn a_host_with_userinfo_is_refused_in_grpc_to_a_grpc_caller_and_counted() {
    let (app, _) = backend().await;
    let sidecar = sidecar(&outbound_yaml(app));
    let outbound = sidecar.outbound;
    let request = |content_type: &'static str| {
        Request::post("http://emoji/pkg.Svc/Method")
            .version(Version::HTTP_2)
            .header("content-type", content_type)
            .header("host", "voting@emoji")
            .body(full(""))
            .unwrap()
    };

    let res = h2_via(outbound, request("application/grpc")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let headers = res.headers().clone();
    drop(body_bytes(res).await);
    assert_eq!(headers["content-type"], "application/grpc");
    assert_eq!(headers["grpc-status"], "13");
    assert_eq!(headers["grpc-message"], "invalid host");
    assert_eq!(headers["mesh-error"], "invalid host");

    let res = h2_via(outbound, request("application/json")).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["mesh-error"], "invalid host");
    assert!(!res.headers().contains_key("grpc-status"));
    drop(body_bytes(res).await);

    let text = scrape(sidecar.admin).await;
    let refused: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("response_total{direction=\"outbound\""))
        .filter(|l| l.contains("error=\"invalid_request\""))
        .collect();
    assert_eq!(refused.len(), 2, "{text}");
    assert!(
        refused
            .iter()
            .any(|l| l.contains("grpc_status=\"13\"") && l.contains("classification=\"failure\"")),
        "{refused:?}"
    );
    assert!(
        refused
            .iter()
            .any(|l| l.contains("status_code=\"400\"") && l.ends_with(" 1")),
        "{refused:?}"
    );
    stop(sidecar).await;
}
