//! Where a scrape that cannot be read goes wrong, and the figures
//! Prometheus has no number for.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use mesh_metrics::query::{Target, histogram_quantile, scrape};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

/// Answers one scrape with `body`.
async fn serve(body: &'static [u8]) -> Target {
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
        let mut answer =
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).into_bytes();
        answer.extend_from_slice(body);
        tcp.write_all(&answer).await.unwrap();
    });
    Target {
        name: "web".into(),
        addr: addr.to_string(),
    }
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_refused_naming_the_line() {
    // A label value in Latin-1 on the third line: the error said the body
    // was not UTF-8, and left the reader to search a scrape of thousands
    // of lines for where.
    let target =
        serve(b"a_total 1\n# HELP b \xc3\xa9t\xc3\xa9\nb_total{x=\"caf\xe9\"} 2\n# EOF\n").await;
    let error = scrape(&target).await.expect_err("not utf-8");
    assert!(
        matches!(error.kind(), scrape::ScrapeErrorKind::NotUtf8 { line: 3 }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{} served metrics that are not utf-8 on line 3",
            target.addr
        )
    );
}

#[test]
fn the_zero_quantile_of_an_empty_lowest_bucket_is_no_value() {
    // Rank 0 falls in the lowest bucket, which holds nothing: 0 over 0,
    // which Prometheus gives as NaN, and which is documented as `None`.
    let buckets = [(1.0, 0.0), (2.0, 4.0), (f64::INFINITY, 4.0)];
    assert_eq!(histogram_quantile(0.0, &buckets), None);
    // A lowest bucket that holds some: 0 from 0.
    let buckets = [(1.0, 1.0), (2.0, 4.0), (f64::INFINITY, 4.0)];
    assert_eq!(histogram_quantile(0.0, &buckets), Some(0.0));
}
