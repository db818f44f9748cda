//! What the sidecar's admin port serves besides mesh-core's own paths:
//! `/tap` always, and the dashboard when `admin.dashboard` turns it on;
//! any other path gets a `404` that lists the paths served.
//!
//! mesh-core's admin takes one extension for every path it does not serve
//! itself; this is that extension, routing by path.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    task::{Context, Poll},
};

use http::{HeaderValue, Request, Response, StatusCode, header};
use mesh_core::body::{self, BoxBody};
use mesh_metrics::{
    dashboard::{Dashboard, PAGE_PATH},
    tap::Tap,
};
use tower::Service;

/// The sidecar's admin extension. See the [module docs](self).
#[derive(Clone, Debug)]
pub(crate) struct AdminExtras {
    tap: Tap,
    dashboard: Option<Dashboard>,
}

impl AdminExtras {
    pub(crate) fn new(tap: Tap, dashboard: Option<Dashboard>) -> Self {
        Self { tap, dashboard }
    }
}

impl Service<Request<BoxBody>> for AdminExtras {
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<BoxBody>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<BoxBody>) -> Self::Future {
        let path = req.uri().path();
        if path == "/tap" {
            return ready(Ok(self.tap.serve(&req)));
        }
        let dashboard_path = path
            .strip_prefix(PAGE_PATH)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        match &mut self.dashboard {
            Some(dashboard) if dashboard_path => dashboard.call(req),
            _ => ready(Ok(not_found(self.dashboard.is_some()))),
        }
    }
}

/// `404` for a path the admin port does not serve, naming those it does:
/// someone who asked for `/readyz` or `/healthz` learns the right one.
fn not_found(dashboard: bool) -> Response<BoxBody> {
    let text = if dashboard {
        "not found: the admin port serves /live, /ready, /metrics, /proxy-log-level, /env.json, \
         /shutdown, /tap and /dashboard\n"
    } else {
        "not found: the admin port serves /live, /ready, /metrics, /proxy-log-level, /env.json, \
         /shutdown and /tap\n"
    };
    let mut res = Response::new(body::full(text));
    *res.status_mut() = StatusCode::NOT_FOUND;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}
