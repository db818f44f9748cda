//! The head of a request, kept to build its retries from.
//!
//! Every request that may be retried keeps a copy of its head, and almost
//! none is ever retried: the copy is made for nothing nearly every time, so
//! it has to be cheap to make and to drop. A copy made of `http` values
//! (a `Uri`, a list of `HeaderName`/`HeaderValue` pairs) costs a reference
//! count increment and decrement for each header value and URI part hyper
//! read into a shared buffer, or the promotion of an unshared one (an
//! allocation), plus the list itself.
//!
//! [`Head`] copies the URI's parts and every header's bytes into one
//! buffer instead, in one pass: one allocation, sized for the URI and
//! [`FIELD_BYTES`] per header value (a head with longer ones grows it), no
//! reference counts, and one free. Sizing the buffer exactly took a second
//! pass over the headers, which cost more than the bytes it saved. A
//! retry, which is rare and waits a backoff anyway, parses them back: one
//! allocation for all the URI's and values' bytes, plus one for each
//! header name that is not a standard one.

use std::ops::Range;

use bytes::Bytes;
use http::{
    Extensions, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri, Version, request,
    uri::{self, Authority, PathAndQuery, Scheme},
};
use tokio::time::Instant;

use super::MESH_RETRY_ATTEMPT;
use crate::Deadline;

/// The head of the original request, to build each retry from.
pub(crate) struct Head {
    method: Method,
    version: Version,
    /// The URI's scheme, authority and path-and-query, then each header's
    /// name, value and sensitivity, in the map's order (one entry per
    /// value); see [`Writer`] for the layout.
    bytes: Vec<u8>,
    /// The request's deadline, read once.
    deadline: Option<Deadline>,
    /// The extensions, unless they are to be made from `deadline` alone: a
    /// copy of an extension map costs three allocations (the map, its table
    /// and each entry), and behind a request timeout the deadline is often
    /// all there is.
    extensions: Option<Extensions>,
}

impl Head {
    /// The head of a request whose retries must start before `deadline`:
    /// the request's [`Deadline`] extension when `extension` says it is
    /// one (it is then carried to them as an extension), or the deadline
    /// its caller sent in `grpc-timeout` or `mesh-deadline`, read by
    /// [`Retry`](super::Retry) with the clock reading that serves the
    /// budget.
    pub(crate) fn clone_from(
        parts: &request::Parts,
        deadline: Option<Deadline>,
        extension: bool,
    ) -> Self {
        let only_deadline = extension && parts.extensions.len() == 1;
        Self {
            method: parts.method.clone(),
            version: parts.version,
            bytes: copy(&parts.uri, &parts.headers),
            deadline,
            extensions: (!only_deadline).then(|| parts.extensions.clone()),
        }
    }

    /// The head of a request whose retries must start before `deadline`,
    /// which is not added to their extensions.
    pub(crate) fn with_deadline(parts: &request::Parts, deadline: Option<Instant>) -> Self {
        Self {
            method: parts.method.clone(),
            version: parts.version,
            bytes: copy(&parts.uri, &parts.headers),
            deadline: deadline.map(Deadline::at),
            // Most requests have none, and a copy of none allocates nothing.
            extensions: Some(parts.extensions.clone()),
        }
    }

    /// A head whose copy does not parse back, as a copy of a valid head
    /// never fails to.
    #[cfg(test)]
    pub(crate) fn unparsable() -> Self {
        Self {
            method: Method::GET,
            version: Version::HTTP_11,
            bytes: Vec::new(),
            deadline: None,
            extensions: None,
        }
    }

    /// The deadline of the request's retries.
    pub(crate) fn deadline(&self) -> Option<Deadline> {
        self.deadline
    }

