//! The admin server: health, readiness, metrics and shutdown.
//!
//! Orchestrators and operators talk to a proxy through a small HTTP surface
//! on its own port (4191 by default, as in Linkerd):
//!
//! | path | what it answers |
//! |---|---|
//! | `GET /live` | `200 live` while the process serves at all |
//! | `GET /ready` | `200 ready` when every [`ReadinessGate`] is open; `503` with the names of the closed ones otherwise, and `503 not ready: shutting down` once the [shutdown](Admin::with_shutdown) has fired |
//! | `GET /metrics` | the registry in OpenMetrics text, or in the Prometheus text format 0.0.4, as `Accept` asks, gzipped when `Accept-Encoding` allows ([below](#metrics)) |
//! | `POST /shutdown` | starts a graceful shutdown; only from loopback, and not from a web page (`Origin` or `Sec-Fetch-Site`), `403` otherwise |
//! | `GET`, `PUT /proxy-log-level` | the log filter, read or replaced ([`log_level`]); only from loopback; `404` unless [`Admin::with_log_level`] gave one |
//! | `GET /env.json` | the process's environment as JSON, or the variables the query names ([`env`](mod@env)); only from loopback; `404` unless [`Admin::with_env`] turned it on |
//! | anything else | the [extension](#extensions), if there is one; `404` otherwise |
//!
//! `HEAD` is answered wherever `GET` is, with the head alone: the length
//! of the body `GET` would get, and no body, on HTTP/2 as on HTTP/1.
//!
//! `/shutdown` trusts the peer address in the request's [`ConnectionInfo`],
//! which the server sets from the socket; a request without one is refused.
//! The loopback-only paths also require the request to name the admin by
//! an address or `localhost`, which shuts out web pages that reach the
//! port through DNS rebinding ([`local`](mod@local)). `/live`, `/ready` and
//! `/metrics` are served to anyone who can connect: kubelet probes and
//! Prometheus scrapes come from other hosts.
//!
//! # Metrics
//!
//! Prometheus reads OpenMetrics, and asks for it first; `promtool check
//! metrics`, older agents and anything that asks for `text/plain` read only
//! the Prometheus text format 0.0.4. `/metrics` serves both, chosen by the
//! request's `Accept` as Prometheus' [content negotiation] document asks of
//! a scrape target: the format `Accept` weighs highest (its `q`-values
//! honoured, the most specific range deciding), and text 0.0.4 when it
//! names neither. So:
//!
//! | `Accept` | answer (`Content-Type`) |
//! |---|---|
//! | Prometheus' own, which prefers `application/openmetrics-text;version=1.0.0` | `application/openmetrics-text; version=1.0.0; charset=utf-8` |
//! | `application/openmetrics-text` weighed above `text/plain` | the same |
//! | `text/plain`, `text/plain;version=0.0.4` | `text/plain; version=0.0.4; charset=utf-8` |
//! | none at all, or curl's `*/*` | the same: 0.0.4 |
//!
//! No `Accept` gets text 0.0.4 because RFC 9110 §12.5.1 reads a missing
//! header as `*/*`, and between formats the client did not name, the one
//! every consumer reads is the safe one; client_golang's `promhttp`
//! answers the same. A client that wants exemplars and `_created` asks for
//! OpenMetrics, as Prometheus does. The answer carries `Vary: Accept`.
//!
//! prometheus-client writes only OpenMetrics, so the 0.0.4 answer is its
//! text rewritten, once per scrape. A counter family's `# TYPE` and
//! `# HELP` lines name its `_total` sample; an info metric becomes a gauge
//! named `…_info`; `unknown` becomes `untyped`; `# UNIT`, exemplars,
//! `_created` samples and `# EOF` are left out; and `\"` in `# HELP`
//! becomes `"`, since 0.0.4 escapes only `\\` and `\n` there.
//!
//! The answer is gzipped (`Content-Encoding: gzip`) when the request's
//! `Accept-Encoding` allows gzip, as Prometheus' does on every scrape:
//! metrics text repeats its names and labels, and shrinks several times
//! over, at gzip's fastest level. `q`-values are honoured (`gzip;q=0` gets
//! the text as it is, and so does `gzip;q=0.5, identity`); a request with
//! no `Accept-Encoding`, or one that names neither gzip nor `*`, gets the
//! text as it is. The answer carries `Vary: accept, accept-encoding`
//! whether it is compressed or not. A `HEAD` gets the length of the body
//! its `GET` would get, compressed or not.
//!
//! [content negotiation]: https://prometheus.io/docs/instrumenting/content_negotiation/
//!
//! # Extensions
//!
//! An embedding process often has more to show on the admin port than these
//! few paths: a dashboard, a debug page, its own JSON. Rather than grow the
//! list here, [`Admin::with_extension`] hands every request the admin does
//! not answer itself to one more service, an [`AdminExtension`]. The fixed
//! paths always win, so an extension cannot shadow `/ready` or weaken
//! `/shutdown`; without an extension those requests get `404`. The extension
//! answers with responses, never errors, like every other admin path, and
//! its request body is boxed so that one extension type serves any server.
//!
//! ```
//! use std::convert::Infallible;
//!
//! use http::{Request, Response, StatusCode};
//! use mesh_core::{admin::{Admin, Readiness}, body::{self, BoxBody}};
//! use prometheus_client::registry::Registry;
//! use tower::{ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let hello = service_fn(|req: Request<BoxBody>| async move {
//!     let mut res = Response::new(body::full("hello\n"));
//!     if req.uri().path() != "/hello" {
//!         *res.status_mut() = StatusCode::NOT_FOUND;
//!     }
//!     Ok::<_, Infallible>(res)
//! });
//! let admin = Admin::new(Registry::default(), Readiness::new()).with_extension(hello);
//!
//! let req = Request::get("/hello").body(body::empty()).unwrap();
//! assert_eq!(admin.clone().oneshot(req).await.unwrap().status(), StatusCode::OK);
//! // The admin's own paths are never handed over.
//! let req = Request::get("/live").body(body::empty()).unwrap();
//! assert_eq!(admin.oneshot(req).await.unwrap().status(), StatusCode::OK);
//! # }
//! ```

