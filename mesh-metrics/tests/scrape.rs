//! Scrapes of admin servers that are broken or not ours, on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use mesh_metrics::query::{Scrape, Target, scrape};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// Serves one `/metrics` answer whose body is `len` bytes: one comment
/// line, which parses to no samples at all, written 64 KiB at a time.
async fn serve_comment(len: usize) -> Target {
    serve_comment_told(len, true, "").await
}

/// The last line of a body at the limit: a sample, which is in the scrape
/// only if the body was read to its last byte.
const LAST: &str = "\nlast_total 1\n";

/// [`serve_comment`], telling the body's length or (`told` false) not:
/// the body then ends when the connection does. `tail` ends the body,
/// within its `len` bytes, after the comment.
async fn serve_comment_told(len: usize, told: bool, tail: &'static str) -> Target {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0; 1];
            if tcp.read(&mut byte).await.unwrap() == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let answer = if told {
            format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n#")
        } else {
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n#".to_owned()
        };
        tcp.write_all(answer.as_bytes()).await.unwrap();
        let chunk = vec![b'x'; 64 << 10];
        let mut left = len - 1 - tail.len();
        while left > 0 {
            let n = left.min(chunk.len());
            // The scraper may hang up once it has read enough.
            if tcp.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            left -= n;
        }
        // As above, the scraper may have hung up.
        let _ = tcp.write_all(tail.as_bytes()).await;
    });
    Target {
        name: "broken".into(),
        addr: addr.to_string(),
    }
}

/// The samples of `scrape`, by name and value.
fn samples(scrape: &Scrape) -> Vec<(String, f64)> {
    scrape
        .samples()
        .iter()
        .map(|s| (s.name.to_string(), s.value))
        .collect()
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_not_held() {
    let target = serve_comment(scrape::MAX_SCRAPE_BYTES + 1).await;
    let error = scrape(&target).await.expect_err("a body over the limit");
    assert!(
        matches!(error.kind(), scrape::ScrapeErrorKind::TooLarge),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("{} served metrics over 134217728 bytes", target.addr)
    );
}

#[tokio::test]
async fn a_body_at_the_limit_is_read() {
    let target = serve_comment_told(scrape::MAX_SCRAPE_BYTES, true, LAST).await;
    let scrape = scrape(&target).await.unwrap();
    assert_eq!(samples(&scrape), [("last_total".to_owned(), 1.0)]);
}

#[tokio::test]
async fn a_body_of_untold_length_is_refused_past_the_limit_and_read_up_to_it() {
    let target = serve_comment_told(scrape::MAX_SCRAPE_BYTES + 1, false, "").await;
    let error = scrape(&target).await.expect_err("a body over the limit");
    assert!(
        matches!(error.kind(), scrape::ScrapeErrorKind::TooLarge),
        "{error:?}"
    );
    let target = serve_comment_told(scrape::MAX_SCRAPE_BYTES, false, LAST).await;
    let scrape = scrape(&target).await.unwrap();
    assert_eq!(samples(&scrape), [("last_total".to_owned(), 1.0)]);
}

#[tokio::test(start_paused = true)]
async fn an_admin_server_that_never_answers_times_out_naming_it() {
    // The connection is accepted (the listener's backlog takes it), and
    // no answer ever comes: a view must not wait for it forever.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = Target {
        name: "stuck".into(),
        addr: listener.local_addr().unwrap().to_string(),
    };
    let error = scrape(&target).await.expect_err("no answer");
    assert!(
        matches!(error.kind(), scrape::ScrapeErrorKind::Timeout),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!("scraping {} timed out", target.addr)
    );
    drop(listener);
}

/// A scrape asks for OpenMetrics, as Prometheus does: an admin server
/// answers anything else in the text format 0.0.4, which leaves out the
/// `_created` samples that tell a counter's restart.
#[tokio::test]
async fn a_scrape_asks_for_openmetrics() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0; 1];
            assert_eq!(tcp.read(&mut byte).await.unwrap(), 1);
            head.push(byte[0]);
        }
        let body = "# EOF\n";
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(answer.as_bytes()).await.unwrap();
        String::from_utf8(head).unwrap()
    });
    let target = Target {
        name: "ours".into(),
        addr: addr.to_string(),
    };
    scrape(&target).await.unwrap();
    let head = server.await.unwrap().to_ascii_lowercase();
    assert!(
        head.contains("\r\naccept: application/openmetrics-text; version=1.0.0\r\n"),
        "{head}"
    );
}
