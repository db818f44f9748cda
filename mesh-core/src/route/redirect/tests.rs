use std::convert::Infallible;

use http::{HeaderMap, Request, Response, StatusCode, Uri};
use tower::{Layer, ServiceExt, service_fn};

use super::*;
use crate::resource::{HttpPathModifier, PathModifierType, RequestRedirect};

fn prefix(p: &str) -> RouteMatch {
    RouteMatch::new().with_path(PathMatch::prefix(p).unwrap())
}

fn redirect(filter: &RequestRedirect) -> Redirect {
    Redirect::new(filter, &[RouteMatch::new()]).unwrap()
}

/// The `Location` a request for `uri` with `Host: host` gets.
fn location(redirect: &Redirect, uri: &str, host: Option<&str>) -> String {
    let mut headers = HeaderMap::new();
    if let Some(host) = host {
        headers.insert(http::header::HOST, host.parse().unwrap());
    }
    let uri: Uri = uri.parse().unwrap();
    redirect
        .location(&uri, &headers)
        .to_str()
        .unwrap()
        .to_owned()
}

fn full(path: &str) -> Option<HttpPathModifier> {
    Some(HttpPathModifier {
        kind: PathModifierType::ReplaceFullPath,
        replace_full_path: Some(path.into()),
        replace_prefix_match: None,
    })
}

fn replace_prefix(with: &str) -> Option<HttpPathModifier> {
    Some(HttpPathModifier {
        kind: PathModifierType::ReplacePrefixMatch,
        replace_full_path: None,
        replace_prefix_match: Some(with.into()),
    })
}

#[test]
fn an_empty_filter_points_at_the_request_itself_with_a_302() {
    let r = redirect(&RequestRedirect::default());
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        location(&r, "/a/b?x=1", Some("web:8080")),
        "http://web:8080/a/b?x=1"
    );
}

#[test]
fn a_scheme_brings_its_own_default_port() {
    let r = redirect(&RequestRedirect {
        scheme: Some("https".into()),
        ..RequestRedirect::default()
    });
    // The request's port belongs to its scheme, not to the new one.
    assert_eq!(location(&r, "/a", Some("web:8080")), "https://web/a");
    assert_eq!(location(&r, "/a", Some("web")), "https://web/a");
}

#[test]
fn a_hostname_keeps_the_request_port_unless_it_is_the_default() {
    let r = redirect(&RequestRedirect {
        hostname: Some("books.example.com".into()),
        ..RequestRedirect::default()
    });
    assert_eq!(
        location(&r, "/a", Some("web:8080")),
        "http://books.example.com:8080/a"
    );
    assert_eq!(
        location(&r, "/a", Some("web:80")),
        "http://books.example.com/a"
    );
    assert_eq!(
        location(&r, "https://web:443/a", None),
        "https://books.example.com/a"
    );
}

#[test]
fn a_port_is_written_unless_it_is_the_default_of_the_scheme() {
    let port = |port, scheme: Option<&str>| {
        redirect(&RequestRedirect {
            port: Some(port),
            scheme: scheme.map(Into::into),
            ..RequestRedirect::default()
        })
    };
    assert_eq!(
        location(&port(8443, None), "/a", Some("web")),
        "http://web:8443/a"
    );
    assert_eq!(
        location(&port(80, None), "/a", Some("web:8080")),
        "http://web/a"
    );
    assert_eq!(
        location(&port(443, Some("https")), "/a", Some("web:8080")),
        "https://web/a"
    );
    assert_eq!(
        location(&port(443, Some("http")), "/a", Some("web")),
        "http://web:443/a"
    );
    // The request's own scheme decides which port is its default.
    assert_eq!(
        location(&port(443, None), "https://web:8443/a", None),
        "https://web/a"
    );
}

#[test]
fn a_fixed_scheme_and_hostname_are_written_as_configured() {
    let r = redirect(&RequestRedirect {
        scheme: Some("https".into()),
        hostname: Some("example.com".into()),
        port: Some(8443),
        ..RequestRedirect::default()
    });
    assert_eq!(r.origin.as_deref(), Some("https://example.com:8443"));
    assert_eq!(
        location(&r, "/a?q", Some("web:80")),
        "https://example.com:8443/a?q"
    );
    assert_eq!(location(&r, "/a", None), "https://example.com:8443/a");
}

