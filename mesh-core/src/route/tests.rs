use http::{HeaderName, Method, Request};

use super::*;

fn get(uri: &str) -> Request<()> {
    Request::get(uri).body(()).unwrap()
}

fn path_matches(m: &PathMatch, paths: &[(&str, bool)]) {
    let route = RouteMatch::new().with_path(m.clone());
    for &(uri, expected) in paths {
        let path = uri.split_once('?').map_or(uri, |(path, _)| path);
        assert_eq!(m.matches(path), expected, "{m:?} on {uri:?}");
        assert_eq!(
            route.matches_request(&get(uri)),
            expected,
            "{m:?} on {uri:?}"
        );
    }
}

#[test]
fn an_empty_match_matches_everything() {
    let m = RouteMatch::new();
    assert!(m.is_empty());
    assert!(m.matches_request(&get("/")));
    assert!(m.matches_request(&get("/any/path?q=1")));
    assert!(m.matches_request(&Request::post("http://example.com/x").body(()).unwrap()));
    let (parts, ()) = get("/x").into_parts();
    assert!(m.matches(&parts));
}

/// The prefix `/` (a route without `rules`, as the Gateway API defaults
/// it) takes every request, `OPTIONS *` included, as an empty match does;
/// a longer prefix does not take `*`.
#[test]
fn the_root_prefix_matches_every_path_the_asterisk_form_included() {
    let root = PathMatch::prefix("/").unwrap();
    for path in ["/", "/a", "/a/b", "*"] {
        assert!(root.matches(path), "{path}");
    }
    let options = Request::options("*").body(()).unwrap();
    assert!(RouteMatch::new().with_path(root).matches_request(&options));
    assert!(!PathMatch::prefix("/a").unwrap().matches("*"));
}

#[test]
fn exact_paths_match_only_themselves() {
    path_matches(
        &PathMatch::exact("/foo").unwrap(),
        &[
            ("/foo", true),
            ("/foo?x=1", true),
            ("/foo/", false),
            ("/foo/bar", false),
            ("/fo", false),
            ("/Foo", false),
        ],
    );
}

#[test]
fn prefixes_match_whole_path_elements() {
    path_matches(
        &PathMatch::prefix("/foo").unwrap(),
        &[
            ("/foo", true),
            ("/foo/", true),
            ("/foo/bar", true),
            ("/foo?x=1", true),
            ("/foobar", false),
            ("/fo", false),
            ("/", false),
            ("/bar/foo", false),
        ],
    );
}

#[test]
fn a_prefix_ignores_its_trailing_slash() {
    path_matches(
        &PathMatch::prefix("/foo/").unwrap(),
        &[
            ("/foo", true),
            ("/foo/", true),
            ("/foo/bar", true),
            ("/foobar", false),
        ],
    );
    path_matches(
        &PathMatch::prefix("/foo/bar").unwrap(),
        &[
            ("/foo/bar", true),
            ("/foo/bar/baz", true),
            ("/foo/barbaz", false),
            ("/foo", false),
        ],
    );
}

#[test]
fn the_root_prefix_matches_every_path() {
    path_matches(
        &PathMatch::prefix("/").unwrap(),
        &[("/", true), ("/foo", true), ("/foo/bar/", true)],
    );
}

#[test]
fn regex_paths_must_match_whole() {
    path_matches(
        &PathMatch::regex(r"/books/\d+").unwrap(),
        &[
            ("/books/42", true),
            ("/books/42/reviews", false),
            ("/api/books/42", false),
            ("/books/", false),
        ],
    );
    // Leftmost-first alternation must not stop a full match.
    path_matches(
        &PathMatch::regex("/a|/ab").unwrap(),
        &[("/a", true), ("/ab", true), ("/abc", false)],
    );
}

#[test]
fn regexes_cannot_escape_their_anchors() {
    // Unbalanced groups are rejected, not spliced into the anchors.
    let err = PathMatch::regex("/a)|(.*").unwrap_err();
    assert_eq!(err.kind(), InvalidRouteMatchKind::Regex);
    // A verbose-mode trailing comment still compiles and stays anchored.
    path_matches(
        &PathMatch::regex("(?x) /a  # a comment").unwrap(),
        &[("/a", true), ("/ab", false)],
    );
}

