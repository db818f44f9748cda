//! W3C `tracestate`: the vendors' part of a trace context, reported with
//! the span.
//!
//! `tracestate` is a list of `vendor=value` members that tracers pass
//! along with `traceparent` (W3C Trace Context, §3.3). A trace store shows
//! it with each span, and some read their own member back (a sampling
//! probability, a tenant), so the proxy's span carries the caller's. The
//! header itself passes to the next hop as it came: the proxy is no
//! vendor, and has no member of its own to add.
//!
//! The span keeps the caller's `tracestate` only if it is one: at most 32
//! members (§3.3.1.1), each key once, keys and values of the grammar of
//! §3.3.1.3. Anything else is discarded whole, as the W3C's test suite
//! expects of a vendor, and as OpenTelemetry's SDKs do: a trace store
//! would show, or a vendor read back, members no tracer could have
//! written. Empty members and the blanks around members are allowed.
//!
//! The copy a span keeps is bounded, so that the exporter's queue is: the
//! W3C lets a hop cut a `tracestate` longer than 512 characters, removing
//! members longer than 128 characters first, then members from the end
//! (§3.3.1.5, "Tracestate Limits"); the span keeps what is left.

use http::{HeaderMap, HeaderName};

/// `tracestate`.
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The longest `tracestate` a span keeps, in bytes.
pub(crate) const MAX_TRACESTATE: usize = 512;

/// Members longer than this are the first to go from a `tracestate` over
/// [`MAX_TRACESTATE`].
const LARGE_MEMBER: usize = 128;

/// The most members a `tracestate` has (§3.3.1.1).
const MAX_MEMBERS: usize = 32;

/// The `tracestate` `headers` carry, its values joined with `,` as HTTP
/// combines a list, cut to [`MAX_TRACESTATE`] bytes by removing members as
/// the W3C says. `None` without one, when it is empty or not text, when
/// it is not a valid `tracestate` ([`is_valid`]), or when nothing is left.
pub(crate) fn read(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(TRACESTATE).into_iter();
    let first = values.next()?.to_str().ok()?;
    let mut state = first.trim().to_owned();
    for value in values {
        let value = value.to_str().ok()?.trim();
        if !value.is_empty() {
            if !state.is_empty() {
                state.push(',');
            }
            state.push_str(value);
        }
    }
    if !is_valid(&state) {
        return None;
    }
    if state.len() > MAX_TRACESTATE {
        state = cut(&state);
    }
    (!state.is_empty()).then_some(state)
}

/// Whether `state` is a `tracestate` W3C Trace Context allows: at most
/// [`MAX_MEMBERS`] members, blanks around them and empty ones aside, each
/// `key=value` of §3.3.1.3's grammar, and no key twice. Stops at the first
/// member that fails, so that a list of thousands costs no more than 33.
fn is_valid(state: &str) -> bool {
    let mut keys: [&str; MAX_MEMBERS] = [""; MAX_MEMBERS];
    let mut count = 0;
    for member in state.split(',').map(|m| m.trim_matches([' ', '\t'])) {
        if member.is_empty() {
            continue;
        }
        let Some((key, value)) = member.split_once('=') else {
            return false;
        };
        if count == MAX_MEMBERS || !is_key(key) || !is_value(value) || keys[..count].contains(&key)
        {
            return false;
        }
        keys[count] = key;
        count += 1;
    }
    true
}

