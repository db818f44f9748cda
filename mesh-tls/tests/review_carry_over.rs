//! A credential update whose trust bundle vouches for a connection's peer
//! only through a certificate that expires before the path the
//! connection's retirement is timed by retires the connection at once, as
//! a rotation, at both ends; one whose path lasts as long keeps it.
//!
//! A bundle that holds an issuing CA's certificate beside its root ends
//! the peer's path at that certificate, whose own `notAfter` webpki never
//! reads (it is an anchor), so the connection is timed by the peer's leaf
//! alone. Once an update drops it from the bundle, the peer is trusted
//! through the issuer as an intermediate: a connection still held to the
//! leaf's `notAfter` would outlive the issuer. A connection kept across
//! renewals stays held to the certificate it was made with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use mesh_tls::{CredentialStore, Credentials, InboundMode};
use support::*;

const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const API: &str = "spiffe://example.org/ns/shop/sa/api";

/// Credentials of a chain and key, trusting the certificates of `bundle`.
fn credentials(chain: &str, key: &str, bundle: &str) -> Credentials {
    Credentials::from_pem(chain.as_bytes(), key.as_bytes(), bundle.as_bytes()).unwrap()
}

fn retired(store: &CredentialStore) -> String {
    encode(store)
        .lines()
        .filter(|line| line.starts_with("tls_connections_retired_total{direction=\"outbound\""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn retired_inbound(store: &CredentialStore) -> String {
    encode(store)
        .lines()
        .filter(|line| line.starts_with("tls_connections_retired_total{direction=\"inbound\""))
        .collect::<Vec<_>>()
        .join("\n")
}

const ROTATION_OUT: &str =
    "tls_connections_retired_total{direction=\"outbound\",reason=\"rotation\"} 1";
const ROTATION_IN: &str =
    "tls_connections_retired_total{direction=\"inbound\",reason=\"rotation\"} 1";

/// The server's issuer lives two hours and its leaf a day: once the
/// client's bundle drops the issuer, it trusts the server only through a
/// certificate that expires 22 hours before the leaf the connection is
/// timed by, and retires the connection then and there. An issuer that
/// outlives the leaf ends no path sooner, and the connection is kept.
#[tokio::test(start_paused = true)]
async fn a_connection_whose_server_the_new_bundle_trusts_through_an_issuer_expiring_sooner_is_retired_at_the_update()
 {
    for (issuer_life, retired_at_once) in [(2 * HOUR, true), (48 * HOUR, false)] {
        let (api_ca, api_chain, api_key) = leaf_outliving_its_issuer(API, issuer_life, 24 * HOUR);
        let web_ca = ca();
        let web = web_ca.issue(&id(WEB), 24 * HOUR).unwrap();
        // Both sides trust the server's issuer as an anchor beside its
        // root, so neither holds the server's connections to the issuer's
        // end.
        let with_issuer = format!(
            "{}{}{}",
            api_ca.bundle_pem(),
            api_ca.issuer_pem(),
            web_ca.bundle_pem()
        );
        let server_store = loaded(credentials(&api_chain, &api_key, &with_issuer));
        let server = serve(server_store, InboundMode::Strict).await;
        let client_creds = |bundle: &str| credentials(web.chain_pem(), web.key_pem(), bundle);
        let client_store = loaded(client_creds(&with_issuer));
        let uri = format!("http://{}/", server.addr).parse().unwrap();
        let connector = connector(client_store.clone(), server.addr, API);
        let io = tower::ServiceExt::oneshot(connector, uri).await.unwrap();
        let mut extras = http::Extensions::new();
        hyper_util::client::legacy::connect::Connection::connected(&io).get_extras(&mut extras);
        let tls = extras.get::<mesh_tls::ServerTls>().cloned().unwrap();

        // The issuer leaves the client's bundle; its root still verifies
        // the server's chain, now through the issuer's certificate. No
        // time passes: a retirement timed by the issuer's notAfter would
        // not have come yet.
        let roots = format!("{}{}", api_ca.bundle_pem(), web_ca.bundle_pem());
        client_store.update(client_creds(&roots)).unwrap();
        let metrics = retired(&client_store);
        assert_eq!(
            tls.is_retired(),
            retired_at_once,
            "issuer living {issuer_life:?}\n{metrics}"
        );
        if retired_at_once {
            assert_eq!(metrics, ROTATION_OUT);
        } else {
            assert!(!metrics.contains("} 1"), "{metrics}");
        }
        drop(io);
        server.stop().await;
    }
}

/// The same on the server side: a client connection the acceptor holds
/// across a bundle update (`drain_on_rotation` off) is drained at the
/// update when the new bundle trusts the client only through an issuer
/// that expires before the client's leaf, and kept, serving the next
/// request, when the issuer outlives the leaf.
#[tokio::test]
async fn a_server_connection_whose_client_the_new_bundle_trusts_through_an_issuer_expiring_sooner_is_drained_at_the_update()
 {
    for (issuer_life, drained) in [(2 * HOUR, true), (48 * HOUR, false)] {
        let (web_ca, web_chain, web_key) = leaf_outliving_its_issuer(WEB, issuer_life, 12 * HOUR);
        let api_ca = ca();
        let api = api_ca.issue(&id(API), 24 * HOUR).unwrap();
        let server_creds = |bundle: &str| credentials(api.chain_pem(), api.key_pem(), bundle);
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
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .unwrap();
        let task = tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = || {
            http::Request::get("/")
                .header(http::header::HOST, "localhost")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap()
        };
        let res = send.send_request(req()).await.unwrap();
        assert_eq!(res.status(), 200);

        // The issuer leaves the server's bundle; its root still verifies
        // the client's chain, now through the issuer's certificate. The
        // drain runs on a task of the acceptor's: wait for it, on the
        // real clock, which an issuer's notAfter hours away does not
        // reach.
        let roots = format!("{}{}", api_ca.bundle_pem(), web_ca.bundle_pem());
        server_store.update(server_creds(&roots)).unwrap();
        if drained {
            tokio::time::timeout(std::time::Duration::from_secs(10), async {
                while retired_inbound(&server_store) != ROTATION_IN {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "not drained at the update\n{}",
                    retired_inbound(&server_store)
                )
            });
        } else {
            // Kept: the next request is served on the same connection.
            let res = send.send_request(req()).await.unwrap();
            assert_eq!(res.status(), 200);
            let metrics = retired_inbound(&server_store);
            assert!(!metrics.contains("} 1"), "{metrics}");
        }
        drop(send);
        let _ = task.await;
        server.stop().await;
    }
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