#[test]
fn the_authority_of_the_uri_wins_over_the_host_header() {
    let r = redirect(&RequestRedirect::default());
    assert_eq!(
        location(&r, "http://user@web:9090/a", Some("other:1")),
        "http://web:9090/a"
    );
}

#[test]
fn a_host_header_that_is_not_a_host_is_not_written_into_the_location() {
    // `Host` is read as the client sent it. What is not `host[:port]`
    // must not become the `Location`'s authority: `a b` or `web/x` made
    // one no client can parse as its author meant, and `web@evil.example`
    // pointed at `evil.example`. The client's own origin, a relative
    // reference, is where it goes instead.
    let r = redirect(&RequestRedirect::default());
    for host in [
        "a b",
        "web/x",
        "web?x",
        "web#x",
        "web@evil.example",
        "web:80:81",
        "[::1",
        "",
    ] {
        assert_eq!(location(&r, "/a?q", Some(host)), "/a?q", "{host:?}");
    }
    let https = redirect(&RequestRedirect {
        scheme: Some("https".into()),
        ..RequestRedirect::default()
    });
    assert_eq!(location(&https, "/a", Some("web/x")), "/a");
    // A filter's own hostname does not need the request's.
    let named = redirect(&RequestRedirect {
        hostname: Some("example.com".into()),
        ..RequestRedirect::default()
    });
    assert_eq!(location(&named, "/a", Some("a b")), "http://example.com/a");
    // Hosts as they come stay as they are.
    assert_eq!(
        location(&r, "/a", Some("Web.Example:8080")),
        "http://Web.Example:8080/a"
    );
    assert_eq!(location(&r, "/a", Some("10.0.0.1:80")), "http://10.0.0.1/a");
}

#[test]
fn ipv6_hosts_keep_their_brackets() {
    let r = redirect(&RequestRedirect {
        port: Some(8080),
        ..RequestRedirect::default()
    });
    assert_eq!(location(&r, "/a", Some("[::1]:80")), "http://[::1]:8080/a");
    assert_eq!(location(&r, "/a", Some("[::1]")), "http://[::1]:8080/a");
}

#[test]
fn without_any_host_the_location_is_relative() {
    let r = redirect(&RequestRedirect {
        path: full("/new"),
        ..RequestRedirect::default()
    });
    assert_eq!(location(&r, "/old?x=1", None), "/new?x=1");
}

/// A relative `Location` whose path starts with two slashes (or a slash
/// and a backslash, which browsers read as two) would be a network-path
/// reference, `//evil.example/x`, sending the client to another host: an
/// open redirect. It is written as WHATWG's URL serializer writes such a
/// path, after `/.`, which resolves to the same path on the same origin.
#[test]
fn a_relative_location_never_names_another_host() {
    let kept = redirect(&RequestRedirect::default());
    assert_eq!(
        location(&kept, "//evil.example/x", None),
        "/.//evil.example/x"
    );
    assert_eq!(
        location(&kept, "/%5Cevil.example", None),
        "/%5Cevil.example"
    );
    // hyper takes a raw backslash in a request target.
    assert_eq!(
        location(&kept, "/\\evil.example", None),
        "/./\\evil.example"
    );
    let rewritten = Redirect::new(
        &RequestRedirect {
            path: replace_prefix("/"),
            ..RequestRedirect::default()
        },
        &[prefix("/old")],
    )
    .unwrap();
    assert_eq!(
        location(&rewritten, "/old//evil.example?q", None),
        "/.//evil.example?q"
    );
    assert_eq!(location(&rewritten, "/old/x", None), "/x");
    // With a host, the path is the path.
    assert_eq!(
        location(&rewritten, "/old//x", Some("web")),
        "http://web//x"
    );
}