/// `simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )`,
/// or `tenant-id "@" system-id`, where `tenant-id` is 1 to 241 of those
/// starting with a letter or digit and `system-id` 1 to 14 starting with
/// a letter.
fn is_key(key: &str) -> bool {
    // The first character, and at most `most` more of the key's alphabet.
    let id = |text: &str, first: fn(&u8) -> bool, most: usize| match text.as_bytes() {
        [head, tail @ ..] => {
            first(head)
                && tail.len() <= most
                && tail
                    .iter()
                    .all(|&c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/'))
        }
        [] => false,
    };
    let letter = u8::is_ascii_lowercase;
    let letter_or_digit = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match key.split_once('@') {
        Some((tenant, system)) => id(tenant, letter_or_digit, 240) && id(system, letter, 13),
        None => id(key, letter, 255),
    }
}

/// `value = 0*255(chr) nblk-chr`: 1 to 256 printable ASCII characters but
/// `,` and `=`, the last not a space.
fn is_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    let printable = |c: &u8| matches!(c, b' '..=b'~') && *c != b',' && *c != b'=';
    (1..=256).contains(&bytes.len()) && bytes.iter().all(printable) && bytes.last() != Some(&b' ')
}

/// `state`, with members removed until it is at most [`MAX_TRACESTATE`]
/// bytes: those over [`LARGE_MEMBER`] first, from the end, then others
/// from the end. Empty members (`a=1,,b=2`) go, as the W3C allows.
///
/// The caller picks `state`, up to the size of a request's headers: the
/// members are measured once, and each is removed in a step.
fn cut(state: &str) -> String {
    let mut members: Vec<(&str, bool)> = state
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(|m| (m, true))
        .collect();
    // The kept members' bytes, and how many there are.
    let mut bytes: usize = members.iter().map(|(m, _)| m.len()).sum();
    let mut count = members.len();
    let over = |bytes: usize, count: usize| bytes + count.saturating_sub(1) > MAX_TRACESTATE;
    for large_only in [true, false] {
        for (member, kept) in members.iter_mut().rev() {
            if !over(bytes, count) {
                break;
            }
            if *kept && (!large_only || member.len() > LARGE_MEMBER) {
                *kept = false;
                bytes -= member.len();
                count -= 1;
            }
        }
    }
    let mut out = String::with_capacity(MAX_TRACESTATE);
    for (member, _) in members.iter().filter(|(_, kept)| *kept) {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(member);
    }
    out
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(TRACESTATE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_tracestate_is_kept_as_it_came_and_repeated_headers_are_joined() {
        assert_eq!(read(&headers(&[])), None);
        assert_eq!(read(&headers(&[" "])), None);
        assert_eq!(
            read(&headers(&["congo=t61rcWkgMzE"])).as_deref(),
            Some("congo=t61rcWkgMzE")
        );
        assert_eq!(
            read(&headers(&[
                "congo=t61rcWkgMzE",
                "",
                "rojo=00f067aa0ba902b7"
            ]))
            .as_deref(),
            Some("congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
        );
        let mut h = HeaderMap::new();
        h.insert(TRACESTATE, HeaderValue::from_bytes(b"a=\xff").unwrap());
        assert_eq!(read(&h), None, "not text");
    }

    #[test]
    fn a_tracestate_the_w3c_calls_invalid_goes_with_no_span() {
        // W3C Trace Context §3.3.1: at most 32 members, each key once, keys
        // and values of its grammar; the W3C's test suite expects such a
        // `tracestate` to be discarded, and a trace store to be sent none.
        let members =
            |n: usize| -> Vec<String> { (1..=n).map(|i| format!("bar{i:02}={i:02}")).collect() };
        let thirty_two = members(32);
        let mut values: Vec<String> = thirty_two.chunks(10).map(|c| c.join(",")).collect();
        assert_eq!(
            read(&headers(
                &values.iter().map(String::as_str).collect::<Vec<_>>()
            )),
            Some(thirty_two.join(","))
        );
        values.last_mut().unwrap().push_str(",bar33=33");
        assert_eq!(
            read(&headers(
                &values.iter().map(String::as_str).collect::<Vec<_>>()
            )),
            None
        );
        // Empty members are no members, and stay as they came.
        let sparse = format!("{},,, ,", thirty_two.join(","));
        assert_eq!(read(&headers(&[&sparse])), Some(sparse));

        let simple_256 = format!("{}=1", "z".repeat(256));
        let simple_257 = format!("{}=1", "z".repeat(257));
        let tenant_241 = format!("{}@{}=1", "t".repeat(241), "v".repeat(14));
        let tenant_242 = format!("{}@v=1", "t".repeat(242));
        let system_15 = format!("t@{}=1", "v".repeat(15));
        let value_256 = format!("foo={}", "v".repeat(256));
        let value_257 = format!("foo={}", "v".repeat(257));
        for (valid, state) in [
            (true, "foo=1"),
            (true, "foo=1 \t , \t bar=2, \t baz=3"),
            (true, "0tenant@vendor=1"),
            (
                true,
                "a0_-*/@z9_-*/= !\"#$%&'()*+-./0123456789:;<>?@AZ[]^_`az{|}~",
            ),
            (true, "foo= 1"),
            (true, &simple_256),
            (true, &tenant_241),
            (true, &value_256),
            (false, "foo=1,foo=1"),
            (false, "foo=1,foo=2"),
            (false, "foo =1"),
            (false, "FOO=1"),
            (false, "foo.bar=1"),
            (false, "0foo=1"),
            (false, "foo@=1,bar=2"),
            (false, "@foo=1,bar=2"),
            (false, "foo@@bar=1,bar=2"),
            (false, "foo@bar@baz=1,bar=2"),
            (false, "foo@0bar=1"),
            (false, "foo"),
            (false, "foo="),
            (false, "=1"),
            (false, "foo=a=b"),
            (false, &simple_257),
            (false, &tenant_242),
            (false, &system_15),
            (false, &value_257),
        ] {
            let kept = read(&headers(&[state]));
            assert_eq!(kept.is_some(), valid, "{state:?}");
        }
        // A key sent in two headers is as repeated as in one.
        assert_eq!(read(&headers(&["foo=1", "foo=2"])), None);
    }

    #[test]
    fn a_tracestate_of_many_members_is_refused_in_one_pass() {
        // A caller that asks for sampling picks the `tracestate` it sends:
        // 100,000 members fit in hyper's 400 KiB of headers. The 33rd is
        // where reading stops.
        let many = "a=1,".repeat(100_000);
        assert_eq!(read(&headers(&[&many])), None);
    }

    #[test]
    fn a_long_tracestate_loses_large_members_first_then_the_last() {
        // Large members go first, from the end, and only as many as need
        // to: 4 of 200 bytes and 3 of 3 are 815 bytes.
        let large: Vec<String> = (0..4)
            .map(|i| format!("big{i}={}", "x".repeat(195)))
            .collect();
        let members = format!(
            "{},a=1,{},b=1,{},c=1,{}",
            large[0], large[1], large[2], large[3]
        );
        let state = read(&headers(&[&members])).unwrap();
        assert_eq!(state, format!("{},a=1,{},b=1,c=1", large[0], large[1]));

        // 31 members of 12 bytes and one of 200: 603 bytes.
        let small: Vec<String> = (0..31).map(|i| format!("v{i:02}=01234567")).collect();
        let mut members = small.clone();
        members.insert(3, large[0].clone());
        let state = read(&headers(&[&members.join(",")])).unwrap();
        assert_eq!(state, small.join(","));
        assert!(state.len() <= MAX_TRACESTATE);

        // 32 small ones of 20 bytes: the last go until 512 bytes are left
        // (24 of 21).
        let many: Vec<String> = (0..32)
            .map(|i| format!("v{i:02}={}", "0".repeat(16)))
            .collect();
        let state = read(&headers(&[&many.join(",")])).unwrap();
        assert_eq!(state, many[..24].join(","));
        assert_eq!(state.len(), 24 * 21 - 1);

        // One member alone over the bound: nothing is left.
        let huge = format!("{}={}", "k".repeat(256), "y".repeat(256));
        assert_eq!(read(&headers(&[&huge])), None);
    }
}
