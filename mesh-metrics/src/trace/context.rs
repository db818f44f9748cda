//! The trace context a request carries, in the formats tracers send it.
//!
//! A request joins a trace through headers its caller's tracer wrote:
//!
//! - W3C Trace Context, `traceparent: 00-<trace id>-<parent id>-<flags>`;
//! - Zipkin's B3 in one header, `b3: <trace id>-<span id>[-<sampled>[-<parent id>]]`;
//! - B3 in several, `x-b3-traceid`, `x-b3-spanid`, `x-b3-sampled`,
//!   `x-b3-flags` and `x-b3-parentspanid`.
//!
//! The proxy is a hop of its own in the trace: it gives the request a new
//! span id, writes it into every format the request carries (so that the
//! next hop's span is the proxy's child, whichever format that hop reads),
//! and reports its span with the caller's span as the parent. Everything
//! else in the headers, `tracestate` included, passes unchanged. A header
//! that does not parse, or is sent more than once, is left alone and
//! ignored, as if absent: a broken tracer upstream must not break the
//! request. B3's single header is read before the others, so `b3: 0`
//! (B3's "deny") unsamples the context of `x-b3-*` headers.

use http::{HeaderMap, HeaderName, HeaderValue};

/// `traceparent`: W3C Trace Context.
pub(crate) const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `b3`: B3 in a single header.
pub(crate) const B3: HeaderName = HeaderName::from_static("b3");
const X_B3_TRACEID: HeaderName = HeaderName::from_static("x-b3-traceid");
const X_B3_SPANID: HeaderName = HeaderName::from_static("x-b3-spanid");
const X_B3_PARENTSPANID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
const X_B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
const X_B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// A 128-bit trace id. B3's 64-bit ids are widened with leading zeros, as
/// OpenTelemetry reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceId(pub [u8; 16]);

/// A 64-bit span id; never zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanId(pub [u8; 8]);

/// What the first trace header of a request says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace the request belongs to.
    pub trace_id: TraceId,
    /// The caller's span: the parent of the proxy's.
    pub parent: SpanId,
    /// Whether the caller asked for the trace to be recorded.
    pub sampled: bool,
}

impl TraceContext {
    /// The context of the first format `headers` carry that parses: W3C
    /// first, then B3 in one header, then B3 in several. `None` when there
    /// is none.
    pub fn read(headers: &HeaderMap) -> Option<Self> {
        let w3c = || one(headers, TRACEPARENT).and_then(parse_traceparent);
        let single = || one(headers, B3).and_then(parse_b3_single);
        w3c().or_else(single).or_else(|| read_b3_multi(headers))
    }
}

