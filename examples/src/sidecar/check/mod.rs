//! `sidecar check`: is this sidecar set up to work, and is it working?
//!
//! A sidecar that will not start says why, but one that starts can still
//! fail its first request: a certificate that expires tonight, a trust
//! bundle from another CA, an application that is not listening, a
//! policy resource that is read but not enforced. `check` looks for each
//! of these before anyone has to, the way `linkerd check` does for a
//! cluster, and prints one line per check under a heading per area:
//!
//! ```text
//! sidecar-config
//! --------------
//! ✔ config file sidecar.yaml is valid
//!     inbound.listen 0.0.0.0:4143 (from MESH_INBOUND_LISTEN_ADDR)
//!     outbound.listen 127.0.0.1:4140 (default)
//!     admin.listen 0.0.0.0:4191 (from sidecar.yaml)
//!
//! sidecar-identity
//! ----------------
//! ✔ certificate, key and trust bundle can be read
//! ✔ certificate chain verifies against the trust bundle
//! ✔ certificate identity spiffe://example.org/ns/emojivoto/sa/web is in trust domain example.org
//! ✔ workload certificate is within its validity period
//! ‼ workload certificate does not expire soon
//!     workload certificate in identity/tls.crt expires at 2026-12-01T10:00:00Z, in 2d 23h
//! ...
//! ‼ 11 checks passed, 1 with a warning
//! ```
//!
//! ✔ is a check that passed, ‼ one that passed with a warning, ✖ one that
//! failed. Each title is a statement that holds when the check passes; a
//! failed check keeps its title and says why underneath. The checks, in
//! order ([`run`]):
//!
//! - **config**: the file loads ([`SidecarConfig::load`]). When it does
//!   not, the error (with its field path and line) is the only line: every
//!   other check needs the configuration. When it does, a line under it
//!   per listener says where its address came from, as the reader found
//!   it ([`SidecarConfig::load_with_sources`]): the file, the environment
//!   variable that overrides it (naming the file's address it replaces),
//!   or the default, as in
//!   `inbound.listen 0.0.0.0:4143 (from MESH_INBOUND_LISTEN_ADDR)`.
//!   Each variable of the environment that starts with `MESH_` and that
//!   the sidecar does not read warns, naming the one it probably means
//!   when one is close
//!   ([`SidecarConfig::unknown_env_variables`]): a misspelt
//!   `MESH_INBOUND_LISTEN_ADR` leaves the file's address in force.
//! - **identity**, with an `identity` section: the credentials load the
//!   way the sidecar loads them (mesh-tls's [`Credentials`]), the chain
//!   verifies against the trust bundle, the identity is in the trust
//!   domain, and no certificate has expired or is close to it. For a CA
//!   directory, a certificate is issued in memory and checked the same way.
//!   Close is [`CheckOptions::expiry_warning`] for the workload
//!   certificate, which is renewed on its own, and
//!   [`CheckOptions::ca_expiry_warning`] (60 days, `linkerd check`'s "valid
//!   for at least 60 days") for the issuers and trust anchors, which
//!   someone replaces: a new anchor has to reach every workload's bundle
//!   before the old one ends.
//! - **policy**: the resources compile ([`policy::compile`]); each part
//!   that is read but not enforced is a warning, and so is each backend of
//!   an outbound route that is not an outbound service, whose share of the
//!   requests the sidecar answers 500 (the warning names the route's
//!   file, document and `backendRefs` entry). So is each `HTTPRoute` the
//!   sidecar sets aside for a `GRPCRoute` of the same service written
//!   with its namespace where the `HTTPRoute` is written without it (or
//!   the other way round): the reader keeps the two spellings apart, and
//!   the sidecar, which serves them together, warns of it in the same
//!   words as this check. So is each route attached to an `EgressNetwork`
//!   that does not apply to the workload (none written of that name, or
//!   one of another namespace), which serves none of its requests.
//! - **app**: each inbound listener's application address accepts a TCP
//!   connection.
//! - **outbound**, when there is something of these to check: ingress
//!   mode has outbound services to route to (a warning when there are
//!   none: every request would get 404); each endpoint given by DNS name
//!   resolves. One that does not is a warning: the sidecar starts
//!   anyway and keeps looking it up, its service answering 503 meanwhile.
//!   An outbound listener that is not on loopback warns too: whoever
//!   reaches it reaches the services as this workload.
//!   An endpoint that is one of the sidecar's own outbound listeners, or
//!   a name that resolves to one (`localhost:4140`), warns, as the
//!   sidecar leaves it out (a request there would loop); it fails when
//!   the service is left with no endpoint, and would answer every request
//!   with 503.
//! - **tracing**, with a `tracing` section: the trace collector accepts
//!   connections. One that does not is a warning: the sidecar serves
//!   anyway, and loses (and counts) its spans.
//! - **admin**: the running sidecar's admin server answers `/live` and
//!   `/ready` with 200.
//!
//! With [`CheckOptions::pre`], for a sidecar that has not started yet (as
//! `linkerd check --pre` is for a cluster before installing), the admin
//! checks are replaced by **listeners**: every address the sidecar would
//! listen on can be bound now.
//!
//! The report is a value ([`Report`]) and renders as the text above
//! ([`Report`]'s `Display`), so that tests and other tools read the
//! results without parsing text. As `linkerd check -o` does, `sidecar
//! check -o short` prints only the checks that warned or failed
//! ([`Report::short`]), and `-o json` the document `linkerd check -o json`
//! writes ([`Report`]'s `Serialize`): what a script that reads Linkerd's
//! reads here too, with what to do apart from what is wrong
//! ([`Check::hint`]).
//!
//! [`Credentials`]: mesh_tls::Credentials

