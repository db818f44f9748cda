//! Telling HTTP/1, HTTP/2 and everything else apart from a connection's
//! first bytes.
//!
//! A sidecar port can carry HTTP from one client and a database protocol from
//! the next. HTTP/2 with prior knowledge opens with a fixed 24-byte preface;
//! HTTP/1 opens with a request line (`GET /path HTTP/1.1`). Anything else is
//! forwarded as opaque bytes.
//!
//! Opaque bytes reach the application with none of what the HTTP stack
//! does to a request (route-level authorization, route filters, the
//! caller's identity headers replaced by the proven one), so a line any
//! common server would serve as a request must not be one of them. Go's
//! `net/http` serves every `HTTP/1.<digit>`. RFC 9112 §3 lets a server
//! split the request line on any whitespace (SP, HTAB, VT, FF or a bare
//! CR) and ignore it at either end; Netty does, reads the version in any
//! case, and skips any whitespace, ASCII control bytes (NUL, ESC, ...) or
//! empty lines before the line.
//! Python's `http.server` splits the line as its `str.split()` does
//! (those, the separators `\x1c` to `\x1f`, and NEL and NBSP of the line
//! read as Latin-1), serves the versions `HTTP/0.9` and `HTTP/01.1`, and
//! serves a bare `GET /path` as HTTP/0.9; it takes any other byte in the
//! target, control bytes and DEL too (`GET /admin?\x01` is a request for
//! `/admin`). So a line is HTTP/1 when, after any whitespace or control
//! bytes, it is a method, a target of any bytes and `HTTP/` with a major
//! version of 0 or 1, a dot and digits (in any case), or `GET` and a
//! target, separated by runs of that whitespace; the HTTP server then
//! answers what it does not take with `400 Bad Request`. (A Redis inline
//! `GET key` on a detecting port is one of them: Redis's port defaults to
//! opaque.)
//!
//! Some connections never decide: in protocols where the server speaks
//! first (MySQL, SMTP) the client sends nothing until it is greeted, and
//! a slow client may not finish its first line in time. Closing them
//! would make such an application unreachable through a detecting port,
//! so [`detect`] gives up at its timeout and hands the connection back
//! undecided (`None`), with every byte it read replayed ahead of the
//! rest. On a port that detects, the [server](crate::serve) then hands
//! it to the opaque handler:
//! Linkerd's proxy does the same (its detect stacks map the timeout with
//! `detect::allow_timeout` and log "Continuing after timeout"), which is
//! why its documentation calls a server-speaks-first protocol on such a
//! port a connection delay rather than a failure. The delay is the
//! server's detection timeout, 10 seconds by default; a port configured
//! opaque skips
//! detection and the delay. A client that waits out the timeout is
//! served as opaque whatever it sends afterwards, so only what applies
//! to opaque connections (authorization of the connection) applies to
//! it. HTTP-only ports, and a peer that chose HTTP/2 with ALPN, still
//! close a connection that has not decided by then.
//!
//! A peer that ends its side before sending a byte is closed
//! ([`DetectError::Closed`]) on every port that detects: most such peers
//! are gone for good (a port scan, a TCP health check), and forwarding
//! each would open a connection to the application for nobody.
//! Linkerd's detection reads that end as undecided and forwards the
//! connection as TCP, so a client that shuts down its writes at once and
//! waits for a banner is served there and not here; its port should be
//! configured opaque.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::io::PrefixedIo;

/// The HTTP/2 connection preface (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The longest HTTP/1 request line detection reads before it decides.
/// Longer lines are handed to the HTTP/1 server, which applies its own limit.
const MAX_REQUEST_LINE: usize = 16 * 1024;

/// What a connection's first bytes say it speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detected {
    /// An HTTP/1.x request line.
    Http1,
    /// The HTTP/2 preface.
    Http2,
    /// Neither: some other protocol.
    Opaque,
}

/// Why detection gave up on a connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum DetectError {
    /// The peer closed the connection before sending a byte.
    Closed,
    /// Reading failed.
    Io(std::io::Error),
}

impl std::fmt::Display for DetectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Closed => f.write_str("connection closed before protocol detection"),
            Self::Io(_) => f.write_str("protocol detection failed to read"),
        }
    }
}

