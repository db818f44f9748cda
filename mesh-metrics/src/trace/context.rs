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
//! and reports its span with the caller's span as the parent, clearing
//! only the `traceparent` flags no version of W3C Trace Context defines,
//! as it requires. Everything else in the headers, `tracestate` included,
//! passes unchanged. A header
//! that does not parse, or (`traceparent`, `b3`) is sent more than once,
//! is left alone and ignored, as if absent: a broken tracer upstream must
//! not break the request. Of the `x-b3-*` headers the first value counts,
//! as B3 says. B3's single header is read before the others, so `b3: 0`
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
        Carried::read(headers).map(|carried| carried.context)
    }
}

/// The trace formats a request carries that parse, read in one pass: the
/// context the proxy reports and the headers it writes back both come
/// from it, so that no header is looked up or parsed twice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Carried {
    /// The context of the first format that parses ([`TraceContext::read`]).
    pub(crate) context: TraceContext,
    /// `traceparent`'s context, and its flags.
    w3c: Option<(TraceContext, u8)>,
    /// `b3`'s.
    single: Option<B3Single>,
    /// The `x-b3-*` headers' context (which `b3: 0` may have unsampled).
    multi: Option<TraceContext>,
}

/// What a `b3` header said, to write it back with the proxy's span.
#[derive(Clone, Copy, Debug)]
struct B3Single {
    context: TraceContext,
    /// Its trace id had 32 digits, not 16.
    wide: bool,
    /// Its sampling state (`0`, `1` or `d`), when it had one.
    state: Option<u8>,
}

impl Carried {
    /// The formats `headers` carry that parse; `None` when none does.
    pub(crate) fn read(headers: &HeaderMap) -> Option<Self> {
        let w3c = one(headers, TRACEPARENT).and_then(parse_traceparent);
        let b3 = one(headers, B3);
        let single = b3.and_then(parse_b3_single);
        let multi = parse_b3_multi(headers).map(|mut context| {
            // B3 reads the single header before the others: one with a
            // sampling state alone (`b3: 0`, B3's "deny") overrides
            // `x-b3-sampled`.
            let state = b3.and_then(|v| v.to_str().ok());
            if let Some(sampled) = state.and_then(b3_sampled) {
                context.sampled = sampled;
            }
            context
        });
        let context = w3c
            .map(|(context, _)| context)
            .or(single.map(|b3| b3.context))
            .or(multi)?;
        Some(Self {
            context,
            w3c,
            single,
            multi,
        })
    }

    /// Whether the context came from `traceparent`, which `tracestate`
    /// goes with.
    pub(crate) fn is_w3c(&self) -> bool {
        self.w3c.is_some()
    }

