//! Reloads of the identity files as Kubernetes writes a Secret volume: a
//! `..data` symlink swap is picked up, a bad one keeps the certificate in
//! service, and a rotation lets the requests in flight finish.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::review_reload_policy::{ConfigMapVolume, sample, shows};
use crate::support;

use std::{path::Path, time::Duration};

use http::{Request, StatusCode};
use support::*;

/// The three files of a TLS secret issued into `dir`, as `(name, text)`.
fn secret(dir: &Path) -> Vec<(&'static str, String)> {
    ["tls.crt", "tls.key", "ca.crt"]
        .into_iter()
        .map(|name| (name, std::fs::read_to_string(dir.join(name)).unwrap()))
        .collect()
}

fn borrowed<'a>(files: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    files
        .iter()
        .map(|(name, text)| (*name, text.as_str()))
        .collect()
}

/// A GET of `path` from `emoji` through the outbound listener at
/// `outbound`: its status and body.
async fn get(outbound: std::net::SocketAddr, path: &str) -> (StatusCode, String) {
    let req = Request::get(format!("http://{outbound}{path}"))
        .header("host", "emoji")
        .body(full(""))
        .unwrap();
    let res = http1().request(req).await.unwrap();
    let status = res.status();
    let body = String::from_utf8(body_bytes(res).await.to_vec()).unwrap();
    (status, body)
}

const ROTATIONS: &str = "identity_cert_rotations_total";
const KEY_MISMATCHES: &str = "identity_cert_rejected_updates_total{reason=\"key_mismatch\"}";

#[tokio::test]
async fn a_secrets_symlink_swap_rotates_and_a_bad_one_keeps_the_certificate_in_service() {
    let dir = tempfile::tempdir().unwrap();
    let issue = issuer(dir.path());
    let first = secret(&issue("emoji"));
    let volume_dir = dir.path().join("emoji-secret");
    let mut volume = ConfigMapVolume::new(&volume_dir, &borrowed(&first));
    let (app, gate) = backend().await;
    let emoji = sidecar(&format!(
        "identity:\n  dir: {}\n  watch_interval: 50ms\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n",
        volume_dir.display()
    ));
    let web = sidecar(&format!(
        "identity:\n  dir: {}\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{}]\n      identity: {}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
        issue("web").display(),
        emoji.inbound[0],
        identity("emoji"),
    ));
    assert_eq!(get(web.outbound, "/list").await.0, StatusCode::OK);

    // A request in flight while the certificate rotates.
    let held = tokio::spawn(get(web.outbound, "/hold"));
    gate.arrived.notified().await;

    // A swap whose key is not the certificate's (another issue's): refused,
    // and the certificate in service stays.
    let second = secret(&issue("emoji"));
    let third = secret(&issue("emoji"));
    let torn = vec![second[0].clone(), third[1].clone(), second[2].clone()];
    volume.update(&borrowed(&torn));
    shows(emoji.admin, KEY_MISMATCHES, 1.0).await;
    let metrics = scrape(emoji.admin).await;
    assert_eq!(sample(&metrics, ROTATIONS), Some(0.0), "{metrics}");
    assert_eq!(get(web.outbound, "/list").await.0, StatusCode::OK);

    // The whole new secret: rotated, with the request in flight still on
    // its connection.
    volume.update(&borrowed(&second));
    shows(emoji.admin, ROTATIONS, 1.0).await;
    gate.release.notify_one();
    let (status, body) = held.await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "held"));
    assert_eq!(get(web.outbound, "/list").await.0, StatusCode::OK);
    let metrics = scrape(emoji.admin).await;
    assert_eq!(sample(&metrics, KEY_MISMATCHES), Some(1.0), "{metrics}");

    stop(web).await;
    stop(emoji).await;
}

#[tokio::test]
async fn a_client_whose_certificate_rotates_mid_request_finishes_it_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let issue = issuer(dir.path());
    let volume_dir = dir.path().join("web-secret");
    let mut volume = ConfigMapVolume::new(&volume_dir, &borrowed(&secret(&issue("web"))));
    let (app, gate) = backend().await;
    let emoji = sidecar(&format!(
        "identity:\n  dir: {}\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
        issue("emoji").display(),
    ));
    let web = sidecar(&format!(
        "identity:\n  dir: {}\n  watch_interval: 50ms\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{}]\n      identity: {}\n\
         admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 2\n",
        volume_dir.display(),
        emoji.inbound[0],
        identity("emoji"),
    ));
    assert_eq!(get(web.outbound, "/list").await.0, StatusCode::OK);
    let held = tokio::spawn(get(web.outbound, "/hold"));
    gate.arrived.notified().await;

    volume.update(&borrowed(&secret(&issue("web"))));
    shows(web.admin, ROTATIONS, 1.0).await;
    // New requests go on new connections, presenting the new certificate,
    // while the one in flight finishes on its own.
    assert_eq!(get(web.outbound, "/list").await.0, StatusCode::OK);
    gate.release.notify_one();
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), held)
        .await
        .expect("the request in flight finishes")
        .unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "held"));
    stop(web).await;
    stop(emoji).await;
}
