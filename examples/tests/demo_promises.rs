//! The demo's verdict follows the traffic its user sent: when `web`'s
//! sidecar goes away mid-run, `vote-bot`'s requests fail, and the run must
//! not be reported as passed because `web` itself saw no failed call, and
//! the tables printed meanwhile must say whose metrics are missing; and a
//! request a sidecar answers itself is no breach of its mutual TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::demo::{shut_down, start};

use std::{
    io::{Read, Write},
    net::TcpStream,
    num::NonZeroU32,
    time::Duration,
};

use mesh_examples::demo::{DemoConfig, report::Breach};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_requests_to_web_fail_does_not_pass() {
    let config = DemoConfig {
        rps: NonZeroU32::new(40).unwrap(),
        duration: Some(Duration::from_secs(3)),
        interval: Duration::from_millis(500),
        denied_every: Duration::from_millis(250),
        ..DemoConfig::default()
    };
    let (run, mut lines) = start(config);
    let mut web_admin = None;
    while let Some(line) = lines.recv().await {
        if let Some(rest) = line.strip_prefix("dashboard: http://") {
            web_admin = rest.strip_suffix("/dashboard").map(str::to_owned);
        }
        // The first frame: web has made calls, all answered.
        if line.starts_with("web saw ") {
            break;
        }
    }
    let web_admin = web_admin.expect("the demo printed web's dashboard");
    let admin = web_admin.clone();
    tokio::task::spawn_blocking(move || shut_down(&admin))
        .await
        .unwrap();
    let mut after = Vec::new();
    while let Some(line) = lines.recv().await {
        after.push(line);
    }
    let summary = run.await.unwrap().unwrap();
    assert!(summary.request_failures > 0, "{summary}");
    assert!(!summary.passed(), "{summary}");
    assert!(
        summary
            .breaches
            .iter()
            .any(|b| matches!(b, Breach::RequestSuccess(rate) if *rate < 0.99)),
        "{summary}"
    );
    // web's sidecar is gone, so its retries and share on mutual TLS are
    // unknown: the summary must not pass them off as 0 and 100 %, and
    // says why it could not read them.
    assert!(
        summary.breaches.iter().any(|b| matches!(
            b,
            Breach::NoMetrics { workload, reason }
                if workload == "web" && reason.contains(&web_admin)
        )),
        "{summary}"
    );
    assert!(summary.to_string().contains(&web_admin), "{summary}");
    // The tables that follow say whose metrics are missing, and why: a
    // row of dashes alone left the reader to guess that web's sidecar
    // had gone.
    let said = after.iter().any(|line| {
        line.starts_with("no metrics from web's sidecar: ") && line.contains(&web_admin)
    });
    assert!(said, "{}", after.join("\n"));
}

// The mutual-TLS promise is about requests between sidecars. A request
// its sidecar answers itself, such as one for a service it does not know,
// never leaves it: the run must not be failed for "a request not on
// mutual TLS" because someone tried a wrong Host header against the
// addresses the demo prints.

/// The `HOST:PORT` of the first `http://` address in `line`.
fn address(line: &str) -> String {
    let rest = &line[line.find("http://").unwrap() + "http://".len()..];
    rest[..rest.find('/').unwrap()].to_owned()
}

/// Sends `GET /` for `host` to `addr` over plain HTTP/1.1 and returns the
/// status line.
fn get(addr: &str, host: &str) -> String {
    let mut tcp = TcpStream::connect(addr).unwrap();
    let request = format!("GET / HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    answer.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_a_sidecar_answers_itself_is_no_breach_of_mutual_tls() {
    let config = DemoConfig {
        rps: NonZeroU32::new(20).unwrap(),
        duration: Some(Duration::from_secs(2)),
        interval: Duration::from_secs(1),
        denied_every: Duration::from_millis(250),
        ..DemoConfig::default()
    };
    let (run, mut lines) = start(config);
    let (mut bot, mut emoji) = (None, None);
    while let Some(line) = lines.recv().await {
        if line.contains("# through vote-bot's sidecar") {
            bot = Some(address(&line));
        }
        if line.contains("# emoji may not vote") {
            emoji = Some(address(&line));
            break;
        }
    }
    // vote-bot's and emoji's outbound listeners, asked for a service
    // neither knows: each sidecar answers 404 itself.
    for addr in [bot.unwrap(), emoji.unwrap()] {
        let status = tokio::task::spawn_blocking(move || get(&addr, "nowhere"))
            .await
            .unwrap();
        assert!(status.starts_with("HTTP/1.1 404"), "{status}");
    }
    while lines.recv().await.is_some() {}
    let summary = run.await.unwrap().unwrap();
    assert!(summary.passed(), "{summary}");
    assert_eq!(summary.tls.len(), 4, "{summary}");
    for (workload, rate) in &summary.tls {
        assert_eq!(*rate, Some(1.0), "{workload}: {summary}");
    }
}
