//! The policy in force: read and compiled at start, then watched.
//!
//! The sidecar refuses to start with a policy that does not compile, the
//! way it refuses a bad configuration file. Once it runs, the files are
//! read every `watch_interval` (`RoutesWatcher`), and at once when asked
//! ([`Reload`]: `sidecar run` asks on SIGHUP).
//!
//! The files give both the authorization policy and the outbound routes,
//! and they are one state, as they are at start and for `sidecar check`:
//! a change is put in force whole, policy and routes, or refused whole. A
//! change that compiles and whose routes read is in force for the next
//! request (and open opaque connections the policy no longer allows are
//! closed). One with a mistake anywhere, in any file, is logged and
//! counted while the last good policy and routes of every file stay: were
//! the two reloaded apart, a mistake in an authorization file would leave
//! the old authorization serving beside the new routes of another file,
//! a state no one wrote, and after every change one would be in force
//! without the other until the other's watcher next read the files.
//!
//! At start and on each reload put in force, each route attached to an
//! `EgressNetwork` that does not apply to the workload (missing, of
//! another namespace, or a global one the workload's namespace hides) is
//! logged, as `sidecar check` shows it: it serves nothing.
//!
//! `inbound_policy_reloads_total{result}` counts the policy's compiles
//! (`error` when it does not compile), `outbound_route_reloads_total{result}`
//! every change (`error` when any part of it is refused, or the files
//! cannot be read), and `policy_last_reload_successful` is 0 from a refused
//! change or a failed read until the files read and load again, as
//! Prometheus's `prometheus_config_last_reload_successful` tells its own.

use std::{fmt, sync::Arc, time::Duration};

use mesh_tls::ReloadHandle;
use tokio::sync::Notify;

use mesh_core::resource::{Documents, POLICY_GROUP, ResourceError};
use mesh_policy::{
    Compiled, ExplainQuery, Explanation, Policy, PolicyMetrics, PolicySource, PolicyStore,
    PolicyTexts, PolicyWarnings, egress::EgressNetworks, resource::EgressNetwork,
};
use mesh_retry::config::RetryResources;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use super::config::{InlineOrigin, PolicySettings};
use super::outbound::{Outbound, unserved_egress_routes};

/// A policy that could not be read or compiled.
///
/// A mistake in a file names the file, the document, its kind and name,
/// the field and the line. A mistake in `policy.inline` names the
/// configuration file and the line there:
///
/// ```text
/// sidecar.yaml: policy.inline: document 2 (ServerAuthorization emojivoto/web-auth): spec.server.name: no Server named web in namespace emojivoto at line 21 column 11
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
    /// One warning for each route attached to an `EgressNetwork` that does
    /// not apply to the workload, which serves none of its requests, in
    /// the words the sidecar logs it.
    pub unserved_egress_routes: Vec<String>,
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
    let unserved_egress_routes = unserved_egress(
        &routes,
        compiled.egress_networks(),
        &texts.sources(),
        settings,
    );
    Ok(Checked {
        compiled,
        routes,
        unserved_egress_routes,
    })
}

