//! A `Connection` header that names `Transfer-Encoding` or `Host` takes
//! neither away before the sidecar has read it: a body in a coding the
//! sidecar cannot pass on is still refused, and the application still
//! gets the host the request was authorized for.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use support::*;

/// A body coded with gzip under its chunks is refused `501` (RFC 9112
/// §6.1) whether or not `Connection` names `Transfer-Encoding`: had the
/// header gone first, the application would take the coded bytes for
/// the body.
#[tokio::test]
async fn a_transfer_coding_named_in_connection_is_still_refused() {
    let (app, _) = backend().await;
    let sidecar = plain_inbound(app);
    for connection in ["close", "transfer-encoding, close"] {
        let answer = raw_exchange(
            sidecar.inbound[0],
            &format!(
                "POST /echo HTTP/1.1\r\nhost: emoji\r\nconnection: {connection}\r\n\
                 transfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
            ),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 501"), "{connection}: {answer}");
        assert!(
            answer.contains("mesh-error: transfer coding not supported"),
            "{answer}"
        );
    }
    stop(sidecar).await;
}

/// `Host` named in `Connection` still reaches the application, as
/// `Forward` keeps it: it is end to end (RFC 9110 §7.2), and the request
/// was authorized for it.
#[tokio::test]
async fn a_host_named_in_connection_reaches_the_application() {
    let (app, _) = backend().await;
    let sidecar = plain_inbound(app);
    let answer = raw_exchange(
        sidecar.inbound[0],
        "GET /headers HTTP/1.1\r\nhost: emoji\r\nconnection: host, close\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\nhost: emoji\n"), "{answer}");
    stop(sidecar).await;
}

/// The outbound side drops what `Connection` names the same way, and
/// leaves `Transfer-Encoding` to `Forward` alike.
#[tokio::test]
async fn the_outbound_side_still_refuses_a_transfer_coding_named_in_connection() {
    let (app, _) = backend().await;
    let sidecar = sidecar(&format!(
        "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: web\n      endpoints: [{app}]\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n"
    ));
    let answer = raw_exchange(
        sidecar.outbound,
        "POST /echo HTTP/1.1\r\nhost: web\r\nconnection: transfer-encoding, close\r\n\
         transfer-encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
    stop(sidecar).await;
}
