//! A pooled client connection kept across a credential update is still
//! retired before every certificate through which the bundle in service
//! trusts its server expires.
//!
//! A bundle that holds an issuing CA's certificate beside its root ends
//! the server's path at that certificate, whose own `notAfter` webpki
//! never reads (it is an anchor), so the connection is timed by the
//! server's leaf alone. Once an update drops it from the bundle, the
//! server is trusted through the issuer as an intermediate: a connection
//! still held to the leaf's `notAfter` would outlive the issuer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_tls::{CredentialStore, Credentials, InboundMode};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

fn retired(store: &CredentialStore) -> String {
    encode(store)
        .lines()
        .filter(|line| line.starts_with("tls_connections_retired_total{direction=\"outbound\""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(start_paused = true)]
async fn a_connection_kept_when_the_bundle_drops_an_issuer_anchor_is_retired_before_the_issuer_expires()
 {
    // The server's issuer lives two hours, its leaf a day.
    let (api_ca, api_chain, api_key) = leaf_outliving_its_issuer(API, 2 * HOUR, 24 * HOUR);
    let web_ca = ca();
    let web = web_ca.issue(&id(WEB), 24 * HOUR).unwrap();
    // Both sides trust the server's issuer as an anchor beside its root,
    // so neither holds the server's connections to the issuer's end.
    let with_issuer = format!(
        "{}{}{}",
        api_ca.bundle_pem(),
        api_ca.issuer_pem(),
        web_ca.bundle_pem()
    );
    let server_store = loaded(
        Credentials::from_pem(
            api_chain.as_bytes(),
            api_key.as_bytes(),
            with_issuer.as_bytes(),
        )
        .unwrap(),
    );
    let server = serve(server_store, InboundMode::Strict).await;
    let client_creds = |bundle: &str| {
        Credentials::from_pem(
            web.chain_pem().as_bytes(),
            web.key_pem().as_bytes(),
            bundle.as_bytes(),
        )
        .unwrap()
    };
    let client_store = loaded(client_creds(&with_issuer));
    let uri = format!("http://{}/", server.addr).parse().unwrap();
    let connector = connector(client_store.clone(), server.addr, API);
    let io = tower::ServiceExt::oneshot(connector, uri).await.unwrap();
    let mut extras = http::Extensions::new();
    hyper_util::client::legacy::connect::Connection::connected(&io).get_extras(&mut extras);
    let tls = extras.get::<mesh_tls::ServerTls>().cloned().unwrap();

    // The issuer leaves the client's bundle; its root still verifies the
    // server's chain, now through the issuer's certificate.
    let roots = format!("{}{}", api_ca.bundle_pem(), web_ca.bundle_pem());
    client_store.update(client_creds(&roots)).unwrap();

    // Half a minute before the issuer's notAfter, inside the connector's
    // minute of retirement ahead of it; a read polls the connection's
    // timers.
    tokio::time::advance(2 * HOUR - Duration::from_secs(30)).await;
    let mut io = hyper_util::rt::TokioIo::new(io);
    let _ = tokio::io::AsyncReadExt::read(&mut io, &mut [0u8; 1]).await;
    assert!(
        tls.is_retired(),
        "kept past the notAfter of the issuer the bundle trusts the server through\n{}",
        retired(&client_store)
    );
    server.stop().await;
}

/// The same on the server side: a client connection the acceptor keeps
/// across a bundle update (`drain_on_rotation` off) is drained before the
/// client's issuer expires once the bundle trusts the client through it.
#[tokio::test]
async fn a_server_connection_kept_when_the_bundle_drops_an_issuer_anchor_is_drained_before_the_issuer_expires()
 {
    // The client's issuer lives two hours, its leaf twelve.
    let (web_ca, web_chain, web_key) = leaf_outliving_its_issuer(WEB, 2 * HOUR, 12 * HOUR);
    let api_ca = ca();
    let api = api_ca.issue(&id(API), 24 * HOUR).unwrap();
    let server_creds = |bundle: &str| {
        Credentials::from_pem(
            api.chain_pem().as_bytes(),
            api.key_pem().as_bytes(),
            bundle.as_bytes(),
        )
        .unwrap()
    };
    let with_issuer = format!(
        "{}{}{}",
        api_ca.bundle_pem(),
        web_ca.bundle_pem(),
        web_ca.issuer_pem()
    );
    let server_store = loaded(server_creds(&with_issuer));
    let server = serve(server_store.clone(), InboundMode::Strict).await;
    let config = raw_client(
        mesh_tls::provider(),
        mesh_tls::PROTOCOL_VERSIONS,
        Some((&web_chain, &web_key)),
    );
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::get("/")
        .header(http::header::HOST, "localhost")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);

    // The issuer leaves the server's bundle; its root still verifies the
    // client's chain, now through the issuer's certificate.
    let roots = format!("{}{}", api_ca.bundle_pem(), web_ca.bundle_pem());
    server_store.update(server_creds(&roots)).unwrap();

    // Paused once the connection is up: the handshake's timeouts would
    // otherwise jump ahead while the sockets are read.
    tokio::time::pause();
    tokio::time::advance(2 * HOUR - Duration::from_secs(30)).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    let inbound = encode(&server_store)
        .lines()
        .filter(|line| line.starts_with("tls_connections_retired_total{direction=\"inbound\""))
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(
        inbound.iter().any(|line| !line.ends_with(" 0")),
        "kept past the notAfter of the issuer the bundle trusts the client through: {inbound:?}"
    );
    drop(send);
    let _ = task.await;
    server.stop().await;
}

/// A connection made with certificate A and kept across renewals to B and
/// C, which outlive A, is still retired a minute before A's `notAfter`.
#[tokio::test(start_paused = true)]
async fn a_connection_kept_across_two_renewals_is_retired_before_the_first_certificate_expires() {
    let ca = ca();
    let server_creds = ca.issue(&id(API), 4 * HOUR).unwrap().credentials().unwrap();
    let server = serve(loaded(server_creds), InboundMode::Strict).await;
    // A lives an hour.
    let client_store = loaded(ca.issue(&id(WEB), HOUR).unwrap().credentials().unwrap());
    let uri = format!("http://{}/", server.addr).parse().unwrap();
    let connector = connector(client_store.clone(), server.addr, API);
    let io = tower::ServiceExt::oneshot(connector, uri).await.unwrap();
    let mut extras = http::Extensions::new();
    hyper_util::client::legacy::connect::Connection::connected(&io).get_extras(&mut extras);
    let tls = extras.get::<mesh_tls::ServerTls>().cloned().unwrap();

    // B, then C, each living three hours.
    for _ in 0..2 {
        tokio::time::advance(Duration::from_secs(600)).await;
        let renewed = ca.issue(&id(WEB), 3 * HOUR).unwrap().credentials().unwrap();
        client_store.update(renewed).unwrap();
        assert!(!tls.is_retired(), "a renewal keeps the connection");
    }

    // Past A's notAfter less the minute; a read polls the timers.
    tokio::time::advance(HOUR - Duration::from_secs(59) - Duration::from_secs(1200)).await;
    let mut io = hyper_util::rt::TokioIo::new(io);
    let _ = tokio::io::AsyncReadExt::read(&mut io, &mut [0u8; 1]).await;
    assert!(tls.is_retired(), "retired ahead of A's expiry");
    let metrics = retired(&client_store);
    assert!(
        metrics.contains("reason=\"expiry\"} 1") && !metrics.contains("reason=\"rotation\"} 1"),
        "{metrics}"
    );
    server.stop().await;
}