/// [`unserved_egress_routes`] of `routes` for the workload of `settings`,
/// with `networks` the compiled policy's and the `EgressNetwork`s written
/// in `sources`.
fn unserved_egress(
    routes: &RetryResources,
    networks: &EgressNetworks,
    sources: &[PolicySource<'_>],
    settings: &PolicySettings,
) -> Vec<String> {
    let namespace = &settings.workload.namespace;
    unserved_egress_routes(
        routes,
        namespace,
        networks,
        &settings.config.egress_namespace,
        || written_networks(sources, namespace),
    )
}

/// The namespace and name of every `EgressNetwork` written in `sources`,
/// one written without a namespace in `namespace`, as the policy reads
/// it. The compiled policy holds only those that apply to the workload;
/// this tells a route's network that is written elsewhere from one that
/// is written nowhere. The texts have compiled, so each reads; only
/// their documents' heads are read again.
fn written_networks(sources: &[PolicySource<'_>], namespace: &str) -> Vec<(String, String)> {
    let mut written = Vec::new();
    for source in sources {
        for document in Documents::new(source.origin, source.text) {
            let Ok(document) = document else { break };
            if !document.is::<EgressNetwork>() || document.api_version().group() != POLICY_GROUP {
                continue;
            }
            if let Some(name) = document.name() {
                let in_namespace = document.namespace().unwrap_or(namespace);
                written.push((in_namespace.to_owned(), name.to_owned()));
            }
        }
    }
    written
}

/// Logs each route attached to an `EgressNetwork` that does not apply to
/// the workload ([`unserved_egress_routes`]), as the planner logs the
/// routes it does not apply: at start, and on each reload put in force.
fn log_unserved_egress(
    routes: &RetryResources,
    store: &PolicyStore,
    texts: &PolicyTexts,
    settings: &PolicySettings,
) {
    let policy = store.current();
    for warning in unserved_egress(routes, policy.egress_networks(), &texts.sources(), settings) {
        tracing::warn!(%warning, "egress routes: network does not apply to this workload");
    }
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

/// The policy store every runtime reads, with the policy loaded.
pub(super) struct Loaded {
    pub(super) store: PolicyStore,
    pub(super) routes: RetryResources,
    /// The texts the policy and the routes were read from, and the store,
    /// for the [`RoutesWatcher`] that reloads both.
    pub(super) texts: LoadedTexts,
}

/// The texts the policy in `store` and the routes were loaded from: where
/// a [`RoutesWatcher`] starts.
#[derive(Debug)]
pub(super) struct LoadedTexts {
    texts: PolicyTexts,
    store: PolicyStore,
}

impl LoadedTexts {
    pub(super) fn new(texts: PolicyTexts, store: PolicyStore) -> Self {
        Self { texts, store }
    }
}

/// Reads and compiles the policy, and puts it in a new store counting into
/// `metrics`.
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
    log_unserved_egress(&routes, &store, &texts, settings);
    Ok(Loaded {
        texts: LoadedTexts::new(texts, store.clone()),
        store,
        routes,
    })
}

fn log_warnings(warnings: &PolicyWarnings) {
    if warnings.is_empty() {
        tracing::info!("policy loaded");
    } else {
        tracing::warn!(%warnings, "policy loaded with parts that are not enforced");
    }
}

/// Asks the sidecar to read its policy files now rather than at the next
/// `watch_interval`: an operator who has just written them, or a deploy
/// script, need not wait or guess when the change is in force. Cheap to
/// clone; works from any thread.
///
/// What is read is judged as a change found by polling is: a change is put
/// in force whole or refused whole, and a refused one is logged, naming
/// its mistake, while the last good policy and routes stay. Asked again
/// with files that were refused, it reads and judges them again, so the
/// mistake is in the log once more; asked with files as they are in
/// force, it says so. An ask that comes while a change found by polling
/// settles ends that wait; others that come while a read is under way
/// are one more read after it. Prometheus reloads its configuration on
/// SIGHUP the same way, and nginx re-reads its own.
///
/// The sidecar's handle ([`Running::reloader`](super::Running::reloader))
/// asks the identity's source to read its files at once too
/// ([`IdentityReads`]), by mesh-tls's rules ([`mesh_tls::ReloadHandle`]):
/// a set refused is named and counted, and the credentials in service
/// stay.
#[derive(Clone, Debug, Default)]
pub struct Reload {
    asked: Arc<Notify>,
    /// Whether a watcher reads the asks: there are files to read.
    watched: bool,
    /// Asks the source of the identity's credentials, and what it reads.
    identity: Option<(ReloadHandle, IdentityReads)>,
}

/// What of the identity's source a [`Reload`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdentityReads {
    /// The certificate, key and bundle files (`identity.dir`, or
    /// `identity.cert`, `key` and `bundle`): a new set is in service for
    /// the next handshake.
    CertificateFiles,
    /// The CA directory (`identity.ca`): when it holds another CA than
    /// the one that issued the certificate in service, that CA issues one
    /// at once; unchanged, nothing is issued.
    CaDirectory,
}

impl fmt::Display for IdentityReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CertificateFiles => "the certificate files",
            Self::CaDirectory => "the CA directory",
        })
    }
}

