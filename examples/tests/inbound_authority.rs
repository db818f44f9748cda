//! The host an inbound request is authorized for is the host the
//! application is given. An HTTP/2 request names its host twice, in
//! `:authority` and `Host`; between two sidecars the `:authority` names
//! the endpoint and `Host` what the client asked for, and it is `Host`
//! that reaches the application.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::net::SocketAddr;

use http::{Request, Response, StatusCode};
use support::*;

/// `emoji`'s port: `public.example` for anyone on loopback, and
/// `admin.example` only from `10.0.0.0/8`.
const POLICY: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {name: emoji-http, namespace: emojivoto}
spec:
  podSelector: {matchLabels: {app: emoji}}
  port: http
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: public, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: emoji-http}]
  hostnames: [public.example]
  rules: [{matches: [{path: {type: PathPrefix, value: /}}]}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: admin, namespace: emojivoto}
spec:
  parentRefs: [{group: policy.linkerd.io, kind: Server, name: emoji-http}]
  hostnames: [admin.example]
  rules: [{matches: [{path: {type: PathPrefix, value: /}}]}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: loopback, namespace: emojivoto}
spec:
  networks: [{cidr: 127.0.0.0/8}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: NetworkAuthentication
metadata: {name: cluster, namespace: emojivoto}
spec:
  networks: [{cidr: 10.0.0.0/8}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: public-from-loopback, namespace: emojivoto}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: public}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: NetworkAuthentication, name: loopback}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: admin-from-cluster, namespace: emojivoto}
spec:
  targetRef: {group: gateway.networking.k8s.io, kind: HTTPRoute, name: admin}
  requiredAuthenticationRefs:
  - {group: policy.linkerd.io, kind: NetworkAuthentication, name: cluster}
";

/// An application that answers with the host it was asked for: its
/// `Host` headers, or over HTTP/2, where the sidecar sends the host as
/// `:authority` alone, that.
async fn app() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    serve(listener, |req: Request<hyper::body::Incoming>| async move {
        let hosts: Vec<_> = req
            .headers()
            .get_all("host")
            .iter()
            .map(|h| h.to_str().unwrap().to_owned())
            .collect();
        let host = match &hosts[..] {
            [] => req.uri().authority().map(|a| a.as_str().to_owned()),
            [one] => Some(one.clone()),
            _ => Some(hosts.join(" | ")),
        };
        Ok(Response::new(full(format!("{host:?}"))))
    });
    addr
}

#[tokio::test]
async fn an_http_2_request_is_authorized_for_the_host_the_application_gets() {
    let app = app().await;
    let (_dir, sidecar) = emoji_inbound(app, POLICY);
    let inbound = sidecar.inbound[0];
    let send = |authority: &str, host: Option<&str>| {
        let mut req = Request::get(format!("http://{authority}/"));
        if let Some(host) = host {
            req = req.header("host", host);
        }
        h2_via(inbound, req.body(full("")).unwrap())
    };
    let text = |res: Response<hyper::body::Incoming>| async move {
        (
            res.status(),
            String::from_utf8(body_bytes(res).await.to_vec()).unwrap(),
        )
    };

    let res = send("public.example", None).await.unwrap();
    assert_eq!(
        text(res).await,
        (StatusCode::OK, "Some(\"public.example\")".into())
    );
    let res = send("admin.example", None).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // A `Host` that disagrees with the `:authority` is what the
    // application would be given: it is what is authorized.
    let res = send("public.example", Some("admin.example")).await.unwrap();
    let (status, body) = text(res).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the app got {body}");
    // As the peer sidecar sends a request: the `:authority` is the
    // endpoint, `Host` the service.
    let res = send(&inbound.to_string(), Some("public.example"))
        .await
        .unwrap();
    assert_eq!(
        text(res).await,
        (StatusCode::OK, "Some(\"public.example\")".into())
    );
    stop(sidecar).await;
}

/// The raw answer to `GET /` sent over HTTP/1.1 to `addr` with the header
/// lines `headers` (each ending in CRLF), the way no HTTP client would.
async fn get_over_http1(addr: SocketAddr, headers: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET / HTTP/1.1\r\n{headers}connection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    answer
}

/// Two `Host` headers, or one that is not a host and port: authorization
/// would read the first, the application maybe the last. `400`, as
/// RFC 9112 §3.2 has a server answer, and the application sees nothing.
#[tokio::test]
async fn a_repeated_or_malformed_host_is_a_bad_request() {
    let app = app().await;
    let (_dir, sidecar) = emoji_inbound(app, POLICY);
    for hosts in [
        "host: public.example\r\nhost: admin.example\r\n",
        "host: public.example, admin.example\r\n",
        "host: x@public.example\r\n",
    ] {
        let answer = get_over_http1(sidecar.inbound[0], hosts).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{hosts}: {answer}");
        assert!(
            answer.contains("mesh-error: invalid host"),
            "{hosts}: {answer}"
        );
    }
    let h2 = Request::get("http://public.example/")
        .header("host", "public.example")
        .header("host", "admin.example")
        .body(full(""))
        .unwrap();
    let res = h2_via(sidecar.inbound[0], h2).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    stop(sidecar).await;
}

/// A comma joins two hosts into one value even without a space, and a
/// signed port is no port: `400`, though `http::uri::Authority` would
/// take either, and the application sees nothing.
#[tokio::test]
async fn a_comma_joined_host_or_a_signed_port_is_a_bad_request() {
    let app = app().await;
    let (_dir, sidecar) = emoji_inbound(app, POLICY);
    for host in ["public.example,admin.example", "public.example:+80"] {
        let answer = get_over_http1(sidecar.inbound[0], &format!("host: {host}\r\n")).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{host}: {answer}");
        assert!(
            answer.contains("mesh-error: invalid host"),
            "{host}: {answer}"
        );
    }
    let h2 = Request::get("http://public.example/")
        .header("host", "public.example,admin.example")
        .body(full(""))
        .unwrap();
    let res = h2_via(sidecar.inbound[0], h2).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    stop(sidecar).await;
}