impl std::error::Error for DetectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Closed => None,
        }
    }
}

/// Reads from `io` until its first bytes decide the protocol, or `timeout`
/// passes. Returns the decision, `None` when the peer had sent too little
/// to decide by then (nothing, whitespace and control bytes only, or a
/// plausible but unfinished request line or HTTP/2 preface), and the stream with every byte read replayed:
/// whatever the decision, the caller can serve the connection with
/// nothing lost and nothing read twice.
///
/// # Errors
///
/// [`DetectError::Closed`] when the peer closes before sending a byte;
/// [`DetectError::Io`] when a read fails.
pub async fn detect<I>(
    mut io: I,
    timeout: Duration,
) -> Result<(Option<Detected>, PrefixedIo<I>), DetectError>
where
    I: AsyncRead + Unpin,
{
    let mut buf = BytesMut::with_capacity(1024);
    let mut scan = Scan::default();
    // Reads into `buf` only when a read completes, so dropping this at
    // the timeout loses no byte: what was read is in `buf`, the rest is
    // still in `io`.
    let read = async {
        loop {
            if let Some(decided) = scan.decide(&buf) {
                return Ok(decided);
            }
            if io.read_buf(&mut buf).await.map_err(DetectError::Io)? == 0 {
                // A peer that closes mid-line is not HTTP; one that sent
                // nothing at all is just gone.
                return if buf.is_empty() {
                    Err(DetectError::Closed)
                } else {
                    Ok(Detected::Opaque)
                };
            }
        }
    };
    let detected = match tokio::time::timeout(timeout, read).await {
        Ok(decided) => Some(decided?),
        Err(_) => None,
    };
    Ok((detected, PrefixedIo::new(buf.freeze(), io)))
}

/// Decides from `buf` alone, or returns `None` when more bytes are needed.
#[cfg(test)]
fn decide(buf: &[u8]) -> Option<Detected> {
    Scan::default().decide(buf)
}

/// How far detection has looked into the bytes read so far.
///
/// A peer may send its first line a byte at a time, and each byte is a
/// read; scanning the whole buffer after each one would cost time
/// quadratic in the line's length, a few hundred milliseconds of CPU for
/// a 16 KiB line, which a peer pays for with packets alone. So each byte
/// past the first 24 (the HTTP/2 preface's) is looked at once.
#[derive(Debug, Default)]
struct Scan {
    /// How many bytes were looked at.
    seen: usize,
    /// Where the whitespace before the request line ends, as far as
    /// seen.
    empty_end: usize,
    /// Where the request line starts, once a byte of it was seen.
    line_start: Option<usize>,
    /// Whether the line's method ended (a space was seen).
    method_done: bool,
}

impl Scan {
    /// Decides from `buf`, which holds the bytes of the previous call and
    /// maybe more, or returns `None` when more are needed.
    fn decide(&mut self, buf: &[u8]) -> Option<Detected> {
        if buf.is_empty() {
            return None;
        }
        let n = buf.len().min(H2_PREFACE.len());
        if buf[..n] == H2_PREFACE[..n] {
            return if n == H2_PREFACE.len() {
                Some(Detected::Http2)
            } else {
                None
            };
        }
        let decided = self.scan(buf);
        self.seen = buf.len();
        decided
    }

