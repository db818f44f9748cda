//! The sidecar process's log: formatted lines on standard error, under a
//! filter that can be replaced while it runs (the admin's
//! `/proxy-log-level`).

use std::{io::IsTerminal, sync::Arc};

use mesh_core::admin::LogLevel;
use tracing_subscriber::{EnvFilter, Registry, layer::SubscriberExt, reload};

/// Installs the process's logger, filtered by `RUST_LOG`, else by
/// `default` (such as `info`), and returns the handle that reads and
/// replaces the filter. If a logger is installed already, that one stays,
/// and the handle changes nothing it logs.
pub fn init(default: &str) -> Arc<dyn LogLevel> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
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
    Arc::new(level)
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

    fn set(&self, filter: &str) -> Result<(), String> {
        let filter = EnvFilter::try_new(filter).map_err(|e| format!("invalid filter: {e}"))?;
        self.handle
            .reload(filter)
            .map_err(|e| format!("the log cannot be changed: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

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
}
