//! A gRPC caller whose request the inbound side refuses for its `Host` is
//! answered in gRPC, as every other error the mesh answers it with is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::{Request, StatusCode, Version};
use support::*;

fn inbound_yaml(app: std::net::SocketAddr) -> String {
    format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n"
    )
}

#[tokio::test]
async fn an_invalid_host_is_answered_with_a_grpc_status_to_a_grpc_caller() {
    let (app, _) = backend().await;
    let sidecar = sidecar(&inbound_yaml(app));
    let inbound = sidecar.inbound[0];
    let request = |content_type: &'static str| {
        Request::post(format!("http://{inbound}/pkg.Svc/Method"))
            .version(Version::HTTP_2)
            .header("content-type", content_type)
            .header("host", "public.example, admin.example")
            .body(full(""))
            .unwrap()
    };

    let res = h2_via(inbound, request("application/grpc")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let headers = res.headers();
    assert_eq!(headers["content-type"], "application/grpc");
    // INTERNAL, as for the other requests the mesh cannot serve as sent
    // (two `Host` headers over HTTP/1, a body that breaks its framing).
    assert_eq!(headers["grpc-status"], "13");
    assert_eq!(headers["grpc-message"], "invalid host");
    assert_eq!(headers["mesh-error"], "invalid host");

    // Anyone else still gets the 400.
    let res = h2_via(inbound, request("application/json")).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()["mesh-error"], "invalid host");
    assert!(!res.headers().contains_key("grpc-status"));
    stop(sidecar).await;
}
