//! The sidecar process's log: formatted lines on standard error, under a
//! filter that can be replaced while it runs (the admin's
//! `/proxy-log-level`).
//!
//! Filters are read with regular expressions turned off: a field value in
//! a filter (`mesh_core[{peer=10.0.0.7}]=debug`) is matched as written
//! against the value's `Debug` form, never as a pattern. tracing's
//! `EnvFilter` builds a full DFA for each pattern, eagerly and with no
//! bound, so a short one (`[{x=[ab]*a[ab][ab]...}]`, twenty classes) took
//! the process minutes and gigabytes to read, on the runtime that also
//! serves traffic; tracing-subscriber's own docs ask for them off on
//! input that is not trusted, and the same filter must mean the same in
//! `RUST_LOG` as on the admin port.

use std::{io::IsTerminal, sync::Arc};

use mesh_core::admin::LogLevel;
use tracing_subscriber::{EnvFilter, Registry, layer::SubscriberExt, reload};

/// Installs the process's logger, filtered by `RUST_LOG`, else by
/// `default` (such as `info`), and returns the handle that reads and
/// replaces the filter. If a logger is installed already, that one stays,
/// and the handle changes nothing it logs.
///
/// An empty `RUST_LOG` is the same as none, as a manifest's `value: ""`
/// means. One that is not a filter (`mesh_core=loud`) is not applied in
/// part: `default` is, and a warning names the value and why it was
/// refused, so that a typo does not silently change what is logged.
pub fn init(default: &str) -> Arc<dyn LogLevel> {
    let (filter, refused) = env_filter(std::env::var_os("RUST_LOG"), default);
    let (level, filter) = ReloadableFilter::new(filter);
    let subscriber = tracing_subscriber::registry().with(filter).with(
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // Colour codes only where a person reads them: a log
            // redirected to a file or collected by a runtime stays
            // plain text.
            .with_ansi(std::io::stderr().is_terminal()),
    );
    let _ = tracing::subscriber::set_global_default(subscriber);
    if let Some(refused) = refused {
        tracing::warn!(
            RUST_LOG = ?refused.value,
            error = %refused.error,
            "RUST_LOG is not a log filter; logging at {default}"
        );
    }
    Arc::new(level)
}

/// A `RUST_LOG` that was not applied, and why.
#[derive(Debug)]
struct Refused {
    value: std::ffi::OsString,
    error: String,
}

/// The filter `RUST_LOG` (`env`) asks for, else `default`, and the value
/// refused when it does not parse.
fn env_filter(env: Option<std::ffi::OsString>, default: &str) -> (EnvFilter, Option<Refused>) {
    let Some(value) = env.filter(|value| !value.is_empty()) else {
        return (EnvFilter::new(default), None);
    };
    let parsed = match value.to_str() {
        Some(text) => parse(text),
        None => Err("not utf-8".to_owned()),
    };
    match parsed {
        Ok(filter) => (filter, None),
        Err(error) => (EnvFilter::new(default), Some(Refused { value, error })),
    }
}

/// `text` as a filter, with field values matched as written: see the
/// [module docs](self).
///
/// tracing's error says what is wrong but not in which directive, which
/// in `mesh_core=debug,hyper=loud,info` leaves the reader to guess; the
/// error names the first directive that does not parse. `EnvFilter`
/// splits a filter at every comma, so each piece is parsed alone the
/// same way, on the error path only.
fn parse(text: &str) -> Result<EnvFilter, String> {
    let builder = || EnvFilter::builder().with_regex(false);
    builder().parse(text).map_err(|error| {
        let mut directives = text.split(',').filter(|d| !d.is_empty());
        match directives.find(|d| builder().parse(d).is_err()) {
            Some(directive) => format!("`{directive}`: {error}"),
            None => error.to_string(),
        }
    })
}

/// An [`EnvFilter`] that can be read and replaced through
/// [`LogLevel`]. Filters are written as `RUST_LOG` is: `info`,
/// `mesh_core=debug,warn`.
#[derive(Debug)]
pub struct ReloadableFilter {
    handle: reload::Handle<EnvFilter, Registry>,
}

impl ReloadableFilter {
    /// The handle, and the layer to put in the subscriber, starting at
    /// `filter`.
    pub fn new(filter: EnvFilter) -> (Self, reload::Layer<EnvFilter, Registry>) {
        let (layer, handle) = reload::Layer::new(filter);
        (Self { handle }, layer)
    }
}

impl LogLevel for ReloadableFilter {
    fn get(&self) -> String {
        self.handle
            .with_current(ToString::to_string)
            .unwrap_or_default()
    }

