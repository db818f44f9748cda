//! The demo prints the address of `web`'s dashboard, and its summary
//! checks that promise as it checks the others: a dashboard that does not
//! answer at the end is a broken promise, named in the summary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    num::NonZeroU32,
    time::Duration,
};

use mesh_examples::demo::{self, DemoConfig, report::Summary};
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

/// Runs the demo for `duration`; calls `meanwhile` with `web`'s admin
/// address once the demo has printed it; returns the summary.
async fn run(duration: Duration, meanwhile: impl FnOnce(String) + Send + 'static) -> Summary {
    let config = DemoConfig {
        rps: NonZeroU32::new(20).unwrap(),
        duration: Some(duration),
        interval: Duration::from_millis(500),
        denied_every: Duration::from_millis(250),
        ..DemoConfig::default()
    };
    let (tx, mut lines) = mpsc::unbounded_channel();
    let run = tokio::spawn(async move {
        let mut out = Lines {
            partial: Vec::new(),
            tx,
        };
        demo::run(&config, &mut out, std::future::pending()).await
    });
    let mut meanwhile = Some(meanwhile);
    while let Some(line) = lines.recv().await {
        if let Some(rest) = line.strip_prefix("dashboard: http://") {
            let admin = rest.strip_suffix("/dashboard").unwrap().to_owned();
            if let Some(meanwhile) = meanwhile.take() {
                tokio::task::spawn_blocking(move || meanwhile(admin))
                    .await
                    .unwrap();
            }
        }
    }
    run.await.unwrap().unwrap()
}

/// Asks the sidecar whose admin server is at `admin` to shut down.
fn shut_down(admin: &str) {
    let mut tcp = TcpStream::connect(admin).unwrap();
    let request = format!(
        "POST /shutdown HTTP/1.1\r\nhost: {admin}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dashboard_that_does_not_answer_is_a_broken_promise() {
    // web's sidecar, and with it its admin server, goes away at once.
    let (tx, rx) = std::sync::mpsc::channel();
    let summary = run(Duration::from_secs(2), move |admin| {
        shut_down(&admin);
        tx.send(admin).unwrap();
    })
    .await;
    let web_admin = rx.try_recv().expect("the demo printed web's dashboard");
    assert!(!summary.passed(), "{summary}");
    let text = summary.to_string();
    let said =
        format!("web's dashboard at http://{web_admin}/dashboard did not answer with its page");
    assert!(text.contains(&said), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_dashboard_answers_passes() {
    let summary = run(Duration::from_secs(2), |_| {}).await;
    assert!(summary.passed(), "{summary}");
}
