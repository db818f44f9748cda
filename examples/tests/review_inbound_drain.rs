//! An inbound port's drain on shutdown: a request in flight when it
//! begins is answered in full, and an opaque connection open then keeps
//! carrying bytes, both within `server.shutdown_grace`, as Linkerd's proxy
//! lets its connections finish before it exits; new connections are no
//! longer accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use http::{Request, StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn requests_and_opaque_connections_in_flight_finish_within_the_grace() {
    let (app, gate) = support::backend().await;
    let (echo, _) = support::tcp_echo().await;
    let sidecar = support::sidecar(&format!(
        "inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         \x20 ports:\n  - listen: 127.0.0.1:0\n    app: {echo}\n    protocol: opaque\n\
         outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n\
         server:\n  threads: 1\n  shutdown_grace: 60s\n"
    ));
    let (http, opaque) = (sidecar.inbound[0], sidecar.inbound[1]);

    let mut tcp = tokio::net::TcpStream::connect(opaque).await.unwrap();
    tcp.write_all(b"before").await.unwrap();
    let mut got = [0; 6];
    tcp.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"before");

    let held = tokio::spawn(async move {
        let req = Request::get(format!("http://{http}/hold"))
            .version(Version::HTTP_11)
            .body(support::full(""))
            .unwrap();
        let res = support::http1().request(req).await.unwrap();
        (res.status(), support::body_bytes(res).await)
    });
    gate.arrived.notified().await;

    sidecar.shutdown();
    let joined = tokio::task::spawn_blocking(move || sidecar.join());

    // The opaque connection still carries bytes during the drain.
    tcp.write_all(b"during").await.unwrap();
    tokio::time::timeout(support::WAIT_BOUND, tcp.read_exact(&mut got))
        .await
        .expect("the opaque connection stalled in the drain")
        .expect("the opaque connection was cut at the start of the drain");
    assert_eq!(&got, b"during");

    gate.release.notify_one();
    let (status, body) = tokio::time::timeout(support::WAIT_BOUND, held)
        .await
        .expect("the held request never finished")
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"held");

    assert!(
        !joined.is_finished(),
        "the sidecar stopped with a connection open"
    );
    drop(tcp);
    tokio::time::timeout(support::WAIT_BOUND, joined)
        .await
        .expect("the sidecar did not stop once its connections ended")
        .unwrap();
    assert!(tokio::net::TcpStream::connect(http).await.is_err());
}
