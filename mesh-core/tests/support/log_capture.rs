//! A tracing subscriber that keeps every event as a line of text, so that
//! a test can check what the server's logs say.

use std::{
    fmt::{self, Write as _},
    sync::{Arc, Mutex},
};

use tracing::{
    Event, Metadata, Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id, Record},
    subscriber::DefaultGuard,
};

/// The events logged on this thread while the guard lives, each as
/// `message key=value ...`, with its level.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<(tracing::Level, String)>>>);

impl Logs {
    /// Captures this thread's events (a current-thread runtime's tasks
    /// included) until the guard is dropped.
    pub(crate) fn capture() -> (Self, DefaultGuard) {
        let logs = Self::default();
        let guard = tracing::subscriber::set_default(logs.clone());
        (logs, guard)
    }

    /// The events whose message starts with `message`.
    #[allow(dead_code)] // Not every test binary reads every way.
    pub(crate) fn find(&self, message: &str) -> Vec<String> {
        let lines = self.0.lock().unwrap();
        lines
            .iter()
            .filter(|(_, line)| line.starts_with(message))
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// The events at `level` whose message starts with `message`.
    #[allow(dead_code)]
    pub(crate) fn find_at(&self, level: tracing::Level, message: &str) -> Vec<String> {
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

impl Subscriber for Logs {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut line = Line::default();
        event.record(&mut line);
        let text = format!("{}{}", line.message, line.fields);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), text));
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}