mod app;
mod certs;
mod collector;
mod env;
mod exposure;
mod ingress;
mod listen;
mod own_endpoints;
mod render;
#[cfg(test)]
mod tests;
mod time;

pub use self::render::{InvalidOutput, Output, Short};

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::config::SidecarConfig;
use super::{outbound, policy};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Status {
    /// The check passed: `✔`.
    Pass,
    /// The check passed, but something needs attention soon: `‼`.
    Warn,
    /// The check failed; the sidecar will not work as configured: `✖`.
    Fail,
}

impl Status {
    /// The mark printed before the check's title.
    pub fn symbol(self) -> &'static str {
        match self {
            Status::Pass => "✔",
            Status::Warn => "‼",
            Status::Fail => "✖",
        }
    }
}

/// One check and how it came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// How it came out.
    pub status: Status,
    /// What holds when the check passes, such as `certificate chain
    /// verifies against the trust bundle`. It is the same whatever the
    /// status.
    pub title: String,
    /// Why it warned or failed, or what to know about a pass; may span
    /// lines. It is the whole text printed under the title, ending with
    /// the [`hint`](Check::hint) when there is one.
    pub detail: Option<String>,
    /// What to do about it, when the check says: the end of the detail,
    /// kept apart as well so that `-o json` can give it as `hint`, apart
    /// from the `error` (as `linkerd check -o json` gives its hint apart).
    pub hint: Option<String>,
}

impl Check {
    /// A check that passed.
    pub fn pass(title: impl Into<String>) -> Self {
        Self::new(Status::Pass, title, None)
    }

    /// A check that passed with a warning, and why.
    pub fn warn(title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(Status::Warn, title, Some(detail.into()))
    }

    /// A check that failed, and why.
    pub fn fail(title: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(Status::Fail, title, Some(detail.into()))
    }

    fn new(status: Status, title: impl Into<String>, detail: Option<String>) -> Self {
        Self {
            status,
            title: title.into(),
            detail,
            hint: None,
        }
    }

    /// Adds a note under the title.
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Adds what to do about it, as the last line of the detail.
    #[must_use]
    pub fn with_hint(self, hint: impl Into<String>) -> Self {
        self.with_hint_after("\n", hint)
    }

    /// Adds what to do about it to the end of the detail, after
    /// `joint` (`"\n"`, or `": "` when the hint ends a line that says
    /// what is wrong).
    #[must_use]
    fn with_hint_after(mut self, joint: &str, hint: impl Into<String>) -> Self {
        let hint = hint.into();
        let detail = self.detail.get_or_insert_with(String::new);
        if !detail.is_empty() {
            detail.push_str(joint);
        }
        detail.push_str(&hint);
        self.hint = Some(hint);
        self
    }

