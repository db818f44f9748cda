//! One host per inbound HTTP/2 request: the one the application gets.
//!
//! An HTTP/2 request can name its host twice, in `:authority` (which the
//! request's URI carries) and in a `Host` header. Authorization matches
//! an `HTTPRoute`'s `hostnames` against the URI's host first; mesh-core's
//! `Forward` then sends the request on to the application with that URI's
//! authority as `:authority` (over HTTP/1.1, the `Host` header). An
//! application that reads `Host` (most HTTP/1 frameworks, and HTTP/2 ones
//! that were written for both) would be served another host than the one
//! authorized when the two disagree: a client allowed on `public.example`
//! only had `admin.example` served by sending `:authority:
//! public.example` and `Host: admin.example`.
//!
//! So the `Host` header is the request's host: [`authority_from_host`]
//! puts it in the URI before anything reads it, and authorization sees
//! what the application will, whichever of the two it reads. (A calling
//! sidecar sends both alike, the authority its application asked for; a
//! sidecar of an older release sent its endpoint's address as
//! `:authority`, and the `Host` it sent is what its application asked
//! for.)
//!
//! A request with two `Host` headers, or one that is not a host and an
//! optional port (userinfo, a list, a space: [`field`] has the grammar),
//! is answered `400 Bad Request` with `mesh-error: invalid host`, in any
//! version, as RFC 9112 §3.2 has a server do: authorization reads the
//! first, and an application may read the last, or all of them. A gRPC
//! caller gets that answer in gRPC instead, `grpc-status: 13` with
//! `grpc-message: invalid host`, as for every other request the mesh
//! cannot serve as sent: its library reads the status, and an HTTP 400
//! reached it only as "unexpected HTTP status". The answer is counted in
//! the request metrics like any other ([`checks`](super::checks)). The
//! check reads the header where it lies; only an HTTP/2 request whose URI
//! takes another authority has one built.

use http::{Request, Uri, Version, header, uri::Authority};

pub(crate) use self::field::is_host_and_port;

mod field;

/// The request's `Host` headers name no one authority.
#[derive(Debug)]
pub(super) struct InvalidHost;

/// The `mesh-error` (and `grpc-message`) of an [`InvalidHost`].
pub(super) const INVALID_HOST: &str = "invalid host";

/// Checks `req`'s `Host` (one at most, a host and an optional port, or
/// empty in HTTP/1) and, in HTTP/2, makes its URI name that authority.
pub(super) fn authority_from_host<B>(req: &mut Request<B>) -> Result<(), InvalidHost> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let Some(host) = hosts.next() else {
        return Ok(());
    };
    if hosts.next().is_some() {
        return Err(InvalidHost);
    }
    let http2 = req.version() == Version::HTTP_2;
    if host.is_empty() && !http2 {
        // HTTP/1.1 sends an empty `Host` for a target without one.
        return Ok(());
    }
    if !is_host_and_port(host.as_bytes()) {
        return Err(InvalidHost);
    }
    let agrees = req
        .uri()
        .authority()
        .is_some_and(|a| a.as_str().as_bytes() == host.as_bytes());
    if !http2 || agrees {
        return Ok(());
    }
    // Only now, for a URI that changes, is the value copied.
    let authority = Authority::try_from(host.as_bytes()).map_err(|_| InvalidHost)?;
    let mut parts = req.uri().clone().into_parts();
    parts.authority = Some(authority);
    if parts.scheme.is_none() {
        parts.scheme = Some(http::uri::Scheme::HTTP);
    }
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    *req.uri_mut() = Uri::from_parts(parts).map_err(|_| InvalidHost)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        version: Version,
        uri: &str,
        hosts: &[&'static str],
    ) -> Result<Request<()>, InvalidHost> {
        let mut req = Request::get(uri).version(version);
        for host in hosts {
            req = req.header(header::HOST, *host);
        }
        let mut req = req.body(()).unwrap();
        authority_from_host(&mut req)?;
        Ok(req)
    }

    #[test]
    fn an_http_2_requests_host_names_its_uris_authority() {
        let h2 = Version::HTTP_2;
        let req = request(h2, "http://10.0.0.7:4143/list?x=1", &["emoji:8080"]).unwrap();
        assert_eq!(req.uri(), "http://emoji:8080/list?x=1");
        assert_eq!(req.headers()[header::HOST], "emoji:8080");
        let req = request(h2, "https://public.example/", &["admin.example"]).unwrap();
        assert_eq!(req.uri(), "https://admin.example/");
        let req = request(h2, "http://emoji/", &["emoji:"]).unwrap();
        assert_eq!(req.uri(), "http://emoji:/");
        let req = request(h2, "http://emoji/", &["[::1]:80"]).unwrap();
        assert_eq!(req.uri(), "http://[::1]:80/");
        let req = request(h2, "http://emoji/", &[]).unwrap();
        assert_eq!(req.uri(), "http://emoji/");
        // HTTP/1 keeps its target: `Forward` makes `Host` from an
        // absolute one.
        let req = request(Version::HTTP_11, "/list", &["emoji"]).unwrap();
        assert_eq!(req.uri(), "/list");
        assert!(request(Version::HTTP_11, "/", &[""]).is_ok());
    }

    #[test]
    fn a_repeated_or_malformed_host_is_invalid() {
        for version in [Version::HTTP_11, Version::HTTP_2] {
            for hosts in [
                &["public.example", "admin.example"][..],
                &["public.example, admin.example"],
                &["a b"],
                &["user@admin.example"],
                &["emoji:port"],
                &["emoji:99999"],
            ] {
                let req = request(version, "http://emoji/", hosts);
                assert!(req.is_err(), "{version:?} {hosts:?}");
            }
        }
        assert!(request(Version::HTTP_2, "http://emoji/", &[""]).is_err());
    }

    #[test]
    fn a_host_is_put_in_the_uri_as_written() {
        let h2 = Version::HTTP_2;
        for host in [
            "EMOJI.:80",
            "10.0.0.7",
            "[FE80::1]:",
            "[::ffff:10.0.0.7]:4143",
        ] {
            let req = request(h2, "http://10.0.0.7:4143/list", &[host]).unwrap();
            assert_eq!(req.uri(), &*format!("http://{host}/list"));
        }
    }

    /// Values `Authority` would take that no client sends: a comma list,
    /// a signed port, a zone, brackets around a name or in one.
    #[test]
    fn a_host_of_a_kind_no_client_sends_is_invalid() {
        for version in [Version::HTTP_11, Version::HTTP_2] {
            for host in ["a,b", "emoji:+80", "[fe80::1%25eth0]", "[emoji]", "a[b]"] {
                let req = request(version, "http://emoji/", &[host]);
                assert!(req.is_err(), "{version:?} {host}");
            }
        }
    }
}
