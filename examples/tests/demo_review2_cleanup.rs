//! A demo run that fails, and whose files then cannot be removed either,
//! returns the run's error: the failed removal must not take its place,
//! since it is only what followed the first cause; the removal's failure
//! is still logged, naming the directory left behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support::log_capture::Logs;

use std::{io::Write, num::NonZeroU32, path::PathBuf, time::Duration};

use mesh_examples::demo::{self, DemoConfig, DemoError};

/// An output that, once it has been told where the demo's files are,
/// removes them, then fails as a reader that went away does.
#[derive(Default)]
struct RemovesFilesThenFails {
    text: String,
    removed: Option<PathBuf>,
}

impl Write for RemovesFilesThenFails {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.text.push_str(&String::from_utf8_lossy(buf));
        let files = self
            .text
            .lines()
            .find_map(|line| line.strip_prefix("files: "))
            .and_then(|rest| rest.split(" (").next());
        if let Some(files) = files {
            let path = PathBuf::from(files);
            std::fs::remove_dir_all(&path).unwrap();
            self.removed = Some(path);
            return Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_run_whose_files_cannot_be_removed_returns_the_runs_error() {
    let config = DemoConfig {
        rps: NonZeroU32::new(10).unwrap(),
        duration: Some(Duration::from_secs(1)),
        ..DemoConfig::default()
    };
    // `run` logs from the task that awaits it: this one, on this thread.
    let (logs, _guard) = Logs::capture();
    let mut out = RemovesFilesThenFails::default();
    let result = demo::run(&config, &mut out, std::future::pending()).await;
    let removed = out.removed.expect("the demo said where its files are");
    assert!(!removed.exists(), "{}", removed.display());
    match result {
        Err(DemoError::Output(error)) => {
            assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
        }
        other => panic!("the run's error, not the removal's: {other:?}"),
    }
    let said = logs.find("cannot remove the demo's files");
    assert!(
        said.iter()
            .any(|line| line.contains(&removed.display().to_string())),
        "{said:?}"
    );
}