    fn scan(&mut self, buf: &[u8]) -> Option<Detected> {
        let (line_start, from) = match self.line_start {
            Some(start) => (start, self.seen.max(start)),
            None => {
                // RFC 9112 §2.2: a server ignores empty lines before the
                // request line, and hyper's parser does; Netty skips any
                // whitespace, ASCII control byte or DEL there, and serves
                // `\x00GET /admin HTTP/1.1` as a request for `/admin`. So
                // detection skips them all; hyper answers such a line with
                // 400. A binary protocol still decides at its first byte
                // that is none of them and no token byte either (a TLS
                // ClientHello at its random bytes, a Postgres SSLRequest at
                // its code).
                let end = leading_space(buf, self.empty_end);
                self.empty_end = end;
                if end == buf.len() {
                    return (buf.len() >= MAX_REQUEST_LINE).then_some(Detected::Opaque);
                }
                self.line_start = Some(end);
                (end, end)
            }
        };
        for (i, &b) in buf.iter().enumerate().skip(from) {
            if b == b'\n' {
                let line = &buf[line_start..i];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                return Some(if is_request_line(line) {
                    Detected::Http1
                } else {
                    Detected::Opaque
                });
            }
            // Whether the line can still become a request line: a token,
            // then any bytes until the line ends. Python's `http.server`
            // takes every byte of a target that is not whitespace, control
            // bytes and DEL among them, so only the method decides early.
            // A complete line is held to the same rule, so how the line was
            // cut into reads never changes the decision.
            if self.method_done {
                continue;
            }
            if is_space(b) || is_latin1_space(b) {
                self.method_done = true;
            } else if !is_tchar(b) {
                return Some(Detected::Opaque);
            }
        }
        (buf.len() >= MAX_REQUEST_LINE).then_some(Detected::Http1)
    }
}

/// Where the run of whitespace and ASCII control bytes (empty lines
/// among them) that starts at `from` in `buf` ends: what Netty skips
/// before a request line.
fn leading_space(buf: &[u8], from: usize) -> usize {
    let rest = buf.get(from..).unwrap_or_default();
    from + rest
        .iter()
        .take_while(|&&b| is_space(b) || b.is_ascii_control())
        .count()
}

/// `method target HTTP/<0 or 1>.<digits>`, or `GET target`, the words
/// separated by runs of whitespace ([`is_space`]), the version in any
/// case: what RFC 9112 allows, and what lenient servers also serve (see
/// the [module docs](self)). Python's `http.server` reads the line as
/// Latin-1 text, to which `\x85` and `\xa0` are whitespace too; a UTF-8
/// target may hold those bytes, so the line is read both ways.
fn is_request_line(line: &[u8]) -> bool {
    words_of_request_line(line, is_space)
        || words_of_request_line(line, |b| is_space(b) || is_latin1_space(b))
}

/// Whether `line`, split on `space`, is a request line.
fn words_of_request_line(line: &[u8], space: impl Fn(u8) -> bool) -> bool {
    let mut words = line.split(|&b| space(b)).filter(|word| !word.is_empty());
    // The target may hold any byte but whitespace: Python serves
    // `GET /admin?\x01 HTTP/1.1` as a request for `/admin`, so it must not
    // pass as opaque; hyper answers it with `400 Bad Request`.
    let (method, version) = match (words.next(), words.next(), words.next(), words.next()) {
        (Some(method), Some(_target), Some(version), None) => (method, Some(version)),
        // Python's `http.server` serves a bare `GET /path` as HTTP/0.9.
        (Some(method @ b"GET"), Some(_target), None, None) => (method, None),
        _ => return false,
    };
    method.iter().all(|&b| is_tchar(b)) && version.is_none_or(is_http1_version)
}

/// `HTTP/`, a major version of 0 or 1 (with any leading zeros), a dot
/// and one or more digits, in any case: the versions Go, Netty and
/// Python's `http.server` serve as HTTP/1 (the last `HTTP/0.9` and
/// `HTTP/01.1` too).
fn is_http1_version(version: &[u8]) -> bool {
    let Some((name, number)) = version.split_at_checked(5) else {
        return false;
    };
    let Some(dot) = number.iter().position(|&b| b == b'.') else {
        return false;
    };
    let (major, minor) = (&number[..dot], &number[dot + 1..]);
    let zeros = major.iter().take_while(|&&b| b == b'0').count();
    let significant = &major[zeros..];
    name.eq_ignore_ascii_case(b"HTTP/")
        && !major.is_empty()
        && major.iter().all(u8::is_ascii_digit)
        && matches!(significant, b"" | b"1")
        && !minor.is_empty()
        && minor.iter().all(u8::is_ascii_digit)
}

/// Whitespace between the words of a request line: what RFC 9112 §3
/// lets a server take (SP, HTAB, VT, FF, a bare CR), and the ASCII
/// separators `\x1c` to `\x1f` Python's `str.split()` takes too.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | 0x0b | 0x0c | b'\r' | 0x1c..=0x1f)
}