/// `OPTIONS *` (asterisk-form, RFC 9112 section 3.2.4) and `CONNECT`
/// (authority-form) name no path. A catch-all rule still redirects them,
/// and the `Location` must not glue the `*` to the host: `https://web*`
/// names a host `web*`. The server's root, `/`, is what such a target
/// addresses.
#[test]
fn a_target_without_a_path_is_redirected_to_the_root() {
    let https = redirect(&RequestRedirect {
        scheme: Some("https".into()),
        ..RequestRedirect::default()
    });
    assert_eq!(location(&https, "*", Some("web")), "https://web/");
    assert_eq!(location(&https, "web:8080", None), "https://web/");
    let kept = redirect(&RequestRedirect::default());
    assert_eq!(location(&kept, "*", None), "/");
    let rewritten = Redirect::new(
        &RequestRedirect {
            path: replace_prefix("/v2"),
            ..RequestRedirect::default()
        },
        &[prefix("/")],
    )
    .unwrap();
    assert_eq!(location(&rewritten, "*", Some("web")), "http://web/v2/");
}

#[test]
fn a_full_path_replaces_the_path_and_keeps_the_query() {
    let r = redirect(&RequestRedirect {
        path: full("/v2/books"),
        ..RequestRedirect::default()
    });
    assert_eq!(
        location(&r, "/books/42?page=2&sort=asc", Some("web")),
        "http://web/v2/books?page=2&sort=asc"
    );
    assert_eq!(location(&r, "/", Some("web")), "http://web/v2/books");
}

#[test]
fn prefix_replacement_follows_the_gateway_api_table() {
    // HTTPPathModifier.replacePrefixMatch, Gateway API v1: request path,
    // prefix match, replacement, modified path.
    let table = [
        ("/foo/bar", "/foo", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo", "/xyz/", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz", "/xyz/bar"),
        ("/foo/bar", "/foo/", "/xyz/", "/xyz/bar"),
        ("/foo", "/foo", "/xyz", "/xyz"),
        ("/foo/", "/foo", "/xyz", "/xyz/"),
        ("/foo/bar", "/foo", "", "/bar"),
        ("/foo/", "/foo", "", "/"),
        ("/foo", "/foo", "", "/"),
        ("/foo/", "/foo", "/", "/"),
        ("/foo", "/foo", "/", "/"),
    ];
    for (path, matched, with, expected) in table {
        let filter = RequestRedirect {
            path: replace_prefix(with),
            ..RequestRedirect::default()
        };
        let r = Redirect::new(&filter, &[prefix(matched)]).unwrap();
        assert_eq!(
            location(&r, path, None),
            expected,
            "{path} with prefix {matched} replaced by {with:?}"
        );
    }
}

#[test]
fn prefix_replacement_keeps_the_query_and_whole_elements() {
    let filter = RequestRedirect {
        path: replace_prefix("/v2"),
        ..RequestRedirect::default()
    };
    let r = Redirect::new(&filter, &[prefix("/api")]).unwrap();
    assert_eq!(
        location(&r, "/api/books?id=1", Some("web")),
        "http://web/v2/books?id=1"
    );
    // `/apis` is not under the prefix `/api`; the path stays.
    assert_eq!(location(&r, "/apis", Some("web")), "http://web/apis");
    // A rule without a path match has the Gateway API's default, `/`.
    let r = Redirect::new(&filter, &[RouteMatch::new()]).unwrap();
    assert_eq!(location(&r, "/books", None), "/v2/books");
}

#[test]
fn a_prefix_matched_through_an_escape_is_replaced_too() {
    // The rule matches `/%6Fld/x` (`%6F` is `o`), so the redirect must
    // replace its prefix: kept, the client would be sent back to where it
    // was, and be redirected again.
    let filter = RequestRedirect {
        path: replace_prefix("/new"),
        ..RequestRedirect::default()
    };
    let old = prefix("/old");
    let r = Redirect::new(&filter, std::slice::from_ref(&old)).unwrap();
    for (uri, expected) in [
        ("/%6Fld/x?q=1", "http://web/new/x?q=1"),
        ("/%6fl%64", "http://web/new"),
        ("/ol%64/caf%c3%a9", "http://web/new/caf%c3%a9"),
    ] {
        assert!(
            old.matches_request(&Request::get(uri).body(()).unwrap()),
            "{uri}"
        );
        assert_eq!(location(&r, uri, Some("web")), expected, "{uri}");
    }
    // Not under the prefix, however spelled: the path stays.
    for uri in ["/%6Fld%2Fx", "/%6Fldx"] {
        assert!(
            !old.matches_request(&Request::get(uri).body(()).unwrap()),
            "{uri}"
        );
        assert_eq!(location(&r, uri, Some("web")), format!("http://web{uri}"));
    }
}

