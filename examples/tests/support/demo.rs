//! The demo run in process: its output read a line at a time as it is
//! written, and its sidecars stopped from outside.

use std::{
    io::{Read, Write},
    net::TcpStream,
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

/// Runs the demo with `config` until its duration ends; its result, and
/// its output as it is written, line by line.
pub fn start(
    config: DemoConfig,
) -> (
    tokio::task::JoinHandle<Result<demo::report::Summary, demo::DemoError>>,
    mpsc::UnboundedReceiver<String>,
) {
    let (tx, lines) = mpsc::unbounded_channel();
    let run = tokio::spawn(async move {
        let mut out = Lines {
            partial: Vec::new(),
            tx,
        };
        demo::run(&config, &mut out, std::future::pending()).await
    });
    (run, lines)
}

/// Asks the sidecar whose admin server is at `admin` to shut down.
pub fn shut_down(admin: &str) {
    let mut tcp = TcpStream::connect(admin).unwrap();
    let request = format!(
        "POST /shutdown HTTP/1.1\r\nhost: {admin}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
