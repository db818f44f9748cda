//! `sidecar authz` against a live sidecar whose port no Server covers, so
//! that a default policy decides it; and the JSON views through the CLI,
//! naming on standard error the admin servers they could not scrape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, time::Duration};

use http::Request;
use mesh_examples::sidecar::views;
use mesh_metrics::query::Format;
use serde_json::Value;
use support::*;

/// A Server for another workload: `emoji`'s port has none, so the
/// default policy, `all-unauthenticated`, decides it.
const OTHER_SERVER: &str = "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: { name: vote-http, namespace: emojivoto }
spec: { podSelector: { matchLabels: { app: vote } }, port: http }
";

/// Runs `view` while one client calls `inbound`, one request after
/// another.
async fn during<T>(view: impl Future<Output = T>, inbound: SocketAddr) -> T {
    let mut view = std::pin::pin!(view);
    let client = http1();
    loop {
        let req = Request::get(format!("http://{inbound}/"))
            .body(full(""))
            .unwrap();
        tokio::select! {
            out = &mut view => return out,
            res = client.request(req) => {
                body_bytes(res.unwrap()).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authz_shows_a_default_policy_as_the_server_of_its_kind() {
    let (_dir, emoji) = emoji_inbound(ok_app(false).await, OTHER_SERVER);
    let admin = format!("emoji={}", emoji.admin);
    let window = Duration::from_millis(500);
    let json = during(views::authz(&admin, window, Format::Json), emoji.inbound[0]).await;
    let table = during(
        views::authz(&admin, window, Format::Table),
        emoji.inbound[0],
    )
    .await;
    stop(emoji).await;

    let json = json.unwrap();
    let rows: Vec<Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(rows.len(), 1, "{json}");
    let row = &rows[0];
    // The name as the metrics write it, and its kind beside it.
    assert_eq!(row["server"], "all-unauthenticated", "{json}");
    assert_eq!(row["server_kind"], "default", "{json}");
    assert_eq!(row["authorization"], "all-unauthenticated", "{json}");
    assert_eq!(row["authorization_kind"], "default", "{json}");
    // The responses carry the kinds: they are in this row.
    assert_eq!(row["success"], 1.0, "{json}");
    assert!(row["latency_ms_p50"].as_f64().is_some(), "{json}");

    let table = table.unwrap();
    let line = table.lines().nth(1).unwrap_or_default();
    // As `linkerd viz authz` writes a default policy's server.
    assert!(line.contains(" default:all-unauthenticated "), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_views_name_the_admin_servers_they_could_not_scrape_on_stderr() {
    let live = plain_inbound(ok_app(false).await);
    let gone = refused_addr().await;
    let admin = format!("web={},vote={gone}", live.admin);
    let outputs = tokio::task::spawn_blocking(move || {
        ["stat", "routes", "edges", "authz"].map(|view| {
            let args = [view, "--admin", &admin, "--window", "100ms", "-o", "json"];
            (view, sidecar_cli(&args))
        })
    })
    .await
    .unwrap();
    stop(live).await;

    for (view, output) in outputs {
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(output.status.code(), Some(0), "{view}: {stderr}");
        // Standard output is the JSON alone.
        let json: Value =
            serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{view}: {e}: {stdout}"));
        assert!(json.is_array(), "{view}: {stdout}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{view}: {stderr}");
        let prefix = format!("sidecar: scraping vote ({gone}): ");
        assert!(lines[0].starts_with(&prefix), "{view}: {stderr}");
        assert!(lines[0].len() > prefix.len(), "{view}: {stderr}");
    }
}