impl Reload {
    /// Asks for a read now. Returns whether anything is read: without
    /// policy files or an identity, there is nothing to read again.
    pub fn ask(&self) -> bool {
        if self.watched {
            self.asked.notify_one();
        }
        let identity = self
            .identity
            .as_ref()
            .is_some_and(|(handle, _)| handle.ask());
        self.watched || identity
    }

    /// Whether there are files to read: whether [`ask`](Self::ask) reads
    /// anything.
    pub fn is_watched(&self) -> bool {
        self.watched || self.reads_identity().is_some()
    }

    /// Whether [`ask`](Self::ask) reads the policy files.
    pub fn reads_policy_files(&self) -> bool {
        self.watched
    }

    /// What of the identity's source [`ask`](Self::ask) reads: nothing
    /// without an identity (or once its source has stopped).
    pub fn reads_identity(&self) -> Option<IdentityReads> {
        self.identity
            .as_ref()
            .filter(|(handle, _)| handle.is_watched())
            .map(|&(_, reads)| reads)
    }

    /// This handle, asking `identity`, which reads `reads`, too.
    pub(super) fn with_identity(mut self, identity: ReloadHandle, reads: IdentityReads) -> Self {
        self.identity = Some((identity, reads));
        self
    }

    /// The handle of a watcher, which reads every ask.
    pub(super) fn watched() -> Self {
        Self {
            asked: Arc::new(Notify::new()),
            watched: true,
            identity: None,
        }
    }
}

/// What one read of the policy files came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Polled {
    /// The files could not be read; what is in force stays.
    Unreadable,
    /// The files are as last read.
    Unchanged,
    /// A second read found other contents: they are read again later.
    Unsettled,
    /// The files changed (or were judged again) and were put in force.
    Loaded,
    /// The files changed (or were judged again) and were refused.
    Refused,
}

/// Reloads the authorization policy and the outbound routes together when
/// the policy files change. See the [module docs](self).
#[derive(Debug)]
pub(super) struct RoutesWatcher {
    settings: PolicySettings,
    store: PolicyStore,
    outbound: Arc<Outbound>,
    /// The texts last loaded, or refused.
    last: PolicyTexts,
    /// Whether `last` was loaded (not refused).
    last_loaded: bool,
    /// The error of the last read, while the files cannot be read: each
    /// is reported once.
    read_error: Option<String>,
    reloads: RouteReloads,
}

impl RoutesWatcher {
    /// A watcher of `settings`' files for the policy store and the routes
    /// of `outbound`, both loaded from `loaded`. `None` when there are no
    /// files to watch.
    pub(super) fn new(
        settings: &PolicySettings,
        outbound: Arc<Outbound>,
        loaded: LoadedTexts,
        reloads: RouteReloads,
    ) -> Option<Self> {
        (!settings.sources.files.is_empty()).then(|| Self {
            settings: settings.clone(),
            store: loaded.store,
            outbound,
            last: loaded.texts,
            last_loaded: true,
            read_error: None,
            reloads,
        })
    }

    /// Polls every `watch_interval` until dropped, and at once on each ask
    /// of `reload` ([`Reload`]). Each change of contents found by polling
    /// is planned once, when a second read a quarter of the interval later
    /// finds the same contents, so that a file caught half-written (empty,
    /// between its truncation and its write) never takes a service's
    /// routes, timeouts and budget away: a bad change is reported once. An
    /// ask reads the files twice at once: whoever asked has written them.
    /// A file an ask finds emptied is the exception, and waits as a
    /// change found by polling does, or until the next ask.
    pub(super) async fn run(mut self, reload: Reload) {
        let interval = self.settings.watch_interval.max(Duration::from_millis(10));
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let asked = &reload.asked;
        loop {
            // The wait between the two reads of a change. An ask that
            // comes while a change settles ends it: whoever asked has
            // written the files. With a long interval, the wait is long.
            let settle = || async move {
                tokio::select! {
                    () = tokio::time::sleep(interval / 4) => false,
                    () = asked.notified() => true,
                }
            };
            let (polled, answered) = tokio::select! {
                _ = ticks.tick() => self.read_and_load(settle, false).await,
                () = asked.notified() => self.read_and_load(settle, true).await,
            };
            let polled = if answered && polled == Polled::Unsettled {
                // The ask ended a wait whose first read caught a writer
                // half-way through; whoever asked has finished writing,
                // so the files are read as an ask reads them, now,
                // rather than an interval later.
                self.read_and_load(settle, true).await.0
            } else {
                polled
            };
            if answered {
                say_asked(polled);
                // The next poll is a whole interval after this read.
                ticks.reset();
            }
        }
    }