    /// The detail without its hint and the punctuation that joins them:
    /// why the check warned or failed. The whole detail when the hint is
    /// not at its end; nothing when the detail is the hint alone.
    pub fn error(&self) -> Option<&str> {
        let detail = self.detail.as_deref()?;
        let error = match self.hint.as_deref() {
            Some(hint) => detail
                .strip_suffix(hint)
                .map_or(detail, |rest| rest.trim_end_matches([' ', ':', ';', '\n'])),
            None => detail,
        };
        (!error.is_empty()).then_some(error)
    }
}

/// The checks of one area, printed under its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The heading, such as `sidecar-identity`.
    pub name: &'static str,
    /// The checks, in the order they ran.
    pub checks: Vec<Check>,
}

/// Every check that ran, by area.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The areas, in the order they ran. An area with nothing to check
    /// (no `identity` section, no inbound listener) is left out.
    pub groups: Vec<Group>,
}

impl Report {
    /// Every check, with its group.
    pub fn checks(&self) -> impl Iterator<Item = (&Group, &Check)> {
        self.groups
            .iter()
            .flat_map(|group| group.checks.iter().map(move |check| (group, check)))
    }

    /// The group named `name`, if it ran.
    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|group| group.name == name)
    }

    /// The first check whose title starts with `title`.
    pub fn find(&self, title: &str) -> Option<&Check> {
        self.checks()
            .map(|(_, check)| check)
            .find(|check| check.title.starts_with(title))
    }

    /// How many checks came out `status`.
    pub fn count(&self, status: Status) -> usize {
        self.checks()
            .filter(|(_, check)| check.status == status)
            .count()
    }

    /// The worst status of any check: [`Status::Pass`] for an empty report.
    pub fn status(&self) -> Status {
        self.checks()
            .map(|(_, check)| check.status)
            .max()
            .unwrap_or(Status::Pass)
    }

    /// Whether no check failed. Warnings alone are a success: `sidecar
    /// check` exits 0.
    pub fn is_success(&self) -> bool {
        self.status() != Status::Fail
    }

    fn push(&mut self, name: &'static str, checks: Vec<Check>) {
        if !checks.is_empty() {
            self.groups.push(Group { name, checks });
        }
    }
}

/// What `sidecar check` does beyond reading the files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckOptions {
    /// Check before the sidecar starts: instead of asking its admin
    /// server, check that its listen addresses can be bound. Default
    /// false.
    pub pre: bool,
    /// How long each connection and each admin request may take. Default
    /// 1 second: the application and the admin server are local.
    pub timeout: Duration,
    /// The workload certificate warns when less than this is left, or
    /// less than 30 % of its lifetime, whichever is shorter. Default 7
    /// days.
    pub expiry_warning: Duration,
    /// An issuer or trust anchor warns when less than this is left, or
    /// less than 30 % of its lifetime, whichever is shorter. Default 60
    /// days, as `linkerd check` warns of its trust anchors and issuer; the
    /// share keeps an issuer that cert-manager renews every few days from
    /// warning all its life.
    pub ca_expiry_warning: Duration,
}

impl CheckOptions {
    /// The default [`CheckOptions::timeout`]: 1 second.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
    /// The default [`CheckOptions::expiry_warning`]: 7 days.
    pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(7 * 86_400);
    /// The default [`CheckOptions::ca_expiry_warning`]: 60 days, as in
    /// `linkerd check`.
    pub const DEFAULT_CA_EXPIRY_WARNING: Duration = Duration::from_secs(60 * 86_400);

    /// Sets [`CheckOptions::pre`].
    #[must_use]
    pub fn with_pre(mut self, pre: bool) -> Self {
        self.pre = pre;
        self
    }

    /// Sets [`CheckOptions::timeout`].
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`CheckOptions::expiry_warning`].
    #[must_use]
    pub fn with_expiry_warning(mut self, expiry_warning: Duration) -> Self {
        self.expiry_warning = expiry_warning;
        self
    }

    /// Sets [`CheckOptions::ca_expiry_warning`].
    #[must_use]
    pub fn with_ca_expiry_warning(mut self, ca_expiry_warning: Duration) -> Self {
        self.ca_expiry_warning = ca_expiry_warning;
        self
    }
}

