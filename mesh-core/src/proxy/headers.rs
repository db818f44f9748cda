use http::{HeaderMap, HeaderName, HeaderValue, header};

/// `Keep-Alive` and `Proxy-Connection` have no constant in `http::header`.
/// Built once here, they compare by bytes instead of being parsed again
/// for every message.
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Headers that describe one hop rather than the message (RFC 9110 §7.6.1),
/// apart from those the `Connection` header names.
///
/// `Proxy-Authorization` carries a client's credentials for the proxy it
/// was told to use (`HTTP_PROXY=http://user:pass@...`, RFC 9110
/// §11.7.2), and `Proxy-Authenticate` asks for them: both are the hop's,
/// and the first would hand the proxy's password to every application a
/// client calls.
const HOP_BY_HOP: [HeaderName; 6] = [
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// Whether `name` is `Connection`, `TE` or one of [`HOP_BY_HOP`].
fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == header::CONNECTION || *name == header::TE || HOP_BY_HOP.contains(name)
}

/// Removes hop-by-hop headers: `Connection` and every header it names, plus
/// the fixed list above. `TE` is kept only as `TE: trailers`, which gRPC
/// needs end to end.
///
/// `Host` stays even when `Connection` names it. It is end to end by
/// definition (RFC 9110 §7.2; a sender must not list it, §7.6.1), and the
/// mesh chose the route and authorized the request by it: removed, the
/// upstream would be sent the endpoint's address as `Host` instead, and
/// the application would serve a host no rule was checked for.
///
/// A message framed by `Transfer-Encoding` loses its `Content-Length`
/// too: the coding overrides the length (RFC 9112 §6.3), and hyper read
/// the body by its chunks. Sent on beside a body framed afresh, a stale
/// length would have the next hop cut the body short there and take it
/// for complete; RFC 9112 §6.3 has an intermediary remove it. (hyper's
/// server removes it from requests; its client leaves it on responses.)
///
/// Returns whether the message was framed with a transfer coding other
/// than `chunked` (`gzip, chunked`, say): hyper undid only the chunks, so
/// its body is still coded, and with `Transfer-Encoding` gone nothing
/// says so any more. The caller must not send such a body on.
///
/// Most messages carry none of them (HTTP/2 forbids all but `TE:
/// trailers`, and an HTTP/1.1 client rarely sends any), so one pass over
/// the names, which compares them without hashing, decides whether there
/// is anything to remove; looking each one up by name costs a hash every
/// time, found or not.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) -> bool {
    if !headers.keys().any(is_hop_by_hop) {
        return false;
    }
    // Read before a `Connection` that names `Transfer-Encoding` (or
    // `Content-Length`) removes it.
    let mut coded = false;
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
        coded = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .any(other_than_chunked);
    }
    if headers.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderValue> = headers
            .get_all(header::CONNECTION)
            .iter()
            .cloned()
            .collect();
        headers.remove(header::CONNECTION);
        for value in &listed {
            let Ok(value) = value.to_str() else { continue };
            for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                if !name.eq_ignore_ascii_case("te") && !name.eq_ignore_ascii_case("host") {
                    headers.remove(name);
                }
            }
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if headers.contains_key(header::TE) {
        // `TE` is a list over any number of fields (RFC 9110 §10.1.4):
        // `trailers` is kept when any field lists it, and nothing else.
        let trailers = headers.get_all(header::TE).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
            })
        });
        headers.remove(header::TE);
        if trailers {
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }
    coded
}

/// Whether a `Transfer-Encoding` field lists a coding other than
/// `chunked` (parameters aside), or cannot be read at all.
fn other_than_chunked(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return true;
    };
    value
        .split(',')
        .map(|coding| coding.split(';').next().unwrap_or("").trim())
        .filter(|coding| !coding.is_empty())
        .any(|coding| !coding.eq_ignore_ascii_case("chunked"))
}

