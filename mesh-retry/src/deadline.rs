//! Deadlines that travel with a request, within a process and across hops.
//!
//! A caller that gives up after two seconds gains nothing from an upstream
//! that works for ten. So a request's deadline is carried along: inside the
//! process as the [`Deadline`] request extension, and to the next hop as a
//! header holding the time that remains.
//!
//! - gRPC requests carry gRPC's own `grpc-timeout` (`1*8DIGIT unit`, with
//!   units `H`, `M`, `S`, `m`, `u`, `n`), which every gRPC server honours.
//! - Other HTTP requests carry **`mesh-deadline`**: the whole milliseconds
//!   that remain, as a decimal integer (`mesh-deadline: 1500`). A relative
//!   time, like `grpc-timeout`, so the hops need no synchronized clocks.
//!   Fractions of a millisecond are dropped, so a hop never sees more time
//!   than its caller had, but for less than a millisecond, written `1`:
//!   `0` means the deadline has passed, and a request sent with time left
//!   must not be refused by the next hop as expired.
//!
//! A request whose deadline has passed when it arrives (`mesh-deadline: 0`,
//! `grpc-timeout: 0n`, or a [`Deadline`] extension behind us) is answered
//! with the timeout at once by every layer here (the timeout layers, the
//! [retry layer](crate::retry) and [`RouteStack`](crate::RouteStack)), and
//! not sent on: its caller has given up. Once a request is under way, the
//! retry layer sends no retry past its deadline and leaves the answer to a
//! [`RequestTimeout`](crate::RequestTimeout) outside it.
//!
//! On the way in, [`RequestTimeoutLayer`](crate::RequestTimeoutLayer) reads
//! the header of the request's kind (`grpc-timeout` on gRPC, `mesh-deadline`
//! on anything else) and keeps the nearer of it and its own timeout. On the way
//! out, the timeout layers write the time that remains, reduced by the time
//! already spent, and by the per-try timeout when that is nearer.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue, header::CONTENT_TYPE};
use tokio::time::Instant;

/// The header that carries the milliseconds remaining to a non-gRPC hop.
pub const MESH_DEADLINE: HeaderName = HeaderName::from_static("mesh-deadline");

/// gRPC's deadline header.
pub const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The longest a [`Deadline::after`] waits: about thirty years, past any
/// request, and well inside what the clock can hold.
pub const FAR_FUTURE: Duration = Duration::from_secs(86_400 * 365 * 30);

/// The instant by which a request must be answered. A request extension,
/// inserted by [`RequestTimeoutLayer`](crate::RequestTimeoutLayer) and read
/// by the retry layer (which answers a request whose deadline has passed,
/// and starts no retry that the deadline would cut short) and by the
/// per-try timeout (which propagates it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Deadline(Instant);

impl Deadline {
    /// A deadline at `instant`.
    pub fn at(instant: Instant) -> Self {
        Self(instant)
    }

    /// A deadline `timeout` from now. A timeout too long for the clock to
    /// reach is held to [`FAR_FUTURE`] from now instead.
    pub fn after(timeout: Duration) -> Self {
        let now = Instant::now();
        Self(now.checked_add(timeout.min(FAR_FUTURE)).unwrap_or(now))
    }

    /// The instant.
    pub fn instant(self) -> Instant {
        self.0
    }

    /// The time left, zero once it has passed.
    pub fn remaining(self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }
}

/// The deadline the caller sent, when it is well formed: `grpc-timeout` on
/// a gRPC request, `mesh-deadline` on any other, as [`propagate`] writes
/// them.
pub(crate) fn incoming(headers: &HeaderMap, grpc: bool) -> Option<Duration> {
    let name = if grpc { GRPC_TIMEOUT } else { MESH_DEADLINE };
    headers.get(name).and_then(|value| parse_sent(value, grpc))
}

/// Reads the value of the deadline header a request of its kind carries.
fn parse_sent(value: &HeaderValue, grpc: bool) -> Option<Duration> {
    if grpc {
        parse_grpc_timeout(value)
    } else {
        parse_mesh_deadline(value)
    }
}

/// Whether a request is gRPC ([`is_grpc`](mesh_core::error::is_grpc)), and
/// the deadline its caller sent ([`incoming`]): what the route stack reads
/// of every request's headers.
///
/// Looked up by name, each of the two costs hashing its name, and
/// `mesh-deadline` is long to hash. Most requests carry a handful of
/// headers, and one pass over those, comparing names (a standard name is
/// compared as a number), costs less than the two lookups; a request with
/// more than [`SCAN_AT_MOST`] values is looked up by name. Either way the
/// first value of each name is the one read, as a lookup reads it.
pub(crate) fn kind_and_sent(headers: &HeaderMap) -> (bool, Option<Duration>) {
    if headers.len() > SCAN_AT_MOST {
        let grpc = mesh_core::error::is_grpc(headers);
        return (grpc, incoming(headers, grpc));
    }
    let (mut content_type, mut grpc_timeout, mut mesh_deadline) = (None, None, None);
    for (name, value) in headers {
        let first = if *name == CONTENT_TYPE {
            &mut content_type
        } else if *name == GRPC_TIMEOUT {
            &mut grpc_timeout
        } else if *name == MESH_DEADLINE {
            &mut mesh_deadline
        } else {
            continue;
        };
        first.get_or_insert(value);
    }
    let grpc = content_type.is_some_and(mesh_core::error::is_grpc_content_type);
    let sent = if grpc { grpc_timeout } else { mesh_deadline };
    (grpc, sent.and_then(|value| parse_sent(value, grpc)))
}