#[test]
fn bad_patterns_and_paths_are_typed_errors_naming_the_input() {
    let err = PathMatch::regex("/books/(").unwrap_err();
    assert_eq!(err.kind(), InvalidRouteMatchKind::Regex);
    assert_eq!(err.input(), "/books/(");
    assert!(std::error::Error::source(&err).is_some());
    assert_eq!(err.to_string(), "invalid regular expression `/books/(`");

    let err = HeaderMatch::regex(HeaderName::from_static("x-a"), "[").unwrap_err();
    assert_eq!(
        (err.kind(), err.input()),
        (InvalidRouteMatchKind::Regex, "[")
    );
    let err = QueryParamMatch::regex("q", "a{2,1}").unwrap_err();
    assert_eq!(err.kind(), InvalidRouteMatchKind::Regex);

    let err = PathMatch::exact("foo").unwrap_err();
    assert_eq!(err.kind(), InvalidRouteMatchKind::PathNotAbsolute);
    assert_eq!(err.input(), "foo");
    let err = PathMatch::prefix("").unwrap_err();
    assert_eq!(err.kind(), InvalidRouteMatchKind::PathNotAbsolute);
    let err = PathMatch::prefix("/foo?x=1").unwrap_err();
    assert_eq!(err.kind(), InvalidRouteMatchKind::PathHasQuery);
}

#[test]
fn methods_must_be_equal() {
    let m = RouteMatch::new().with_method(Method::POST);
    assert!(m.matches_request(&Request::post("/").body(()).unwrap()));
    assert!(!m.matches_request(&get("/")));
}

#[test]
fn headers_match_exactly_or_by_regex() {
    let name = HeaderName::from_static("x-env");
    let exact = RouteMatch::new().with_header(HeaderMatch::exact(name.clone(), "prod"));
    let regex = RouteMatch::new()
        .with_header(HeaderMatch::regex(name.clone(), "prod|stag(e|ing)").unwrap());
    for (value, exact_matches, regex_matches) in [
        (Some("prod"), true, true),
        (Some("staging"), false, true),
        (Some("Prod"), false, false),
        (Some("prod2"), false, false),
        (Some("preprod"), false, false),
        (None, false, false),
    ] {
        let mut req = get("/");
        if let Some(v) = value {
            req.headers_mut().insert(&name, v.parse().unwrap());
        }
        assert_eq!(exact.matches_request(&req), exact_matches, "{value:?}");
        assert_eq!(regex.matches_request(&req), regex_matches, "{value:?}");
    }
}

#[test]
fn header_names_are_case_insensitive_and_any_repeated_value_matches() {
    let m =
        RouteMatch::new().with_header(HeaderMatch::exact(HeaderName::from_static("x-env"), "prod"));
    let req = Request::get("/")
        .header("X-Env", "dev")
        .header("x-env", "prod")
        .body(())
        .unwrap();
    assert!(m.matches_request(&req));
}

#[test]
fn query_params_match_exactly_or_by_regex() {
    let exact = RouteMatch::new().with_query_param(QueryParamMatch::exact("v", "2"));
    let regex = RouteMatch::new().with_query_param(QueryParamMatch::regex("v", r"\d+").unwrap());
    for (uri, exact_matches, regex_matches) in [
        ("/?v=2", true, true),
        ("/?a=1&v=2&b=3", true, true),
        ("/?v=1&v=2", true, true),
        ("/?v=22", false, true),
        ("/?v=2x", false, false),
        ("/?vv=2", false, false),
        ("/?V=2", false, false),
        ("/?v", false, false),
        ("/?v=", false, false),
        ("/?", false, false),
        ("/", false, false),
        ("/?&&v=2&", true, true),
    ] {
        assert_eq!(exact.matches_request(&get(uri)), exact_matches, "{uri}");
        assert_eq!(regex.matches_request(&get(uri)), regex_matches, "{uri}");
    }
}