#[test]
fn every_status_the_gateway_api_allows_is_kept() {
    for code in [301, 302, 303, 307, 308] {
        let r = redirect(&RequestRedirect {
            status_code: Some(code),
            ..RequestRedirect::default()
        });
        assert_eq!(r.status().as_u16(), code);
    }
}

fn invalid(filter: &RequestRedirect, matches: &[RouteMatch]) -> InvalidRedirect {
    Redirect::new(filter, matches).unwrap_err()
}

#[test]
fn invalid_fields_are_named() {
    let any = [RouteMatch::new()];
    let cases = [
        (
            RequestRedirect {
                status_code: Some(304),
                ..RequestRedirect::default()
            },
            "statusCode",
            InvalidRedirectKind::StatusCode,
        ),
        (
            RequestRedirect {
                scheme: Some("ftp".into()),
                ..RequestRedirect::default()
            },
            "scheme",
            InvalidRedirectKind::Scheme,
        ),
        (
            RequestRedirect {
                hostname: Some("*.example.com".into()),
                ..RequestRedirect::default()
            },
            "hostname",
            InvalidRedirectKind::Hostname,
        ),
        (
            RequestRedirect {
                hostname: Some("web:8080".into()),
                ..RequestRedirect::default()
            },
            "hostname",
            InvalidRedirectKind::Hostname,
        ),
        (
            RequestRedirect {
                port: Some(0),
                ..RequestRedirect::default()
            },
            "port",
            InvalidRedirectKind::Port,
        ),
        (
            RequestRedirect {
                path: full("books"),
                ..RequestRedirect::default()
            },
            "path.replaceFullPath",
            InvalidRedirectKind::PathNotAbsolute,
        ),
        (
            RequestRedirect {
                path: full("/books?x=1"),
                ..RequestRedirect::default()
            },
            "path.replaceFullPath",
            InvalidRedirectKind::Path,
        ),
        (
            RequestRedirect {
                path: replace_prefix("/a b"),
                ..RequestRedirect::default()
            },
            "path.replacePrefixMatch",
            InvalidRedirectKind::Path,
        ),
        (
            RequestRedirect {
                path: Some(HttpPathModifier {
                    kind: PathModifierType::ReplaceFullPath,
                    replace_full_path: None,
                    replace_prefix_match: Some("/a".into()),
                }),
                ..RequestRedirect::default()
            },
            "path.replaceFullPath",
            InvalidRedirectKind::Missing,
        ),
    ];
    for (filter, field, kind) in cases {
        let e = invalid(&filter, &any);
        assert_eq!((e.field(), e.kind()), (field, kind), "{e}");
    }
}

#[test]
fn a_path_modifier_with_the_other_type_s_field_is_refused() {
    // The Gateway API's `HTTPPathModifier` validation: "type must be
    // 'ReplaceFullPath' when replaceFullPath is set", and the same for
    // `ReplacePrefixMatch`. Kept, one of the two paths was silently
    // dropped, and the redirect went somewhere its author did not say.
    let both = |kind| RequestRedirect {
        path: Some(HttpPathModifier {
            kind,
            replace_full_path: Some("/full".into()),
            replace_prefix_match: Some("/prefix".into()),
        }),
        ..RequestRedirect::default()
    };
    let e = invalid(&both(PathModifierType::ReplaceFullPath), &[prefix("/a")]);
    assert_eq!(
        (e.field(), e.kind()),
        ("path.replacePrefixMatch", InvalidRedirectKind::OtherType)
    );
    assert_eq!(
        e.to_string(),
        "path.replacePrefixMatch is set, but the path modifier's type is ReplaceFullPath"
    );
    let e = invalid(&both(PathModifierType::ReplacePrefixMatch), &[prefix("/a")]);
    assert_eq!(
        (e.field(), e.kind()),
        ("path.replaceFullPath", InvalidRedirectKind::OtherType)
    );
    assert_eq!(
        e.to_string(),
        "path.replaceFullPath is set, but the path modifier's type is ReplacePrefixMatch"
    );
}

