//! One host per inbound HTTP/2 request: the one the application gets.
//!
//! An HTTP/2 request can name its host twice, in `:authority` (which the
//! request's URI carries) and in a `Host` header. Authorization matches
//! an `HTTPRoute`'s `hostnames` against the URI's host first; mesh-core's
//! `Forward` then points the URI at the application and keeps the `Host`
//! header, which is what the application reads. When the two disagree,
//! the request was authorized for one host and served for another: a
//! client allowed on `public.example` only had `admin.example` served by
//! sending `:authority: public.example` and `Host: admin.example`.
//!
//! Between two sidecars they always disagree: the calling sidecar's
//! `:authority` names the endpoint it connected to (this sidecar), and
//! `Host` the service its application asked for. So the `Host` header is
//! the request's host: [`HostAuthority`] puts it in the URI before anything
//! reads it, and authorization sees what the application will. A `Host`
//! that is not an authority is removed, and the `:authority` stands for
//! both (`Forward` makes `Host` from it).

use std::task::{Context, Poll};

use http::{HeaderValue, Request, Uri, Version, header, uri::Authority};
use tower::{Layer, Service};

/// Builds [`HostAuthority`]; it goes in front of authorization.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HostAuthorityLayer;

impl<S> Layer<S> for HostAuthorityLayer {
    type Service = HostAuthority<S>;

    fn layer(&self, inner: S) -> HostAuthority<S> {
        HostAuthority { inner }
    }
}

/// Gives an HTTP/2 request's URI the authority of its `Host` header. See
/// the [module docs](self).
#[derive(Clone, Debug)]
pub(crate) struct HostAuthority<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for HostAuthority<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        if req.version() == Version::HTTP_2 {
            authority_from_host(&mut req);
        }
        self.inner.call(req)
    }
}

/// Makes `req`'s URI name the authority of its `Host` header, when it
/// has one; removes a `Host` that is not an authority.
fn authority_from_host<B>(req: &mut Request<B>) {
    let Some(host) = req.headers().get(header::HOST) else {
        return;
    };
    if req
        .uri()
        .authority()
        .is_some_and(|a| a.as_str().as_bytes() == host.as_bytes())
    {
        return;
    }
    let Some(authority) = parse(host) else {
        req.headers_mut().remove(header::HOST);
        return;
    };
    let mut parts = req.uri().clone().into_parts();
    parts.authority = Some(authority);
    if parts.scheme.is_none() {
        parts.scheme = Some(http::uri::Scheme::HTTP);
    }
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    match Uri::from_parts(parts) {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => {
            req.headers_mut().remove(header::HOST);
        }
    }
}

/// `host` as an authority: a host and an optional numeric port, without
/// userinfo (never part of `Host`).
fn parse(host: &HeaderValue) -> Option<Authority> {
    let authority = Authority::try_from(host.as_bytes()).ok()?;
    let name = authority.host();
    let port = authority.as_str().strip_prefix(name)?;
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok());
    (!name.is_empty() && port_ok).then_some(authority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, host: Option<&'static str>) -> Request<()> {
        let mut req = Request::get(uri).version(Version::HTTP_2);
        if let Some(host) = host {
            req = req.header(header::HOST, host);
        }
        let mut req = req.body(()).unwrap();
        authority_from_host(&mut req);
        req
    }

    #[test]
    fn the_host_header_names_the_uris_authority() {
        let req = request("http://10.0.0.7:4143/list?x=1", Some("emoji:8080"));
        assert_eq!(req.uri(), "http://emoji:8080/list?x=1");
        assert_eq!(req.headers()[header::HOST], "emoji:8080");
        let req = request("https://public.example/", Some("admin.example"));
        assert_eq!(req.uri(), "https://admin.example/");
        let req = request("http://emoji/", Some("[::1]:80"));
        assert_eq!(req.uri(), "http://[::1]:80/");
    }

    #[test]
    fn without_a_usable_host_the_authority_stands() {
        let req = request("http://emoji/", None);
        assert_eq!(req.uri(), "http://emoji/");
        for bad in ["", "a b", "user@admin.example", "emoji:port", "emoji:99999"] {
            let req = request("http://emoji/", Some(bad));
            assert_eq!(req.uri(), "http://emoji/", "{bad}");
            assert!(!req.headers().contains_key(header::HOST), "{bad}");
        }
    }
}
