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

/// The `tracestate` `headers` carry, its values joined with `,` as HTTP
/// combines a list, cut to [`MAX_TRACESTATE`] bytes by removing members as
/// the W3C says. `None` without one, when it is empty or not text, or when
/// nothing is left.
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
    if state.len() > MAX_TRACESTATE {
        state = cut(&state);
    }
    (!state.is_empty()).then_some(state)
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
    fn a_tracestate_of_many_members_is_cut_in_one_pass() {
        // A caller that asks for sampling picks the `tracestate` it sends:
        // 200,000 one-byte members fit in hyper's 400 KiB of headers. Cut
        // one member at a time, each time measuring what is left, that was
        // some 10^10 steps for one request.
        let many = "a,".repeat(200_000);
        let state = read(&headers(&[&many])).unwrap();
        assert_eq!(state, "a,".repeat(256).trim_end_matches(','));
        // Large members go first, wherever they are, and only as many as
        // need to.
        let large = format!("big={}", "x".repeat(196));
        let state = read(&headers(&[&format!("{large},{many}")])).unwrap();
        assert_eq!(state, "a,".repeat(256).trim_end_matches(','));
        let members = format!("{large},a,{large},b,{large},c,{large}");
        let state = read(&headers(&[&members])).unwrap();
        assert_eq!(state, format!("{large},a,{large},b,c"));
    }

    #[test]
    fn a_long_tracestate_loses_large_members_first_then_the_last() {
        // 40 members of 11 bytes and a comma: 479 bytes, and one of 200.
        let small: Vec<String> = (0..40).map(|i| format!("v{i:02}=0123456")).collect();
        let large = format!("big={}", "x".repeat(196));
        let mut members = small.clone();
        members.insert(3, large.clone());
        let state = read(&headers(&[&members.join(",")])).unwrap();
        assert_eq!(state, small.join(","));
        assert!(state.len() <= MAX_TRACESTATE);

        // 50 small ones: the last go until 512 bytes are left (42 of 12).
        let many: Vec<String> = (0..50).map(|i| format!("v{i:02}=0123456")).collect();
        let state = read(&headers(&[&many.join(",")])).unwrap();
        assert_eq!(state, many[..42].join(","));
        assert_eq!(state.len(), 42 * 12 - 1);

        // One member alone over the bound: nothing is left.
        let huge = format!("huge={}", "y".repeat(600));
        assert_eq!(read(&headers(&[&huge])), None);
    }
}