pub mod env;
mod exposition;
pub mod future;
mod gzip;
pub mod local;
pub mod log_level;
mod readiness;

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use prometheus_client::registry::Registry;
use tower::{Service, ServiceExt, util::BoxCloneSyncService};

pub use self::env::Environment;
use self::future::ResponseFuture;
pub use self::log_level::LogLevel;
pub use self::readiness::{Readiness, ReadinessGate};
use crate::{
    body::{self, BoxBody},
    conn::ConnectionInfo,
    error::BoxError,
    serve::shutdown::ShutdownTrigger,
};

/// A service that answers the admin requests [`Admin`] does not know. See
/// [`Admin::with_extension`].
pub type AdminExtension = BoxCloneSyncService<Request<BoxBody>, Response<BoxBody>, Infallible>;

/// The OpenMetrics content type: `/metrics` answers in it when the
/// request's `Accept` prefers it ([metrics](self#metrics)).
pub const OPENMETRICS_CONTENT_TYPE: &str = exposition::OPENMETRICS;

/// The Prometheus text format 0.0.4 content type: `/metrics` answers in it
/// unless the request's `Accept` prefers OpenMetrics
/// ([metrics](self#metrics)).
pub const TEXT_CONTENT_TYPE: &str = exposition::TEXT_004;

/// The admin service. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Admin {
    inner: Arc<Inner>,
    shutdown: Option<ShutdownTrigger>,
    extension: Option<AdminExtension>,
    log_level: Option<Arc<dyn LogLevel>>,
    env: Option<Environment>,
}

#[derive(Debug)]
struct Inner {
    readiness: Readiness,
    registry: Registry,
}

impl Admin {
    /// An admin service over `registry` and `readiness`.
    pub fn new(registry: Registry, readiness: Readiness) -> Self {
        Self {
            inner: Arc::new(Inner {
                readiness,
                registry,
            }),
            shutdown: None,
            extension: None,
            log_level: None,
            env: None,
        }
    }

    /// Serves `env` at `/env.json`, to loopback clients. Without it, the
    /// path answers 404: an environment may hold secrets, so publishing it
    /// is the process's decision ([`env`](mod@env)).
    #[must_use]
    pub fn with_env(self, env: Environment) -> Self {
        Self {
            env: Some(env),
            ..self
        }
    }

    /// Serves `level` at `/proxy-log-level`. Without one, it answers 404.
    #[must_use]
    pub fn with_log_level(self, level: Arc<dyn LogLevel>) -> Self {
        Self {
            log_level: Some(level),
            ..self
        }
    }

    /// Lets `POST /shutdown` fire `trigger`. Without one, it answers 404.
    ///
    /// Once `trigger` has fired, by that request or by any other clone,
    /// `/ready` answers `503 not ready: shutting down`, whatever the gates
    /// say. A proxy that drains accepts no new connection on its proxy
    /// listeners, and its admin server may still be answering probes
    /// while it finishes the requests in flight: a `200` would tell
    /// Kubernetes that the pod still takes traffic, which marks a
    /// terminating endpoint `serving` in its EndpointSlice, and kube-proxy
    /// may send a Service's connections to such an endpoint when no other
    /// is ready.
    #[must_use]
    pub fn with_shutdown(self, trigger: ShutdownTrigger) -> Self {
        Self {
            shutdown: Some(trigger),
            ..self
        }
    }

