use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
};

use http::{Uri, uri::Authority};
use mesh_core::Identity;

/// How the connector reaches one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboundTls {
    /// Mutual TLS, and the server must prove this identity. Fails closed.
    Mtls(Identity),
    /// Plaintext, for targets outside the mesh. Only `http` URIs reach
    /// such a target: an `https` one fails to connect
    /// ([`ConnectError::HttpsInPlaintext`](super::ConnectError::HttpsInPlaintext)).
    Plaintext,
}

/// Which targets get mutual TLS, and with which expected identity.
///
/// Targets are matched by the host and port a request URI connects to
/// (`host:port`, as the proxy's forwarder writes it for an endpoint);
/// anything unmatched gets the default.
///
/// A target configured for mutual TLS must not be reached in plaintext
/// because a URI spelled its authority another way, so both sides are
/// compared by where they connect, not by their spelling:
///
/// - userinfo (`user@`) is ignored: it names no other server;
/// - a URI without a port connects to its scheme's port, so
///   `http://10.0.0.7/` matches a target `10.0.0.7:80`, and `https://`
///   URIs match `:443`;
/// - a target without a port matches URIs to that host that give no port;
/// - host names compare without case and without a final dot
///   (`API.shop.` is `api.shop`); IP addresses compare as addresses
///   (`[0:0::1]` is `[::1]`);
/// - an IPv4 address compares as the address it connects to however it is
///   spelled: an IPv4-mapped IPv6 address (`[::ffff:10.0.0.7]`, which a
///   dual-stack socket dials as `10.0.0.7`), and the shorthand, decimal,
///   octal and hex forms the C library's resolver reads as addresses
///   (`10.7`, `167772167`, `0x0a.0.0.7`, `012.0.0.7`);
/// - a URI that matches no `mtls` target but connects to one anyway (a host
///   name that resolves to its address, `0.0.0.0`, which Linux dials as the
///   local host) is caught after it connects: the connector checks the
///   address it reached against the targets filed as an address and a port,
///   and handshakes as that target before writing a byte. Targets filed
///   under a host name are matched by the URI alone.
#[derive(Clone, Debug)]
pub struct TlsTargets {
    default: OutboundTls,
    targets: HashMap<Authority, OutboundTls>,
}

impl TlsTargets {
    /// Every target gets `default`.
    pub fn new(default: OutboundTls) -> Self {
        Self {
            default,
            targets: HashMap::new(),
        }
    }

    /// Reaches `authority` with `tls`. See the [type docs](Self) for how
    /// authorities are compared.
    #[must_use]
    pub fn with_target(mut self, authority: Authority, tls: OutboundTls) -> Self {
        let key = target_key(authority.host(), authority.port_u16()).unwrap_or(authority);
        self.targets.insert(key, tls);
        self
    }

    /// Reaches the endpoint `addr` with `tls`: the authority
    /// `http://{addr}/` URIs carry.
    #[must_use]
    pub fn with_endpoint(self, addr: SocketAddr, tls: OutboundTls) -> Self {
        match Authority::try_from(addr.to_string()) {
            Ok(authority) => self.with_target(authority, tls),
            // A socket address always formats as a valid authority.
            Err(_) => self,
        }
    }

    /// The default and the per-target settings, filed under
    /// [`target_key`]s.
    pub(super) fn into_parts(self) -> (OutboundTls, HashMap<Authority, OutboundTls>) {
        (self.default, self.targets)
    }

    /// How `authority` is reached. Without a scheme, an authority without
    /// a port matches only a target configured without one.
    pub fn get(&self, authority: &Authority) -> &OutboundTls {
        lookup(&self.targets, authority, None).unwrap_or(&self.default)
    }
}

/// The `mtls` targets filed under an address and a port, by that address:
/// the ones a plaintext connection is checked against once it is
/// connected, whatever name its URI gave.
pub(super) fn mtls_endpoints(
    routes: &HashMap<Authority, super::Route>,
) -> HashMap<SocketAddr, super::Route> {
    routes
        .iter()
        .filter(|(_, route)| matches!(route, super::Route::Mtls { .. }))
        .filter_map(|(key, route)| Some((key.as_str().parse::<SocketAddr>().ok()?, route.clone())))
        .collect()
}

/// The `mtls` target a connection to `peer` reached, if any: the address
/// as a target key files it, an IPv4-mapped IPv6 address as its IPv4
/// address.
pub(super) fn mtls_endpoint(
    endpoints: &HashMap<SocketAddr, super::Route>,
    peer: SocketAddr,
) -> Option<&super::Route> {
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    endpoints.get(&peer)
}

/// The setting of the target `uri` connects to, if one is configured.
pub(super) fn for_uri<'a, T>(targets: &'a HashMap<Authority, T>, uri: &Uri) -> Option<&'a T> {
    let authority = uri.authority()?;
    lookup(targets, authority, default_port(uri))
}

