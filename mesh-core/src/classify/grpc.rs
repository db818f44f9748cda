//! gRPC status codes, one at a time ([`GrpcCode`]) and as a set
//! ([`GrpcCodes`]).

use std::{fmt, str::FromStr};

use http::HeaderValue;

/// A gRPC status code, as carried in `grpc-status`.
///
/// The seventeen codes gRPC defines have constants and names. Any other
/// number can still be held, since a peer may send one; gRPC clients treat
/// such a code as `UNKNOWN`, and so does [`Classify`](super::Classify).
///
/// Names are the lowercase, dash-separated forms Linkerd's retry annotations
/// use (`deadline-exceeded`). [`FromStr`] also accepts the upper-case,
/// underscore form (`DEADLINE_EXCEEDED`) and decimal numbers 0 to 16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GrpcCode(u16);

/// The defined codes, by number, with their names.
const NAMES: [&str; 17] = [
    "ok",
    "cancelled",
    "unknown",
    "invalid-argument",
    "deadline-exceeded",
    "not-found",
    "already-exists",
    "permission-denied",
    "resource-exhausted",
    "failed-precondition",
    "aborted",
    "out-of-range",
    "unimplemented",
    "internal",
    "unavailable",
    "data-loss",
    "unauthenticated",
];

/// The same names as gRPC's `statuscodes.md` writes them, and as metrics
/// label them (Linkerd's `grpc_status`, OpenTelemetry's
/// `rpc.grpc.status_code` names).
const UPPER_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

impl GrpcCode {
    /// 0: not an error.
    pub const OK: Self = Self(0);
    /// 1: the caller cancelled the call.
    pub const CANCELLED: Self = Self(1);
    /// 2: an error with no better code.
    pub const UNKNOWN: Self = Self(2);
    /// 3: the caller sent an invalid argument.
    pub const INVALID_ARGUMENT: Self = Self(3);
    /// 4: the deadline expired before the call completed.
    pub const DEADLINE_EXCEEDED: Self = Self(4);
    /// 5: an entity was not found.
    pub const NOT_FOUND: Self = Self(5);
    /// 6: the entity the caller tried to create exists.
    pub const ALREADY_EXISTS: Self = Self(6);
    /// 7: the caller may not do this.
    pub const PERMISSION_DENIED: Self = Self(7);
    /// 8: a quota or resource ran out.
    pub const RESOURCE_EXHAUSTED: Self = Self(8);
    /// 9: the system is not in a state the call requires.
    pub const FAILED_PRECONDITION: Self = Self(9);
    /// 10: the call was aborted, typically by a concurrency conflict.
    pub const ABORTED: Self = Self(10);
    /// 11: a value was past the valid range.
    pub const OUT_OF_RANGE: Self = Self(11);
    /// 12: the method is not implemented.
    pub const UNIMPLEMENTED: Self = Self(12);
    /// 13: an invariant of the server broke.
    pub const INTERNAL: Self = Self(13);
    /// 14: the service is unavailable right now.
    pub const UNAVAILABLE: Self = Self(14);
    /// 15: data was lost or corrupted.
    pub const DATA_LOSS: Self = Self(15);
    /// 16: the caller is not authenticated.
    pub const UNAUTHENTICATED: Self = Self(16);

    /// The code for a number. Numbers gRPC does not define are kept as
    /// they are.
    pub const fn from_u16(code: u16) -> Self {
        Self(code)
    }

    /// The code's number.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether gRPC defines this code (0 to 16).
    pub const fn is_defined(self) -> bool {
        self.0 <= 16
    }

    /// Whether this is `OK`.
    pub const fn is_ok(self) -> bool {
        self.0 == 0
    }

    /// The code's name (`deadline-exceeded`), or `None` for a number gRPC
    /// does not define.
    pub fn name(self) -> Option<&'static str> {
        NAMES.get(usize::from(self.0)).copied()
    }

    /// The code's name as gRPC's `statuscodes.md` writes it
    /// (`DEADLINE_EXCEEDED`), the form metrics label it with, or `None`
    /// for a number gRPC does not define.
    pub fn upper_name(self) -> Option<&'static str> {
        UPPER_NAMES.get(usize::from(self.0)).copied()
    }

    /// The code with this name, ignoring ASCII case and treating `_` as `-`;
    /// `None` when no code has that name. Numbers are not names: use
    /// [`FromStr`] to accept either.
    pub fn from_name(name: &str) -> Option<Self> {
        let position = NAMES.iter().position(|known| {
            known.len() == name.len()
                && known.bytes().zip(name.bytes()).all(|(k, n)| {
                    let n = if n == b'_' { b'-' } else { n };
                    k == n.to_ascii_lowercase()
                })
        })?;
        u16::try_from(position).ok().map(Self)
    }

    /// Reads a `grpc-status` value: one or more ASCII digits. `None` when
    /// the value is anything else or too large for a `u16`.
    pub fn from_header(value: &HeaderValue) -> Option<Self> {
        let bytes = value.as_bytes();
        if bytes.is_empty() {
            return None;
        }
        bytes
            .iter()
            .try_fold(0_u16, |acc, &b| {
                if !b.is_ascii_digit() {
                    return None;
                }
                acc.checked_mul(10)?.checked_add(u16::from(b - b'0'))
            })
            .map(Self)
    }
}