/// The value of a trace header sent once. A header sent twice is as if
/// absent: which of two contexts is the caller's cannot be known, and the
/// W3C's test suite expects a repeated `traceparent` to be ignored.
fn one(headers: &HeaderMap, name: HeaderName) -> Option<&HeaderValue> {
    let mut values = headers.get_all(name).into_iter();
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// B3 in several headers, where a `b3` header with a sampling state alone
/// (`b3: 0`, B3's "deny") overrides `x-b3-sampled`: B3 reads the single
/// header before the others.
fn read_b3_multi(headers: &HeaderMap) -> Option<TraceContext> {
    let mut context = parse_b3_multi(headers)?;
    let state = one(headers, B3).and_then(|v| v.to_str().ok());
    if let Some(sampled) = state.and_then(b3_sampled) {
        context.sampled = sampled;
    }
    Some(context)
}

/// Writes `span` as the current span into every trace format `headers`
/// carry that parses, so that the next hop is `span`'s child.
pub(crate) fn propagate(headers: &mut HeaderMap, span: SpanId) {
    let id = hex(&span.0);
    if let Some(value) = one(headers, TRACEPARENT)
        && parse_traceparent(value).is_some()
        && let Ok(text) = value.to_str()
    {
        // `00-<trace id>-<parent id>-<flags>`: only the parent changes.
        // A later version is written as the version this proxy knows, with
        // the fields that version defines.
        let written = format!("00-{}-{id}-{}", &text[3..35], &text[53..55]);
        insert(headers, TRACEPARENT, &written);
    }
    if let Some(value) = one(headers, B3)
        && parse_b3_single(value).is_some()
        && let Ok(text) = value.to_str()
    {
        let mut fields = text.split('-');
        let trace = fields.next().unwrap_or_default();
        let caller = fields.next().unwrap_or_default();
        let written = match fields.next() {
            Some(sampled) => format!("{trace}-{id}-{sampled}-{caller}"),
            None => format!("{trace}-{id}"),
        };
        insert(headers, B3, &written);
    }
    if parse_b3_multi(headers).is_some()
        && let Some(caller) = headers.get(X_B3_SPANID).cloned()
    {
        headers.insert(X_B3_PARENTSPANID, caller);
        insert(headers, X_B3_SPANID, &id);
    }
}

fn insert(headers: &mut HeaderMap, name: HeaderName, text: &str) {
    // Hex digits and dashes are always a valid value.
    if let Ok(value) = HeaderValue::from_str(text) {
        headers.insert(name, value);
    }
}

/// `00-<32 hex>-<16 hex>-<2 hex>`, lowercase (W3C Trace Context, §3.2).
/// A version after 00 is read by the fields 00 defines, and may carry more
/// after a dash; version `ff` is invalid, as are all-zero ids.
fn parse_traceparent(value: &HeaderValue) -> Option<TraceContext> {
    let text = value.to_str().ok()?.as_bytes();
    if text.len() < 55 || (text.len() > 55 && text[55] != b'-') {
        return None;
    }
    let version = lower_hex::<1>(&text[0..2])?;
    if version[0] == 0xff || (version[0] == 0 && text.len() != 55) {
        return None;
    }
    if text[2] != b'-' || text[35] != b'-' || text[52] != b'-' {
        return None;
    }
    let trace_id = lower_hex::<16>(&text[3..35])?;
    let parent = lower_hex::<8>(&text[36..52])?;
    let flags = lower_hex::<1>(&text[53..55])?;
    context(trace_id, parent, flags[0] & 1 == 1)
}

/// `<trace id>-<span id>[-<sampling state>[-<parent span id>]]`. A header
/// that carries only a sampling state has no context to join.
fn parse_b3_single(value: &HeaderValue) -> Option<TraceContext> {
    let text = value.to_str().ok()?;
    let mut fields = text.split('-');
    let trace_id = b3_trace_id(fields.next()?)?;
    let span = b3_span_id(fields.next()?)?;
    let sampled = match fields.next() {
        None => false,
        Some(state) => b3_sampled(state)?,
    };
    if let Some(parent) = fields.next() {
        b3_span_id(parent)?;
    }
    if fields.next().is_some() {
        return None;
    }
    context(trace_id, span, sampled)
}

/// `x-b3-traceid` and `x-b3-spanid`, sampled by `x-b3-sampled` (`1` or
/// `true`) or `x-b3-flags: 1` (debug, which implies sampling).
fn parse_b3_multi(headers: &HeaderMap) -> Option<TraceContext> {
    let text = |name| one(headers, name).and_then(|v| v.to_str().ok());
    let trace_id = b3_trace_id(text(X_B3_TRACEID)?)?;
    let span = b3_span_id(text(X_B3_SPANID)?)?;
    let debug = text(X_B3_FLAGS) == Some("1");
    let sampled = debug || matches!(text(X_B3_SAMPLED), Some("1" | "true"));
    context(trace_id, span, sampled)
}

fn context(trace_id: [u8; 16], parent: [u8; 8], sampled: bool) -> Option<TraceContext> {
    let zero = |id: &[u8]| id.iter().all(|&b| b == 0);
    if zero(&trace_id) || zero(&parent) {
        return None;
    }
    Some(TraceContext {
        trace_id: TraceId(trace_id),
        parent: SpanId(parent),
        sampled,
    })
}

/// A B3 trace id: 16 or 32 hex digits.
fn b3_trace_id(text: &str) -> Option<[u8; 16]> {
    match text.len() {
        32 => lower_hex::<16>(text.as_bytes()),
        16 => {
            let low = lower_hex::<8>(text.as_bytes())?;
            let mut id = [0; 16];
            id[8..].copy_from_slice(&low);
            Some(id)
        }
        _ => None,
    }
}

fn b3_span_id(text: &str) -> Option<[u8; 8]> {
    (text.len() == 16).then(|| lower_hex::<8>(text.as_bytes()))?
}

/// B3's sampling state: `1` sampled, `d` debug (sampled), `0` not.
fn b3_sampled(state: &str) -> Option<bool> {
    match state {
        "1" | "d" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// `N` bytes from exactly `2N` lowercase hex digits.
fn lower_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// Lowercase hex, as every format writes ids.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const PARENT: &str = "00f067aa0ba902b7";
    const NEW: SpanId = SpanId([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]);

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    fn trace_id(text: &str) -> TraceId {
        TraceId(lower_hex::<16>(text.as_bytes()).unwrap())
    }

    fn span_id(text: &str) -> SpanId {
        SpanId(lower_hex::<8>(text.as_bytes()).unwrap())
    }

    #[test]
    fn traceparent_is_read_and_only_its_parent_is_rewritten() {
        let value = format!("00-{TRACE}-{PARENT}-01");
        let mut h = headers(&[("traceparent", &value), ("tracestate", "congo=t61rcWkgMzE")]);
        let ctx = TraceContext::read(&h).unwrap();
        assert_eq!(ctx.trace_id, trace_id(TRACE));
        assert_eq!(ctx.parent, span_id(PARENT));
        assert!(ctx.sampled);

        propagate(&mut h, NEW);
        assert_eq!(h["traceparent"], format!("00-{TRACE}-1122334455667788-01"));
        assert_eq!(h["tracestate"], "congo=t61rcWkgMzE");
    }

    #[test]
    fn the_sampled_flag_is_bit_zero_of_the_flags() {
        for (flags, sampled) in [("00", false), ("01", true), ("02", false), ("03", true)] {
            let h = headers(&[("traceparent", &format!("00-{TRACE}-{PARENT}-{flags}"))]);
            assert_eq!(TraceContext::read(&h).unwrap().sampled, sampled, "{flags}");
        }
    }

    #[test]
    fn invalid_traceparents_are_ignored_and_left_alone() {
        let zero_trace = format!("00-{}-{PARENT}-01", "0".repeat(32));
        let zero_parent = format!("00-{TRACE}-{}-01", "0".repeat(16));
        let upper = format!("00-{}-{PARENT}-01", TRACE.to_uppercase());
        let short = format!("00-{}-{PARENT}-01", &TRACE[1..]);
        let ff = format!("ff-{TRACE}-{PARENT}-01");
        let v00_longer = format!("00-{TRACE}-{PARENT}-01-extra");
        let no_dashes = format!("00_{TRACE}_{PARENT}_01");
        for bad in [
            zero_trace,
            zero_parent,
            upper,
            short,
            ff,
            v00_longer,
            no_dashes,
        ] {
            let mut h = headers(&[("traceparent", &bad)]);
            assert_eq!(TraceContext::read(&h), None, "{bad}");
            propagate(&mut h, NEW);
            assert_eq!(h["traceparent"], bad.as_str());
        }
    }

    #[test]
    fn a_later_traceparent_version_is_read_by_the_fields_version_00_defines() {
        let later = format!("01-{TRACE}-{PARENT}-01-what-comes-next");
        let mut h = headers(&[("traceparent", &later)]);
        assert!(TraceContext::read(&h).unwrap().sampled);
        propagate(&mut h, NEW);
        assert_eq!(h["traceparent"], format!("00-{TRACE}-1122334455667788-01"));
    }

    #[test]
    fn b3_single_keeps_its_trace_id_width_and_names_the_caller_as_parent() {
        let mut h = headers(&[("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-1-05e3ac9a4f6e3b90")]);
        let ctx = TraceContext::read(&h).unwrap();
        assert_eq!(ctx.trace_id, trace_id("0000000000000000a3ce929d0e0e4736"));
        assert_eq!(ctx.parent, span_id(PARENT));
        assert!(ctx.sampled);
        propagate(&mut h, NEW);
        assert_eq!(
            h["b3"],
            "a3ce929d0e0e4736-1122334455667788-1-00f067aa0ba902b7"
        );

        let mut h = headers(&[("b3", &format!("{TRACE}-{PARENT}"))]);
        assert!(!TraceContext::read(&h).unwrap().sampled);
        propagate(&mut h, NEW);
        assert_eq!(h["b3"], format!("{TRACE}-1122334455667788"));
    }

    #[test]
    fn b3_single_sampling_states() {
        for (state, sampled) in [
            ("1", Some(true)),
            ("d", Some(true)),
            ("0", Some(false)),
            ("x", None),
        ] {
            let h = headers(&[("b3", &format!("{TRACE}-{PARENT}-{state}"))]);
            assert_eq!(
                TraceContext::read(&h).map(|c| c.sampled),
                sampled,
                "{state}"
            );
        }
        // Only a sampling decision: nothing to join.
        assert_eq!(TraceContext::read(&headers(&[("b3", "1")])), None);
    }

    #[test]
    fn b3_multi_moves_the_callers_span_to_the_parent() {
        let mut h = headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", PARENT),
            ("x-b3-parentspanid", "05e3ac9a4f6e3b90"),
            ("x-b3-sampled", "1"),
        ]);
        let ctx = TraceContext::read(&h).unwrap();
        assert_eq!(ctx.parent, span_id(PARENT));
        assert!(ctx.sampled);
        propagate(&mut h, NEW);
        assert_eq!(h["x-b3-spanid"], "1122334455667788");
        assert_eq!(h["x-b3-parentspanid"], PARENT);
        assert_eq!(h["x-b3-traceid"], TRACE);
    }

    #[test]
    fn b3_multi_sampling_comes_from_sampled_or_the_debug_flag() {
        let with = |extra: &[(&str, &str)]| {
            let mut pairs = vec![("x-b3-traceid", TRACE), ("x-b3-spanid", PARENT)];
            pairs.extend_from_slice(extra);
            TraceContext::read(&headers(&pairs)).unwrap().sampled
        };
        assert!(with(&[("x-b3-sampled", "1")]));
        assert!(with(&[("x-b3-sampled", "true")]));
        assert!(with(&[("x-b3-flags", "1")]));
        assert!(!with(&[("x-b3-sampled", "0")]));
        assert!(!with(&[]));
    }

    #[test]
    fn w3c_comes_first_and_every_format_present_is_rewritten() {
        let mut h = headers(&[
            ("traceparent", &format!("00-{TRACE}-{PARENT}-00")),
            ("b3", &format!("{TRACE}-05e3ac9a4f6e3b90-1")),
        ]);
        let ctx = TraceContext::read(&h).unwrap();
        assert_eq!(ctx.parent, span_id(PARENT));
        assert!(!ctx.sampled);
        propagate(&mut h, NEW);
        assert_eq!(h["traceparent"], format!("00-{TRACE}-1122334455667788-00"));
        assert_eq!(
            h["b3"],
            format!("{TRACE}-1122334455667788-1-05e3ac9a4f6e3b90")
        );
    }

    #[test]
    fn a_repeated_trace_header_is_ignored_and_every_value_passes_on() {
        let other = "00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b8-01";
        for (name, first) in [
            ("traceparent", format!("00-{TRACE}-{PARENT}-01")),
            ("b3", format!("{TRACE}-{PARENT}-1")),
            ("x-b3-spanid", PARENT.to_owned()),
        ] {
            let second = if name == "traceparent" {
                other
            } else {
                "05e3ac9a4f6e3b90"
            };
            let mut h = headers(&[("x-b3-traceid", TRACE), ("x-b3-sampled", "1")]);
            h.append(HeaderName::from_static(name), first.parse().unwrap());
            h.append(HeaderName::from_static(name), second.parse().unwrap());
            let before = h.clone();
            assert_eq!(TraceContext::read(&h), None, "{name}");
            propagate(&mut h, NEW);
            assert_eq!(h, before, "{name}");
        }
    }

    #[test]
    fn b3_deny_in_the_single_header_overrides_the_multi_headers() {
        let mut pairs = vec![
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", PARENT),
            ("x-b3-sampled", "1"),
        ];
        pairs.push(("b3", "0"));
        let ctx = TraceContext::read(&headers(&pairs)).unwrap();
        assert!(!ctx.sampled);
        assert_eq!(ctx.parent, span_id(PARENT));
        pairs[2] = ("x-b3-sampled", "0");
        pairs[3] = ("b3", "d");
        assert!(TraceContext::read(&headers(&pairs)).unwrap().sampled);
    }

    #[test]
    fn no_headers_no_context() {
        assert_eq!(TraceContext::read(&HeaderMap::new()), None);
        let h = headers(&[("x-b3-traceid", TRACE)]);
        assert_eq!(TraceContext::read(&h), None);
    }
}