/// The value of an HTTP/1.1 request's `Upgrade` header, when the request
/// asks for one (`Connection: upgrade`) that can be tunnelled.
///
/// `h2c` cannot: its `HTTP2-Settings` header belongs to the hop and is
/// stripped, and a server must not upgrade without it (RFC 7540 §3.2.1;
/// RFC 9113 §3.1 retires the upgrade). Such a request goes on as a plain
/// HTTP/1.1 request, as the server would have served it anyway.
pub(crate) fn requested_upgrade(headers: &HeaderMap) -> Option<HeaderValue> {
    let upgrade = headers.get(header::UPGRADE)?;
    let h2c = upgrade
        .to_str()
        .is_ok_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("h2c")));
    if h2c {
        return None;
    }
    let asked = headers.get_all(header::CONNECTION).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
    });
    asked.then(|| upgrade.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_fixed_and_listed_headers_and_keeps_end_to_end_ones() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-hop".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-hop", "1".parse().unwrap());
        h.insert("proxy-connection", "keep-alive".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("upgrade", "h2c".parse().unwrap());
        h.insert("te", "gzip".parse().unwrap());
        h.insert("x-end-to-end", "kept".parse().unwrap());
        h.insert("trailer", "grpc-status".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["trailer", "x-end-to-end"]);
    }

    #[test]
    fn a_length_beside_a_transfer_coding_goes_with_it() {
        let mut h = HeaderMap::new();
        h.insert("content-length", "5".parse().unwrap());
        h.insert("transfer-encoding", "chunked".parse().unwrap());
        h.insert("content-type", "text/plain".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type"]);
    }

    #[test]
    fn framing_is_read_before_connection_removes_what_it_names() {
        let mut h = HeaderMap::new();
        h.insert("connection", "transfer-encoding".parse().unwrap());
        h.insert("transfer-encoding", "gzip, chunked".parse().unwrap());
        h.insert("content-length", "5".parse().unwrap());
        assert!(strip_hop_by_hop(&mut h));
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn codings_other_than_chunked_are_told() {
        for (value, coded) in [
            ("chunked", false),
            ("Chunked", false),
            ("gzip, chunked", true),
            ("deflate", true),
            (" chunked ,", false),
        ] {
            let mut h = HeaderMap::new();
            h.insert("transfer-encoding", value.parse().unwrap());
            assert_eq!(strip_hop_by_hop(&mut h), coded, "{value}");
            assert!(h.is_empty(), "{value}");
        }
        let mut h = HeaderMap::new();
        h.insert("content-length", "3".parse().unwrap());
        assert!(!strip_hop_by_hop(&mut h));
    }

    #[test]
    fn te_trailers_survives() {
        let mut h = HeaderMap::new();
        h.insert("te", "trailers".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h["te"], "trailers");
    }

    #[test]
    fn te_keeps_trailers_alone_wherever_it_is_listed() {
        for fields in [
            &["trailers, deflate;q=0.5"][..],
            &["gzip", "Trailers"],
            &["trailers", "gzip"],
        ] {
            let mut h = HeaderMap::new();
            for field in fields {
                h.append("te", field.parse().unwrap());
            }
            strip_hop_by_hop(&mut h);
            let te: Vec<_> = h.get_all("te").iter().collect();
            assert_eq!(te, ["trailers"], "{fields:?}");
        }
    }

    #[test]
    fn proxy_authenticate_and_repeated_connection_values_are_stripped() {
        let mut h = HeaderMap::new();
        h.append("connection", "x-one".parse().unwrap());
        h.append("connection", "X-Two, te".parse().unwrap());
        h.insert("x-one", "1".parse().unwrap());
        h.insert("x-two", "2".parse().unwrap());
        h.insert("proxy-authenticate", "Basic".parse().unwrap());
        h.insert("te", "Trailers".parse().unwrap());
        h.insert("content-type", "text/plain".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        // `Connection` naming `te` does not remove `TE: trailers`.
        assert_eq!(names, ["content-type", "te"]);
    }

    #[test]
    fn host_stays_when_connection_names_it() {
        let mut h = HeaderMap::new();
        h.insert("connection", "Host, x-hop".parse().unwrap());
        h.insert("host", "emoji.example".parse().unwrap());
        h.insert("x-hop", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["host"]);
    }

    #[test]
    fn a_message_without_hop_by_hop_headers_is_left_alone() {
        let mut h = HeaderMap::new();
        h.insert("host", "backend".parse().unwrap());
        h.insert("content-length", "0".parse().unwrap());
        h.insert("x-keep-alive", "custom".parse().unwrap());
        let before = h.clone();
        strip_hop_by_hop(&mut h);
        assert_eq!(h, before);
    }

    #[test]
    fn each_fixed_header_is_stripped_alone() {
        for name in [
            "keep-alive",
            "proxy-connection",
            "transfer-encoding",
            "upgrade",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
        ] {
            let mut h = HeaderMap::new();
            h.insert(HeaderName::from_static(name), "x".parse().unwrap());
            h.insert("x-end-to-end", "kept".parse().unwrap());
            strip_hop_by_hop(&mut h);
            assert!(!h.contains_key(name), "{name} kept");
            assert_eq!(h.len(), 1, "{name}");
        }
    }

    #[test]
    fn an_h2c_upgrade_is_not_tunnelled() {
        let mut h = HeaderMap::new();
        h.insert("upgrade", "h2c".parse().unwrap());
        h.insert("connection", "Upgrade, HTTP2-Settings".parse().unwrap());
        h.insert("http2-settings", "AAMAAABkAAQAAP__".parse().unwrap());
        assert!(requested_upgrade(&h).is_none());
        strip_hop_by_hop(&mut h);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn upgrade_needs_both_headers() {
        let mut h = HeaderMap::new();
        h.insert("upgrade", "websocket".parse().unwrap());
        assert!(requested_upgrade(&h).is_none());
        h.insert("connection", "keep-alive, Upgrade".parse().unwrap());
        assert_eq!(requested_upgrade(&h).unwrap(), "websocket");
    }
}
