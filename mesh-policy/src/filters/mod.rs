//! Applying the filters of the route an inbound request took.
//!
//! A workload's own `HTTPRoute`s (those whose parent is a `Server`) do
//! more than narrow authorization: their rules' filters let a workload
//! strip a header before its application sees it, tag its responses, or
//! send callers of a retired path elsewhere, without touching the
//! application. `RequestHeaderModifier` and `RequestRedirect` apply as
//! linkerd2-proxy applies them on the inbound side. `ResponseHeaderModifier`
//! applies too, as the Gateway API defines it for any route, although
//! Linkerd's policy controller leaves it out of the inbound routes it
//! sends its proxies (`convert_http_filter` in its
//! `policy-controller/grpc/src/inbound/http.rs`), so under Linkerd it
//! does nothing there.
//!
//! A rule's other filters (`RequestMirror`, `URLRewrite`, `ExtensionRef`)
//! are not applied: the policy compiles with a
//! [`WarningKind::UnsupportedFilter`](crate::WarningKind::UnsupportedFilter)
//! warning and the rule applies without them. Linkerd's policy controller
//! ignores a whole `HTTPRoute` that has one (it logs `Ignoring
//! HTTPRoute`), leaving its requests to the Server's other routes or to a
//! 404; linkerd2-proxy answers 500 only for a filter kind it cannot read
//! from its controller, which the controller does not send.
//!
//! Which rule a request took is only known once [`Authorize`] has matched
//! it, and a request that is not allowed must get its refusal (a 403, a
//! 404), never a redirect or an edit. So the work is split:
//! [`Authorize`] puts the matched rule's filters in the request's
//! extensions (an `Arc<`[`RouteFilters`]`>`, one reference count, only
//! when the rule has any) as it lets the request through, and
//! [`ApplyFilters`], anywhere inside it, applies them:
//!
//! - the request edit, before the request goes on;
//! - the redirect, answered in place of the inner service, with an empty
//!   body (see mesh-core's [`redirect`](mesh_core::route::redirect)
//!   module for its `Location`); the inner service is not called, and the
//!   request edit does not apply: the `Location` is built from the
//!   request as the client sent it;
//! - the response edit, on the inner service's response or the redirect.
//!
//! A redirect is answered without the Server's rate limit: [`Authorize`]
//! does not consult the limit for a request whose rule redirects, so the
//! redirect spends no share of it and is never refused with 429, however
//! many come. This is linkerd2-proxy's order, which applies a rule's
//! filters before it checks the limit (`HttpPolicyService::call`, in its
//! `app/inbound/src/policy/http.rs`): a redirect asks nothing of the
//! application the limit protects, and a client that follows it makes
//! the request the limit is for.
//!
//! Everything was parsed when the policy was compiled; a request pays for
//! the edits themselves and, when redirected, for one `Location` string.
//! A request without the extension (no filters, or no [`Authorize`]
//! before it) passes through untouched.
//!
//! [`Authorize`]: crate::Authorize
//!
//! ```
//! use mesh_core::{ConnectionInfo, body::BoxBody};
//! use mesh_policy::{ApplyFiltersLayer, AuthorizeLayer, PolicyConfig, PolicyMetrics, PolicySource, PolicyStore, Workload};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! // Port 80 of `web`, open to all; `/old` moved to `/new`.
//! const POLICY: &str = r#"
//! apiVersion: policy.linkerd.io/v1beta3
//! kind: Server
//! metadata: { name: web-80 }
//! spec:
//!   podSelector: { matchLabels: { app: web } }
//!   port: 80
//!   accessPolicy: all-unauthenticated
//! ---
//! apiVersion: gateway.networking.k8s.io/v1
//! kind: HTTPRoute
//! metadata: { name: moved }
//! spec:
//!   parentRefs: [{ group: policy.linkerd.io, kind: Server, name: web-80 }]
//!   rules:
//!     - matches: [{ path: { type: PathPrefix, value: /old } }]
//!       filters:
//!         - type: RequestRedirect
//!           requestRedirect: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /new } }
//! "#;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let workload = Workload::new("default").with_label("app", "web");
//! let store = PolicyStore::new(workload, PolicyConfig::default(), PolicyMetrics::default());
//! store.reload(&[PolicySource::new("policy.yaml", POLICY)])?;
//!
//! let app = service_fn(|_req: http::Request<BoxBody>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new(BoxBody::default()))
//! });
//! let svc = ServiceBuilder::new()
//!     .layer(AuthorizeLayer::new(store))
//!     .layer(ApplyFiltersLayer::new())
//!     .service(app);
//!
//! let mut req = http::Request::get("/old/list").header("host", "web").body(BoxBody::default())?;
//! req.extensions_mut().insert(ConnectionInfo::plaintext(
//!     "10.0.0.5:80".parse()?,
//!     "10.0.0.7:50000".parse()?,
//! ));
//! let rsp = svc.oneshot(req).await?;
//! assert_eq!(rsp.status(), http::StatusCode::FOUND);
//! assert_eq!(rsp.headers()["location"], "http://web/new/list");
//! # Ok(()) }
//! ```

mod future;
mod layer;

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use http::{Request, Response};
use mesh_core::route::RouteFilters;
use tower_service::Service;

pub use self::{future::ResponseFuture, layer::ApplyFiltersLayer};

/// Applies the filters [`Authorize`](crate::Authorize) found for each
/// request; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct ApplyFilters<S> {
    inner: S,
}

impl<S> ApplyFilters<S> {
    /// Applies each request's route filters around `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S, B, RB> Service<Request<B>> for ApplyFilters<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    RB: Default,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, RB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Whether the next request redirects is not known yet.
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let Some(filters) = req.extensions_mut().remove::<Arc<RouteFilters>>() else {
            return ResponseFuture::inner(self.inner.call(req), None);
        };
        if let Some(redirect) = &filters.redirect {
            // Built from the request as the client sent it: the request
            // edit shapes what the application is sent, and a redirect
            // sends it nothing (a `Host` the edit set would otherwise
            // become the `Location`'s). Envoy, too, answers a redirect
            // before it adds a route's request headers.
            tracing::debug!(status = %redirect.status(), "inbound request redirected");
            let mut res = redirect.response(&req);
            filters.response_headers.apply(res.headers_mut());
            return ResponseFuture::respond(res);
        }
        filters.request_headers.apply(req.headers_mut());
        let response_edit = (!filters.response_headers.is_empty()).then_some(filters);
        ResponseFuture::inner(self.inner.call(req), response_edit)
    }
}