#[test]
fn query_params_are_form_decoded() {
    let m = RouteMatch::new().with_query_param(QueryParamMatch::exact("full name", "a&b é"));
    assert!(m.matches_request(&get("/?full+name=a%26b%20%C3%A9")));
    assert!(m.matches_request(&get("/?full%20name=a%26b+%c3%a9")));
    assert!(!m.matches_request(&get("/?full+name=a&b")));

    let regex = RouteMatch::new().with_query_param(QueryParamMatch::regex("q", "a b%").unwrap());
    assert!(regex.matches_request(&get("/?q=a+b%25")));
    // A `%` without two hex digits stays as it is.
    assert!(regex.matches_request(&get("/?q=a%20b%")));

    let empty = RouteMatch::new().with_query_param(QueryParamMatch::exact("flag", ""));
    assert!(empty.matches_request(&get("/?flag")));
    assert!(empty.matches_request(&get("/?flag=")));
}

#[test]
fn every_condition_must_hold() {
    let m = RouteMatch::new()
        .with_path(PathMatch::prefix("/api").unwrap())
        .with_method(Method::GET)
        .with_header(HeaderMatch::exact(HeaderName::from_static("x-a"), "1"))
        .with_header(HeaderMatch::exact(HeaderName::from_static("x-b"), "2"))
        .with_query_param(QueryParamMatch::exact("debug", "true"));
    let req = |method: Method, uri: &str, headers: &[(&str, &str)]| {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap()
    };
    let all = [("x-a", "1"), ("x-b", "2")];
    assert!(m.matches_request(&req(Method::GET, "/api/x?debug=true", &all)));
    assert!(!m.matches_request(&req(Method::POST, "/api/x?debug=true", &all)));
    assert!(!m.matches_request(&req(Method::GET, "/other?debug=true", &all)));
    assert!(!m.matches_request(&req(Method::GET, "/api/x?debug=false", &all)));
    assert!(!m.matches_request(&req(Method::GET, "/api/x", &all)));
    assert!(!m.matches_request(&req(Method::GET, "/api/x?debug=true", &all[..1])));
    assert!(!m.matches_request(&req(Method::GET, "/api/x?debug=true", &[])));
}

#[test]
fn route_ids_are_cheap_names() {
    let id = RouteId::new("books-get");
    let clone = id.clone();
    assert_eq!(clone.as_str(), "books-get");
    assert_eq!(id.to_string(), "books-get");
    assert_eq!(RouteId::from(String::from("books-get")), id);

    let mut req = get("/");
    req.extensions_mut().insert(id);
    assert_eq!(req.extensions().get::<RouteId>(), Some(&clone));
}

/// Exact and prefix paths the Gateway API's validation refuses, and the
/// reason each one gives.
const REFUSED_PATHS: &[(&str, InvalidRouteMatchKind)] = {
    use InvalidRouteMatchKind::{PathEncodedSlash, PathInvalidChar, PathNotNormal};
    &[
        // Requests are matched in normal form (`NormalizePathLayer`), which
        // has none of these: such a rule would never match.
        ("//admin", PathNotNormal),
        ("/a//b", PathNotNormal),
        ("/a/./b", PathNotNormal),
        ("/a/../b", PathNotNormal),
        ("/a/..", PathNotNormal),
        ("/a/.", PathNotNormal),
        // The Gateway API refuses `//` anywhere, even where a prefix's
        // matching would ignore it.
        ("/a/b//", PathNotNormal),
        ("//", PathNotNormal),
        ("/..", PathNotNormal),
        ("/a/%2e%2e/b", PathNotNormal),
        ("/a/.%2E", PathNotNormal),
        // An escaped `/` means one thing to the mesh and maybe another to
        // the application.
        ("/a%2Fb", PathEncodedSlash),
        ("/a%2fb", PathEncodedSlash),
        // Bytes a request target cannot carry, and broken escapes.
        ("/a b", PathInvalidChar),
        ("/caf\u{e9}", PathInvalidChar),
        ("/a\"b", PathInvalidChar),
        ("/a\\b", PathInvalidChar),
        ("/a<b>", PathInvalidChar),
        ("/a\tb", PathInvalidChar),
        ("/a%zz", PathInvalidChar),
        ("/a%4", PathInvalidChar),
        ("/a%", PathInvalidChar),
    ]
};