    /// The head of attempt number `attempt` (from 1, so at least 2 for a
    /// retry), with its `mesh-retry-attempt` header. `None` if the copy
    /// does not parse back, which a copy of a valid head always does.
    pub(crate) fn request(&self, attempt: u32) -> Option<Request<()>> {
        let bytes = Bytes::copy_from_slice(&self.bytes);
        let mut reader = Reader {
            bytes: &bytes,
            at: 0,
        };
        let mut req = Request::new(());
        *req.method_mut() = self.method.clone();
        *req.version_mut() = self.version;
        *req.uri_mut() = reader.uri()?;
        let count = reader.len()?;
        let headers = req.headers_mut();
        // A map holds any number of values, but reserves room for at most
        // 24,576 at once (`reserve` panics past that): a head with more,
        // which an HTTP/2 caller can send under a raised head limit, grows
        // the map as its values are added instead.
        let _ = headers.try_reserve(count.saturating_add(1));
        for _ in 0..count {
            let (name, value) = reader.header()?;
            headers.try_append(name, value).ok()?;
        }
        headers
            .try_insert(MESH_RETRY_ATTEMPT, HeaderValue::from(attempt))
            .ok()?;
        match (&self.extensions, self.deadline) {
            (Some(extensions), _) => *req.extensions_mut() = extensions.clone(),
            (None, Some(deadline)) => {
                req.extensions_mut().insert(deadline);
            }
            (None, None) => {}
        }
        Some(req)
    }
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("method", &self.method)
            .field("bytes", &self.bytes.len())
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// `uri` and `headers` in one buffer, written in one pass.
fn copy(uri: &Uri, headers: &HeaderMap) -> Vec<u8> {
    let scheme = uri.scheme_str().map(str::as_bytes);
    let authority = uri.authority().map(|a| a.as_str().as_bytes());
    let path = uri.path_and_query().map(|p| p.as_str().as_bytes());
    let fields = [scheme, authority, path];
    let size = 4 * LEN
        + fields.iter().flatten().map(|f| f.len()).sum::<usize>()
        + headers.len() * (2 * LEN + 1 + FIELD_BYTES);
    let mut writer = Writer(Vec::with_capacity(size));
    for field in fields {
        writer.field(field);
    }
    writer.len(headers.len());
    for (name, value) in headers {
        writer.bytes(name.as_str().as_bytes());
        writer.bytes(value.as_bytes());
        writer.0.push(u8::from(value.is_sensitive()));
    }
    writer.0
}

/// The bytes of a header's name and value the copy makes room for before
/// it has read them.
const FIELD_BYTES: usize = 48;

/// The width of a length in the buffer.
const LEN: usize = size_of::<usize>();

/// Marks an absent URI part where its length would be.
const ABSENT: usize = usize::MAX;

/// Writes the buffer: each URI part as its length (or [`ABSENT`]) and its
/// bytes; the number of header values; then each value as its name's
/// length and bytes, its own length and bytes, and a byte that is 1 if
/// it is sensitive. Lengths are native-endian `usize`s: the buffer never
/// leaves the process.
struct Writer(Vec<u8>);

impl Writer {
    fn len(&mut self, len: usize) {
        self.0.extend_from_slice(&len.to_ne_bytes());
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.len(bytes.len());
        self.0.extend_from_slice(bytes);
    }

    fn field(&mut self, field: Option<&[u8]>) {
        match field {
            Some(bytes) => self.bytes(bytes),
            None => self.len(ABSENT),
        }
    }
}

/// Reads back what a [`Writer`] wrote. Every read returns `None` past the
/// end or on a value that does not parse.
struct Reader<'a> {
    bytes: &'a Bytes,
    at: usize,
}