/// The most header values [`kind_and_sent`] reads one by one.
const SCAN_AT_MOST: usize = 8;

/// The instant the caller's deadline header (see [`incoming`]) asks for,
/// counted from `now`: the deadline of a request that reached no
/// [`RequestTimeout`](crate::RequestTimeout), which would have made it a
/// [`Deadline`] extension.
pub(crate) fn sent(headers: &HeaderMap, grpc: bool, now: Instant) -> Option<Instant> {
    incoming(headers, grpc).and_then(|timeout| now.checked_add(timeout))
}

/// Writes `remaining` into the header the next hop reads: `grpc-timeout`
/// for gRPC, `mesh-deadline` otherwise.
pub(crate) fn propagate(headers: &mut HeaderMap, remaining: Duration, grpc: bool) {
    if grpc {
        headers.insert(GRPC_TIMEOUT, encode_grpc_timeout(remaining));
    } else {
        headers.insert(MESH_DEADLINE, mesh_deadline_value(remaining));
    }
}

/// Rewrites the deadline header a request already carries (`grpc-timeout`
/// on gRPC, `mesh-deadline` on any other) with the time left until
/// `deadline`, measured now. A retry copies the head of the first attempt,
/// whose header counted the time left when that attempt was sent; sent as
/// it was, it would tell the next hop about time that has since been
/// spent. A request without the header gets none: whoever sent it chose
/// not to propagate.
///
/// Returns whether the request still has time to be sent (see
/// [`time_left`]).
pub(crate) fn refresh(headers: &mut HeaderMap, deadline: Deadline) -> bool {
    let now = Instant::now();
    let grpc = mesh_core::error::is_grpc(headers);
    let name = if grpc { GRPC_TIMEOUT } else { MESH_DEADLINE };
    if headers.contains_key(&name) {
        propagate(
            headers,
            deadline.instant().saturating_duration_since(now),
            grpc,
        );
    }
    time_left(deadline.instant(), now, grpc)
}

/// Whether a retry sent `now` still has time before `deadline`: `false`
/// once the deadline has passed, and on a request that is not gRPC, with
/// less than a millisecond left, which `mesh-deadline` (whole
/// milliseconds) cannot say: it writes `1`, more than is left. A retry is
/// the mesh's own choice, not sent on so little, whichever layer writes
/// the header (one inside may). The timeout layers check only that the
/// deadline has not passed when a request arrives, which costs less on
/// every request: the caller's request goes out with what it has.
pub(crate) fn time_left(deadline: Instant, now: Instant, grpc: bool) -> bool {
    let remaining = deadline.saturating_duration_since(now);
    if grpc {
        !remaining.is_zero()
    } else {
        remaining >= Duration::from_millis(1)
    }
}

/// A `mesh-deadline` value: the whole milliseconds in `remaining`, and `1`
/// for less than one. `0` says the deadline has passed, and every hop
/// answers a request that says so as timed out without sending it on: a
/// request that still has time, and is sent, must not say it. So the
/// next hop may be told up to a millisecond more than its caller has;
/// the caller's own timer still answers on time.
pub fn mesh_deadline_value(remaining: Duration) -> HeaderValue {
    let millis = u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX);
    let millis = if millis == 0 && !remaining.is_zero() {
        1
    } else {
        millis
    };
    HeaderValue::from(millis)
}

/// Reads a `mesh-deadline` value: decimal milliseconds.
pub fn parse_mesh_deadline(value: &HeaderValue) -> Option<Duration> {
    let s = value.to_str().ok()?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().map(Duration::from_millis)
}