    /// [`read_and_load`](Self::read_and_load) with a `pause` no ask ends:
    /// the tests' way in.
    #[cfg(test)]
    async fn poll<F: Future<Output = ()>>(&mut self, pause: impl FnOnce() -> F) {
        let pause = || async {
            pause().await;
            false
        };
        self.read_and_load(pause, false).await;
    }

    /// Reads the files once, and loads the policy and the routes when
    /// they changed and settled: `pause` is awaited between the two reads
    /// of a change, and says whether an ask ended it. Returns what the
    /// read came to, and whether a [`Reload`] asked for it. `asked`: one
    /// did, and files refused as they are now are judged again, and a
    /// failure to read them is logged again, for whoever asked.
    async fn read_and_load<F: Future<Output = bool>>(
        &mut self,
        pause: impl FnOnce() -> F,
        asked: bool,
    ) -> (Polled, bool) {
        let texts = match self.settings.sources.read().await {
            Ok(texts) => texts,
            Err(error) => {
                // A file removed, unreadable, or replaced by a directory:
                // nothing changes, and each failure is told once, with the
                // system's reason ("Permission denied"), which the file's
                // error holds as its source.
                let message = match std::error::Error::source(&error) {
                    Some(reason) => format!("{error}: {reason}"),
                    None => error.to_string(),
                };
                if asked || self.read_error.as_ref() != Some(&message) {
                    self.reloads.count(false);
                    tracing::warn!(
                        error = %message,
                        "policy files unreadable; the last good policy and routes stay in force"
                    );
                    self.read_error = Some(message);
                }
                return (Polled::Unreadable, asked);
            }
        };
        if self.read_error.take().is_some() {
            // Readable again: what is in force is what they hold, unless
            // that was refused.
            self.reloads
                .set_successful(self.last_loaded && texts == self.last);
        }
        if texts == self.last && (self.last_loaded || !asked) {
            return (Polled::Unchanged, asked);
        }
        // A file rewritten in place is empty for a moment, and an empty
        // file is valid: it has no routes. Only contents that a second
        // read finds again are put in force, as the authorization
        // watcher does (mesh-policy's `PolicyWatcher`).
        tracing::debug!("policy files changed; read again once they settle");
        // An ask reads the files twice at once: whoever asked has written
        // them. Not a file it finds emptied: one caught between its
        // truncation and its write is empty at both reads, and empty it
        // takes every Server and route away. It waits as a change found
        // by polling does, or until the next ask.
        let asked = if !asked || emptied(&texts, &self.last) {
            pause().await || asked
        } else {
            asked
        };
        let settled = self
            .settings
            .sources
            .read()
            .await
            .is_ok_and(|again| again == texts);
        if !settled {
            tracing::debug!("policy files still changing; read again at the next poll");
            return (Polled::Unsettled, asked);
        }
        // Compiled and planned on tokio's blocking pool: this watcher runs
        // on a runtime that serves traffic, and megabytes of resources take
        // seconds to compile and plan, during which its connections would
        // wait.
        let settings = self.settings.clone();
        let store = self.store.clone();
        let outbound = self.outbound.clone();
        let reloads = self.reloads.clone();
        let reloaded = tokio::task::spawn_blocking(move || {
            let loaded = reload(&texts, &settings, &store, &outbound, &reloads);
            (texts, loaded)
        })
        .await;
        match reloaded {
            Ok((texts, loaded)) => {
                self.last = texts;
                self.last_loaded = loaded;
                let polled = if loaded {
                    Polled::Loaded
                } else {
                    Polled::Refused
                };
                (polled, asked)
            }
            // Compiling panicked, or the runtime is shutting down: the last
            // good policy and routes stay, and the next poll tries again.
            Err(error) => {
                tracing::warn!(
                    %error,
                    "policy reload did not finish; the last good policy and routes stay in force"
                );
                (Polled::Refused, asked)
            }
        }
    }
}