impl Reader<'_> {
    fn len(&mut self) -> Option<usize> {
        let end = self.at.checked_add(LEN)?;
        let len = usize::from_ne_bytes(self.bytes.get(self.at..end)?.try_into().ok()?);
        self.at = end;
        Some(len)
    }

    fn range(&mut self, len: usize) -> Option<Range<usize>> {
        let range = self.at..self.at.checked_add(len)?;
        self.bytes.get(range.clone())?;
        self.at = range.end;
        Some(range)
    }

    /// A URI part: `Ok(None)` if it was absent.
    fn field(&mut self) -> Option<Option<Bytes>> {
        match self.len()? {
            ABSENT => Some(None),
            len => Some(Some(self.bytes.slice(self.range(len)?))),
        }
    }

    fn uri(&mut self) -> Option<Uri> {
        let mut parts = uri::Parts::default();
        parts.scheme = match self.field()? {
            Some(scheme) => Some(Scheme::try_from(&scheme[..]).ok()?),
            None => None,
        };
        parts.authority = match self.field()? {
            Some(authority) => Some(Authority::from_maybe_shared(authority).ok()?),
            None => None,
        };
        parts.path_and_query = match self.field()? {
            Some(path) => Some(PathAndQuery::from_maybe_shared(path).ok()?),
            None => None,
        };
        Uri::from_parts(parts).ok()
    }

    fn header(&mut self) -> Option<(HeaderName, HeaderValue)> {
        let len = self.len()?;
        let name = HeaderName::from_bytes(&self.bytes[self.range(len)?]).ok()?;
        let len = self.len()?;
        let mut value = HeaderValue::from_maybe_shared(self.bytes.slice(self.range(len)?)).ok()?;
        let sensitive = self.range(1)?;
        value.set_sensitive(self.bytes[sensitive] == [1]);
        Some((name, value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(req: Request<()>) -> Request<()> {
        let (parts, ()) = req.into_parts();
        Head::clone_from(&parts, None, false)
            .request(2)
            .expect("a copy of a valid head parses back")
    }

    fn pairs(headers: &HeaderMap) -> Vec<(String, Vec<u8>, bool)> {
        headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec(), v.is_sensitive()))
            .collect()
    }

    #[test]
    fn every_part_of_the_head_comes_back() {
        for uri in [
            "http://emoji:8080/api/list?page=2&q=%20x",
            "https://user@web.emojivoto.svc.cluster.local/",
            "http://emoji:8080",
            "/api/vote?choice=:joy:",
            "/",
            "*",
            "emoji:8080",
            "ftp://files.example/pub",
        ] {
            let mut secret = HeaderValue::from_static("Bearer abc");
            secret.set_sensitive(true);
            let req = Request::builder()
                .method(Method::from_bytes(b"PURGE").unwrap())
                .version(Version::HTTP_2)
                .uri(uri)
                .header("host", "emoji:8080")
                .header("x-custom", "one")
                .header("accept", "*/*")
                .header("x-custom", "two")
                .header("authorization", secret)
                .header("x-empty", "")
                .header(
                    "x-obs-text",
                    HeaderValue::from_bytes(b"caf\xe9\tok").unwrap(),
                )
                .body(())
                .unwrap();
            let mut want = pairs(req.headers());
            want.push(("mesh-retry-attempt".into(), b"2".to_vec(), false));
            let (method, version) = (req.method().clone(), req.version());

            let got = round_trip(req);
            assert_eq!(got.uri(), &uri.parse::<Uri>().unwrap(), "{uri}");
            assert_eq!(
                got.uri().to_string(),
                uri.parse::<Uri>().unwrap().to_string()
            );
            assert_eq!((got.method(), got.version()), (&method, version));
            assert_eq!(pairs(got.headers()), want, "{uri}");
        }
    }

    /// A head longer than the room made for it at first grows the buffer,
    /// and every byte still comes back.
    #[test]
    fn a_head_past_the_first_estimate_comes_back_whole() {
        let long = "v".repeat(10 * 1024);
        let mut builder = Request::get(format!("http://emoji:8080/{}", "p".repeat(3000)));
        for i in 0..100 {
            builder = builder.header(
                format!("x-long-name-{i}-{}", "n".repeat(60)),
                &long[..i * 100],
            );
        }
        let req = builder.body(()).unwrap();
        let (parts, ()) = req.into_parts();
        let head = Head::clone_from(&parts, None, false);
        let estimate = 4 * LEN + parts.uri.to_string().len() + 100 * (2 * LEN + 1 + FIELD_BYTES);
        assert!(
            head.bytes.len() > 10 * estimate,
            "{} bytes",
            head.bytes.len()
        );
        let mut want = pairs(&parts.headers);
        want.push(("mesh-retry-attempt".into(), b"2".to_vec(), false));
        let got = head.request(2).expect("a copy of a valid head parses back");
        assert_eq!(got.uri(), &parts.uri);
        assert_eq!(pairs(got.headers()), want);
    }

    #[test]
    fn a_head_without_headers_comes_back_with_only_the_attempt_number() {
        let got = round_trip(Request::new(()));
        assert_eq!(got.uri(), "/");
        assert_eq!(got.headers().len(), 1);
        assert_eq!(got.headers()[MESH_RETRY_ATTEMPT], "2");
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_the_caller_sent_keeps_the_requests_own_extension() {
        let mut req = Request::get("/")
            .header("mesh-deadline", "1500")
            .body(())
            .unwrap();
        req.extensions_mut().insert(7_u32);
        let (parts, ()) = req.into_parts();
        let sent = Deadline::after(std::time::Duration::from_millis(1500));
        let head = Head::clone_from(&parts, Some(sent), false);
        assert_eq!(head.deadline(), Some(sent));
        let retry = head.request(2).unwrap();
        assert_eq!(retry.extensions().get::<u32>(), Some(&7));
        assert!(retry.extensions().get::<Deadline>().is_none());
    }

    #[test]
    fn a_head_with_more_values_than_a_fresh_map_reserves_comes_back() {
        // A `HeaderMap` holds any number of values of its names, but
        // reserves room for at most 24,576 at once: an HTTP/2 request
        // under a raised head limit can carry more (HPACK sends a repeated
        // field in one byte).
        let mut req = Request::get("http://a/b").body(()).unwrap();
        for i in 0..30_000_u32 {
            req.headers_mut().append("x-many", HeaderValue::from(i));
        }
        req.headers_mut()
            .append("x-last", HeaderValue::from_static("end"));
        let mut want = pairs(req.headers());
        want.push(("mesh-retry-attempt".into(), b"2".to_vec(), false));
        let got = round_trip(req);
        assert_eq!(pairs(got.headers()), want);
    }

    /// The head of `GET http://a/b` with one header, `x-one: 1`.
    fn small_head() -> Head {
        let req = Request::get("http://a/b")
            .header("x-one", "1")
            .body(())
            .unwrap();
        let (parts, ()) = req.into_parts();
        Head::clone_from(&parts, None, false)
    }

    #[test]
    fn the_buffer_is_exactly_the_size_of_what_it_holds() {
        let head = small_head();
        // Four lengths for the URI and the count, "http", "a", "/b"; one
        // header: two lengths, "x-one", "1" and the sensitivity byte.
        assert_eq!(head.bytes.len(), 4 * LEN + 4 + 1 + 2 + 2 * LEN + 5 + 1 + 1);
    }

    #[test]
    fn a_damaged_buffer_reads_as_none_rather_than_panicking() {
        let mut head = small_head();
        let whole = head.bytes.clone();
        for end in 0..whole.len() {
            head.bytes = whole[..end].into();
            assert!(head.request(2).is_none(), "cut at {end}");
        }
        let mut huge = whole.to_vec();
        huge[..LEN].copy_from_slice(&(usize::MAX - 1).to_ne_bytes());
        head.bytes = huge;
        assert!(head.request(2).is_none());
    }
}
