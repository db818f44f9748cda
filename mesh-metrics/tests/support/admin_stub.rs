//! Admin servers on 127.0.0.1 that serve known `/metrics` text, for the
//! views that scrape them: what a view prints follows from the text alone.

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Reads a request's head off `tcp`, a byte at a time so that nothing
/// after it is taken; false if the peer closed the connection first.
pub(crate) async fn read_head(tcp: &mut TcpStream) -> bool {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0; 1];
        if tcp.read(&mut byte).await.unwrap_or(0) == 0 {
            return false;
        }
        head.push(byte[0]);
    }
    true
}

/// An admin server whose n-th scrape (the first is 0) is answered with
/// `body(n)`, with its length; returns its address.
pub(crate) async fn admin_serving(body: impl Fn(usize) -> String + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for n in 0.. {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            let body = body(n);
            tokio::spawn(async move {
                if !read_head(&mut tcp).await {
                    return;
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = tcp.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr.to_string()
}
