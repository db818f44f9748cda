//! The policy in force: read and compiled at start, then watched.
//!
//! The sidecar refuses to start with a policy that does not compile, the
//! way it refuses a bad configuration file. Once it runs, the files are
//! read every `watch_interval`; a change that compiles is in force for the
//! next request (and open opaque connections it no longer allows are
//! closed), and one that does not is logged and counted while the last
//! good policy stays (`inbound_policy_reloads_total{result="error"}`).
//!
//! The same files give the outbound routes, which are watched the same
//! way (`RoutesWatcher`): a change whose routes read and plan is in force
//! for the next request, and one that does not leaves the last good routes
//! (`outbound_route_reloads_total{result}`).

use std::{fmt, sync::Arc, time::Duration};

use mesh_core::resource::ResourceError;
use mesh_policy::{
    Compiled, ExplainQuery, Explanation, Policy, PolicyMetrics, PolicyStore, PolicyTexts,
    PolicyWarnings, PolicyWatcher,
};
use mesh_retry::config::RetryResources;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use super::config::{InlineOrigin, PolicySettings};
use super::outbound::Outbound;
use super::worker::Background;

/// A policy that could not be read or compiled.
///
/// A mistake in a file names the file, the document, its kind and name,
/// the field and the line. A mistake in `policy.inline` names the
/// configuration file and the line there:
///
/// ```text
/// sidecar.yaml: policy.inline: document 2 (ServerAuthorization web-auth): spec.server.name: no Server named web in namespace emojivoto at line 21 column 11
/// ```
#[derive(Debug)]
pub struct PolicyError {
    error: ResourceError,
    inline: Option<InlineOrigin>,
}

impl PolicyError {
    fn new(error: ResourceError, settings: &PolicySettings) -> Self {
        let inline = settings
            .inline_origin
            .clone()
            .filter(|_| error.origin().starts_with("inline["));
        Self { error, inline }
    }

    /// The resource error, as mesh-policy reported it.
    pub fn resource_error(&self) -> &ResourceError {
        &self.error
    }