#[test]
fn exact_and_prefix_paths_the_gateway_api_refuses_are_refused() {
    for &(path, kind) in REFUSED_PATHS {
        for built in [PathMatch::exact(path), PathMatch::prefix(path)] {
            let err = built.expect_err(path);
            assert_eq!((err.kind(), err.input()), (kind, path), "{path:?}");
            assert!(err.to_string().contains(path), "{path:?}: {err}");
        }
    }
    // Regular expressions are not paths: their syntax is the regex's.
    assert!(PathMatch::regex("/a//b/[.]/\\\\").is_ok());
}

#[test]
fn refused_paths_name_what_is_wrong() {
    let msg = |path: &str| PathMatch::exact(path).unwrap_err().to_string();
    assert_eq!(
        msg("/a//b"),
        "path `/a//b` holds an empty, `.` or `..` segment, which no path has once normalized, so it could never match"
    );
    assert_eq!(
        msg("/a%2fb"),
        "path `/a%2fb` holds an escaped '/' (`%2f`), which the Gateway API does not allow in a path match"
    );
    assert_eq!(
        msg("/a b"),
        "path `/a b` holds ' ': a path match may hold only letters, digits, `-._~!$&'()*+,;=:@/` and `%` followed by two hex digits"
    );
    assert_eq!(
        msg("/caf\u{e9}"),
        "path `/caf\u{e9}` holds '\u{e9}': a path match may hold only letters, digits, `-._~!$&'()*+,;=:@/` and `%` followed by two hex digits"
    );
    assert_eq!(
        msg("/a%zz"),
        "path `/a%zz` holds '%' not followed by two hex digits"
    );
}

#[test]
fn paths_the_gateway_api_allows_are_kept() {
    for path in [
        "/",
        "/a/b/",
        "/a-b._~!$&'()*+,;=:@",
        "/caf%C3%A9",
        "/a.b/..c/.d/...",
        "/%2525",
    ] {
        assert!(PathMatch::exact(path).is_ok(), "{path:?}");
        assert!(PathMatch::prefix(path).is_ok(), "{path:?}");
    }
    // A prefix's one trailing `/` is ignored.
    path_matches(
        &PathMatch::prefix("/a/b/").unwrap(),
        &[("/a/b", true), ("/a/b/c", true), ("/a/bc", false)],
    );
}

#[test]
fn escapes_match_however_the_rule_or_the_request_spells_them() {
    // RFC 3986, sections 6.2.2.1 and 6.2.2.2: `%7E` is `~`, and `%c3` is
    // `%C3`. `NormalizePathLayer` sends on the spelling on the right, so a
    // rule written with the one on the left must match it; a request
    // matched as sent may use either.
    for (written, normal) in [
        ("/%7Euser", "/~user"),
        ("/%61dmin", "/admin"),
        ("/caf%c3%a9", "/caf%C3%A9"),
        ("/a%3bb", "/a%3Bb"),
    ] {
        assert_eq!(normalize_path(written).unwrap(), normal);
        for rule in [written, normal] {
            for path in [written, normal] {
                let exact = PathMatch::exact(rule).unwrap();
                assert!(exact.matches(path), "exact {rule:?} on {path:?}");
                let prefix = PathMatch::prefix(rule).unwrap();
                assert!(prefix.matches(path), "prefix {rule:?} on {path:?}");
                assert!(
                    prefix.matches(&format!("{path}/x")),
                    "prefix {rule:?} on {path:?}/x"
                );
                assert!(
                    !prefix.matches(&format!("{path}x")),
                    "prefix {rule:?} on {path:?}x"
                );
            }
        }
    }
    // Reserved characters stay apart from their escapes, and an escaped
    // `/` is not a separator.
    let semicolon = PathMatch::exact("/a;b").unwrap();
    assert!(!semicolon.matches("/a%3Bb"));
    assert!(!PathMatch::exact("/a%3Bb").unwrap().matches("/a;b"));
    let prefix = PathMatch::prefix("/a").unwrap();
    assert!(!prefix.matches("/a%2Fb"));
    assert!(!prefix.matches("/%61%2Fb"));
    assert!(prefix.matches("/%61/b"));
    // A broken escape in a request matched as sent is compared as written.
    assert!(!PathMatch::exact("/a").unwrap().matches("/a%"));
    assert!(PathMatch::prefix("/a").unwrap().matches("/%61/%zz"));
}

