//! A tracing subscriber that keeps every event as a line of text, so that
//! a test can check what the server's logs say.
//!
//! One subscriber is the global default of the test binary, installed by
//! the first capture, and hands each event to the capture of the thread
//! it was logged on, if any: a capture sees what its own thread logs (a
//! current-thread runtime's tasks, or the future a multi-thread runtime
//! blocks on), not what a blocking pool or another worker logs. A
//! thread-local default per test (`tracing::subscriber::set_default`)
//! looks the same, but tests that start and drop theirs on other threads
//! at the same moment race tracing's global callsite-interest and level
//! caches: a callsite first hit while no subscriber wanted it can be
//! cached as never wanted, and a capture then misses its events, at
//! random. mesh-core's and mesh-tls's tests capture the same way.

use std::{
    cell::RefCell,
    fmt::{self, Write as _},
    sync::{Arc, Mutex, Once},
};

use tracing::{
    Event, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
    subscriber::Interest,
};

/// The events logged on this thread while the guard lives, each as
/// `message key=value ...`, with its level.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<(tracing::Level, String)>>>);

thread_local! {
    /// The capture of this thread, if one is running.
    static CURRENT: RefCell<Option<Logs>> = const { RefCell::new(None) };
}

/// Installs the binary's one subscriber, once.
static INSTALL: Once = Once::new();

/// Ends a capture when dropped, putting back the one it replaced.
#[must_use = "the capture ends when the guard is dropped"]
pub struct CaptureGuard(Option<Logs>);

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        let _ = CURRENT.try_with(|current| *current.borrow_mut() = previous);
    }
}

impl Logs {
    /// Captures this thread's events (a current-thread runtime's tasks
    /// included) until the guard is dropped.
    pub fn capture() -> (Self, CaptureGuard) {
        INSTALL.call_once(|| {
            let _ = tracing::subscriber::set_global_default(ToCapture);
        });
        let logs = Self::default();
        let previous = CURRENT.with(|current| current.borrow_mut().replace(logs.clone()));
        (logs, CaptureGuard(previous))
    }

    fn push(&self, event: &Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        let text = format!("{}{}", line.message, line.fields);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), text));
    }

    /// The events whose message starts with `message`.
    pub fn find(&self, message: &str) -> Vec<String> {
        let lines = self.0.lock().unwrap();
        lines
            .iter()
            .filter(|(_, line)| line.starts_with(message))
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// The events at `level` whose message starts with `message`.
    pub fn find_at(&self, level: tracing::Level, message: &str) -> Vec<String> {
        let lines = self.0.lock().unwrap();
        lines
            .iter()
            .filter(|(at, line)| *at == level && line.starts_with(message))
            .map(|(_, line)| line.clone())
            .collect()
    }
}

/// An event's message, and its other fields as ` key=value` each.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

/// The binary's subscriber: each event goes to its thread's capture.
struct ToCapture;

impl ToCapture {
    fn capturing() -> bool {
        CURRENT
            .try_with(|current| current.try_borrow().is_ok_and(|c| c.is_some()))
            .unwrap_or(false)
    }
}

impl Subscriber for ToCapture {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Asked again at each event: whether a thread captures changes.
        Interest::sometimes()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        Self::capturing()
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let logs = CURRENT
            .try_with(|current| current.try_borrow().ok().and_then(|c| c.clone()))
            .ok()
            .flatten();
        if let Some(logs) = logs {
            logs.push(event);
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
