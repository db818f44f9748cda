//! `sidecar edges` and `sidecar authz` against live sidecars: `web` calls
//! `emoji` over mutual TLS, and `plain`, a sidecar without identity, calls
//! it in plaintext. `emoji`'s policy lets only `web`'s identity in, so
//! `plain`'s requests are denied with a 403, and `emoji`'s application
//! fails one request in ten of those it gets. Each sidecar with an identity
//! names it in its metrics, which is how `edges` knows whose traffic it is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{net::SocketAddr, time::Duration};

use http::{Request, StatusCode};
use mesh_examples::sidecar::{Running, views};
use mesh_metrics::query::Format;
use serde_json::Value;
use support::*;

/// The window each view measures over: long enough for the twenty-odd
/// requests a caller's row needs to read a rate and a success ratio by,
/// on a machine busy enough to take 50 ms over each.
const WINDOW: Duration = Duration::from_secs(2);

/// A Server for `emoji`'s HTTP port that only `web`'s identity may use.
fn emoji_policy() -> String {
    format!(
        "apiVersion: policy.linkerd.io/v1beta3
kind: Server
metadata: {{ name: emoji-http, namespace: emojivoto }}
spec: {{ podSelector: {{ matchLabels: {{ app: emoji }} }}, port: http }}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: MeshTLSAuthentication
metadata: {{ name: web-only, namespace: emojivoto }}
spec: {{ identities: [\"{}\"] }}
---
apiVersion: policy.linkerd.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{ name: emoji-from-web, namespace: emojivoto }}
spec:
  targetRef: {{ group: policy.linkerd.io, kind: Server, name: emoji-http }}
  requiredAuthenticationRefs:
    - {{ group: policy.linkerd.io, kind: MeshTLSAuthentication, name: web-only }}
",
        identity("web")
    )
}

struct Mesh {
    _dir: tempfile::TempDir,
    emoji: Running,
    web: Running,
    plain: Running,
}

impl Mesh {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let certs_for = issuer(dir.path());
        let policy = dir.path().join("policy.yaml");
        std::fs::write(&policy, emoji_policy()).unwrap();
        let app = ok_app(true).await;
        let emoji = sidecar(&format!(
            "identity:\n  dir: {}\n\
             inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n\
             outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n\
             server:\n  threads: 1\n\
             policy:\n  workload:\n    namespace: emojivoto\n    labels: {{app: emoji}}\n\
             \x20   ports: {{http: {}}}\n  files: [{}]\n",
            certs_for("emoji").display(),
            app.port(),
            policy.display(),
        ));
        let web = sidecar(&format!(
            "identity:\n  dir: {}\n\
             outbound:\n  listen: 127.0.0.1:0\n  services:\n\
             \x20   - name: emoji\n      endpoints: [{}]\n      identity: {}\n\
             admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
            certs_for("web").display(),
            emoji.inbound[0],
            identity("emoji"),
        ));
        let plain = sidecar(&format!(
            "outbound:\n  listen: 127.0.0.1:0\n  services:\n\
             \x20   - name: emoji\n      endpoints: [{}]\n\
             admin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
            emoji.inbound[0],
        ));
        drop(certs_for);
        Self {
            _dir: dir,
            emoji,
            web,
            plain,
        }
    }

    /// `--admin` for all three workloads.
    fn admin(&self) -> String {
        format!(
            "web={},emoji={},plain={}",
            self.web.admin, self.emoji.admin, self.plain.admin
        )
    }

    async fn stop(self) {
        for running in [self.web, self.plain, self.emoji] {
            stop(running).await;
        }
    }
}

/// Runs `view` while `web` and `plain` call `emoji` in turn, one request
/// after another; the view's output, and the statuses each caller got.
async fn during<T>(
    view: impl Future<Output = T>,
    callers: [SocketAddr; 2],
) -> (T, [Vec<StatusCode>; 2]) {
    let mut view = std::pin::pin!(view);
    let client = http1();
    let mut statuses = [Vec::new(), Vec::new()];
    loop {
        for (outbound, seen) in callers.iter().zip(&mut statuses) {
            let req = Request::get(format!("http://{outbound}/api/list"))
                .header("host", "emoji")
                .body(full(""))
                .unwrap();
            tokio::select! {
                out = &mut view => return (out, statuses),
                res = client.request(req) => {
                    let res = res.unwrap();
                    seen.push(res.status());
                    body_bytes(res).await;
                }
            }
        }
    }
}

/// [`during`], measured again while `plain` sent 20 requests or fewer
/// (five times at most): a window of a busy machine's traffic may hold too
/// few to read a rate or a ratio of one request in ten by.
async fn measured<T, F: Future<Output = T>>(
    view: impl Fn() -> F,
    callers: [SocketAddr; 2],
) -> (T, [Vec<StatusCode>; 2]) {
    let mut attempts = 1;
    loop {
        let (out, statuses) = during(view(), callers).await;
        if statuses[1].len() > 20 || attempts == 5 {
            return (out, statuses);
        }
        attempts += 1;
    }
}

fn rows(json: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(json)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_show_who_calls_whom_and_whether_on_mutual_tls() {
    let mesh = Mesh::start().await;
    let callers = [mesh.web.outbound, mesh.plain.outbound];
    let admin = mesh.admin();
    let (json, statuses) = measured(|| views::edges(&admin, WINDOW, Format::Json), callers).await;
    let (table, _) = during(views::edges(&admin, WINDOW, Format::Table), callers).await;
    mesh.stop().await;

    // The policy let web in and turned plain away.
    assert!(statuses[1].len() > 20, "too little traffic: {statuses:?}");
    assert!(statuses[1].iter().all(|s| *s == StatusCode::FORBIDDEN));
    let json = json.unwrap();
    let rows = rows(&json);
    let edges: Vec<(&str, &str, &Value, &Value, &Value)> = rows
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap();
            (
                s("src"),
                s("dst"),
                &r["client_id"],
                &r["server_id"],
                &r["no_tls_reason"],
            )
        })
        .collect();
    let (web, emoji) = (identity("web"), identity("emoji"));
    assert_eq!(
        edges,
        [
            // What emoji saw of clients without identity is no edge
            // (as in linkerd viz edges): it cannot say who they were.
            // What plain's sidecar saw of its own calls.
            (
                "plain",
                "emoji",
                &Value::Null,
                &Value::Null,
                &Value::from("disabled"),
            ),
            // Both ends of web's calls, one row, each identity learned.
            (
                "web",
                "emoji",
                &Value::from(web.as_str()),
                &Value::from(emoji.as_str()),
                &Value::Null,
            ),
        ],
        "{json}"
    );
    // web's calls: the application's one failure in ten.
    let success = rows[1]["success"].as_f64().unwrap();
    assert!((success - 0.9).abs() <= 0.05, "success {success}: {json}");
    assert!(rows[1]["rps"].as_f64().unwrap() > 5.0, "{json}");
    // plain's 403s are answers its sidecar counts as successes.
    assert_eq!(rows[0]["success"].as_f64(), Some(1.0), "{json}");

    let table = table.unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("SRC"), "{table}");
    assert!(lines[0].contains("SECURED"), "{table}");
    let line = |src: &str| *lines.iter().find(|l| l.starts_with(src)).unwrap();
    assert!(line("web ").contains(" ✓ "), "{table}");
    assert!(line("web ").contains("web.emojivoto"), "{table}");
    assert!(line("plain ").contains(" Disabled "), "{table}");
    assert!(!table.contains("Not Provided By Remote"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sidecar_names_its_own_identity_whatever_its_workload_is_called() {
    // Named `frontend` and `backend`, web and emoji match no service name,
    // so no peer's series could tell their identities: each sidecar's
    // `identity_cert_info` does, and the two ends of web's calls meet.
    let mesh = Mesh::start().await;
    let callers = [mesh.web.outbound, mesh.plain.outbound];
    let admin = format!(
        "frontend={},backend={},plain={}",
        mesh.web.admin, mesh.emoji.admin, mesh.plain.admin
    );
    let own = [
        scrape(mesh.web.admin).await,
        scrape(mesh.emoji.admin).await,
        scrape(mesh.plain.admin).await,
    ];
    let (json, _) = during(views::edges(&admin, WINDOW, Format::Json), callers).await;
    mesh.stop().await;

    let (web, emoji) = (identity("web"), identity("emoji"));
    let info = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with("identity_cert_info"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        own.each_ref().map(|text| info(text)),
        [
            vec![format!("identity_cert_info{{identity=\"{web}\"}} 1")],
            vec![format!("identity_cert_info{{identity=\"{emoji}\"}} 1")],
            // plain has no identity to name.
            vec![],
        ]
    );

    let json = json.unwrap();
    let edges: Vec<[Value; 5]> = rows(&json)
        .iter()
        .map(|r| ["src", "dst", "client_id", "server_id", "no_tls_reason"].map(|k| r[k].clone()))
        .collect();
    let v = |s: &str| Value::from(s);
    assert_eq!(
        edges,
        [
            // No row for backend's clients without identity.
            [v("frontend"), v("backend"), v(&web), v(&emoji), Value::Null],
            // plain's calls required no identity: DST is the service.
            [
                v("plain"),
                v("emoji"),
                Value::Null,
                Value::Null,
                v("disabled"),
            ],
        ],
        "{json}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authz_shows_the_allowed_and_the_denied() {
    let mesh = Mesh::start().await;
    let callers = [mesh.web.outbound, mesh.plain.outbound];
    let admin = format!("emoji={}", mesh.emoji.admin);
    let (json, statuses) = measured(|| views::authz(&admin, WINDOW, Format::Json), callers).await;
    let (table, _) = during(views::authz(&admin, WINDOW, Format::Table), callers).await;
    mesh.stop().await;

    let json = json.unwrap();
    let rows = rows(&json);
    let keys: Vec<(&str, &str, &Value)> = rows
        .iter()
        .map(|r| {
            (
                r["server"].as_str().unwrap(),
                r["route"].as_str().unwrap(),
                &r["authorization"],
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("emoji-http", "default", &Value::from("emoji-from-web")),
            ("emoji-http", "default", &Value::Null),
        ],
        "{json}"
    );
    let allowed = &rows[0];
    let success = allowed["success"].as_f64().unwrap();
    assert!((success - 0.9).abs() <= 0.05, "success {success}: {json}");
    assert!(allowed["latency_ms_p50"].as_f64().is_some(), "{json}");
    // The denied row's rate is plain's: the callers take turns, so in one
    // window the two counts differ by a request or two.
    let (allowed_rps, denied_rps) = (
        allowed["rps"].as_f64().unwrap(),
        rows[1]["rps"].as_f64().unwrap(),
    );
    assert!(denied_rps > 5.0, "{json}");
    let apart = (denied_rps - allowed_rps).abs() * WINDOW.as_secs_f64();
    assert!(
        apart <= 3.0,
        "allowed {allowed_rps}, denied {denied_rps}: {json}"
    );
    assert!(rows[1]["success"].is_null(), "{json}");
    // The callers took turns: web sent as many requests as plain, or one
    // more when the view ended between the two.
    let (sent_web, sent_plain) = (statuses[0].len(), statuses[1].len());
    assert!(
        sent_web.abs_diff(sent_plain) <= 1,
        "{sent_web} {sent_plain}"
    );

    let table = table.unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ROUTE"), "{table}");
    assert!(lines[0].contains("AUTHORIZATION"), "{table}");
    assert!(lines[1].contains(" emoji-from-web "), "{table}");
    assert!(lines[2].contains(" [unauthorized] "), "{table}");
    // No opaque port: no connection is counted.
    assert!(
        rows.iter().all(|r| r["tcp_connections"].is_null()),
        "{json}"
    );
    assert!(lines[0].ends_with(" TCP_CONN"), "{table}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_without_traffic_says_so() {
    let mesh = Mesh::start().await;
    let admin = mesh.admin();
    let edges = views::edges(&admin, Duration::from_millis(50), Format::Table)
        .await
        .unwrap();
    let authz = views::authz(&admin, Duration::from_millis(50), Format::Table)
        .await
        .unwrap();
    let json = views::edges(&admin, Duration::from_millis(50), Format::Json)
        .await
        .unwrap();
    mesh.stop().await;
    assert_eq!(edges, "No edges found.\n");
    assert_eq!(
        authz,
        "No authorized or denied requests or connections found.\n"
    );
    assert_eq!(json, "[]\n");
}

#[tokio::test]
async fn the_views_refuse_a_bad_admin_list_and_unreachable_servers() {
    let error = views::edges("web=nowhere", WINDOW, Format::Table)
        .await
        .unwrap_err();
    assert!(matches!(error, views::ViewError::Targets(_)), "{error:?}");
    let closed = refused_addr().await;
    let admin = format!("emoji={closed}");
    for view in [
        views::edges(&admin, Duration::from_millis(10), Format::Json).await,
        views::authz(&admin, Duration::from_millis(10), Format::Json).await,
    ] {
        let error = view.unwrap_err();
        assert!(matches!(error, views::ViewError::Query(_)), "{error:?}");
        let shown = error.to_string();
        assert!(
            shown.starts_with(&format!(
                "no admin server could be scraped: scraping emoji ({closed}): "
            )),
            "{shown}"
        );
    }
}

/// Needs the binary: `cargo build -p mesh-examples --example sidecar`.
#[test]
fn the_command_line_takes_edges_and_authz() {
    for view in ["edges", "authz"] {
        // A zero window is a usage error, before anything is scraped.
        let out = sidecar_cli(&[view, "--admin", "a=127.0.0.1:1", "--window", "0s"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{view}: {stderr}");
        assert!(stderr.contains("greater than zero"), "{view}: {stderr}");
        // Port 1 on loopback refuses connections: the view says so.
        let out = sidecar_cli(&[view, "--admin", "a=127.0.0.1:1", "--window", "10ms"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{view}: {stderr}");
        assert!(
            stderr.contains("error: no admin server could be scraped"),
            "{view}: {stderr}"
        );
        assert!(stderr.contains("127.0.0.1:1"), "{view}: {stderr}");
    }
}