    /// The line of the mistake in the file it is written in: the policy
    /// file, or the configuration file for `policy.inline`.
    pub fn line(&self) -> Option<usize> {
        let line = self.error.line()?;
        Some(match &self.inline {
            Some(inline) => inline.first_line + line - 1,
            None => line,
        })
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(inline) = &self.inline else {
            return write!(f, "{}", self.error);
        };
        let error = &self.error;
        write!(f, "{}: policy.inline: ", inline.origin)?;
        if let Some(document) = error.document() {
            write!(f, "document {document}")?;
            match (error.resource_kind(), error.name()) {
                (Some(kind), Some(name)) => write!(f, " ({kind} {name})")?,
                (Some(kind), None) => write!(f, " ({kind})")?,
                (None, Some(name)) => write!(f, " ({name})")?,
                (None, None) => {}
            }
            f.write_str(": ")?;
        }
        if !error.field_path().is_empty() {
            write!(f, "{}: ", error.field_path())?;
        }
        f.write_str(error.message())?;
        if let (Some(line), Some(at)) = (self.line(), error.location()) {
            write!(f, " at line {line} column {}", at.column + inline.indent)?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// The resources of the policy section, compiled: the authorization policy
/// and the outbound routes.
#[derive(Debug)]
pub struct Checked {
    /// The authorization policy, and what it does not enforce.
    pub compiled: Compiled,
    /// The retry and timeout policies of outbound services, from
    /// `HTTPRoute`s whose parent is a `Service` and from `ServiceProfile`s.
    pub routes: RetryResources,
}

/// Reads the policy's files now, blocking, and compiles them with the
/// inline text: what `sidecar check` and `sidecar policy explain` do.
///
/// # Errors
///
/// A file that cannot be read, or the first mistake in the resources.
pub fn compile(settings: &PolicySettings) -> Result<Checked, PolicyError> {
    let texts = settings
        .sources
        .read_blocking()
        .map_err(|e| PolicyError::new(e, settings))?;
    let compiled = Policy::compile(
        &texts.sources(),
        &settings.workload,
        &settings.config,
        &PolicyMetrics::default(),
    )
    .map_err(|e| PolicyError::new(e, settings))?;
    let routes = retry_routes(&texts, settings)?;
    Ok(Checked { compiled, routes })
}

/// Reads the outbound route policies of every text, merged per service
/// (`RetryResources::merge`): each service's matches from every file are
/// ranked together by the Gateway API's precedence, with a later file's
/// routes and redirects after an earlier one's where precedence ties, and
/// the last `retryBudget` given.
fn retry_routes(
    texts: &PolicyTexts,
    settings: &PolicySettings,
) -> Result<RetryResources, PolicyError> {
    let mut merged = RetryResources::default();
    for source in texts.sources() {
        let loaded = mesh_retry::config::load(source.origin, source.text)
            .map_err(|e| PolicyError::new(e, settings))?;
        merged.merge(loaded);
    }
    Ok(merged)
}

/// Explains the decision for `query` under the configured policy: `sidecar
/// policy explain`.
///
/// # Errors
///
/// As [`compile`].
pub fn explain(
    settings: &PolicySettings,
    query: &ExplainQuery,
) -> Result<Explanation, PolicyError> {
    Ok(compile(settings)?.compiled.policy.explain(query))
}

/// The policy store every runtime reads, with the policy loaded, and the
/// task that watches its files.
pub(super) struct Loaded {
    pub(super) store: PolicyStore,
    pub(super) routes: RetryResources,
    /// The texts the policy and the routes were read from.
    pub(super) texts: PolicyTexts,
    pub(super) watcher: Option<Background>,
}

/// Reads and compiles the policy, puts it in a new store counting into
/// `metrics`, and prepares the watcher when there are files to watch.
pub(super) fn load(
    settings: &PolicySettings,
    metrics: PolicyMetrics,
) -> Result<Loaded, PolicyError> {
    let store = PolicyStore::new(settings.workload.clone(), settings.config.clone(), metrics);
    let texts = settings
        .sources
        .read_blocking()
        .map_err(|e| PolicyError::new(e, settings))?;
    let Compiled { policy, warnings } = store
        .compile(&texts.sources())
        .map_err(|e| PolicyError::new(e, settings))?;
    store.swap(policy);
    log_warnings(&warnings);
    let routes = retry_routes(&texts, settings)?;
    let watcher = (!settings.sources.files.is_empty()).then(|| {
        let watcher = PolicyWatcher::new(store.clone(), settings.sources.clone())
            .with_interval(settings.watch_interval)
            .with_loaded(texts.clone());
        Box::pin(watcher.run()) as Background
    });
    Ok(Loaded {
        store,
        routes,
        texts,
        watcher,
    })
}

fn log_warnings(warnings: &PolicyWarnings) {
    if warnings.is_empty() {
        tracing::info!("policy loaded");
    } else {
        tracing::warn!(%warnings, "policy loaded with parts that are not enforced");
    }
}

/// Reloads the outbound routes when the policy files change. See the
/// [module docs](self).
#[derive(Debug)]
pub(super) struct RoutesWatcher {
    settings: PolicySettings,
    outbound: Arc<Outbound>,
    /// The texts the routes in force were read from.
    last: PolicyTexts,
    reloads: RouteReloads,
}

impl RoutesWatcher {
    /// A watcher of `settings`' files for `outbound`, whose routes were
    /// read from `loaded`. `None` when there are no files to watch.
    pub(super) fn new(
        settings: &PolicySettings,
        outbound: Arc<Outbound>,
        loaded: PolicyTexts,
        reloads: RouteReloads,
    ) -> Option<Self> {
        (!settings.sources.files.is_empty()).then(|| Self {
            settings: settings.clone(),
            outbound,
            last: loaded,
            reloads,
        })
    }

    /// Polls every `watch_interval` until dropped. Each change of contents
    /// is planned once, when a second read a quarter of the interval later
    /// finds the same contents, so that a file caught half-written (empty,
    /// between its truncation and its write) never takes a service's
    /// routes, timeouts and budget away: a bad change is reported once.
    pub(super) async fn run(mut self) {
        let interval = self.settings.watch_interval.max(Duration::from_millis(10));
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.poll(|| tokio::time::sleep(interval / 4)).await;
        }
    }

    /// Reads the files once, and plans the routes when they changed and
    /// settled: `pause` is awaited between the two reads of a change.
    async fn poll<F: Future<Output = ()>>(&mut self, pause: impl FnOnce() -> F) {
        // Unreadable files are the authorization watcher's to report.
        let Ok(texts) = self.settings.sources.read().await else {
            return;
        };
        if texts == self.last {
            return;
        }
        // A file rewritten in place is empty for a moment, and an empty
        // file is valid: it has no routes. Only contents that a second
        // read finds again are put in force, as the authorization
        // watcher does (mesh-policy's `PolicyWatcher`).
        pause().await;
        let settled = self
            .settings
            .sources
            .read()
            .await
            .is_ok_and(|again| again == texts);
        if !settled {
            tracing::debug!("policy files still changing; read again at the next poll");
            return;
        }
        // Planned on tokio's blocking pool: this watcher runs on a runtime
        // that serves traffic, and megabytes of routes take seconds to
        // parse and plan, during which its connections would wait.
        let settings = self.settings.clone();
        let outbound = self.outbound.clone();
        let reloads = self.reloads.clone();
        let planned = tokio::task::spawn_blocking(move || {
            plan_and_reload(&texts, &settings, &outbound, &reloads);
            texts
        })
        .await;
        match planned {
            Ok(texts) => self.last = texts,
            // Planning panicked, or the runtime is shutting down: the last
            // good routes stay, and the next poll tries again.
            Err(error) => tracing::warn!(
                %error,
                "outbound routes reload did not finish; the last good routes stay in force"
            ),
        }
    }
}

/// Reads routes from `texts` and puts them in force for `outbound`,
/// counting and logging the result.
fn plan_and_reload(
    texts: &PolicyTexts,
    settings: &PolicySettings,
    outbound: &Outbound,
    reloads: &RouteReloads,
) {
    let reloaded = retry_routes(texts, settings).map(|routes| outbound.reload(&routes));
    reloads.count(reloaded.is_ok());
    match reloaded {
        Ok(()) => tracing::info!("outbound routes reloaded"),
        Err(error) => tracing::warn!(
            %error,
            "outbound routes not reloaded; the last good routes stay in force"
        ),
    }
}

/// `outbound_route_reloads_total{result}`: `ok` or `error`.
#[derive(Clone, Debug)]
pub(super) struct RouteReloads(Family<ReloadLabels, Counter>);

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ReloadLabels {
    result: &'static str,
}

impl RouteReloads {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let family = Family::default();
        registry.register(
            "outbound_route_reloads",
            "Reloads of the outbound routes from the policy files, by result",
            family.clone(),
        );
        Self(family)
    }

    fn count(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.0.get_or_create(&ReloadLabels { result }).inc();
    }
}

mod protocol;
#[cfg(test)]
mod tests;

pub(super) use self::protocol::{ProtocolWatch, served_protocol};