    /// Hands every request for a path the admin does not serve itself to
    /// `extension`, instead of answering `404`. `/live`, `/ready`, `/metrics`,
    /// `/shutdown`, `/proxy-log-level` and `/env.json` stay the admin's,
    /// whatever the method. A second call
    /// replaces the first extension; to serve several, route inside one.
    ///
    /// The extension is cloned for each request it gets and driven with
    /// [`oneshot`](ServiceExt::oneshot), so it is polled ready before it is
    /// called; a clone should be cheap (an `Arc` and a few handles).
    #[must_use]
    pub fn with_extension<S>(self, extension: S) -> Self
    where
        S: Service<Request<BoxBody>, Response = Response<BoxBody>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        Self {
            extension: Some(BoxCloneSyncService::new(extension)),
            ..self
        }
    }

    /// The answer to `req`, body included whatever its method: the
    /// [`Service`] leaves the body out of an answer to `HEAD`.
    fn answer<B>(&self, req: Request<B>) -> ResponseFuture
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        if req.uri().path() == "/proxy-log-level" {
            return log_level::serve(self.log_level.as_ref(), req);
        }
        if let Some(res) = self.respond(&req) {
            return ResponseFuture::ready(res);
        }
        match &self.extension {
            Some(extension) => {
                ResponseFuture::extension(extension.clone().oneshot(req.map(body::boxed)))
            }
            None => ResponseFuture::ready(text(StatusCode::NOT_FOUND, "not found\n")),
        }
    }

    /// The admin's own answer, or `None` for a path it does not serve.
    fn respond<B>(&self, req: &Request<B>) -> Option<Response<BoxBody>> {
        let res = match (req.method(), req.uri().path()) {
            (&Method::GET | &Method::HEAD, "/live") => text(StatusCode::OK, "live\n"),
            (&Method::GET | &Method::HEAD, "/ready")
                if self
                    .shutdown
                    .as_ref()
                    .is_some_and(ShutdownTrigger::is_triggered) =>
            {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready: shutting down\n",
                )
            }
            (&Method::GET | &Method::HEAD, "/ready") => {
                // The closed gates are read after the count that said
                // some were: when the last one opened in between, none is
                // left to name, and the answer is that of an open set.
                let readiness = &self.inner.readiness;
                let pending = if readiness.is_ready() {
                    Vec::new()
                } else {
                    readiness.pending()
                };
                if pending.is_empty() {
                    text(StatusCode::OK, "ready\n")
                } else {
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("not ready: {}\n", pending.join(", ")),
                    )
                }
            }
            (&Method::GET | &Method::HEAD, "/metrics") => self.metrics(req.headers()),
            (&Method::POST, "/shutdown") => self.shutdown(req),
            (_, "/env.json") => env::serve(self.env.as_ref(), req),
            (_, "/live" | "/ready" | "/metrics") => method_not_allowed(req, "GET, HEAD"),
            (_, "/shutdown") => method_not_allowed(req, "POST"),
            _ => return None,
        };
        Some(res)
    }

    /// The registry in the format `headers` ask for, gzipped if they allow
    /// it ([metrics](self#metrics)).
    fn metrics(&self, headers: &header::HeaderMap) -> Response<BoxBody> {
        let format = exposition::Format::negotiate(headers);
        let mut openmetrics = String::with_capacity(16 * 1024);
        if let Err(error) =
            prometheus_client::encoding::text::encode(&mut openmetrics, &self.inner.registry)
        {
            tracing::warn!(%error, "cannot encode metrics");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n");
        }
        let out = match format {
            exposition::Format::OpenMetrics => openmetrics,
            exposition::Format::Text004 => {
                let mut out = String::with_capacity(openmetrics.len());
                if let Err(error) = exposition::to_text_004(&openmetrics, &mut out) {
                    tracing::warn!(%error, "cannot write metrics in the text format 0.0.4");
                    return text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("cannot write metrics in the text format 0.0.4: {error}\n"),
                    );
                }
                out
            }
        };
        // The text as it is if the encoder fails, which it does not
        // writing into memory.
        let gzipped = gzip::accepts_gzip(headers)
            .then(|| gzip::compress(out.as_bytes()))
            .flatten();
        let encoded = gzipped.is_some();
        let mut res = Response::new(body::full(gzipped.unwrap_or_else(|| Bytes::from(out))));
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static(format.content_type()),
        );
        if encoded {
            headers.insert(
                header::CONTENT_ENCODING,
                header::HeaderValue::from_static("gzip"),
            );
        }
        // The body depends on `Accept` and `Accept-Encoding`: a cache must
        // not hand one client's format or coding to another (RFC 9110
        // §12.5.5).
        headers.insert(
            header::VARY,
            header::HeaderValue::from_static("accept, accept-encoding"),
        );
        res
    }

    fn shutdown<B>(&self, req: &Request<B>) -> Response<BoxBody> {
        if let Some(refused) = refuse_unless_local(req, "shutdown is only accepted from loopback") {
            return refused;
        }
        if from_browser_page(req) {
            return text(
                StatusCode::FORBIDDEN,
                "shutdown is not accepted from a web page (the request has Origin or \
                 Sec-Fetch-Site)\n",
            );
        }
        match &self.shutdown {
            Some(trigger) => {
                tracing::info!("shutdown requested through the admin server");
                trigger.trigger();
                text(StatusCode::OK, "shutting down\n")
            }
            None => text(StatusCode::NOT_FOUND, "shutdown is not enabled\n"),
        }
    }
}

