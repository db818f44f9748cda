//! A tracing subscriber that keeps every event as a line of text, so that
//! a test can check what the server's logs say.
//!
//! Each line is laid out as the sidecar's formatter (tracing-subscriber's
//! `fmt`) writes it, less the time, level and target: the spans the event
//! was logged in, outermost first, each `name{field=value ...}:`, then the
//! message and the event's own fields, as
//! `conn{peer=127.0.0.1:41522 port=4143}: answering version=HTTP/1.1`.
//! A line that repeats a field its span already says shows here as it
//! would in production.
//!
//! One subscriber is the global default of the test binary, installed by
//! the first capture, and hands each event to the capture of the thread
//! it was logged on, if any. A thread-local default per test
//! (`tracing::subscriber::set_default`) looks the same, but tests that
//! start and drop theirs on other threads at the same moment race
//! tracing's global interest and level caches, and a capture could see no
//! event at all (1 run in 2 of this binary did). The subscriber is
//! tracing-subscriber's registry, which keeps the spans and tells tracing
//! the current one: a task spawned `in_current_span` (an HTTP/2 stream's)
//! is in the connection's span here as it is in production.
//!
//! mesh-policy's, mesh-tls's and the examples' tests include this same file (by
//! `#[path]`), so every crate's tests capture one way.

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
use tracing_subscriber::{
    layer::{Context, SubscriberExt as _},
    registry::LookupSpan,
};

/// The events logged on this thread while the guard lives, each as
/// `span{key=value}: message key=value ...`, with its level.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<Logged>>>);

/// One event: its level, its line, and where the message starts in it.
struct Logged {
    level: tracing::Level,
    line: String,
    message_at: usize,
}

impl Logged {
    fn says(&self, message: &str) -> bool {
        self.line[self.message_at..].starts_with(message)
    }
}

thread_local! {
    /// The capture of this thread, if one is running.
    static CURRENT: RefCell<Option<Logs>> = const { RefCell::new(None) };
}

/// Installs the binary's one subscriber, once.
static INSTALL: Once = Once::new();

/// Ends a capture when dropped, putting back the one it replaced.
#[must_use = "the capture ends when the guard is dropped"]
pub(crate) struct CaptureGuard(Option<Logs>);

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        let _ = CURRENT.try_with(|current| *current.borrow_mut() = previous);
    }
}

impl Logs {
    /// Captures this thread's events (a current-thread runtime's tasks
    /// included) until the guard is dropped.
    pub(crate) fn capture() -> (Self, CaptureGuard) {
        INSTALL.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(ToCapture);
            let _ = tracing::subscriber::set_global_default(subscriber);
        });
        let logs = Self::default();
        let previous = CURRENT.with(|current| current.borrow_mut().replace(logs.clone()));
        (logs, CaptureGuard(previous))
    }

    /// The events whose message (after their spans) starts with
    /// `message`, each as its whole line.
    #[allow(dead_code)] // Not every test binary reads every way.
    pub(crate) fn find(&self, message: &str) -> Vec<String> {
        let logged = self.0.lock().unwrap();
        logged
            .iter()
            .filter(|l| l.says(message))
            .map(|l| l.line.clone())
            .collect()
    }

    /// Every event captured, each as its whole line, in order: for a test
    /// that checks nothing else was logged, and for a failure to show
    /// what was.
    #[allow(dead_code)]
    pub(crate) fn all(&self) -> Vec<String> {
        let logged = self.0.lock().unwrap();
        logged.iter().map(|l| l.line.clone()).collect()
    }

    /// The events at `level` whose message (after their spans) starts
    /// with `message`, each as its whole line.
    #[allow(dead_code)]
    pub(crate) fn find_at(&self, level: tracing::Level, message: &str) -> Vec<String> {
        let logged = self.0.lock().unwrap();
        logged
            .iter()
            .filter(|l| l.level == level && l.says(message))
            .map(|l| l.line.clone())
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

/// A span's fields as ` key=value` each, kept in its extensions.
struct SpanFields(String);

/// The binary's subscriber's one layer: each event goes to its thread's
/// capture, with its spans' fields.
struct ToCapture;

impl ToCapture {
    fn capturing() -> bool {
        CURRENT
            .try_with(|current| current.try_borrow().is_ok_and(|c| c.is_some()))
            .unwrap_or(false)
    }
}

impl<S> tracing_subscriber::Layer<S> for ToCapture
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // Asked again at each event: whether a thread captures changes.
        Interest::sometimes()
    }

    fn enabled(&self, _: &Metadata<'_>, _: Context<'_, S>) -> bool {
        Self::capturing()
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut line = Line::default();
        attrs.record(&mut line);
        span.extensions_mut().insert(SpanFields(line.fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut line = Line::default();
        values.record(&mut line);
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<SpanFields>() {
            Some(fields) => fields.0.push_str(&line.fields),
            None => extensions.insert(SpanFields(line.fields)),
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let logs = CURRENT
            .try_with(|current| current.try_borrow().ok().and_then(|c| c.clone()))
            .ok()
            .flatten();
        let Some(logs) = logs else { return };
        let mut text = String::new();
        for span in ctx
            .event_scope(event)
            .into_iter()
            .flat_map(|s| s.from_root())
        {
            text.push_str(span.name());
            if let Some(fields) = span.extensions().get::<SpanFields>()
                && !fields.0.is_empty()
            {
                let _ = write!(text, "{{{}}}", fields.0.trim_start());
            }
            text.push(':');
        }
        if !text.is_empty() {
            text.push(' ');
        }
        let message_at = text.len();
        let mut line = Line::default();
        event.record(&mut line);
        let _ = write!(text, "{}{}", line.message, line.fields);
        logs.0.lock().unwrap().push(Logged {
            level: *event.metadata().level(),
            line: text,
            message_at,
        });
    }
}
