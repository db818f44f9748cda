//! The demo's mutual-TLS promise is about requests between sidecars. A
//! request its sidecar answers itself, such as one for a service it does
//! not know, never leaves it: the run must not be failed for "a request
//! not on mutual TLS" because someone tried a wrong Host header against
//! the addresses the demo prints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    num::NonZeroU32,
    time::Duration,
};

use mesh_examples::demo::{self, DemoConfig};
use tokio::sync::mpsc;

/// The demo's output, line by line, as it is written.
struct Lines {
    partial: Vec<u8>,
    tx: mpsc::UnboundedSender<String>,
}

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.partial.extend_from_slice(buf);
        while let Some(end) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let _ = self
                .tx
                .send(String::from_utf8_lossy(&line).trim_end().to_owned());
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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
    let (tx, mut lines) = mpsc::unbounded_channel();
    let config = DemoConfig {
        rps: NonZeroU32::new(20).unwrap(),
        duration: Some(Duration::from_secs(2)),
        interval: Duration::from_secs(1),
        denied_every: Duration::from_millis(250),
        ..DemoConfig::default()
    };
    let run = tokio::spawn(async move {
        let mut out = Lines {
            partial: Vec::new(),
            tx,
        };
        demo::run(&config, &mut out, std::future::pending()).await
    });
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
