//! The grammar of a `Host` field value, checked where the value lies.
//!
//! # Why
//!
//! Every inbound request's `Host` is checked, and nearly every one is
//! then left as it is: an HTTP/1 request keeps its target, and an HTTP/2
//! request from a client that is not a sidecar sends the same host in
//! `:authority` and `Host`. Parsing the value into an
//! [`http::uri::Authority`] copies it to the heap first: one allocation,
//! and one free, per request, for a check that needs neither.
//! [`is_host_and_port`] reads the header's bytes where they are; the
//! caller builds an `Authority` only for a request whose URI it goes into.
//!
//! # What passes
//!
//! RFC 9110 §7.2's `Host = uri-host [ ":" port ]`, with RFC 3986's `host`
//! and `port`:
//!
//! - a registered name of letters (either case), digits, `-._~` and the
//!   sub-delimiters `!$&'()*+;=`, at least one; dotted-decimal IPv4 is one
//!   of these, and so is a name with a trailing dot (`emoji.`);
//! - or an IPv6 address in brackets, in any form [`std::net::Ipv6Addr`]
//!   reads (`[::1]`, `[::ffff:10.0.0.7]`, hex digits in either case);
//! - then, optionally, `:` and a port of decimal digits, at most 65535.
//!   The port may be empty (`emoji:`), which RFC 3986 allows.
//!
//! Nothing else passes: not userinfo (`x@emoji`, never part of `Host`),
//! not a list (`a, b`), not a space, a control byte or any byte above
//! 0x7F (obs-text is allowed in field values, not in hosts), not an empty
//! value.
//!
//! It is narrower than what `Authority::try_from` accepts (what this
//! check used to ask) in a few values no client sends, each of which now
//! gets the `400` of an invalid host rather than being served:
//!
//! - a comma, even without a space (`a,b`): a registered name may hold one
//!   in RFC 3986, but a DNS name never does, and in `Host` it is how two
//!   values read as one list;
//! - an IPv6 zone identifier (`[fe80::1%25eth0]`): it names an interface
//!   of the sending machine, which means nothing to this one, and the
//!   WHATWG URL standard, which browsers follow, has none;
//! - anything else in brackets: an IPvFuture literal (`[v1.x]`), or text
//!   that is no IPv6 address (`[emoji]`, `[]`);
//! - a bracket in a name (`a[b]`), which RFC 3986 reserves as a delimiter;
//! - a signed port (`emoji:+80`), which `u16::from_str` reads but RFC
//!   3986's `*DIGIT` does not allow.
//!
//! Everything this check passes, `Authority::try_from` accepts too, so
//! building one for a rewrite cannot fail where this check passed.

use std::net::Ipv6Addr;

/// Whether `value` is a `Host` field value: a host and an optional port,
/// as the [module docs](self) say.
pub(crate) fn is_host_and_port(value: &[u8]) -> bool {
    let (host, port) = match value {
        [b'[', ..] => match value.iter().position(|&b| b == b']') {
            Some(end) => value.split_at(end + 1),
            None => return false,
        },
        _ => match value.iter().position(|&b| b == b':') {
            Some(colon) => value.split_at(colon),
            None => (value, &[][..]),
        },
    };
    let port_ok = match port {
        [] => true,
        [b':', digits @ ..] => is_port(digits),
        _ => false,
    };
    port_ok && (is_ip_literal(host) || is_reg_name(host))
}

/// An IPv6 address in brackets; no zone identifier, no IPvFuture.
fn is_ip_literal(host: &[u8]) -> bool {
    let Some(inner) = host.strip_prefix(b"[").and_then(|h| h.strip_suffix(b"]")) else {
        return false;
    };
    std::str::from_utf8(inner).is_ok_and(|inner| inner.parse::<Ipv6Addr>().is_ok())
}

/// RFC 3986's `reg-name` without percent-encoding or commas, and not
/// empty.
fn is_reg_name(host: &[u8]) -> bool {
    !host.is_empty()
        && host
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || NAME_PUNCTUATION.contains(b))
}

/// The bytes besides letters and digits a name may hold: RFC 3986's
/// unreserved marks and sub-delimiters, less the comma.
const NAME_PUNCTUATION: &[u8] = b"-._~!$&'()*+;=";

/// Decimal digits naming a port, or none (an empty port). Leading zeros
/// are digits like any other (`emoji:0080` is port 80).
fn is_port(digits: &[u8]) -> bool {
    digits
        .iter()
        .try_fold(0_u32, |port, &b| {
            b.is_ascii_digit()
                .then(|| (port * 10 + u32::from(b - b'0')).min(u32::from(u16::MAX) + 1))
        })
        .is_some_and(|port| port <= u32::from(u16::MAX))
}

#[cfg(test)]
mod tests;
