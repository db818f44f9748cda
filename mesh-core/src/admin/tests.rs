#![allow(clippy::unwrap_used)]

use std::{
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use prometheus_client::registry::Registry;
use tower::{ServiceExt, service_fn};

use super::{Admin, Readiness};
use crate::body::{self, BoxBody};

/// An extension that echoes the method, path and body it got, and counts
/// its calls.
fn echo(calls: Arc<AtomicUsize>) -> Admin {
    let extension = service_fn(move |req: Request<BoxBody>| {
        calls.fetch_add(1, Ordering::Relaxed);
        async move {
            let head = format!("{} {} ", req.method(), req.uri().path());
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let mut res = Response::new(body::full(format!(
                "{head}{}",
                String::from_utf8_lossy(&body)
            )));
            *res.status_mut() = StatusCode::ACCEPTED;
            Ok::<_, Infallible>(res)
        }
    });
    Admin::new(Registry::default(), Readiness::new()).with_extension(extension)
}

async fn send(
    admin: &Admin,
    method: Method,
    path: &str,
    body: &'static str,
) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Full::new(bytes::Bytes::from_static(body.as_bytes())))
        .unwrap();
    let res = admin.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn admin_hands_unknown_paths_to_its_extension_with_the_body() {
    let calls = Arc::new(AtomicUsize::new(0));
    let admin = echo(calls.clone());
    assert_eq!(
        send(&admin, Method::GET, "/dashboard", "").await,
        (StatusCode::ACCEPTED, "GET /dashboard ".to_owned())
    );
    assert_eq!(
        send(&admin, Method::PUT, "/log-level", "debug").await,
        (StatusCode::ACCEPTED, "PUT /log-level debug".to_owned())
    );
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn admin_keeps_its_own_paths_from_the_extension() {
    let calls = Arc::new(AtomicUsize::new(0));
    let admin = echo(calls.clone());
    assert_eq!(
        send(&admin, Method::GET, "/live", "").await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&admin, Method::GET, "/ready", "").await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&admin, Method::GET, "/metrics", "").await.0,
        StatusCode::OK
    );
    // A wrong method on a known path is the admin's answer, not the
    // extension's, and so is a shutdown that was never enabled.
    assert_eq!(
        send(&admin, Method::DELETE, "/metrics", "").await.0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        send(&admin, Method::POST, "/shutdown", "").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(calls.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn admin_without_an_extension_answers_404() {
    let admin = Admin::new(Registry::default(), Readiness::new());
    let req = Request::get("/dashboard")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = admin.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// An extension that refuses to be called unless this very clone was
/// polled ready, as a service with a concurrency permit would.
#[derive(Debug, Default)]
struct NeedsReady {
    ready: bool,
}

impl Clone for NeedsReady {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl tower::Service<Request<BoxBody>> for NeedsReady {
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<BoxBody>, Infallible>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        self.ready = true;
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<BoxBody>) -> Self::Future {
        let status = if std::mem::take(&mut self.ready) {
            StatusCode::OK
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        let mut res = Response::new(body::empty());
        *res.status_mut() = status;
        std::future::ready(Ok(res))
    }
}

#[tokio::test]
async fn admin_polls_its_extension_ready_before_calling_it() {
    let admin =
        Admin::new(Registry::default(), Readiness::new()).with_extension(NeedsReady::default());
    assert_eq!(send(&admin, Method::GET, "/x", "").await.0, StatusCode::OK);
    assert_eq!(send(&admin, Method::GET, "/y", "").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_method_is_answered_405_with_the_methods_allowed() {
    // RFC 9110 §15.5.6: a 405 must say, in `Allow`, what would be served.
    #[derive(Debug)]
    struct Fixed;
    impl super::LogLevel for Fixed {
        fn get(&self) -> String {
            "info".into()
        }
        fn set(&self, _: &str) -> Result<(), String> {
            Ok(())
        }
    }
    let admin = Admin::new(Registry::default(), Readiness::new())
        .with_log_level(Arc::new(Fixed))
        .with_env(super::Environment::fixed([("A", "b")]));
    for (method, path, allow) in [
        (Method::POST, "/live", "GET, HEAD"),
        (Method::PUT, "/ready", "GET, HEAD"),
        (Method::DELETE, "/metrics", "GET, HEAD"),
        (Method::GET, "/shutdown", "POST"),
        (Method::POST, "/proxy-log-level", "GET, HEAD, PUT"),
        (Method::POST, "/env.json", "GET, HEAD"),
    ] {
        let mut req = Request::builder()
            .method(method.clone())
            .uri(path)
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        req.extensions_mut()
            .insert(crate::conn::ConnectionInfo::plaintext(
                "127.0.0.1:4191".parse().unwrap(),
                "127.0.0.1:5555".parse().unwrap(),
            ));
        let res = admin.clone().oneshot(req).await.unwrap();
        assert_eq!(
            res.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(
            res.headers()
                .get(http::header::ALLOW)
                .map(|v| v.to_str().unwrap()),
            Some(allow),
            "{method} {path}"
        );
        // The body says the same to a person: what was refused, and what
        // would be served.
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            body,
            format!("{method} is not served at {path}: it answers {allow}\n"),
        );
    }
}

#[tokio::test]
async fn a_log_filter_body_that_fails_to_arrive_is_not_called_too_large() {
    // A body that breaks off (a bad chunk, a reset) is not a filter over
    // the size bound: the answer says what went wrong.
    #[derive(Debug)]
    struct Kept;
    impl super::LogLevel for Kept {
        fn get(&self) -> String {
            "info".into()
        }
        fn set(&self, _: &str) -> Result<(), String> {
            panic!("no filter arrived to set")
        }
    }
    let admin = Admin::new(Registry::default(), Readiness::new()).with_log_level(Arc::new(Kept));
    let broken = http_body_util::StreamBody::new(futures_util::stream::iter([
        Ok(http_body::Frame::data(bytes::Bytes::from_static(b"de"))),
        Err(crate::error::BoxError::from("connection reset mid-body")),
    ]));
    let mut req = Request::put("/proxy-log-level")
        .body(http_body_util::BodyExt::boxed_unsync(broken))
        .unwrap();
    req.extensions_mut()
        .insert(crate::conn::ConnectionInfo::plaintext(
            "127.0.0.1:4191".parse().unwrap(),
            "127.0.0.1:5555".parse().unwrap(),
        ));
    let res = admin.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("connection reset mid-body"), "{body}");

    // A filter over the bound is still called that.
    let mut req = Request::put("/proxy-log-level")
        .body(Full::new(bytes::Bytes::from(vec![b'a'; 16 * 1024 + 1])))
        .unwrap();
    req.extensions_mut()
        .insert(crate::conn::ConnectionInfo::plaintext(
            "127.0.0.1:4191".parse().unwrap(),
            "127.0.0.1:5555".parse().unwrap(),
        ));
    let res = admin.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// A registry with one family of each type the proxy registers: a
/// counter, a gauge, a histogram and an info metric.
fn registry_of_every_type() -> Registry {
    use prometheus_client::metrics::{
        counter::Counter, gauge::Gauge, histogram::Histogram, info::Info,
    };
    let mut registry = Registry::default();
    let requests = Counter::<u64>::default();
    registry.register("request", "Requests seen", requests.clone());
    requests.inc_by(2);
    let open = Gauge::<i64>::default();
    registry.register("tcp_open_connections", "Connections open", open.clone());
    open.set(1);
    let latency = Histogram::new([10.0]);
    registry.register("response_latency_ms", "Latency", latency.clone());
    latency.observe(4.0);
    registry.register(
        "proxy_build",
        "Build",
        Info::new(vec![("version".to_owned(), "1.2.3".to_owned())]),
    );
    registry
}

const METRICS_OPENMETRICS: &str = "# HELP request Requests seen.\n\
     # TYPE request counter\n\
     request_total 2\n\
     # HELP tcp_open_connections Connections open.\n\
     # TYPE tcp_open_connections gauge\n\
     tcp_open_connections 1\n\
     # HELP response_latency_ms Latency.\n\
     # TYPE response_latency_ms histogram\n\
     response_latency_ms_sum 4.0\n\
     response_latency_ms_count 1\n\
     response_latency_ms_bucket{le=\"10.0\"} 1\n\
     response_latency_ms_bucket{le=\"+Inf\"} 1\n\
     # HELP proxy_build Build.\n\
     # TYPE proxy_build info\n\
     proxy_build_info{version=\"1.2.3\"} 1\n\
     # EOF\n";

const METRICS_TEXT_004: &str = "# HELP request_total Requests seen.\n\
     # TYPE request_total counter\n\
     request_total 2\n\
     # HELP tcp_open_connections Connections open.\n\
     # TYPE tcp_open_connections gauge\n\
     tcp_open_connections 1\n\
     # HELP response_latency_ms Latency.\n\
     # TYPE response_latency_ms histogram\n\
     response_latency_ms_sum 4.0\n\
     response_latency_ms_count 1\n\
     response_latency_ms_bucket{le=\"10.0\"} 1\n\
     response_latency_ms_bucket{le=\"+Inf\"} 1\n\
     # HELP proxy_build_info Build.\n\
     # TYPE proxy_build_info gauge\n\
     proxy_build_info{version=\"1.2.3\"} 1\n";

#[tokio::test]
async fn metrics_over_a_socket_answer_in_the_format_accept_asks_for() {
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};

    use crate::serve::{Server, ServerConfig, shutdown};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, stop) = shutdown::channel();
    let admin = Admin::new(registry_of_every_type(), Readiness::new());
    let server =
        tokio::spawn(Server::new(ServerConfig::default()).serve_http(listener, admin, stop));
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();

    const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,\
        application/openmetrics-text;version=0.0.1;q=0.75,\
        text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;\
        escaping=allow-utf8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,\
        text/plain;version=1.0.0;escaping=allow-utf8;q=0.3,\
        text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    let openmetrics = (super::OPENMETRICS_CONTENT_TYPE, METRICS_OPENMETRICS);
    let text = (super::TEXT_CONTENT_TYPE, METRICS_TEXT_004);
    for (accept, (content_type, body)) in [
        (None, text),
        (Some("*/*"), text),
        (Some("text/plain"), text),
        (Some("text/plain;version=0.0.4"), text),
        (Some(PROMETHEUS_2), openmetrics),
        (Some(PROMETHEUS_3), openmetrics),
        (Some("application/openmetrics-text"), openmetrics),
        (
            Some("application/openmetrics-text;q=0.8, text/plain;q=0.9"),
            text,
        ),
    ] {
        let mut req = Request::get(format!("http://{addr}/metrics"));
        if let Some(accept) = accept {
            req = req.header(http::header::ACCEPT, accept);
        }
        let res = client
            .request(req.body(Empty::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "Accept: {accept:?}");
        assert_eq!(
            res.headers()[http::header::CONTENT_TYPE],
            content_type,
            "Accept: {accept:?}"
        );
        assert_eq!(
            res.headers()[http::header::VARY],
            "accept, accept-encoding",
            "Accept: {accept:?}"
        );
        let got = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            String::from_utf8(got.to_vec()).unwrap(),
            body,
            "Accept: {accept:?}"
        );
    }
    assert_eq!(
        super::TEXT_CONTENT_TYPE,
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        super::OPENMETRICS_CONTENT_TYPE,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    trigger.trigger();
    server.await.unwrap();
}

#[tokio::test]
async fn metrics_that_cannot_be_rewritten_as_0_0_4_are_a_500_naming_the_line() {
    use prometheus_client::metrics::{counter::Counter, family::Family};
    // prometheus-client writes label values as given: a raw quote leaves
    // the label set open, which no reader of either format can parse.
    let mut registry = Registry::default();
    let hits = Family::<Vec<(String, String)>, Counter>::default();
    registry.register("hits", "Hits", hits.clone());
    hits.get_or_create(&vec![("path".into(), "a\"b".into())])
        .inc();
    let admin = Admin::new(registry, Readiness::new());
    let req = Request::get("/metrics")
        .header(http::header::ACCEPT, "text/plain")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = admin.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        String::from_utf8(body.to_vec()).unwrap(),
        "cannot write metrics in the text format 0.0.4: OpenMetrics line 3: labels that are \
         never closed\n"
    );
}

#[test]
fn a_503_from_ready_names_a_closed_gate() {
    // `/ready` reads whether every gate is open, then the names of the
    // closed ones: a gate that opens in between must not leave a 503
    // that names nothing.
    let readiness = Readiness::new();
    let mut gate = readiness.gate("identity");
    let admin = Admin::new(Registry::default(), readiness);
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let toggler = {
        let done = done.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                gate.open();
                gate.close();
            }
        })
    };
    let req = Request::get("/ready").body(()).unwrap();
    let mut unnamed = 0;
    for _ in 0..200_000 {
        let Some(res) = admin.respond(&req) else {
            panic!("/ready is the admin's")
        };
        if res.status() == StatusCode::SERVICE_UNAVAILABLE {
            let body = futures_util::FutureExt::now_or_never(res.into_body().collect())
                .unwrap()
                .unwrap()
                .to_bytes();
            if body.as_ref() == b"not ready: \n" {
                unnamed += 1;
            }
        }
    }
    done.store(true, Ordering::Relaxed);
    toggler.join().unwrap();
    assert_eq!(unnamed, 0, "503s that named no gate");
}

#[tokio::test]
async fn ready_answers_503_once_the_shutdown_has_fired() {
    let (trigger, _) = crate::serve::shutdown::channel();
    let admin = Admin::new(Registry::default(), Readiness::new()).with_shutdown(trigger.clone());
    assert_eq!(
        send(&admin, Method::GET, "/ready", "").await,
        (StatusCode::OK, "ready\n".to_owned())
    );
    // Fired elsewhere (a signal), not by `POST /shutdown`.
    trigger.trigger();
    assert_eq!(
        send(&admin, Method::GET, "/ready", "").await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n".to_owned()
        )
    );
    // The process still lives, and its metrics are still read.
    assert_eq!(
        send(&admin, Method::GET, "/live", "").await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(&admin, Method::GET, "/metrics", "").await.0,
        StatusCode::OK
    );
}
