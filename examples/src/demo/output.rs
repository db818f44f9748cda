//! The demo's standard output, written from a thread of its own.
//!
//! # Why
//!
//! The demo's applications, sidecars and tables share one runtime thread.
//! Written from that thread, a standard output nobody reads (a terminal
//! paused with Ctrl-S, a `| less` whose pipe is full) blocked the thread
//! in `write`, and with it every sidecar and application: the mesh froze
//! because its viewer looked away, and Ctrl-C waited for the reader too.
//!
//! [`Detached`] hands the text to a writer thread instead and never waits
//! for it. While the reader is behind, the text waiting for it is bounded
//! ([`MAX_QUEUED`]): a table that would pass the bound is left out, and
//! the next one that is written says how many were. The tables are
//! snapshots of the mesh, so a reader who comes back wants the newest one,
//! not a backlog. A write the thread fails (`demo | head`, once `head` has
//! gone) is returned by the next [`Write::flush`], and by
//! [`Detached::finish`].

use std::{
    io::{self, Write},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
        mpsc,
    },
    time::Duration,
};

/// The most text that may wait for a slow reader: a few dozen tables.
pub const MAX_QUEUED: usize = 64 * 1024;

/// A [`Write`] whose text a thread of its own writes to the real output.
/// Each [`Write::flush`] hands over what was written since the last one,
/// as one piece that is written whole or left out whole.
#[derive(Debug)]
pub struct Detached {
    /// What was written since the last flush.
    pending: Vec<u8>,
    /// Pieces left out since the last one handed over.
    skipped: u64,
    /// Gone once [`Detached::finish`] has started.
    pieces: Option<mpsc::Sender<Vec<u8>>>,
    /// Bytes handed over and not yet written.
    queued: Arc<AtomicUsize>,
    /// The first error the writer thread met; it writes nothing after it.
    failed: Arc<Mutex<Option<io::Error>>>,
    /// Resolves when the writer thread has written all it was given.
    done: mpsc::Receiver<()>,
}

impl Detached {
    /// Writes to the process's standard output.
    ///
    /// # Errors
    ///
    /// When the writer thread cannot be started.
    pub fn stdout() -> io::Result<Self> {
        Self::new(io::stdout())
    }

    /// Writes to `out`, from a thread started now.
    ///
    /// # Errors
    ///
    /// When the writer thread cannot be started.
    pub fn new<W: Write + Send + 'static>(mut out: W) -> io::Result<Self> {
        let (pieces, incoming) = mpsc::channel::<Vec<u8>>();
        let (finished, done) = mpsc::channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(Mutex::new(None));
        let (left, error) = (queued.clone(), failed.clone());
        std::thread::Builder::new()
            .name("demo-output".into())
            .spawn(move || {
                for piece in incoming {
                    let written = out.write_all(&piece).and_then(|()| out.flush());
                    left.fetch_sub(piece.len(), Ordering::AcqRel);
                    if let Err(e) = written {
                        if let Ok(mut slot) = error.lock() {
                            *slot = Some(e);
                        }
                        break;
                    }
                }
                let _ = finished.send(());
            })?;
        Ok(Self {
            pending: Vec::new(),
            skipped: 0,
            pieces: Some(pieces),
            queued,
            failed,
            done,
        })
    }

    /// Hands over what is left, whatever the bound, and waits up to
    /// `patience` for all of it to be written.
    ///
    /// # Errors
    ///
    /// The error a write met, or [`io::ErrorKind::TimedOut`] when the
    /// reader did not take the text in time.
    pub fn finish(mut self, patience: Duration) -> io::Result<()> {
        self.check()?;
        let last = self.take_piece();
        if let Some(pieces) = self.pieces.take()
            && !last.is_empty()
        {
            self.queued.fetch_add(last.len(), Ordering::AcqRel);
            // A closed channel means the thread has stopped on an error,
            // which `check` below returns.
            let _ = pieces.send(last);
        }
        match self.done.recv_timeout(patience) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => self.check(),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.check()?;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "standard output was not read for {}s",
                        patience.as_secs_f64()
                    ),
                ))
            }
        }
    }

    /// What was written since the last flush, after a note of the pieces
    /// left out before it, if any were.
    fn take_piece(&mut self) -> Vec<u8> {
        let mut piece = std::mem::take(&mut self.pending);
        if self.skipped > 0 && !piece.is_empty() {
            let note = format!(
                "({} update{} not shown: standard output was not being read)\n",
                self.skipped,
                if self.skipped == 1 { "" } else { "s" }
            );
            piece.splice(0..0, note.into_bytes());
            self.skipped = 0;
        }
        piece
    }

    /// The writer thread's error, if it met one.
    fn check(&self) -> io::Result<()> {
        let slot = self
            .failed
            .lock()
            .map_err(|_| io::Error::other("the output thread panicked"))?;
        match slot.as_ref() {
            Some(error) => Err(io::Error::new(error.kind(), error.to_string())),
            None => Ok(()),
        }
    }
}

