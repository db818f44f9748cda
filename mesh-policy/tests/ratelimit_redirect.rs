//! A rule that redirects answers its redirect without consulting or
//! spending the Server's rate limit, as linkerd2-proxy applies a route's
//! filters before it checks the limit (`HttpPolicyService::call` in its
//! `app/inbound/src/policy/http.rs`). Over a real connection, on tokio's
//! paused clock: the limit cannot refill unless the test moves the clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use hyper::{body::Incoming, client::conn::http1::SendRequest};
use hyper_util::rt::TokioIo;
use mesh_core::{
    body::{BoxBody, full},
    error::MESH_ERROR,
    serve::{Server, ServerConfig, shutdown},
};
use mesh_policy::{
    ApplyFiltersLayer, AuthorizeLayer, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore,
    Workload,
};
use prometheus_client::registry::Registry;
use tokio::{
    net::{TcpListener, TcpStream},
    time::Instant,
};
use tower::{ServiceBuilder, service_fn};

/// The limit, in requests per second: also the burst a full limit admits.
const RATE: usize = 5;

/// Port `port` of `web`, open to all and limited to [`RATE`] requests a
/// second in total; `/old` moved to `/new`, everything else served. With
/// `deny`, the Server denies every request instead.
fn policy(port: u16, access: &str) -> String {
    format!(
        r#"
apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{ name: web }}
spec:
  podSelector: {{ matchLabels: {{ app: web }} }}
  port: {port}
  accessPolicy: {access}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{ name: site }}
spec:
  parentRefs: [{{ group: policy.linkerd.io, kind: Server, name: web }}]
  rules:
    - matches: [{{ path: {{ type: PathPrefix, value: /old }} }}]
      filters:
        - type: RequestRedirect
          requestRedirect: {{ path: {{ type: ReplacePrefixMatch, replacePrefixMatch: /new }} }}
    - matches: [{{ path: {{ type: PathPrefix, value: / }} }}]
---
apiVersion: policy.linkerd.io/v1alpha1
kind: HTTPLocalRateLimitPolicy
metadata: {{ name: web-limit }}
spec:
  targetRef: {{ group: policy.linkerd.io, kind: Server, name: web }}
  total: {{ requestsPerSecond: {RATE} }}
"#
    )
}

/// Holds tokio's paused clock still until dropped. A paused clock jumps to
/// the next timer (a connection's keep-alive, say) whenever the runtime
/// waits, which would refill the limit mid-test; tokio does not advance it
/// while a blocking task runs, so one waits here for the returned sender
/// to be dropped. Time then moves only as the test moves it.
fn hold_clock() -> std::sync::mpsc::Sender<()> {
    let (release, held) = std::sync::mpsc::channel::<()>();
    tokio::task::spawn_blocking(move || {
        let _ = held.recv();
    });
    release
}

async fn backend(_req: Request<Incoming>) -> Result<Response<BoxBody>, Infallible> {
    Ok(Response::new(full("served")))
}

/// Serves `web` with `access` on a fresh port; one HTTP/1.1 connection to
/// it (refusals and redirects keep it open).
async fn serve(access: &str) -> (SendRequest<Empty<Bytes>>, shutdown::ShutdownTrigger) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let store = PolicyStore::new(
        Workload::new("default").with_label("app", "web"),
        PolicyConfig::default(),
        PolicyMetrics::register(&mut Registry::default()),
    );
    store
        .reload(&[PolicySource::new(
            "policy.yaml",
            &policy(addr.port(), access),
        )])
        .unwrap();
    let svc = ServiceBuilder::new()
        .layer(AuthorizeLayer::new(store))
        .layer(ApplyFiltersLayer::new())
        .service(service_fn(backend));
    let (trigger, signal) = shutdown::channel();
    tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, svc, signal));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    (sender, trigger)
}

async fn get(sender: &mut SendRequest<Empty<Bytes>>, path: &str) -> Response<Incoming> {
    sender.ready().await.unwrap();
    let req = Request::get(path)
        .header("host", "web")
        .body(Empty::new())
        .unwrap();
    sender.send_request(req).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn redirects_answer_past_the_limit_and_leave_its_whole_burst_to_other_requests() {
    let _clock = hold_clock();
    let (mut sender, trigger) = serve("all-unauthenticated").await;
    let start = Instant::now();

    // Twice the burst of redirects: each is answered with its redirect.
    for i in 0..2 * RATE {
        let rsp = get(&mut sender, "/old/list").await;
        assert_eq!(rsp.status(), StatusCode::FOUND, "redirect {i}");
        assert_eq!(rsp.headers()["location"], "http://web/new/list");
        assert!(!rsp.headers().contains_key(MESH_ERROR), "redirect {i}");
    }
    // They spent none of the limit: the next requests get all of it...
    for i in 0..RATE {
        let rsp = get(&mut sender, "/new/list").await;
        assert_eq!(rsp.status(), StatusCode::OK, "request {i}");
    }
    // ...and no more, so the limit is in force.
    let rsp = get(&mut sender, "/new/list").await;
    assert_eq!(rsp.status(), StatusCode::TOO_MANY_REQUESTS);
    // A redirect past the limit still gets its redirect, not the 429.
    let rsp = get(&mut sender, "/old/list").await;
    assert_eq!(rsp.status(), StatusCode::FOUND);

    // Had the paused clock moved by a request's share, the limit could have
    // refilled and this test would prove nothing.
    assert!(
        start.elapsed() < Duration::from_secs(1) / RATE as u32,
        "the clock moved {:?}",
        start.elapsed()
    );
    trigger.trigger();
}

#[tokio::test(start_paused = true)]
async fn authorization_still_comes_before_a_redirect() {
    let (mut sender, trigger) = serve("deny").await;
    let rsp = get(&mut sender, "/old/list").await;
    assert_eq!(rsp.status(), StatusCode::FORBIDDEN);
    assert!(!rsp.headers().contains_key("location"));
    assert_eq!(rsp.headers()[MESH_ERROR], "unauthorized request");
    trigger.trigger();
}