#[test]
fn replacing_a_prefix_needs_exactly_one_prefix_match() {
    let filter = || RequestRedirect {
        path: replace_prefix("/v2"),
        ..RequestRedirect::default()
    };
    let exact = RouteMatch::new().with_path(PathMatch::exact("/a").unwrap());
    for matches in [vec![exact], vec![prefix("/a"), prefix("/b")], vec![]] {
        let e = invalid(&filter(), &matches);
        assert_eq!(e.field(), "path");
        assert_eq!(e.kind(), InvalidRedirectKind::PrefixWithoutPrefixMatch);
        assert_eq!(
            e.to_string(),
            "ReplacePrefixMatch needs the rule to have exactly one match, with a PathPrefix path"
        );
    }
}

#[tokio::test]
async fn the_layer_answers_without_calling_the_service() {
    let r = redirect(&RequestRedirect {
        hostname: Some("new.example.com".into()),
        status_code: Some(308),
        ..RequestRedirect::default()
    });
    let (mock, mut handle) = tower_test::mock::pair::<Request<()>, Response<String>>();
    // The backend is never ready: a redirect does not wait for it.
    handle.allow(0);
    let svc = RedirectLayer::new(r).layer(mock);
    let req = Request::post("/upload?id=7")
        .header("host", "web")
        .body(())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        res.headers()["location"],
        "http://new.example.com/upload?id=7"
    );
    assert_eq!(res.headers()["content-length"], "0");
    assert!(res.body().is_empty());
    assert_eq!(res.extensions().get::<Redirected>(), Some(&Redirected));
    // A configured answer, not a failure of the mesh.
    assert!(!res.headers().contains_key(crate::error::MESH_ERROR));
    assert!(res.extensions().get::<crate::ProxyErrorKind>().is_none());
    assert!(handle.next_request().await.is_none());
}

/// A `Location` without a host is resolved by the client against the URI
/// it asked for: its scheme and port stay. A filter that changes either
/// cannot be obeyed by one, and answering with it sends the client back
/// where it was, to be redirected again, without end. Such a request,
/// with no `Host` (or one that is not `host[:port]`, which RFC 9112
/// section 3.2 answers with 400 anyway), gets `400 Bad Request`.
#[tokio::test]
async fn a_scheme_or_port_change_without_a_host_is_refused_not_looped() {
    let answer = |filter: RequestRedirect, host: Option<&'static str>| async move {
        let app = service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(Response::new(String::from("never")))
        });
        let svc = RedirectLayer::new(redirect(&filter)).layer(app);
        let mut req = Request::get("/a?q").body(()).unwrap();
        if let Some(host) = host {
            req.headers_mut()
                .insert(http::header::HOST, host.parse().unwrap());
        }
        svc.oneshot(req).await.unwrap()
    };
    let https = || RequestRedirect {
        scheme: Some("https".into()),
        ..RequestRedirect::default()
    };
    let port = || RequestRedirect {
        port: Some(8443),
        ..RequestRedirect::default()
    };
    for (filter, host) in [
        (https(), None),
        (https(), Some("a b")),
        (port(), None),
        (port(), Some("web@evil.example")),
    ] {
        let res = answer(filter, host).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{host:?}");
        assert_eq!(
            res.headers()[crate::error::MESH_ERROR],
            "no host to redirect to"
        );
        assert!(!res.headers().contains_key(http::header::LOCATION));
        assert!(res.extensions().get::<Redirected>().is_none());
        assert!(res.body().is_empty());
    }
    // With a host, or with a filter that keeps the scheme and port, the
    // redirect is answered as ever.
    let res = answer(https(), Some("web")).await;
    assert_eq!(res.headers()["location"], "https://web/a?q");
    let moved = RequestRedirect {
        path: full("/b"),
        ..RequestRedirect::default()
    };
    let res = answer(moved, None).await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert_eq!(res.headers()["location"], "/b?q");
    let named = RequestRedirect {
        hostname: Some("example.com".into()),
        port: Some(8443),
        ..RequestRedirect::default()
    };
    let res = answer(named, None).await;
    assert_eq!(res.headers()["location"], "http://example.com:8443/a?q");
}

#[tokio::test]
async fn without_a_redirect_requests_pass_through() {
    let app = service_fn(|req: Request<()>| async move {
        Ok::<_, Infallible>(Response::new(req.uri().path().to_owned()))
    });
    let svc = RedirectLayer::pass_through().layer(app);
    let res = svc
        .oneshot(Request::get("/kept").body(()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "/kept");
    assert!(res.extensions().get::<Redirected>().is_none());
}