/// Whether `req` came from a loopback address, as the [`ConnectionInfo`]
/// the server put on it says (a request without one did not), and names
/// a local host: an IP address, `localhost`, or none at all. The admin
/// paths that act on the process or show its insides (`/shutdown`,
/// `/proxy-log-level`, `/env.json`, and an extension's, such as a tap)
/// serve only such clients.
///
/// The host check is what keeps a web page out: through DNS rebinding, a
/// page's script talks to the admin port from loopback, as its own
/// origin, but names its own site in `Host` ([`local`](mod@local)).
pub fn from_loopback<B>(req: &Request<B>) -> bool {
    peer_is_loopback(req) && local::names_local_host(req)
}

fn peer_is_loopback<B>(req: &Request<B>) -> bool {
    req.extensions()
        .get::<ConnectionInfo>()
        // A dual-stack listener sees an IPv4 peer as `::ffff:a.b.c.d`,
        // which `is_loopback` alone does not count as loopback.
        .is_some_and(|info| info.remote_addr.ip().to_canonical().is_loopback())
}

/// Why [`from_loopback`] refuses `req`, for the answer to tell the client:
/// which of its two conditions failed. `None` when it does not refuse it.
///
/// A tool on the host that names the proxy by a name of its own is on
/// loopback all the same: told only "loopback only", it would not know to
/// name `localhost` instead. An extension that serves loopback-only paths
/// (a tap) words its `403` with this.
pub fn not_local_reason<B>(req: &Request<B>) -> Option<&'static str> {
    if !peer_is_loopback(req) {
        Some("the request did not come from a loopback address")
    } else if !local::names_local_host(req) {
        Some(
            "the request names a host (in Host, or its URI's authority) other than localhost \
             or an IP address, as a web page rebound to loopback does; name localhost instead",
        )
    } else {
        None
    }
}

/// `403` for a request [`from_loopback`] refuses: `rule` (`"shutdown is
/// only accepted from loopback"`) and [why](not_local_reason).
fn refuse_unless_local<B>(req: &Request<B>, rule: &str) -> Option<Response<BoxBody>> {
    let why = not_local_reason(req)?;
    Some(text(StatusCode::FORBIDDEN, format!("{rule}: {why}\n")))
}

/// Whether `req` was sent by a script on a web page rather than by a tool.
///
/// A `POST` with no body is a "simple" request: a browser sends it to any
/// address a page names, `127.0.0.1` included, without asking the server
/// first, so any page open on the host could stop the proxy through a
/// loopback check alone. Browsers mark what they send with `Origin` (every
/// `POST` they make) and `Sec-Fetch-Site`; `curl`, kubelet's `preStop` hook
/// and `linkerd-await`-style wrappers send neither. A `Sec-Fetch-Site:
/// none` is a request the user made themselves (typed into the address
/// bar), which is not a `POST`.
fn from_browser_page<B>(req: &Request<B>) -> bool {
    let headers = req.headers();
    headers.contains_key(header::ORIGIN)
        || headers
            .get("sec-fetch-site")
            .is_some_and(|site| site.as_bytes() != b"none")
}

/// `405 Method Not Allowed`, with the `Allow` header RFC 9110 §15.5.6
/// requires: the methods the path is served for, which the body names
/// too, with the method and path refused, for a person reading it.
fn method_not_allowed<B>(req: &Request<B>, allow: &'static str) -> Response<BoxBody> {
    let mut res = text(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not served at {}: it answers {allow}\n",
            req.method(),
            req.uri().path()
        ),
    );
    res.headers_mut()
        .insert(header::ALLOW, header::HeaderValue::from_static(allow));
    res
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<BoxBody> {
    let mut res = Response::new(body::full(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

impl<B> Service<Request<B>> for Admin
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<BoxBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    /// Always ready: the admin's own paths answer at once, and an extension
    /// is polled ready on its own clone when a request reaches it.
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let head = req.method() == Method::HEAD;
        let answer = self.answer(req);
        if head { answer.head() } else { answer }
    }
}

#[cfg(test)]
mod tests;
