//! gzip for `/metrics`, when the request's `Accept-Encoding` allows it.
//!
//! A scrape's text is mostly the same metric and label names over and
//! over, which gzip shrinks several times over, and Prometheus asks for it
//! on every scrape (`Accept-Encoding: gzip`); linkerd2-proxy's `/metrics`
//! compresses for it too. The level is a fast one: a scrape is answered
//! every few seconds, and most of what gzip saves, it saves at its fastest.
//!
//! # Which requests get it
//!
//! [`accepts_gzip`] reads `Accept-Encoding` as RFC 9110 §12.5.3 asks: a
//! coding named with `q=0` is refused (`gzip;q=0` means no), `*` stands for
//! every coding the header does not name, and `x-gzip` is `gzip`. The body
//! is compressed when gzip is acceptable and, if the header weighs the
//! text as it is (`identity`, or `*`), weighs at least as much as it:
//! `gzip;q=0.5, identity` prefers the text. A request with no
//! `Accept-Encoding` gets the text as it is: the RFC lets a server pick
//! any coding then, but a client that did not ask may not decode one.

use std::io::Write as _;

use bytes::Bytes;
use flate2::{Compression, write::GzEncoder};
use http::{HeaderMap, header};

use super::exposition::parse_q;

/// Whether a request with these headers gets its `/metrics` gzipped. See
/// the [module docs](self).
///
/// A coding whose weight is not a number from 0 to 1 is skipped, as is an
/// `Accept-Encoding` value that is not ASCII.
pub(super) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut identity, mut any) = (None, None, None);
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else { continue };
        for coding in value.split(',') {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let mut q = Some(1000);
            for param in parts {
                if let Some((key, value)) = param.split_once('=')
                    && key.trim().eq_ignore_ascii_case("q")
                {
                    q = parse_q(value.trim());
                }
            }
            let Some(q) = q else { continue };
            let slot = if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
                &mut gzip
            } else if name.eq_ignore_ascii_case("identity") {
                &mut identity
            } else if name == "*" {
                &mut any
            } else {
                continue;
            };
            // Named twice, the better weight counts.
            *slot = Some(slot.map_or(q, |old: u16| old.max(q)));
        }
    }
    let gzip = gzip.or(any).unwrap_or(0);
    // The text as it is needs no weight to be acceptable; it competes
    // with gzip only when the header weighs it.
    let identity = identity.or(any).unwrap_or(0);
    gzip > 0 && gzip >= identity
}

/// `text` gzipped at a fast level; `None` if the encoder fails, which it
/// does not writing into memory.
pub(super) fn compress(text: &[u8]) -> Option<Bytes> {
    // Metrics text shrinks to well under a quarter.
    let out = Vec::with_capacity(text.len() / 4 + 64);
    let mut encoder = GzEncoder::new(out, Compression::fast());
    encoder.write_all(text).ok()?;
    encoder.finish().ok().map(Bytes::from)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::io::Read as _;

    use http::HeaderValue;

    use super::*;

    fn accepts(values: &[&[u8]]) -> bool {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(
                header::ACCEPT_ENCODING,
                HeaderValue::from_bytes(value).unwrap(),
            );
        }
        accepts_gzip(&headers)
    }

    #[test]
    fn gzip_is_sent_when_accept_encoding_weighs_it_above_zero_and_not_below_identity() {
        for (value, gzip) in [
            // Prometheus' scrapes.
            (&b"gzip"[..], true),
            (b"GZip", true),
            (b"x-gzip", true),
            // curl --compressed, browsers.
            (b"deflate, gzip, br, zstd", true),
            (b"gzip, deflate, br", true),
            (b"gzip;q=0.5", true),
            (b"gzip ; q=0.001", true),
            (b"*", true),
            (b"br;q=1, *;q=0.5", true),
            // Refused, or weighed below the text as it is.
            (b"gzip;q=0", false),
            (b"gzip;q=0.000", false),
            (b"*, gzip;q=0", false),
            (b"*;q=0", false),
            (b"gzip;q=0.5, identity", false),
            (b"*;q=0.5, identity;q=0.8", false),
            // None of ours, or nothing at all.
            (b"", false),
            (b"br, deflate", false),
            (b"identity", false),
            // A weight that is not one is skipped with its coding.
            (b"gzip;q=2", false),
            (b"gzip;q=x, *", true),
            // Not ASCII: the value says nothing.
            (b"gzip\xff", false),
        ] {
            assert_eq!(
                accepts(&[value]),
                gzip,
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        // Over several header lines, as over one.
        assert!(accepts(&[b"br", b"gzip"]));
        assert!(!accepts(&[b"gzip;q=0.4", b"identity;q=1, gzip;q=0.5"]));
        assert!(!accepts(&[]));
    }

    #[test]
    fn compressed_text_gunzips_to_itself() {
        let text = "# TYPE request counter\nrequest_total{direction=\"inbound\"} 7\n".repeat(100);
        let gz = compress(text.as_bytes()).unwrap();
        assert!(gz.len() < text.len() / 4, "{} of {}", gz.len(), text.len());
        let mut back = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut back)
            .unwrap();
        assert_eq!(back, text);
    }
}
