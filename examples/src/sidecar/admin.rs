//! What the sidecar's admin port serves besides mesh-core's own paths:
//! `/tap` always, and the dashboard when `admin.dashboard` turns it on.
//!
//! mesh-core's admin takes one extension for every path it does not serve
//! itself; this is that extension, routing by path.

use std::{
    convert::Infallible,
    future::{Ready, ready},
    task::{Context, Poll},
};

use http::{Request, Response, StatusCode};
use mesh_core::body::{self, BoxBody};
use mesh_metrics::{dashboard::Dashboard, tap::Tap};
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
        if req.uri().path() == "/tap" {
            return ready(Ok(self.tap.serve(&req)));
        }
        match &mut self.dashboard {
            Some(dashboard) => dashboard.call(req),
            None => {
                let mut res = Response::new(body::full("not found\n"));
                *res.status_mut() = StatusCode::NOT_FOUND;
                ready(Ok(res))
            }
        }
    }
}