impl Default for CheckOptions {
    fn default() -> Self {
        Self {
            pre: false,
            timeout: Self::DEFAULT_TIMEOUT,
            expiry_warning: Self::DEFAULT_EXPIRY_WARNING,
            ca_expiry_warning: Self::DEFAULT_CA_EXPIRY_WARNING,
        }
    }
}

/// Runs every check on the configuration in `path` (see the [module
/// docs](self)).
///
/// The configuration, certificate and policy files are read with blocking
/// calls, as the sidecar reads them at start; the network checks wait at
/// most [`CheckOptions::timeout`] each.
pub async fn run(path: &Path, options: &CheckOptions) -> Report {
    let mut report = Report::default();
    let loaded = SidecarConfig::load_with_sources(path, |name| std::env::var_os(name));
    let config = match loaded {
        Ok((config, addresses)) => {
            let check = Check::pass(format!("config file {} is valid", path.display()))
                .with_detail(listen::lines(&addresses, &path.display().to_string()).join("\n"));
            let mut checks = vec![check];
            checks.extend(env::check(std::env::vars_os().map(|(name, _)| name)));
            report.push("sidecar-config", checks);
            config
        }
        Err(error) => {
            let detail = format!(
                "{}\nthe other checks need a valid configuration and did not run",
                with_causes(&error)
            );
            report.push(
                "sidecar-config",
                vec![Check::fail(
                    format!("config file {} is valid", path.display()),
                    detail,
                )],
            );
            return report;
        }
    };
    if let Some(identity) = &config.identity {
        let now = SystemTime::now();
        report.push("sidecar-identity", certs::check(identity, now, options));
    }
    report.push("sidecar-policy", check_policy(&config));
    report.push(
        "sidecar-app",
        app::reachable(&config, options.timeout).await,
    );
    let mut outbound = ingress::check(&config.outbound);
    outbound.extend(exposure::check(&config.outbound));
    outbound.extend(own_endpoints::check(&config.outbound));
    outbound.extend(app::resolvable(&config, options.timeout).await);
    report.push("sidecar-outbound", outbound);
    report.push(
        "sidecar-tracing",
        collector::check(&config, options.timeout).await,
    );
    if options.pre {
        report.push("sidecar-listeners", app::bindable(&config).await);
    } else {
        report.push("sidecar-admin", app::admin(&config, options.timeout).await);
    }
    report
}

/// The policy compiles; whatever it reads but does not enforce warns.
fn check_policy(config: &SidecarConfig) -> Vec<Check> {
    const TITLE: &str = "policy resources are valid";
    match policy::compile(&config.policy) {
        Ok(checked) => {
            let namespace = &config.policy.workload.namespace;
            let mut checks = vec![Check::pass(TITLE)];
            let authorization = checked.compiled.warnings.iter().map(ToString::to_string);
            // The warnings of the routes this workload is served: a
            // consumer GRPCRoute of another namespace sets none of its
            // HTTPRoutes aside, as the sidecar itself logs them.
            let served = checked.routes.for_namespace(namespace);
            let routes = served.warnings.iter().map(ToString::to_string);
            // A route may name a service before it is in
            // `outbound.services`: the sidecar starts, and answers the
            // requests drawn to it 500. Also the HTTPRoutes that merging
            // the routes written with and without a namespace sets aside,
            // which the reader's warnings cannot name, and each resource
            // of a service that is not in `outbound.services`, which the
            // sidecar does not use.
            let planning =
                outbound::planning_warnings(&config.outbound, &checked.routes, namespace);
            // And each route attached to an EgressNetwork that does not
            // apply to the workload, which serves none of its requests.
            let unserved = checked.unserved_egress_routes.iter().cloned();
            // Each warning is its own line: it names the file, document,
            // resource and field already.
            checks.extend(
                authorization
                    .chain(routes)
                    .chain(planning)
                    .chain(unserved)
                    .map(|title| Check::new(Status::Warn, title, None)),
            );
            checks
        }
        Err(error) => vec![Check::fail(TITLE, with_causes(&error))],
    }
}

/// An error and its causes, one a line.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    for cause in crate::causes(error) {
        text.push_str("\ncaused by: ");
        text.push_str(&cause.to_string());
    }
    text
}