    /// Writes `span` as the current span into every format read, so that
    /// the next hop is `span`'s child.
    pub(crate) fn write(&self, headers: &mut HeaderMap, span: SpanId) {
        // Written on the stack: the one allocation per header is its value's.
        let mut id = [0; 16];
        hex_into(&mut id, &span.0);
        if let Some((context, flags)) = self.w3c {
            // `00-<trace id>-<parent id>-<flags>`: the parent changes, and
            // flags no version defines are cleared ("Vendors MUST set those
            // to zero", §3.2.2.5). A later version is written as the version
            // this proxy knows, with the fields that version defines.
            let mut written = Written::default();
            written.push(b"00-");
            written.push_hex(&context.trace_id.0);
            written.push(b"-");
            written.push(&id);
            written.push(b"-");
            written.push_hex(&[flags & KNOWN_FLAGS]);
            written.insert(headers, TRACEPARENT);
        }
        if let Some(b3) = self.single {
            // `<trace id>-<caller>[-<sampled>[-<its parent>]]` becomes
            // `<trace id>-<id>[-<sampled>-<caller>]`, the trace id as wide
            // as it came.
            let trace = &b3.context.trace_id.0;
            let mut written = Written::default();
            written.push_hex(if b3.wide { trace } else { &trace[8..] });
            written.push(b"-");
            written.push(&id);
            if let Some(state) = b3.state {
                written.push(b"-");
                written.push(&[state]);
                written.push(b"-");
                written.push_hex(&b3.context.parent.0);
            }
            written.insert(headers, B3);
        }
        if let Some(context) = self.multi {
            let mut caller = Written::default();
            caller.push_hex(&context.parent.0);
            caller.insert(headers, X_B3_PARENTSPANID);
            if let Ok(value) = HeaderValue::from_bytes(&id) {
                headers.insert(X_B3_SPANID, value);
            }
            // B3 reads `true` and `false` from older tracers, but asks that
            // they not be written: the context goes on as `1` or `0`.
            let legacy = match headers.get(X_B3_SAMPLED).map(HeaderValue::as_bytes) {
                Some(b"true") => Some("1"),
                Some(b"false") => Some("0"),
                _ => None,
            };
            if let Some(state) = legacy {
                headers.insert(X_B3_SAMPLED, HeaderValue::from_static(state));
            }
        }
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

/// Writes `span` as the current span into every trace format `headers`
/// carry that parses, so that the next hop is `span`'s child.
#[cfg(test)]
pub(crate) fn propagate(headers: &mut HeaderMap, span: SpanId) {
    if let Some(carried) = Carried::read(headers) {
        carried.write(headers, span);
    }
}

/// A header value being written: at most a `b3` header's 68 bytes
/// (`<32>-<16>-<1>-<16>`).
struct Written {
    bytes: [u8; 68],
    len: usize,
}

impl Default for Written {
    fn default() -> Self {
        Self {
            bytes: [0; 68],
            len: 0,
        }
    }
}

impl Written {
    /// Appends `part`; what does not fit is left out, and the value then
    /// fails to parse downstream rather than here. Parsed input never
    /// comes near it.
    fn push(&mut self, part: &[u8]) {
        let end = (self.len + part.len()).min(self.bytes.len());
        let n = end - self.len;
        self.bytes[self.len..end].copy_from_slice(&part[..n]);
        self.len = end;
    }

    /// Appends `bytes` in lowercase hex.
    fn push_hex(&mut self, bytes: &[u8]) {
        let end = (self.len + 2 * bytes.len()).min(self.bytes.len());
        hex_into(&mut self.bytes[self.len..end], bytes);
        self.len = end - (end - self.len) % 2;
    }

    fn insert(&self, headers: &mut HeaderMap, name: HeaderName) {
        // Hex digits and dashes are always a valid value.
        if let Ok(value) = HeaderValue::from_bytes(&self.bytes[..self.len]) {
            headers.insert(name, value);
        }
    }
}

/// The `traceparent` flags defined so far: sampled (`01`) and, since
/// Trace Context Level 2, a random trace id (`02`), which stays true of
/// the trace id the proxy passes on unchanged.
const KNOWN_FLAGS: u8 = 0b11;

/// `00-<32 hex>-<16 hex>-<2 hex>`, lowercase (W3C Trace Context, §3.2).
/// A version after 00 is read by the fields 00 defines, and may carry more
/// after a dash; version `ff` is invalid, as are all-zero ids.
fn parse_traceparent(value: &HeaderValue) -> Option<(TraceContext, u8)> {
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
    let [flags] = lower_hex::<1>(&text[53..55])?;
    Some((context(trace_id, parent, flags & 1 == 1)?, flags))
}

/// `<trace id>-<span id>[-<sampling state>[-<parent span id>]]`. A header
/// that carries only a sampling state has no context to join.
fn parse_b3_single(value: &HeaderValue) -> Option<B3Single> {
    let text = value.to_str().ok()?;
    let mut fields = text.split('-');
    let trace = fields.next()?;
    let trace_id = b3_trace_id(trace)?;
    let span = b3_span_id(fields.next()?)?;
    let state = fields.next();
    let sampled = match state {
        None => false,
        Some(state) => b3_sampled(state)?,
    };
    if let Some(parent) = fields.next() {
        b3_span_id(parent)?;
    }
    if fields.next().is_some() {
        return None;
    }
    Some(B3Single {
        context: context(trace_id, span, sampled)?,
        wide: trace.len() == 32,
        state: state.and_then(|s| s.bytes().next()),
    })
}

/// `x-b3-traceid` and `x-b3-spanid`, sampled by `x-b3-sampled` (`1` or
/// `true`) or `x-b3-flags: 1` (debug, which implies sampling). Of a header
/// sent twice the first value counts, as B3 has it.
fn parse_b3_multi(headers: &HeaderMap) -> Option<TraceContext> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
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
    let mut out = vec![0; bytes.len() * 2];
    hex_into(&mut out, bytes);
    String::from_utf8(out).unwrap_or_default()
}

/// Writes `bytes` into `out` in lowercase hex, as far as `out` goes.
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
}

#[cfg(test)]
mod tests;