/// Whether a text of `texts` is empty (or blank) where `last` held
/// something under the same origin: what a file rewritten in place holds
/// for a moment.
fn emptied(texts: &PolicyTexts, last: &PolicyTexts) -> bool {
    let before = last.sources();
    texts.sources().iter().any(|now| {
        now.text.trim().is_empty()
            && before
                .iter()
                .any(|was| was.origin == now.origin && !was.text.trim().is_empty())
    })
}

/// Tells whoever asked for a read ([`Reload`]) what it came to, in one
/// line that ends each ask. Files that cannot be read are logged as such
/// by the read itself, each time one is asked for; a refused change is
/// named, with its mistake, by the reload before this line.
fn say_asked(polled: Polled) {
    match polled {
        Polled::Unchanged => {
            tracing::info!("policy files unchanged, as asked; the policy and routes in force stay")
        }
        Polled::Unsettled => tracing::info!(
            "policy files changed between two reads, as asked; they are read again at the \
             next poll"
        ),
        Polled::Loaded => tracing::info!("policy files reloaded, as asked"),
        Polled::Refused => tracing::warn!(
            "policy files refused, as asked; the last good policy and routes stay in force"
        ),
        Polled::Unreadable => {}
    }
}

/// Puts the policy and the routes of `texts` in force together, or
/// neither; counts and logs the result, and says whether they were.
///
/// The routes are read first, since putting the policy in force cannot be
/// undone: the store compiles it and swaps it in, counting the result in
/// `inbound_policy_reloads_total`, and the routes follow only if it did.
fn reload(
    texts: &PolicyTexts,
    settings: &PolicySettings,
    store: &PolicyStore,
    outbound: &Outbound,
    reloads: &RouteReloads,
) -> bool {
    let sources = texts.sources();
    let routes = match retry_routes(texts, settings) {
        Ok(routes) => routes,
        Err(error) => {
            // A mistake both refuse (a file that is not YAML) is also the
            // policy's: the store logs and counts it as its own refusal.
            if store.compile(&sources).is_err() {
                let _ = store.reload(&sources);
            }
            reloads.count(false);
            tracing::warn!(
                %error,
                "policy files not reloaded; the last good policy and routes stay in force"
            );
            return false;
        }
    };
    // The store logs and counts its own refusal, naming the mistake.
    let loaded = store.reload(&sources).is_ok();
    if loaded {
        outbound.reload(&routes);
        log_unserved_egress(&routes, store, texts, settings);
        tracing::info!("outbound routes reloaded");
    } else {
        tracing::warn!(
            "outbound routes not reloaded with the policy refused; the last good policy and \
             routes stay in force"
        );
    }
    reloads.count(loaded);
    loaded
}

/// `outbound_route_reloads_total{result}`: `ok` or `error`; and
/// `policy_last_reload_successful`, 1 while the policy files as last read
/// are in force.
#[derive(Clone, Debug)]
pub(super) struct RouteReloads {
    results: Family<ReloadLabels, Counter>,
    successful: Gauge,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct ReloadLabels {
    result: &'static str,
}

impl RouteReloads {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let results = Family::default();
        registry.register(
            "outbound_route_reloads",
            "Reloads of the outbound routes from the policy files, by result",
            results.clone(),
        );
        // The policy in force was loaded at start.
        let successful = Gauge::default();
        successful.set(1);
        registry.register(
            "policy_last_reload_successful",
            "Whether the policy files as last read are in force (1), or were refused or could \
             not be read (0)",
            successful.clone(),
        );
        Self {
            results,
            successful,
        }
    }

    fn count(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.results.get_or_create(&ReloadLabels { result }).inc();
        self.set_successful(ok);
    }

    fn set_successful(&self, successful: bool) {
        self.successful.set(i64::from(successful));
    }
}

mod protocol;
#[cfg(test)]
mod reload_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unserved_tests;

pub(super) use self::protocol::{ProtocolWatch, served_protocol};
