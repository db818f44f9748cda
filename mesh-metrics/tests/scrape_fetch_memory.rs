//! What a scrape holds at most while it reads and parses a body, against
//! the size of the body. dhat counts every allocation of this test
//! binary, which is why this test has a file of its own.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use mesh_metrics::query::{Target, scrape};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// About 8 MB of sample lines.
fn body() -> Vec<u8> {
    let mut text = String::new();
    for i in 0..60_000 {
        text += &format!(
            "request_total{{direction=\"inbound\",srv_name=\"web\",route_name=\"r{}\",\
             client_id=\"spiffe://cluster.local/ns/emojivoto/sa/client-{}\"}} {i}\n",
            i % 50,
            i % 20,
        );
    }
    text.into_bytes()
}

/// Serves one `/metrics` answer with `body`, 64 KiB at a time, as a
/// proxy's admin server writes a large one.
async fn serve(body: Arc<Vec<u8>>) -> Target {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head = [0; 1024];
        let mut read = 0;
        while !head[..read].ends_with(b"\r\n\r\n") {
            read += tcp.read(&mut head[read..]).await.unwrap();
        }
        let answer = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
        tcp.write_all(answer.as_bytes()).await.unwrap();
        for chunk in body.chunks(64 << 10) {
            tcp.write_all(chunk).await.unwrap();
        }
    });
    Target {
        name: "web".into(),
        addr: addr.to_string(),
    }
}

#[tokio::test]
async fn a_scrape_holds_its_body_once_while_it_reads_it() {
    let body = Arc::new(body());
    let target = serve(body.clone()).await;
    let _profiler = dhat::Profiler::builder().testing().build();
    let before = dhat::HeapStats::get();
    let scrape = scrape(&target).await.unwrap();
    let after = dhat::HeapStats::get();
    let per_byte = |bytes: usize| (bytes - before.curr_bytes) as f64 / body.len() as f64;
    let (peak, held) = (per_byte(after.max_bytes), per_byte(after.curr_bytes));
    eprintln!(
        "{} bytes of body: {peak:.2} B a byte at most while scraping, {held:.2} held after",
        body.len()
    );
    assert_eq!(scrape.samples().len(), 60_000);
    // The body once, and its parse while the body is still held (about
    // half its size): collecting the frames and then joining them into
    // one buffer held the body twice, 2.11 B a byte in all.
    assert!(peak < 1.75, "{peak}");
}
