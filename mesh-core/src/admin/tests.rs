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
