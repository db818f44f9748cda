//! A tracing subscriber that keeps every event's level and fields, so that
//! a test can check what the store, the acceptor and the connector log.
//!
//! One subscriber is the global default of the test binary, installed by
//! the first capture, and hands each event to the capture of the thread it
//! was logged on, if any. A thread-local default per test
//! (`tracing::subscriber::set_default`) looks the same, but tests that
//! start and drop theirs on other threads at the same moment race
//! tracing's global callsite-interest cache: a callsite first hit while
//! another thread's subscriber was the default can be cached as "never",
//! and a capture then misses its events.

use std::{
    cell::RefCell,
    fmt,
    sync::{Arc, Mutex, Once},
};

use tracing::{
    Event, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
    subscriber::Interest,
};

/// The events logged on this thread while a capture's guard lives: each
/// one's level and its fields (`name=value`, space-separated).
#[derive(Clone, Debug, Default)]
pub struct Events(Arc<Mutex<Vec<(tracing::Level, String)>>>);

thread_local! {
    /// The capture of this thread, if one is running.
    static CURRENT: RefCell<Option<Events>> = const { RefCell::new(None) };
}

/// Installs the binary's one subscriber, once.
static INSTALL: Once = Once::new();

/// Ends a capture when dropped, putting back the one it replaced.
#[must_use = "the capture ends when the guard is dropped"]
pub struct CaptureGuard(Option<Events>);

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        let _ = CURRENT.try_with(|current| *current.borrow_mut() = previous);
    }
}

impl Events {
    /// Captures this thread's events (a current-thread runtime's tasks
    /// included) until the guard is dropped.
    pub fn capture() -> (Self, CaptureGuard) {
        INSTALL.call_once(|| {
            let _ = tracing::subscriber::set_global_default(ToCapture);
        });
        let events = Self::default();
        let previous = CURRENT.with(|current| current.borrow_mut().replace(events.clone()));
        (events, CaptureGuard(previous))
    }

    fn push(&self, event: &Event<'_>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), fields.0));
    }

    /// The fields of every event captured, in order.
    pub fn all(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// The fields of the events captured at `level`, in order.
    pub fn at(&self, level: tracing::Level) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, f)| f.clone())
            .collect()
    }
}

/// An event's fields, each as `name=value `.
struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.push_str(&format!("{}={value:?} ", field.name()));
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
        let events = CURRENT
            .try_with(|current| current.try_borrow().ok().and_then(|c| c.clone()))
            .ok()
            .flatten();
        if let Some(events) = events {
            events.push(event);
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