/// The port of the scheme of `uri`, for a URI that names none.
fn default_port(uri: &Uri) -> Option<u16> {
    match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("http") => Some(80),
        Some(s) if s.eq_ignore_ascii_case("https") => Some(443),
        _ => None,
    }
}

/// The port `uri` connects to: its own, else its scheme's.
pub(super) fn uri_port(uri: &Uri) -> Option<u16> {
    uri.port_u16().or_else(|| default_port(uri))
}

fn lookup<'a, T>(
    targets: &'a HashMap<Authority, T>,
    authority: &Authority,
    default_port: Option<u16>,
) -> Option<&'a T> {
    if targets.is_empty() {
        return None;
    }
    // Keys are in their one spelling, so an authority with a port that
    // matches one as it is (the forwarder's `ip:port`) needs no rewriting;
    // one with userinfo never does.
    if authority.port().is_some()
        && !authority.as_str().contains('@')
        && let Some(found) = targets.get(authority)
    {
        return Some(found);
    }
    let host = authority.host();
    let port = authority.port_u16();
    let exact = port
        .or(default_port)
        .and_then(|port| target_key(host, Some(port)))
        .and_then(|key| targets.get(&key));
    exact.or_else(|| {
        port.is_none()
            .then(|| target_key(host, None))
            .flatten()
            .and_then(|key| targets.get(&key))
    })
}

/// The key a target is filed and looked up under: the host, in its one
/// spelling (lowercase, no final dot, an IP address as Rust formats it),
/// and the port when there is one. No userinfo.
pub(super) fn target_key(host: &str, port: Option<u16>) -> Option<Authority> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let key = match (host_ip(bare), port) {
        (Some(ip), Some(port)) => SocketAddr::new(ip, port).to_string(),
        (Some(IpAddr::V6(ip)), None) => format!("[{ip}]"),
        (Some(IpAddr::V4(ip)), None) => ip.to_string(),
        (None, port) => {
            let mut name = bare.strip_suffix('.').unwrap_or(bare).to_ascii_lowercase();
            if let Some(port) = port {
                name.push(':');
                name.push_str(&port.to_string());
            }
            name
        }
    };
    Authority::try_from(key).ok()
}

/// The address a connection to `host` (without brackets) reaches without
/// a DNS lookup, if `host` is an address: an IPv4-mapped IPv6 address as
/// the IPv4 address a dual-stack socket dials, and an IPv4 address in any
/// form the resolver reads ([`resolver_ipv4`]).
pub(super) fn host_ip(host: &str) -> Option<IpAddr> {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)),
        Ok(v4) => Some(v4),
        Err(_) => resolver_ipv4(host).map(IpAddr::V4),
    }
}

/// The IPv4 address the C library's resolver reads `host` as, if any.
///
/// `getaddrinfo`, which hyper-util's resolver calls, takes a host that
/// `inet_aton` parses for an address, without asking DNS (glibc and musl
/// alike): one to four parts separated by dots, each decimal, octal (a
/// leading `0`) or hex (`0x`), the last filling the bytes the others leave
/// (`127.1` is 127.0.0.1, `2130706433` is too). std parses only the dotted
/// decimal form, so without this a target `127.0.0.1:80` would not match a
/// URI to `127.1:80`, which connects to it.
fn resolver_ipv4(host: &str) -> Option<Ipv4Addr> {
    let mut parts = [0_u32; 4];
    let mut count = 0;
    for part in host.split('.') {
        *parts.get_mut(count)? = resolver_number(part)?;
        count += 1;
    }
    let (last, leading) = parts.get(..count)?.split_last()?;
    let mut addr = 0_u32;
    for (byte, value) in leading.iter().enumerate() {
        let value = u8::try_from(*value).ok()?;
        addr |= u32::from(value) << (24 - 8 * byte);
    }
    // The last part fills what the leading parts leave: 32 bits alone, 24
    // after one part, 16 after two, 8 after three.
    if *last > u32::MAX >> (8 * leading.len()) {
        return None;
    }
    Some(Ipv4Addr::from(addr | last))
}

