//! What a route's filters cost a request, in allocations: a redirect's
//! `Location` is one block, and a header edit of an allowed request adds
//! none beyond the headers it writes. dhat counts every allocation of this
//! test binary, which is why this test has a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::{HeaderMap, Request, Uri};
use mesh_core::{
    resource::{HttpPathModifier, PathModifierType, RequestRedirect},
    route::{PathMatch, Redirect, RouteMatch},
};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn path(kind: PathModifierType, value: &str) -> Option<HttpPathModifier> {
    Some(HttpPathModifier {
        kind,
        replace_full_path: (kind == PathModifierType::ReplaceFullPath).then(|| value.into()),
        replace_prefix_match: (kind == PathModifierType::ReplacePrefixMatch).then(|| value.into()),
    })
}

#[test]
fn a_redirects_location_is_one_allocation() {
    let _profiler = dhat::Profiler::builder().testing().build();

    let cases = [
        // A new scheme, a replaced prefix, the request's host.
        (
            RequestRedirect {
                scheme: Some("https".into()),
                path: path(PathModifierType::ReplacePrefixMatch, "/new"),
                ..RequestRedirect::default()
            },
            "/old/list?page=2",
            Some("emoji.emojivoto:8080"),
            "https://emoji.emojivoto/new/list?page=2",
        ),
        // The request's port kept, a new host, the whole path replaced.
        (
            RequestRedirect {
                hostname: Some("books.example.com".into()),
                path: path(PathModifierType::ReplaceFullPath, "/v2"),
                ..RequestRedirect::default()
            },
            "/old/list",
            Some("emoji:8080"),
            "http://books.example.com:8080/v2",
        ),
        // Everything before the path settled when the route was built.
        (
            RequestRedirect {
                scheme: Some("https".into()),
                hostname: Some("example.com".into()),
                port: Some(8443),
                ..RequestRedirect::default()
            },
            "/old?x",
            Some("emoji"),
            "https://example.com:8443/old?x",
        ),
        // No host anywhere: a relative reference; the prefix replaced by
        // nothing.
        (
            RequestRedirect {
                path: path(PathModifierType::ReplacePrefixMatch, ""),
                ..RequestRedirect::default()
            },
            "/old",
            None,
            "/",
        ),
    ];
    let matches = [RouteMatch::new().with_path(PathMatch::prefix("/old").unwrap())];
    for (filter, uri, host, expected) in cases {
        let redirect = Redirect::new(&filter, &matches).unwrap();
        let mut req = Request::get(uri);
        if let Some(host) = host {
            req = req.header("host", host);
        }
        let req = req.body(()).unwrap();
        let (uri, headers): (&Uri, &HeaderMap) = (req.uri(), req.headers());

        let before = dhat::HeapStats::get();
        for _ in 0..100 {
            let location = redirect.location(uri, headers);
            assert_eq!(location, expected);
        }
        let after = dhat::HeapStats::get();
        let per_request = (after.total_blocks - before.total_blocks) / 100;
        dhat::assert_eq!(per_request, 1, "{expected}");
    }
}
