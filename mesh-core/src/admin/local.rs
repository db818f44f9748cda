//! Which requests the admin serves its loopback-only paths to.
//!
//! # Why a loopback peer is not enough
//!
//! A browser on the proxy's host connects from loopback too. A web page
//! cannot read a cross-origin answer, but with DNS rebinding it need not:
//! `evil.example` answers first with its own address, then with
//! `127.0.0.1`, and the page's script, still on the origin
//! `http://evil.example:4191`, now talks to the admin port as its own
//! origin. It can read `/env.json` (tokens, passwords), change
//! `/proxy-log-level`, and stream a tap of live requests, all from a
//! loopback peer. What gives it away is the host it asks for: every
//! request the browser sends names `evil.example` in `Host`.
//!
//! So a loopback-only path also requires the request to name a host that
//! no other site can stand behind: an IP address (a page on it is the
//! admin's own origin), `localhost` or a name under it (RFC 6761; browsers
//! resolve those to loopback themselves and never ask DNS), or no host at
//! all (browsers always send one). `curl http://127.0.0.1:4191/...`,
//! `kubectl port-forward` to `localhost` and the tools that talk to the
//! admin port all qualify. A client that names the proxy by another name
//! that resolves to loopback is refused with `403`, whose body says that
//! the host it named is why, and can use `localhost` instead.

use std::net::{Ipv4Addr, Ipv6Addr};

use http::{Request, header};

/// Whether every host `req` names (its URI's authority and each `Host`
/// header) is local: see the [module docs](self).
pub fn names_local_host<B>(req: &Request<B>) -> bool {
    let uri = req.uri().authority().map(|a| a.as_str());
    let hosts = req.headers().get_all(header::HOST).iter();
    uri.into_iter()
        .map(|authority| is_local_authority(authority.as_bytes()))
        .chain(hosts.map(|host| is_local_authority(host.as_bytes())))
        .all(|local| local)
}

/// Whether `authority` (`host[:port]`, possibly with userinfo) names an IP
/// address, `localhost` or a name under `localhost`.
fn is_local_authority(authority: &[u8]) -> bool {
    let Ok(authority) = std::str::from_utf8(authority) else {
        return false;
    };
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(rest) = authority.strip_prefix('[') {
        let Some((ip, port)) = rest.split_once(']') else {
            return false;
        };
        return ip.parse::<Ipv6Addr>().is_ok() && is_port(port);
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if is_port(&authority[host.len()..]) && !port.is_empty() => host,
        Some(_) => return false,
        None => authority,
    };
    if host.parse::<Ipv4Addr>().is_ok() {
        return true;
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let localhost = "localhost";
    host.eq_ignore_ascii_case(localhost)
        || host.len() > localhost.len() + 1
            && host
                .get(host.len() - localhost.len() - 1..)
                .is_some_and(|tail| tail.eq_ignore_ascii_case(".localhost"))
}

/// An empty string, or `:` and a port number.
fn is_port(port: &str) -> bool {
    port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_localhost_are_local_names_are_not() {
        for local in [
            "127.0.0.1",
            "127.0.0.1:4191",
            "10.1.2.3:4191",
            "[::1]:4191",
            "[::1]",
            "localhost",
            "LOCALHOST:4191",
            "localhost.:4191",
            "admin.localhost:4191",
            "user@localhost:4191",
        ] {
            assert!(is_local_authority(local.as_bytes()), "{local}");
        }
        for remote in [
            "evil.example",
            "evil.example:4191",
            "localhost.evil.example:4191",
            "evillocalhost:4191",
            ".localhost",
            "127.0.0.1.evil.example",
            "[::1",
            "[::1]x",
            "localhost:http",
            "localhost:",
            "",
            "127.0.0.1:4191@evil.example",
        ] {
            assert!(!is_local_authority(remote.as_bytes()), "{remote}");
        }
        assert!(!is_local_authority(b"local\xffhost"));
    }

    #[test]
    fn every_host_a_request_names_must_be_local() {
        let req = |uri: &str, hosts: &[&str]| {
            let mut b = Request::get(uri);
            for host in hosts {
                b = b.header(header::HOST, *host);
            }
            b.body(()).unwrap()
        };
        assert!(names_local_host(&req("/env.json", &[])));
        assert!(names_local_host(&req("/env.json", &["localhost:4191"])));
        assert!(names_local_host(&req(
            "http://127.0.0.1:4191/env.json",
            &[]
        )));
        assert!(!names_local_host(&req("/env.json", &["evil.example:4191"])));
        assert!(!names_local_host(&req(
            "http://evil.example:4191/env.json",
            &["localhost"]
        )));
        assert!(!names_local_host(&req(
            "/env.json",
            &["localhost", "evil.example"]
        )));
    }
}
