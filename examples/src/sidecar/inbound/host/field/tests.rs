use http::uri::Authority;

use super::*;

/// What the check asked before it read the value in place: does
/// `Authority::try_from` accept it, with a host and nothing after but an
/// optional port that `u16::from_str` reads, or an empty one.
fn authority_accepts(value: &[u8]) -> bool {
    let Ok(authority) = Authority::try_from(value) else {
        return false;
    };
    let name = authority.host();
    let Some(port) = authority.as_str().strip_prefix(name) else {
        return false;
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.is_empty() || p.parse::<u16>().is_ok());
    !name.is_empty() && port_ok
}

/// The values the module docs list as refused on purpose although
/// `Authority` accepts them: a comma, a signed port, brackets around
/// anything but an IPv6 address, or a bracket in a name.
fn refused_on_purpose(value: &[u8]) -> bool {
    let brackets_not_ipv6 = match value {
        [b'[', rest @ ..] => rest.iter().position(|&b| b == b']').is_none_or(|end| {
            std::str::from_utf8(&rest[..end])
                .ok()
                .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
                .is_none()
        }),
        _ => value.iter().any(|&b| b == b'[' || b == b']'),
    };
    brackets_not_ipv6 || value.contains(&b',') || value.windows(2).any(|w| w == b":+")
}

#[test]
fn names_addresses_and_ports_pass_as_authority_takes_them() {
    for host in [
        "emoji",
        "EMOJI",
        "Emoji.:80",
        "emoji.",
        "emoji.emojivoto.svc.cluster.local",
        "emoji:",
        "emoji:8080",
        "emoji:0",
        "emoji:65535",
        "emoji:0080",
        "emoji:0000000000080",
        "10.0.0.7",
        "10.0.0.7:4143",
        "999.1.1.1",
        "a-b_c~d",
        "x!$&'()*+;=",
        "[::1]",
        "[::1]:",
        "[::1]:80",
        "[FE80::1]",
        "[fe80::1]:4143",
        "[::ffff:10.0.0.7]:443",
        "[1:2:3:4:5:6:7::]",
        "[2001:db8:85a3:0:0:8a2e:370:7334]:65535",
    ] {
        assert!(is_host_and_port(host.as_bytes()), "{host}");
        assert!(authority_accepts(host.as_bytes()), "{host}");
    }
}

#[test]
fn what_is_not_a_host_and_port_fails_as_authority_fails_it() {
    for host in [
        &b""[..],
        b":",
        b":80",
        b"emoji:65536",
        b"emoji:99999",
        b"emoji:4294967376",
        b"emoji:port",
        b"emoji:-1",
        b"emoji:8:0",
        b"emoji::80",
        b"user@emoji",
        b"user:pass@emoji:80",
        b"@emoji",
        b"emoji@",
        b"a, b",
        b"a b",
        b" emoji",
        b"emoji ",
        b"emoji\t",
        b"emoji%41",
        b"emoji/",
        b"emoji?x",
        b"emoji#x",
        // UTF-8, and obs-text bytes a field value may carry.
        "émoji".as_bytes(),
        b"emoji\x80",
        b"\xff",
        b"[::1",
        b"::1",
        b"::1]",
        b"[::1]x",
        b"[::1]:x",
        b"[::1]:65536",
        b"[[::1]]",
        b"1:2:3:4:5:6:7:8",
    ] {
        let shown = String::from_utf8_lossy(host);
        assert!(!is_host_and_port(host), "{shown}");
        assert!(!authority_accepts(host), "{shown}");
    }
}

#[test]
fn commas_zones_other_literals_brackets_in_names_and_signed_ports_fail_though_authority_takes_them()
{
    for host in [
        "a,b",
        "emoji,emoji:80",
        "[fe80::1%25eth0]",
        "[fe80::1%eth0]:80",
        "[v1.x]",
        "[emoji]",
        "[]",
        "a[b]",
        "a[b]:80",
        "emoji:+80",
        "[::1]:+80",
    ] {
        assert!(!is_host_and_port(host.as_bytes()), "{host}");
        assert!(authority_accepts(host.as_bytes()), "{host}");
        assert!(refused_on_purpose(host.as_bytes()), "{host}");
    }
}

/// Over every value of up to five bytes from the bytes that matter to
/// the grammar: what passes, `Authority` takes (a rewrite cannot fail),
/// and the two disagree only where the module docs say.
#[test]
fn the_check_agrees_with_authority_but_where_documented() {
    const ALPHABET: &[u8] = b"aZ1._!:[]@,%+ \x80";
    let mut value = Vec::new();
    let mut count = 0;
    for len in 0..=5_u32 {
        for mut n in 0..ALPHABET.len().pow(len) {
            value.clear();
            for _ in 0..len {
                value.push(ALPHABET[n % ALPHABET.len()]);
                n /= ALPHABET.len();
            }
            let shown = String::from_utf8_lossy(&value);
            let ours = is_host_and_port(&value);
            let theirs = authority_accepts(&value);
            assert!(!ours || theirs, "passed, and Authority refuses: {shown}");
            assert!(
                ours || !theirs || refused_on_purpose(&value),
                "refused, and not on purpose: {shown}"
            );
            count += usize::from(ours);
        }
    }
    // `[::1]` and `[::]` are among them, and the port forms of `a`.
    assert!(is_host_and_port(b"[::1]") && is_host_and_port(b"a:11"));
    assert!(count > 10_000, "{count}");
}
