//! The dashboard on a live mesh shaped like the guide's emojivoto: `web`,
//! `emoji` and `voting` behind sidecars that speak mutual TLS, `web`'s
//! sidecar serving the dashboard over all three. `voting` fails one request
//! in ten, which retries hide, and answers `/slow` after the deadline, which
//! times out. Also: the `admin.dashboard` section of the configuration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use http::{Request, StatusCode};
use mesh_examples::sidecar::{
    certs,
    config::{ConfigErrorKind, SidecarConfig},
};
use serde_json::Value;
use support::*;

/// Sends requests one after another until `stop`: to `web` through its
/// inbound listener, and, as web's application would, to `emoji` and
/// `voting` through its outbound listener; every 25th vote is `/slow`.
/// `rounds` counts the rounds sent.
async fn traffic(
    web_inbound: SocketAddr,
    web_outbound: SocketAddr,
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
) -> u64 {
    let client = http1();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) && sent < 100_000 {
        let vote = if sent.is_multiple_of(25) {
            "/slow"
        } else {
            "/vote"
        };
        for (addr, host, path) in [
            (web_inbound, "web", "/"),
            (web_outbound, "emoji", "/list"),
            (web_outbound, "voting", vote),
        ] {
            let req = Request::get(format!("http://{addr}{path}"))
                .header("host", host)
                .body(full(""))
                .unwrap();
            let res = client.request(req).await.unwrap();
            body_bytes(res).await;
        }
        sent += 1;
        rounds.store(sent, Ordering::Relaxed);
    }
    sent
}

/// `voting`'s application: `ok`, every tenth request a 500, and `/slow`
/// answered after a minute. A route deadline of seconds cuts `/slow`
/// alone, however long a busy machine takes over the other votes.
async fn voting_app() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    serve(listener, move |req: Request<hyper::body::Incoming>| {
        let n = seen.fetch_add(1, Ordering::Relaxed);
        async move {
            let mut res = http::Response::new(full("ok"));
            if req.uri().path() == "/slow" {
                tokio::time::sleep(Duration::from_secs(60)).await;
            } else if n % 10 == 9 {
                *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            }
            Ok(res)
        }
    });
    addr
}

async fn get(addr: SocketAddr, path: &str) -> (StatusCode, http::HeaderMap, String) {
    let res = http1()
        .request(
            Request::get(format!("http://{addr}{path}"))
                .body(full(""))
                .unwrap(),
        )
        .await
        .unwrap();
    let (parts, body) = res.into_parts();
    let bytes = http_body_util::BodyExt::collect(body)
        .await
        .unwrap()
        .to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8(bytes.to_vec()).unwrap(),
    )
}

