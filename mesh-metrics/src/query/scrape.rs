//! Fetching `/metrics` from an admin server.

use std::{fmt, io, time::Duration};

use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use super::{Target, parse::ParseError, parse::Scrape};

/// How long one scrape may take, connection included.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Fetches and parses `target`'s `/metrics`.
///
/// # Errors
///
/// When the admin server cannot be reached in [`SCRAPE_TIMEOUT`], answers
/// with something other than 200, or serves text that does not parse.
pub async fn scrape(target: &Target) -> Result<Scrape, ScrapeError> {
    let err = |kind| ScrapeError {
        addr: target.addr.clone(),
        kind,
    };
    let text = tokio::time::timeout(SCRAPE_TIMEOUT, fetch(&target.addr))
        .await
        .map_err(|_| err(ScrapeErrorKind::Timeout))?
        .map_err(err)?;
    Scrape::parse(&text).map_err(|e| err(ScrapeErrorKind::Parse(e)))
}

async fn fetch(addr: &str) -> Result<String, ScrapeErrorKind> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(ScrapeErrorKind::Connect)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(ScrapeErrorKind::Http)?;
    let driver = tokio::spawn(conn);
    let req = Request::get("/metrics")
        .header(header::HOST, addr)
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|_| ScrapeErrorKind::Status(StatusCode::BAD_REQUEST))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(ScrapeErrorKind::Http)?;
    if res.status() != StatusCode::OK {
        return Err(ScrapeErrorKind::Status(res.status()));
    }
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(ScrapeErrorKind::Http)?
        .to_bytes();
    drop(sender);
    driver.abort();
    String::from_utf8(body.to_vec()).map_err(|_| ScrapeErrorKind::NotUtf8)
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
    /// The body is not UTF-8.
    NotUtf8,
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
            ScrapeErrorKind::NotUtf8 => write!(f, "{addr} served metrics that are not utf-8"),
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
