//! Fetching `/metrics` from an admin server.

use std::{fmt, io, time::Duration};

use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::{Target, parse::ParseError, parse::Scrape};

/// How long one scrape may take, connection included.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest `/metrics` body a scrape reads: 128 MiB.
///
/// An admin server that is broken or not ours may answer with a body of
/// any size, and a scrape holds the whole body before it parses it, so
/// without a bound one answer could take all the memory of the process
/// that scrapes (the dashboard's admin server, or `top`) well within
/// [`SCRAPE_TIMEOUT`]. A proxy writes far less: every family at its
/// default limit of 10,000 series, latency buckets included, comes to
/// about 70 MB. Parsed, a scrape keeps each label text once and holds
/// about half the size of a proxy's text (`tests/scrape_memory.rs`), and
/// at most [`MAX_SAMPLES`](super::parse::MAX_SAMPLES) samples, whatever
/// the text; the body is freed once it is parsed.
pub const MAX_SCRAPE_BYTES: usize = 128 << 20;

/// Fetches and parses `target`'s `/metrics`.
///
/// # Errors
///
/// When the admin server cannot be reached in [`SCRAPE_TIMEOUT`], answers
/// with something other than 200, serves a body over
/// [`MAX_SCRAPE_BYTES`], or serves text that does not parse.
pub async fn scrape(target: &Target) -> Result<Scrape, ScrapeError> {
    let err = |kind| ScrapeError {
        addr: target.addr.clone(),
        kind,
    };
    let (body, openmetrics) = tokio::time::timeout(SCRAPE_TIMEOUT, fetch(&target.addr))
        .await
        .map_err(|_| err(ScrapeErrorKind::Timeout))?
        .map_err(err)?;
    let text = std::str::from_utf8(&body).map_err(|e| {
        // The line of the first byte that is not UTF-8, counted from 1 as
        // a parse error counts them: a label value in another encoding
        // should be found without searching the whole body for it.
        let before = body.get(..e.valid_up_to()).unwrap_or_default();
        let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
        err(ScrapeErrorKind::NotUtf8 { line })
    })?;
    let scrape = if openmetrics {
        Scrape::parse_openmetrics(text)
    } else {
        Scrape::parse(text)
    };
    scrape.map_err(|e| err(ScrapeErrorKind::Parse(e)))
}

/// The room reserved at first for a body of a told length: what is told
/// may be false, and the rest is reserved as it comes.
const RESERVED: usize = 16 << 20;

/// The format a scrape asks for.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0";

/// Fetches the body, into one buffer: each frame is copied there and
/// freed, so the body is held once (collecting the frames and then
/// joining them held it twice); and whether it is OpenMetrics, as its
/// `content-type` says, which must end with `# EOF`.
async fn fetch(addr: &str) -> Result<(Vec<u8>, bool), ScrapeErrorKind> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(ScrapeErrorKind::Connect)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(ScrapeErrorKind::Http)?;
    let driver = tokio::spawn(conn);
    // OpenMetrics, as Prometheus asks: the text format 0.0.4, which an
    // admin server answers otherwise, leaves out `_created`.
    let req = Request::get("/metrics")
        .header(header::HOST, addr)
        .header(header::ACCEPT, OPENMETRICS)
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|_| ScrapeErrorKind::Status(StatusCode::BAD_REQUEST))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(ScrapeErrorKind::Http)?;
    if res.status() != StatusCode::OK {
        return Err(ScrapeErrorKind::Status(res.status()));
    }
    let openmetrics = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .and_then(|t| t.split(';').next())
        .is_some_and(|t| {
            t.trim()
                .eq_ignore_ascii_case("application/openmetrics-text")
        });
    let told = res
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|len| len.to_str().ok()?.parse::<usize>().ok());
    if told.is_some_and(|len| len > MAX_SCRAPE_BYTES) {
        return Err(ScrapeErrorKind::TooLarge);
    }
    let mut body = Vec::with_capacity(told.unwrap_or_default().min(RESERVED));
    let mut frames = res.into_body();
    while let Some(frame) = frames.frame().await {
        let Ok(data) = frame.map_err(ScrapeErrorKind::Http)?.into_data() else {
            continue;
        };
        if data.len() > MAX_SCRAPE_BYTES - body.len() {
            return Err(ScrapeErrorKind::TooLarge);
        }
        body.extend_from_slice(&data);
    }
    drop(sender);
    driver.abort();
    Ok((body, openmetrics))
}

/// A scrape that failed.
#[derive(Debug)]
pub struct ScrapeError {
    addr: String,
    kind: ScrapeErrorKind,
}

impl ScrapeError {
    /// The admin address that was scraped.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Why it failed.
    pub fn kind(&self) -> &ScrapeErrorKind {
        &self.kind
    }
}

/// Why a scrape failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ScrapeErrorKind {
    /// The TCP connection could not be opened.
    Connect(io::Error),
    /// The scrape took longer than [`SCRAPE_TIMEOUT`].
    Timeout,
    /// The HTTP exchange failed.
    Http(hyper::Error),
    /// The server answered with this status instead of 200.
    Status(StatusCode),
    /// The body is longer than [`MAX_SCRAPE_BYTES`].
    TooLarge,
    /// The body is not UTF-8.
    NotUtf8 {
        /// The line, counted from 1, of the first byte that is not.
        line: usize,
    },
    /// The body is not exposition text.
    Parse(ParseError),
}

impl fmt::Display for ScrapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = &self.addr;
        match &self.kind {
            ScrapeErrorKind::Connect(_) => write!(f, "cannot connect to {addr}"),
            ScrapeErrorKind::Timeout => write!(f, "scraping {addr} timed out"),
            ScrapeErrorKind::Http(_) => write!(f, "http exchange with {addr} failed"),
            ScrapeErrorKind::Status(s) => write!(f, "{addr} answered {}", s.as_u16()),
            ScrapeErrorKind::TooLarge => {
                write!(f, "{addr} served metrics over {MAX_SCRAPE_BYTES} bytes")
            }
            ScrapeErrorKind::NotUtf8 { line } => {
                write!(f, "{addr} served metrics that are not utf-8 on line {line}")
            }
            ScrapeErrorKind::Parse(_) => write!(f, "{addr} served unreadable metrics"),
        }
    }
}

impl std::error::Error for ScrapeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ScrapeErrorKind::Connect(e) => Some(e),
            ScrapeErrorKind::Http(e) => Some(e),
            ScrapeErrorKind::Parse(e) => Some(e),
            _ => None,
        }
    }
}