/// The spelling `normalize_path` gives a path's escapes, dot segments
/// and runs of `/` untouched; a broken escape left as it is.
fn canonical_spelling(path: &str) -> String {
    super::normalize::CanonicalBytes::new(path)
        .map(char::from)
        .collect()
}

#[test]
fn matching_agrees_with_comparing_canonical_spellings() {
    // Paths and rules from a small alphabet, so that escapes of the same
    // characters, in both cases, and `/` boundaries meet often.
    const PIECES: [&str; 12] = [
        "/", "a", "b", "%61", "%41", "%2f", "%2F", "%3b", "%3B", ";", "%", "%6",
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    let piece = |rng: &mut fastrand::Rng, n: usize| -> String {
        let mut s = String::from("/");
        for _ in 0..rng.usize(0..n) {
            s.push_str(PIECES[rng.usize(..PIECES.len())]);
        }
        s
    };
    let mut checked = 0;
    for _ in 0..20_000 {
        let rule = piece(&mut rng, 5);
        let path = piece(&mut rng, 7);
        let (Ok(exact), Ok(prefix)) = (PathMatch::exact(&rule), PathMatch::prefix(&rule)) else {
            continue;
        };
        checked += 1;
        let (rule_c, path_c) = (canonical_spelling(&rule), canonical_spelling(&path));
        assert_eq!(
            exact.matches(&path),
            rule_c == path_c,
            "exact {rule:?} on {path:?}"
        );
        let stem = rule_c.trim_end_matches('/');
        let under = stem.is_empty()
            || path_c
                .strip_prefix(stem)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
        assert_eq!(prefix.matches(&path), under, "prefix {rule:?} on {path:?}");
    }
    assert!(checked > 1000, "only {checked} valid rules");
}

#[test]
fn precedence_ranks_exact_then_regex_then_prefix_then_length_method_headers_queries() {
    let prefix = |p: &str| RouteMatch::new().with_path(PathMatch::prefix(p).unwrap());
    let header = || HeaderMatch::exact(HeaderName::from_static("x-a"), "1");
    let query = || QueryParamMatch::exact("q", "1");
    // Most specific first, each strictly above the next.
    let ranked = [
        RouteMatch::new().with_path(PathMatch::exact("/").unwrap()),
        RouteMatch::new().with_path(PathMatch::regex("/a/.*").unwrap()),
        prefix("/a/b"),
        prefix("/a").with_method(Method::GET),
        prefix("/a").with_header(header()).with_header(header()),
        prefix("/a").with_header(header()).with_query_param(query()),
        prefix("/a").with_header(header()),
        prefix("/a").with_query_param(query()),
        prefix("/a/"),
    ];
    for pair in ranked.windows(2) {
        assert!(
            pair[0].precedence() > pair[1].precedence(),
            "{:?} over {:?}",
            pair[0],
            pair[1]
        );
    }
    // The default match is the prefix `/`, and a trailing `/` adds nothing.
    assert_eq!(RouteMatch::new().precedence(), prefix("/").precedence());
    assert_eq!(prefix("/a/").precedence(), prefix("/a").precedence());
}

#[test]
fn two_regular_expressions_tie_on_the_path_whatever_their_lengths() {
    // linkerd2-proxy ranks a regular expression by the length of the path
    // it matched, the whole path: two that match one request tie, and the
    // method, headers and query parameters decide, then the caller.
    let regex = |r: &str| RouteMatch::new().with_path(PathMatch::regex(r).unwrap());
    assert_eq!(
        regex("/a/.*").precedence(),
        regex("/[a-z]+/[a-z0-9-]+/.*").precedence()
    );
    assert!(
        regex("/a/.*").with_method(Method::GET).precedence()
            > regex("/[a-z]+/[a-z0-9-]+/.*").precedence()
    );
    let header = HeaderMatch::exact(HeaderName::from_static("x-a"), "1");
    assert!(regex("/.*").with_header(header).precedence() > regex("/api/v1/.*").precedence());
}