    /// Replaces the filter. An empty one is refused: it would leave only
    /// errors logged, and is more likely a request sent without its body
    /// than a wish.
    fn set(&self, filter: &str) -> Result<(), String> {
        if filter.trim().is_empty() {
            return Err("empty filter: write one such as info or mesh_core=debug,info".into());
        }
        let filter = parse(filter).map_err(|e| format!("invalid filter: {e}"))?;
        self.handle
            .reload(filter)
            .map_err(|e| format!("the log cannot be changed: {e}"))
    }
}

#[cfg(test)]
pub(crate) mod captured;

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn an_empty_filter_is_refused_and_the_filter_in_force_kept() {
        let (level, layer) = ReloadableFilter::new(EnvFilter::new("info"));
        let subscriber = tracing_subscriber::registry().with(layer);
        let _guard = tracing::subscriber::set_default(subscriber);
        // `curl -X PUT .../proxy-log-level` without a body: an empty
        // filter would turn every log but errors off.
        for empty in ["", "  ", "\n"] {
            let error = level.set(empty).unwrap_err();
            assert!(error.contains("empty"), "{error}");
            assert_eq!(level.get(), "info");
            assert!(tracing::enabled!(tracing::Level::INFO));
        }
    }

    #[test]
    fn rust_log_is_the_filter_unless_empty_or_refused() {
        let (filter, refused) = env_filter(Some("mesh_core=debug,warn".into()), "info");
        assert_eq!(filter.to_string(), "mesh_core=debug,warn");
        assert!(refused.is_none());

        for unset in [None, Some("".into())] {
            let (filter, refused) = env_filter(unset, "info");
            assert_eq!(filter.to_string(), "info");
            assert!(refused.is_none());
        }

        let (filter, refused) = env_filter(Some("warn,mesh_core=loud".into()), "info");
        assert_eq!(filter.to_string(), "info");
        let refused = refused.unwrap();
        assert_eq!(refused.value, "warn,mesh_core=loud");
        assert!(!refused.error.is_empty());
    }

    #[test]
    fn the_filter_is_read_replaced_and_kept_when_a_new_one_does_not_parse() {
        let (level, layer) = ReloadableFilter::new(EnvFilter::new("info"));
        let subscriber = tracing_subscriber::registry().with(layer);
        let _guard = tracing::subscriber::set_default(subscriber);
        assert_eq!(level.get(), "info");
        assert!(!tracing::enabled!(tracing::Level::DEBUG));
        level.set("debug").unwrap();
        assert_eq!(level.get(), "debug");
        assert!(tracing::enabled!(tracing::Level::DEBUG));
        let error = level.set("mesh_core=loud").unwrap_err();
        assert!(error.starts_with("invalid filter: "), "{error}");
        assert_eq!(level.get(), "debug");
    }

    /// A field value is matched as written: with patterns on, `a.c`
    /// matched `abc`.
    #[test]
    fn a_field_value_in_a_filter_is_not_a_pattern() {
        let (level, layer) = ReloadableFilter::new(EnvFilter::new("info"));
        let subscriber = tracing_subscriber::registry().with(layer);
        let _guard = tracing::subscriber::set_default(subscriber);
        level.set("[{peer=a.c}]=debug").unwrap();
        let span = tracing::info_span!("conn", peer = "abc");
        let _entered = span.enter();
        assert!(!tracing::enabled!(tracing::Level::DEBUG));
        let (filter, refused) = env_filter(Some("[{peer=a.c}]=debug".into()), "info");
        assert!(refused.is_none());
        let subscriber = tracing_subscriber::registry().with(filter);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("conn", peer = "abc");
            let _entered = span.enter();
            assert!(!tracing::enabled!(tracing::Level::DEBUG));
        });
    }

    /// A pattern whose DFA has a million states took minutes and
    /// gigabytes to read, blocking the runtime that read it.
    #[test]
    fn a_filter_with_a_pattern_that_explodes_is_read_at_once() {
        let filter = format!("mesh_core[{{x=[ab]*a{}}}]=debug", "[ab]".repeat(20));
        let (done, read) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (level, _layer) = ReloadableFilter::new(EnvFilter::new("info"));
            let _ = done.send(level.set(&filter));
        });
        let result = read.recv_timeout(std::time::Duration::from_secs(5));
        assert!(matches!(result, Ok(Ok(()))), "{result:?}");
    }

    /// tracing's error says what is wrong, not where: in a filter of
    /// several directives, the one that does not parse is named.
    #[test]
    fn the_directive_that_does_not_parse_is_named() {
        let (level, _layer) = ReloadableFilter::new(EnvFilter::new("info"));
        let error = level.set("mesh_core=debug,hyper=loud,info").unwrap_err();
        assert!(
            error.starts_with("invalid filter: `hyper=loud`: "),
            "{error}"
        );
        let (_, refused) = env_filter(Some("info,,mesh_core=lod".into()), "info");
        let refused = refused.unwrap();
        assert!(
            refused.error.starts_with("`mesh_core=lod`: "),
            "{}",
            refused.error
        );
    }
}