/// The bytes above ASCII that are whitespace to Python read as Latin-1:
/// NEL and NBSP.
fn is_latin1_space(b: u8) -> bool {
    matches!(b, 0x85 | 0xa0)
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn decides_from_first_bytes() {
        let cases: &[(&[u8], Option<Detected>)] = &[
            (b"GET / HTTP/1.1\r\n", Some(Detected::Http1)),
            (
                b"POST /a/b?c=d HTTP/1.0\r\nHost: x\r\n",
                Some(Detected::Http1),
            ),
            (b"GET / HTTP/1.1\n", Some(Detected::Http1)),
            (b"GET / HTT", None),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Some(Detected::Http2)),
            (b"PRI * HTTP/2.0\r\n", None),
            (b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", Some(Detected::Opaque)),
            // Control bytes may come before a request line (Netty skips
            // them): a binary protocol decides at its first other byte.
            (b"\x16\x03\x01\x02\x00", None),
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc",
                Some(Detected::Opaque),
            ),
            (b"hello\r\n", Some(Detected::Opaque)),
            (b"GET / HTTP/2.0\r\n", Some(Detected::Opaque)),
            (b"PUT  HTTP/1.1\r\n", Some(Detected::Opaque)),
            (b"\x00\x00\x00\x08", None),
            (b"\x00\x00\x00\x08\x04\xd2", Some(Detected::Opaque)),
            (b"", None),
            // Empty lines before the request line are ignored.
            (b"\r\nGET / HTTP/1.1\r\n", Some(Detected::Http1)),
            (b"\r\n\nGET / HTTP/1.1\n", Some(Detected::Http1)),
            (b"\r\nGET / HT", None),
            (b"\r\n", None),
            (b"\r", None),
            (b"\r\nhello\r\n", Some(Detected::Opaque)),
            // A bare CR is whitespace before the method (RFC 9112 §3).
            (b"\rGET / HTTP/1.1\r\n", Some(Detected::Http1)),
            // A target with raw UTF-8 is decided the same way however the
            // line is cut into reads.
            (b"GET /caf\xc3\xa9 HTTP/1.1\r\n", Some(Detected::Http1)),
            (b"GET /caf\xc3\xa9", None),
            // Control bytes in the target still make a request line
            // (see `control_bytes_in_the_target_are_http1_as_python_serves_them`).
            (b"GET /a\x01b HTTP/1.1\r\n", Some(Detected::Http1)),
            (b"GET /a\x01b", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(decide(bytes), *want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn bytes_fed_one_read_at_a_time_decide_as_the_whole() {
        let cases: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"\r\n\nGET /caf\xc3\xa9 HTTP/1.0\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n",
            b"PUT /x HTTP/1.1\r\n",
            b"GET /a\x01b HTTP/1.1\r\n",
            b"GET /a\rb HTTP/1.1\r\n",
            b"\rGET / HTTP/1.1\r\n",
            b"\r\n\r\nhello\r\n",
            b"G\xc3T / HTTP/1.1\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"\x00\x01GET / HTTP/1.1\r\n",
        ];
        for bytes in cases {
            let whole = decide(bytes);
            let mut scan = Scan::default();
            let fed = (1..=bytes.len()).find_map(|n| scan.decide(&bytes[..n]));
            assert_eq!(fed, whole, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn lines_lenient_servers_serve_are_http1_however_they_are_cut() {
        let cases: &[(&[u8], Detected)] = &[
            // Go serves any `HTTP/1.<digit>`; Python and Netty take runs
            // of spaces or tabs, and Netty any case and leading blanks.
            (b"GET /admin HTTP/1.2\r\n", Detected::Http1),
            (b"GET /admin HTTP/1.10\n", Detected::Http1),
            (b"GET  /admin  HTTP/1.1\r\n", Detected::Http1),
            (b"GET /admin HTTP/1.1 \r\n", Detected::Http1),
            (b"GET\t/admin\tHTTP/1.1\r\n", Detected::Http1),
            (b"get /admin http/1.1\r\n", Detected::Http1),
            (b" GET / HTTP/1.1\r\n", Detected::Http1),
            // RFC 9112 §3: any whitespace (SP, HTAB, VT, FF, bare CR)
            // may separate the words and surround the line, as Netty
            // and Python take it; Python also splits on `\x1c`-`\x1f`.
            (b"GET\x0b/admin\x0bHTTP/1.1\r\n", Detected::Http1),
            (b"GET\x0c/admin HTTP/1.1\r\n", Detected::Http1),
            (b"GET\r/admin\rHTTP/1.1\r\n", Detected::Http1),
            (b"\x0cGET /admin HTTP/1.1\x0b\r\n", Detected::Http1),
            (b"GET\x1c/admin\x1fHTTP/1.1\r\n", Detected::Http1),
            // Python reads the line as Latin-1, where NEL and NBSP are
            // whitespace; hyper takes those bytes in a UTF-8 target.
            (b"GET\xa0/admin\x85HTTP/1.1\r\n", Detected::Http1),
            (b"\xa0GET /admin HTTP/1.1\r\n", Detected::Http1),
            (b"GET /caf\xc2\xa0 HTTP/1.1\r\n", Detected::Http1),
            (b"G\xc2T / HTTP/1.1\r\n", Detected::Opaque),
            // Python serves HTTP/0.9, a major version with leading
            // zeros, and a bare `GET /path`.
            (b"GET /admin HTTP/0.9\r\n", Detected::Http1),
            (b"GET /admin HTTP/01.1\r\n", Detected::Http1),
            (b"GET /admin\r\n", Detected::Http1),
            (b"GET  HTTP/1.1\r\n", Detected::Http1),
            // Text protocols that are not HTTP, and versions that are not
            // HTTP/1.
            (b"get key\r\n", Detected::Opaque),
            (b"set key 0 0 5\r\n", Detected::Opaque),
            (b"SET key value\r\n", Detected::Opaque),
            (b"GET / HTTP/2.0\r\n", Detected::Opaque),
            (b"GET / HTTP/1.\r\n", Detected::Opaque),
            (b"GET / HTTP/1.x\r\n", Detected::Opaque),
            (b"GET / HTTP/11\r\n", Detected::Opaque),
            (b"GET / HTTP/10.1\r\n", Detected::Opaque),
            (b"GET / HTTP/.1\r\n", Detected::Opaque),
            (b"PUT /admin\r\n", Detected::Opaque),
            (b"GET\x01/ HTTP/1.1\r\n", Detected::Opaque),
        ];
        for &(bytes, want) in cases {
            let name = String::from_utf8_lossy(bytes);
            assert_eq!(decide(bytes), Some(want), "{name:?}");
            let mut scan = Scan::default();
            let fed = (1..=bytes.len()).find_map(|n| scan.decide(&bytes[..n]));
            assert_eq!(fed, Some(want), "{name:?} a byte at a time");
        }
    }

    #[test]
    fn control_bytes_in_the_target_are_http1_as_python_serves_them() {
        // Python's `http.server` takes every byte of the target that is
        // not whitespace, control bytes and DEL included, and serves
        // `GET /admin?\x01` as a request for `/admin`: as opaque bytes,
        // that request would pass no route authorization. hyper answers
        // each of these with 400.
        let cases: &[&[u8]] = &[
            b"GET /admin?\x01 HTTP/1.1\r\n",
            b"GET /admin\x00 HTTP/1.0\r\n",
            b"GET /admin\x7f HTTP/1.1\r\n",
            b"GET /admin\x1b[0m HTTP/1.1\r\n",
            b"GET /admin?\x01\r\n",
        ];
        for &bytes in cases {
            let name = String::from_utf8_lossy(bytes);
            assert_eq!(decide(bytes), Some(Detected::Http1), "{name:?}");
            let mut scan = Scan::default();
            let fed = (1..=bytes.len()).find_map(|n| scan.decide(&bytes[..n]));
            assert_eq!(fed, Some(Detected::Http1), "{name:?} a byte at a time");
        }
        // A control byte in the method still decides at once: no server
        // serves that method, and binary protocols are not kept waiting.
        assert_eq!(decide(b"GE\x01"), Some(Detected::Opaque));
    }

    #[test]
    fn whitespace_before_the_request_line_is_skipped_however_it_is_cut() {
        // Netty skips it all, empty lines or not; a CR that ends a read is
        // skipped the same whether its LF follows or not.
        let mut tail = b"\r".to_vec();
        while tail.len() <= MAX_REQUEST_LINE {
            tail.extend_from_slice("é".as_bytes());
        }
        let cases: &[(&[u8], Detected)] = &[
            (b"\r\r\nGET / HTTP/1.1\r\n", Detected::Http1),
            // Netty skips every ASCII control byte and DEL there too.
            (b"\x00GET /admin HTTP/1.1\r\n", Detected::Http1),
            (b"\x00\x01\x16\r\nGET /admin HTTP/1.1\r\n", Detected::Http1),
            (b"\x7f\x1bGET /admin HTTP/1.1\r\n", Detected::Http1),
            // Binary protocols decide at their first byte that is neither
            // one of those nor a token byte: a TLS ClientHello, a Postgres
            // SSLRequest.
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                Detected::Opaque,
            ),
            (b"\x00\x00\x00\x08\x04\xd2\x16\x2f", Detected::Opaque),
            (b"\x0b\r\nGET / HTTP/1.1\r\n", Detected::Http1),
            (b" \n\t\x1cGET /admin HTTP/1.1\r\n", Detected::Http1),
            (b"\r\x00\xff", Detected::Opaque),
            // Bytes above ASCII cannot start a method.
            (&tail, Detected::Opaque),
        ];
        for &(bytes, want) in cases {
            let name = String::from_utf8_lossy(&bytes[..bytes.len().min(32)]);
            assert_eq!(decide(bytes), Some(want), "{name:?}");
            let mut scan = Scan::default();
            assert_eq!(scan.decide(&bytes[..1]), None, "{name:?}");
            assert_eq!(scan.decide(bytes), Some(want), "{name:?} in two reads");
            let mut scan = Scan::default();
            let fed = (1..=bytes.len()).find_map(|n| scan.decide(&bytes[..n]));
            assert_eq!(fed, Some(want), "{name:?} a byte at a time");
        }
    }

    #[test]
    fn endless_empty_lines_are_not_read_forever() {
        let lines = b"\r\n".repeat(MAX_REQUEST_LINE / 2);
        assert_eq!(decide(&lines), Some(Detected::Opaque));
        assert_eq!(decide(&lines[..lines.len() - 2]), None);
    }

    #[tokio::test]
    async fn replays_what_it_read() {
        let (mut client, server) = tokio::io::duplex(1024);
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let (detected, io) = detect(server, Duration::from_secs(1)).await.unwrap();
        assert_eq!(detected, Some(Detected::Http1));
        assert!(io.prefix().starts_with(b"GET / HTTP/1.1\r\n"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_is_undecided_at_the_timeout_and_keeps_its_connection() {
        let (mut client, server) = tokio::io::duplex(1024);
        let (detected, mut io) = detect(server, Duration::from_secs(10)).await.unwrap();
        assert_eq!(detected, None);
        assert!(io.prefix().is_empty());
        // The connection is still the peer's: what it sends next arrives.
        client.write_all(b"late").await.unwrap();
        drop(client);
        let mut rest = Vec::new();
        io.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"late");
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_read_before_the_timeout_are_replayed_once() {
        // A partial line that could still become a request line, and an
        // unfinished HTTP/2 preface: neither decides.
        for first in [&b"GET /par"[..], b"PRI * HTTP/2.0\r\n", b"\r\n"] {
            let (mut client, server) = tokio::io::duplex(1024);
            client.write_all(first).await.unwrap();
            let (detected, mut io) = detect(server, Duration::from_secs(10)).await.unwrap();
            assert_eq!(detected, None, "{first:?}");
            assert_eq!(io.prefix(), first);
            client.write_all(b"tial\n").await.unwrap();
            drop(client);
            let mut all = Vec::new();
            io.read_to_end(&mut all).await.unwrap();
            assert_eq!(all, [first, b"tial\n"].concat(), "{first:?}");
        }
    }

    #[tokio::test]
    async fn a_peer_that_closes_at_once_is_gone() {
        let (client, server) = tokio::io::duplex(1024);
        drop(client);
        let err = detect(server, Duration::from_secs(1)).await.unwrap_err();
        assert!(matches!(err, DetectError::Closed));
    }
}
