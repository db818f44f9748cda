//! The page and the answers of the dashboard's two paths.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use mesh_core::body::{self, BoxBody};

/// Where the page is served.
pub const PAGE_PATH: &str = "/dashboard";

/// Where the page's JSON is served.
pub const API_PATH: &str = "/dashboard/api";

/// The page: markup, style and script in one file, nothing from elsewhere.
const PAGE: &str = include_str!("page.html");

/// The page may run its own inline script and style, fetch from its own
/// origin, and nothing else.
const PAGE_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The answer for `path`; `get` says the method was GET or HEAD, and `api`
/// gives the JSON of the last round.
pub(super) fn respond(path: &str, get: bool, api: impl FnOnce() -> Bytes) -> Response<BoxBody> {
    let (content_type, body) = match path {
        PAGE_PATH | "/dashboard/" => (
            "text/html; charset=utf-8",
            Bytes::from_static(PAGE.as_bytes()),
        ),
        API_PATH => ("application/json", api()),
        _ => return plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    if !get {
        let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return res;
    }
    let mut res = Response::new(body::full(body));
    let headers = res.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if path != API_PATH {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_POLICY),
        );
    }
    res
}

/// The answer to a request that names a host other than an address or
/// `localhost`: see [`Dashboard`](super::Dashboard)'s `call`.
pub(super) fn foreign_host() -> Response<BoxBody> {
    plain(
        StatusCode::FORBIDDEN,
        "the dashboard is served to requests that name it by an IP address or \
         localhost (http://localhost:<port>/dashboard), not by another host name\n",
    )
}

fn plain(status: StatusCode, text: &'static str) -> Response<BoxBody> {
    let mut res = Response::new(body::full(text));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}