/// Reads a `grpc-timeout` value: one to eight digits and a unit.
pub fn parse_grpc_timeout(value: &HeaderValue) -> Option<Duration> {
    let bytes = value.as_bytes();
    let (&unit, digits) = bytes.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0_u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Writes a `grpc-timeout` value in the finest unit that fits eight digits,
/// rounding down.
pub fn encode_grpc_timeout(timeout: Duration) -> HeaderValue {
    const MAX: u128 = 99_999_999;
    let nanos = timeout.as_nanos();
    let (value, unit) = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ]
    .into_iter()
    .map(|(per, unit)| (nanos / per, unit))
    .find(|(value, _)| *value <= MAX)
    .unwrap_or((MAX, 'H'));
    let mut text = value.to_string();
    text.push(unit);
    // Digits and an ASCII letter are always a valid header value.
    HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static("99999999H"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(s: &str) -> HeaderValue {
        HeaderValue::from_str(s).unwrap()
    }

    #[test]
    fn grpc_timeouts_parse_in_every_unit() {
        for (text, expected) in [
            ("2H", Duration::from_secs(7200)),
            ("3M", Duration::from_secs(180)),
            ("10S", Duration::from_secs(10)),
            ("250m", Duration::from_millis(250)),
            ("99u", Duration::from_micros(99)),
            ("12345678n", Duration::from_nanos(12_345_678)),
        ] {
            assert_eq!(parse_grpc_timeout(&value(text)), Some(expected), "{text}");
        }
        for bad in ["", "S", "123456789S", "10s", "-1S", "1.5S", "10"] {
            assert_eq!(parse_grpc_timeout(&value(bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn grpc_timeouts_encode_in_the_finest_unit_that_fits() {
        for (timeout, expected) in [
            (Duration::from_nanos(1500), "1500n"),
            (Duration::from_millis(250), "250000u"),
            (Duration::from_secs(10), "10000000u"),
            (Duration::from_secs(1000), "1000000m"),
            (Duration::from_secs(200_000), "200000S"),
            (Duration::ZERO, "0n"),
        ] {
            assert_eq!(encode_grpc_timeout(timeout), expected);
            let parsed = parse_grpc_timeout(&encode_grpc_timeout(timeout)).unwrap();
            assert!(parsed <= timeout && timeout - parsed < Duration::from_secs(1));
        }
    }

    #[test]
    fn mesh_deadlines_are_whole_milliseconds() {
        assert_eq!(
            parse_mesh_deadline(&value("1500")),
            Some(Duration::from_millis(1500))
        );
        for bad in ["", "1.5", "-3", "10ms"] {
            assert_eq!(parse_mesh_deadline(&value(bad)), None, "{bad:?}");
        }
        let mut headers = HeaderMap::new();
        propagate(&mut headers, Duration::from_micros(1_999_999), false);
        assert_eq!(headers[MESH_DEADLINE], "1999");
        assert!(!headers.contains_key(GRPC_TIMEOUT));
        propagate(&mut headers, Duration::from_millis(5), true);
        assert_eq!(headers[GRPC_TIMEOUT], "5000000n");
    }

    /// The one pass over a small map reads what the two lookups read, on
    /// maps on either side of the size it passes over.
    #[test]
    fn kind_and_deadline_read_together_as_by_name() {
        let kinds = [
            None,
            Some("application/grpc"),
            Some("application/grpc+proto"),
            Some("application/grpcweb"),
            Some("text/plain"),
        ];
        let deadlines: [&[(&HeaderName, &str)]; 5] = [
            &[],
            &[(&MESH_DEADLINE, "1500")],
            &[(&GRPC_TIMEOUT, "2S")],
            &[
                (&MESH_DEADLINE, "100"),
                (&GRPC_TIMEOUT, "7m"),
                (&MESH_DEADLINE, "200"),
            ],
            &[
                (&GRPC_TIMEOUT, "garbage"),
                (&GRPC_TIMEOUT, "3S"),
                (&MESH_DEADLINE, "x"),
            ],
        ];
        let mut checked = 0;
        for filler in 0..=SCAN_AT_MOST + 2 {
            for kind in kinds {
                for sent in deadlines {
                    let mut headers = HeaderMap::new();
                    for i in 0..filler {
                        headers.append(
                            format!("x-filler-{}", i % 3).parse::<HeaderName>().unwrap(),
                            value("v"),
                        );
                    }
                    for (name, v) in sent {
                        headers.append(*name, value(v));
                    }
                    if let Some(kind) = kind {
                        headers.append(CONTENT_TYPE, value(kind));
                        headers.append(CONTENT_TYPE, value("text/plain"));
                    }
                    let grpc = mesh_core::error::is_grpc(&headers);
                    assert_eq!(
                        kind_and_sent(&headers),
                        (grpc, incoming(&headers, grpc)),
                        "{headers:?}"
                    );
                    checked += usize::from(headers.len() <= SCAN_AT_MOST);
                }
            }
        }
        assert!(
            checked > 100,
            "the pass itself was checked only {checked} times"
        );
        let mut headers = HeaderMap::new();
        headers.append(CONTENT_TYPE, value("application/grpc"));
        headers.append(GRPC_TIMEOUT, value("5S"));
        headers.append(MESH_DEADLINE, value("1"));
        assert_eq!(
            kind_and_sent(&headers),
            (true, Some(Duration::from_secs(5)))
        );
        headers.remove(CONTENT_TYPE);
        assert_eq!(
            kind_and_sent(&headers),
            (false, Some(Duration::from_millis(1)))
        );
    }

    #[test]
    fn grpc_requests_read_grpc_timeout_and_others_mesh_deadline() {
        let mut headers = HeaderMap::new();
        assert_eq!(incoming(&headers, false), None);
        headers.insert(MESH_DEADLINE, value("3000"));
        headers.insert(GRPC_TIMEOUT, value("2S"));
        assert_eq!(incoming(&headers, false), Some(Duration::from_secs(3)));
        assert_eq!(incoming(&headers, true), Some(Duration::from_secs(2)));
        headers.insert(GRPC_TIMEOUT, value("garbage"));
        assert_eq!(incoming(&headers, true), None);
    }
}