/// One part of an [`resolver_ipv4`] address, as `strtoul` reads it in base
/// 0: hex after `0x`, octal after a leading `0`, decimal otherwise.
fn resolver_number(part: &str) -> Option<u32> {
    let (digits, radix) =
        if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            (hex, 16)
        } else if let Some(octal) = part.strip_prefix('0').filter(|rest| !rest.is_empty()) {
            (octal, 8)
        } else {
            (part, 10)
        };
    // `from_str_radix` would take a sign; the resolver does not.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> TlsTargets {
        let id = "spiffe://example.org/ns/shop/sa/api".parse().unwrap();
        TlsTargets::new(OutboundTls::Plaintext)
            .with_target("10.0.0.7:80".parse().unwrap(), OutboundTls::Mtls(id))
    }

    fn reached(targets: &TlsTargets, uri: &str) -> bool {
        let uri: Uri = uri.parse().unwrap();
        matches!(for_uri(&targets.targets, &uri), Some(OutboundTls::Mtls(_)))
    }

    #[test]
    fn a_target_is_matched_however_a_uri_spells_its_authority() {
        let t = targets();
        for uri in [
            "http://10.0.0.7:80/",
            "http://10.0.0.7/",
            "http://user@10.0.0.7/",
            "http://user:secret@10.0.0.7:80/x",
            "HTTP://10.0.0.7/",
        ] {
            assert!(reached(&t, uri), "{uri}");
        }
        for uri in [
            "https://10.0.0.7/",
            "http://10.0.0.7:8080/",
            "http://10.0.0.8/",
        ] {
            assert!(!reached(&t, uri), "{uri}");
        }
    }

    #[test]
    fn names_compare_without_case_or_final_dot_and_addresses_as_addresses() {
        let id: Identity = "spiffe://example.org/ns/shop/sa/api".parse().unwrap();
        let t = TlsTargets::new(OutboundTls::Plaintext)
            .with_target(
                "API.shop.:8080".parse().unwrap(),
                OutboundTls::Mtls(id.clone()),
            )
            .with_target(
                "[0:0::1]:443".parse().unwrap(),
                OutboundTls::Mtls(id.clone()),
            )
            .with_target("svc.local".parse().unwrap(), OutboundTls::Mtls(id));
        for uri in [
            "http://api.shop:8080/",
            "http://api.SHOP.:8080/",
            "https://[::1]/",
            "https://u@[::1]:443/",
            "http://svc.local/",
            "http://SVC.local./",
        ] {
            assert!(reached(&t, uri), "{uri}");
        }
        assert!(!reached(&t, "http://svc.local:9090/"));

        // A target with the URI's scheme port comes before one without.
        let t = t.with_target("svc.local:80".parse().unwrap(), OutboundTls::Plaintext);
        assert!(!reached(&t, "http://svc.local/"));
        assert!(reached(&t, "https://svc.local/"));
        assert_ne!(
            t.get(&"u@api.shop:8080".parse().unwrap()),
            &OutboundTls::Plaintext
        );
        assert_eq!(t.get(&"api.shop".parse().unwrap()), &OutboundTls::Plaintext);
    }

    #[test]
    fn ipv4_spellings_the_resolver_reads_match_the_address() {
        let t = targets();
        for uri in [
            "http://[::ffff:10.0.0.7]/",
            "http://[::ffff:a00:7]:80/",
            "http://10.7/",
            "http://10.0.7/",
            "http://167772167/",
            "http://0xa000007/",
            "http://0x0A.0.0.7:80/",
            "http://012.0.0.07/",
            "http://u@012.0.0.7/",
        ] {
            assert!(reached(&t, uri), "{uri}");
        }
        // Not 10.0.0.7, or not an address at all: a resolver would look
        // these up as names, or refuse them.
        for uri in [
            "http://10.0.0.8/",
            "http://[::10.0.0.7]/",
            "http://10.0.0.7.0/",
            "http://10..7/",
            "http://08.0.0.7/",
            "http://0x/",
            "http://10.0.0.256/",
            "http://10.0.65536/",
            "http://4294967296/",
            "http://+10.0.0.7/",
        ] {
            assert!(!reached(&t, uri), "{uri}");
        }
        // A target spelled another way is filed under its address.
        let id: Identity = "spiffe://example.org/ns/shop/sa/api".parse().unwrap();
        let t = TlsTargets::new(OutboundTls::Plaintext).with_target(
            "[::ffff:127.0.0.1]:8080".parse().unwrap(),
            OutboundTls::Mtls(id),
        );
        assert!(reached(&t, "http://127.0.0.1:8080/"));
        assert!(reached(&t, "http://127.1:8080/"));
    }

    #[test]
    fn the_resolver_reads_each_part_count_and_base() {
        for (host, addr) in [
            ("1.2.3.4", [1, 2, 3, 4]),
            ("1.2.772", [1, 2, 3, 4]),
            ("1.131844", [1, 2, 3, 4]),
            ("16909060", [1, 2, 3, 4]),
            ("0x1.0X2.03.4", [1, 2, 3, 4]),
            ("0", [0, 0, 0, 0]),
            ("00", [0, 0, 0, 0]),
            ("0xffffffff", [255, 255, 255, 255]),
            ("255.0xffffff", [255, 255, 255, 255]),
        ] {
            assert_eq!(resolver_ipv4(host), Some(Ipv4Addr::from(addr)), "{host}");
        }
        for host in [
            "",
            ".",
            "1.2.3.4.5",
            "256.1",
            "1.2.3.256",
            "0x100000000",
            "09",
            "a",
            "1e3",
        ] {
            assert_eq!(resolver_ipv4(host), None, "{host}");
        }
    }
}