impl fmt::Display for GrpcCode {
    /// Writes the name, or the number when gRPC does not define the code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

impl FromStr for GrpcCode {
    type Err = InvalidGrpcCode;

    /// Parses a name (`unavailable`, `UNAVAILABLE`) or a number from 0 to 16.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(InvalidGrpcCode::Empty);
        }
        if let Some(code) = Self::from_name(s) {
            return Ok(code);
        }
        match s.parse::<u16>() {
            Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) && Self(n).is_defined() => Ok(Self(n)),
            _ => Err(InvalidGrpcCode::Unknown),
        }
    }
}

/// Why a string is not a gRPC code or a list of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidGrpcCode {
    /// The string, or an item of a list, is empty.
    Empty,
    /// The string names no gRPC code and is not a number from 0 to 16.
    Unknown,
}

impl fmt::Display for InvalidGrpcCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty grpc status code"),
            Self::Unknown => f.write_str("unknown grpc status code"),
        }
    }
}

impl std::error::Error for InvalidGrpcCode {}

/// A set of the gRPC codes 0 to 16, held as a bit set: `Copy`, and
/// [`contains`](Self::contains) is one mask test.
///
/// Codes gRPC does not define cannot be members; inserting one does nothing.
/// Parses from a comma-separated list of names or numbers
/// (`cancelled,deadline-exceeded,unavailable`), as Linkerd's
/// `retry.linkerd.io/grpc` annotation writes it.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct GrpcCodes(u32);

impl GrpcCodes {
    /// No codes.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Every code except `OK`.
    pub const fn all_errors() -> Self {
        Self(0x1_fffe)
    }

    /// The codes linkerd2-proxy counts as failures by default, and so
    /// the default of [`Classify`](super::Classify): `UNKNOWN`,
    /// `DEADLINE_EXCEEDED`, `PERMISSION_DENIED`, `INTERNAL`, `UNAVAILABLE`
    /// and `DATA_LOSS` (the default `Codes` of its client policy,
    /// `linkerd/proxy/client-policy/src/grpc.rs`). With these, a success
    /// rate reads as `linkerd viz stat` shows it.
    pub const fn linkerd_failures() -> Self {
        Self::empty()
            .with(GrpcCode::UNKNOWN)
            .with(GrpcCode::DEADLINE_EXCEEDED)
            .with(GrpcCode::PERMISSION_DENIED)
            .with(GrpcCode::INTERNAL)
            .with(GrpcCode::UNAVAILABLE)
            .with(GrpcCode::DATA_LOSS)
    }

    /// The codes gRPC's HTTP mapping (gRPC's
    /// `doc/http-grpc-status-mapping.md`) gives a 5xx status: `UNKNOWN`,
    /// `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`, `INTERNAL`, `UNAVAILABLE` and
    /// `DATA_LOSS`; the others describe the request, like a 4xx. Opt in to
    /// them with [`Classify::with_grpc_failures`](super::Classify::with_grpc_failures)
    /// to draw the line between success and failure in the same place for
    /// gRPC as for HTTP. They differ from
    /// [`linkerd_failures`](Self::linkerd_failures), the default, in two
    /// codes: `UNIMPLEMENTED` is a failure and `PERMISSION_DENIED` a
    /// success.
    pub const fn server_errors() -> Self {
        Self::empty()
            .with(GrpcCode::UNKNOWN)
            .with(GrpcCode::DEADLINE_EXCEEDED)
            .with(GrpcCode::UNIMPLEMENTED)
            .with(GrpcCode::INTERNAL)
            .with(GrpcCode::UNAVAILABLE)
            .with(GrpcCode::DATA_LOSS)
    }

    /// This set with `code` added. An undefined code is ignored.
    #[must_use]
    pub const fn with(self, code: GrpcCode) -> Self {
        if code.is_defined() {
            Self(self.0 | 1 << code.0)
        } else {
            self
        }
    }

    /// Adds `code`. An undefined code is ignored.
    pub fn insert(&mut self, code: GrpcCode) {
        *self = self.with(code);
    }

    /// Whether `code` is in the set.
    pub const fn contains(self, code: GrpcCode) -> bool {
        code.is_defined() && self.0 & (1 << code.0) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The codes in the set, in ascending order.
    pub fn iter(self) -> impl Iterator<Item = GrpcCode> {
        (0..=16_u16)
            .map(GrpcCode)
            .filter(move |code| self.contains(*code))
    }
}

impl FromIterator<GrpcCode> for GrpcCodes {
    fn from_iter<I: IntoIterator<Item = GrpcCode>>(iter: I) -> Self {
        iter.into_iter().fold(Self::empty(), Self::with)
    }
}

impl Extend<GrpcCode> for GrpcCodes {
    fn extend<I: IntoIterator<Item = GrpcCode>>(&mut self, iter: I) {
        for code in iter {
            self.insert(code);
        }
    }
}

impl FromStr for GrpcCodes {
    type Err = InvalidGrpcCode;

    /// Parses a comma-separated list of names or numbers.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',').map(str::parse::<GrpcCode>).collect()
    }
}

impl fmt::Display for GrpcCodes {
    /// Writes the comma-separated names, which parse back to the same set.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, code) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            fmt::Display::fmt(&code, f)?;
        }
        Ok(())
    }
}

impl fmt::Debug for GrpcCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().filter_map(GrpcCode::name))
            .finish()
    }
}