fn find(list: &Value, pred: impl Fn(&Value) -> bool) -> Option<&Value> {
    list.as_array().unwrap().iter().find(|v| pred(v))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_shows_workloads_edges_and_routes_of_a_live_mesh() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca");
    certs::create_ca("example.org", &ca).unwrap();
    let certs_for = |name: &str| {
        let out = dir.path().join(name);
        certs::issue(&ca, &identity(name), Duration::from_secs(3600), &out).unwrap();
        out
    };
    let mut backends = Vec::new();
    for (name, flaky) in [("emoji", false), ("voting", true)] {
        let app = if flaky {
            voting_app().await
        } else {
            ok_app(false).await
        };
        backends.push(sidecar(&format!(
            "identity:\n  dir: {}\n\
             inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  protocol: http\n  tls: strict\n\
             outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\nserver:\n  threads: 1\n",
            certs_for(name).display()
        )));
    }
    let (emoji, voting) = (&backends[0], &backends[1]);
    let web_app = ok_app(false).await;
    let web = sidecar(&format!(
        "identity:\n  dir: {}\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {web_app}\n  protocol: http\n\
         outbound:\n  listen: 127.0.0.1:0\n  services:\n\
         \x20   - name: emoji\n      endpoints: [{}]\n      identity: {}\n\
         \x20   - name: voting\n      endpoints: [{}]\n      identity: {}\n\
         \x20     retry: {{attempts: 3, http: 5xx}}\n\
         \x20     timeouts: {{request: 2s}}\n\
         admin:\n  listen: 127.0.0.1:0\n  dashboard:\n    name: web\n    peers:\n\
         \x20     - {{name: emoji, admin: \"{}\"}}\n\
         \x20     - {{name: voting, admin: \"{}\"}}\n\
         server:\n  threads: 1\n",
        certs_for("web").display(),
        emoji.inbound[0],
        identity("emoji"),
        voting.inbound[0],
        identity("voting"),
        emoji.admin,
        voting.admin,
    ));

    let (status, headers, page) = get(web.admin, "/dashboard").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(page.contains("<title>mesh"), "{page}");
    // The admin's own paths still answer, and unknown ones are 404.
    assert_eq!(get(web.admin, "/ready").await.0, StatusCode::OK);
    assert_eq!(get(web.admin, "/nope").await.0, StatusCode::NOT_FOUND);
    // A sidecar without the section has no dashboard.
    assert_eq!(
        get(emoji.admin, "/dashboard").await.0,
        StatusCode::NOT_FOUND
    );

    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let load = tokio::spawn(traffic(
        web.inbound[0],
        web.outbound,
        stop.clone(),
        rounds.clone(),
    ));

    // Wait until the window holds a few rounds with every edge in it, and
    // enough traffic to measure, which a busy machine takes its time over.
    let mut view = Value::Null;
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (status, headers, json) = get(web.admin, "/dashboard/api").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers["content-type"], "application/json");
        view = serde_json::from_str(&json).unwrap();
        let timeouts = find(&view["routes"], |r| r["service"] == "voting")
            .is_some_and(|r| r["timeouts"].as_f64().unwrap() > 0.0);
        if rounds.load(Ordering::Relaxed) > 20
            && view["rounds"].as_u64().unwrap() >= 4
            && view["edges"].as_array().unwrap().len() == 2
            && timeouts
        {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(load.await.unwrap() > 20, "too little traffic to measure");
    let json = serde_json::to_string_pretty(&view).unwrap();

    assert_eq!(view["interval_seconds"], 2.0, "{json}");
    for (source, name) in view["sources"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["web", "emoji", "voting"])
    {
        assert_eq!(source["name"], name, "{json}");
        assert_eq!(source["up"], true, "{json}");
    }
    let names: Vec<&str> = view["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "emoji", "voting"], "{json}");
    for w in view["workloads"].as_array().unwrap() {
        assert_eq!(w["meshed"], 1, "{json}");
        assert!(w["rps"].as_f64().unwrap() > 1.0, "{json}");
        assert!(w["latency_ms_p99"].as_f64().unwrap() > 0.0, "{json}");
        // No policy here: nothing is denied.
        assert_eq!(w["denied"], 0.0, "{json}");
        let points = view["timeline"].as_array().unwrap().len();
        assert!(points >= 3, "{json}");
        assert_eq!(
            w["history"]["rps"].as_array().unwrap().len(),
            points,
            "{json}"
        );
    }
    let workload = |name: &str| find(&view["workloads"], |w| w["name"] == name).unwrap();
    // emoji never fails; voting's failures reach its inbound side.
    assert_eq!(workload("emoji")["success"], 1.0, "{json}");
    let voting_success = workload("voting")["success"].as_f64().unwrap();
    assert!((0.8..0.97).contains(&voting_success), "{json}");
    // Calls into emoji and voting came from web's sidecar over mutual TLS.
    assert_eq!(workload("emoji")["tls"], 1.0, "{json}");
    assert_eq!(workload("voting")["tls"], 1.0, "{json}");

    for dst in ["emoji", "voting"] {
        let edge = find(&view["edges"], |e| e["src"] == "web" && e["dst"] == dst)
            .unwrap_or_else(|| panic!("no edge web -> {dst}: {json}"));
        assert_eq!(edge["tls"], 1.0, "{json}");
        assert!(edge["rps"].as_f64().unwrap() > 1.0, "{json}");
        assert_eq!(edge["forbidden"], 0.0, "{json}");
    }
    let edge = find(&view["edges"], |e| e["dst"] == "voting").unwrap();
    // Retries hide the 500s from web; only the slow votes fail.
    let success = edge["success"].as_f64().unwrap();
    assert!((0.9..1.0).contains(&success), "{json}");

    let route = find(&view["routes"], |r| r["service"] == "voting").unwrap();
    assert_eq!(route["workload"], "web", "{json}");
    assert!(route["retries"].as_f64().unwrap() > 0.0, "{json}");
    assert!(route["timeouts"].as_f64().unwrap() > 0.0, "{json}");
    assert!(
        route["actual_success"].as_f64().unwrap() < route["success"].as_f64().unwrap(),
        "{json}"
    );
    let emoji_route = find(&view["routes"], |r| r["service"] == "emoji").unwrap();
    assert_eq!(emoji_route["retries"], 0.0, "{json}");

    support::stop(web).await;
    for b in backends {
        support::stop(b).await;
    }
}

#[test]
fn dashboard_section_reads_name_and_peers() {
    let config = SidecarConfig::from_yaml(
        "admin:\n  listen: 127.0.0.1:9990\n  dashboard:\n    name: web\n    peers:\n\
         \x20     - {name: emoji, admin: \"127.0.0.1:9991\"}\n\
         \x20     - name: voting\n        admin: 127.0.0.1:9992\n",
        "sidecar.yaml",
    )
    .unwrap();
    let dashboard = config.admin.dashboard.unwrap();
    assert_eq!(dashboard.name.as_str(), "web");
    let peers: Vec<(&str, String)> = dashboard
        .peers
        .iter()
        .map(|p| (p.name.as_str(), p.admin.to_string()))
        .collect();
    assert_eq!(
        peers,
        [
            ("emoji", "127.0.0.1:9991".to_owned()),
            ("voting", "127.0.0.1:9992".to_owned())
        ]
    );
    // The sidecar itself comes first, scraped over loopback when it binds
    // every interface.
    let sources = dashboard
        .dashboard_config("0.0.0.0:4191".parse().unwrap())
        .sources;
    let sources: Vec<(&str, &str)> = sources
        .iter()
        .map(|t| (t.name.as_str(), t.addr.as_str()))
        .collect();
    assert_eq!(
        sources,
        [
            ("web", "127.0.0.1:4191"),
            ("emoji", "127.0.0.1:9991"),
            ("voting", "127.0.0.1:9992")
        ]
    );
    assert!(
        SidecarConfig::from_yaml("", "s.yaml")
            .unwrap()
            .admin
            .dashboard
            .is_none()
    );
}

#[test]
fn dashboard_section_mistakes_name_the_field_and_line() {
    let cases = [
        (
            "admin:\n  dashboard:\n    peers: []\n",
            ConfigErrorKind::MissingField,
            "admin.dashboard.name",
            3,
        ),
        (
            "admin:\n  dashboard:\n    name: web\n    peers:\n      - {name: emoji, admin: nowhere}\n",
            ConfigErrorKind::InvalidValue,
            "admin.dashboard.peers[0].admin",
            5,
        ),
        (
            "admin:\n  dashboard:\n    name: Web!\n",
            ConfigErrorKind::InvalidValue,
            "admin.dashboard.name",
            3,
        ),
        (
            "admin:\n  dashboard:\n    name: web\n    peer: []\n",
            ConfigErrorKind::UnknownField,
            "admin.dashboard.peer",
            4,
        ),
        (
            "admin:\n  dashboard:\n    name: web\n    peers:\n\
             \x20     - {name: emoji, admin: \"127.0.0.1:9991\"}\n\
             \x20     - {name: voting, admin: \"127.0.0.1:9991\"}\n",
            ConfigErrorKind::Conflict,
            "admin.dashboard.peers[1].admin",
            6,
        ),
        (
            "admin:\n  listen: 127.0.0.1:9990\n  dashboard:\n    name: web\n    peers:\n\
             \x20     - {name: web, admin: \"127.0.0.1:9990\"}\n",
            ConfigErrorKind::Conflict,
            "admin.dashboard.peers[0].admin",
            6,
        ),
        // The default admin.listen, 0.0.0.0:4191, is scraped as
        // 127.0.0.1:4191: that peer is this sidecar again.
        (
            "admin:\n  dashboard:\n    name: web\n    peers:\n\
             \x20     - {name: emoji, admin: \"127.0.0.1:4191\"}\n",
            ConfigErrorKind::Conflict,
            "admin.dashboard.peers[0].admin",
            5,
        ),
        (
            "admin:\n  listen: \"[::]:9990\"\n  dashboard:\n    name: web\n    peers:\n\
             \x20     - {name: emoji, admin: \"[::1]:9990\"}\n",
            ConfigErrorKind::Conflict,
            "admin.dashboard.peers[0].admin",
            6,
        ),
    ];
    for (yaml, kind, path, line) in cases {
        let error = SidecarConfig::from_yaml(yaml, "sidecar.yaml").unwrap_err();
        assert_eq!(error.kind(), kind, "{yaml}: {error}");
        assert_eq!(error.field_path(), path, "{yaml}: {error}");
        assert_eq!(error.line(), Some(line), "{yaml}: {error}");
        assert!(
            error
                .to_string()
                .starts_with("sidecar.yaml: admin.dashboard"),
            "{error}"
        );
    }
}