impl Write for Detached {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.check()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.pieces.is_none() {
            return Err(io::Error::other("the output is finished"));
        }
        if self.queued.load(Ordering::Acquire) + self.pending.len() > MAX_QUEUED {
            self.pending.clear();
            self.skipped += 1;
            return Ok(());
        }
        let piece = self.take_piece();
        self.queued.fetch_add(piece.len(), Ordering::AcqRel);
        let sent = self.pieces.as_ref().map(|pieces| pieces.send(piece));
        if !matches!(sent, Some(Ok(()))) {
            // The thread stopped on an error after `check` looked.
            self.check()?;
            return Err(io::Error::other("the output thread has stopped"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{Arc, Condvar, Mutex};

    use super::*;

    /// An output that takes nothing until it is opened, like a terminal
    /// paused with Ctrl-S, then keeps what it is given.
    /// Whether the reader reads yet, and what it has read.
    type Reader = (Mutex<(bool, Vec<u8>)>, Condvar);

    #[derive(Clone, Default)]
    struct Paused {
        state: Arc<Reader>,
    }

    impl Paused {
        fn open(&self) {
            let (lock, wake) = &*self.state;
            lock.lock().unwrap().0 = true;
            wake.notify_all();
        }

        fn text(&self) -> String {
            String::from_utf8(self.state.0.lock().unwrap().1.clone()).unwrap()
        }
    }

    impl Write for Paused {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let (lock, wake) = &*self.state;
            let mut state = wake.wait_while(lock.lock().unwrap(), |s| !s.0).unwrap();
            state.1.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reader_that_stops_reading_does_not_stop_the_writer() {
        let paused = Paused::default();
        let mut out = Detached::new(paused.clone()).unwrap();
        let table = "x".repeat(1000) + "\n";
        // Written from the caller's thread, the first of these blocked it
        // until the reader came back: here none waits.
        for i in 0..200 {
            write!(out, "table {i}\n{table}").unwrap();
            out.flush().unwrap();
        }
        writeln!(out, "summary").unwrap();
        paused.open();
        out.finish(Duration::from_secs(30)).unwrap();
        let text = paused.text();
        // What waited stayed within the bound, whole tables only, the first
        // in order; then a note of what was left out, then the summary.
        assert!(text.starts_with("table 0\n"), "{}", &text[..20]);
        let shown = text.matches("table ").count();
        assert!(shown < 200, "{shown} tables");
        assert!(shown * table.len() <= MAX_QUEUED, "{shown} tables");
        assert_eq!(text.matches(&table).count(), shown);
        let note = format!("({} updates not shown", 200 - shown);
        assert!(text.ends_with("summary\n"), "{}", &text[text.len() - 100..]);
        assert!(text.contains(&note), "no {note:?}");
    }

    #[test]
    fn the_next_table_after_a_gap_says_how_many_were_left_out() {
        let paused = Paused::default();
        let mut out = Detached::new(paused.clone()).unwrap();
        let big = "y".repeat(MAX_QUEUED);
        write!(out, "{big}").unwrap();
        out.flush().unwrap();
        // The bound is full: these two are left out.
        for _ in 0..2 {
            writeln!(out, "skipped").unwrap();
            out.flush().unwrap();
        }
        paused.open();
        // Once the reader has caught up, the next is written, after the note.
        let deadline = std::time::SystemTime::now() + Duration::from_secs(30);
        while out.queued.load(Ordering::Acquire) > 0 {
            assert!(std::time::SystemTime::now() < deadline, "never drained");
            std::thread::yield_now();
        }
        writeln!(out, "shown").unwrap();
        out.flush().unwrap();
        out.finish(Duration::from_secs(30)).unwrap();
        let text = paused.text();
        assert!(!text.contains("skipped"));
        assert!(
            text.ends_with("(2 updates not shown: standard output was not being read)\nshown\n"),
            "{}",
            &text[big.len()..]
        );
    }

    struct Gone;

    impl Write for Gone {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_write_is_returned_by_finish() {
        let mut out = Detached::new(Gone).unwrap();
        writeln!(out, "table").unwrap();
        out.flush().unwrap();
        writeln!(out, "summary").unwrap();
        let error = out.finish(Duration::from_secs(30)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn a_reader_that_never_comes_back_times_finish_out() {
        let paused = Paused::default();
        let mut out = Detached::new(paused.clone()).unwrap();
        writeln!(out, "summary").unwrap();
        let error = out.finish(Duration::from_millis(50)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        paused.open();
    }
}
