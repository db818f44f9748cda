//! The tracing section: where the sidecar's spans go, and what they say
//! the sidecar is.

use mesh_metrics::trace::Collector;
use serde::{Deserialize, Deserializer};

use super::error::{ConfigError, ConfigErrorKind};
use super::file::ParseStr;
use super::policy::PolicySettings;
use super::resolve::Source;
use super::unique::UniqueMap;

/// `tracing`: report the sidecar's spans of the traces requests carry to
/// an OpenTelemetry collector (see `mesh_metrics::trace`). Off without the
/// section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TracingConfig {
    /// `tracing.collector`: the collector's OTLP/HTTP endpoint,
    /// `http://host:4318` (the path defaults to `/v1/traces`).
    pub collector: Collector,
    /// The resource attributes every span is reported with, `service.name`
    /// first.
    pub resource: Vec<(String, String)>,
}

/// The name spans are reported under without `tracing.service_name` and
/// without an `app` label on the workload.
pub const DEFAULT_SERVICE_NAME: &str = "sidecar";

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with collector, service_name and attributes"
)]
pub(super) struct TracingSection {
    collector: CollectorEntry,
    service_name: Option<String>,
    attributes: Option<UniqueMap<String>>,
}

#[derive(Debug)]
struct CollectorEntry(Collector);

impl<'de> Deserialize<'de> for CollectorEntry {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(ParseStr {
            what: "collector",
            expecting: "an http:// URL such as http://127.0.0.1:4318",
            parse: |text: &str| {
                let collector = text.parse::<Collector>().map_err(|e| e.to_string())?;
                // As for an application or an endpoint: nothing can be
                // connected to on port 0.
                if collector.uri().port_u16() == Some(0) {
                    return Err("port 0 cannot be connected to".to_owned());
                }
                Ok(CollectorEntry(collector))
            },
        })
    }
}

/// Applies the defaults: `service.name` is `tracing.service_name`, or the
/// workload's `app` label, or [`DEFAULT_SERVICE_NAME`].
pub(super) fn resolve_tracing(
    section: TracingSection,
    policy: &PolicySettings,
    source: Source<'_>,
) -> Result<TracingConfig, ConfigError> {
    let invalid = |path: &str, message: &str| {
        source.error(
            ConfigErrorKind::InvalidValue,
            path,
            path,
            message.to_owned(),
        )
    };
    if section.service_name.as_deref().is_some_and(str::is_empty) {
        return Err(invalid(
            "tracing.service_name",
            "tracing.service_name is empty; leave it out for the default",
        ));
    }
    let attributes = section.attributes.map(|a| a.0).unwrap_or_default();
    if attributes.contains_key("") {
        return Err(invalid(
            "tracing.attributes",
            "tracing.attributes has an empty name",
        ));
    }
    if attributes.contains_key("service.name") {
        return Err(invalid(
            "tracing.attributes",
            "tracing.attributes names service.name; set tracing.service_name instead",
        ));
    }
    let service_name = section
        .service_name
        .or_else(|| policy.workload.labels.get("app").cloned())
        .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_owned());
    let resource = std::iter::once(("service.name".to_owned(), service_name))
        .chain(attributes)
        .collect();
    Ok(TracingConfig {
        collector: section.collector.0,
        resource,
    })
}
