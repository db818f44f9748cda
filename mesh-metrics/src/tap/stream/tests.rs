#![allow(clippy::unwrap_used, clippy::expect_used)]

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use super::*;

/// An admin server that answers one request with `status` and a body of
/// `prefix` and then `len` bytes of `fill`, 64 KiB at a time.
async fn serve(status: &'static str, prefix: &'static str, fill: u8, len: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut head_in = Vec::new();
        while !head_in.ends_with(b"\r\n\r\n") {
            let mut byte = [0; 1];
            if tcp.read(&mut byte).await.unwrap() == 0 {
                return;
            }
            head_in.push(byte[0]);
        }
        let length = prefix.len() + len;
        let head = format!("HTTP/1.1 {status}\r\ncontent-length: {length}\r\n\r\n{prefix}");
        tcp.write_all(head.as_bytes()).await.unwrap();
        let chunk = vec![fill; 64 << 10];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            // The client may hang up once it has read enough.
            if tcp.write_all(&chunk[..n]).await.is_err() {
                return;
            }
            left -= n;
        }
    });
    addr.to_string()
}

#[tokio::test]
async fn a_line_longer_than_any_event_ends_the_watch() {
    // 4 MiB and no newline: held whole, it would grow for as long as the
    // server sends.
    let addr = serve("200 OK", "", b'x', 4 << 20).await;
    let mut events = 0;
    let error = watch(&addr, &TapFilter::default(), |_| {
        events += 1;
        true
    })
    .await
    .expect_err("a line over MAX_EVENT_LINE");
    assert!(
        matches!(error.kind, WatchErrorKind::LineTooLong),
        "{error:?}"
    );
    assert_eq!(events, 0);
}

#[tokio::test]
async fn a_refusal_is_told_in_a_bounded_printable_line() {
    let addr = serve("403 Forbidden", "\u{1b}[2J", b'y', 4 << 20).await;
    let error = watch(&addr, &TapFilter::default(), |_| true)
        .await
        .expect_err("refused");
    let WatchErrorKind::Refused(status, why) = &error.kind else {
        panic!("{error:?}");
    };
    assert_eq!(*status, StatusCode::FORBIDDEN);
    assert!(why.len() <= MAX_REFUSAL, "{} bytes", why.len());
    let text = error.to_string();
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(
        text.starts_with(&format!(r"{addr} refused the tap: 403 \u{{1b}}[2Jyyy")),
        "{text:?}"
    );
}
