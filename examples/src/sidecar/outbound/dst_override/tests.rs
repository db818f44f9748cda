use std::collections::HashMap;

use http::{HeaderMap, HeaderValue, Request};
use mesh_core::proxy::by_host;

use super::*;

fn headers(pairs: &[(&HeaderName, &[u8])]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("shop.example.com"));
    for (name, value) in pairs {
        headers.append(*name, HeaderValue::from_bytes(value).unwrap());
    }
    headers
}

#[test]
fn either_header_names_the_host_without_its_port_or_trailing_dot() {
    let cases: [(&HeaderName, &[u8], &str); 5] = [
        (&MESH_DST_OVERRIDE, b"emoji", "emoji"),
        (
            &MESH_DST_OVERRIDE,
            b"emoji.emojivoto:8080",
            "emoji.emojivoto",
        ),
        (
            &L5D_DST_OVERRIDE,
            b"web-svc.emojivoto.svc.cluster.local:80",
            "web-svc.emojivoto.svc.cluster.local",
        ),
        (&L5D_DST_OVERRIDE, b"Emoji.:80", "Emoji"),
        (&MESH_DST_OVERRIDE, b"[::1]:80", "[::1]"),
    ];
    for (name, value, host) in cases {
        let headers = headers(&[(name, value)]);
        assert_eq!(dst_override(&headers), DstOverride::Host(host), "{name}");
    }
}

#[test]
fn no_header_is_no_override() {
    assert_eq!(dst_override(&headers(&[])), DstOverride::Absent);
}

#[test]
fn both_headers_naming_one_host_agree() {
    let both = headers(&[
        (&MESH_DST_OVERRIDE, b"emoji:8080"),
        (&L5D_DST_OVERRIDE, b"EMOJI."),
    ]);
    assert_eq!(dst_override(&both), DstOverride::Host("emoji"));
}

#[test]
fn headers_naming_different_hosts_or_nothing_usable_conflict() {
    let cases: [&[(&HeaderName, &[u8])]; 8] = [
        &[
            (&MESH_DST_OVERRIDE, b"emoji"),
            (&L5D_DST_OVERRIDE, b"voting"),
        ],
        &[
            (&L5D_DST_OVERRIDE, b"voting"),
            (&MESH_DST_OVERRIDE, b"emoji"),
        ],
        &[
            (&MESH_DST_OVERRIDE, b"emoji"),
            (&MESH_DST_OVERRIDE, b"voting"),
        ],
        &[(&MESH_DST_OVERRIDE, b"")],
        &[(&L5D_DST_OVERRIDE, b":80")],
        &[(&MESH_DST_OVERRIDE, b"emoji\xff")],
        // Userinfo, which the router refuses in a `Host` or a target.
        &[(&L5D_DST_OVERRIDE, b"voting@emoji:80")],
        &[
            (&MESH_DST_OVERRIDE, b"emoji"),
            (&L5D_DST_OVERRIDE, b"user@emoji"),
        ],
    ];
    for pairs in cases {
        assert_eq!(
            dst_override(&headers(pairs)),
            DstOverride::Conflict,
            "{pairs:?}"
        );
    }
}

#[test]
fn strip_removes_every_copy_of_both_and_nothing_else() {
    let mut both = headers(&[
        (&MESH_DST_OVERRIDE, b"emoji"),
        (&MESH_DST_OVERRIDE, b"voting"),
        (&L5D_DST_OVERRIDE, b"emoji"),
    ]);
    both.insert("x-kept", HeaderValue::from_static("1"));
    strip(&mut both);
    let mut names: Vec<_> = both.keys().map(HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["host", "x-kept"]);

    let mut none = headers(&[]);
    strip(&mut none);
    assert_eq!(none, headers(&[]));
}

/// The override is matched as the router matches an authority: whatever
/// `by_host` finds for a `Host` header, the same text finds as an override.
#[test]
fn an_override_finds_what_the_same_authority_finds() {
    let map: HashMap<Box<str>, &str> = [
        "emoji",
        "emoji.emojivoto.svc.cluster.local",
        "[::1]",
        "127.0.0.1",
    ]
    .into_iter()
    .map(|host| (Box::from(host), host))
    .collect();
    for authority in [
        "emoji",
        "EMOJI",
        "emoji:8080",
        "emoji.",
        "emoji.:80",
        "emoji.emojivoto.svc.cluster.local:80",
        "[::1]:8080",
        "[::1]",
        "127.0.0.1:80",
        "emoji:http",
        "voting",
        "emoji.emojivoto",
    ] {
        let req = Request::get("/")
            .header("host", authority)
            .body(())
            .unwrap();
        let routed = by_host(&map, &req).copied();
        let host = authority_host(authority).to_ascii_lowercase();
        assert_eq!(map.get(host.as_str()).copied(), routed, "{authority}");
    }
}
