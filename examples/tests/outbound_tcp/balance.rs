//! Long-lived connections through a TCP port are spread by how many each
//! endpoint holds open, not only by who connects fastest: with one runtime
//! (one balancer), twenty connections held open split ten and ten, and
//! once one endpoint's connections close, the next ones all go to it.

use std::{
    net::SocketAddr,
    sync::{Arc, atomic::AtomicUsize, atomic::Ordering},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::support::*;

/// A sidecar on one runtime with service `db` at `a` and `b`, in
/// plaintext, and a TCP port for it.
fn one_runtime(a: SocketAddr, b: SocketAddr) -> String {
    format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: db\n      endpoints: [{a}, {b}]\n\
         \x20 ports:\n    - listen: 127.0.0.1:0\n      service: db\n\
         admin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n"
    )
}

/// Opens a connection to `port` and waits for a byte to come back from
/// the endpoint; returns it with `true` when endpoint `a` took it.
async fn open(port: SocketAddr, to_a: &Arc<AtomicUsize>) -> (TcpStream, bool) {
    let before = to_a.load(Ordering::Relaxed);
    let mut tcp = TcpStream::connect(port).await.unwrap();
    tcp.write_all(b"?").await.unwrap();
    let mut back = [0];
    tcp.read_exact(&mut back).await.unwrap();
    // The echo counted its accept before it echoed.
    let on_a = to_a.load(Ordering::Relaxed) > before;
    (tcp, on_a)
}

#[tokio::test]
async fn open_connections_split_evenly_and_closing_them_frees_their_endpoint() {
    let (a, to_a) = tcp_echo().await;
    let (b, to_b) = tcp_echo().await;
    let web = sidecar(&one_runtime(a, b));
    let port = web.outbound_ports[0];
    let mut on_a = Vec::new();
    let mut on_b = Vec::new();
    for _ in 0..20 {
        match open(port, &to_a).await {
            (tcp, true) => on_a.push(tcp),
            (tcp, false) => on_b.push(tcp),
        }
    }
    assert_eq!((on_a.len(), on_b.len()), (10, 10));
    assert_eq!(to_b.load(Ordering::Relaxed), 10);
    // Closed by the application; each ends once the echo has closed too.
    for mut tcp in on_b.drain(..) {
        tcp.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tcp.read_to_end(&mut rest).await.unwrap();
    }
    // The sidecar sends its end to the application in the same poll that
    // ends the forwarding and frees the count, and its one runtime takes
    // the next connection only after that poll.
    let mut next_on_a = 0;
    for _ in 0..6 {
        let (tcp, is_a) = open(port, &to_a).await;
        next_on_a += usize::from(is_a);
        on_b.push(tcp);
    }
    assert_eq!(next_on_a, 0, "the idle endpoint takes the next connections");
    drop((on_a, on_b));
    stop(web).await;
}
